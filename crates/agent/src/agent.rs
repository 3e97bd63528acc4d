//! The agent's run loop: attach to interfaces as they come and go, read the
//! ring buffer, evict flows on the timer, and hand records to a sink.

use crate::attach::{AttachMode, Attachments};
use crate::clock::MonoToWall;
use crate::config::AgentSettings;
use crate::extras::{ExtrasNames, FlowExtras};
use crate::interfaces::{LinkWatcher, list_interfaces};
use crate::kernel::{FlowKernel, KernelOptions};
use crate::kernel_types::{FlowEvent, FlowKey, FlowMetrics};
use crate::merge::{FlowMerger, InterfaceNames, RecordContext};
use crate::stats::AgentStats;
use anyhow::{Context, Result, bail};
use aya::maps::{MapData, RingBuf};
use flowlens_model::FlowRecord;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;
use tokio::io::unix::AsyncFd;

/// Interfaces are also listed on this period, in case a netlink event is lost.
const RESCAN_PERIOD: Duration = Duration::from_secs(2);

pub struct FlowAgent {
    settings: AgentSettings,
    kernel: FlowKernel,
    events: AsyncFd<RingBuf<MapData>>,
    attachments: Attachments,
    /// (index, name) pairs that failed to attach, not retried until they change.
    failed: HashSet<(u32, String)>,
    /// Packets received through the ring buffer since the last eviction.
    overflow: HashMap<FlowKey, FlowMetrics>,
    merger: FlowMerger,
    agent_ip: std::net::IpAddr,
    /// NetworkEvents: NFLOG listeners, one per network namespace.
    nflog: Option<crate::nflog::NflogWatcher>,
    /// NetworkEvents waiting for their flow's verdict.
    policy_events: crate::policy_events::PolicyEvents,
    netfilter_drop_reason: u32,
    /// enum skb_drop_reason of the running kernel (empty if BTF lacks it).
    drop_reasons: HashMap<u64, String>,
    stats: AgentStats,
    /// A copy of `stats` for readers outside the run loop (metrics).
    shared_stats: std::sync::Arc<std::sync::Mutex<AgentStats>>,
    /// Called when an eviction has handed all its records on (see
    /// `after_each_eviction`).
    after_eviction: Option<fn()>,
}

impl InterfaceNames for Attachments {
    fn name_of(&self, if_index: u32) -> Option<String> {
        Attachments::name_of(self, if_index)
    }
    fn is_watched(&self, if_index: u32) -> bool {
        self.is_attached(if_index)
    }
}

impl FlowAgent {
    pub fn new(settings: AgentSettings) -> Result<FlowAgent> {
        use crate::config::Feature;
        let tracing = settings.features.iter().any(|f| {
            matches!(
                f,
                Feature::FlowRTT
                    | Feature::PacketDrop
                    | Feature::NetworkEvents
                    | Feature::TCPRetransmits
                    | Feature::ConnectionTracking
            )
        });
        let missing = crate::host::missing_capabilities(
            tracing,
            settings.features.contains(&Feature::NetworkEvents),
        );
        if !missing.is_empty() {
            bail!(
                "flowlens agent lacks {} (run it as root, or grant these capabilities)",
                missing.join(", ")
            );
        }
        let drop_reasons = crate::btf_enums::kernel_drop_reasons().unwrap_or_else(|e| {
            tracing::warn!("drop reasons unavailable ({e:#}); drops are reported by number");
            HashMap::new()
        });
        let reason_value = |wanted: &str| {
            drop_reasons
                .iter()
                .find(|(_, name)| name.as_str() == wanted)
                .map(|(value, _)| *value as u32)
                .unwrap_or(u32::MAX)
        };
        let options = KernelOptions {
            sampling: settings.sampling,
            max_flows: settings.cache_max_flows,
            features: settings.features.clone(),
            dns_ports: settings.dns_ports.clone(),
            netfilter_drop_reason: reason_value("SKB_DROP_REASON_NETFILTER_DROP"),
            queue_purge_reason: reason_value("SKB_DROP_REASON_QUEUE_PURGE"),
        };
        let (kernel, events) = FlowKernel::load(&options)?;
        for failure in &kernel.hook_failures {
            tracing::warn!(
                "kernel hook tp_btf/{} unavailable ({}); the features using it report nothing",
                failure.tracepoint,
                failure.error
            );
        }
        if !kernel.hooks_attached.is_empty() {
            tracing::info!(programs = ?kernel.hooks_attached, "feature hooks attached");
        }
        let mut stats = AgentStats {
            feature_hooks_attached: kernel.hooks_attached.join(","),
            feature_hook_failures: kernel.hook_failures.len() as u64,
            ..AgentStats::default()
        };
        stats.features = settings
            .features
            .iter()
            .map(|f| f.name())
            .collect::<Vec<_>>()
            .join(",");
        let nflog = settings
            .features
            .contains(&crate::config::Feature::NetworkEvents)
            .then(|| crate::nflog::NflogWatcher::new(settings.nflog_groups.clone()));
        Ok(FlowAgent {
            policy_events: Default::default(),
            netfilter_drop_reason: options.netfilter_drop_reason,
            nflog,
            drop_reasons,
            settings,
            kernel,
            events: readable_fd(events).context("watching the flow ring buffer")?,
            attachments: Attachments::default(),
            failed: HashSet::new(),
            overflow: HashMap::new(),
            merger: FlowMerger::default(),
            agent_ip: crate::host::agent_ip(),
            shared_stats: Default::default(),
            after_eviction: None,
            stats,
        })
    }

    /// Names this host by `ip` in records (AgentIP), not by its first
    /// address.
    pub fn with_agent_ip(mut self, ip: std::net::IpAddr) -> FlowAgent {
        self.agent_ip = ip;
        self
    }

    /// Runs `hook` after each eviction, once its records are handed on. An
    /// eviction frees a burst of memory and the agent then idles until the
    /// next one; the binary uses this to hand that memory back to the
    /// system at once, where its allocator would keep it for later.
    pub fn after_each_eviction(mut self, hook: fn()) -> FlowAgent {
        self.after_eviction = Some(hook);
        self
    }

    /// Attaches to the selected interfaces now (`run` does it as it
    /// starts): a successor to running programs is attached the moment
    /// they detach.
    pub fn attach(&mut self) {
        self.sync_interfaces();
    }

    /// The address naming this host in records (AgentIP).
    pub fn agent_ip(&self) -> std::net::IpAddr {
        self.agent_ip
    }

    /// Publishes the counters into `handle` (a previous agent's, when
    /// settings are applied by building a new one) instead of its own.
    pub fn with_stats_handle(
        mut self,
        handle: std::sync::Arc<std::sync::Mutex<AgentStats>>,
    ) -> FlowAgent {
        self.shared_stats = handle;
        self
    }

    /// The agent's counters as of its latest eviction or interface change,
    /// readable while it runs.
    pub fn stats_handle(&self) -> std::sync::Arc<std::sync::Mutex<AgentStats>> {
        self.shared_stats.clone()
    }

    /// Runs until `shutdown` completes, then evicts everything still held
    /// and returns the final counters. `sink` gets each eviction's records.
    pub async fn run(
        mut self,
        mut sink: impl FnMut(&[FlowRecord]),
        shutdown: impl Future<Output = ()>,
    ) -> Result<AgentStats> {
        self.sync_interfaces();
        let watcher = LinkWatcher::new().context("subscribing to interface changes")?;
        let period = self.settings.cache_active_timeout;
        let mut evict_timer =
            tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        evict_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rescan_timer = tokio::time::interval(RESCAN_PERIOD);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = evict_timer.tick() => self.evict(false, &mut sink)?,
                changed = watcher.changed() => {
                    changed.context("reading interface changes")?;
                    self.sync_interfaces();
                }
                _ = rescan_timer.tick() => self.sync_interfaces(),
                guard = self.events.readable_mut() => {
                    let mut guard = guard.context("polling the flow ring buffer")?;
                    let (events, overflow, stats) = (guard.get_inner_mut(), &mut self.overflow, &mut self.stats);
                    drain_ring(events, overflow, stats);
                    guard.clear_ready();
                }
            }
        }
        // Stop accounting first so nothing arrives after the last eviction,
        // then drain both generations and the ring buffer.
        self.attachments.detach_all();
        self.evict(false, &mut sink)?;
        self.evict(true, &mut sink)?;
        self.refresh_stats();
        Ok(self.stats)
    }

    /// Drains the table's current half and hands its records to `sink`, a
    /// chunk at a time.
    fn evict(&mut self, last: bool, sink: &mut dyn FnMut(&[FlowRecord])) -> Result<()> {
        let drained = self.kernel.swap_and_drain()?;
        // After the grace period every ring buffer record of the old
        // generation is committed: read them into this eviction.
        drain_ring(self.events.get_mut(), &mut self.overflow, &mut self.stats);
        self.stats.evictions += 1;
        self.stats.map_entries_drained += drained.len() as u64;
        // Overflowed packets' entries join the table's (the merge sums a
        // key seen twice).
        let mut entries = drained;
        entries.extend(self.overflow.drain());
        let mut extras: HashMap<FlowKey, FlowExtras> = HashMap::new();
        for (identity, kernel) in self.kernel.drain_extras() {
            extras.entry(identity).or_default().kernel = Some(kernel);
        }
        if let Some(nflog) = &self.nflog {
            let netfilter = self.netfilter_drop_reason;
            self.policy_events
                .resolve(nflog.events.try_iter(), &mut extras, netfilter, last);
            self.stats.nflog_lost = nflog.lost.load(std::sync::atomic::Ordering::Relaxed);
        }
        if self
            .settings
            .features
            .contains(&crate::config::Feature::DNSTracking)
        {
            let unanswered = self
                .kernel
                .take_unanswered_dns(self.settings.dns_query_timeout);
            self.stats.dns_unanswered += unanswered.len() as u64;
            for (identity, dns_id) in unanswered {
                let entry = extras.entry(identity).or_default();
                entry.dns_unanswered = Some(dns_id);
                entry.user_mono_ns = crate::clock::monotonic_now_ns();
            }
        }
        let ctx = RecordContext {
            clock: MonoToWall::now(),
            agent_ip: self.agent_ip,
            sampling: self.settings.sampling,
            names: ExtrasNames {
                drop_reasons: &self.drop_reasons,
            },
        };
        self.stats.records_evicted +=
            self.merger
                .merge(entries, extras, &self.attachments, &ctx, sink);
        self.refresh_stats();
        if let Some(hook) = self.after_eviction {
            hook();
        }
        Ok(())
    }

    fn refresh_stats(&mut self) {
        let k = self.kernel.counters();
        let s = &mut self.stats;
        s.map_full_packets = k.map_full_packets;
        s.lost_packets = k.lost_packets;
        s.lost_bytes = k.lost_bytes;
        s.truncated_headers = k.truncated_headers;
        s.feature_events_lost = k.extras_full;
        s.dns_pending_full = k.dns_pending_full;
        s.in_flight_duplicates = self.merger.counters.in_flight_duplicates;
        s.loopback_extras_skipped = self.merger.counters.loopback_extras_skipped;
        s.primary_changes = self.merger.counters.primary_changes;
        s.interfaces_attached = self.attachments.attached_indexes().len() as u64;
        s.interfaces_attached_total = self.attachments.attached_total;
        s.interfaces_detached_total = self.attachments.detached_total;
        s.attach_failures = self.attachments.attach_failures;
        s.attach_mode = match self.attachments.last_mode {
            Some(AttachMode::Tcx) => "tcx".into(),
            Some(AttachMode::Netlink) => "netlink".into(),
            None => "none".into(),
        };
        if let Ok(mut shared) = self.shared_stats.lock() {
            shared.clone_from(&self.stats);
        }
    }

    /// Attaches to new selected interfaces and forgets vanished ones.
    fn sync_interfaces(&mut self) {
        if let Some(nflog) = &mut self.nflog {
            nflog.sync_namespaces();
        }
        let present = match list_interfaces() {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!("cannot list interfaces: {e}");
                return;
            }
        };
        let present_pairs: HashSet<(u32, String)> =
            present.iter().map(|i| (i.index, i.name.clone())).collect();
        for index in self.attachments.attached_indexes() {
            let name = self.attachments.name_of(index).unwrap_or_default();
            if !present_pairs.contains(&(index, name))
                && let Some(name) = self.attachments.forget(index)
            {
                tracing::info!(interface = %name, "interface gone; forgotten");
            }
        }
        self.failed.retain(|pair| present_pairs.contains(pair));
        for iface in present {
            let pair = (iface.index, iface.name.clone());
            if self.attachments.is_attached(iface.index)
                || !self.settings.interfaces.selects(&iface.name)
                || self.failed.contains(&pair)
            {
                continue;
            }
            match self.attachments.attach(&mut self.kernel.ebpf, &iface) {
                Ok(()) => tracing::info!(interface = %iface.name, "attached"),
                Err(e) => {
                    tracing::warn!("{e:#}");
                    self.failed.insert(pair);
                }
            }
        }
        self.refresh_stats();
    }
}

/// Registers an fd-owning value with the runtime for readability.
pub(crate) fn readable_fd<T: std::os::fd::AsRawFd>(inner: T) -> std::io::Result<AsyncFd<T>> {
    // SAFETY: `inner` owns its file descriptor, which stays open for as long
    // as the AsyncFd (and so the registration) lives.
    unsafe { AsyncFd::register_with_interest(inner, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into())
}

/// Folds every pending ring buffer record into `overflow`.
fn drain_ring(
    events: &mut RingBuf<MapData>,
    overflow: &mut HashMap<FlowKey, FlowMetrics>,
    stats: &mut AgentStats,
) {
    while let Some(item) = events.next() {
        stats.ringbuf_records += 1;
        match FlowEvent::from_bytes(&item) {
            Some(ev) => overflow.entry(ev.key).or_default().absorb(&ev.metrics),
            None => stats.ringbuf_malformed += 1,
        }
    }
}
