//! The loaded eBPF flow object: its programs and maps, and the generation
//! swap that lets the agent drain flows without racing the packets.

use crate::kernel_types::{FlowKey, FlowMetrics, counter_slot};
use anyhow::{Context, Result};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, PerCpuArray, RingBuf},
};

/// The compiled flow programs (ebpf/flow.bpf.c), built by `make -C ebpf`.
pub static FLOW_OBJECT: &[u8] = aya::include_bytes_aligned!("../../../ebpf/flow.bpf.o");

pub const INGRESS_PROGRAM: &str = "flowlens_tc_ingress";
pub const EGRESS_PROGRAM: &str = "flowlens_tc_egress";
pub const EMPTY_PROGRAM: &str = "flowlens_tc_empty";

/// Kernel-side counters, summed over CPUs.
#[derive(Debug, Clone, Copy, Default)]
pub struct KernelCounters {
    pub map_full_packets: u64,
    pub lost_packets: u64,
    pub lost_bytes: u64,
    pub truncated_headers: u64,
}

pub struct FlowKernel {
    pub ebpf: Ebpf,
    flow_maps: [HashMap<MapData, FlowKey, FlowMetrics>; 2],
    generation_map: Array<MapData, u32>,
    counters: PerCpuArray<MapData, u64>,
    generation: u32,
}

impl FlowKernel {
    /// Loads the object and its programs (not attached yet).
    pub fn load(sampling: u32, max_flows: u32) -> Result<(FlowKernel, RingBuf<MapData>)> {
        let mut ebpf = EbpfLoader::new()
            .override_global("sampling", &sampling, true)
            .map_max_entries("flows_gen0", max_flows)
            .map_max_entries("flows_gen1", max_flows)
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
        let flow_maps = [
            HashMap::try_from(take("flows_gen0")?)?,
            HashMap::try_from(take("flows_gen1")?)?,
        ];
        let generation_map = Array::try_from(take("flow_generation")?)?;
        let counters = PerCpuArray::try_from(take("agent_counters")?)?;
        let events = RingBuf::try_from(take("flow_events")?)?;
        Ok((
            FlowKernel {
                ebpf,
                flow_maps,
                generation_map,
                counters,
                generation: 0,
            },
            events,
        ))
    }

    /// Points new packets at the other map, waits until no program can still
    /// be writing the old one, and drains it. Exact: no update is lost.
    pub fn swap_and_drain(&mut self) -> Result<Vec<(FlowKey, FlowMetrics)>> {
        let old = self.generation as usize;
        self.generation ^= 1;
        self.generation_map
            .set(0, self.generation, 0)
            .context("switching flow map generation")?;
        wait_for_running_programs();
        let map = &mut self.flow_maps[old];
        let keys: Vec<FlowKey> = map.keys().filter_map(|k| k.ok()).collect();
        let mut entries = Vec::with_capacity(keys.len());
        for key in keys {
            if let Ok(metrics) = map.get(&key, 0) {
                entries.push((key, metrics));
            }
            let _ = map.remove(&key);
        }
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
        }
    }
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
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
