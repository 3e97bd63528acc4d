//! Least privilege: once its programs are attached and its listeners
//! bound, the agent (and `up`) keeps only the capabilities it still needs
//! (docs/features.md lists them per feature) — in its effective, permitted
//! and bounding sets, none inheritable or ambient — and sets
//! `no_new_privs`, so nothing it runs later can gain any.
//!
//! Capabilities belong to each thread, not to the process, and the
//! runtime's threads exist by then: every thread is told to drop them (a
//! signal whose handler makes the same system calls, as the C library does
//! for setuid), and the result is read back from /proc for each one.

use anyhow::{Context, Result, bail};
use flowlens_agent::host::{CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON, CAP_SYS_ADMIN, capability_set};
use flowlens_config::Feature;
use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What the agent still does after start, and so which capabilities stay.
#[derive(Debug, Clone, Copy, Default)]
pub struct StillNeeded {
    /// Programs will be loaded again, for settings not known yet (from
    /// the collector): every capability a feature may need stays
    /// (CAP_PERFMON, CAP_SYS_ADMIN for NetworkEvents).
    pub reloads: bool,
    /// New network namespaces are entered (NetworkEvents' NFLOG in each,
    /// `up`'s inventory of namespaces): CAP_SYS_ADMIN stays.
    pub enters_namespaces: bool,
}

/// The capabilities kept: CAP_BPF (every map read is a bpf() call) and
/// CAP_NET_ADMIN (interfaces that appear are attached); CAP_SYS_ADMIN when
/// namespaces are entered (NetworkEvents, `up`'s names of namespaces) or
/// in place of CAP_BPF on a kernel that predates it; all four when
/// programs for settings not known yet will be loaded. Tracing programs
/// loaded once need no CAP_PERFMON after. Only those the process has.
pub fn kept(features: &[Feature], still: StillNeeded, permitted: u64) -> u64 {
    let has = |cap: u32| permitted & (1 << cap) != 0;
    let mut keep = 1u64 << CAP_BPF | 1 << CAP_NET_ADMIN;
    if still.reloads {
        keep |= 1 << CAP_PERFMON | 1 << CAP_SYS_ADMIN;
    }
    if still.enters_namespaces || features.contains(&Feature::NetworkEvents) || !has(CAP_BPF) {
        keep |= 1 << CAP_SYS_ADMIN;
    }
    keep & permitted
}

/// The set each thread drops to; the threads done.
static TARGET: AtomicU64 = AtomicU64::new(0);
static ACKS: AtomicUsize = AtomicUsize::new(0);
/// The first error a thread met (negative errno), 0 if none.
static FAILED: AtomicI64 = AtomicI64::new(0);

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(40)
}

static LAST_CAP: AtomicU64 = AtomicU64::new(40);

/// Drops this thread's capabilities to TARGET: async-signal-safe (system
/// calls only), it runs in the signal handler too.
fn drop_this_thread() -> i64 {
    let keep = TARGET.load(Ordering::SeqCst);
    // SAFETY: prctl and capset with plain integer arguments and a pointer
    // to local, initialized structures.
    unsafe {
        // The bounding set first: it needs CAP_SETPCAP, dropped below.
        // Without CAP_SETPCAP (started with only ambient capabilities) the
        // bounding set cannot change; the other sets can.
        for cap in 0..=LAST_CAP.load(Ordering::SeqCst) as libc::c_ulong {
            if keep & (1 << cap) == 0 {
                libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
            }
        }
        if libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        ) != 0
        {
            return -i64::from(*libc::__errno_location());
        }
        let mut header = CapHeader {
            version: CAPABILITY_VERSION_3,
            pid: 0,
        };
        let data = [
            CapData {
                effective: keep as u32,
                permitted: keep as u32,
                inheritable: 0,
            },
            CapData {
                effective: (keep >> 32) as u32,
                permitted: (keep >> 32) as u32,
                inheritable: 0,
            },
        ];
        if libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        ) != 0
        {
            return -i64::from(*libc::__errno_location());
        }
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return -i64::from(*libc::__errno_location());
        }
    }
    0
}

extern "C" fn on_signal(_: libc::c_int) {
    let result = drop_this_thread();
    if result != 0 {
        let _ = FAILED.compare_exchange(0, result, Ordering::SeqCst, Ordering::SeqCst);
    }
    ACKS.fetch_add(1, Ordering::SeqCst);
}

fn signal() -> libc::c_int {
    libc::SIGRTMIN() + 4
}

fn threads() -> Result<Vec<i32>> {
    Ok(std::fs::read_dir("/proc/self/task")
        .context("listing /proc/self/task")?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect())
}

/// Every thread of the process drops to `keep`, then sets no_new_privs;
/// checked thread by thread.
pub fn drop_all_but(keep: u64) -> Result<()> {
    TARGET.store(keep, Ordering::SeqCst);
    LAST_CAP.store(u64::from(last_cap()), Ordering::SeqCst);
    // SAFETY: installing a handler that only makes system calls and
    // touches atomics.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_signal as *const () as usize;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(signal(), &action, std::ptr::null_mut()) != 0 {
            bail!(
                "installing the capability handler: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    // SAFETY: gettid and getpid have no preconditions.
    let (me, pid) = unsafe { (libc::gettid(), libc::getpid()) };
    let result = drop_this_thread();
    if result != 0 {
        bail!(
            "dropping capabilities: {}",
            std::io::Error::from_raw_os_error(-result as i32)
        );
    }
    let mut done: HashSet<i32> = [me].into();
    // A thread started meanwhile is its creator's copy: rounds until none
    // is new.
    for _ in 0..20 {
        let todo: Vec<i32> = threads()?
            .into_iter()
            .filter(|t| !done.contains(t))
            .collect();
        if todo.is_empty() {
            break;
        }
        for tid in todo {
            let before = ACKS.load(Ordering::SeqCst);
            // SAFETY: tgkill to a thread of this process.
            let sent = unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, signal()) } == 0;
            let deadline = Instant::now() + Duration::from_secs(2);
            while sent && ACKS.load(Ordering::SeqCst) == before && Instant::now() < deadline {
                std::thread::yield_now();
            }
            done.insert(tid);
        }
    }
    let failed = FAILED.load(Ordering::SeqCst);
    if failed != 0 {
        bail!(
            "a thread could not drop its capabilities: {}",
            std::io::Error::from_raw_os_error(-failed as i32)
        );
    }
    for tid in threads()? {
        let Ok(status) = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")) else {
            continue; // exited
        };
        let effective = capability_set(&status, "CapEff");
        if effective.is_some_and(|e| e & !keep != 0) {
            bail!("thread {tid} still holds capabilities {effective:x?} beyond {keep:x}");
        }
    }
    Ok(())
}

/// Names of the capabilities in `set`, for the log.
pub fn names(set: u64) -> String {
    let name = |cap: u32| match cap {
        CAP_NET_ADMIN => "CAP_NET_ADMIN".to_string(),
        CAP_SYS_ADMIN => "CAP_SYS_ADMIN".to_string(),
        CAP_PERFMON => "CAP_PERFMON".to_string(),
        CAP_BPF => "CAP_BPF".to_string(),
        other => format!("cap {other}"),
    };
    let names: Vec<String> = (0..64).filter(|c| set & (1 << c) != 0).map(name).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// The permitted set now (of this thread).
pub fn permitted() -> u64 {
    std::fs::read_to_string("/proc/thread-self/status")
        .ok()
        .and_then(|s| capability_set(&s, "CapPrm"))
        .unwrap_or(0)
}

/// Drops to what `features` and `still` need, logging what stays.
pub fn drop_unneeded(features: &[Feature], still: StillNeeded) {
    drop_logged(kept(features, still, permitted()));
}

/// Drops to `keep`, logging what stays. A failure is logged, never fatal:
/// the work goes on, with a warning.
pub fn drop_logged(keep: u64) {
    match drop_all_but(keep) {
        Ok(()) => tracing::info!(
            kept = names(keep).as_str(),
            "capabilities dropped (no_new_privs set)"
        ),
        Err(e) => tracing::warn!("keeping every capability: {e:#}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: u64 = (1 << 41) - 1;

    #[test]
    fn what_stays_per_feature() {
        let none = StillNeeded::default();
        let base = 1 << CAP_BPF | 1 << CAP_NET_ADMIN;
        assert_eq!(kept(&[], none, ALL), base);
        assert_eq!(kept(&[Feature::FlowRTT], none, ALL), base, "loaded once");
        let reloads = StillNeeded {
            reloads: true,
            ..none
        };
        let everything = base | 1 << CAP_PERFMON | 1 << CAP_SYS_ADMIN;
        assert_eq!(
            kept(&[], reloads, ALL),
            everything,
            "a later generation may trace"
        );
        assert_eq!(
            kept(&[Feature::NetworkEvents], none, ALL),
            base | 1 << CAP_SYS_ADMIN
        );
        let enters = StillNeeded {
            enters_namespaces: true,
            ..none
        };
        assert_eq!(kept(&[], enters, ALL), base | 1 << CAP_SYS_ADMIN);
        // A kernel before CAP_BPF: CAP_SYS_ADMIN stands in.
        let old = ALL & !(1 << CAP_BPF) & !(1 << CAP_PERFMON);
        assert_eq!(
            kept(&[], none, old),
            1 << CAP_NET_ADMIN | 1 << CAP_SYS_ADMIN
        );
        assert_eq!(kept(&[Feature::FlowRTT], none, ALL), base);
        // Never one the process does not have.
        assert_eq!(kept(&[], none, 1 << CAP_BPF), 1 << CAP_BPF);
    }

    #[test]
    fn sets_of_proc_status() {
        let status = "Name:\tx\nCapPrm:\t000001ffffffffff\nCapEff:\t0000008000001000\n";
        assert_eq!(
            capability_set(status, "CapEff"),
            Some(1 << CAP_BPF | 1 << CAP_NET_ADMIN)
        );
        assert_eq!(capability_set(status, "CapPrm"), Some((1 << 41) - 1));
        assert_eq!(
            names(1 << CAP_BPF | 1 << CAP_NET_ADMIN),
            "CAP_NET_ADMIN, CAP_BPF"
        );
    }
}
