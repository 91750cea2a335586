//! The per-core budget of queued reply bytes: what all of a worker's connections hold between a
//! reply being made and the peer taking it.
//!
//! A peer that sends requests and never reads the replies makes its connection queue them; the
//! per-connection cap (`max_pending_write`) bounds one such peer, this bounds many. Past the
//! budget, a connection holding more than its share (budget / connections) stops being read until
//! its queue drains: the biggest queues stop first, and a connection within its share is not
//! stopped by the others. Past the budget, a connection holding more than a few KiB also makes no
//! reply while a write of its is in progress (the reply would only wait behind it; see
//! `ConnectionWatch::over_budget`). The write timeout then closes those whose peer never reads.

use std::cell::Cell;

/// Queued reply bytes of one worker, against its budget.
#[derive(Debug)]
pub struct ReplyBudget {
    limit: usize,
    queued: Cell<usize>,
    connections: Cell<usize>,
}

impl ReplyBudget {
    pub fn new(limit: usize) -> Self {
        ReplyBudget {
            limit: limit.max(1),
            queued: Cell::new(0),
            connections: Cell::new(0),
        }
    }

    /// The budget in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes queued on this worker now.
    pub fn queued(&self) -> usize {
        self.queued.get()
    }

    /// Connections counted in the shares.
    pub fn connections(&self) -> usize {
        self.connections.get()
    }

    pub(crate) fn connection_opened(&self) {
        self.connections.set(self.connections.get() + 1);
    }

    pub(crate) fn connection_closed(&self) {
        self.connections
            .set(self.connections.get().saturating_sub(1));
    }

    /// One connection's queued bytes went from `before` to `after`.
    #[inline]
    pub(crate) fn account(&self, before: usize, after: usize) {
        self.queued.set(self.queued.get() - before + after);
    }

    /// Whether the worker holds more queued reply bytes than its budget.
    #[inline]
    pub fn exceeded(&self) -> bool {
        self.queued.get() > self.limit
    }

    /// Whether a connection holding `queued` bytes must stop reading: the worker is over budget
    /// and the connection holds more than its share. While every connection is within its share
    /// the sum is within the budget, so someone over budget always has a connection to pause.
    #[inline]
    pub fn must_pause(&self, queued: usize) -> bool {
        self.queued.get() > self.limit && queued > self.limit / self.connections.get().max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_connections_over_their_share_pause_and_only_over_budget() {
        let budget = ReplyBudget::new(1000);
        for _ in 0..4 {
            budget.connection_opened();
        }
        budget.account(0, 900);
        assert!(!budget.must_pause(900), "within budget: nobody pauses");
        budget.account(0, 200);
        assert!(budget.must_pause(900), "over budget, over its share of 250");
        assert!(!budget.must_pause(200), "within its share");
        budget.account(900, 0);
        assert!(!budget.must_pause(900));
        assert_eq!(budget.queued(), 200);
    }
}
