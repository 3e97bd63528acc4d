//! One end of a flow, as enrichment names it: the `Src…`/`Dst…` fields of a
//! record read and written together.

use crate::FlowRecord;
use crate::record::Label;

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
}

/// The enrichment fields of one side of a record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct EndpointLabels {
    pub host_name: Option<Label>,
    pub namespace: Option<Label>,
    pub name: Option<Label>,
    pub kind: Option<Label>,
    pub subnet: Option<Label>,
}

impl EndpointLabels {
    /// (JSON name without the side prefix, value) of each field.
    pub fn fields(&self) -> [(&'static str, &Option<Label>); 5] {
        [
            ("K8S_HostName", &self.host_name),
            ("K8S_Namespace", &self.namespace),
            ("K8S_Name", &self.name),
            ("K8S_Type", &self.kind),
            ("SubnetLabel", &self.subnet),
        ]
    }
}

impl FlowRecord {
    pub fn endpoint(&self, side: Side) -> EndpointLabels {
        let r = self;
        match side {
            Side::Src => EndpointLabels {
                host_name: r.src_k8s_host_name.clone(),
                namespace: r.src_k8s_namespace.clone(),
                name: r.src_k8s_name.clone(),
                kind: r.src_k8s_type.clone(),
                subnet: r.src_subnet_label.clone(),
            },
            Side::Dst => EndpointLabels {
                host_name: r.dst_k8s_host_name.clone(),
                namespace: r.dst_k8s_namespace.clone(),
                name: r.dst_k8s_name.clone(),
                kind: r.dst_k8s_type.clone(),
                subnet: r.dst_subnet_label.clone(),
            },
        }
    }

    /// Whether this side's fields equal `e` (compared in place, no copy).
    pub fn endpoint_is(&self, side: Side, e: &EndpointLabels) -> bool {
        let r = self;
        let fields = match side {
            Side::Src => [
                &r.src_k8s_host_name,
                &r.src_k8s_namespace,
                &r.src_k8s_name,
                &r.src_k8s_type,
                &r.src_subnet_label,
            ],
            Side::Dst => [
                &r.dst_k8s_host_name,
                &r.dst_k8s_namespace,
                &r.dst_k8s_name,
                &r.dst_k8s_type,
                &r.dst_subnet_label,
            ],
        };
        fields
            .into_iter()
            .zip(e.fields().map(|(_, value)| value))
            .all(|(mine, theirs)| mine == theirs)
    }

    pub fn set_endpoint(&mut self, side: Side, e: EndpointLabels) {
        let r = self;
        let (host_name, namespace, name, kind, subnet) = match side {
            Side::Src => (
                &mut r.src_k8s_host_name,
                &mut r.src_k8s_namespace,
                &mut r.src_k8s_name,
                &mut r.src_k8s_type,
                &mut r.src_subnet_label,
            ),
            Side::Dst => (
                &mut r.dst_k8s_host_name,
                &mut r.dst_k8s_namespace,
                &mut r.dst_k8s_name,
                &mut r.dst_k8s_type,
                &mut r.dst_subnet_label,
            ),
        };
        (*host_name, *namespace, *name, *kind, *subnet) =
            (e.host_name, e.namespace, e.name, e.kind, e.subnet);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_round_trip_through_the_record() {
        let labels = EndpointLabels {
            namespace: Some("backend".into()),
            kind: Some("NetworkNamespace".into()),
            ..Default::default()
        };
        let mut r = FlowRecord::default();
        r.set_endpoint(Side::Dst, labels.clone());
        assert_eq!(r.dst_k8s_namespace.as_deref(), Some("backend"));
        assert_eq!(r.endpoint(Side::Dst), labels);
        assert_eq!(r.endpoint(Side::Src), EndpointLabels::default());
        let json = serde_json::to_value(&r).unwrap();
        for (name, value) in labels.fields() {
            assert_eq!(
                json.get(format!("Dst{name}")).and_then(|v| v.as_str()),
                value.as_deref()
            );
        }
    }
}
