//! Label values of the metrics' series, each distinct run of values stored
//! once and named by a number.
//!
//! A series is keyed by a few such numbers (its source end's values, its
//! destination end's, its extra labels'), so a flow's update hashes and
//! compares 16 bytes held in the table itself — no label text is laid out,
//! hashed or compared per flow, and no key is read through a pointer.

use hashbrown::HashTable;
use std::hash::BuildHasher;

/// A part's number; `NONE` for a part a key does not have.
pub type PartId = u32;
pub const NONE: PartId = PartId::MAX;

/// The hasher of part texts and series keys (foldhash, seeded per
/// process): parts come from our own enrichment and vocabularies.
pub fn hasher() -> &'static foldhash::fast::RandomState {
    static HASHER: std::sync::LazyLock<foldhash::fast::RandomState> =
        std::sync::LazyLock::new(Default::default);
    &HASHER
}

/// Runs of label values laid end to end (`LabelKey`'s form), by number,
/// counted by the series that use them; a part no series uses is freed by
/// `sweep`.
#[derive(Debug, Default)]
pub struct Parts {
    texts: Vec<Box<str>>,
    uses: Vec<u32>,
    by_text: HashTable<PartId>,
    free: Vec<PartId>,
}

impl Parts {
    /// The number of `text` (values laid out by `LabelKey`, never empty),
    /// made if new.
    pub fn intern(&mut self, text: &str) -> PartId {
        debug_assert!(!text.is_empty(), "a part holds at least one value");
        let hash = hasher().hash_one(text);
        let texts = &self.texts;
        if let Some(&id) = self.by_text.find(hash, |&id| *texts[id as usize] == *text) {
            return id;
        }
        let id = match self.free.pop() {
            Some(id) => {
                self.texts[id as usize] = text.into();
                id
            }
            None => {
                self.texts.push(text.into());
                self.uses.push(0);
                (self.texts.len() - 1) as PartId
            }
        };
        let texts = &self.texts;
        self.by_text
            .insert_unique(hash, id, |&id| hasher().hash_one(&*texts[id as usize]));
        id
    }

    pub fn text(&self, id: PartId) -> &str {
        &self.texts[id as usize]
    }

    /// A series now uses the parts of `ids` (`NONE` ignored).
    pub fn retain(&mut self, ids: &[PartId]) {
        for &id in ids.iter().filter(|&&id| id != NONE) {
            self.uses[id as usize] += 1;
        }
    }

    /// A series using `ids` is gone.
    pub fn release(&mut self, ids: &[PartId]) {
        for &id in ids.iter().filter(|&&id| id != NONE) {
            self.uses[id as usize] -= 1;
        }
    }

    /// Frees the parts no series uses. Numbers handed out before stay
    /// valid until this call only: callers forget theirs first.
    pub fn sweep(&mut self) {
        for (at, text) in self.texts.iter_mut().enumerate() {
            // A freed part's text is empty; a live one never is (each value
            // is laid out with its length).
            if self.uses[at] != 0 || text.is_empty() {
                continue;
            }
            let id = at as PartId;
            let hash = hasher().hash_one(&**text);
            if let Ok(entry) = self.by_text.find_entry(hash, |&other| other == id) {
                entry.remove();
            }
            *text = "".into();
            self.free.push(id);
        }
    }

    /// Parts held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_text.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_has_one_number_until_no_series_uses_it() {
        let mut parts = Parts::default();
        let a = parts.intern("5:front");
        assert_eq!(parts.intern("5:front"), a);
        let b = parts.intern("4:back");
        assert_ne!(a, b);
        parts.retain(&[a, NONE]);
        parts.sweep();
        assert_eq!(parts.len(), 1, "the unused part is freed");
        assert_eq!(parts.text(a), "5:front");
        parts.release(&[a]);
        parts.sweep();
        assert_eq!(parts.len(), 0);
        // Freed numbers are reused, and freed texts are not found.
        let c = parts.intern("0:");
        assert!(c == a || c == b);
        assert_eq!(parts.text(c), "0:");
        assert_eq!(parts.intern("0:"), c);
        assert_ne!(parts.intern("5:front"), c);
    }
}
