//! `ringrpc-echo-bufring`: the echo limit rebuilt on io_uring's provided buffer rings, to measure
//! the other buffer design (the kernel picks a buffer only when bytes arrive) against the one the
//! server uses.
//!
//! On the wire it is `ringrpc-echo-limit`: it reads whole rpcx frames by their 16-byte prefix
//! (magic and total length, docs/protocol.md 1.1), sets each frame's response bit (spec 1.2) and
//! writes them back, batched; it prints `listening on ADDR` once bound and stops on SIGINT or
//! SIGTERM (stop accepting, stop reading, finish the writes, exit). Inside it is not monoio but one
//! thread driving an `io_uring` directly, because monoio 0.2.4 has no buffer-select op:
//!
//! - **receive**: one multishot receive per connection (`IORING_RECV_MULTISHOT`) that selects its
//!   buffer from a provided buffer ring ([`BufRing`], one per thread): the kernel takes a buffer
//!   only when bytes arrive, so an idle connection holds none. Each completion's bytes are copied
//!   at once into the connection's output buffer and the ring buffer goes back to the ring in the
//!   same loop turn.
//! - **frames**: the output buffer *is* the frame assembly: bytes are appended behind the replies
//!   already whole, a frame that spans ring buffers grows in place, and a frame gets its response
//!   bit when its last byte is in. So a byte is copied once (ring → output), except the unfinished
//!   frame's bytes, which move once more when a send takes the replies ahead of them.
//! - **send**: at the end of each loop turn every connection with whole replies and no send in
//!   flight sends all of them in one `send`; replies that arrive meanwhile wait for the next turn.
//! - **back-pressure**: past [`MAX_PENDING_WRITE`] bytes of whole replies waiting, the receive is
//!   cancelled, and armed again once a send has made room.
//! - **memory**: output buffers come from a per-thread [`Pool`] when a connection has something to
//!   write and go back to it when the connection has drained: an idle connection holds its
//!   bookkeeping and nothing else. The ring's buffers are one anonymous mapping of
//!   `--buf-count × --buf-size` bytes, resident once the kernel has written into them.
//! - **ring empty**: when every ring buffer is taken, the kernel ends a multishot receive with
//!   `ENOBUFS`; the connection arms a new one at the end of the turn, once the buffers of the turn
//!   are back in the ring. A multishot receive that ends for any other reason than EOF or an error
//!   (no `IORING_CQE_F_MORE`) is armed again the same way.
//!
//! One thread only (`--threads 1`): enough to compare per-request costs with the echo limit on
//! one core, which is what the measurements do. The ring layout (buffer size and count) is set by
//! `--buf-size` and `--buf-count`; see [`DEFAULT_BUF_SIZE`] for the default and why.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU16, Ordering};

use clap::Parser;
use io_uring::{cqueue, opcode, squeue, types, IoUring, SubmissionQueue, Submitter};
use ringrpc_codec::{Decoder, Header, Limits, MessageType};
use ringrpc_io::CpuList;
use slab::Slab;

/// Command line.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "ringrpc-echo-bufring",
    about = "Bare framed rpcx echo on a raw io_uring with multishot receive into a provided buffer ring (reads frames by length, flips the response bit, writes them back)"
)]
pub struct Args {
    /// Address to listen on (port 0 picks a free port, printed on stdout).
    #[arg(long, default_value = "127.0.0.1:8972")]
    pub addr: SocketAddr,
    /// Worker threads: only 1 is supported (one event loop, one buffer ring).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// CPU to pin the thread to (the first of the list: `1`, `0-3` or `0,2`) [default: unpinned].
    #[arg(long)]
    pub cpus: Option<CpuList>,
    /// Bytes per ring buffer.
    #[arg(long, default_value_t = DEFAULT_BUF_SIZE)]
    pub buf_size: u32,
    /// Ring buffers (a power of two, at most 32768).
    #[arg(long, default_value_t = DEFAULT_BUF_COUNT)]
    pub buf_count: u16,
    /// Set up the ring with IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN (completions
    /// are processed only when this thread waits for them). Off by default, as in monoio.
    #[arg(long)]
    pub defer_taskrun: bool,
}

/// Default ring buffer size, 16 KiB: a pipelined batch of 32 echo frames (32 × 621 bytes) is
/// received in two completions rather than five (4 KiB) and a 48 KiB request in three.
pub const DEFAULT_BUF_SIZE: u32 = 16 << 10;

/// Default ring buffers, 512: 8 MiB of buffers in all, the machine's locked-memory limit kept as a
/// budget (the buffers themselves turned out not to count against it on kernel 6.18).
/// Buffers go back to the ring in the turn that filled them, so the ring only has to cover what
/// the kernel receives between two turns of the loop.
pub const DEFAULT_BUF_COUNT: u16 = 512;

/// Bytes of whole replies waiting past which a connection stops receiving, as the server's
/// default `max_pending_write` (and `ringrpc-echo-limit`'s).
const MAX_PENDING_WRITE: usize = 4 << 20;

/// Size of a fresh output buffer; one latency-bound reply or a batch of 32 echo replies fits.
const OUT_BUFFER: usize = 32 << 10;

/// Free output buffers kept per thread, in bytes, as the server pool's default cap.
const MAX_POOLED_BYTES: usize = 4 << 20;

/// Buffer group id of the ring (one ring per io_uring, so any id does).
const BUF_GROUP: u16 = 0;

/// Time the drain after SIGINT/SIGTERM may take before the loop gives up on slow peers.
const DRAIN_DEADLINE_SECS: u64 = 5;

/// What went wrong starting or running the loop.
#[derive(Debug, thiserror::Error)]
pub enum EchoError {
    #[error("only --threads 1 is supported (one event loop), not {0}")]
    Threads(usize),
    #[error("--buf-count must be a power of two between 1 and 32768, not {0}")]
    BufCount(u16),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot set up the io_uring: {0}")]
    Ring(io::Error),
    #[error("cannot map {bytes} bytes for the buffer ring: {source}")]
    Map { bytes: usize, source: io::Error },
    #[error("cannot register the buffer ring (kernel 5.19 or later, locked-memory limit): {0}")]
    RegisterBufRing(io::Error),
    #[error("cannot watch SIGINT/SIGTERM: {0}")]
    Signals(io::Error),
    #[error("io_uring_enter failed: {0}")]
    Submit(io::Error),
}

/// What a completion belongs to: the top byte of its `user_data`, the connection's slab key below.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
enum Op {
    Accept = 1,
    Recv = 2,
    Send = 3,
    Cancel = 4,
    Signal = 5,
    Deadline = 6,
    AcceptRetry = 7,
}

impl Op {
    fn token(self, key: usize) -> u64 {
        ((self as u64) << 56) | key as u64
    }

    fn from_token(token: u64) -> (Option<Op>, usize) {
        let key = (token & ((1 << 56) - 1)) as usize;
        let op = match token >> 56 {
            1 => Op::Accept,
            2 => Op::Recv,
            3 => Op::Send,
            4 => Op::Cancel,
            5 => Op::Signal,
            6 => Op::Deadline,
            7 => Op::AcceptRetry,
            _ => return (None, key),
        };
        (Some(op), key)
    }
}

/// An anonymous private mapping: page-aligned (the ring must be) and resident only once written.
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    fn new(len: usize) -> Result<Mapping, EchoError> {
        // SAFETY: a fresh anonymous mapping; no existing memory is touched.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(EchoError::Map {
                bytes: len,
                source: io::Error::last_os_error(),
            });
        }
        Ok(Mapping {
            ptr: ptr.cast(),
            len,
        })
    }
}

/// The provided buffer ring: `count` buffers of `size` bytes that the kernel picks from when a
/// multishot receive has bytes to deliver, and that [`BufRing::recycle`] puts back.
///
/// The ring (16 bytes per entry) is registered with the kernel and pinned; the buffers are
/// ordinary memory the kernel writes into. Neither is ever unmapped: the kernel may write into a
/// buffer until the io_uring is torn down, which finishes asynchronously after the ring fd is
/// closed, so the mappings live as long as the process.
struct BufRing {
    entries: Mapping,
    buffers: Mapping,
    size: usize,
    mask: u16,
    /// Our copy of the ring's tail; published to the kernel by [`BufRing::publish`].
    tail: u16,
    /// Buffers recycled since the last publish.
    unpublished: u16,
}

impl BufRing {
    /// Maps and registers a ring of `count` buffers of `size` bytes as `BUF_GROUP`, all buffers in it.
    fn register(submitter: &Submitter<'_>, count: u16, size: u32) -> Result<BufRing, EchoError> {
        if count == 0 || !count.is_power_of_two() || count > 32768 {
            return Err(EchoError::BufCount(count));
        }
        let entries = Mapping::new(count as usize * std::mem::size_of::<types::BufRingEntry>())?;
        let buffers = Mapping::new(count as usize * size as usize)?;
        // SAFETY: `entries` is a page-aligned mapping of `count` entries that is never unmapped
        // (see the type's doc), so it stays valid while the ring is registered.
        unsafe { submitter.register_buf_ring(entries.ptr as u64, count, BUF_GROUP) }
            .map_err(EchoError::RegisterBufRing)?;
        let mut ring = BufRing {
            entries,
            buffers,
            size: size as usize,
            mask: count - 1,
            tail: 0,
            unpublished: 0,
        };
        for bid in 0..count {
            ring.recycle(bid);
        }
        ring.publish();
        Ok(ring)
    }

    /// The first `len` bytes of buffer `bid`, as the kernel delivered them.
    #[inline]
    fn bytes(&self, bid: u16, len: usize) -> &[u8] {
        assert!(bid <= self.mask && len <= self.size);
        // SAFETY: in bounds (checked above) of a mapping that lives as long as the process; the
        // kernel wrote these bytes before posting the completion that named `bid`, and will not
        // write into the buffer again before it is recycled.
        unsafe { std::slice::from_raw_parts(self.buffers.ptr.add(bid as usize * self.size), len) }
    }

    /// Puts buffer `bid` back at the ring's tail (seen by the kernel at the next publish).
    #[inline]
    fn recycle(&mut self, bid: u16) {
        let base = self.entries.ptr.cast::<types::BufRingEntry>();
        // SAFETY: the index is masked into the ring, which has `mask + 1` entries. The entry at
        // the tail is not one the kernel reads until the tail is published past it.
        let entry = unsafe { &mut *base.add((self.tail & self.mask) as usize) };
        entry.set_addr(self.buffers.ptr as u64 + bid as u64 * self.size as u64);
        entry.set_len(self.size as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
        self.unpublished += 1;
    }

    /// Lets the kernel see the buffers recycled since the last call.
    #[inline]
    fn publish(&mut self) {
        if self.unpublished == 0 {
            return;
        }
        self.unpublished = 0;
        let base = self.entries.ptr.cast::<types::BufRingEntry>();
        // SAFETY: the tail is the `resv` field of the first entry, a u16 in our mapping, aligned
        // for a u16; the kernel only reads it. The release store orders the entry writes before it.
        let tail = unsafe { AtomicU16::from_ptr(types::BufRingEntry::tail(base).cast_mut()) };
        tail.store(self.tail, Ordering::Release);
    }

    /// Bytes mapped for the ring and its buffers.
    fn mapped_bytes(&self) -> usize {
        self.entries.len + self.buffers.len
    }
}

/// Free output buffers of this thread: taken when a connection has replies to write, given back
/// when it has drained, so that idle connections hold none and a burst reuses the last one's.
struct Pool {
    free: Vec<Vec<u8>>,
    free_bytes: usize,
}

impl Pool {
    fn take(&mut self) -> Vec<u8> {
        match self.free.pop() {
            Some(buf) => {
                self.free_bytes -= buf.capacity();
                buf
            }
            None => Vec::with_capacity(OUT_BUFFER),
        }
    }

    /// Keeps `buf` for reuse unless the pool is full or `buf` grew past four times the class (a
    /// large frame's buffer): those are freed, so a burst of large frames leaves no residue.
    fn give(&mut self, mut buf: Vec<u8>) {
        let capacity = buf.capacity();
        if capacity == 0
            || capacity > 4 * OUT_BUFFER
            || self.free_bytes + capacity > MAX_POOLED_BYTES
        {
            return;
        }
        buf.clear();
        self.free_bytes += capacity;
        self.free.push(buf);
    }
}

/// One connection: its socket, the bytes it has received and not yet sent, and its ops in flight.
struct Connection {
    fd: OwnedFd,
    /// Whole replies (the first `whole` bytes), then the frame being received, if any. Empty,
    /// with no allocation, while the connection is idle.
    out: Vec<u8>,
    /// Bytes of whole frames at the front of `out`, response bits set.
    whole: usize,
    /// The batch being sent; `sent` of its bytes have left.
    sending: Vec<u8>,
    sent: usize,
    /// A multishot receive is armed (its last completion, without `F_MORE`, has not come).
    receiving: bool,
    send_in_flight: bool,
    /// Receiving was stopped on purpose: the cap on pending replies was reached.
    paused: bool,
    /// No more receiving: EOF, an error, misframing or shutdown. Closes once the replies are out.
    done_reading: bool,
    /// A send failed: the replies still waiting are dropped.
    failed: bool,
    /// Listed in `EventLoop::ready` for this turn's sends.
    ready: bool,
}

impl Connection {
    fn new(fd: OwnedFd) -> Connection {
        Connection {
            fd,
            out: Vec::new(),
            whole: 0,
            sending: Vec::new(),
            sent: 0,
            receiving: false,
            send_in_flight: false,
            paused: false,
            done_reading: false,
            failed: false,
            ready: false,
        }
    }

    /// Marks the frames completed by the bytes just appended to `out`: sets their response bit
    /// and counts them as whole. Fails on misframing (bad magic, absurd length).
    #[inline]
    fn mark_whole_frames(&mut self, decoder: &Decoder) -> Result<(), ringrpc_codec::DecodeError> {
        loop {
            let rest = &mut self.out[self.whole..];
            let Some(len) = decoder.frame_len(rest)? else {
                return Ok(());
            };
            if rest.len() < len {
                return Ok(());
            }
            if let Some(header) = Header::view_mut(rest) {
                header.set_message_type(MessageType::Response);
            }
            self.whole += len;
        }
    }

    /// Whether nothing is left to do but close: reading over and no op or reply outstanding.
    fn finished(&self) -> bool {
        self.done_reading
            && !self.receiving
            && !self.send_in_flight
            && (self.whole == 0 || self.failed)
    }
}

/// Counts reported on stderr at exit: how the ring fared.
#[derive(Default, Debug)]
struct Stats {
    accepted: u64,
    recv_completions: u64,
    sends: u64,
    /// Multishot receives ended by an empty ring.
    enobufs: u64,
    /// Multishot receives ended without `F_MORE` for another reason than EOF, error or cancel.
    rearms: u64,
    pauses: u64,
    max_connections: usize,
}

/// Submission side of the ring, with the submitter to flush it when it is full.
struct Sq<'a> {
    sq: SubmissionQueue<'a>,
    submitter: Submitter<'a>,
}

impl Sq<'_> {
    fn push(&mut self, entry: squeue::Entry) -> Result<(), EchoError> {
        loop {
            // SAFETY: every buffer an entry points to is owned by a `Connection` (or the loop)
            // that stays put, unmoved and unchanged, until the entry's completion: `sending` is
            // not touched while `send_in_flight`, and the timespec lives in the loop.
            if unsafe { self.sq.push(&entry) }.is_ok() {
                return Ok(());
            }
            self.sq.sync();
            self.submitter.submit().map_err(EchoError::Submit)?;
            self.sq.sync();
        }
    }
}

/// The event loop of one thread: the listener, the connections, the buffer ring and the pool.
struct EventLoop {
    listener: TcpListener,
    signals: OwnedFd,
    conns: Slab<Connection>,
    ring: BufRing,
    pool: Pool,
    decoder: Decoder,
    /// Connections with whole replies to send at the end of this turn.
    ready: Vec<usize>,
    /// Connections whose multishot receive must be armed again at the end of this turn.
    rearm: Vec<usize>,
    stopping: bool,
    deadline: Box<types::Timespec>,
    accept_retry: Box<types::Timespec>,
    stats: Stats,
}

impl EventLoop {
    fn arm_accept(&mut self, sq: &mut Sq<'_>) -> Result<(), EchoError> {
        sq.push(
            opcode::AcceptMulti::new(types::Fd(self.listener.as_raw_fd()))
                .build()
                .user_data(Op::Accept.token(0)),
        )
    }

    fn arm_recv(&mut self, sq: &mut Sq<'_>, key: usize) -> Result<(), EchoError> {
        let conn = &mut self.conns[key];
        conn.receiving = true;
        sq.push(
            opcode::RecvMulti::new(types::Fd(conn.fd.as_raw_fd()), BUF_GROUP)
                .build()
                .user_data(Op::Recv.token(key)),
        )
    }

    fn cancel_recv(&mut self, sq: &mut Sq<'_>, key: usize) -> Result<(), EchoError> {
        sq.push(
            opcode::AsyncCancel::new(Op::Recv.token(key))
                .build()
                .user_data(Op::Cancel.token(key)),
        )
    }

    /// Stops reading `key` for good; it closes once its replies are out.
    fn stop_reading(&mut self, sq: &mut Sq<'_>, key: usize) -> Result<(), EchoError> {
        let conn = &mut self.conns[key];
        if conn.done_reading {
            return Ok(());
        }
        conn.done_reading = true;
        // The unfinished frame will never be whole.
        conn.out.truncate(conn.whole);
        if conn.receiving {
            self.cancel_recv(sq, key)?;
        }
        self.close_if_finished(key);
        Ok(())
    }

    /// Closes `key` and gives its buffers back if nothing is left to do on it.
    fn close_if_finished(&mut self, key: usize) {
        if !self.conns[key].finished() {
            return;
        }
        let conn = self.conns.remove(key);
        self.pool.give(conn.out);
        self.pool.give(conn.sending);
        // Dropping `conn.fd` closes the socket.
    }

    fn on_accept(&mut self, sq: &mut Sq<'_>, cqe: &cqueue::Entry) -> Result<(), EchoError> {
        if cqe.result() >= 0 {
            // SAFETY: a completed accept's result is a new socket fd that nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(cqe.result() as RawFd) };
            if !self.stopping {
                let key = self.conns.insert(Connection::new(fd));
                self.stats.accepted += 1;
                self.stats.max_connections = self.stats.max_connections.max(self.conns.len());
                self.arm_recv(sq, key)?;
            }
        }
        if !cqueue::more(cqe.flags()) && !self.stopping {
            if cqe.result() < 0 {
                // Out of fds (or memory): the multishot accept ended; try again in 10 ms
                // rather than spin on the same error.
                sq.push(
                    opcode::Timeout::new(&*self.accept_retry)
                        .build()
                        .user_data(Op::AcceptRetry.token(0)),
                )?;
            } else {
                self.arm_accept(sq)?;
            }
        }
        Ok(())
    }

    fn on_recv(
        &mut self,
        sq: &mut Sq<'_>,
        key: usize,
        cqe: &cqueue::Entry,
    ) -> Result<(), EchoError> {
        let result = cqe.result();
        let more = cqueue::more(cqe.flags());
        if let Some(bid) = cqueue::buffer_select(cqe.flags()) {
            self.stats.recv_completions += 1;
            let len = result.max(0) as usize;
            let conn = &mut self.conns[key];
            if !conn.done_reading && len > 0 {
                if conn.out.capacity() == 0 {
                    conn.out = self.pool.take();
                }
                conn.out.extend_from_slice(self.ring.bytes(bid, len));
            }
            // Its bytes are copied: the buffer is the kernel's again.
            self.ring.recycle(bid);
            let conn = &mut self.conns[key];
            if !conn.done_reading && len > 0 {
                let before = conn.whole;
                if conn.mark_whole_frames(&self.decoder).is_err() {
                    // Misframed: write back the frames before it, then close.
                    self.stop_reading(sq, key)?;
                }
                let conn = &mut self.conns[key];
                if conn.whole > before && !conn.ready {
                    conn.ready = true;
                    self.ready.push(key);
                }
                if conn.whole >= MAX_PENDING_WRITE && !conn.paused && !conn.done_reading {
                    conn.paused = true;
                    self.stats.pauses += 1;
                    if conn.receiving && more {
                        self.cancel_recv(sq, key)?;
                    }
                }
            }
        }
        if more {
            return Ok(());
        }
        // The multishot receive has ended.
        let Some(conn) = self.conns.get_mut(key) else {
            return Ok(());
        };
        conn.receiving = false;
        match result {
            // EOF, or a reset: a peer that goes only ends its own connection.
            0 => return self.stop_reading(sq, key),
            r if r < 0 && r != -libc::ENOBUFS && r != -libc::ECANCELED => {
                return self.stop_reading(sq, key)
            }
            r if r == -libc::ENOBUFS => self.stats.enobufs += 1,
            r if r > 0 => self.stats.rearms += 1,
            _ => {}
        }
        // Ended by an empty ring, by the kernel, or by our cancel (a pause, or a stop): receive
        // again unless the connection is still paused (the send that makes room re-arms it) or
        // has stopped reading (then it may be finished).
        if !conn.paused && !conn.done_reading {
            self.rearm.push(key);
        }
        self.close_if_finished(key);
        Ok(())
    }

    fn on_send(&mut self, sq: &mut Sq<'_>, key: usize, result: i32) -> Result<(), EchoError> {
        let conn = &mut self.conns[key];
        conn.send_in_flight = false;
        // A send of a non-empty batch that sends nothing would only repeat: fail it like an error.
        if result <= 0 {
            conn.failed = true;
            conn.whole = 0;
            conn.out.clear();
            conn.sending.clear();
            self.stop_reading(sq, key)?;
            self.close_if_finished(key);
            return Ok(());
        }
        conn.sent += result as usize;
        if conn.sent < conn.sending.len() {
            // The socket took part of the batch: send the rest.
            return self.send_rest(sq, key);
        }
        self.pool.give(std::mem::take(&mut conn.sending));
        if conn.out.is_empty() {
            self.pool.give(std::mem::take(&mut conn.out));
        }
        if conn.whole > 0 && !conn.ready {
            conn.ready = true;
            self.ready.push(key);
        }
        if conn.paused && conn.whole < MAX_PENDING_WRITE {
            conn.paused = false;
            if !conn.receiving && !conn.done_reading {
                self.rearm.push(key);
            }
        }
        self.close_if_finished(key);
        Ok(())
    }

    /// Sends every whole reply of `key` in one send. The unfinished frame behind them, if any,
    /// moves to a fresh buffer, so that receiving can go on while the batch is in flight.
    fn start_send(&mut self, sq: &mut Sq<'_>, key: usize) -> Result<(), EchoError> {
        let conn = &mut self.conns[key];
        debug_assert!(!conn.send_in_flight && conn.sending.is_empty());
        let mut batch = std::mem::take(&mut conn.out);
        if batch.len() > conn.whole {
            conn.out = self.pool.take();
            conn.out.extend_from_slice(&batch[conn.whole..]);
            batch.truncate(conn.whole);
        }
        conn.whole = 0;
        conn.sending = batch;
        conn.sent = 0;
        self.stats.sends += 1;
        self.send_rest(sq, key)
    }

    fn send_rest(&mut self, sq: &mut Sq<'_>, key: usize) -> Result<(), EchoError> {
        let conn = &mut self.conns[key];
        conn.send_in_flight = true;
        let rest = &conn.sending[conn.sent..];
        on_send_submitted();
        sq.push(
            opcode::Send::new(
                types::Fd(conn.fd.as_raw_fd()),
                rest.as_ptr(),
                rest.len().min(u32::MAX as usize) as u32,
            )
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(Op::Send.token(key)),
        )
    }

    /// The end of a loop turn: buffers back to the kernel, then receives armed again, then one
    /// send per connection with whole replies.
    fn end_turn(&mut self, sq: &mut Sq<'_>) -> Result<(), EchoError> {
        self.ring.publish();
        let mut rearm = std::mem::take(&mut self.rearm);
        for key in rearm.drain(..) {
            if let Some(conn) = self.conns.get(key) {
                if !conn.receiving && !conn.paused && !conn.done_reading {
                    self.arm_recv(sq, key)?;
                }
            }
        }
        self.rearm = rearm;
        let mut ready = std::mem::take(&mut self.ready);
        for key in ready.drain(..) {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            conn.ready = false;
            if !conn.send_in_flight && conn.whole > 0 && !conn.failed {
                self.start_send(sq, key)?;
            }
        }
        self.ready = ready;
        Ok(())
    }

    /// SIGINT/SIGTERM: stop accepting and reading; the loop ends once every reply is out, or
    /// after [`DRAIN_DEADLINE_SECS`].
    fn begin_stop(&mut self, sq: &mut Sq<'_>) -> Result<(), EchoError> {
        self.stopping = true;
        sq.push(
            opcode::AsyncCancel::new(Op::Accept.token(0))
                .build()
                .user_data(Op::Cancel.token(0)),
        )?;
        sq.push(
            opcode::Timeout::new(&*self.deadline)
                .build()
                .user_data(Op::Deadline.token(0)),
        )?;
        let keys: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.stop_reading(sq, key)?;
        }
        Ok(())
    }

    /// Runs until shutdown has drained every connection.
    fn run(&mut self, uring: &mut IoUring) -> Result<(), EchoError> {
        let (submitter, sq, mut cq) = uring.split();
        let mut sq = Sq { sq, submitter };
        self.arm_accept(&mut sq)?;
        sq.push(
            opcode::PollAdd::new(types::Fd(self.signals.as_raw_fd()), libc::POLLIN as u32)
                .build()
                .user_data(Op::Signal.token(0)),
        )?;
        loop {
            sq.sq.sync();
            match sq.submitter.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                // The CQ is full: reap before submitting more.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
                Err(e) => return Err(EchoError::Submit(e)),
            }
            cq.sync();
            for cqe in &mut cq {
                let (op, key) = Op::from_token(cqe.user_data());
                match op {
                    Some(Op::Recv) => self.on_recv(&mut sq, key, &cqe)?,
                    Some(Op::Send) => self.on_send(&mut sq, key, cqe.result())?,
                    Some(Op::Accept) => self.on_accept(&mut sq, &cqe)?,
                    Some(Op::AcceptRetry) if !self.stopping => self.arm_accept(&mut sq)?,
                    Some(Op::Signal) => self.begin_stop(&mut sq)?,
                    Some(Op::Deadline) => return Ok(()),
                    Some(Op::Cancel | Op::AcceptRetry) | None => {}
                }
            }
            cq.sync();
            self.end_turn(&mut sq)?;
            if self.stopping && self.conns.is_empty() {
                return Ok(());
            }
        }
    }
}

/// Called once per send submitted, never inlined: `scripts/instructions.sh` counts its calls in
/// the callgrind dump for its requests/write column.
#[inline(never)]
fn on_send_submitted() {
    std::hint::black_box(());
}

/// Blocks SIGINT and SIGTERM for this thread and returns a signalfd that becomes readable when
/// one arrives, so that the event loop sees them as a completion like any other.
fn watch_signals() -> io::Result<OwnedFd> {
    // SAFETY: plain libc calls on a sigset we own; the returned fd is new and owned by us.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// Binds a listener like the server's: SO_REUSEADDR, TCP_NODELAY inherited by accepted sockets,
/// a 4096 backlog, blocking (io_uring waits on a blocking socket instead of returning EAGAIN).
fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// Sets up the ring, the buffer ring and the listener, prints the address, and serves until
/// SIGINT or SIGTERM.
fn serve(args: &Args) -> Result<(), EchoError> {
    if args.threads != 1 {
        return Err(EchoError::Threads(args.threads));
    }
    if let Some(CpuList(cpus)) = &args.cpus {
        if let Some(&cpu) = cpus.first() {
            if !ringrpc_io::pin_current_thread(cpu) {
                eprintln!("ringrpc-echo-bufring: cannot pin to CPU {cpu}; running unpinned");
            }
        }
    }
    let signals = watch_signals().map_err(EchoError::Signals)?;
    let mut builder = IoUring::builder();
    // Multishot completions can outrun the submissions: room for many per turn.
    builder.setup_cqsize(4096);
    if args.defer_taskrun {
        builder.setup_single_issuer().setup_defer_taskrun();
    }
    let mut uring = builder.build(512).map_err(EchoError::Ring)?;
    let ring = BufRing::register(&uring.submitter(), args.buf_count, args.buf_size)?;
    let listener = bind(args.addr).map_err(|source| EchoError::Bind {
        addr: args.addr,
        source,
    })?;
    let local = listener.local_addr().map_err(|source| EchoError::Bind {
        addr: args.addr,
        source,
    })?;
    let mut event_loop = EventLoop {
        listener,
        signals,
        conns: Slab::new(),
        ring,
        pool: Pool {
            free: Vec::new(),
            free_bytes: 0,
        },
        decoder: Decoder::new(Limits::default()),
        ready: Vec::new(),
        rearm: Vec::new(),
        stopping: false,
        deadline: Box::new(types::Timespec::new().sec(DRAIN_DEADLINE_SECS)),
        accept_retry: Box::new(types::Timespec::new().nsec(10_000_000)),
        stats: Stats::default(),
    };
    println!("listening on {local}");
    let result = event_loop.run(&mut uring);
    eprintln!(
        "ringrpc-echo-bufring: {:?}, ring {} buffers × {} B ({} KiB mapped)",
        event_loop.stats,
        args.buf_count,
        args.buf_size,
        event_loop.ring.mapped_bytes() >> 10
    );
    result
}

fn main() -> ExitCode {
    let args = Args::parse();
    match serve(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringrpc-echo-bufring: {e}");
            ExitCode::FAILURE
        }
    }
}
