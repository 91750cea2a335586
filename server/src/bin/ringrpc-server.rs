//! `ringrpc-server`: serves the demo services (Arith, Echo, KV, Push) on a thread-per-core
//! io_uring runtime. Every flag is the builder method of the same name: [`ServerConfig`] for the
//! runtime, and for the features on the interceptor layer [`auth_token`], [`RequestRateLimit`] /
//! [`ConnectionRateLimit`] `::per_second`, `ServiceTableBuilder::enforce_deadlines` and
//! [`MetricsEndpoint::start`].

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ringrpc_codec::Limits;
use ringrpc_server::{
    auth_token, demo, ConnectionRateLimit, CpuList, IoDriver, Metrics, MetricsEndpoint,
    RequestRateLimit, Server, ServerConfig, Shutdown,
};

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
    /// Require this `__AUTH` token on every request but heartbeats; others get `invalid token`
    /// and their connection is closed.
    #[arg(long)]
    auth_token: Option<String>,
    /// Requests per second the whole server accepts, split evenly over the workers (per-core
    /// token buckets); others get `request reached rate limit`.
    #[arg(long)]
    rate_limit: Option<f64>,
    /// Connections per second the whole server accepts, split evenly over the workers; others
    /// are closed at once.
    #[arg(long)]
    conn_rate_limit: Option<f64>,
    /// Answer `context deadline exceeded` once a request's `__ServerTimeout` passes, dropping the
    /// late reply (Go only hands the deadline to the service).
    #[arg(long)]
    enforce_deadlines: bool,
    /// Serve Prometheus metrics over HTTP on this address (off by default).
    #[arg(long)]
    metrics_addr: Option<SocketAddr>,
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
        })
        .max_in_flight(args.max_in_flight)
        .max_pending_write(args.max_pending_write)
        .grace_period(Duration::from_secs_f64(args.grace_period.max(0.0)))
        .tcp_keepalive((args.tcp_keepalive > 0).then(|| Duration::from_secs(args.tcp_keepalive)));
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
    let metrics = args.metrics_addr.map(|_| Metrics::new());
    if let (Some(addr), Some(metrics)) = (args.metrics_addr, &metrics) {
        match MetricsEndpoint::start(addr, metrics.clone()) {
            Ok(endpoint) => tracing::info!("metrics on http://{}/metrics", endpoint.local_addr()),
            Err(e) => {
                tracing::error!("cannot serve metrics on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let (auth, rate_limit, conn_rate_limit, enforce_deadlines) = (
        args.auth_token,
        args.rate_limit,
        args.conn_rate_limit,
        args.enforce_deadlines,
    );
    // Runs on each worker: every core gets its own interceptors and its share of the limits.
    // Order: metrics first (it times everything, refusals included), then the connection and
    // request rate limits, then auth (Go checks the rate in PostReadRequest, before AuthFunc).
    let factory = move |worker| {
        let mut table = demo::demo_services(worker)?.enforce_deadlines(enforce_deadlines);
        if let Some(metrics) = &metrics {
            table = table.interceptor(metrics.interceptor(worker));
        }
        if let Some(rate) = conn_rate_limit {
            table = table.interceptor(ConnectionRateLimit::per_second(rate, threads));
        }
        if let Some(rate) = rate_limit {
            table = table.interceptor(RequestRateLimit::per_second(rate, threads));
        }
        if let Some(token) = &auth {
            table = table.interceptor(auth_token(token.clone()));
        }
        Ok(table.build())
    };
    let running = match Server::new(config, factory).start(&shutdown) {
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
