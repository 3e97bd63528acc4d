//! Endpoint labels shared between conversations: thousands of conversations
//! have the same few ends (a namespace, a node), so each keeps a pointer to
//! one shared copy. Enriched flows already share their end's copy; labels
//! that came over the wire are one copy per record, and would be one per
//! conversation without this. Copies no conversation holds any more are
//! let go at the tracker's ticks.

use flowlens_model::SideLabels;
use foldhash::HashSet;

#[derive(Default)]
pub struct LabelInterner {
    shared: HashSet<SideLabels>,
}

impl LabelInterner {
    /// The shared copy of `labels`.
    pub fn intern(&mut self, labels: &SideLabels) -> SideLabels {
        if labels.is_empty() {
            return SideLabels::default();
        }
        if let Some(shared) = self.shared.get(labels) {
            return shared.clone();
        }
        self.shared.insert(labels.clone());
        labels.clone()
    }

    /// Forgets the copies only the interner still holds.
    pub fn prune(&mut self) {
        self.shared.retain(|labels| labels.shared_elsewhere());
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
    use flowlens_model::EndpointLabels;

    #[test]
    fn equal_labels_are_one_copy_until_unused() {
        let mut interner = LabelInterner::default();
        let labels = EndpointLabels {
            namespace: Some("shop".into()),
            ..Default::default()
        };
        let a = interner.intern(&labels.clone().into());
        let b = interner.intern(&labels.into());
        assert!(a.same(&b));
        assert!(interner.intern(&SideLabels::default()).is_empty());
        assert_eq!(interner.len(), 1);
        drop((a, b));
        interner.prune();
        assert!(interner.is_empty());
    }
}
