//! The per-core buffer pool: memory follows bytes in flight, not connections.
//!
//! A connection takes a buffer when bytes arrive or replies are queued and gives it back when it
//! drains (its large read buffer and its output buffer once it has been quiet for a second, from
//! the worker's sweeper), so an idle connection holds no buffer, or one small parked read buffer
//! if its requests came back to back until it stopped (see `connection`), and a burst's buffers
//! are reused by the next burst instead of being allocated again. Two size classes:
//!
//! - **small** ([`SMALL`], 1 KiB): the buffer a busy latency-bound connection parks its read
//!   with; one request (a 581-byte `Echo.Echo` is a 621-byte frame) fits whole.
//! - **large** (`read_buffer`, 64 KiB by default): reads of a streaming connection and output
//!   batches.
//!
//! Large buffers are lent to a bounded number of connections per core at once
//! (`max_large_readers`, see [`LargeLoan`]): a streaming connection past that reads into a buffer
//! that fits the frame it is receiving and batches its replies in buffers of their size, so that
//! hundreds of peers sending bulk requests (or sending and never reading) cannot each park a large
//! read buffer and a large output buffer (measured: 500 such peers on 2 cores held 32 MiB of each).
//!
//! A connection that stalls because its peer reads slowly or not at all keeps only the bytes it
//! holds, in allocations of their size ([`Pool::shrink`]), and gives its class buffers back.
//!
//! Each class keeps free buffers up to its share of `max_pooled_bytes` (counted in bytes, grown
//! buffers at their size); a buffer given back past the cap, or grown past four times its class,
//! is freed, and so is a grown large buffer while the core has no loan left ([`Pool::give`]).
//! Trim: every
//! [`Pool::trim`] (the worker's sweeper calls it every few seconds) frees half of the buffers that
//! stayed unused since the last trim, so memory returns to the allocator after a burst.

use std::cell::{Cell, RefCell};

use bytes::BytesMut;

/// The small class: the parked read buffer of a busy latency-bound connection.
pub const SMALL: usize = 1 << 10;

/// The least a streaming connection without a [`LargeLoan`] reads at a time (more when the rest
/// of its frame is larger), in a buffer of that size or its frame's: a dozen pipelined 581-byte
/// requests per read rather than one or two, and a fraction of a large buffer.
pub const UNLENT_READ: usize = 8 << 10;

/// One size class: free buffers, their bytes, and the fewest there were since the last trim.
struct Class {
    size: usize,
    /// Bytes of free buffers kept at most. Counted in bytes, not buffers: a buffer may come back
    /// grown to four times the class, and a cap in buffers then kept four times the bytes meant
    /// (measured: 500 never-reading peers left each worker's pool holding 128 KiB read buffers).
    max_free_bytes: usize,
    free: RefCell<Vec<BytesMut>>,
    free_bytes: Cell<usize>,
    low_water: Cell<usize>,
}

impl Class {
    fn new(size: usize, max_free_bytes: usize) -> Self {
        Class {
            size,
            max_free_bytes,
            free: RefCell::new(Vec::new()),
            free_bytes: Cell::new(0),
            low_water: Cell::new(0),
        }
    }

    #[inline]
    fn take(&self) -> BytesMut {
        let mut free = self.free.borrow_mut();
        match free.pop() {
            Some(buf) => {
                self.free_bytes.set(self.free_bytes.get() - buf.capacity());
                if free.len() < self.low_water.get() {
                    self.low_water.set(free.len());
                }
                buf
            }
            None => {
                self.low_water.set(0);
                BytesMut::with_capacity(self.size)
            }
        }
    }

    /// Keeps `buf` if it is of this class (or grown within four times it, if `keep_grown`) and
    /// the cap allows; frees it otherwise.
    #[inline]
    fn give(&self, mut buf: BytesMut, keep_grown: bool) {
        buf.clear();
        // Frames split off the front leave a view on the tail of the allocation: take the whole
        // allocation back when no frame holds it any more (never allocates). One still shared
        // with a frame an async call holds cannot be reused in place: let it go.
        if buf.capacity() < self.size && !buf.try_reclaim(self.size) {
            return;
        }
        if buf.capacity() > 4 * self.size || (!keep_grown && buf.capacity() > self.size) {
            return;
        }
        let bytes = self.free_bytes.get() + buf.capacity();
        if bytes <= self.max_free_bytes {
            self.free_bytes.set(bytes);
            self.free.borrow_mut().push(buf);
        }
    }

    fn trim(&self) -> usize {
        let mut free = self.free.borrow_mut();
        let unused = self.low_water.get().min(free.len());
        let drop = unused.div_ceil(2);
        let keep = free.len() - drop;
        let before = self.free_bytes.get();
        free.truncate(keep);
        free.shrink_to(keep.max(16));
        self.free_bytes
            .set(free.iter().map(BytesMut::capacity).sum());
        self.low_water.set(free.len());
        before - self.free_bytes.get()
    }

    fn pooled_bytes(&self) -> usize {
        self.free_bytes.get()
    }
}

/// A worker's buffers; one per core, used only on its thread.
pub struct Pool {
    small: Class,
    large: Class,
    /// Connections holding a [`LargeLoan`] now.
    large_readers: Cell<usize>,
    /// At most this many at once.
    max_large_readers: usize,
}

impl Pool {
    /// A pool whose large class is `large` bytes, keeping at most `max_pooled_bytes` of free
    /// buffers (three quarters for the large class), and lending large buffers to at most
    /// `max_large_readers` connections at once ([`LargeLoan`]).
    pub fn new(large: usize, max_pooled_bytes: usize, max_large_readers: usize) -> Self {
        let large = large.max(SMALL * 2);
        Pool {
            small: Class::new(SMALL, (max_pooled_bytes / 4).max(SMALL)),
            large: Class::new(large, (max_pooled_bytes / 4 * 3).max(large)),
            large_readers: Cell::new(0),
            max_large_readers,
        }
    }

    /// Connections holding a [`LargeLoan`] now.
    pub fn large_readers(&self) -> usize {
        self.large_readers.get()
    }

    /// The large class size.
    pub fn large_size(&self) -> usize {
        self.large.size
    }

    /// An empty small buffer.
    #[inline]
    pub fn take_small(&self) -> BytesMut {
        self.small.take()
    }

    /// An empty large buffer.
    #[inline]
    pub fn take_large(&self) -> BytesMut {
        self.large.take()
    }

    /// Gives a buffer back to its class (or frees it).
    ///
    /// A large buffer grown past its class (a bulk stream's reads and batches grow to 128 KiB
    /// and more) is kept only while the core has loans left ([`LargeLoan`]): mimalloc packs
    /// blocks of 64 KiB to 512 KiB into 4 MiB pages, and one live block keeps the touched part
    /// of its page resident. With more streaming connections than loans, grown buffers came and
    /// went by the hundred, and the pooled ones kept their pages resident: 500 peers sending
    /// 16 KiB requests and never reading (server/tests/hostile.rs, 2 workers, debug build)
    /// peaked at 70 to 73 MiB, against 57 to 60 MiB with grown buffers freed (3 runs each).
    /// Within the loans they are kept: freed, they cost 16 KiB requests at 10 x 32 (ten lent
    /// connections) 15 to 30 % of their req/s, as each batch grew a fresh buffer again.
    #[inline]
    pub fn give(&self, mut buf: BytesMut) {
        buf.clear();
        // Judge the class by the whole allocation, not the view left after frames were split.
        let _whole = buf.try_reclaim(self.large.size);
        if buf.capacity() >= self.large.size {
            let loans_left = self.large_readers.get() < self.max_large_readers;
            self.large.give(buf, loans_left)
        } else if buf.capacity() != 0 {
            self.small.give(buf, true)
        }
    }

    /// Gives back an output buffer: one that replies were appended to and nothing split off the
    /// front of. At its class size it is the allocation the pool made, and goes straight to its
    /// class (no reclaim to ask for: a batch per request at one request in flight makes this the
    /// common case); otherwise as [`Pool::give`].
    #[inline]
    pub fn give_output(&self, mut buf: BytesMut) {
        buf.clear();
        let capacity = buf.capacity();
        if capacity == self.small.size {
            self.small.give(buf, true)
        } else if capacity == self.large.size {
            self.large.give(buf, true)
        } else {
            self.give(buf)
        }
    }

    /// For a connection that stalls (its peer reads slower than it sends, or not at all): keeps
    /// what `buf` holds in an allocation of just that size and gives the larger one back (an
    /// empty `buf` keeps no allocation at all). A stalled connection then holds its bytes, not a
    /// buffer of a size class, for as long as it stalls: 500 peers that stopped reading held
    /// 64 KiB to 128 KiB each this way (server/tests/hostile.rs). Copies at most `buf.len()`
    /// bytes, and only when that saves half of the allocation or more.
    pub fn shrink(&self, buf: &mut BytesMut) {
        if buf.is_empty() {
            self.give(std::mem::take(buf));
        } else if buf.capacity() >= 2 * buf.len() {
            let mut fitted = BytesMut::with_capacity(buf.len());
            fitted.extend_from_slice(buf);
            self.give(std::mem::replace(buf, fitted));
        }
    }

    /// Frees half of the buffers unused since the last trim; returns the bytes freed.
    pub fn trim(&self) -> usize {
        self.small.trim() + self.large.trim()
    }

    /// Bytes held in free buffers.
    pub fn pooled_bytes(&self) -> usize {
        self.small.pooled_bytes() + self.large.pooled_bytes()
    }
}

/// A connection's claim on large buffers: while it holds one, it reads and batches its replies in
/// buffers of the large class; without one it streams in buffers that fit its frames and its
/// batches. A core lends at most `max_large_readers` at once, first come first served; a
/// connection gives its claim back when it stops streaming (quiet, or paused for a peer that does
/// not read) and when it closes (on drop), so the connections of a busy client keep theirs while
/// they stream and hundreds of bulk senders cost their bytes, not a large buffer each.
///
/// Whether the claim is held lives in a cell the connection shares with its writer, which picks
/// its output buffers' class by it: one state, kept by the loan.
pub struct LargeLoan<'a> {
    pool: &'a Pool,
    held: &'a Cell<bool>,
}

impl<'a> LargeLoan<'a> {
    /// No claim yet, on `pool`'s budget; `held` says whether it is held (set false here).
    pub fn new(pool: &'a Pool, held: &'a Cell<bool>) -> Self {
        held.set(false);
        LargeLoan { pool, held }
    }

    /// Whether this connection holds the claim.
    #[inline]
    pub fn held(&self) -> bool {
        self.held.get()
    }

    /// Takes the claim if the core has one left; whether it is held now.
    #[inline]
    pub fn claim(&mut self) -> bool {
        if !self.held() && self.pool.large_readers.get() < self.pool.max_large_readers {
            self.pool
                .large_readers
                .set(self.pool.large_readers.get() + 1);
            self.held.set(true);
        }
        self.held()
    }

    /// Gives the claim back (the connection gave its large buffer back).
    #[inline]
    pub fn release(&mut self) {
        if self.held() {
            self.pool
                .large_readers
                .set(self.pool.large_readers.get() - 1);
            self.held.set(false);
        }
    }
}

impl Drop for LargeLoan<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_by_class() {
        let pool = Pool::new(64 << 10, 1 << 20, 16);
        let small = pool.take_small();
        let large = pool.take_large();
        assert!(small.capacity() >= SMALL && small.capacity() < 64 << 10);
        assert!(large.capacity() >= 64 << 10);
        let (small_ptr, large_ptr) = (small.as_ptr(), large.as_ptr());
        pool.give(small);
        pool.give(large);
        assert_eq!(pool.take_small().as_ptr(), small_ptr);
        assert_eq!(pool.take_large().as_ptr(), large_ptr);
    }

    #[test]
    fn output_buffers_go_back_to_their_class() {
        let pool = Pool::new(64 << 10, 1 << 20, 16);
        let mut small = pool.take_small();
        small.extend_from_slice(b"a reply");
        let ptr = small.as_ptr();
        pool.give_output(small);
        assert_eq!(pool.take_small().as_ptr(), ptr);
        // Grown past its class: judged by its size as any buffer is.
        let mut grown = pool.take_small();
        grown.extend_from_slice(&[0; 3000]);
        pool.give_output(grown);
        assert_eq!(pool.pooled_bytes(), pool.take_small().capacity());
    }

    #[test]
    fn the_pool_is_capped_and_trimmed_after_a_burst() {
        let pool = Pool::new(64 << 10, 1 << 20, 16);
        // A burst: 100 large buffers out at once, then all back.
        let burst: Vec<_> = (0..100).map(|_| pool.take_large()).collect();
        for buf in burst {
            pool.give(buf);
        }
        // The cap: three quarters of 1 MiB in 64 KiB buffers.
        assert_eq!(pool.pooled_bytes(), 12 * (64 << 10));
        // Nothing used since: each trim frees half of what stayed unused.
        pool.trim();
        pool.trim();
        let after = pool.pooled_bytes();
        pool.trim();
        assert!(pool.pooled_bytes() < after);
        for _ in 0..10 {
            pool.trim();
        }
        assert_eq!(pool.pooled_bytes(), 0, "all of it returns to the allocator");
    }

    #[test]
    fn a_stalled_buffer_keeps_only_its_bytes() {
        let pool = Pool::new(64 << 10, 1 << 20, 16);
        let mut buf = pool.take_large();
        buf.extend_from_slice(&[7u8; 100]);
        pool.shrink(&mut buf);
        assert_eq!(&buf[..], &[7u8; 100][..]);
        assert!(buf.capacity() < 1 << 10, "{}", buf.capacity());
        assert_eq!(pool.pooled_bytes(), 64 << 10, "the large one went back");
        let mut empty = pool.take_large();
        pool.shrink(&mut empty);
        assert_eq!(empty.capacity(), 0);
        // Nearly full: not worth a copy.
        let mut full = pool.take_small();
        full.extend_from_slice(&[1u8; 1000]);
        let ptr = full.as_ptr();
        pool.shrink(&mut full);
        assert_eq!(full.as_ptr(), ptr);
    }

    #[test]
    fn the_cap_counts_bytes_not_buffers() {
        let pool = Pool::new(64 << 10, 1 << 20, 16);
        // Read buffers that grew to twice the class while a frame was received.
        for _ in 0..20 {
            pool.give(BytesMut::with_capacity(128 << 10));
        }
        assert!(
            pool.pooled_bytes() <= 3 * (1 << 20) / 4,
            "{}",
            pool.pooled_bytes()
        );
        assert_eq!(pool.pooled_bytes(), 6 * (128 << 10));
    }

    #[test]
    fn grown_large_buffers_are_kept_only_while_loans_are_left() {
        let pool = Pool::new(64 << 10, 1 << 20, 1);
        let mut grown = pool.take_large();
        grown.reserve(100 << 10);
        let capacity = grown.capacity();
        assert!(capacity > 64 << 10);
        pool.give(grown);
        assert_eq!(pool.pooled_bytes(), capacity, "a loan is left: kept");
        let held = Cell::new(false);
        let mut loan = LargeLoan::new(&pool, &held);
        assert!(loan.claim());
        let grown = pool.take_large();
        assert_eq!(grown.capacity(), capacity, "the grown one is reused");
        pool.give(grown);
        assert_eq!(pool.pooled_bytes(), 0, "no loan left: freed");
        pool.give(pool.take_large());
        assert_eq!(
            pool.pooled_bytes(),
            64 << 10,
            "one of the class is still kept"
        );
    }

    #[test]
    fn oversized_and_shared_buffers_are_not_pooled() {
        let pool = Pool::new(64 << 10, 1 << 20, 16);
        pool.give(BytesMut::with_capacity(1 << 20));
        pool.give(BytesMut::new());
        assert_eq!(pool.pooled_bytes(), 0);
    }

    #[test]
    fn large_buffers_are_lent_to_a_bounded_number_of_connections() {
        let pool = Pool::new(64 << 10, 1 << 20, 2);
        let held = [Cell::new(false), Cell::new(false), Cell::new(false)];
        let (mut a, mut b, mut c) = (
            LargeLoan::new(&pool, &held[0]),
            LargeLoan::new(&pool, &held[1]),
            LargeLoan::new(&pool, &held[2]),
        );
        assert!(a.claim() && a.claim(), "a claim is held once");
        assert!(b.claim());
        assert!(!c.claim(), "past the budget");
        assert_eq!(pool.large_readers(), 2);
        a.release();
        a.release();
        assert!(
            !held[0].get() && held[1].get(),
            "the cells say who holds a claim"
        );
        assert!(c.claim(), "a released claim goes to the next asking");
        drop(b);
        assert_eq!(pool.large_readers(), 1, "a dropped claim is given back");
        drop(c);
        assert_eq!(pool.large_readers(), 0);
    }
}
