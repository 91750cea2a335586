//! `ringrpc-bench`: load any rpcx server and report throughput and latency percentiles.
//!
//! Parses the command line into a [`WorkloadSpec`] and a [`LoadConfig`], runs the load with a
//! progress line, and prints the report (text, or one JSON object with `--json`). Exit status: 0,
//! or 1 if `--verify` found errors or nothing was answered, or 2 if the run could not be made.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use ringrpc_bench_client::progress::ProgressLine;
use ringrpc_bench_client::runtime::parse_cpus;
use ringrpc_bench_client::workload::pattern_payload;
use ringrpc_bench_client::{
    Io, LoadConfig, LoadRun, RunInfo, Serialization, SlowMix, Stop, Workload, WorkloadSpec,
};

#[derive(Parser, Debug)]
#[command(
    name = "ringrpc-bench",
    version,
    about = "Load generator for any rpcx server: pipelined, thread-per-core, closed or open loop",
    after_help = "Examples:\n  \
        ringrpc-bench --cpus 1 --conns 10 --inflight 32 --duration 10s\n  \
        ringrpc-bench --target Arith.Mul --serialize json --verify --requests 100000\n  \
        ringrpc-bench --target Hello.Say --serialize protobuf --verify (rpcx-benchmark's load)\n  \
        ringrpc-bench --rate 50000 --slow-percent 1 --slow-ms 20 --duration 30s --json\n  \
        ringrpc-bench --addr 127.0.0.1:8972,127.0.0.1:8973 --conns 12\n  \
        ringrpc-bench --etcd 127.0.0.1:2379 --base-path /rpcx_test --service Echo\n\n\
        A fleet (several --addr, or --etcd): connections spread evenly over the servers, each \
        thread's over all of them, and the report gives each server's requests.\n\n\
        Open loop (--rate): requests are sent at fixed intended times and latency is measured from \
        the intended time (coordinated omission corrected, as wrk2), so a stalled server shows in \
        the percentiles. The pacer spins near send times, so the client's CPUs stay busy."
)]
struct Args {
    /// Server address; several (comma-separated or repeated) load a fleet.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:8972")]
    addr: Vec<String>,
    /// Find the servers in etcd (HOST:PORT of its members) instead of --addr, as a Go XClient
    /// with rpcx-etcd does: active servers of --service under --base-path.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "HOST:PORT",
        conflicts_with = "addr"
    )]
    etcd: Vec<String>,
    /// Registry key prefix (the Go client's basePath), with --etcd.
    #[arg(long, default_value = "/rpcx_test", requires = "etcd")]
    base_path: String,
    /// Service path to discover, with --etcd [default: the service of --target].
    #[arg(long, requires = "etcd")]
    service: Option<String>,
    /// Keep only servers of this metadata group, with --etcd (Go's Option.Group).
    #[arg(long, requires = "etcd")]
    group: Option<String>,
    /// Print the servers that would be loaded (one address a line) and exit.
    #[arg(long)]
    list_servers: bool,
    /// Load threads, one monoio runtime each [default: the number of --cpus, else 1].
    #[arg(long)]
    threads: Option<usize>,
    /// CPUs to pin the threads to, round robin: `1`, `0-3` or `0,2`.
    #[arg(long)]
    cpus: Option<String>,
    /// Connections, spread over the threads.
    #[arg(long, default_value_t = 10)]
    conns: usize,
    /// Requests outstanding per connection (pipelining); caps the open loop too.
    #[arg(long, default_value_t = 32)]
    inflight: usize,
    /// Stop after this many measured requests.
    #[arg(long, conflicts_with = "duration")]
    requests: Option<u64>,
    /// Measure for this long, after the warm-up (e.g. 10s, 500ms, 2m) [default: 5s].
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Open loop: total requests per second over all connections.
    #[arg(long)]
    rate: Option<f64>,
    /// Warm-up not measured, at the start.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    warmup: Duration,
    /// How long replies in flight at the end may take before they count as timeouts.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    drain: Duration,
    /// Service and method.
    #[arg(long, default_value = "Echo.Echo")]
    target: String,
    /// Payload of this many bytes (printable, pseudo-random).
    #[arg(long, default_value_t = 581, conflicts_with_all = ["payload_file", "payload"])]
    payload_size: usize,
    /// Payload read from a file.
    #[arg(long, conflicts_with = "payload")]
    payload_file: Option<PathBuf>,
    /// Payload given literally.
    #[arg(long)]
    payload: Option<String>,
    /// Serialize type in the header; Arith.* targets get {"A":..,"B":..} in it, and Hello.Say
    /// with protobuf gets rpcx-benchmark's 581-byte BenchmarkMessage.
    #[arg(long, value_enum, default_value_t = SerializeArg::Raw)]
    serialize: SerializeArg,
    /// A and B for Arith.* targets.
    #[arg(long, value_parser = parse_pair, default_value = "10,20")]
    arith_args: (i64, i64),
    /// Gzip the request payload (flagged in the header).
    #[arg(long)]
    gzip: bool,
    /// Metadata sent with every request, `key=value` (repeatable).
    #[arg(long = "meta", value_parser = parse_meta)]
    meta: Vec<(String, String)>,
    /// Percentage of requests sent to Echo.Sleep instead of the target.
    #[arg(long)]
    slow_percent: Option<f64>,
    /// The sleep of slow requests in whole milliseconds (Echo.Sleep's raw payload, in decimal).
    #[arg(long, default_value = "10")]
    slow_ms: String,
    /// Check every reply: seq of a request in flight, status Normal, expected payload.
    #[arg(long)]
    verify: bool,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    json: bool,
    /// Write the full latency histogram (HdrHistogram percentile distribution, µs) to this file.
    #[arg(long)]
    hist_out: Option<PathBuf>,
    /// IO driver: io_uring, epoll (monoio's legacy driver), or io_uring if the kernel allows it.
    #[arg(long, value_enum, default_value_t = IoArg::Auto)]
    io: IoArg,
    /// No progress line.
    #[arg(long, short)]
    quiet: bool,
    /// Speak TLS, trusting the PEM CA certificate(s) in this file; the server must present a
    /// certificate for `localhost`.
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<std::path::PathBuf>,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum SerializeArg {
    Raw,
    Json,
    Msgpack,
    Protobuf,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum IoArg {
    Uring,
    Epoll,
    Auto,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("ringrpc-bench: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> Result<ExitCode, String> {
    let servers = servers(&args)?;
    if args.list_servers {
        for server in &servers {
            println!("{server}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let cpus = args.cpus.as_deref().map(parse_cpus).transpose()?;
    let threads = args
        .threads
        .unwrap_or_else(|| cpus.as_ref().map_or(1, Vec::len));

    let payload = match (&args.payload_file, &args.payload) {
        (Some(path), _) => {
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?
        }
        (None, Some(text)) => text.clone().into_bytes(),
        (None, None) => pattern_payload(args.payload_size),
    };
    let spec = WorkloadSpec {
        target: args.target.clone(),
        payload,
        serialization: match args.serialize {
            SerializeArg::Raw => Serialization::Raw,
            SerializeArg::Json => Serialization::Json,
            SerializeArg::Msgpack => Serialization::MsgPack,
            SerializeArg::Protobuf => Serialization::Protobuf,
        },
        gzip: args.gzip,
        metadata: args.meta.clone(),
        arith_args: args.arith_args,
        slow: args.slow_percent.map(|percent| SlowMix {
            percent,
            ms: args.slow_ms.clone(),
        }),
    };
    let workload = Workload::new(&spec).map_err(|e| e.to_string())?;
    let info = RunInfo {
        target: spec.target.clone(),
        payload_bytes: workload.kinds()[0].payload_len,
        serialization: format!("{:?}", args.serialize).to_lowercase(),
        gzip: spec.gzip,
        slow_percent: args.slow_percent,
        ..RunInfo::default()
    };
    let config = LoadConfig {
        addr: servers[0],
        fleet: if servers.len() > 1 {
            servers
        } else {
            Vec::new()
        },
        threads,
        cpus,
        conns: args.conns,
        inflight: args.inflight,
        stop: match args.requests {
            Some(n) => Stop::Requests(n),
            None => Stop::Duration(args.duration.unwrap_or(Duration::from_secs(5))),
        },
        rate: args.rate,
        warmup: args.warmup,
        drain: args.drain,
        verify: args.verify,
        io: match args.io {
            IoArg::Uring => Io::IoUring,
            IoArg::Epoll => Io::Epoll,
            IoArg::Auto => Io::Auto,
        },
        tls: match &args.tls_ca {
            Some(path) => Some(tls_client(path)?),
            None => None,
        },
        ..LoadConfig::default()
    };

    let run = LoadRun::start(config, Arc::new(workload)).map_err(|e| e.to_string())?;
    install_ctrl_c(run.stopper());

    // Progress only for runs long enough to want it.
    let planned = run.planned();
    let mut progress = (!args.quiet && planned.is_none_or(|p| p >= Duration::from_secs(3)))
        .then(|| ProgressLine::new(planned, args.warmup));
    let mut next_line = Instant::now() + Duration::from_secs(1);
    while !run.is_finished() {
        std::thread::sleep(Duration::from_millis(50));
        if Instant::now() >= next_line {
            next_line += Duration::from_secs(1);
            if let Some(progress) = progress.as_mut() {
                progress.update(run.progress());
            }
        }
    }
    if let Some(progress) = &progress {
        progress.finish();
    }

    let report = run.finish(info).map_err(|e| e.to_string())?;
    if let Some(path) = &args.hist_out {
        let mut file = std::fs::File::create(path)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        report
            .write_percentiles(&mut file)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.render_text());
    }

    let failed = report.requests() == 0 || (args.verify && report.errors() > 0);
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The first Ctrl-C stops sending (the report still prints); the second exits at once.
fn install_ctrl_c(stop: impl Fn() + Send + Sync + 'static) {
    static PRESSED: AtomicUsize = AtomicUsize::new(0);
    let _ = ctrlc::set_handler(move || {
        if PRESSED.fetch_add(1, Ordering::SeqCst) == 0 {
            eprintln!("ringrpc-bench: stopping (Ctrl-C again to quit now)");
            stop();
        } else {
            std::process::exit(130);
        }
    });
}

/// The servers to load: `--addr` values, or what `--etcd` lists.
fn servers(args: &Args) -> Result<Vec<SocketAddr>, String> {
    if args.etcd.is_empty() {
        return args.addr.iter().map(|a| resolve(a)).collect();
    }
    discover(args)
}

#[cfg(feature = "etcd")]
fn discover(args: &Args) -> Result<Vec<SocketAddr>, String> {
    use ringrpc_bench_client::discovery::{self, EtcdQuery};
    let service = match &args.service {
        Some(service) => service.clone(),
        None => args
            .target
            .split_once('.')
            .map(|(service, _)| service.to_string())
            .ok_or_else(|| format!("--target {:?} is not Service.Method", args.target))?,
    };
    let query = EtcdQuery {
        endpoints: args.etcd.clone(),
        base_path: args.base_path.clone(),
        service,
        group: args.group.clone(),
    };
    let found = discovery::discover(&query).map_err(|e| e.to_string())?;
    if !args.quiet {
        eprintln!(
            "ringrpc-bench: {} server{} of {} in etcd: {}",
            found.len(),
            if found.len() == 1 { "" } else { "s" },
            query.service,
            found
                .iter()
                .map(|d| d.addr.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(found.into_iter().map(|d| d.addr).collect())
}

#[cfg(not(feature = "etcd"))]
fn discover(_args: &Args) -> Result<Vec<SocketAddr>, String> {
    Err("--etcd: this ringrpc-bench was built without the `etcd` feature".into())
}

fn resolve(addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| format!("bad address {addr:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("address {addr:?} resolves to nothing"))
}

/// `10s`, `500ms`, `250us`, `2m`, `1.5s`, or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("bad duration {text:?} (e.g. 10s, 500ms, 2m)"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown duration unit {other:?} in {text:?}")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("bad duration {text:?}: {e}"))
}

fn parse_meta(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("metadata {text:?} is not key=value"))
}

fn parse_pair(text: &str) -> Result<(i64, i64), String> {
    let bad = || format!("{text:?} is not two integers A,B");
    let (a, b) = text.split_once(',').ok_or_else(bad)?;
    Ok((
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    ))
}

/// A rustls client configuration trusting the CA certificates in `path` (PEM).
fn tls_client(path: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("--tls-ca {}: {e}", path.display()))?
    {
        let cert = cert.map_err(|e| format!("--tls-ca {}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("--tls-ca {}: {e}", path.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn metadata_and_pairs() {
        assert_eq!(parse_meta("k=v=w").unwrap(), ("k".into(), "v=w".into()));
        assert!(parse_meta("novalue").is_err());
        assert_eq!(parse_pair("10, -20").unwrap(), (10, -20));
        assert!(parse_pair("10").is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
