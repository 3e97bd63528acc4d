//! Benchmark baseline: attaches the empty TC program (returns at once) to an
//! interface's ingress and egress until killed. Used by bench/agent-overhead.sh.
//!
//!     attach_empty IFACE

use aya::programs::{LinkOrder, SchedClassifier, TcAttachType, tc::TcAttachOptions};
use flowlens_agent::kernel::{EMPTY_PROGRAM, FLOW_OBJECT};

fn main() -> anyhow::Result<()> {
    let iface = std::env::args().nth(1).expect("usage: attach_empty IFACE");
    let mut ebpf = aya::Ebpf::load(FLOW_OBJECT)?;
    let program: &mut SchedClassifier = ebpf
        .program_mut(EMPTY_PROGRAM)
        .expect("empty program")
        .try_into()?;
    program.load()?;
    for at in [TcAttachType::Ingress, TcAttachType::Egress] {
        program.attach_with_options(&iface, at, TcAttachOptions::TcxOrder(LinkOrder::default()))?;
    }
    println!("attached");
    loop {
        std::thread::park();
    }
}
