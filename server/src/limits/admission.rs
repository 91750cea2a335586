//! Who gets in: backing off when accept fails, and the connection cap (applied in the runtime's
//! accept loop, which asks [`at_capacity`]).
//!
//! When the process runs out of file descriptors (EMFILE, ENFILE) or the kernel of memory
//! (ENOBUFS, ENOMEM), the pending connection stays in the listen backlog and every accept fails
//! at once until something closes: retrying at once spins a core, exiting drops every client.
//! Like Go's `net/http` and rpcx accept loops, the worker sleeps 5 ms, doubling to 1 s while the
//! failures go on, and starts again from 5 ms after an accept succeeds.

use std::time::Duration;

/// First pause after a failed accept.
pub const BACKOFF_START: Duration = Duration::from_millis(5);
/// Longest pause.
pub const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The pause before the next accept after failures, doubling from 5 ms to 1 s.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    next: Option<Duration>,
}

impl AcceptBackoff {
    /// An accept failed: how long to wait before the next one.
    pub fn failed(&mut self) -> Duration {
        let delay = self.next.unwrap_or(BACKOFF_START);
        self.next = Some((delay * 2).min(BACKOFF_MAX));
        delay
    }

    /// An accept succeeded: the next failure waits 5 ms again.
    pub fn succeeded(&mut self) {
        self.next = None;
    }
}

/// Whether a worker serving `open` connections must refuse another under a cap of `max`.
pub fn at_capacity(open: usize, max: usize) -> bool {
    open >= max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_second_and_resets_on_success() {
        let mut backoff = AcceptBackoff::default();
        let delays: Vec<u64> = (0..10)
            .map(|_| backoff.failed().as_millis() as u64)
            .collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        backoff.succeeded();
        assert_eq!(backoff.failed(), BACKOFF_START);
    }

    #[test]
    fn the_cap_counts_open_connections() {
        assert!(!at_capacity(0, 1));
        assert!(at_capacity(1, 1));
        assert!(at_capacity(5, 1));
    }
}
