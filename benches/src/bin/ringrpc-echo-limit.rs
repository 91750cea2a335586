//! `ringrpc-echo-limit`: the IO cost alone, as a ceiling for the rpcx servers we compare.
//!
//! A bare framed echo on the server's own runtime ([`ringrpc_server::runtime::run_workers`]): the
//! same pinned thread-per-core monoio workers, `SO_REUSEPORT` listeners, driver choice and graceful
//! drain as `ringrpc-server`, with only the per-connection function swapped. It decodes nothing
//! beyond the 16-byte prefix (magic and total length, rpcx-protocol.md 1.1): no routing, no
//! metadata, no serialization. Whatever a real server costs above this is the price of being an
//! rpcx server.
//!
//! Each connection has the shape of the server's best (`server/src/connection.rs`), so that
//! ringrpc cannot beat it by structure alone:
//! - a reader task ([`FrameReader`]) reads into a pooled buffer and takes every whole frame read,
//!   sets its response bit (spec 1.2) and copies the run of frames to the output buffer; when the
//!   writer has taken everything (the output buffer is empty), it hands over the read buffer itself
//!   instead and reads on into the empty one, so a copy is made only when batches queue up;
//! - a writer task swaps the output buffer with its spare and writes the whole batch in one call,
//!   while the next read is already in flight;
//! - past [`MAX_PENDING_WRITE`] bytes waiting, the reader stops reading until the writer catches up.
//!
//! It prints `listening on ADDR` on stdout once every listener is bound (so `--addr
//! 127.0.0.1:0` can be used by tests and scripts), and runs until SIGINT or SIGTERM, which stop it
//! like the server: stop accepting, stop reading, finish the writes, exit.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::task::{Poll, Waker};

use bytes::BytesMut;
use clap::Parser;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, Splitable};
use monoio::net::TcpStream;
use ringrpc_codec::{Decoder, Header, Limits, MessageType, HEADER_LEN};
use ringrpc_server::config::{CpuList, IoDriver, ServerConfig};
use ringrpc_server::runtime::{run_workers, Running, StartError, WorkerState};
use ringrpc_server::Shutdown;

/// Command line.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "ringrpc-echo-limit",
    about = "Bare framed rpcx echo server on ringrpc's runtime: the IO cost alone (reads frames by length, flips the response bit, writes them back)"
)]
pub struct Args {
    /// Address to listen on (port 0 picks a free port, printed on stdout).
    #[arg(long, default_value = "127.0.0.1:8972")]
    pub addr: SocketAddr,
    /// Worker threads, one monoio runtime and one SO_REUSEPORT listener each.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// CPUs to pin the threads to, round robin: `1`, `0-3` or `0,2` [default: worker i on core i].
    #[arg(long)]
    pub cpus: Option<CpuList>,
    /// IO driver: uring, epoll (monoio's legacy driver) or auto (io_uring when the kernel has it).
    #[arg(long, default_value = "auto")]
    pub io: IoDriver,
}

impl Args {
    /// The runtime settings these flags stand for (the rest are the server's defaults).
    pub fn config(&self) -> ServerConfig {
        let mut config = ServerConfig::default()
            .addr(self.addr)
            .threads(self.threads)
            .io(self.io);
        if let Some(CpuList(cpus)) = &self.cpus {
            config = config.cpus(cpus.clone());
        }
        config
    }
}

/// Buffer size per connection (read, output and spare), as the server's default `read_buffer`;
/// the read buffer grows for larger frames.
const BUFFER: usize = 64 * 1024;

/// Bytes waiting to be written past which the reader stops reading, as the server's default
/// `max_pending_write`.
const MAX_PENDING_WRITE: usize = 4 << 20;

/// Reads rpcx frames off a stream by their 16-byte prefix and hands them out a run at a time.
pub struct FrameReader<R> {
    stream: R,
    buf: BytesMut,
    /// Bytes at the front of `buf` handed out by the last [`FrameReader::next_frames`].
    taken: usize,
    decoder: Decoder,
}

impl<R: AsyncReadRent> FrameReader<R> {
    /// A reader over `stream` that reads into `buf`. Bad magic or a length above the codec's
    /// default limit is an error: the stream is not rpcx.
    pub fn new(stream: R, buf: BytesMut) -> Self {
        FrameReader {
            stream,
            buf,
            taken: 0,
            decoder: Decoder::new(Limits::default()),
        }
    }

    /// Every whole frame buffered, at least one, reading as needed: the frames lie back to back
    /// and may be changed in place until the next call. `Ok(None)` at EOF (a partial frame left
    /// then is dropped).
    pub async fn next_frames(&mut self) -> std::io::Result<Option<&mut [u8]>> {
        // The frames handed out last time are done with: keep only what follows them.
        if self.taken > 0 {
            let rest = self.buf.len() - self.taken;
            self.buf.copy_within(self.taken.., 0);
            self.buf.truncate(rest);
            self.taken = 0;
        }
        loop {
            let (complete, wanted) = self.whole_frames()?;
            if complete > 0 {
                self.taken = complete;
                return Ok(Some(&mut self.buf[..complete]));
            }
            // Room for the rest of the frame being received, or a fresh chunk.
            let want = wanted.max(self.buf.len() + BUFFER / 2);
            if self.buf.capacity() < want {
                self.buf.reserve(want - self.buf.len());
            }
            let len = self.buf.len();
            let cap = self.buf.capacity();
            let buf = std::mem::take(&mut self.buf);
            let (result, slice) = self.stream.read(buf.slice_mut(len..cap)).await;
            self.buf = slice.into_inner();
            if result? == 0 {
                return Ok(None);
            }
        }
    }

    /// The length of the whole frames at the front of the buffer, and the length of the frame
    /// after them if its prefix is in (0 if not).
    fn whole_frames(&self) -> std::io::Result<(usize, usize)> {
        let mut complete = 0;
        while let Some(frame_len) = self
            .decoder
            .frame_len(&self.buf[complete..])
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?
        {
            if self.buf.len() - complete < frame_len {
                return Ok((complete, frame_len));
            }
            complete += frame_len;
        }
        Ok((complete, 0))
    }

    /// Swaps the read buffer for `empty`: returns a buffer holding exactly the frames handed out
    /// by the last [`FrameReader::next_frames`], and reads on into `empty`, into which the bytes
    /// after those frames (a partial frame) are copied.
    pub fn swap_frames(&mut self, mut empty: BytesMut) -> BytesMut {
        empty.clear();
        empty.extend_from_slice(&self.buf[self.taken..]);
        self.buf.truncate(self.taken);
        self.taken = 0;
        std::mem::replace(&mut self.buf, empty)
    }

    /// The read half and the buffer, for their owners to take back.
    pub fn into_parts(self) -> (R, BytesMut) {
        (self.stream, self.buf)
    }
}

/// Sets the response bit of every frame in `frames`, whole frames back to back (as
/// [`FrameReader::next_frames`] hands them out).
fn mark_responses(frames: &mut [u8]) {
    let mut at = 0;
    while let Some(header) = Header::view_mut(&mut frames[at..]) {
        header.set_message_type(MessageType::Response);
        at += HEADER_LEN + header.total_len() as usize;
    }
}

/// What the reader and the writer of one connection share.
struct Shared {
    /// Frames waiting to be written.
    out: RefCell<BytesMut>,
    /// The reader has stopped (EOF, shutdown, misframing): the writer ends once `out` is written.
    reading_done: Cell<bool>,
    /// A write failed: the reader stops.
    write_failed: Cell<bool>,
    writer: WakerSlot,
    reader: WakerSlot,
}

/// One parked task, woken when the state it waits on changes.
#[derive(Default)]
struct WakerSlot(Cell<Option<Waker>>);

impl WakerSlot {
    fn wake(&self) {
        if let Some(waker) = self.0.take() {
            waker.wake();
        }
    }

    async fn wait_until(&self, ready: impl Fn() -> bool) {
        std::future::poll_fn(|cx| {
            if ready() {
                Poll::Ready(())
            } else {
                self.0.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }
}

/// Echoes rpcx frames on one connection, response bit set, until the peer closes it, shutdown
/// stops its reads, or it sends something that is not rpcx framing (then it closes after writing
/// back the frames before). Its buffers come from, and go back to, the worker's pool.
pub async fn echo_frames(stream: TcpStream, worker: Rc<WorkerState>) {
    let (read_half, write_half) = stream.into_split();
    let shared = Rc::new(Shared {
        out: RefCell::new(worker.take_buffer(BUFFER)),
        reading_done: Cell::new(false),
        write_failed: Cell::new(false),
        writer: WakerSlot::default(),
        reader: WakerSlot::default(),
    });
    let writer = monoio::spawn(write_loop(
        write_half,
        shared.clone(),
        worker.take_buffer(BUFFER),
    ));

    let mut reader = FrameReader::new(read_half, worker.take_buffer(BUFFER));
    loop {
        let over = || shared.out.borrow().len() >= MAX_PENDING_WRITE && !shared.write_failed.get();
        if over() {
            shared.reader.wait_until(|| !over()).await;
        }
        if shared.write_failed.get() {
            break;
        }
        // A peer that resets or misframes only ends its own connection.
        let Ok(Some(frames)) = reader.next_frames().await else {
            break;
        };
        mark_responses(frames);
        let mut out = shared.out.borrow_mut();
        if out.is_empty() {
            // The writer has taken every earlier frame: give it these where they lie.
            let empty = std::mem::take(&mut *out);
            *out = reader.swap_frames(empty);
        } else {
            out.extend_from_slice(frames);
        }
        drop(out);
        shared.writer.wake();
    }

    shared.reading_done.set(true);
    shared.writer.wake();
    let spare = writer.await;
    worker.return_buffer(spare);
    worker.return_buffer(reader.into_parts().1);
    worker.return_buffer(shared.out.replace(BytesMut::new()));
}

/// Writes whatever frames are waiting, one write per batch, until the reader is done and all is
/// written (or a write fails); returns the spare buffer.
async fn write_loop<W: AsyncWriteRent>(
    mut stream: W,
    shared: Rc<Shared>,
    mut spare: BytesMut,
) -> BytesMut {
    loop {
        shared
            .writer
            .wait_until(|| !shared.out.borrow().is_empty() || shared.reading_done.get())
            .await;
        if shared.out.borrow().is_empty() {
            break;
        }
        std::mem::swap(&mut *shared.out.borrow_mut(), &mut spare);
        let (result, buf) = stream.write_all(spare).await;
        spare = buf;
        spare.clear();
        // A batch just left: the reader may be waiting for room.
        shared.reader.wake();
        if result.is_err() {
            shared.write_failed.set(true);
            break;
        }
    }
    let _ = stream.shutdown().await;
    spare
}

/// Binds the listeners and starts the workers, each serving every connection with
/// [`echo_frames`]; returns once they are listening. They run until `shutdown` is triggered (or
/// every clone of it is dropped).
pub fn start(args: &Args, shutdown: &Shutdown) -> Result<Running, StartError> {
    run_workers(&args.config(), shutdown, |_worker| {
        |stream: TcpStream, _peer: SocketAddr, worker: Rc<WorkerState>| echo_frames(stream, worker)
    })
}

#[allow(dead_code)] // when this file is included as a module by tests
fn main() -> ExitCode {
    // The runtime reports through tracing: the epoll fallback, pinning and worker failures.
    ringrpc_server::init_logging();
    let args = Args::parse();
    let shutdown = Shutdown::new();
    if let Err(e) = shutdown.on_signals() {
        eprintln!("ringrpc-echo-limit: cannot install the signal handler: {e}");
        return ExitCode::FAILURE;
    }
    let running = match start(&args, &shutdown) {
        Ok(running) => running,
        Err(e) => {
            eprintln!("ringrpc-echo-limit: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {}", running.local_addr());
    match running.join() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringrpc-echo-limit: {e}");
            ExitCode::FAILURE
        }
    }
}
