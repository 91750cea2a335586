//! One connection: read into a pooled buffer → decode every whole frame → dispatch → replies into
//! a pooled output buffer → one write for all that are ready.
//!
//! Two tasks share the connection's [`Shared`] state: the reader (this function's own task) and
//! a writer. Plain methods reply inline, straight into the output buffer; async methods run as
//! their own tasks and add their reply when done, so replies leave in completion order as Go's do
//! (docs/protocol.md 4.1). The writer takes the whole output buffer and writes it at once, so a
//! batch of replies costs one write. Back-pressure: past `max_in_flight` running requests or
//! `max_pending_write` bytes waiting, the reader stops reading until the writer or the handlers
//! catch up. Nothing here knows JSON or services: it sees frames and a [`ServiceTable`] (whose
//! interceptors are asked about the connection when it opens, told the bytes read and written,
//! and told when it closes).
//!
//! Server pushes ([`crate::push`]) go into a buffer of their own, because an inline handler pushes
//! while the reply buffer is borrowed for its reply; the writer sends them ahead of the replies of
//! the same batch. Each connection runs inside a `debug`-level `tracing` span naming its peer and
//! worker, with a `debug` event per request: at the default `info` level both cost a disabled
//! check and nothing else.
//!
//! Memory follows bytes in flight (see [`crate::buffers`]):
//! - a new connection waits for its first byte holding no buffer, and so does a sporadic one
//!   between requests (one that has made a call, or whose requests come more than a tick of the
//!   worker's clock apart): it waits for the socket to become readable ([`WaitReadable`]) and
//!   only then takes a buffer;
//! - a busy one (its next request came within a tick) parks its read with a small (1 KiB) buffer
//!   instead, one operation per request: a latency-bound request fits whole;
//! - a read that fills its buffer makes the connection *streaming*: it moves what it holds to a
//!   large pooled buffer at once (so a pipelined burst is read whole, not 1 KiB at a time) and
//!   reads with it, and when it then stays quiet for a second the worker's sweeper cancels that
//!   read (no byte is lost: a cancelled read either read nothing or returns what it read) and the
//!   buffer goes back to the pool. Large buffers go to at most `max_large_readers` streaming
//!   connections of a core at once ([`LargeLoan`]); past them a streaming connection reads 8 KiB
//!   or the rest of its frame at a time, into a buffer that fits, and its replies are batched in
//!   buffers of their size;
//! - the output buffer is taken from the pool when a reply is written (small for a quiet
//!   connection, large for a streaming one); after a write it stays for the next replies, and
//!   the sweeper gives it back once the connection has been quiet for a second;
//! - a connection whose peer reads slower than it sends (reading paused for its queued replies,
//!   or a write the socket took only in part) keeps only the bytes it holds, in buffers of their
//!   size, until it moves again (limits: a peer that stopped reading holds little until the
//!   write timeout resets it).

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::{Rc, Weak};

use bytes::{Buf, BytesMut};
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, CancelableAsyncReadRent, OwnedReadHalf, Splitable,
};
use monoio::net::TcpStream;
use ringrpc_codec::{DecodeError, Decoder};
use ringrpc_io::{FrameReader, WakerSlot};
use tracing::Instrument;

use crate::buffers::{LargeLoan, Pool, SMALL, UNLENT_READ};
use crate::config::ServerConfig;
use crate::limits::{ConnectionWatch, Reason};
use crate::push::{Outbox, PushError, Registration};
use crate::runtime::{Accepted, ConnectionEntry, WorkerState};
use crate::service::{Dispatch, LocalFuture, ServiceTable};

/// limits: queued reply bytes past which frames ask the per-core budget.
const BUDGET_CHECK_FROM: usize = 8 << 10;

/// limits: within a run of frames, the budget is asked again once replies have grown by this
/// much: asked after every frame, it cost 14 instructions per request at 10 x 32 (callgrind), and
/// a connection's share of the budget moves by no more than this between two asks.
const BUDGET_CHECK_STEP: usize = 4 << 10;

/// `ECANCELED`: a read the sweeper cancelled.
const CANCELED: i32 = 125;

/// A read half that can wait for bytes to arrive without lending the kernel a buffer: a TCP
/// socket's (io_uring poll). Other streams (TLS, whose plaintext may already wait in rustls's
/// buffers; in-memory streams) keep the default, `false` at once, and are read as usual.
pub trait WaitReadable {
    /// Waits until the stream can be read (bytes, EOF or an error); `false` if this stream cannot
    /// wait that way.
    #[allow(async_fn_in_trait)]
    async fn wait_readable(&mut self) -> bool {
        false
    }
}

impl WaitReadable for OwnedReadHalf<TcpStream> {
    async fn wait_readable(&mut self) -> bool {
        // SAFETY: the stream is shared by the two halves of one connection on one thread, as
        // monoio's split does for its own reads and writes; `readable` only clones the socket's
        // fd handle into a poll operation and touches nothing the writer uses.
        let stream = unsafe { &*self.0.get() };
        // An error is left for the read that follows to report.
        let _ = stream.readable(true).await;
        true
    }
}

/// What the reader, the writer and running requests of one connection share.
struct Shared {
    /// Server pushes waiting to be written (sent before the replies of the same batch).
    pushed: RefCell<BytesMut>,
    /// Push bytes that may wait before a push is refused ([`PushError::Backlog`]).
    max_pushed: usize,
    /// The writer has stopped: pushes are refused.
    closed: Cell<bool>,
    /// Async requests still running.
    in_flight: Cell<usize>,
    /// The reader has stopped: EOF, shutdown, a protocol error or a failed write.
    reading_done: Cell<bool>,
    /// Stop at once: drop what is pending (protocol error or write failure).
    aborted: Cell<bool>,
    writer: WakerSlot,
    reader: WakerSlot,
    worker: Rc<WorkerState>,
    /// Holds the output buffer: replies waiting to be written ([`ConnectionEntry::output`]).
    entry: Rc<ConnectionEntry>,
    /// The reader is streaming (large reads): replies come in batches, so the output buffer is
    /// taken from the large class if the connection holds a loan of large buffers (`lent`);
    /// otherwise from the small one (a reply or two at a time, or grown to fit the batch).
    streaming: Cell<bool>,
    /// The reader holds its core's loan of large buffers: kept by its [`LargeLoan`].
    lent: Cell<bool>,
}

impl Shared {
    /// The output buffer, with room taken from the pool if it has none.
    #[inline(always)]
    fn out(&self) -> std::cell::RefMut<'_, BytesMut> {
        let mut out = self.entry.output.borrow_mut();
        if out.capacity() == 0 {
            *out = if self.streaming.get() && self.lent.get() {
                self.worker.pool.take_large()
            } else {
                self.worker.pool.take_small()
            };
        }
        out
    }

    /// The output buffer's size class for the connection's mode.
    #[inline]
    fn output_class(&self) -> usize {
        if self.streaming.get() && self.lent.get() {
            self.worker.pool.large_size()
        } else {
            SMALL
        }
    }

    fn has_output(&self) -> bool {
        !self.entry.output.borrow().is_empty() || !self.pushed.borrow().is_empty()
    }
}

impl Outbox for Shared {
    fn push_frame(&self, write: &mut dyn FnMut(&mut BytesMut)) -> Result<(), PushError> {
        if self.closed.get() || self.aborted.get() {
            return Err(PushError::Closed);
        }
        let mut pushed = self.pushed.borrow_mut();
        if pushed.len() >= self.max_pushed {
            return Err(PushError::Backlog {
                pending: pushed.len(),
            });
        }
        write(&mut pushed);
        drop(pushed);
        self.writer.wake();
        Ok(())
    }
}

/// Serves one accepted connection until the peer closes it, shutdown stops it, or it breaks the
/// protocol (logged with the reason; other connections are untouched, spec 1.8).
pub fn serve(
    accepted: Accepted,
    table: Rc<ServiceTable>,
    config: Rc<ServerConfig>,
) -> impl std::future::Future<Output = ()> {
    // A `debug` span: at the default `info` level it is disabled and entering it on every poll
    // costs a branch; an enabled span costs the subscriber's enter and exit on every poll of the
    // reader and each async request (measured: ~15 instructions per request), so the few `info`
    // lines of a connection name their peer themselves. The writer runs outside it
    // (`serve_halves`).
    let span = tracing::debug_span!(
        "connection",
        peer = %accepted.peer,
        worker = accepted.worker.id().index()
    );
    // Not an `async fn`: one wrapped in another holds its arguments twice.
    serve_in_span(accepted, table, config).instrument(span)
}

async fn serve_in_span(accepted: Accepted, table: Rc<ServiceTable>, config: Rc<ServerConfig>) {
    let Accepted {
        stream,
        peer,
        worker,
        entry,
    } = accepted;
    if let Err(refusal) = table.on_connect(peer) {
        tracing::info!(%peer, "connection refused: {}", refusal.0);
        return;
    }
    // Until the first byte arrives, hold no buffer at all.
    if let Err(e) = stream.readable(true).await {
        tracing::debug!(%peer, "connection failed before its first byte: {e}");
        table.on_close(peer);
        return;
    }
    tracing::debug!("connection accepted");
    // One port for every client: anything but binary rpcx (HTTP, TLS) is served elsewhere. A peek,
    // once per connection: the binary path below reads the socket as it did before.
    let protocol = crate::protocol_sniff::sniff_socket(&stream, config.tls.is_some());
    if config.tls_only && config.tls.is_some() && protocol != crate::protocol_sniff::Protocol::Tls {
        entry.watch.refuse(Reason::PlainRefused, None);
        table.on_close(peer);
        return;
    }
    if protocol != crate::protocol_sniff::Protocol::Binary {
        let shared = crate::port_sharing::Shared {
            peer,
            table: &table,
            config: &config,
            worker: &worker,
            entry: &entry,
        };
        Box::pin(shared.serve(protocol, stream)).await;
        table.on_close(peer);
        tracing::debug!("connection closed");
        return;
    }
    let (reader, writer) = stream.into_split();
    // The loop runs as a task of its own, which the executor polls directly: awaited inside this
    // one (boxed), every poll of the reader went through this future and the span's checks first
    // (17 instructions per request at 10 x 1, callgrind), and an async block around it to give it
    // owned handles cost 26 more. Spawned at the first byte, its state is allocated then, as the
    // box was, not held by every idle connection.
    let loop_task = spawn_in_current_span(serve_halves(
        reader,
        writer,
        peer,
        table.clone(),
        config.clone(),
        worker.clone(),
        entry.clone(),
    ));
    loop_task.await;
    table.on_close(peer);
    tracing::debug!("connection closed");
}

/// The connection loop over any stream halves (a socket's, or an in-memory stream's in tests and
/// fuzzing). It owns its handles, so that its future is a task of its own (`serve`) with no
/// wrapper to go through on every poll.
pub async fn serve_halves<R, W>(
    mut reader: R,
    writer: W,
    peer: SocketAddr,
    table: Rc<ServiceTable>,
    config: Rc<ServerConfig>,
    worker: Rc<WorkerState>,
    entry: Rc<ConnectionEntry>,
) where
    R: AsyncReadRent + CancelableAsyncReadRent + WaitReadable,
    W: AsyncWriteRent + 'static,
{
    // Borrowed from here on: the handles live as long as the loop.
    let (table, config, worker, entry) = (&table, &*config, &worker, &entry);
    let shared = Rc::new(Shared {
        pushed: RefCell::new(BytesMut::new()),
        max_pushed: config.max_pending_write,
        closed: Cell::new(false),
        in_flight: Cell::new(0),
        reading_done: Cell::new(false),
        aborted: Cell::new(false),
        writer: WakerSlot::default(),
        reader: WakerSlot::default(),
        worker: worker.clone(),
        entry: entry.clone(),
        streaming: Cell::new(false),
        lent: Cell::new(false),
    });
    // limits: the cells the sweeper and the reply budget read (server/src/limits/watch.rs).
    let watch = &entry.watch;
    let outbox: Weak<dyn Outbox> = Rc::downgrade(&shared) as Weak<Shared>;
    let registration = Registration::new(peer, outbox);
    // The writer does not run in the connection's span; only its one event names it. A task
    // wrapped in a span, even a disabled one, pays the span's enter and exit checks on every poll,
    // two per request at one request in flight (callgrind, Echo 10 x 1: 2,642 -> 2,620
    // instructions per request). Spawned two ways instead (bare when the span is disabled, as
    // async requests are), its loop was no longer inlined into its task's poll: 2,656 with the
    // connection's task spawned two ways too.
    let writer_task = monoio::spawn(write_loop(
        writer,
        shared.clone(),
        watch.clone(),
        table.clone(),
        tracing::Span::current(),
    ));
    let over_budget = |out: usize| budget_pauses(watch, out);

    let large = worker.pool.large_size();
    let mut frames = FrameReader::new(BytesMut::new(), Decoder::new(config.limits), SMALL);
    // Streaming: the last read filled its room, so more is likely waiting: read big.
    let mut streaming = false;
    // Sporadic: requests come seconds apart (or it has sent one and may send no more): between
    // two of them it holds no read buffer (see `WaitReadable`). Cleared when a request follows
    // the last within a tick of the worker's clock (250 ms), set again after a longer wait.
    let mut sporadic = true;
    // Reading big takes one of the core's loans of large buffers; past them, a streaming
    // connection reads into a buffer that fits its frames (buffers.rs, `max_large_readers`).
    let mut loan = LargeLoan::new(&worker.pool, &shared.lent);
    // The last read, the first after a wait for readability (a new connection's first, or a
    // sporadic one's), filled its small buffer (or took more than a small read) and ended inside
    // a frame: the start of a pipelined burst, whose rest is on its way. Its whole frames are
    // answered with the rest, after the next read (into a large buffer). Answered at once, the
    // first one or two would go out in a write of their own, and the client's pipeline would stay
    // split in two groups for the life of the connection (10 x 32 Echo under callgrind: 16 to 29
    // requests per write, as the connections' first reads fell, against the echo limit's 32).
    // Only then: a busy connection's requests come one or a few at a time, and a reply held back
    // for a read would be latency added to them. One read only, and the sweeper's cancel of a
    // quiet read (a second) ends the wait: a client that stalls inside that frame still has its
    // whole frames answered.
    let mut burst_cut = false;
    let over = || over_caps(&shared, config, watch);
    // The context every request of the connection is parsed into, in place; its pushes go to this
    // connection.
    let mut ctx = table.connection_context(peer, registration.id());
    'read: loop {
        // limits: past the reply budget, the caps are checked before the frames too, not only
        // after each: a connection with a write in progress then makes no reply that would wait
        // behind it ([`ConnectionWatch::over_budget`]).
        if watch.worker_over_budget() && over() {
            wait_for_room(&shared, &mut frames, &mut loan, &over, config.max_in_flight).await;
        }
        // Dispatch every whole frame buffered, as the caps allow. `caps_checked`: the caps were
        // checked after the last frame dispatched, with the output as it is left (known for a
        // lone frame, below): the check before the next read would find what that one found
        // (nothing runs in between), so it is skipped (23 instructions per request at 10 x 1,
        // callgrind).
        let caps_checked = 'frames: loop {
            if shared.aborted.get() {
                break 'read;
            }
            if burst_cut {
                // The frames of this read wait for the rest of their burst (see `burst_cut`).
                break 'frames false;
            }
            // One borrow of the output buffer for a run of frames (nothing else runs meanwhile);
            // the run ends when the buffer holds no whole frame or past a cap.
            let capped = {
                let mut out = shared.out();
                // limits: the output length at which the next frame asks the reply budget
                // (every `BUDGET_CHECK_STEP`) or stops at `max_pending_write`: one compare per
                // frame below it.
                let mut check_at = 0;
                let buffered_before = frames.buffered();
                let capped = loop {
                    match frames.next_frame_into(ctx.request_slot()) {
                        Ok(true) => {
                            ctx.begin_request();
                            let request = ctx.request();
                            tracing::debug!(
                                seq = request.seq(),
                                path = %String::from_utf8_lossy(request.service_path()),
                                method = %String::from_utf8_lossy(request.service_method()),
                                "request"
                            );
                            // A lent frame (a lone one) is given its own handle only if it
                            // may outlive the call (`ServiceTable::dispatch_in`).
                            let dispatched =
                                table.dispatch_in(&mut ctx, &mut out, &mut |request| {
                                    frames.own_lent(request)
                                });
                            ctx.end_request();
                            match dispatched {
                                Dispatch::Done => {}
                                Dispatch::Pending(reply) => {
                                    spawn_pending(&shared, reply);
                                    // Only this adds a request in flight while the run goes on
                                    // (replies finish in other tasks), and there was room before
                                    // the run: the read waits for room past the caps.
                                    if shared.in_flight.get() >= config.max_in_flight {
                                        break true;
                                    }
                                }
                                // Its error reply and every earlier one still go out
                                // (Rejection::and_close).
                                Dispatch::Close => break 'read,
                            }
                        }
                        Ok(false) => break false,
                        Err(e) => {
                            log_protocol_error(watch, &e);
                            // Replies already made for earlier frames still go out; then the
                            // connection closes without answering the bad frame (spec 1.8).
                            break 'read;
                        }
                    }
                    if out.len() >= check_at {
                        if out.len() >= config.max_pending_write {
                            break true;
                        }
                        check_at = (out.len() + BUDGET_CHECK_STEP).min(config.max_pending_write);
                        if over_budget(out.len()) {
                            break true;
                        }
                    }
                };
                // limits: idle and frame-read clocks, once per run (the worker's coarse clock
                // does not move within one).
                if frames.buffered() != buffered_before {
                    watch.frame_done();
                }
                capped
            };
            // A lent frame is all its read brought (`Decoder::next_lending_into`): the run was
            // that frame alone, and the caps were checked after it with the output as it is left
            // (the first frame's check is always made; an async request is not lent). Known so,
            // not tracked in the loop: a variable live there cost 5 to 10 instructions per request
            // at 10 x 32 (callgrind).
            let lone = ctx.request().is_lent();
            // The last request's frame goes (a lent one's lend ends): the receive buffer is then
            // unshared, to be refilled in place.
            frames.release(ctx.request_slot());
            if !capped {
                break 'frames lone;
            }
            // Past a cap: no further frame until the writer or the running requests catch up.
            wait_for_room(&shared, &mut frames, &mut loan, &over, config.max_in_flight).await;
        };
        if shared.has_output() {
            shared.writer.wake();
        }
        // After a lone frame (`caps_checked`) nothing is left buffered, and its `frame_done`
        // stopped the frame-read clock already.
        if !caps_checked {
            // limits: the frame-read clock.
            watch.buffered(frames.buffered());
            // Past a cap, read nothing more until there is room (limits: past the per-core reply
            // budget, the biggest queues stop being read). One check per read, unless made after
            // the last frame above.
            if over_caps(&shared, config, watch) {
                wait_for_room(&shared, &mut frames, &mut loan, &over, config.max_in_flight).await;
                if shared.aborted.get() {
                    break 'read;
                }
            }
        }

        // The buffer for the next read: its size class follows the connection's mode.
        if frames.buffered() == 0 {
            let class_ok = if streaming {
                // A large buffer whose frames are all answered: the room they took is reclaimed
                // in place, where a check of the capacity alone (short of it after the frames
                // were split off) swapped it for another large buffer at every read (4.6
                // instructions per request more at 10 x 32, about 150 a read, callgrind).
                frames.capacity() >= large || frames.try_reclaim(large)
            } else {
                // The rest of a large buffer is kept while the loan is (a connection between
                // two bursts: moving it to a small buffer broke 581-byte requests at 10 x 32 into
                // writes of 16 instead of 31); a buffer fitted to frames past the loans is not
                // parked by a quiet connection.
                frames.capacity() != 0
                    && (frames.capacity() < 2 * SMALL || (loan.held() && frames.capacity() < large))
            };
            if !class_ok {
                if streaming && loan.claim() {
                    worker
                        .pool
                        .give(frames.replace_buffer(worker.pool.take_large()));
                    frames.set_read_size(large / 2);
                } else if streaming && frames.capacity() != 0 {
                    // Past the core's loans: keep this buffer (it fits the frames read).
                    frames.set_read_size(UNLENT_READ);
                } else {
                    loan.release();
                    worker
                        .pool
                        .give(frames.replace_buffer(worker.pool.take_small()));
                    frames.set_read_size(SMALL);
                }
            }
        } else if (streaming || frames.wanted() > frames.spare().max(SMALL))
            && frames.capacity() < large
        {
            // A frame larger than the small buffer, or a read that filled the small buffer and
            // left part of a frame: move that start to a large one (one copy of at most 1 KiB);
            // larger frames still grow the buffer as they need. Without the second case a
            // pipelined burst was read 1 KiB at a time for as long as each read ended inside a
            // frame, so its replies left one or two per write and the client's pipeline broke
            // into small groups that never merged again (10 x 32 Echo on a quiet machine: about
            // 4 requests per write against the echo limit's 32).
            // (limits: not merely a partial frame, whose `wanted` is the small read size: that
            // promoted every slowloris connection, which never fills a read, to a large buffer.)
            // (`capacity` is the room from the first unread byte on: a large buffer that frames
            // were taken off is moved to a whole one too, so the next read gets its full room.
            // Skipping that for connections holding the loan made 16 KiB requests at 10 x 32 go
            // 3 to a write instead of 13, under callgrind.)
            if loan.claim() {
                worker
                    .pool
                    .give(frames.replace_buffer(worker.pool.take_large()));
                frames.set_read_size(large / 2);
            } else {
                // Past the core's loans: room for the rest of this frame (or `UNLENT_READ`) and
                // no more (the frame reader's `reserve` would double the buffer), so that a read
                // takes about a frame and a paused connection holds about a frame of requests.
                frames.set_read_size(UNLENT_READ);
                if frames.spare() < frames.wanted() {
                    let fitted = BytesMut::with_capacity(frames.buffered() + frames.wanted());
                    worker.pool.give(frames.replace_buffer(fitted));
                }
            }
            streaming = true;
            shared.streaming.set(true);
        }

        // This read follows a wait for readability holding no buffer: it starts a burst.
        let mut after_wait = false;
        let read = if streaming {
            frames
                .fill_cancelable(&mut reader, entry.cancel_handle())
                .await
        } else {
            if sporadic && frames.buffered() == 0 {
                // Between a sporadic connection's requests: wait holding no buffer, so that one
                // gone idle after a call holds none (a quiet read cannot be taken back: monoio's
                // cancelable read costs 460 to 560 instructions, too much for every request).
                worker.pool.give(frames.replace_buffer(BytesMut::new()));
                // Nor a loan of large buffers, which another connection may use meanwhile.
                loan.release();
                let waiting_since = worker.tick();
                // Busy if the next request came within the tick: read it and the ones after
                // with a parked small read, as a latency-bound client wants (one operation per
                // request, not two). A stream that cannot wait so reads that way too.
                sporadic =
                    reader.wait_readable().await && worker.tick().wrapping_sub(waiting_since) > 1;
                // A small buffer for the request that came (the empty one it waited with goes).
                frames.replace_buffer(worker.pool.take_small());
                frames.set_read_size(SMALL);
                after_wait = true;
            }
            frames.fill(&mut reader).await
        };
        // A busy connection that waited past a tick for its next request goes back to waiting
        // without a buffer.
        sporadic |= entry.read_done(worker) > 1;
        match read {
            Ok(0) => break,
            Ok(n) => {
                table.on_read(n);
                streaming = n >= frames.last_room() || n > SMALL;
                // (`after_wait`: the read was a small one.)
                burst_cut = after_wait
                    && streaming
                    && frames
                        .whole_frames_len()
                        .is_ok_and(|whole| whole < frames.buffered());
                shared.streaming.set(streaming);
            }
            Err(e) if e.raw_os_error() == Some(CANCELED) => {
                // Quiet for a while: the large buffer goes back at the top of the loop, and
                // frames held for the rest of their burst are answered without it.
                burst_cut = false;
                streaming = false;
                shared.streaming.set(false);
                frames.set_read_size(SMALL);
            }
            Err(e) => {
                tracing::debug!(%peer, "read failed: {e}");
                break;
            }
        }
    }

    // A frame lent to the request its loop ended on is let go before the buffer goes back.
    frames.release(ctx.request_slot());
    drop(ctx);
    shared.reading_done.set(true);
    shared.writer.wake();
    // The writer finishes once running requests are done and every reply is written.
    writer_task.await;
    drop(registration);
    worker.pool.give(frames.into_buffer());
    worker
        .pool
        .give(shared.entry.output.replace(BytesMut::new()));
}

/// Back-pressure: past a cap (running requests, queued reply bytes, the per-core reply budget), no
/// frame is dispatched and nothing read until the writer or the running requests catch up. False
/// once the connection aborts. A function, not a closure of the connection loop, so that the check
/// before each read stays inlined: with a third call site the closure was outlined, a call of 29
/// instructions per request at 10 x 1 (callgrind).
#[inline(always)]
fn over_caps(shared: &Shared, config: &ServerConfig, watch: &ConnectionWatch) -> bool {
    let out = shared.entry.output.borrow().len();
    !shared.aborted.get()
        && (shared.in_flight.get() >= config.max_in_flight
            || out >= config.max_pending_write
            || budget_pauses(watch, out))
}

/// limits: whether the per-core reply budget pauses the connection; asked only past a small batch
/// (waiting or being written) or while paused, so that pipelined small replies pay one compare.
#[inline(always)]
fn budget_pauses(watch: &ConnectionWatch, out: usize) -> bool {
    (out + watch.writing() > BUDGET_CHECK_FROM || watch.is_paused()) && watch.over_budget(out)
}

/// Runs an async request as its own task; its reply joins the output buffer when it is done.
fn spawn_pending(shared: &Rc<Shared>, reply: LocalFuture<Option<BytesMut>>) {
    shared.in_flight.set(shared.in_flight.get() + 1);
    let shared = shared.clone();
    spawn_in_current_span(async move {
        let frame = reply.await;
        shared.in_flight.set(shared.in_flight.get() - 1);
        if let Some(frame) = frame {
            if !shared.aborted.get() {
                shared.out().extend_from_slice(&frame);
            }
        }
        shared.writer.wake();
        shared.reader.wake();
    });
}

/// Spawns `task` in the current span (the connection's), or bare when that span is disabled: a
/// task wrapped in a disabled span still pays its enter and exit checks on every poll.
fn spawn_in_current_span<F>(task: F) -> monoio::task::JoinHandle<F::Output>
where
    F: std::future::Future + 'static,
    F::Output: 'static,
{
    let span = tracing::Span::current();
    if span.is_disabled() {
        monoio::spawn(task)
    } else {
        monoio::spawn(task.instrument(span))
    }
}

/// Waits until `over` (the connection's back-pressure caps) no longer holds or the connection
/// aborts; the writer is woken first, since its progress is what makes room.
async fn wait_for_room(
    shared: &Shared,
    frames: &mut FrameReader,
    loan: &mut LargeLoan<'_>,
    over: &impl Fn() -> bool,
    max_in_flight: usize,
) {
    shared.writer.wake();
    if shared.in_flight.get() < max_in_flight {
        // limits: paused for its queued replies, not for its running requests.
        shrink_while_paused(frames, loan, shared);
    }
    shared.reader.wait_until(|| !over()).await;
}

/// limits: a connection paused for its queued replies (its peer reads slowly or not at all) keeps
/// only the bytes it holds, not buffers of a size class, until it is read again: its read buffer
/// and its reply buffer shrink to their contents ([`crate::buffers::Pool::shrink`]), and its
/// loan of large buffers goes to another connection. The read path takes a buffer of the right
/// class again (and the loan, if one is left) when reading resumes.
fn shrink_while_paused(frames: &mut FrameReader, loan: &mut LargeLoan<'_>, shared: &Shared) {
    let pool = &shared.worker.pool;
    let buffered = frames.buffered();
    if frames.capacity() >= 2 * buffered.max(1) {
        pool.give(frames.replace_buffer(BytesMut::with_capacity(buffered)));
        if buffered < pool.large_size() {
            loan.release();
        }
    }
    pool.shrink(&mut shared.entry.output.borrow_mut());
}

/// One refusal: logged (rate-limited, with the peer) and counted by the worker's limits.
fn log_protocol_error(watch: &ConnectionWatch, error: &DecodeError) {
    watch.refuse(Reason::Malformed, Some(error));
}

/// Writes whatever pushes and replies are waiting, one write per batch, until the reader is done
/// and no request is still running. Each batch's buffer goes back to the pool once written.
async fn write_loop<W: AsyncWriteRent>(
    mut writer: W,
    shared: Rc<Shared>,
    watch: Rc<ConnectionWatch>,
    table: Rc<ServiceTable>,
    span: tracing::Span,
) {
    // The last write was short: the peer reads slower than we write (see `write_batch`).
    let mut congested = false;
    loop {
        shared
            .writer
            .wait_until(|| {
                shared.has_output()
                    || shared.aborted.get()
                    || (shared.reading_done.get() && shared.in_flight.get() == 0)
            })
            .await;
        let batch = if shared.pushed.borrow().is_empty() {
            let batch = std::mem::take(&mut *shared.entry.output.borrow_mut());
            if batch.is_empty() {
                // Nothing left to write (the buffer stays): either aborted, or done and drained.
                *shared.entry.output.borrow_mut() = batch;
                if shared.aborted.get() || shared.in_flight.get() == 0 {
                    break;
                }
                continue;
            }
            batch
        } else {
            // Pushes first, then the replies: a copy, only in batches that carry a push.
            let mut batch = std::mem::take(&mut *shared.pushed.borrow_mut());
            let out = std::mem::take(&mut *shared.entry.output.borrow_mut());
            batch.extend_from_slice(&out);
            shared.worker.pool.give_output(out);
            batch
        };
        let len = batch.len();
        watch.write_started(len, 0); // limits: write timeout, reply budget
        let (result, batch) =
            write_batch(&mut writer, batch, &shared.worker.pool, &mut congested).await;
        if result.is_ok() {
            table.on_write(len);
        }
        // The written buffer stays as the output buffer when no reply started a new one meanwhile
        // and it is of the mode's class: a connection answering request after request reuses
        // it, no round trip through the pool per write (about 100 instructions per request at one
        // request in flight, callgrind). The sweeper takes it back once the connection is quiet
        // ([`ConnectionEntry::output`]).
        let mut out = shared.entry.output.borrow_mut();
        watch.write_finished(out.len()); // limits
        if out.capacity() == 0
            && batch.capacity() == shared.output_class()
            && result.is_ok()
            && !shared.aborted.get()
        {
            let mut batch = batch;
            batch.clear();
            *out = batch;
        } else {
            shared.worker.pool.give_output(batch);
        }
        drop(out);
        // A batch just left: the reader may be waiting for room.
        shared.reader.wake();
        if let Err(e) = result {
            tracing::debug!(parent: &span, "write failed: {e}");
            shared.aborted.set(true);
            break;
        }
    }
    // Pushes made from now on fail with `Closed` instead of waiting for a writer that is gone.
    shared.closed.set(true);
    let _ = writer.shutdown().await;
}

/// Writes the whole batch. A write the socket takes only in part means its send buffer is full:
/// the peer reads slower than we write, or not at all. From then on, until a batch goes out in
/// one write, what is left to write waits in a buffer of its own size ([`Pool::shrink`]) instead
/// of the pooled batch buffer, so a connection whose peer stopped reading holds its unsent bytes
/// and no more until the write timeout resets it.
async fn write_batch<W: AsyncWriteRent>(
    writer: &mut W,
    mut batch: BytesMut,
    pool: &Pool,
    congested: &mut bool,
) -> (std::io::Result<()>, BytesMut) {
    while !batch.is_empty() {
        if *congested {
            pool.shrink(&mut batch);
        }
        let (result, written) = writer.write(batch).await;
        batch = written;
        match result {
            Ok(0) => return (Err(std::io::ErrorKind::WriteZero.into()), batch),
            // All of it: the buffer stays whole (not advanced to its end), for the pool to take
            // back as it lent it.
            Ok(n) if n == batch.len() => {
                *congested = false;
                batch.clear();
            }
            Ok(n) => {
                *congested = true;
                batch.advance(n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return (Err(e), batch),
        }
    }
    (Ok(()), batch)
}
