//! The monotonic clock as plain nanoseconds, for per-request bookkeeping (the rate limiter's
//! buckets, the metrics' latency).
//!
//! Why not `Instant`: on the request path its arithmetic (`Timespec` subtraction with its checks
//! and normalisation) costs more than reading the clock (callgrind: ~60 instructions per request
//! for `Instant::now()` and one subtraction); a `u64` of nanoseconds subtracts in one instruction.
//! Both clocks are read through the vDSO: no system call.

/// Nanoseconds on `CLOCK_MONOTONIC` (the clock `Instant` reads): for latencies.
#[inline]
pub fn now_ns() -> u64 {
    read(libc::CLOCK_MONOTONIC)
}

/// Nanoseconds on `CLOCK_MONOTONIC_COARSE`: the time of the last timer tick (a few milliseconds'
/// resolution), cheaper to read; enough for token buckets, which count seconds.
#[inline]
pub fn coarse_now_ns() -> u64 {
    read(libc::CLOCK_MONOTONIC_COARSE)
}

#[inline]
fn read(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one `timespec` through the pointer, which points to a live,
    // writable local of that type; both clocks exist on every Linux this server runs on.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_move_forward_together() {
        let (fine, coarse) = (now_ns(), coarse_now_ns());
        assert!(fine > 0 && coarse > 0);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(now_ns() - fine >= 20_000_000);
        assert!(coarse_now_ns() - coarse >= 10_000_000);
        // Same clock, coarser: within a tick (at most 10 ms even at HZ=100) of each other.
        assert!(now_ns().abs_diff(coarse_now_ns()) < 20_000_000);
    }
}
