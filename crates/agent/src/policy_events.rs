//! NetworkEvents: NFLOG messages joined with the kernel's netfilter drops of
//! the same flow, so that each logged rule is reported with its verdict.
//!
//! The log message and the drop of a packet reach the agent by different
//! paths (a netlink socket, the extras map) and can fall on either side of
//! an eviction. An event whose flow shows no policy drop yet is held for one
//! eviction; the drop, if any, shows by then.

use crate::extras::FlowExtras;
use crate::kernel_types::{FlowKey, extra_bits};
use crate::nflog::NflogEvent;
use flowlens_model::NetworkEvent;
use std::collections::{HashMap, HashSet};

#[derive(Default)]
pub struct PolicyEvents {
    held: Vec<NflogEvent>,
    /// Flows with a netfilter drop in the previous eviction.
    recent_drops: HashSet<FlowKey>,
}

impl PolicyEvents {
    /// Puts `new` events (and those held from the last eviction) onto this
    /// eviction's `extras`. With `last`, nothing is held back.
    pub fn resolve(
        &mut self,
        new: impl IntoIterator<Item = NflogEvent>,
        extras: &mut HashMap<FlowKey, FlowExtras>,
        netfilter_reason: u32,
        last: bool,
    ) {
        let current_drops: HashSet<FlowKey> = extras
            .iter()
            .filter(|(_, x)| {
                x.kernel.is_some_and(|k| {
                    k.present & extra_bits::DROPS != 0 && k.drop_latest_reason == netfilter_reason
                })
            })
            .map(|(identity, _)| *identity)
            .collect();
        let held = std::mem::take(&mut self.held);
        let candidates = held
            .into_iter()
            .map(|e| (e, true))
            .chain(new.into_iter().map(|e| (e, false)));
        for (event, was_held) in candidates {
            let dropped = current_drops.contains(&event.identity)
                || self.recent_drops.contains(&event.identity);
            if !dropped && !was_held && !last {
                self.held.push(event);
                continue;
            }
            let entry = extras.entry(event.identity).or_default();
            entry.user_mono_ns = entry.user_mono_ns.max(event.seen_mono_ns);
            let action = if dropped { "drop" } else { "allow" };
            let known = entry.events.iter().any(|e| {
                e.name == event.prefix
                    && e.direction == event.direction
                    && e.group == event.group
                    && e.action == action
            });
            if !known {
                entry.events.push(NetworkEvent {
                    action: action.to_string(),
                    name: event.prefix,
                    direction: event.direction.to_string(),
                    group: event.group,
                });
            }
        }
        self.recent_drops = current_drops;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel_types::FlowExtra;

    fn event(port: u16) -> NflogEvent {
        let identity = FlowKey {
            dst_port: port,
            protocol: 17,
            ..Default::default()
        };
        NflogEvent {
            identity,
            prefix: "deny".into(),
            direction: "ingress",
            group: 2,
            seen_mono_ns: 1,
        }
    }

    fn dropped(port: u16) -> (FlowKey, FlowExtras) {
        let kernel = FlowExtra {
            present: extra_bits::DROPS,
            drop_latest_reason: 12,
            ..Default::default()
        };
        (
            event(port).identity,
            FlowExtras {
                kernel: Some(kernel),
                ..Default::default()
            },
        )
    }

    #[test]
    fn log_before_the_drops_eviction_is_held_and_gets_the_verdict() {
        let mut policy = PolicyEvents::default();
        let mut first = HashMap::new();
        policy.resolve([event(80)], &mut first, 12, false);
        assert!(first.is_empty(), "held");
        let mut second: HashMap<_, _> = [dropped(80)].into();
        policy.resolve([], &mut second, 12, false);
        assert_eq!(second[&event(80).identity].events[0].action, "drop");
    }

    #[test]
    fn log_after_the_drops_eviction_still_says_drop_and_unmatched_logs_allow() {
        let mut policy = PolicyEvents::default();
        let mut first: HashMap<_, _> = [dropped(80)].into();
        policy.resolve([], &mut first, 12, false);
        let mut second = HashMap::new();
        policy.resolve([event(80), event(443)], &mut second, 12, false);
        assert_eq!(second[&event(80).identity].events[0].action, "drop");
        assert!(
            !second.contains_key(&event(443).identity),
            "held one eviction"
        );
        let mut third = HashMap::new();
        policy.resolve([], &mut third, 12, true);
        assert_eq!(third[&event(443).identity].events[0].action, "allow");
    }
}
