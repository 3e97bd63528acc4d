//! Who held an address when: the labels of pods, services and nodes by
//! address over time, so that a flow is labelled with the object that held
//! its address at the flow's time.
//!
//! In a cluster addresses are reused: a pod is deleted and a new one gets
//! its address seconds later, while flows of the old pod are still on their
//! way (an agent evicts every few seconds, a collector may replay its log).
//! Each address keeps its tenancies in order; a released one stays as a
//! tombstone for late flows until `tombstone_ms` after its end. Times are
//! wall-clock milliseconds (flow times, and the API's object times).

use flowlens_model::SideLabels;
use std::net::IpAddr;

/// Maps keyed by addresses (looked up twice per flow) and object numbers:
/// foldhash, not SipHash; the keys come from the API, not from packets.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Clock skew and timestamp resolution allowed between a flow's time and
/// an object's (the API's times have one-second resolution).
pub const SKEW_MS: i64 = 2_000;

/// How long after an object's release (our own clock, when its delete was
/// seen) a flow may still be its: the skew between an agent's clock and
/// ours. Its flows began before it was deleted, and its delete is seen
/// after its containers are gone; a flow beginning later is someone
/// else's, and never named after it.
pub const RELEASE_SKEW_MS: i64 = 500;

/// One object's hold on one address.
#[derive(Debug, Clone)]
struct Tenancy {
    /// The object (its uid): the same object updating its labels keeps its
    /// tenancy.
    owner: u64,
    labels: SideLabels,
    since_ms: i64,
    /// When it let the address go (None: it still holds it).
    until_ms: Option<i64>,
}

impl Tenancy {
    fn holds_at(&self, t_ms: i64) -> bool {
        self.until_ms.is_none_or(|until| t_ms < until)
    }
}

/// Addresses' tenancies, and which addresses each object holds.
#[derive(Debug, Default)]
pub struct Tenancies {
    /// Per address, in order of `since_ms` (they do not overlap).
    by_address: HashMap<IpAddr, Vec<Tenancy>>,
    by_owner: HashMap<u64, Vec<IpAddr>>,
    tombstone_ms: i64,
}

impl Tenancies {
    /// Released addresses keep their labels for flows up to `tombstone_ms`
    /// after the release.
    pub fn new(tombstone_ms: i64) -> Tenancies {
        Tenancies {
            tombstone_ms,
            ..Tenancies::default()
        }
    }

    /// Object `owner` holds `addresses` with `labels` from `since_ms` (its
    /// creation, or when it was learned). An address it no longer lists is
    /// released at `now_ms`; an address an older object still held is
    /// taken from it at `since_ms` (the previous holder's delete was not
    /// seen yet: its flows after that time are the new holder's), one a
    /// newer object holds is left to it.
    pub fn hold(
        &mut self,
        owner: u64,
        addresses: &[IpAddr],
        labels: &SideLabels,
        since_ms: i64,
        now_ms: i64,
    ) {
        let held = self.by_owner.remove(&owner).unwrap_or_default();
        for released in held.iter().filter(|a| !addresses.contains(a)) {
            self.release_one(owner, *released, now_ms);
        }
        for &address in addresses {
            let list = self.by_address.entry(address).or_default();
            match list.last_mut() {
                Some(last) if last.owner == owner && last.until_ms.is_none() => {
                    if !last.labels.same(labels) {
                        last.labels = labels.clone();
                    }
                }
                // A holder newer than this object keeps the address: a
                // terminating pod's late status still lists the address its
                // successor already has.
                Some(last) if last.owner != owner && last.since_ms > since_ms => {}
                previous => {
                    // Never before the previous tenancy began: the list
                    // stays in order whatever the objects' clocks say.
                    let floor = previous.as_ref().map_or(i64::MIN, |p| p.since_ms);
                    let since = since_ms.max(floor);
                    if let Some(p) = previous
                        && p.until_ms.is_none_or(|until| until > since)
                    {
                        p.until_ms = Some(since);
                    }
                    list.push(Tenancy {
                        owner,
                        labels: labels.clone(),
                        since_ms: since,
                        until_ms: None,
                    });
                }
            }
        }
        if !addresses.is_empty() {
            self.by_owner.insert(owner, addresses.to_vec());
        }
    }

    /// Object `owner` is gone at `at_ms`: its addresses become tombstones.
    pub fn release(&mut self, owner: u64, at_ms: i64) {
        for address in self.by_owner.remove(&owner).unwrap_or_default() {
            self.release_one(owner, address, at_ms);
        }
    }

    fn release_one(&mut self, owner: u64, address: IpAddr, at_ms: i64) {
        if let Some(last) = self.by_address.get_mut(&address).and_then(|l| l.last_mut())
            && last.owner == owner
            && last.until_ms.is_none()
        {
            last.until_ms = Some(at_ms.max(last.since_ms));
        }
    }

    /// The labels of whoever held `address` at `t_ms`: the tenancy that
    /// covers it; else the nearer of one that began within `SKEW_MS` after
    /// it (an object learned a moment after its first packets) and one that
    /// ended within `RELEASE_SKEW_MS` before (a late flow of a released
    /// address).
    pub fn labels_at(&self, address: IpAddr, t_ms: i64) -> Option<&SideLabels> {
        let list = self.by_address.get(&address)?;
        let after = list.partition_point(|t| t.since_ms <= t_ms);
        let before = after.checked_sub(1).map(|i| &list[i]);
        if let Some(t) = before
            && t.holds_at(t_ms)
        {
            return Some(&t.labels);
        }
        let ended = before
            .and_then(|t| Some((t_ms - t.until_ms?, t)))
            .filter(|(distance, _)| *distance <= RELEASE_SKEW_MS);
        let begins = list
            .get(after)
            .map(|t| (t.since_ms - t_ms, t))
            .filter(|(distance, _)| *distance <= SKEW_MS);
        [begins, ended]
            .into_iter()
            .flatten()
            .min_by_key(|(distance, _)| *distance)
            .map(|(_, t)| &t.labels)
    }

    /// Forgets tombstones older than `tombstone_ms` at `now_ms`.
    pub fn expire(&mut self, now_ms: i64) {
        let oldest = now_ms - self.tombstone_ms;
        self.by_address.retain(|_, list| {
            list.retain(|t| t.until_ms.is_none_or(|until| until >= oldest));
            !list.is_empty()
        });
    }

    /// Addresses with a tenancy, live or tombstone.
    pub fn addresses(&self) -> usize {
        self.by_address.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowlens_model::EndpointLabels;

    fn pod(name: &str) -> SideLabels {
        EndpointLabels {
            name: Some(name.into()),
            kind: Some("Pod".into()),
            ..Default::default()
        }
        .into()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn name_at(t: &Tenancies, address: &str, at: i64) -> Option<String> {
        t.labels_at(ip(address), at)
            .and_then(|l| l.name.as_deref().map(str::to_string))
    }

    #[test]
    fn a_reused_address_is_the_old_pods_before_and_the_new_pods_after() {
        let mut t = Tenancies::new(60_000);
        let a = ip("198.18.1.5");
        t.hold(1, &[a], &pod("old"), 10_000, 10_500);
        t.release(1, 50_000);
        t.hold(2, &[a], &pod("new"), 53_000, 53_400);
        assert_eq!(name_at(&t, "198.18.1.5", 20_000).as_deref(), Some("old"));
        assert_eq!(name_at(&t, "198.18.1.5", 49_999).as_deref(), Some("old"));
        assert_eq!(name_at(&t, "198.18.1.5", 53_000).as_deref(), Some("new"));
        assert_eq!(name_at(&t, "198.18.1.5", 90_000).as_deref(), Some("new"));
        // Between the two: a moment after the old pod's end it is still
        // its late flow (clock skew); then nobody's until just before the
        // new one.
        assert_eq!(name_at(&t, "198.18.1.5", 50_400).as_deref(), Some("old"));
        assert_eq!(name_at(&t, "198.18.1.5", 50_700), None);
        assert_eq!(name_at(&t, "198.18.1.5", 52_500).as_deref(), Some("new"));
        t.release(2, 95_000);
        assert_eq!(name_at(&t, "198.18.1.5", 200_000), None);
    }

    #[test]
    fn a_new_holder_takes_the_address_even_before_the_old_ones_delete() {
        let mut t = Tenancies::new(60_000);
        let a = ip("fd00:198:18::7");
        t.hold(1, &[a], &pod("old"), 0, 0);
        // The new pod was created at 30 s; the old one's delete comes later.
        t.hold(2, &[a], &pod("new"), 30_000, 31_000);
        // The old pod's late status update still lists the address.
        t.hold(1, &[a], &pod("old"), 0, 35_000);
        t.release(1, 40_000);
        assert_eq!(
            name_at(&t, "fd00:198:18::7", 29_000).as_deref(),
            Some("old")
        );
        assert_eq!(
            name_at(&t, "fd00:198:18::7", 30_000).as_deref(),
            Some("new")
        );
        assert_eq!(
            name_at(&t, "fd00:198:18::7", 45_000).as_deref(),
            Some("new"),
            "the late delete does not end the new tenancy"
        );
    }

    #[test]
    fn a_tombstone_serves_late_flows_until_it_expires() {
        let mut t = Tenancies::new(30_000);
        t.hold(1, &[ip("198.18.1.9")], &pod("gone"), 0, 0);
        t.release(1, 10_000);
        t.expire(39_000);
        assert_eq!(name_at(&t, "198.18.1.9", 9_000).as_deref(), Some("gone"));
        t.expire(41_000);
        assert_eq!(name_at(&t, "198.18.1.9", 9_000), None);
        assert_eq!(t.addresses(), 0);
    }

    #[test]
    fn an_update_keeps_the_tenancy_and_dropped_addresses_are_released() {
        let mut t = Tenancies::new(60_000);
        let (v4, v6) = (ip("198.18.1.1"), ip("fd00:198:18::1"));
        t.hold(1, &[v4, v6], &pod("web"), 1_000, 1_000);
        t.hold(1, &[v4], &pod("web-relabelled"), 1_000, 5_000);
        assert_eq!(
            name_at(&t, "198.18.1.1", 2_000).as_deref(),
            Some("web-relabelled")
        );
        assert_eq!(name_at(&t, "fd00:198:18::1", 4_000).as_deref(), Some("web"));
        assert_eq!(
            name_at(&t, "fd00:198:18::1", 20_000),
            None,
            "released at 5 s"
        );
        // A flow a moment before the object was known is its.
        assert_eq!(
            name_at(&t, "198.18.1.1", 0).as_deref(),
            Some("web-relabelled")
        );
        assert_eq!(name_at(&t, "198.18.1.1", -5_000), None);
    }
}
