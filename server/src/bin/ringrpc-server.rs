//! `ringrpc-server`: serves the demo services (Arith, Echo, KV) on a thread-per-core io_uring
//! runtime. Every flag is the [`ServerConfig`] builder method of the same name.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ringrpc_codec::Limits;
use ringrpc_server::{demo, CpuList, IoDriver, Server, ServerConfig, Shutdown};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A thread-per-core rpcx server on io_uring, wire-compatible with Go rpcx clients.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on (every worker binds it with SO_REUSEPORT).
    #[arg(long, default_value = "127.0.0.1:8972")]
    addr: SocketAddr,
    /// Worker threads, one pinned monoio runtime each [default: one per CPU of --cpus, else per core].
    #[arg(long)]
    threads: Option<usize>,
    /// Cores to pin the workers to, e.g. `0`, `0-3` or `0,2`.
    #[arg(long)]
    cpus: Option<CpuList>,
    /// IO driver: uring, epoll or auto (io_uring, else epoll with a log line).
    #[arg(long, default_value = "auto")]
    io: IoDriver,
    /// Largest accepted frame body (total-length field), in bytes.
    #[arg(long, default_value_t = Limits::DEFAULT_MAX_FRAME_LEN)]
    max_frame: u32,
    /// Largest payload a gzip frame may decompress to, in bytes.
    #[arg(long, default_value_t = Limits::DEFAULT_MAX_DECOMPRESSED_LEN)]
    max_decompressed: usize,
    /// Most metadata pairs in one frame; a frame with more closes its connection.
    #[arg(long, default_value_t = Limits::DEFAULT_MAX_METADATA_PAIRS)]
    max_metadata_pairs: usize,
    /// Requests running at once per connection before its reads pause.
    #[arg(long, default_value_t = 1024)]
    max_in_flight: usize,
    /// Reply bytes waiting per connection before its reads pause.
    #[arg(long, default_value_t = 4 << 20)]
    max_pending_write: usize,
    /// TCP keep-alive idle time on accepted connections, in seconds; 0 turns it off.
    #[arg(long, alias = "keepalive", default_value_t = 180)]
    tcp_keepalive: u64,
    /// Seconds a graceful shutdown may take (SIGINT/SIGTERM).
    #[arg(long, alias = "grace", default_value_t = 10.0)]
    grace_period: f64,
    /// Seconds without a whole frame (heartbeats count) before a connection is closed; 0: never.
    #[arg(long, default_value_t = ServerConfig::DEFAULT_IDLE_TIMEOUT.as_secs_f64())]
    idle_timeout: f64,
    /// Seconds a started frame may take to arrive whole (slowloris) before the connection is
    /// closed; 0: no limit.
    #[arg(long, default_value_t = ServerConfig::DEFAULT_FRAME_READ_TIMEOUT.as_secs_f64())]
    frame_read_timeout: f64,
    /// Seconds a reply write may take (a peer that stops reading) before the connection is reset
    /// and its queued replies dropped; 0: no limit.
    #[arg(long, default_value_t = ServerConfig::DEFAULT_WRITE_TIMEOUT.as_secs_f64())]
    write_timeout: f64,
    /// Connections per worker (core); more are accepted and closed at once.
    #[arg(long, default_value_t = ServerConfig::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Reply bytes queued per worker (core), over all its connections, before the connections
    /// holding the most stop being read.
    #[arg(long, default_value_t = ServerConfig::DEFAULT_MAX_QUEUED_BYTES)]
    max_queued_bytes: usize,
}

/// A timeout flag in seconds: 0 (or less) turns it off.
fn timeout(seconds: f64) -> Option<Duration> {
    (seconds > 0.0).then(|| Duration::from_secs_f64(seconds))
}

fn main() -> ExitCode {
    ringrpc_server::cli::init_logging();
    let args = Args::parse();

    let mut config = ServerConfig::default()
        .addr(args.addr)
        .io(args.io)
        .limits(Limits {
            max_frame_len: args.max_frame,
            max_decompressed_len: args.max_decompressed,
            max_metadata_pairs: args.max_metadata_pairs,
        })
        .max_in_flight(args.max_in_flight)
        .max_pending_write(args.max_pending_write)
        .grace_period(Duration::from_secs_f64(args.grace_period.max(0.0)))
        .tcp_keepalive((args.tcp_keepalive > 0).then(|| Duration::from_secs(args.tcp_keepalive)))
        .idle_timeout(timeout(args.idle_timeout))
        .frame_read_timeout(timeout(args.frame_read_timeout))
        .write_timeout(timeout(args.write_timeout))
        .max_connections(args.max_connections)
        .max_queued_bytes(args.max_queued_bytes);
    if let Some(threads) = args.threads {
        config = config.threads(threads);
    }
    if let Some(CpuList(cpus)) = args.cpus {
        config = config.cpus(cpus);
    }
    let threads = config.worker_count();

    let shutdown = Shutdown::new();
    if let Err(e) = shutdown.on_signals() {
        tracing::error!("cannot install the signal handler: {e}");
        return ExitCode::FAILURE;
    }
    let running = match Server::new(config, demo::demo_table).start(&shutdown) {
        Ok(running) => running,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        addr = %running.local_addr(),
        threads,
        driver = ?running.driver(),
        "listening on {}",
        running.local_addr()
    );
    if let Err(e) = running.join() {
        tracing::error!("stopped with an error: {e}");
        return ExitCode::FAILURE;
    }
    tracing::info!("shut down");
    ExitCode::SUCCESS
}
