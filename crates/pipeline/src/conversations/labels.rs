//! Endpoint labels shared between conversations: thousands of conversations
//! have the same few ends (a namespace, a node), so each keeps a pointer to
//! one shared copy instead of five labels of its own (160 bytes a
//! conversation less). Copies no conversation holds any more are let go at
//! the tracker's ticks.

use flowlens_model::EndpointLabels;
use foldhash::HashSet;
use std::sync::Arc;

#[derive(Default)]
pub struct LabelInterner {
    shared: HashSet<Arc<EndpointLabels>>,
}

impl LabelInterner {
    /// The shared copy of `labels`.
    pub fn intern(&mut self, labels: EndpointLabels) -> Arc<EndpointLabels> {
        if let Some(shared) = self.shared.get(&labels) {
            return shared.clone();
        }
        let shared = Arc::new(labels);
        self.shared.insert(shared.clone());
        shared
    }

    /// Forgets the copies only the interner still holds.
    pub fn prune(&mut self) {
        self.shared.retain(|labels| Arc::strong_count(labels) > 1);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shared.len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.shared.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_labels_are_one_copy_until_unused() {
        let mut interner = LabelInterner::default();
        let labels = EndpointLabels {
            namespace: Some("shop".into()),
            ..Default::default()
        };
        let a = interner.intern(labels.clone());
        let b = interner.intern(labels);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(interner.len(), 1);
        drop((a, b));
        interner.prune();
        assert!(interner.is_empty());
    }
}
