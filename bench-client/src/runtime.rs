//! Threads of the load: CPU lists, pinning, and the monoio driver each thread runs.
//!
//! Each load thread owns one monoio runtime (io_uring when the kernel has it, else monoio's
//! epoll-based legacy driver) and is pinned to one CPU of the list, round robin, like the server.

use std::future::Future;
use std::io;

/// Which monoio driver a thread runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Io {
    /// io_uring (fails where the kernel refuses it).
    Uring,
    /// monoio's legacy driver: epoll.
    Epoll,
    /// io_uring when available, epoll otherwise.
    #[default]
    Auto,
}

impl Io {
    /// The driver `Auto` resolves to on this machine.
    pub fn resolve(self) -> Io {
        match self {
            Io::Auto if monoio::utils::detect_uring() => Io::Uring,
            Io::Auto => Io::Epoll,
            other => other,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Io::Uring => "io_uring",
            Io::Epoll => "epoll",
            Io::Auto => "auto",
        }
    }
}

/// Submission queue size: room for a read and a write per connection of a thread, and more.
const URING_ENTRIES: u32 = 1024;

/// Builds a runtime with `io` (and timers) on the current thread and runs `make()`'s future on it.
pub fn block_on<F, Fut>(io: Io, make: F) -> io::Result<Fut::Output>
where
    F: FnOnce() -> Fut,
    Fut: Future,
{
    match io.resolve() {
        Io::Uring => Ok(monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .with_entries(URING_ENTRIES)
            .enable_timer()
            .build()?
            .block_on(make())),
        _ => Ok(monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()?
            .block_on(make())),
    }
}

/// Pins the current thread to `cpu`; false if the OS refused.
pub fn pin_current(cpu: usize) -> bool {
    core_affinity::set_for_current(core_affinity::CoreId { id: cpu })
}

/// Parses a CPU list: `3`, `0-3`, `0,2,4-5`.
pub fn parse_cpus(list: &str) -> Result<Vec<usize>, String> {
    let bad = || format!("bad CPU list {list:?} (expected e.g. 1, 0-3 or 0,2)");
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((lo, hi)) => {
                let lo: usize = lo.trim().parse().map_err(|_| bad())?;
                let hi: usize = hi.trim().parse().map_err(|_| bad())?;
                if lo > hi {
                    return Err(bad());
                }
                cpus.extend(lo..=hi);
            }
            None => cpus.push(part.parse().map_err(|_| bad())?),
        }
    }
    if cpus.is_empty() {
        return Err(bad());
    }
    Ok(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpus("1").unwrap(), [1]);
        assert_eq!(parse_cpus("0-3").unwrap(), [0, 1, 2, 3]);
        assert_eq!(parse_cpus("0,2, 4-5").unwrap(), [0, 2, 4, 5]);
        for bad in ["", "a", "3-1", "1-", ","] {
            assert!(parse_cpus(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn runs_a_future_on_the_chosen_driver() {
        for io in [Io::Epoll, Io::Auto] {
            let out = block_on(io, || async {
                monoio::time::sleep(std::time::Duration::from_millis(1)).await;
                7
            })
            .unwrap();
            assert_eq!(out, 7);
        }
    }
}
