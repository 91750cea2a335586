//! The limits that protect a worker from broken clients, scanners, slow readers and overload: on
//! by default, each configurable ([`crate::ServerConfig`]) and listed in the README.
//!
//! - [`watch`]: what a connection tells its worker, by copying a coarse clock into a few cells
//!   (last whole frame, partial frame since, write started) and reporting its queued reply bytes.
//! - [`sweeper`]: what the worker's sweeper (runtime.rs: every 250 ms, and from the request path
//!   when a sweep is overdue) does for the limits: close the connections past their idle,
//!   frame-read or write timeout. No timer per read, per write or per request.
//! - [`budget`]: the per-core budget of queued reply bytes; past it, the connections with the
//!   most queued stop being read first.
//! - [`admission`]: who gets in: the connection cap per core, and backing off when accept runs
//!   out of file descriptors (EMFILE/ENFILE) instead of spinning.
//! - [`refusals`]: every refusal is one log line with the peer and the reason, rate-limited per
//!   worker, and counted per worker ([`RefusalCounts`] sums them: [`crate::Running::refusals`],
//!   and the `ringrpc_refusals_total{reason}` metric through [`crate::Metrics::count_refusals`]).
//!
//! The protocol-level limits (frame length, decompressed length, metadata pairs) live in the
//! codec's `Limits`; this module only counts and logs their refusals.

pub mod admission;
pub mod budget;
pub mod refusals;
pub mod sweeper;
pub mod watch;

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use admission::AcceptBackoff;
pub use budget::ReplyBudget;
pub use refusals::{Reason, RefusalCounts, RefusalLog};
pub use watch::ConnectionWatch;

use crate::config::ServerConfig;

/// The timeouts the sweeper enforces; `None` turns one off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// No whole frame for this long (heartbeats count): stop reading, finish, close.
    pub idle: Option<Duration>,
    /// A frame started and not finished for this long (slowloris): stop reading, finish, close.
    pub frame_read: Option<Duration>,
    /// A write not finished for this long (the peer stopped reading): close at once with a reset,
    /// dropping the queued replies.
    pub write: Option<Duration>,
}

/// One worker's limits state, shared by its connections' watches: the coarse clock, the reply
/// budget and the refusal log.
pub struct WorkerLimits {
    /// Milliseconds since the worker started, plus one (0 means "not set" in the watches), as of
    /// the sweeper's last tick: connections copy it instead of reading a clock.
    now: Cell<u64>,
    started: Instant,
    pub timeouts: Timeouts,
    /// Connections this worker serves at most; more are accepted and closed at once.
    pub max_connections: usize,
    pub budget: ReplyBudget,
    pub refusals: RefusalLog,
}

impl WorkerLimits {
    /// The limits `config` sets, counting refusals into `counts` (shared by every worker).
    pub fn new(config: &ServerConfig, counts: Arc<RefusalCounts>) -> Self {
        WorkerLimits {
            now: Cell::new(1),
            started: Instant::now(),
            timeouts: Timeouts {
                idle: config.idle_timeout,
                frame_read: config.frame_read_timeout,
                write: config.write_timeout,
            },
            max_connections: config.max_connections,
            budget: ReplyBudget::new(config.max_queued_bytes),
            refusals: RefusalLog::new(counts),
        }
    }

    /// The coarse time in milliseconds (see `now`).
    #[inline]
    pub fn now(&self) -> u64 {
        self.now.get()
    }

    /// Advances the coarse clock to the real time; the worker's sweeper calls it once per tick.
    pub fn tick(&self) -> u64 {
        let now = self.started.elapsed().as_millis() as u64 + 1;
        self.now.set(now);
        now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_starts_at_one_and_only_moves_on_tick() {
        let limits = WorkerLimits::new(&ServerConfig::default(), Arc::default());
        assert_eq!(limits.now(), 1);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(limits.now(), 1);
        assert!(limits.tick() >= 6);
        assert_eq!(limits.now(), limits.now());
    }
}
