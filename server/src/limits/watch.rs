//! What one connection tells its worker's limits: when it last finished a frame, since when a
//! frame is half-read, since when a write is in progress, and how many reply bytes it holds.
//!
//! The connection only copies the worker's coarse clock into cells (a load and a store or two):
//! no timer per read or per request. The [`sweeper`](super::sweeper) reads the cells and closes
//! the connection when one is too old; the [`budget`](super::budget) sums the queued bytes.
//! A watch does not own the socket: it only knows its fd number, to shut it down.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;

use super::{Reason, WorkerLimits};

/// The per-connection cells; shared (`Rc`) by the connection and the worker's registry.
pub struct ConnectionWatch {
    fd: Option<i32>,
    peer: SocketAddr,
    limits: Rc<WorkerLimits>,
    /// Coarse time of the last whole frame (or of the accept).
    last_frame: Cell<u64>,
    /// Coarse time since which an unfinished frame is buffered; 0: none.
    partial_since: Cell<u64>,
    /// Coarse time at which the write in progress started; 0: none.
    write_since: Cell<u64>,
    /// Bytes of the write in progress.
    writing: Cell<usize>,
    /// This connection's bytes counted in the worker's budget.
    queued: Cell<usize>,
    /// Reading is paused by the budget (for the refusal log: once per pause).
    paused: Cell<bool>,
    /// Why the sweeper closed it, once it has (so it acts and logs once).
    closed: Cell<Option<Reason>>,
}

impl ConnectionWatch {
    /// A watch for the connection on `fd` (`None`: not a socket, e.g. an in-memory stream in a
    /// fuzz target; the sweeper then cannot close it).
    pub fn new(fd: Option<i32>, peer: SocketAddr, limits: Rc<WorkerLimits>) -> Self {
        limits.budget.connection_opened();
        ConnectionWatch {
            fd,
            peer,
            last_frame: Cell::new(limits.now()),
            partial_since: Cell::new(0),
            write_since: Cell::new(0),
            writing: Cell::new(0),
            queued: Cell::new(0),
            paused: Cell::new(false),
            closed: Cell::new(None),
            limits,
        }
    }

    pub fn fd(&self) -> Option<i32> {
        self.fd
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// A whole frame was taken off the buffer: not idle, and no frame is half-read any more.
    #[inline]
    pub fn frame_done(&self) {
        self.last_frame.set(self.limits.now());
        self.partial_since.set(0);
    }

    /// After taking every whole frame: `buffered` bytes of an unfinished frame are left. Starts
    /// the frame-read clock when a new partial frame appears, stops it when none is left.
    #[inline]
    pub fn buffered(&self, buffered: usize) {
        if buffered == 0 {
            self.partial_since.set(0);
        } else if self.partial_since.get() == 0 {
            self.partial_since.set(self.limits.now());
        }
    }

    /// A write of `len` bytes starts; `still_queued` more wait behind it.
    #[inline]
    pub fn write_started(&self, len: usize, still_queued: usize) {
        self.write_since.set(self.limits.now());
        self.writing.set(len);
        self.account(len + still_queued);
    }

    /// The write finished (or failed); `still_queued` bytes wait for the next one.
    #[inline]
    pub fn write_finished(&self, still_queued: usize) {
        self.write_since.set(0);
        self.writing.set(0);
        self.account(still_queued);
    }

    /// Bytes of the write in progress (0 when none).
    #[inline]
    pub fn writing(&self) -> usize {
        self.writing.get()
    }

    /// Whether the budget paused this connection's reading at its last check.
    #[inline]
    pub fn is_paused(&self) -> bool {
        self.paused.get()
    }

    /// Whether this connection must stop reading: the worker is past its reply budget and this
    /// connection holds more than its share (logged and counted once per pause), or has a write
    /// in progress. `out` is what waits to be written besides the write in progress.
    ///
    /// The second: past the budget, a reply made while a write is in progress only waits behind
    /// it, and a peer that stopped reading holds both until the write timeout. Without it, most
    /// of 500 such peers (server/tests/hostile.rs, 2 workers) held a 16 KiB reply besides their
    /// unsent write, 2 to 5 MiB a core; with it, the test's peak went from 72 to 84 MiB (7 runs)
    /// to 69 to 73 MiB (7 runs, debug build). A connection holding 8 KiB or less is not asked
    /// (`BUDGET_CHECK_FROM` in connection.rs), so small replies never wait for this.
    #[inline]
    pub fn over_budget(&self, out: usize) -> bool {
        let writing = self.writing.get();
        let queued = out + writing;
        self.account(queued);
        let budget = &self.limits.budget;
        let over_share = budget.must_pause(queued);
        if over_share != self.paused.get() {
            self.paused.set(over_share);
            if over_share {
                self.refuse(Reason::ReplyBudget, None);
            }
        }
        over_share || (writing != 0 && budget.exceeded())
    }

    /// Whether the worker is past its reply budget (cheap: one compare).
    #[inline]
    pub fn worker_over_budget(&self) -> bool {
        self.limits.budget.exceeded()
    }

    /// Reports a refusal of this connection (a malformed frame, say, with the decode error for
    /// `detail`) to the worker's log.
    pub fn refuse(&self, reason: Reason, detail: Option<&dyn std::fmt::Display>) {
        self.limits
            .refusals
            .refuse_with(Some(self.peer), reason, detail);
    }

    fn account(&self, queued: usize) {
        self.limits
            .budget
            .account(self.queued.replace(queued), queued);
    }

    /// Which timeout, if any, this connection is past at coarse time `now`. Reading timeouts do
    /// not run while the budget pauses reading: then the wait is the server's, not the peer's.
    pub(crate) fn expired(&self, now: u64) -> Option<Reason> {
        let timeouts = &self.limits.timeouts;
        let past = |since: u64, limit: Option<std::time::Duration>| {
            since != 0
                && limit.is_some_and(|limit| now.saturating_sub(since) > limit.as_millis() as u64)
        };
        if past(self.write_since.get(), timeouts.write) {
            return Some(Reason::WriteTimeout);
        }
        if self.paused.get() {
            return None;
        }
        if past(self.partial_since.get(), timeouts.frame_read) {
            return Some(Reason::FrameReadTimeout);
        }
        if past(self.last_frame.get(), timeouts.idle) {
            return Some(Reason::IdleTimeout);
        }
        None
    }

    /// Why the sweeper closed it, if it has.
    pub fn closed(&self) -> Option<Reason> {
        self.closed.get()
    }

    pub(crate) fn set_closed(&self, reason: Reason) {
        self.closed.set(Some(reason));
    }
}

impl Drop for ConnectionWatch {
    fn drop(&mut self) {
        self.account(0);
        self.limits.budget.connection_closed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServerConfig;
    use std::time::Duration;

    fn limits(config: ServerConfig) -> Rc<WorkerLimits> {
        Rc::new(WorkerLimits::new(&config, Default::default()))
    }

    fn peer() -> SocketAddr {
        "127.0.0.1:1".parse().unwrap()
    }

    #[test]
    fn each_timeout_runs_from_its_own_event() {
        let config = ServerConfig::default()
            .idle_timeout(Some(Duration::from_millis(100)))
            .frame_read_timeout(Some(Duration::from_millis(50)))
            .write_timeout(Some(Duration::from_millis(20)));
        let limits = limits(config);
        let watch = ConnectionWatch::new(None, peer(), limits.clone());
        let start = limits.now();
        assert_eq!(watch.expired(start + 100), None);
        assert_eq!(watch.expired(start + 101), Some(Reason::IdleTimeout));
        watch.buffered(5);
        assert_eq!(watch.expired(start + 51), Some(Reason::FrameReadTimeout));
        watch.write_started(10, 0);
        assert_eq!(watch.expired(start + 21), Some(Reason::WriteTimeout));
        watch.write_finished(0);
        watch.frame_done();
        assert_eq!(
            watch.expired(start + 99),
            None,
            "frame done: nothing half-read"
        );
    }

    #[test]
    fn queued_bytes_follow_the_connection_and_leave_with_it() {
        let limits = limits(ServerConfig::default().max_queued_bytes(1000));
        let a = ConnectionWatch::new(None, peer(), limits.clone());
        let b = ConnectionWatch::new(None, peer(), limits.clone());
        assert!(!a.over_budget(400));
        a.write_started(400, 300);
        assert_eq!(limits.budget.queued(), 700);
        assert!(!b.over_budget(200));
        // 1100 > 1000: the bigger one (700 > share 500) pauses, the smaller one (400) does not.
        assert!(!b.over_budget(400));
        assert_eq!(limits.budget.queued(), 1100);
        assert!(a.over_budget(300));
        assert!(!b.over_budget(400));
        a.write_finished(0);
        assert!(!a.over_budget(0));
        drop(b);
        assert_eq!(limits.budget.queued(), 0);
        assert_eq!(limits.budget.connections(), 1);
    }

    #[test]
    fn past_the_budget_a_write_in_progress_pauses_its_connection_uncounted() {
        let limits = limits(ServerConfig::default().max_queued_bytes(1000));
        let (a, b) = (
            ConnectionWatch::new(None, peer(), limits.clone()),
            ConnectionWatch::new(None, peer(), limits.clone()),
        );
        a.write_started(300, 0);
        assert!(
            !a.over_budget(0),
            "within the budget a write pauses nothing"
        );
        b.write_started(1200, 0);
        assert!(limits.budget.exceeded());
        // 300 is within a's share of 500, but its write is in progress.
        assert!(a.over_budget(0));
        assert!(!a.is_paused(), "not paused for its share, so not a refusal");
        a.write_finished(0);
        assert!(!a.over_budget(0), "nothing in progress: it may read");
        assert_eq!(limits.refusals.counts().get(Reason::ReplyBudget), 0);
        assert!(b.over_budget(0), "b is over its share");
        assert_eq!(limits.refusals.counts().get(Reason::ReplyBudget), 1);
    }
}
