//! One end of a flow, as enrichment names it: the `Src…`/`Dst…` labels of a
//! record, held together and shared. The enricher resolves an address once
//! and every flow of that end points at the same labels (one reference
//! count per flow, not five strings); records stay flat in JSON, with
//! netobserv's names.

use crate::record::Label;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserializer, Serializer};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Src,
    Dst,
}

impl Side {
    /// The prefix of this side's JSON field names.
    pub fn prefix(self) -> &'static str {
        match self {
            Side::Src => "Src",
            Side::Dst => "Dst",
        }
    }

    /// The side whose label has JSON name `name`, if it is a label.
    pub fn of_label(name: &str) -> Option<Side> {
        [Side::Src, Side::Dst]
            .into_iter()
            .find(|side| side.label_names().contains(&name))
    }

    /// This side's JSON names of the labels, in `EndpointLabels::fields`'
    /// order.
    pub fn label_names(self) -> &'static [&'static str; LABELS] {
        match self {
            Side::Src => &SRC_NAMES,
            Side::Dst => &DST_NAMES,
        }
    }
}

/// How many labels an end has.
pub const LABELS: usize = 9;
const SRC_NAMES: [&str; LABELS] = [
    "SrcK8S_HostName",
    "SrcK8S_Namespace",
    "SrcK8S_Name",
    "SrcK8S_Type",
    "SrcK8S_OwnerName",
    "SrcK8S_OwnerType",
    "SrcK8S_HostIP",
    "SrcK8S_Zone",
    "SrcSubnetLabel",
];
const DST_NAMES: [&str; LABELS] = [
    "DstK8S_HostName",
    "DstK8S_Namespace",
    "DstK8S_Name",
    "DstK8S_Type",
    "DstK8S_OwnerName",
    "DstK8S_OwnerType",
    "DstK8S_HostIP",
    "DstK8S_Zone",
    "DstSubnetLabel",
];

/// The enrichment labels of one end: from the Kubernetes API in a cluster
/// (docs/kubernetes.md), from network namespaces and the host otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct EndpointLabels {
    /// The node the end runs on (a pod's node, or the node itself).
    pub host_name: Option<Label>,
    pub namespace: Option<Label>,
    pub name: Option<Label>,
    /// Pod, Service, Node (NetworkNamespace on a plain host).
    pub kind: Option<Label>,
    /// The top workload owning a pod (a Deployment rather than its
    /// ReplicaSet); a bare pod owns itself.
    pub owner_name: Option<Label>,
    pub owner_type: Option<Label>,
    /// The address of the end's node.
    pub host_ip: Option<Label>,
    /// The node's `topology.kubernetes.io/zone`.
    pub zone: Option<Label>,
    pub subnet: Option<Label>,
}

const NO_LABELS: EndpointLabels = EndpointLabels {
    host_name: None,
    namespace: None,
    name: None,
    kind: None,
    owner_name: None,
    owner_type: None,
    host_ip: None,
    zone: None,
    subnet: None,
};

impl EndpointLabels {
    /// Each label, in the order of `Side::label_names`.
    pub fn fields(&self) -> [&Option<Label>; LABELS] {
        [
            &self.host_name,
            &self.namespace,
            &self.name,
            &self.kind,
            &self.owner_name,
            &self.owner_type,
            &self.host_ip,
            &self.zone,
            &self.subnet,
        ]
    }

    fn fields_mut(&mut self) -> [&mut Option<Label>; LABELS] {
        [
            &mut self.host_name,
            &mut self.namespace,
            &mut self.name,
            &mut self.kind,
            &mut self.owner_name,
            &mut self.owner_type,
            &mut self.host_ip,
            &mut self.zone,
            &mut self.subnet,
        ]
    }

    /// The label of JSON name `name` on `side`, if it is one.
    pub fn by_name(&self, side: Side, name: &str) -> Option<&Option<Label>> {
        let at = side.label_names().iter().position(|n| *n == name)?;
        Some(self.fields()[at])
    }
}

/// A record's labels of one end: shared with every record of that end, none
/// at all (no allocation) for an end enrichment knows nothing of.
#[derive(Debug, Clone, Default)]
pub struct SideLabels(Option<Arc<EndpointLabels>>);

impl SideLabels {
    pub fn new(labels: EndpointLabels) -> SideLabels {
        SideLabels((labels != NO_LABELS).then(|| Arc::new(labels)))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Whether both are the same shared copy (or both none): equal without
    /// reading them.
    pub fn same(&self, other: &SideLabels) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (a, b) => a.is_none() && b.is_none(),
        }
    }

    /// Where the shared copy lives (0 for none): the same for every record
    /// holding this copy, and never another copy's while one is held.
    pub fn address(&self) -> usize {
        self.0.as_ref().map_or(0, |s| Arc::as_ptr(s) as usize)
    }

    /// Whether another copy holds these labels too.
    pub fn shared_elsewhere(&self) -> bool {
        self.0.as_ref().is_some_and(|s| Arc::strong_count(s) > 1)
    }

    /// A changed copy (the labels are shared: they are never changed in
    /// place).
    pub fn with(&self, change: impl FnOnce(&mut EndpointLabels)) -> SideLabels {
        let mut labels = (**self).clone();
        change(&mut labels);
        SideLabels::new(labels)
    }
}

impl std::ops::Deref for SideLabels {
    type Target = EndpointLabels;
    fn deref(&self) -> &EndpointLabels {
        self.0.as_deref().unwrap_or(&NO_LABELS)
    }
}

impl PartialEq for SideLabels {
    /// The same shared labels are equal without reading them.
    fn eq(&self, other: &SideLabels) -> bool {
        self.same(other) || **self == **other
    }
}

impl Eq for SideLabels {}

impl std::hash::Hash for SideLabels {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (**self).hash(state)
    }
}

impl From<EndpointLabels> for SideLabels {
    fn from(labels: EndpointLabels) -> SideLabels {
        SideLabels::new(labels)
    }
}

impl crate::FlowRecord {
    pub fn labels(&self, side: Side) -> &SideLabels {
        match side {
            Side::Src => &self.src_labels,
            Side::Dst => &self.dst_labels,
        }
    }
}

impl crate::ConversationRecord {
    pub fn labels(&self, side: Side) -> &SideLabels {
        match side {
            Side::Src => &self.src_labels,
            Side::Dst => &self.dst_labels,
        }
    }
}

/// Serde of one side's labels as the flat, prefixed fields of the record
/// that holds them (`#[serde(flatten, with = "…")]`).
fn serialize_side<S: Serializer>(labels: &SideLabels, side: Side, s: S) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(None)?;
    for (name, value) in side.label_names().iter().zip(labels.fields()) {
        if let Some(value) = value {
            map.serialize_entry(name, &**value)?;
        }
    }
    map.end()
}

fn deserialize_side<'de, D: Deserializer<'de>>(d: D, side: Side) -> Result<SideLabels, D::Error> {
    struct SideVisitor(Side);
    impl<'de> Visitor<'de> for SideVisitor {
        type Value = SideLabels;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "the {} endpoint's labels", self.0.prefix())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SideLabels, A::Error> {
            let mut labels = EndpointLabels::default();
            let names = self.0.label_names();
            while let Some(key) = map.next_key::<String>()? {
                let value: Option<String> = map.next_value()?;
                if let Some(at) = names.iter().position(|n| *n == key) {
                    *labels.fields_mut()[at] = value.map(Label::from);
                }
            }
            Ok(SideLabels::new(labels))
        }
    }
    // As a struct: a flattened field takes only the entries of its names.
    d.deserialize_struct("EndpointLabels", side.label_names(), SideVisitor(side))
}

/// `#[serde(flatten, with = "src_labels")]` on the source end's labels.
pub mod src_labels {
    use super::*;
    pub fn serialize<S: Serializer>(labels: &SideLabels, s: S) -> Result<S::Ok, S::Error> {
        serialize_side(labels, Side::Src, s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SideLabels, D::Error> {
        deserialize_side(d, Side::Src)
    }
}

/// `#[serde(flatten, with = "dst_labels")]` on the destination end's labels.
pub mod dst_labels {
    use super::*;
    pub fn serialize<S: Serializer>(labels: &SideLabels, s: S) -> Result<S::Ok, S::Error> {
        serialize_side(labels, Side::Dst, s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SideLabels, D::Error> {
        deserialize_side(d, Side::Dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FlowRecord;

    #[test]
    fn sides_round_trip_through_the_record_as_flat_fields() {
        let labels = EndpointLabels {
            namespace: Some("backend".into()),
            kind: Some("NetworkNamespace".into()),
            ..Default::default()
        };
        let r = FlowRecord {
            dst_labels: labels.clone().into(),
            ..Default::default()
        };
        assert_eq!(r.dst_labels.namespace.as_deref(), Some("backend"));
        assert!(r.src_labels.is_empty());
        let json = serde_json::to_value(&r).unwrap();
        for (name, value) in Side::Dst.label_names().iter().zip(labels.fields()) {
            assert_eq!(json.get(name).and_then(|v| v.as_str()), value.as_deref());
        }
        assert!(json.get("SrcK8S_Namespace").is_none());
        let back: FlowRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
        assert_eq!(*back.dst_labels, labels);
    }

    #[test]
    fn no_labels_share_nothing_and_equal_labels_are_equal() {
        assert!(SideLabels::new(EndpointLabels::default()).is_empty());
        let labels = EndpointLabels {
            host_name: Some("node-1".into()),
            ..Default::default()
        };
        let (a, b) = (SideLabels::new(labels.clone()), SideLabels::new(labels));
        assert_eq!(a, b);
        assert!(!a.same(&b) && a.same(&a.clone()));
        assert_ne!(a, SideLabels::default());
        assert_eq!(a.by_name(Side::Src, "SrcK8S_HostName"), Some(&a.host_name));
        assert_eq!(a.by_name(Side::Dst, "SrcK8S_HostName"), None);
    }
}
