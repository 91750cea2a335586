//! Reporting refusals: every connection closed, paused or turned away by a limit is one log line
//! with the peer and the reason, and one count.
//!
//! The log is rate-limited per worker (a token bucket: bursts of [`LOG_BURST`] lines, then
//! [`LOG_PER_SECOND`] a second), so an attack cannot flood it; the lines it drops are counted
//! and their number is given on the next line that is written. The counts are never dropped:
//! each worker counts into counters of its own ([`WorkerRefusals`]: one writer, no locked
//! instruction, as the metrics' per-core counters), and [`RefusalCounts`] sums them when read:
//! through [`crate::Running::refusals`], and at each scrape as the `ringrpc_refusals_total`
//! metric ([`crate::Metrics::count_refusals`]).

use std::cell::Cell;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Why a connection was refused, closed or paused by a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No whole frame within the idle timeout: reading stopped, replies finished, closed.
    IdleTimeout,
    /// A frame started and not finished within the frame-read timeout (slowloris).
    FrameReadTimeout,
    /// A write not finished within the write timeout: the peer stopped reading; reset.
    WriteTimeout,
    /// The worker already serves its maximum of connections: accepted and closed at once.
    ConnectionCap,
    /// Accept failed (out of file descriptors, say): the worker backs off.
    AcceptFailed,
    /// The worker's queued reply bytes are over budget and this connection holds more than its
    /// share: its reading pauses until its queue drains.
    ReplyBudget,
    /// A malformed frame (any `DecodeError`): closed after the replies already made. Also a
    /// malformed HTTP request, or bytes that are no protocol served here.
    Malformed,
    /// An HTTP request whose headers did not all arrive within the header timeout: closed.
    HttpHeaderTimeout,
    /// An HTTP request over the header or body limit: answered 431 or 413, then closed.
    HttpTooLarge,
    /// A TLS handshake not finished within its timeout, or failed: closed.
    TlsHandshake,
    /// The worker already runs its maximum of TLS handshakes: closed at once.
    TlsHandshakeCap,
    /// A connection that does not open with a TLS handshake on a TLS-only server: closed.
    PlainRefused,
}

impl Reason {
    /// Every reason, in the order of [`RefusalCounts`]' counters.
    pub const ALL: [Reason; 12] = [
        Reason::IdleTimeout,
        Reason::FrameReadTimeout,
        Reason::WriteTimeout,
        Reason::ConnectionCap,
        Reason::AcceptFailed,
        Reason::ReplyBudget,
        Reason::Malformed,
        Reason::HttpHeaderTimeout,
        Reason::HttpTooLarge,
        Reason::TlsHandshake,
        Reason::TlsHandshakeCap,
        Reason::PlainRefused,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// The reason as a metric label value (`reason="idle_timeout"`).
    pub fn label(self) -> &'static str {
        match self {
            Reason::IdleTimeout => "idle_timeout",
            Reason::FrameReadTimeout => "frame_read_timeout",
            Reason::WriteTimeout => "write_timeout",
            Reason::ConnectionCap => "connection_cap",
            Reason::AcceptFailed => "accept_failed",
            Reason::ReplyBudget => "reply_budget",
            Reason::Malformed => "malformed",
            Reason::HttpHeaderTimeout => "http_header_timeout",
            Reason::HttpTooLarge => "http_too_large",
            Reason::TlsHandshake => "tls_handshake",
            Reason::TlsHandshakeCap => "tls_handshake_cap",
            Reason::PlainRefused => "plain_refused",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::IdleTimeout => "idle timeout: closing",
            Reason::FrameReadTimeout => {
                "frame-read timeout (a frame started and not finished): closing"
            }
            Reason::WriteTimeout => "write timeout (the peer does not read): resetting",
            Reason::ConnectionCap => "connection cap of this core reached: refused",
            Reason::AcceptFailed => "accept failed: backing off",
            Reason::ReplyBudget => "reply budget of this core exceeded: reading paused",
            Reason::Malformed => "malformed frame: closing",
            Reason::HttpHeaderTimeout => "HTTP headers not received in time: closing",
            Reason::HttpTooLarge => "HTTP request over the size limits: closing",
            Reason::TlsHandshake => "TLS handshake failed or timed out: closing",
            Reason::TlsHandshakeCap => "TLS handshake cap of this core reached: refused",
            Reason::PlainRefused => "not TLS on a TLS-only server: refused",
        })
    }
}

/// One worker's refusals of each reason: written by that worker only, read by anyone.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct WorkerRefusals {
    counts: [AtomicU64; Reason::ALL.len()],
}

impl WorkerRefusals {
    /// Counts one: a relaxed load and store, not a `fetch_add` (only the owning worker writes,
    /// so nothing is lost; see the metrics module for why).
    fn add(&self, reason: Reason) {
        let count = &self.counts[reason.index()];
        count.store(count.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    fn get(&self, reason: Reason) -> u64 {
        self.counts[reason.index()].load(Ordering::Relaxed)
    }
}

/// How many refusals of each reason, over every worker of a server: the workers' own counters,
/// summed when read. The lock is taken when a worker starts and when the counts are read, never
/// when a refusal is counted.
#[derive(Debug, Default)]
pub struct RefusalCounts {
    workers: Mutex<Vec<Arc<WorkerRefusals>>>,
}

impl RefusalCounts {
    /// Refusals for `reason` so far.
    pub fn get(&self, reason: Reason) -> u64 {
        let workers = self.workers.lock().expect("refusal counts lock");
        workers.iter().map(|w| w.get(reason)).sum()
    }

    /// Refusals of every reason so far.
    pub fn total(&self) -> u64 {
        Reason::ALL.iter().map(|&r| self.get(r)).sum()
    }

    /// Counters for one more worker, summed into these.
    fn add_worker(&self) -> Arc<WorkerRefusals> {
        let worker = Arc::new(WorkerRefusals::default());
        self.workers
            .lock()
            .expect("refusal counts lock")
            .push(worker.clone());
        worker
    }
}

/// Log lines a worker may write at once after a quiet spell.
pub const LOG_BURST: u32 = 20;
/// Log lines a worker may write per second under a steady stream of refusals.
pub const LOG_PER_SECOND: u32 = 10;

/// One worker's refusal log: counts every refusal, logs as many as the rate allows.
pub struct RefusalLog {
    counts: Arc<RefusalCounts>,
    /// This worker's own counters, part of `counts`.
    own: Arc<WorkerRefusals>,
    tokens: Cell<f64>,
    refilled: Cell<Instant>,
    suppressed: Cell<u64>,
}

impl RefusalLog {
    /// A worker's log, counting into counters of its own that `counts` sums.
    pub fn new(counts: Arc<RefusalCounts>) -> Self {
        RefusalLog {
            own: counts.add_worker(),
            counts,
            tokens: Cell::new(f64::from(LOG_BURST)),
            refilled: Cell::new(Instant::now()),
            suppressed: Cell::new(0),
        }
    }

    /// The counts this log adds to (every worker's).
    pub fn counts(&self) -> &Arc<RefusalCounts> {
        &self.counts
    }

    /// Counts a refusal of `peer` and logs it if the rate allows.
    pub fn refuse(&self, peer: SocketAddr, reason: Reason) {
        self.refuse_with(Some(peer), reason, None);
    }

    /// Counts a refusal and logs it, with `detail` (the decode error, the accept error), if the
    /// rate allows. `peer` is `None` when there is none yet (a failed accept).
    pub fn refuse_with(
        &self,
        peer: Option<SocketAddr>,
        reason: Reason,
        detail: Option<&dyn fmt::Display>,
    ) {
        self.own.add(reason);
        if !self.take_token() {
            self.suppressed.set(self.suppressed.get() + 1);
            return;
        }
        let suppressed = self.suppressed.replace(0);
        let peer = peer.map_or_else(|| "-".to_string(), |p| p.to_string());
        let detail = detail.map_or_else(String::new, |d| format!(": {d}"));
        if suppressed > 0 {
            tracing::warn!(
                %peer,
                "{reason}{detail} ({suppressed} refusals not logged before this one: rate limit)"
            );
        } else {
            tracing::warn!(%peer, "{reason}{detail}");
        }
    }

    fn take_token(&self) -> bool {
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled.get()).as_secs_f64();
        self.refilled.set(now);
        let tokens =
            (self.tokens.get() + elapsed * f64::from(LOG_PER_SECOND)).min(f64::from(LOG_BURST));
        if tokens >= 1.0 {
            self.tokens.set(tokens - 1.0);
            true
        } else {
            self.tokens.set(tokens);
            false
        }
    }

    /// Lines dropped by the rate limit since the last one written.
    pub fn suppressed(&self) -> u64 {
        self.suppressed.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_counted_whole_and_logged_at_the_rate() {
        let log = RefusalLog::new(Arc::default());
        let peer = "127.0.0.1:9".parse().unwrap();
        for _ in 0..10_000 {
            log.refuse(peer, Reason::FrameReadTimeout);
        }
        log.refuse(peer, Reason::WriteTimeout);
        assert_eq!(log.counts().get(Reason::FrameReadTimeout), 10_000);
        assert_eq!(log.counts().get(Reason::WriteTimeout), 1);
        assert_eq!(log.counts().total(), 10_001);
        // The burst, plus what the clock refilled while the loop ran (well under a second).
        let logged = 10_001 - log.suppressed();
        assert!(
            (LOG_BURST as u64..LOG_BURST as u64 + 20).contains(&logged),
            "{logged} lines logged"
        );
    }

    #[test]
    fn every_reason_has_its_own_counter_and_label() {
        let counts = RefusalCounts::default();
        let worker = counts.add_worker();
        let mut labels = std::collections::HashSet::new();
        for (i, reason) in Reason::ALL.into_iter().enumerate() {
            assert_eq!(reason.index(), i);
            worker.add(reason);
            assert_eq!(counts.get(reason), 1, "{reason}");
            assert!(labels.insert(reason.label()), "{} twice", reason.label());
        }
    }

    #[test]
    fn workers_count_apart_and_are_summed_when_read() {
        let counts = Arc::new(RefusalCounts::default());
        let a = RefusalLog::new(counts.clone());
        let b = RefusalLog::new(counts.clone());
        let peer = "127.0.0.1:9".parse().unwrap();
        a.refuse(peer, Reason::Malformed);
        b.refuse(peer, Reason::Malformed);
        b.refuse(peer, Reason::IdleTimeout);
        assert_eq!(a.own.get(Reason::Malformed), 1);
        assert_eq!(counts.get(Reason::Malformed), 2);
        assert_eq!(counts.total(), 3);
    }
}
