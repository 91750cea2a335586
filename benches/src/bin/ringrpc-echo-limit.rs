//! `ringrpc-echo-limit`: the IO cost alone, as a ceiling for the rpcx servers we compare.
//!
//! A bare framed echo on the server's own runtime ([`ringrpc_server::runtime::run_workers`]): the
//! same pinned thread-per-core monoio workers, `SO_REUSEPORT` listeners, driver choice and graceful
//! drain as `ringrpc-server`, with only the per-connection function swapped. Per connection it
//! reads rpcx frames by their length (the 16-byte prefix, total length at bytes 12..16,
//! rpcx-protocol.md 1.1), sets the response bit (byte 2 |= 0x80, spec 1.2) and writes every
//! complete frame of a read back in one write. It decodes nothing else: no routing, no metadata, no
//! serialization. Whatever a real server costs above this is the price of being an rpcx server.
//!
//! It prints `listening on ADDR` on stdout once every listener is bound (so `--addr
//! 127.0.0.1:0` can be used by tests and scripts), and runs until SIGINT or SIGTERM, which stop it
//! like the server: stop accepting, stop reading, finish the writes, exit.
//!
//! The per-connection loop is [`echo_frames`]; [`start`] hands it to the runtime.

use std::net::SocketAddr;
use std::process::ExitCode;

use bytes::BytesMut;
use clap::Parser;
use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use ringrpc_codec::{Decoder, Limits};
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

/// Initial read buffer per connection; it grows for frames larger than this.
const READ_BUFFER: usize = 64 * 1024;

/// Echoes rpcx frames on one connection until the peer closes it or sends something that is not
/// rpcx framing. Every complete frame in the buffer goes back in one write, in place: the frames
/// are not copied, only the trailing partial frame is moved to the front afterwards.
pub async fn echo_frames(mut stream: TcpStream) -> std::io::Result<()> {
    // Bad magic or an absurd length means the stream is not rpcx: drop the connection.
    let decoder = Decoder::new(Limits::default());
    let mut buf = BytesMut::with_capacity(READ_BUFFER);
    loop {
        // Read after whatever partial frame is already buffered.
        let filled = buf.len();
        let (res, slice) = stream.read(buf.slice_mut(filled..)).await;
        buf = slice.into_inner();
        if res? == 0 {
            return Ok(());
        }

        let mut complete = 0;
        let mut wanted = 0;
        while let Some(frame_len) = decoder
            .frame_len(&buf[complete..])
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?
        {
            if buf.len() - complete < frame_len {
                wanted = frame_len;
                break;
            }
            buf[complete + 2] |= 0x80;
            complete += frame_len;
        }

        if complete > 0 {
            let (res, written) = stream.write_all(buf.slice(..complete)).await;
            buf = written.into_inner();
            res?;
            let partial = buf.len() - complete;
            buf.copy_within(complete.., 0);
            buf.truncate(partial);
        }
        // Room for at least the frame being read (or one more read's worth).
        let need = wanted.max(buf.len() + READ_BUFFER / 2);
        if buf.capacity() < need {
            buf.reserve(need - buf.len());
        }
    }
}

/// Binds the listeners and starts the workers, each serving every connection with
/// [`echo_frames`]; returns once they are listening. They run until `shutdown` is triggered (or
/// every clone of it is dropped).
pub fn start(args: &Args, shutdown: &Shutdown) -> Result<Running, StartError> {
    run_workers(&args.config(), shutdown, |_worker| {
        Ok::<_, std::convert::Infallible>(|accepted: Accepted| async move {
            // A peer that resets or misframes only ends its own connection.
            let _ = echo_frames(accepted.stream).await;
        })
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
