//! One connection: read into a pooled buffer → decode every whole frame → dispatch → replies into
//! a pooled output buffer → one write for all that are ready.
//!
//! Two tasks share the connection's [`Shared`] state: the reader (this function's own task) and
//! a writer. Plain methods reply inline, straight into the output buffer; async methods run as
//! their own tasks and add their reply when done, so replies leave in completion order as Go's do
//! (docs/protocol.md 4.1). The writer swaps the output buffer with its spare and writes it whole,
//! so a batch of replies costs one write. Back-pressure: past `max_in_flight` running requests or
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

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::{Rc, Weak};

use bytes::BytesMut;
use monoio::io::{AsyncWriteRentExt, Splitable};
use monoio::net::TcpStream;
use ringrpc_codec::{DecodeError, Decoder};
use ringrpc_io::{FrameReader, WakerSlot};
use tracing::Instrument;

use crate::config::ServerConfig;
use crate::push::{Outbox, PushError, Registration};
use crate::runtime::WorkerState;
use crate::service::{Dispatch, LocalFuture, ServiceTable};

/// What the reader, the writer and running requests of one connection share.
struct Shared {
    /// Replies waiting to be written.
    out: RefCell<BytesMut>,
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
}

impl Shared {
    fn has_output(&self) -> bool {
        !self.out.borrow().is_empty() || !self.pushed.borrow().is_empty()
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
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    table: Rc<ServiceTable>,
    config: Rc<ServerConfig>,
    worker: Rc<WorkerState>,
) {
    // A `debug` span: at the default `info` level it is disabled and entering it on every poll
    // costs a branch; an enabled span costs the subscriber's enter and exit on every poll of the
    // reader, the writer and each async request (measured: ~15 instructions per request), so the
    // few `info` lines of a connection name their peer themselves.
    let span = tracing::debug_span!("connection", %peer, worker = worker.id().index());
    serve_in_span(stream, peer, table, config, worker)
        .instrument(span)
        .await
}

async fn serve_in_span(
    stream: TcpStream,
    peer: SocketAddr,
    table: Rc<ServiceTable>,
    config: Rc<ServerConfig>,
    worker: Rc<WorkerState>,
) {
    if let Err(refusal) = table.on_connect(peer) {
        tracing::info!(%peer, "connection refused: {}", refusal.0);
        return;
    }
    tracing::debug!("connection accepted");
    let (mut reader, writer) = stream.into_split();
    let shared = Rc::new(Shared {
        out: RefCell::new(worker.take_buffer(config.read_buffer)),
        pushed: RefCell::new(BytesMut::new()),
        max_pushed: config.max_pending_write,
        closed: Cell::new(false),
        in_flight: Cell::new(0),
        reading_done: Cell::new(false),
        aborted: Cell::new(false),
        writer: WakerSlot::default(),
        reader: WakerSlot::default(),
    });
    let outbox: Weak<dyn Outbox> = Rc::downgrade(&shared) as Weak<Shared>;
    let registration = Registration::new(peer, outbox);
    let spare = worker.take_buffer(config.read_buffer);
    let writer_task =
        monoio::spawn(write_loop(writer, shared.clone(), spare, table.clone()).in_current_span());

    let mut frames = FrameReader::new(
        worker.take_buffer(config.read_buffer),
        Decoder::new(config.limits),
        config.read_buffer / 2,
    );
    // Back-pressure: past either cap, no frame is dispatched (and nothing read) until the
    // writer or the running requests catch up.
    let over = || {
        !shared.aborted.get()
            && (shared.in_flight.get() >= config.max_in_flight
                || shared.out.borrow().len() >= config.max_pending_write)
    };
    'read: loop {
        // Contexts made from here to the next await belong to this connection (server push).
        registration.make_current();
        // Dispatch every whole frame buffered, as the caps allow.
        loop {
            if over() {
                shared.writer.wake();
                shared.reader.wait_until(|| !over()).await;
                registration.make_current();
            }
            if shared.aborted.get() {
                break 'read;
            }
            match frames.next_frame() {
                Ok(Some(request)) => {
                    tracing::debug!(
                        seq = request.seq(),
                        path = %String::from_utf8_lossy(request.service_path()),
                        method = %String::from_utf8_lossy(request.service_method()),
                        "request"
                    );
                    match table.dispatch(request, peer, &mut shared.out.borrow_mut()) {
                        Dispatch::Done => {}
                        Dispatch::Pending(reply) => spawn_pending(&shared, reply),
                        // Its error reply and every earlier one still go out (Rejection::and_close).
                        Dispatch::Close => break 'read,
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    log_protocol_error(peer, &e);
                    // Replies already made for earlier frames still go out; then the connection
                    // closes without answering the bad frame (spec 1.8).
                    break 'read;
                }
            }
        }
        if shared.has_output() {
            shared.writer.wake();
        }

        match frames.fill(&mut reader).await {
            Ok(0) => break,
            Ok(read) => table.on_read(read),
            Err(e) => {
                tracing::debug!(%peer, "read failed: {e}");
                break;
            }
        }
    }

    shared.reading_done.set(true);
    shared.writer.wake();
    // The writer finishes once running requests are done and every reply is written.
    let spare = writer_task.await;
    drop(registration);
    worker.return_buffer(spare);
    worker.return_buffer(frames.into_buffer());
    let out = shared.out.replace(BytesMut::new());
    worker.return_buffer(out);
    table.on_close(peer);
    tracing::debug!("connection closed");
}

/// Runs an async request as its own task; its reply joins the output buffer when it is done.
fn spawn_pending(shared: &Rc<Shared>, reply: LocalFuture<Option<BytesMut>>) {
    shared.in_flight.set(shared.in_flight.get() + 1);
    let shared = shared.clone();
    monoio::spawn(
        async move {
            let frame = reply.await;
            shared.in_flight.set(shared.in_flight.get() - 1);
            if let Some(frame) = frame {
                if !shared.aborted.get() {
                    shared.out.borrow_mut().extend_from_slice(&frame);
                }
            }
            shared.writer.wake();
            shared.reader.wake();
        }
        .in_current_span(),
    );
}

fn log_protocol_error(peer: SocketAddr, error: &DecodeError) {
    tracing::warn!(%peer, "closing connection: {error}");
}

/// Writes whatever pushes and replies are waiting, one write per batch, until the reader is done
/// and no request is still running.
async fn write_loop<W: monoio::io::AsyncWriteRent>(
    mut writer: W,
    shared: Rc<Shared>,
    mut spare: BytesMut,
    table: Rc<ServiceTable>,
) -> BytesMut {
    loop {
        shared
            .writer
            .wait_until(|| {
                shared.has_output()
                    || shared.aborted.get()
                    || (shared.reading_done.get() && shared.in_flight.get() == 0)
            })
            .await;
        if !shared.has_output() {
            // Nothing left to write: either aborted, or done and drained.
            if shared.aborted.get() || shared.in_flight.get() == 0 {
                break;
            }
            continue;
        }
        spare.clear();
        if shared.pushed.borrow().is_empty() {
            std::mem::swap(&mut *shared.out.borrow_mut(), &mut spare);
        } else {
            // Pushes first, then the replies: a copy, only in batches that carry a push.
            std::mem::swap(&mut *shared.pushed.borrow_mut(), &mut spare);
            let mut out = shared.out.borrow_mut();
            spare.extend_from_slice(&out);
            out.clear();
        }
        let len = spare.len();
        let (result, buf) = writer.write_all(spare).await;
        spare = buf;
        if result.is_ok() {
            table.on_write(len);
        }
        // A batch just left: the reader may be waiting for room.
        shared.reader.wake();
        if let Err(e) = result {
            tracing::debug!("write failed: {e}");
            shared.aborted.set(true);
            break;
        }
    }
    // Pushes made from now on fail with `Closed` instead of waiting for a writer that is gone.
    shared.closed.set(true);
    let _ = writer.shutdown().await;
    spare
}
