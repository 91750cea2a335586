//! Rate limits: token buckets on requests and on accepted connections (docs/protocol.md 4.10;
//! Go's `ReqRateLimitingPlugin` in non-blocking mode and `RateLimitingPlugin`).
//!
//! A limit is given server-wide and split evenly over the cores: each worker's table gets its own
//! bucket of `rate / workers` tokens per second, holding at most one second of them (at least one
//! token), full at start, as Go's bucket (capacity = rate). The bucket lives in `Cell`s on its
//! core: no atomic and no lock on the request path. The price of the split: a core only spends its
//! own share, so when connections are unevenly spread over cores (the kernel's `SO_REUSEPORT` hash
//! decides), the server as a whole admits less than the rate; with one connection it admits
//! `rate / workers`.
//!
//! - [`RequestRateLimit`]: a request over the rate gets Go's exact error reply `request reached
//!   rate limit` (empty payload, request metadata not echoed: vector V7), nothing for a oneway
//!   request, and the connection stays open (Go since v1.6.12). Heartbeats are not counted: the
//!   table answers them before any interceptor.
//! - [`ConnectionRateLimit`]: a connection over the rate is closed at once, before a byte is read
//!   (one log line), as Go's plugin closes it at accept.

use std::cell::Cell;
use std::net::SocketAddr;

use crate::clock::coarse_now_ns;
use crate::interceptor::{Interceptor, Refusal, Rejection};
use crate::Context;

/// Go's text for a request refused by the rate limiter (spec 4.6, 4.10), byte for byte.
pub const RATE_LIMITED: &str = "request reached rate limit";

/// A token bucket on one core: refilled continuously at `per_second`, holding at most `capacity`.
#[derive(Debug)]
pub struct TokenBucket {
    per_second: f64,
    capacity: f64,
    tokens: Cell<f64>,
    /// When it was last refilled, on the coarse monotonic clock (ns).
    last: Cell<u64>,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(per_second: f64, capacity: f64) -> Self {
        let capacity = capacity.max(1.0);
        TokenBucket {
            per_second: per_second.max(0.0),
            capacity,
            tokens: Cell::new(capacity),
            last: Cell::new(coarse_now_ns()),
        }
    }

    /// This core's bucket for a server-wide `per_second` split over `workers` cores: a second's
    /// worth of tokens at most, one at least.
    pub fn core_share(per_second: f64, workers: usize) -> Self {
        let share = per_second / workers.max(1) as f64;
        TokenBucket::new(share, share)
    }

    /// Takes a token if there is one.
    #[inline]
    pub fn try_take(&self) -> bool {
        self.try_take_at(coarse_now_ns())
    }

    /// Refills for the time since the last call, then takes a token if there is one. The clock is
    /// read on every call: refilling only when the bucket runs dry would credit the whole idle
    /// time at once and let twice the burst through. It is the coarse clock (the last timer tick,
    /// a few ms): tokens still accrue for exactly the time that passed, only in tick-sized steps.
    #[inline]
    fn try_take_at(&self, now_ns: u64) -> bool {
        let elapsed = now_ns.saturating_sub(self.last.get()) as f64 * 1e-9;
        self.last.set(now_ns);
        let tokens = (self.tokens.get() + elapsed * self.per_second).min(self.capacity);
        if tokens >= 1.0 {
            self.tokens.set(tokens - 1.0);
            true
        } else {
            self.tokens.set(tokens);
            false
        }
    }
}

/// Refuses requests over a rate with Go's `request reached rate limit`; the connection stays open.
#[derive(Debug)]
pub struct RequestRateLimit {
    bucket: TokenBucket,
}

impl RequestRateLimit {
    /// This core's share of a server-wide limit of `per_second` requests over `workers` cores
    /// (the demo binary's `--rate-limit`).
    pub fn per_second(per_second: f64, workers: usize) -> Self {
        RequestRateLimit {
            bucket: TokenBucket::core_share(per_second, workers),
        }
    }
}

impl Interceptor for RequestRateLimit {
    fn inspects_results(&self) -> bool {
        false
    }

    #[inline]
    fn before_call(&self, _ctx: &Context) -> Result<(), Rejection> {
        if self.bucket.try_take() {
            Ok(())
        } else {
            Err(Rejection::new(RATE_LIMITED))
        }
    }
}

/// Closes connections accepted over a rate, before reading from them.
#[derive(Debug)]
pub struct ConnectionRateLimit {
    bucket: TokenBucket,
}

impl ConnectionRateLimit {
    /// This core's share of a server-wide limit of `per_second` accepted connections over
    /// `workers` cores (the demo binary's `--conn-rate-limit`).
    pub fn per_second(per_second: f64, workers: usize) -> Self {
        ConnectionRateLimit {
            bucket: TokenBucket::core_share(per_second, workers),
        }
    }
}

impl Interceptor for ConnectionRateLimit {
    fn inspects_results(&self) -> bool {
        false
    }

    fn on_connect(&self, _peer: SocketAddr) -> Result<(), Refusal> {
        if self.bucket.try_take() {
            Ok(())
        } else {
            Err(Refusal::new("connection rate limit reached"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_lets_its_capacity_through_then_refuses() {
        let bucket = TokenBucket::new(10.0, 10.0);
        let now = bucket.last.get();
        let taken = (0..25).filter(|_| bucket.try_take_at(now)).count();
        assert_eq!(taken, 10);
    }

    #[test]
    fn the_bucket_refills_at_its_rate_up_to_its_capacity() {
        let bucket = TokenBucket::new(10.0, 10.0);
        let start = bucket.last.get();
        while bucket.try_take_at(start) {}
        // 0.35 s at 10/s: three whole tokens.
        let later = start + 350_000_000;
        assert_eq!((0..10).filter(|_| bucket.try_take_at(later)).count(), 3);
        // An hour idle refills only up to the capacity.
        let much_later = later + 3_600_000_000_000;
        assert_eq!(
            (0..50).filter(|_| bucket.try_take_at(much_later)).count(),
            10
        );
    }

    #[test]
    fn the_rate_is_split_over_the_cores_with_at_least_one_token() {
        let bucket = TokenBucket::core_share(100.0, 4);
        assert_eq!(bucket.per_second, 25.0);
        assert_eq!(bucket.capacity, 25.0);
        let tiny = TokenBucket::core_share(1.0, 8);
        assert_eq!(tiny.capacity, 1.0);
        assert!(tiny.try_take());
        assert!(!tiny.try_take());
    }
}
