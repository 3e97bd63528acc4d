//! Feature data (RTT, retransmits, drops, outcomes, DNS, policy events) put
//! onto the flow records they belong to.

use crate::dns::{decode_question, qtype_name, rcode_name};
use crate::drop_reasons::drop_category;
use crate::kernel_types::{FlowExtra, extra_bits};
use flowlens_model::vocab::{ConnOutcome, TcpState};
use flowlens_model::{FlowRecord, NetworkEvent};
use std::collections::HashMap;

/// Everything learned about one flow (identity) in one period, besides its
/// packets.
#[derive(Debug, Clone, Default)]
pub struct FlowExtras {
    pub kernel: Option<FlowExtra>,
    /// A DNS query of this flow got no response in time (its id).
    pub dns_unanswered: Option<u16>,
    pub events: Vec<NetworkEvent>,
    /// When the latest event seen in user space happened (monotonic ns).
    pub user_mono_ns: u64,
}

impl FlowExtras {
    /// Monotonic time of the latest event, for records without packets.
    pub fn last_mono_ns(&self) -> u64 {
        self.kernel
            .map(|k| k.last_mono_ns)
            .unwrap_or(0)
            .max(self.user_mono_ns)
    }
}

/// Names the kernel's numeric codes.
pub struct ExtrasNames<'a> {
    /// enum skb_drop_reason of the running kernel.
    pub drop_reasons: &'a HashMap<u64, String>,
}

/// Adds the feature fields of `extras` to `record`; fields of features that
/// saw nothing stay absent.
pub fn apply(record: &mut FlowRecord, extras: &FlowExtras, names: &ExtrasNames<'_>) {
    if let Some(k) = &extras.kernel {
        apply_kernel(record, k, names);
    }
    if let Some(id) = extras.dns_unanswered {
        record.dns_unanswered = Some(true);
        record.dns_id.get_or_insert(id);
    }
    if !extras.events.is_empty() {
        record
            .network_events
            .get_or_insert_with(Vec::new)
            .extend(extras.events.iter().cloned());
    }
}

fn apply_kernel(record: &mut FlowRecord, k: &FlowExtra, names: &ExtrasNames<'_>) {
    let has = |bit: u32| k.present & bit != 0;
    if has(extra_bits::RTT) {
        record.time_flow_rtt_ns = Some(k.rtt_latest_ns);
        record.time_flow_rtt_min_ns = Some(k.rtt_min_ns);
        record.time_flow_rtt_max_ns = Some(k.rtt_max_ns);
    }
    if has(extra_bits::HANDSHAKE_RTT) {
        record.time_flow_handshake_rtt_ns = Some(k.handshake_rtt_ns);
        // A connection too short for any other sample still gets an RTT.
        record.time_flow_rtt_ns.get_or_insert(k.handshake_rtt_ns);
    }
    if has(extra_bits::RETRANSMITS) {
        record.tcp_retransmits = Some(k.retransmits);
    }
    if has(extra_bits::OUTCOME) {
        record.conn_outcome = ConnOutcome::from_code(k.outcome.into());
    }
    if has(extra_bits::DROPS) {
        record.pkt_drop_packets = Some(k.drop_packets);
        record.pkt_drop_bytes = Some(k.drop_bytes);
        let cause = names
            .drop_reasons
            .get(&(k.drop_latest_reason as u64))
            .cloned()
            .unwrap_or_else(|| format!("SKB_DROP_REASON_{}", k.drop_latest_reason));
        record.pkt_drop_category = Some(drop_category(&cause, Some(k.drop_latest_ttl)));
        record.pkt_drop_latest_drop_cause = Some(cause);
        if record.proto == 6 && k.drop_latest_state != 0 {
            record.pkt_drop_latest_state = Some(TcpState::from_number(k.drop_latest_state));
        }
    }
    if has(extra_bits::DNS) {
        record.dns_id = Some(k.dns_id);
        record.dns_flags = Some(k.dns_flags);
        // The response code means something on responses, and on queries
        // once their response is known (the kernel then copies the
        // response's flags, QR bit clear, and its latency).
        if k.dns_flags & 0x8000 != 0 || has(extra_bits::DNS_LATENCY) {
            record.dns_flags_response_code = Some(rcode_name(k.dns_flags));
        }
        let len = (k.dns_question_len as usize).min(k.dns_question.len());
        if len > 0 {
            let question = decode_question(&k.dns_question[..len]);
            record.dns_name = Some(question.name);
            record.dns_query_type = question.qtype.map(qtype_name);
        }
    }
    if has(extra_bits::DNS_LATENCY) {
        // Microsecond precision: veth latencies are well under a millisecond.
        record.dns_latency_ms = Some((k.dns_latency_ns / 1000) as f64 / 1000.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record of protocol `proto` after `kernel` feature data is applied.
    fn applied(kernel: FlowExtra, proto: u8, reasons: &HashMap<u64, String>) -> FlowRecord {
        let mut record = FlowRecord {
            proto,
            ..Default::default()
        };
        let extras = FlowExtras {
            kernel: Some(kernel),
            ..Default::default()
        };
        apply(
            &mut record,
            &extras,
            &ExtrasNames {
                drop_reasons: reasons,
            },
        );
        record
    }

    #[test]
    fn drop_fields_are_named_and_categorised() {
        let reasons: HashMap<u64, String> =
            [(12, "SKB_DROP_REASON_NETFILTER_DROP".to_string())].into();
        let mut k = FlowExtra {
            present: extra_bits::DROPS,
            drop_packets: 3,
            drop_bytes: 180,
            ..Default::default()
        };
        k.drop_latest_reason = 12;
        k.drop_latest_state = 2;
        let record = applied(k, 6, &reasons);
        assert_eq!(record.pkt_drop_packets, Some(3));
        assert_eq!(
            record.pkt_drop_latest_drop_cause.as_deref(),
            Some("SKB_DROP_REASON_NETFILTER_DROP")
        );
        assert_eq!(
            record.pkt_drop_category,
            Some(flowlens_model::vocab::DropCategory::PolicyDenied)
        );
        assert_eq!(record.pkt_drop_latest_state, Some(TcpState::SynSent));
        assert_eq!(
            record.time_flow_rtt_ns, None,
            "features that saw nothing add no field"
        );
    }

    #[test]
    fn dns_response_fields() {
        let mut k = FlowExtra {
            present: extra_bits::DNS | extra_bits::DNS_LATENCY,
            dns_id: 77,
            dns_flags: 0x8183,
            ..Default::default()
        };
        let wire = b"\x07missing\x04test\x00\x00\x01\x00\x01";
        k.dns_question[..wire.len()].copy_from_slice(wire);
        k.dns_question_len = wire.len() as u8;
        k.dns_latency_ns = 1_234_567;
        let record = applied(k, 17, &HashMap::new());
        assert_eq!(record.dns_flags_response_code.as_deref(), Some("NXDomain"));
        assert_eq!(record.dns_name.as_deref(), Some("missing.test"));
        assert_eq!(record.dns_query_type.as_deref(), Some("A"));
        assert_eq!(record.dns_latency_ms, Some(1.234));
    }
}
