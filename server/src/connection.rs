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
//! interceptors are asked about the connection when it opens and told when it closes).

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;

use bytes::BytesMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, Splitable};
use monoio::net::TcpStream;
use ringrpc_codec::{DecodeError, Decoder};
use ringrpc_io::{FrameReader, WakerSlot};

use crate::config::ServerConfig;
use crate::limits::{ConnectionWatch, Reason};
use crate::runtime::WorkerState;
use crate::service::{Dispatch, LocalFuture, ServiceTable};

/// What the reader, the writer and running requests of one connection share.
struct Shared {
    /// Replies waiting to be written.
    out: RefCell<BytesMut>,
    /// Async requests still running.
    in_flight: Cell<usize>,
    /// The reader has stopped: EOF, shutdown, a protocol error or a failed write.
    reading_done: Cell<bool>,
    /// Stop at once: drop what is pending (protocol error or write failure).
    aborted: Cell<bool>,
    writer: WakerSlot,
    reader: WakerSlot,
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
    // limits: the cells the sweeper and the reply budget read (server/src/limits/watch.rs).
    let watch = worker.watch(Some(stream.as_raw_fd()), peer);
    let (reader, writer) = stream.into_split();
    serve_stream(reader, writer, peer, table, config, worker, watch).await;
}

/// [`serve`] over any pair of stream halves: a socket's, or an in-memory stream's (the fuzz
/// target of `server/fuzz` drives one connection this way, without sockets).
pub async fn serve_stream<R, W>(
    mut reader: R,
    writer: W,
    peer: SocketAddr,
    table: Rc<ServiceTable>,
    config: Rc<ServerConfig>,
    worker: Rc<WorkerState>,
    watch: Rc<ConnectionWatch>,
) where
    R: AsyncReadRent,
    W: AsyncWriteRent + 'static,
{
    if let Err(refusal) = table.on_connect(peer) {
        tracing::info!(%peer, "connection refused: {}", refusal.0);
        return;
    }
    let shared = Rc::new(Shared {
        out: RefCell::new(worker.take_buffer(config.read_buffer)),
        in_flight: Cell::new(0),
        reading_done: Cell::new(false),
        aborted: Cell::new(false),
        writer: WakerSlot::default(),
        reader: WakerSlot::default(),
    });
    let spare = worker.take_buffer(config.read_buffer);
    let writer_task = monoio::spawn(write_loop(writer, shared.clone(), spare, watch.clone()));

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
        // Dispatch every whole frame buffered, as the caps allow.
        loop {
            if over() {
                shared.writer.wake();
                shared.reader.wait_until(|| !over()).await;
            }
            if shared.aborted.get() {
                break 'read;
            }
            match frames.next_frame() {
                Ok(Some(request)) => {
                    watch.frame_done(); // limits: idle and frame-read clocks
                    match table.dispatch(request, peer, &mut shared.out.borrow_mut()) {
                        Dispatch::Done => {}
                        Dispatch::Pending(reply) => spawn_pending(&shared, reply),
                        // Its error reply and every earlier one still go out (Rejection::and_close).
                        Dispatch::Close => break 'read,
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    log_protocol_error(&watch, &e);
                    // Replies already made for earlier frames still go out; then the connection
                    // closes without answering the bad frame (spec 1.8).
                    break 'read;
                }
            }
        }
        watch.buffered(frames.buffered()); // limits: frame-read clock
        if !shared.out.borrow().is_empty() {
            shared.writer.wake();
        }
        // limits: past the per-core reply budget, the biggest queues stop being read.
        if watch.over_budget(shared.out.borrow().len()) {
            shared.writer.wake();
            let out = || shared.out.borrow().len();
            let resumed = || shared.aborted.get() || !watch.over_budget(out());
            shared.reader.wait_until(resumed).await;
        }

        match frames.fill(&mut reader).await {
            Ok(0) => break,
            Ok(_) => {}
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
    worker.return_buffer(spare);
    worker.return_buffer(frames.into_buffer());
    let out = shared.out.replace(BytesMut::new());
    worker.return_buffer(out);
    table.on_close(peer);
}

/// Runs an async request as its own task; its reply joins the output buffer when it is done.
fn spawn_pending(shared: &Rc<Shared>, reply: LocalFuture<Option<BytesMut>>) {
    shared.in_flight.set(shared.in_flight.get() + 1);
    let shared = shared.clone();
    monoio::spawn(async move {
        let frame = reply.await;
        shared.in_flight.set(shared.in_flight.get() - 1);
        if let Some(frame) = frame {
            if !shared.aborted.get() {
                shared.out.borrow_mut().extend_from_slice(&frame);
            }
        }
        shared.writer.wake();
        shared.reader.wake();
    });
}

/// One refusal: logged (rate-limited, with the peer) and counted by the worker's limits.
fn log_protocol_error(watch: &ConnectionWatch, error: &DecodeError) {
    watch.refuse(Reason::Malformed, Some(error));
}

/// Writes whatever replies are waiting, one write per batch, until the reader is done and no
/// request is still running.
async fn write_loop<W: AsyncWriteRent>(
    mut writer: W,
    shared: Rc<Shared>,
    mut spare: BytesMut,
    watch: Rc<ConnectionWatch>,
) -> BytesMut {
    loop {
        shared
            .writer
            .wait_until(|| {
                !shared.out.borrow().is_empty()
                    || shared.aborted.get()
                    || (shared.reading_done.get() && shared.in_flight.get() == 0)
            })
            .await;
        if shared.out.borrow().is_empty() {
            // Nothing left to write: either aborted, or done and drained.
            if shared.aborted.get() || shared.in_flight.get() == 0 {
                break;
            }
            continue;
        }
        spare.clear();
        std::mem::swap(&mut *shared.out.borrow_mut(), &mut spare);
        watch.write_started(spare.len(), 0); // limits: write timeout, reply budget
        let (result, buf) = writer.write_all(spare).await;
        spare = buf;
        watch.write_finished(shared.out.borrow().len()); // limits
                                                         // A batch just left: the reader may be waiting for room.
        shared.reader.wake();
        if let Err(e) = result {
            tracing::debug!("write failed: {e}");
            shared.aborted.set(true);
            break;
        }
    }
    let _ = writer.shutdown().await;
    spare
}
