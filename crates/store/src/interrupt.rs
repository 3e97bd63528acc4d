//! Stopping a query: a deadline and a cancellation flag that the scan
//! checks before each file and each batch it reads, so a query past its
//! budget or whose client went away stops reading instead of finishing
//! unseen. The control is set for the thread that runs the query (each
//! query runs on a blocking thread of its own), which lets every read path
//! check it without threading a parameter through each.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// When a query must stop.
#[derive(Debug, Clone)]
pub struct QueryControl {
    pub deadline: Option<Instant>,
    pub cancelled: Arc<AtomicBool>,
}

/// Why a query stopped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupted {
    TimedOut,
    Cancelled,
}

thread_local! {
    static CURRENT: RefCell<Option<QueryControl>> = const { RefCell::new(None) };
}

impl QueryControl {
    pub fn new(deadline: Option<Instant>) -> QueryControl {
        QueryControl {
            deadline,
            cancelled: Arc::default(),
        }
    }

    fn state(&self) -> Option<Interrupted> {
        if self.cancelled.load(Ordering::Relaxed) {
            Some(Interrupted::Cancelled)
        } else if self.deadline.is_some_and(|d| Instant::now() >= d) {
            Some(Interrupted::TimedOut)
        } else {
            None
        }
    }

    /// Runs `query` on this thread under this control: its answer, or why
    /// it was stopped (the partial answer is dropped).
    pub fn run<T>(&self, query: impl FnOnce() -> T) -> Result<T, Interrupted> {
        let previous = CURRENT.with(|c| c.replace(Some(self.clone())));
        let answer = query();
        CURRENT.with(|c| *c.borrow_mut() = previous);
        match self.state() {
            Some(why) => Err(why),
            None => Ok(answer),
        }
    }
}

/// Whether the query running on this thread must stop.
pub(crate) fn interrupted() -> bool {
    CURRENT.with(|c| c.borrow().as_ref().is_some_and(|q| q.state().is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_passed_deadline_or_a_cancel_stops_the_query() {
        let done = QueryControl::new(Some(Instant::now()));
        assert_eq!(done.run(interrupted), Err(Interrupted::TimedOut));
        let open = QueryControl::new(None);
        assert_eq!(open.run(interrupted), Ok(false));
        open.cancelled.store(true, Ordering::Relaxed);
        assert_eq!(open.run(|| 1), Err(Interrupted::Cancelled));
        assert!(!interrupted(), "no control outside a query");
    }
}
