//! The tracker: flows in, conversation records out, on flows and on a timer.

use super::config::TrackerConfig;
use super::key::{ConversationKey, HashId};
use super::labels::LabelInterner;
use super::state::Conversation;
use super::table::ConversationTable;
use flowlens_model::tcp_flags::SYN as TCP_SYN;
use flowlens_model::vocab::{CloseCause, RecordType};
use flowlens_model::{FlowLog, FlowRecord, TrackerRecord};
// foldhash: keys come from our own agents, and SipHash was a tenth of
// the pipeline's time.
use foldhash::{HashMap, HashMapExt};

/// What the tracker received, sent and dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackerCounters {
    pub flows_received: u64,
    pub records_sent: u64,
    pub conversations_started: u64,
    pub conversations_ended: u64,
    /// New conversations not tracked because `max_connections_tracked` was
    /// reached (their flow logs are still sent).
    pub conversations_dropped: u64,
    /// Flows of a TCP conversation that had already ended (its last ACKs,
    /// evicted after the end): logged with its id, not a new conversation.
    pub late_flows: u64,
}

pub struct ConversationTracker {
    config: TrackerConfig,
    conversations: ConversationTable,
    labels: LabelInterner,
    /// TCP conversations that ended within their `end_ms`: their id and
    /// when they ended. A flow of one without SYN is a straggler of it.
    ended: HashMap<ConversationKey, (HashId, i64)>,
    pub counters: TrackerCounters,
}

impl ConversationTracker {
    pub fn new(config: TrackerConfig) -> ConversationTracker {
        ConversationTracker {
            config,
            conversations: ConversationTable::new(),
            labels: LabelInterner::default(),
            ended: HashMap::new(),
            counters: TrackerCounters::default(),
        }
    }

    pub fn tracked(&self) -> usize {
        self.conversations.len()
    }

    /// Takes one flow; returns the records it causes (its flow log, a
    /// newConnection).
    pub fn on_flow(&mut self, flow: &FlowRecord, now_ms: i64) -> Vec<TrackerRecord> {
        self.counters.flows_received += 1;
        let (key, forward) = ConversationKey::of(flow);
        let ends = key.ends(forward);
        let mut out = Vec::new();
        // A known conversation: one lookup.
        if let Some(conversation) = self.conversations.get_mut(&key) {
            conversation.add(flow, ends.0, &mut self.labels);
            if self.config.log_types.flows() {
                out.push(flow_log(flow, conversation.hash_id, false));
            }
            return self.sent(out);
        }
        // The last ACKs of a closed connection can reach us an eviction after
        // its end: they belong to it, not to a new conversation (a new one
        // on the same ports starts with a SYN).
        if flow.flags & TCP_SYN == 0
            && let Some((hash_id, _)) = self.ended.get(&key)
        {
            self.counters.late_flows += 1;
            if self.config.log_types.flows() {
                out.push(flow_log(flow, *hash_id, false));
            }
            return self.sent(out);
        }
        if self.conversations.len() >= self.config.max_connections_tracked {
            self.counters.conversations_dropped += 1;
            if self.config.log_types.flows() {
                out.push(flow_log(flow, key.hash_id(), false));
            }
            return self.sent(out);
        }
        let started = Conversation::new(key.hash_id(), flow, ends, now_ms);
        let conversation = self.conversations.insert(key, started);
        conversation.add(flow, ends.0, &mut self.labels);
        self.counters.conversations_started += 1;
        if self.config.log_types.conversation_updates() {
            out.push(TrackerRecord::Conversation(
                conversation.record(RecordType::NewConnection, true),
            ));
        }
        if self.config.log_types.flows() {
            out.push(flow_log(flow, conversation.hash_id, true));
        }
        self.sent(out)
    }

    /// Heartbeats and ends due at `now_ms` (flow time of the wall clock).
    pub fn tick(&mut self, now_ms: i64) -> Vec<TrackerRecord> {
        let mut out = Vec::new();
        let mut ended = Vec::new();
        let config = &self.config;
        self.conversations.for_each_mut(|key, c| {
            let t = config.timeouts_for(c.proto);
            let terminated = c
                .terminating_since_ms
                .is_some_and(|since| now_ms - since >= t.terminating_ms);
            let idle = now_ms - c.last_ms >= t.end_ms;
            if terminated || idle {
                ended.push(*key);
            } else if now_ms - c.last_heartbeat_ms >= t.heartbeat_ms {
                c.last_heartbeat_ms = now_ms;
                if config.log_types.conversation_updates() {
                    out.push(TrackerRecord::Conversation(
                        c.record(RecordType::Heartbeat, false),
                    ));
                }
            }
        });
        self.ended
            .retain(|key, (_, at)| now_ms - *at < config.timeouts_for(key.proto).end_ms);
        for key in ended {
            if let Some(c) = self.conversations.remove(&key) {
                out.extend(self.end(&c));
                // Bounded like the conversations themselves.
                if c.proto == 6 && self.ended.len() < self.config.max_connections_tracked {
                    self.ended.insert(key, (c.hash_id, now_ms));
                }
            }
        }
        self.labels.prune();
        self.sent(out)
    }

    /// Ends every conversation (at shutdown); those not closing yet end
    /// with cause `active`.
    pub fn flush(&mut self) -> Vec<TrackerRecord> {
        let mut out = Vec::new();
        for mut c in self.conversations.drain() {
            c.close_cause.get_or_insert(CloseCause::Active);
            out.extend(self.end(&c));
        }
        self.sent(out)
    }

    fn end(&mut self, c: &Conversation) -> Option<TrackerRecord> {
        self.counters.conversations_ended += 1;
        self.config
            .log_types
            .ended_conversations()
            .then(|| TrackerRecord::Conversation(c.record(RecordType::EndConnection, false)))
    }

    fn sent(&mut self, out: Vec<TrackerRecord>) -> Vec<TrackerRecord> {
        self.counters.records_sent += out.len() as u64;
        out
    }
}

/// A flow log: the flow's own fields plus its conversation's id.
fn flow_log(flow: &FlowRecord, hash_id: HashId, is_first: bool) -> TrackerRecord {
    TrackerRecord::FlowLog(FlowLog::new(flow.clone(), hash_id, is_first))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversations::{LogTypes, Timeouts};
    use serde_json::Value;

    use flowlens_model::tcp_flags::{ACK, FIN, RST, RST_ACK, SYN, SYN_ACK};

    fn flow(from_client: bool, bytes: u64, packets: u64, flags: u32, at: i64) -> FlowRecord {
        let (c, s) = (("198.18.0.1", 40000), ("198.18.0.2", 80));
        let ((src, sport), (dst, dport)) = if from_client { (c, s) } else { (s, c) };
        FlowRecord {
            src_addr: src.into(),
            src_port: sport,
            dst_addr: dst.into(),
            dst_port: dport,
            proto: 6,
            bytes,
            packets,
            flags,
            time_flow_start_ms: at,
            time_flow_end_ms: at,
            sampling: 1,
            ..Default::default()
        }
    }

    /// The tracker with its records read as JSON (netobserv's names), as
    /// they leave the pipeline.
    struct JsonTracker(ConversationTracker);

    impl JsonTracker {
        fn json(records: Vec<TrackerRecord>) -> Vec<Value> {
            records.iter().map(|r| Value::Object(r.to_json())).collect()
        }
        fn on_flow(&mut self, flow: &FlowRecord, now_ms: i64) -> Vec<Value> {
            Self::json(self.0.on_flow(flow, now_ms))
        }
        fn tick(&mut self, now_ms: i64) -> Vec<Value> {
            Self::json(self.0.tick(now_ms))
        }
        fn flush(&mut self) -> Vec<Value> {
            Self::json(self.0.flush())
        }
        fn tracked(&self) -> usize {
            self.0.tracked()
        }
    }

    impl std::ops::Deref for JsonTracker {
        type Target = ConversationTracker;
        fn deref(&self) -> &ConversationTracker {
            &self.0
        }
    }

    fn tracker(log_types: LogTypes) -> JsonTracker {
        JsonTracker(ConversationTracker::new(TrackerConfig {
            log_types,
            ..Default::default()
        }))
    }

    fn of_type<'a>(records: &'a [Value], t: &str) -> Vec<&'a Value> {
        records.iter().filter(|r| r["_RecordType"] == t).collect()
    }

    #[test]
    fn last_acks_after_the_end_belong_to_the_ended_conversation() {
        let mut t = tracker(LogTypes::All);
        t.on_flow(&flow(true, 1000, 10, SYN | ACK | FIN, 1_000), 1_000);
        t.on_flow(
            &flow(false, 5000, 8, SYN | ACK | SYN_ACK | FIN, 1_001),
            1_001,
        );
        let ended = t.tick(6_002);
        let id = of_type(&ended, "endConnection")[0]["_HashId"].clone();
        // The client's last ACK, evicted after the end: logged with the
        // ended conversation's id, no new conversation.
        let late = t.on_flow(&flow(true, 66, 1, ACK, 1_200), 6_500);
        assert_eq!(of_type(&late, "newConnection").len(), 0);
        assert_eq!(of_type(&late, "flowLog")[0]["_HashId"], id);
        assert_eq!((t.counters.late_flows, t.tracked()), (1, 0));
        // The same ports with a SYN are a new connection...
        let again = t.on_flow(&flow(true, 60, 1, SYN, 7_000), 7_000);
        assert_eq!(of_type(&again, "newConnection").len(), 1);
        // ...and once the end timeout has passed, a flow without SYN too.
        let mut t = tracker(LogTypes::All);
        t.on_flow(&flow(true, 1000, 10, SYN | ACK | FIN | RST, 1_000), 1_000);
        t.tick(6_002);
        t.tick(16_003);
        let much_later = t.on_flow(&flow(true, 66, 1, ACK, 16_100), 16_100);
        assert_eq!(of_type(&much_later, "newConnection").len(), 1);
    }

    #[test]
    fn a_completed_connection_joins_both_directions() {
        let mut t = tracker(LogTypes::All);
        let mut out = t.on_flow(&flow(true, 1000, 10, SYN | ACK | FIN, 1_000), 1_000);
        // The server's flow comes second; the client stays A.
        out.extend(t.on_flow(
            &flow(false, 5000, 8, SYN | ACK | SYN_ACK | FIN, 1_001),
            1_001,
        ));
        assert!(t.tick(3_000).is_empty(), "terminating, not yet ended");
        out.extend(t.tick(6_002));
        let new = of_type(&out, "newConnection");
        let logs = of_type(&out, "flowLog");
        let ends = of_type(&out, "endConnection");
        assert_eq!((new.len(), logs.len(), ends.len()), (1, 2, 1));
        let end = ends[0];
        assert_eq!(end["SrcAddr"], "198.18.0.1");
        assert_eq!(
            (end["Bytes_AB"].as_u64(), end["Bytes_BA"].as_u64()),
            (Some(1000), Some(5000))
        );
        assert_eq!(
            (end["Packets_AB"].as_u64(), end["Packets_BA"].as_u64()),
            (Some(10), Some(8))
        );
        assert_eq!(end["numFlowLogs"], 2);
        assert_eq!(end["CloseCause"], "completed");
        assert_eq!(logs[0]["_IsFirst"], true);
        assert_eq!(logs[1]["_IsFirst"], false);
        assert_eq!(logs[0]["_HashId"], end["_HashId"]);
        assert_eq!(t.tracked(), 0);
    }

    #[test]
    fn the_initiator_is_a_even_when_the_syn_ack_is_seen_first() {
        let mut t = tracker(LogTypes::Conversations);
        let out = t.on_flow(&flow(false, 60, 1, SYN | ACK | SYN_ACK, 0), 0);
        assert_eq!(
            (out[0]["SrcAddr"].as_str(), out[0]["SrcPort"].as_u64()),
            (Some("198.18.0.1"), Some(40000))
        );
    }

    #[test]
    fn a_refusal_seen_before_its_syn_still_names_the_client_a() {
        let mut t = tracker(LogTypes::EndedConversations);
        t.on_flow(&flow(false, 54, 1, RST | ACK | RST_ACK, 1_000), 1_000);
        t.on_flow(&flow(true, 74, 1, SYN, 1_000), 1_000);
        let end = &t.tick(7_000)[0];
        assert_eq!(end["SrcAddr"], "198.18.0.1");
        assert_eq!(
            (end["Bytes_AB"].as_u64(), end["Bytes_BA"].as_u64()),
            (Some(74), Some(54))
        );
        assert_eq!(end["CloseCause"], "refused");
    }

    #[test]
    fn a_dns_response_seen_first_still_makes_the_client_a() {
        let mut t = tracker(LogTypes::Conversations);
        let mut response = flow(false, 120, 1, 0, 0);
        response.proto = 17;
        response.src_port = 53;
        response.dst_port = 40000;
        let out = t.on_flow(&response, 0);
        assert_eq!(
            (out[0]["SrcAddr"].as_str(), out[0]["DstPort"].as_u64()),
            (Some("198.18.0.1"), Some(53))
        );
    }

    #[test]
    fn rst_ends_it_as_refused_or_reset() {
        let mut t = tracker(LogTypes::EndedConversations);
        t.on_flow(&flow(true, 74, 1, SYN, 1_000), 1_000);
        t.on_flow(&flow(false, 54, 1, RST | ACK | RST_ACK, 1_000), 1_000);
        let refused = t.tick(7_000);
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0]["CloseCause"], "refused");

        t.on_flow(&flow(true, 500, 5, SYN | ACK, 10_000), 10_000);
        t.on_flow(
            &flow(false, 500, 5, SYN | ACK | SYN_ACK | RST, 10_000),
            10_000,
        );
        assert_eq!(t.tick(16_000)[0]["CloseCause"], "reset");
    }

    #[test]
    fn the_kernels_outcome_wins_and_idle_conversations_expire_on_the_timer() {
        let mut t = tracker(LogTypes::EndedConversations);
        let mut syn = flow(true, 74, 2, SYN, 1_000);
        t.on_flow(&syn, 1_000);
        syn.conn_outcome = Some(flowlens_model::vocab::ConnOutcome::TimedOut);
        syn.packets = 0;
        t.on_flow(&syn, 3_000);
        assert_eq!(t.tick(8_001)[0]["CloseCause"], "timed_out");

        let mut icmp = flow(true, 98, 1, 0, 20_000);
        icmp.proto = 1;
        t.on_flow(&icmp, 20_000);
        assert!(t.tick(29_000).is_empty());
        assert_eq!(t.tick(30_000)[0]["CloseCause"], "idle");
    }

    #[test]
    fn heartbeats_per_protocol_and_the_bound_is_counted() {
        let mut config = TrackerConfig {
            log_types: LogTypes::Conversations,
            max_connections_tracked: 1,
            ..Default::default()
        };
        config.per_protocol.insert(
            6,
            Timeouts {
                heartbeat_ms: 1_000,
                end_ms: 60_000,
                terminating_ms: 5_000,
            },
        );
        let mut t = JsonTracker(ConversationTracker::new(config));
        t.on_flow(&flow(true, 1, 1, ACK, 0), 0);
        assert_eq!(of_type(&t.tick(1_500), "heartbeat").len(), 1);
        let mut other = flow(true, 1, 1, ACK, 0);
        other.src_port = 40001;
        assert!(t.on_flow(&other, 2_000).is_empty());
        assert_eq!(t.counters.conversations_dropped, 1);
        let flushed = t.flush();
        assert_eq!(flushed[0]["CloseCause"], "active");
    }

    #[test]
    fn rtt_drops_and_dns_outcome_are_summarised() {
        let mut t = tracker(LogTypes::EndedConversations);
        let mut a = flow(true, 100, 1, ACK, 0);
        a.time_flow_rtt_ns = Some(100_000);
        a.pkt_drop_packets = Some(2);
        let mut b = flow(false, 100, 1, ACK, 0);
        b.time_flow_rtt_ns = Some(300_000);
        b.tcp_retransmits = Some(3);
        b.dns_flags_response_code = Some("NXDomain".into());
        t.on_flow(&a, 0);
        t.on_flow(&b, 0);
        let end = &t.flush()[0];
        assert_eq!(
            (
                end["TimeFlowRttMinNs"].as_u64(),
                end["TimeFlowRttAvgNs"].as_u64(),
                end["TimeFlowRttMaxNs"].as_u64()
            ),
            (Some(100_000), Some(200_000), Some(300_000))
        );
        assert_eq!(end["PktDropPackets"], 2);
        assert_eq!(end["TcpRetransmits"], 3);
        assert_eq!(end["DnsFlagsResponseCode"], "NXDomain");
    }
}
