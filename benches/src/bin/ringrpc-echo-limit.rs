//! `ringrpc-echo-limit`: the IO cost alone, as a ceiling for the rpcx servers we compare.
//!
//! A bare framed echo on monoio: one pinned runtime per thread, each with its own `SO_REUSEPORT`
//! listener on the same address. Per connection it reads rpcx frames by their length (the 16-byte
//! prefix, total length at bytes 12..16, rpcx-protocol.md 1.1), sets the response bit (byte 2 |=
//! 0x80, spec 1.2) and writes every complete frame of a read back in one write. It decodes nothing
//! else: no routing, no metadata, no serialization. Whatever a real server costs above this is the
//! price of being an rpcx server.
//!
//! It prints `listening on ADDR` on stdout once every listener is bound (so `--addr
//! 127.0.0.1:0` can be used by tests and scripts), and runs until killed.
//!
//! The per-connection loop is [`echo_frames`]; threads and listeners are [`bind_listeners`] and
//! [`run_worker`], kept small on purpose (the server's runtime module may replace them).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use clap::{Parser, ValueEnum};
use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};
use ringrpc_codec::{Decoder, Limits};

/// Command line.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "ringrpc-echo-limit",
    about = "Bare framed rpcx echo server: the IO cost alone (reads frames by length, flips the response bit, writes them back)"
)]
pub struct Args {
    /// Address to listen on (port 0 picks a free port, printed on stdout).
    #[arg(long, default_value = "127.0.0.1:8972")]
    pub addr: SocketAddr,
    /// Worker threads, one monoio runtime and one SO_REUSEPORT listener each.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// CPUs to pin the threads to, round robin: `1`, `0-3` or `0,2`.
    #[arg(long)]
    pub cpus: Option<String>,
    /// IO driver: io_uring, epoll (monoio's legacy driver), or io_uring when the kernel has it.
    #[arg(long, value_enum, default_value_t = Io::Auto)]
    pub io: Io,
}

/// Which monoio driver runs the workers.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Io {
    Uring,
    Epoll,
    Auto,
}

/// Initial read buffer per connection; it grows for frames larger than this.
const READ_BUFFER: usize = 64 * 1024;
/// A pending-connections queue deep enough for a benchmark opening hundreds at once.
const BACKLOG: i32 = 1024;

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

/// Binds `threads` listeners on `addr` with `SO_REUSEPORT`, so that the kernel spreads incoming
/// connections over the threads. With port 0 the first listener picks the port and the others
/// share it.
pub fn bind_listeners(
    addr: SocketAddr,
    threads: usize,
) -> std::io::Result<Vec<std::net::TcpListener>> {
    let mut listeners = Vec::with_capacity(threads);
    let mut addr = addr;
    for _ in 0..threads.max(1) {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.bind(&addr.into())?;
        socket.listen(BACKLOG)?;
        let listener: std::net::TcpListener = socket.into();
        addr = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Runs one worker: pins the thread, builds the runtime and serves `listener` forever.
pub fn run_worker(
    listener: std::net::TcpListener,
    cpu: Option<usize>,
    io: Io,
) -> std::io::Result<()> {
    if let Some(cpu) = cpu {
        core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
    }
    let use_uring = match io {
        Io::Uring => true,
        Io::Epoll => false,
        Io::Auto => monoio::utils::detect_uring(),
    };
    if use_uring {
        monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .with_entries(1024)
            .enable_timer()
            .build()?
            .block_on(accept_loop(listener))
    } else {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()?
            .block_on(accept_loop(listener))
    }
}

async fn accept_loop(listener: std::net::TcpListener) -> std::io::Result<()> {
    // monoio's io_uring driver wants blocking sockets (a non-blocking one can fail with EAGAIN
    // instead of being polled by the kernel); its epoll driver needs non-blocking ones.
    listener.set_nonblocking(monoio::utils::is_legacy())?;
    let listener = TcpListener::from_std(listener)?;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                stream.set_nodelay(true)?;
                monoio::spawn(async move {
                    // A peer that resets or misframes only ends its own connection.
                    let _ = echo_frames(stream).await;
                });
            }
            // Out of file descriptors and the like: back off instead of spinning.
            Err(_) => monoio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Parses a CPU list: `3`, `0-3`, `0,2,4-5`.
pub fn parse_cpus(list: &str) -> Result<Vec<usize>, String> {
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("bad CPU list {list:?}");
        match part.split_once('-') {
            Some((lo, hi)) => {
                let lo: usize = lo.trim().parse().map_err(|_| bad())?;
                let hi: usize = hi.trim().parse().map_err(|_| bad())?;
                if lo > hi {
                    return Err(bad());
                }
                cpus.extend(lo..=hi);
            }
            None => cpus.push(part.parse().map_err(|_| bad())?),
        }
    }
    if cpus.is_empty() {
        return Err(format!("empty CPU list {list:?}"));
    }
    Ok(cpus)
}

/// Binds the listeners, starts one worker thread each and announces the address. The returned
/// handles never finish unless a worker fails.
pub fn start(
    args: &Args,
) -> std::io::Result<(
    SocketAddr,
    Vec<std::thread::JoinHandle<std::io::Result<()>>>,
)> {
    let cpus = match &args.cpus {
        Some(list) => Some(
            parse_cpus(list)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
        ),
        None => None,
    };
    let listeners = bind_listeners(args.addr, args.threads)?;
    let addr = listeners[0].local_addr()?;
    let workers = listeners
        .into_iter()
        .enumerate()
        .map(|(i, listener)| {
            let cpu = cpus.as_ref().map(|c| c[i % c.len()]);
            let io = args.io;
            std::thread::Builder::new()
                .name(format!("echo-limit-{i}"))
                .spawn(move || run_worker(listener, cpu, io))
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    Ok((addr, workers))
}

#[allow(dead_code)] // when this file is included as a module by tests
fn main() {
    let args = Args::parse();
    let (addr, workers) = match start(&args) {
        Ok(started) => started,
        Err(e) => {
            eprintln!("ringrpc-echo-limit: cannot listen on {}: {e}", args.addr);
            std::process::exit(1);
        }
    };
    println!("listening on {addr}");
    for worker in workers {
        match worker.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                eprintln!("ringrpc-echo-limit: worker failed: {e}");
                std::process::exit(1);
            }
            Err(_) => std::process::exit(1),
        }
    }
}
