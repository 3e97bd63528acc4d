//! Kernel timestamps (bpf_ktime_get_ns: CLOCK_MONOTONIC) to wall-clock time.

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

/// The offset between the wall clock and the monotonic clock, read at once
/// so that a conversion is as exact as the two reads are close.
#[derive(Debug, Clone, Copy)]
pub struct MonoToWall {
    offset_ns: i128,
}

impl MonoToWall {
    pub fn now() -> MonoToWall {
        let mono = clock_ns(libc::CLOCK_MONOTONIC);
        let wall = clock_ns(libc::CLOCK_REALTIME);
        let mono_after = clock_ns(libc::CLOCK_MONOTONIC);
        MonoToWall {
            offset_ns: wall - (mono + mono_after) / 2,
        }
    }

    pub fn wall_ms(&self, mono_ns: u64) -> i64 {
        ((mono_ns as i128 + self.offset_ns) / 1_000_000) as i64
    }
}

pub fn monotonic_now_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_monotonic_now_to_wall_now() {
        let conv = MonoToWall::now();
        let wall_now_ms = (clock_ns(libc::CLOCK_REALTIME) / 1_000_000) as i64;
        let converted = conv.wall_ms(monotonic_now_ns());
        assert!(
            (converted - wall_now_ms).abs() <= 2,
            "{converted} vs {wall_now_ms}"
        );
    }
}
