//! `ringrpc-echo-limit`: the IO cost alone, as a ceiling for the rpcx servers we compare.
//!
//! A bare framed echo on the server's own runtime ([`ringrpc_server::runtime::run_workers`]): the
//! same pinned thread-per-core monoio workers, `SO_REUSEPORT` listeners, driver choice and graceful
//! drain as `ringrpc-server`, with only the per-connection function swapped. It decodes nothing
//! beyond the 16-byte prefix (magic and total length, docs/protocol.md 1.1): no routing, no
//! metadata, no serialization. Whatever a real server costs above this is the price of being an
//! rpcx server.
//!
//! Each connection has the shape of the server's best (`server/src/connection.rs`), so that
//! ringrpc cannot beat it by structure alone:
//! - a reader task reads with the project's frame reader ([`FrameReader`], `ringrpc-io`) into a
//!   pooled buffer, takes the run of whole frames read, copies it to the output buffer in one
//!   piece and sets each frame's response bit there (spec 1.2);
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

use bytes::BytesMut;
use clap::Parser;
use monoio::io::{AsyncWriteRent, AsyncWriteRentExt, Splitable};
use ringrpc_codec::{Decoder, Header, Limits, MessageType, HEADER_LEN};
use ringrpc_io::{FrameReader, WakerSlot};
use ringrpc_server::config::{CpuList, IoDriver, ServerConfig};
use ringrpc_server::runtime::{run_workers, Accepted, Running, StartError};
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

/// Sets the response bit of every frame in `frames`, whole frames back to back.
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

/// Echoes rpcx frames on one connection, response bit set, until the peer closes it, shutdown
/// stops its reads, or it sends something that is not rpcx framing (then it closes after writing
/// back the frames before). Its buffers come from, and go back to, the worker's pool.
pub async fn echo_frames(accepted: Accepted) {
    let Accepted { stream, worker, .. } = accepted;
    let (mut read_half, write_half) = stream.into_split();
    let shared = Rc::new(Shared {
        out: RefCell::new(worker.pool.take_large()),
        reading_done: Cell::new(false),
        write_failed: Cell::new(false),
        writer: WakerSlot::default(),
        reader: WakerSlot::default(),
    });
    let writer = monoio::spawn(write_loop(
        write_half,
        shared.clone(),
        worker.pool.take_large(),
    ));

    // Misframing (bad magic, absurd length) ends the connection.
    let decoder = Decoder::new(Limits::default());
    let mut frames = FrameReader::new(worker.pool.take_large(), decoder, BUFFER / 2);
    loop {
        let over = || shared.out.borrow().len() >= MAX_PENDING_WRITE && !shared.write_failed.get();
        if over() {
            shared.reader.wait_until(|| !over()).await;
        }
        if shared.write_failed.get() {
            break;
        }
        // A peer that resets only ends its own connection.
        match frames.fill(&mut read_half).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let Ok(run) = frames.whole_frames_len() else {
            break;
        };
        if run > 0 {
            // The whole run in one copy, then the response bits set in the copy.
            let mut out = shared.out.borrow_mut();
            let start = out.len();
            out.extend_from_slice(frames.frame_bytes(run));
            mark_responses(&mut out[start..]);
            frames.skip(run);
            shared.writer.wake();
        }
    }

    shared.reading_done.set(true);
    shared.writer.wake();
    let spare = writer.await;
    worker.pool.give(spare);
    worker.pool.give(frames.into_buffer());
    worker.pool.give(shared.out.replace(BytesMut::new()));
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
/// [`echo_frames`]; returns once they are listening. They run until `shutdown` is triggered.
pub fn start(args: &Args, shutdown: &Shutdown) -> Result<Running, StartError> {
    run_workers(&args.config(), shutdown, |_worker| {
        Ok::<_, std::convert::Infallible>(echo_frames)
    })
}

#[allow(dead_code)] // when this file is included as a module by tests
fn main() -> ExitCode {
    // The runtime reports through tracing: the epoll fallback, pinning and worker failures.
    ringrpc_server::cli::init_logging();
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
