//! `ringrpc-server`: serves the demo services (Arith, Echo, KV, Push) on a thread-per-core
//! io_uring runtime. Every flag is the builder method of the same name: [`ServerConfig`] for the
//! runtime, and for the features on the interceptor layer [`auth_token`], [`RequestRateLimit`] /
//! [`ConnectionRateLimit`] `::per_second`, `ServiceTableBuilder::enforce_deadlines` and
//! [`MetricsEndpoint::start`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ringrpc_codec::Limits;
use ringrpc_server::registry::{Node, Registration, ServiceEntry};
use ringrpc_server::{
    auth_token, demo, ConnectionRateLimit, CpuList, IoDriver, Metrics, MetricsEndpoint,
    RequestRateLimit, Server, ServerConfig, Shutdown, WorkerId,
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
    /// Most metadata pairs in one frame; a frame with more closes its connection.
    #[arg(long, default_value_t = Limits::DEFAULT_MAX_METADATA_PAIRS)]
    max_metadata_pairs: usize,
    /// Requests running at once per connection before its reads pause.
    #[arg(long, default_value_t = 1024)]
    max_in_flight: usize,
    /// Reply bytes waiting per connection before its reads pause.
    #[arg(long, default_value_t = 4 << 20)]
    max_pending_write: usize,
    /// The large buffer class, in bytes: reads of a streaming connection and output batches.
    #[arg(long, default_value_t = ServerConfig::default().read_buffer)]
    read_buffer: usize,
    /// Free buffers each worker keeps for reuse, in bytes.
    #[arg(long, default_value_t = ServerConfig::default().max_pooled_bytes)]
    max_pooled_bytes: usize,
    /// Streaming connections per worker (core) that read and batch replies in --read-buffer
    /// buffers at once; others use buffers that fit their frames.
    #[arg(long, default_value_t = ServerConfig::DEFAULT_MAX_LARGE_READERS)]
    max_large_readers: usize,
    /// TCP keep-alive idle time on accepted connections, in seconds; 0 turns it off.
    #[arg(long, alias = "keepalive", default_value_t = 180)]
    tcp_keepalive: u64,
    /// Seconds a graceful shutdown may take (SIGINT/SIGTERM).
    #[arg(long, alias = "grace", default_value_t = 10.0)]
    grace_period: f64,
    /// Register in etcd v3 at these members (HOST:PORT, comma-separated) so Go clients find us.
    #[arg(long, value_delimiter = ',', value_name = "HOST:PORT")]
    etcd: Vec<String>,
    /// Registry key prefix, as the Go client's basePath.
    #[arg(long, default_value = "/rpcx_test")]
    base_path: String,
    /// Address registered for clients to dial [default: the bound --addr; required when --addr is
    /// 0.0.0.0 or ::].
    #[arg(long, value_name = "HOST:PORT")]
    advertise: Option<SocketAddr>,
    /// Registered metadata, a URL query string (`weight=10&group=g1`): `QUERY` for every service,
    /// `Service:QUERY` for one (repeatable; the per-service one wins).
    #[arg(long, value_name = "[SERVICE:]QUERY")]
    metadata: Vec<String>,
    /// Registry lease TTL in seconds: how long a killed server stays listed at most.
    #[arg(long, default_value_t = 10)]
    etcd_ttl: u64,
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
    /// Serve TLS too (on the same port, told apart by the first byte) with this PEM certificate
    /// chain, leaf first; needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// With --tls-cert: refuse connections that do not open with a TLS handshake (by default
    /// plain TCP and TLS share the port).
    #[arg(long, requires = "tls_cert")]
    tls_only: bool,
    /// Seconds a TLS handshake may take before the connection is closed.
    #[arg(long, default_value_t = ServerConfig::DEFAULT_TLS_HANDSHAKE_TIMEOUT.as_secs_f64())]
    tls_handshake_timeout: f64,
    /// TLS handshakes in progress per worker (core); more are closed at once.
    #[arg(long, default_value_t = ServerConfig::DEFAULT_MAX_TLS_HANDSHAKES)]
    max_tls_handshakes: usize,
    /// Bytes an HTTP request line and headers may take (gateway, JSON-RPC); more is answered 431.
    #[arg(long, default_value_t = ServerConfig::DEFAULT_MAX_HTTP_HEADER_BYTES)]
    max_http_header_bytes: usize,
    /// Seconds a started HTTP request may take to send all its headers before the connection is
    /// closed; 0: no limit.
    #[arg(long, default_value_t = ServerConfig::DEFAULT_HTTP_HEADER_TIMEOUT.as_secs_f64())]
    http_header_timeout: f64,
}

/// A timeout flag in seconds: 0 (or less) turns it off.
fn timeout(seconds: f64) -> Option<Duration> {
    (seconds > 0.0).then(|| Duration::from_secs_f64(seconds))
}

/// mimalloc's `purge_delay` option (`mi_option_purge_delay` in mimalloc.h; libmimalloc-sys has
/// no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// How long freed memory stays resident before mimalloc returns it to the OS, in milliseconds:
/// none. mimalloc 3 waits a second (its default), and a delayed purge only happens at a later
/// call into the allocator: a server that goes quiet after a burst makes none (its request path
/// allocates nothing), so with any delay the burst's memory stayed resident for good (measured:
/// 1,000 connections after a 48 KiB call each, 155 MiB before and after the sweeper gave their
/// buffers back with a 10 ms delay; 150 MiB then 69 MiB with none; server/tests/idle_memory.rs).
/// Under churn such as 500 peers that stop reading (server/tests/hostile.rs) a delay also holds
/// the memory freed meanwhile on top of what is live. The buffer pool keeps the request path
/// from freeing at all in steady state, so purging at once costs nothing there.
const PURGE_DELAY_MS: std::ffi::c_long = 0;

/// Sets the allocator's options; `MIMALLOC_PURGE_DELAY` in the environment still wins.
fn allocator_options() {
    // SAFETY: sets one option of the allocator, before any other thread is started (the setter
    // is not thread safe); an option already set from the environment is left as it is.
    unsafe { libmimalloc_sys::mi_option_set_default(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
}

fn main() -> ExitCode {
    allocator_options();
    ringrpc_server::cli::init_logging();
    let args = Args::parse();

    // Refused before anything binds: clients cannot dial 0.0.0.0 or ::.
    if !args.etcd.is_empty() && args.advertise.is_none() && args.addr.ip().is_unspecified() {
        tracing::error!(
            "--etcd with --addr {}: pass --advertise HOST:PORT, the address clients dial",
            args.addr
        );
        return ExitCode::FAILURE;
    }
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
        .read_buffer(args.read_buffer)
        .max_pooled_bytes(args.max_pooled_bytes)
        .max_large_readers(args.max_large_readers)
        .grace_period(Duration::from_secs_f64(args.grace_period.max(0.0)))
        .tcp_keepalive((args.tcp_keepalive > 0).then(|| Duration::from_secs(args.tcp_keepalive)))
        .idle_timeout(timeout(args.idle_timeout))
        .frame_read_timeout(timeout(args.frame_read_timeout))
        .write_timeout(timeout(args.write_timeout))
        .max_connections(args.max_connections)
        .max_queued_bytes(args.max_queued_bytes)
        .max_http_header_bytes(args.max_http_header_bytes)
        .http_header_timeout(timeout(args.http_header_timeout))
        .tls_handshake_timeout(Duration::from_secs_f64(
            args.tls_handshake_timeout.max(0.001),
        ))
        .max_tls_handshakes(args.max_tls_handshakes)
        .tls_only(args.tls_only);
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        match ringrpc_server::tls::load_pem(cert, key) {
            Ok(tls) => config = config.tls(tls),
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if let Some(threads) = args.threads {
        config = config.threads(threads);
    }
    if let Some(CpuList(cpus)) = args.cpus.clone() {
        config = config.cpus(cpus);
    }
    let threads = config.worker_count();

    // The names the workers' tables will serve, for the registry: one table built to ask.
    let service_names: Vec<String> = match demo::demo_table(WorkerId(0)) {
        Ok(table) => table.service_names().map(str::to_string).collect(),
        Err(e) => {
            tracing::error!("service registration failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    // With a registry, a signal first deregisters and only then starts the workers' drain
    // (spec 4.13), so `signals` and `shutdown` are two triggers; without one they are the same.
    let signals = Shutdown::new();
    if let Err(e) = signals.on_signals() {
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
    // The scrape also reports the limits' refusals, which the running server counts.
    let metrics_of_refusals = metrics.clone();
    let (auth, rate_limit, conn_rate_limit, enforce_deadlines) = (
        args.auth_token.clone(),
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
    let shutdown = if args.etcd.is_empty() {
        signals.clone()
    } else {
        Shutdown::new()
    };
    let running = match Server::new(config, factory).start(&shutdown) {
        Ok(running) => running,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(metrics) = &metrics_of_refusals {
        metrics.count_refusals(running.refusals());
    }
    tracing::info!(
        addr = %running.local_addr(),
        threads,
        driver = ?running.driver(),
        "listening on {}",
        running.local_addr()
    );
    if !args.etcd.is_empty() {
        let registration = match register(&args, running.local_addr(), &service_names) {
            Ok(registration) => registration,
            Err(e) => {
                tracing::error!("{e}");
                shutdown.trigger();
                let _ = running.join();
                return ExitCode::FAILURE;
            }
        };
        let shutdown = shutdown.clone();
        std::thread::spawn(move || {
            signals.listener().wait_blocking();
            if let Err(e) = registration.deregister() {
                tracing::warn!("{e}");
            }
            shutdown.trigger();
        });
    }
    if let Err(e) = running.join() {
        tracing::error!("stopped with an error: {e}");
        return ExitCode::FAILURE;
    }
    tracing::info!("shut down");
    ExitCode::SUCCESS
}

/// Starts the etcd registration of the demo services at the advertised address.
fn register(args: &Args, bound: SocketAddr, names: &[String]) -> Result<Registration, String> {
    let advertise = args.advertise.unwrap_or(bound);
    let mut services = Vec::new();
    for name in names {
        let metadata = service_metadata(&args.metadata, name, names)?;
        services.push(ServiceEntry::new(name, metadata).map_err(|e| e.to_string())?);
    }
    let node =
        Node::tcp(advertise, services).map_err(|e| format!("{e}: pass --advertise HOST:PORT"))?;
    etcd_registration(args, node)
}

#[cfg(feature = "etcd")]
fn etcd_registration(args: &Args, node: Node) -> Result<Registration, String> {
    use ringrpc_server::registry::etcd::{EtcdConfig, EtcdRegistry};
    use ringrpc_server::registry::RegistrationOptions;
    let config = EtcdConfig {
        endpoints: args.etcd.clone(),
        base_path: args.base_path.clone(),
        ttl: Duration::from_secs(args.etcd_ttl.max(1)),
        ..EtcdConfig::default()
    };
    let registry = EtcdRegistry::new(config).map_err(|e| e.to_string())?;
    Registration::start(registry, node, RegistrationOptions::default()).map_err(|e| e.to_string())
}

#[cfg(not(feature = "etcd"))]
fn etcd_registration(_args: &Args, _node: Node) -> Result<Registration, String> {
    Err("--etcd: this binary was built without the `etcd` feature".into())
}

/// The metadata of `service` from the `--metadata` flags: the last `service:QUERY`, else the
/// last plain `QUERY`, else empty.
fn service_metadata(flags: &[String], service: &str, known: &[String]) -> Result<String, String> {
    let mut common = None;
    let mut own = None;
    for flag in flags {
        match flag.split_once(':') {
            // A colon before any `=` names a service; one after it is part of a value.
            Some((name, query)) if !name.contains(['=', '&']) => {
                if !known.iter().any(|k| k == name) {
                    return Err(format!(
                        "--metadata {flag}: no service {name:?} (serving {known:?})"
                    ));
                }
                if name == service {
                    own = Some(query.to_string());
                }
            }
            _ => common = Some(flag.clone()),
        }
    }
    Ok(own.or(common).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_purge_delay_option_is_mimallocs_and_is_set() {
        // The option number is mimalloc's: it reads its default (a second in mimalloc 3) first.
        // SAFETY: reads and sets options of the allocator; no other test touches them.
        unsafe {
            if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
                assert_eq!(libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY), 1000);
                allocator_options();
                assert_eq!(
                    libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY),
                    PURGE_DELAY_MS
                );
            }
        }
    }

    #[test]
    fn metadata_for_every_service_and_for_one() {
        let known = flags(&["Arith", "Echo"]);
        let f = flags(&["weight=10&group=g1", "Echo:state=inactive"]);
        assert_eq!(
            service_metadata(&f, "Arith", &known).unwrap(),
            "weight=10&group=g1"
        );
        assert_eq!(
            service_metadata(&f, "Echo", &known).unwrap(),
            "state=inactive"
        );
        assert_eq!(service_metadata(&[], "Arith", &known).unwrap(), "");
        // A colon inside a value does not name a service.
        let f = flags(&["tag=a:b"]);
        assert_eq!(service_metadata(&f, "Arith", &known).unwrap(), "tag=a:b");
        assert!(service_metadata(&flags(&["Nope:group=a"]), "Arith", &known).is_err());
    }
}
