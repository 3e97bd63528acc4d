//! The loaded eBPF flow object: its programs and maps, the shared clock, and
//! the generation swap that lets the agent drain flows without racing the
//! packets.

use crate::clock::monotonic_now_ns;
use crate::config::Feature;
use crate::kernel_types::{
    AgentState, DnsPendingKey, FlowExtra, FlowKey, FlowMetrics, FlowSlot, SLOT_EMPTY, SLOT_READY,
    counter_slot,
};
use crate::shared_map::SharedArray;
use anyhow::{Context, Result};
use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{HashMap, MapData, PerCpuArray, RingBuf},
    programs::BtfTracePoint,
};
use std::ptr::{addr_of, addr_of_mut};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::time::Duration;

/// The compiled flow programs (ebpf/flow.bpf.c), built by `make -C ebpf`.
pub static FLOW_OBJECT: &[u8] = aya::include_bytes_aligned!("../../../ebpf/flow.bpf.o");

pub const INGRESS_PROGRAM: &str = "flowlens_tc_ingress";
pub const EGRESS_PROGRAM: &str = "flowlens_tc_egress";
pub const EMPTY_PROGRAM: &str = "flowlens_tc_empty";

/// Tracepoint programs: (program, kernel tracepoint, features that need it).
pub const TRACEPOINT_PROGRAMS: &[(&str, &str, &[Feature])] = &[
    ("flowlens_tcp_probe", "tcp_probe", &[Feature::FlowRTT]),
    (
        "flowlens_sock_state",
        "inet_sock_set_state",
        &[Feature::FlowRTT, Feature::ConnectionTracking],
    ),
    (
        "flowlens_tcp_retransmit",
        "tcp_retransmit_skb",
        &[Feature::TCPRetransmits],
    ),
    (
        "flowlens_kfree_skb",
        "kfree_skb",
        &[Feature::PacketDrop, Feature::NetworkEvents],
    ),
];

/// How often the agent refreshes the clock that packets of known flows read.
const CLOCK_TICK: Duration = Duration::from_millis(1);

/// What the kernel side is loaded with.
#[derive(Debug, Clone)]
pub struct KernelOptions {
    pub sampling: u32,
    pub max_flows: u32,
    pub features: Vec<Feature>,
    /// DNS server ports DNSTracking watches (at most 4).
    pub dns_ports: Vec<u16>,
    /// enum skb_drop_reason values of NETFILTER_DROP and QUEUE_PURGE in the
    /// running kernel (u32::MAX when unknown).
    pub netfilter_drop_reason: u32,
    pub queue_purge_reason: u32,
}

/// A feature hook that could not be attached, and why.
#[derive(Debug, Clone)]
pub struct HookFailure {
    pub program: &'static str,
    pub tracepoint: &'static str,
    pub error: String,
}

/// Kernel-side counters, summed over CPUs.
#[derive(Debug, Clone, Copy, Default)]
pub struct KernelCounters {
    pub map_full_packets: u64,
    pub lost_packets: u64,
    pub lost_bytes: u64,
    pub truncated_headers: u64,
    pub extras_full: u64,
    pub dns_pending_full: u64,
}

/// Slots per generation for `max_flows` flows: a power of two with the load
/// factor at most 4/5, so that probe sequences stay short.
pub fn slots_per_generation(max_flows: u32) -> usize {
    (max_flows as usize * 5)
        .div_ceil(4)
        .next_power_of_two()
        .max(8)
}

pub struct FlowKernel {
    pub ebpf: Ebpf,
    table: SharedArray<FlowSlot>,
    extras: [HashMap<MapData, FlowKey, FlowExtra>; 2],
    dns_pending: HashMap<MapData, DnsPendingKey, u64>,
    /// Tracepoint programs attached, and the ones that failed.
    pub hooks_attached: Vec<&'static str>,
    pub hook_failures: Vec<HookFailure>,
    state: Arc<SharedArray<AgentState>>,
    slots: usize,
    counters: PerCpuArray<MapData, u64>,
    generation: u32,
    clock_stop: Arc<AtomicBool>,
}

impl FlowKernel {
    /// Loads the object, its TC programs (attached later, per interface) and
    /// the tracepoint programs of the enabled features (attached now).
    pub fn load(opts: &KernelOptions) -> Result<(FlowKernel, RingBuf<MapData>)> {
        let slots = slots_per_generation(opts.max_flows);
        let slot_mask = (slots - 1) as u32;
        let on = |f: Feature| u8::from(opts.features.contains(&f));
        let mut dns_ports = [0u16; 4];
        for (slot, port) in dns_ports.iter_mut().zip(&opts.dns_ports) {
            *slot = *port;
        }
        let extras_entries = opts.max_flows.max(4096);
        let mut ebpf = EbpfLoader::new()
            .override_global("sampling", &opts.sampling, true)
            .override_global("slot_mask", &slot_mask, true)
            .override_global("enable_rtt", &on(Feature::FlowRTT), true)
            .override_global("enable_conn", &on(Feature::ConnectionTracking), true)
            .override_global("enable_dns", &on(Feature::DNSTracking), true)
            .override_global("dns_ports", &dns_ports, true)
            .override_global("drops_all_reasons", &on(Feature::PacketDrop), true)
            .override_global("netfilter_drop_reason", &opts.netfilter_drop_reason, true)
            .override_global("queue_purge_reason", &opts.queue_purge_reason, true)
            .map_max_entries("flow_table", (2 * slots) as u32)
            .map_max_entries("extras_gen0", extras_entries)
            .map_max_entries("extras_gen1", extras_entries)
            .load(FLOW_OBJECT)
            .context("loading the eBPF flow object (are you root on a kernel with BTF?)")?;
        for name in [INGRESS_PROGRAM, EGRESS_PROGRAM] {
            let program: &mut aya::programs::SchedClassifier = ebpf
                .program_mut(name)
                .with_context(|| format!("program {name} missing from the eBPF object"))?
                .try_into()?;
            program
                .load()
                .with_context(|| format!("loading program {name}"))?;
        }
        let mut take = |name: &str| {
            ebpf.take_map(name)
                .with_context(|| format!("map {name} missing"))
        };
        let table = SharedArray::map(take("flow_table")?, 2 * slots)?;
        let state = Arc::new(SharedArray::map(take("agent_state")?, 1)?);
        let counters = PerCpuArray::try_from(take("agent_counters")?)?;
        let events = RingBuf::try_from(take("flow_events")?)?;
        let extras = [
            HashMap::try_from(take("extras_gen0")?)?,
            HashMap::try_from(take("extras_gen1")?)?,
        ];
        let dns_pending = HashMap::try_from(take("dns_pending")?)?;
        let clock_stop = Arc::new(AtomicBool::new(false));
        start_clock(state.clone(), clock_stop.clone());
        let mut kernel = FlowKernel {
            ebpf,
            table,
            extras,
            dns_pending,
            hooks_attached: Vec::new(),
            hook_failures: Vec::new(),
            state,
            slots,
            counters,
            generation: 0,
            clock_stop,
        };
        kernel.attach_feature_hooks(&opts.features)?;
        Ok((kernel, events))
    }

    /// Attaches the tracepoint programs the features need. A hook missing
    /// from this kernel disables what depends on it, and is reported.
    fn attach_feature_hooks(&mut self, features: &[Feature]) -> Result<()> {
        let needed: Vec<_> = TRACEPOINT_PROGRAMS
            .iter()
            .filter(|(_, _, users)| users.iter().any(|f| features.contains(f)))
            .collect();
        if needed.is_empty() {
            return Ok(());
        }
        let btf =
            Btf::from_sys_fs().context("reading the kernel's BTF (/sys/kernel/btf/vmlinux)")?;
        for (program, tracepoint, _) in needed {
            let result = (|| -> Result<()> {
                let prog: &mut BtfTracePoint = self
                    .ebpf
                    .program_mut(program)
                    .context("program missing from the object")?
                    .try_into()?;
                prog.load(tracepoint, &btf)?;
                prog.attach()?;
                Ok(())
            })();
            match result {
                Ok(()) => self.hooks_attached.push(program),
                Err(e) => self.hook_failures.push(HookFailure {
                    program,
                    tracepoint,
                    error: format!("{e:#}"),
                }),
            }
        }
        Ok(())
    }

    /// Drains the old generation's feature data (call right after
    /// `swap_and_drain`, which waited for the grace period).
    pub fn drain_extras(&mut self) -> Vec<(FlowKey, FlowExtra)> {
        let map = &mut self.extras[(self.generation ^ 1) as usize];
        let keys: Vec<FlowKey> = map.keys().filter_map(|k| k.ok()).collect();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            if let Ok(extra) = map.get(&key, 0) {
                out.push((key, extra));
            }
            let _ = map.remove(&key);
        }
        out
    }

    /// Removes DNS queries that waited longer than `timeout` for a response
    /// and returns them (query flow identity, DNS id).
    pub fn take_unanswered_dns(&mut self, timeout: Duration) -> Vec<(FlowKey, u16)> {
        let now = monotonic_now_ns();
        let expired: Vec<DnsPendingKey> = self
            .dns_pending
            .iter()
            .filter_map(|entry| entry.ok())
            .filter(|(_, sent)| now.saturating_sub(*sent) > timeout.as_nanos() as u64)
            .map(|(key, _)| key)
            .collect();
        expired
            .into_iter()
            .filter(|key| self.dns_pending.remove(key).is_ok())
            .map(|key| (key.query, key.id))
            .collect()
    }

    /// Points new packets at the other half of the table, waits until no
    /// program can still be writing the old half, and drains it. Exact: no
    /// update is lost. A key may appear twice (two CPUs created it at once);
    /// callers sum such entries.
    pub fn swap_and_drain(&mut self) -> Result<Vec<(FlowKey, FlowMetrics)>> {
        let old = self.generation as usize;
        self.generation ^= 1;
        let state = self.state.element(0);
        // SAFETY: a field of the mapped state; the kernel only reads it.
        unsafe { addr_of_mut!((*state).generation).write_volatile(self.generation) };
        fence(Ordering::SeqCst);
        wait_for_running_programs();
        let half = old * self.slots..(old + 1) * self.slots;
        // Counted first so the vector is allocated once, at its size: at
        // 100,000 flows growing it by doubling would hold up to twice that.
        let ready = |index: usize| {
            // SAFETY: a field of a mapped slot; volatile because the kernel
            // shares the memory (no program writes the old half any more).
            unsafe { addr_of!((*self.table.element(index)).state).read_volatile() == SLOT_READY }
        };
        let mut entries = Vec::with_capacity(half.clone().filter(|&i| ready(i)).count());
        for index in half {
            let slot = self.table.element(index);
            // SAFETY: no program writes the old half after the grace period;
            // volatile reads because the memory is shared with the kernel.
            unsafe {
                if addr_of!((*slot).state).read_volatile() != SLOT_READY {
                    continue;
                }
                entries.push((
                    addr_of!((*slot).key).read_volatile(),
                    addr_of!((*slot).metrics).read_volatile(),
                ));
                // A program that claims the slot rewrites key and metrics.
                addr_of_mut!((*slot).state).write_volatile(SLOT_EMPTY);
            }
        }
        fence(Ordering::SeqCst);
        Ok(entries)
    }

    pub fn counters(&self) -> KernelCounters {
        let sum = |slot: u32| -> u64 {
            self.counters
                .get(&slot, 0)
                .map(|values| values.iter().copied().sum())
                .unwrap_or(0)
        };
        debug_assert_eq!(self.counters.len(), counter_slot::COUNT);
        KernelCounters {
            map_full_packets: sum(counter_slot::MAP_FULL_PACKETS),
            lost_packets: sum(counter_slot::LOST_PACKETS),
            lost_bytes: sum(counter_slot::LOST_BYTES),
            truncated_headers: sum(counter_slot::TRUNCATED_HEADERS),
            extras_full: sum(counter_slot::EXTRAS_FULL),
            dns_pending_full: sum(counter_slot::DNS_PENDING_FULL),
        }
    }
}

impl Drop for FlowKernel {
    fn drop(&mut self) {
        self.clock_stop.store(true, Ordering::Relaxed);
    }
}

/// Publishes CLOCK_MONOTONIC (the clock of bpf_ktime_get_ns) to the kernel
/// programs every millisecond. Reading a clock helper costs a packet more
/// than the rest of its accounting on kernels with return-thunk mitigations;
/// packets of known flows read this value instead, and new flows still take
/// the exact time.
fn start_clock(state: Arc<SharedArray<AgentState>>, stop: Arc<AtomicBool>) {
    let publish = move || {
        let field = state.element(0);
        // SAFETY: a field of the mapped state; the kernel only reads it.
        unsafe { addr_of_mut!((*field).clock_ns).write_volatile(monotonic_now_ns()) };
    };
    publish();
    std::thread::Builder::new()
        .name("flowlens-clock".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                publish();
                std::thread::sleep(CLOCK_TICK);
            }
        })
        .expect("starting the clock thread");
}

/// Waits for an RCU grace period: TC programs run inside RCU read-side
/// sections, so once it ends every program that read the old generation has
/// returned. membarrier(MEMBARRIER_CMD_GLOBAL) is synchronize_rcu() from user
/// space; on nohz_full kernels it is refused and we wait generously instead.
fn wait_for_running_programs() {
    const MEMBARRIER_CMD_GLOBAL: libc::c_long = 1;
    // SAFETY: membarrier takes two integer arguments and touches no memory of ours.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            MEMBARRIER_CMD_GLOBAL,
            0 as libc::c_long,
        )
    };
    if rc != 0 {
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_sizing_keeps_load_under_four_fifths() {
        assert_eq!(slots_per_generation(16), 32);
        assert_eq!(slots_per_generation(100_000), 131_072);
        assert_eq!(slots_per_generation(1), 8);
        for flows in [10, 1000, 104_858, 100_000] {
            assert!(flows as usize * 5 <= slots_per_generation(flows) * 4);
        }
    }
}
