//! Which monoio driver a thread runs, chosen once per process, and the runtime builder for it.
//!
//! io_uring is the point of the project; epoll (monoio's legacy driver) is the fallback where the
//! kernel or a seccomp profile refuses `io_uring_setup`, said in one log line.

use std::future::Future;
use std::io;

/// Which monoio driver the threads run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoDriver {
    /// io_uring when the kernel (and any seccomp profile) allows it, else epoll, said in one log line.
    #[default]
    Auto,
    IoUring,
    Epoll,
}

/// io_uring was asked for explicitly and the kernel refused it.
#[derive(Debug, thiserror::Error)]
#[error(
    "io_uring requested but unavailable: the kernel or a seccomp profile refused io_uring_setup"
)]
pub struct IoUnavailable;

impl std::str::FromStr for IoDriver {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(IoDriver::Auto),
            "uring" | "io_uring" | "iouring" => Ok(IoDriver::IoUring),
            "epoll" | "legacy" => Ok(IoDriver::Epoll),
            other => Err(format!(
                "unknown io driver {other:?}: use uring, epoll or auto"
            )),
        }
    }
}

impl IoDriver {
    /// Resolves `Auto` on this machine (logging a fallback to epoll once per call); an explicit
    /// `IoUring` that the kernel refuses is an error rather than a silent fallback.
    pub fn resolve(self) -> Result<IoDriver, IoUnavailable> {
        let available = monoio::utils::detect_uring();
        match self {
            IoDriver::Epoll => Ok(IoDriver::Epoll),
            IoDriver::IoUring if available => Ok(IoDriver::IoUring),
            IoDriver::IoUring => Err(IoUnavailable),
            IoDriver::Auto if available => Ok(IoDriver::IoUring),
            IoDriver::Auto => {
                tracing::warn!(
                    "io_uring is unavailable (refused by the kernel or a seccomp profile): \
                     falling back to monoio's epoll driver"
                );
                Ok(IoDriver::Epoll)
            }
        }
    }

    /// The name used in flags and reports.
    pub fn name(self) -> &'static str {
        match self {
            IoDriver::Auto => "auto",
            IoDriver::IoUring => "io_uring",
            IoDriver::Epoll => "epoll",
        }
    }
}

/// Builds a runtime with `driver` (`Auto` must be resolved first; it is taken as io_uring) and
/// timers on the current thread, and runs `make()`'s future on it. `ring_entries` sizes the
/// io_uring submission queue.
pub fn block_on<F, Fut>(driver: IoDriver, ring_entries: u32, make: F) -> io::Result<Fut::Output>
where
    F: FnOnce() -> Fut,
    Fut: Future,
{
    match driver {
        IoDriver::Epoll => Ok(monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()?
            .block_on(make())),
        IoDriver::IoUring | IoDriver::Auto => {
            Ok(monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                .with_entries(ring_entries)
                .enable_timer()
                .build()?
                .block_on(make()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_names() {
        assert_eq!("uring".parse::<IoDriver>().unwrap(), IoDriver::IoUring);
        assert_eq!("epoll".parse::<IoDriver>().unwrap(), IoDriver::Epoll);
        assert_eq!("auto".parse::<IoDriver>().unwrap(), IoDriver::Auto);
        assert!("kqueue".parse::<IoDriver>().is_err());
    }

    #[test]
    fn runs_a_future_on_either_driver() {
        for driver in [IoDriver::Epoll, IoDriver::Auto.resolve().unwrap()] {
            let out = block_on(driver, 64, || async {
                monoio::time::sleep(std::time::Duration::from_millis(1)).await;
                7
            })
            .unwrap();
            assert_eq!(out, 7);
        }
    }
}
