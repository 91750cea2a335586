//! Metrics: per-core counters kept by an [`Interceptor`], summed on scrape into the Prometheus
//! text format, served by [`MetricsEndpoint`] on a port of its own.
//!
//! What is counted: requests and errors by service and method, a latency histogram by service and
//! method (from `before_call` to the reply being encoded), open connections, requests in flight,
//! bytes read and written. Heartbeats are answered before any interceptor and are not counted;
//! requests refused by auth or the rate limiter are, as errors (install the metrics first so that
//! they are also timed).
//!
//! Why it looks like this:
//! - **No shared atomic on the request path.** Each core owns its counters ([`CoreMetrics`]) and
//!   is their only writer; the scrape thread only reads them. A counter is an `AtomicU64` updated
//!   with a `Relaxed` load and a `Relaxed` store, never a read-modify-write: with a single writer
//!   no update can be lost, and on x86-64 a relaxed load or store compiles to a plain `mov`, not a
//!   `lock`-prefixed instruction. The atomic type is there only so that the scrape thread's
//!   concurrent read is defined behaviour (it sees each counter whole, at some recent value).
//!   Each core's counters start on their own cache line (`align(64)`), so cores never write to a
//!   shared line; the line moves only when a scrape reads it.
//! - **The scrape never waits for a worker.** It runs on its own thread and reads the counters
//!   directly, so it answers while every core is saturated; a lock is taken only to list a core's
//!   series, which the core itself takes only when it meets a service and method it has not
//!   counted before (at most [`MAX_SERIES`] per core, then `_other`, so a client sending random
//!   names cannot grow the label set without bound).
//! - **The format is `prometheus-client`'s** (the Prometheus project's own Rust client): its
//!   classic text encoder (`text/plain; version=0.0.4`) writes the names, `# HELP`/`# TYPE`
//!   lines, label escaping and cumulative histogram buckets, which are easy to get subtly wrong by
//!   hand; a [`Collector`] lets it encode our per-core sums without keeping metric objects of its
//!   own (which would mean shared atomics on the request path).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use rustc_hash::FxHashMap;

use crate::clock::now_ns;
use crate::interceptor::Interceptor;
use crate::{Context, WorkerId};

/// Distinct service/method series a core keeps before it counts the rest as `_other`.
pub const MAX_SERIES: usize = 256;

/// Upper bounds of the latency buckets, in seconds: 10 µs to 10 s, for RPCs that take
/// microseconds on this server and seconds in the services behind it.
const LATENCY_BOUNDS: [f64; 19] = [
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// The same bounds in nanoseconds, for the request path.
const LATENCY_BOUNDS_NS: [u64; 19] = {
    let mut ns = [0u64; 19];
    let mut i = 0;
    while i < 19 {
        ns[i] = (LATENCY_BOUNDS[i] * 1e9) as u64;
        i += 1;
    }
    ns
};

/// A counter with one writer (its core) and any number of readers (the scrape thread).
#[derive(Debug, Default)]
struct Slot(AtomicU64);

impl Slot {
    /// Adds `n`: a relaxed load and a relaxed store, not a `fetch_add`. Only the owning core
    /// writes, so nothing is lost, and no locked instruction is issued (see the module doc).
    #[inline]
    fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    #[inline]
    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The counters of one service and method on one core.
#[derive(Debug)]
#[repr(align(64))]
struct Series {
    service: String,
    method: String,
    requests: Slot,
    errors: Slot,
    /// Requests per latency bucket (not cumulative: the scrape adds them up), the last one
    /// being +Inf.
    buckets: [Slot; LATENCY_BOUNDS.len() + 1],
    latency_ns: Slot,
}

impl Series {
    fn new(service: String, method: String) -> Self {
        Series {
            service,
            method,
            requests: Slot::default(),
            errors: Slot::default(),
            buckets: Default::default(),
            latency_ns: Slot::default(),
        }
    }
}

/// The counters of one core: written only by that core.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct CoreMetrics {
    connections_opened: Slot,
    connections_closed: Slot,
    requests_started: Slot,
    requests_finished: Slot,
    bytes_read: Slot,
    bytes_written: Slot,
    /// This core's series; locked by the core only to add one, and by the scrape to list them.
    series: Mutex<Vec<Arc<Series>>>,
}

/// The server's metrics: every core's counters, and the registry that encodes their sums. Clone
/// it into the per-worker factory; each worker calls [`Metrics::interceptor`] once.
#[derive(Clone)]
pub struct Metrics {
    cores: Arc<Cores>,
    registry: Arc<Registry>,
}

#[derive(Debug, Default)]
struct Cores(Mutex<Vec<Arc<CoreMetrics>>>);

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let cores = Arc::new(Cores::default());
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Sums(cores.clone())));
        Metrics {
            cores,
            registry: Arc::new(registry),
        }
    }

    /// The interceptor of one worker, counting into counters of its own (install it first, so it
    /// sees and times every request, rejected ones included).
    pub fn interceptor(&self, worker: WorkerId) -> MetricsInterceptor {
        let core = Arc::new(CoreMetrics::default());
        self.cores
            .0
            .lock()
            .expect("metrics lock")
            .push(core.clone());
        MetricsInterceptor {
            worker,
            core,
            index: RefCell::new(FxHashMap::default()),
            other: RefCell::new(None),
        }
    }

    /// The Prometheus text exposition of every core's counters, summed.
    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    /// The content type of [`Metrics::render`]'s text.
    pub fn content_type() -> &'static str {
        prometheus_client::encoding::prometheus_text::CONTENT_TYPE
    }
}

/// Sums of the per-core counters, encoded at each scrape.
#[derive(Debug)]
struct Sums(Arc<Cores>);

/// One service and method, summed over cores.
#[derive(Default)]
struct MethodSums {
    requests: u64,
    errors: u64,
    buckets: [u64; LATENCY_BOUNDS.len() + 1],
    latency_ns: u64,
}

impl Collector for Sums {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let cores: Vec<Arc<CoreMetrics>> = self.0 .0.lock().expect("metrics lock").clone();
        let (mut opened, mut closed, mut started, mut finished, mut read, mut written) =
            (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
        let mut methods: BTreeMap<(String, String), MethodSums> = BTreeMap::new();
        for core in &cores {
            opened += core.connections_opened.get();
            closed += core.connections_closed.get();
            started += core.requests_started.get();
            finished += core.requests_finished.get();
            read += core.bytes_read.get();
            written += core.bytes_written.get();
            let series: Vec<Arc<Series>> = core.series.lock().expect("metrics lock").clone();
            for s in series {
                let sums = methods
                    .entry((s.service.clone(), s.method.clone()))
                    .or_default();
                sums.requests += s.requests.get();
                sums.errors += s.errors.get();
                for (sum, bucket) in sums.buckets.iter_mut().zip(&s.buckets) {
                    *sum += bucket.get();
                }
                sums.latency_ns += s.latency_ns.get();
            }
        }

        let labels = |(service, method): &(String, String)| {
            [("service", service.clone()), ("method", method.clone())]
        };
        let mut family = encoder.encode_descriptor(
            "ringrpc_requests",
            "Requests handled, by service and method (heartbeats excluded).",
            None,
            MetricType::Counter,
        )?;
        for (key, sums) in &methods {
            family
                .encode_family(&labels(key))?
                .encode_counter::<NoLabelSet, _, u64>(&sums.requests, None)?;
        }
        let mut family = encoder.encode_descriptor(
            "ringrpc_request_errors",
            "Requests answered with an error (rpcx __rpcx_error__), by service and method.",
            None,
            MetricType::Counter,
        )?;
        for (key, sums) in &methods {
            family
                .encode_family(&labels(key))?
                .encode_counter::<NoLabelSet, _, u64>(&sums.errors, None)?;
        }
        let mut family = encoder.encode_descriptor(
            "ringrpc_request_duration_seconds",
            "Time from a request's dispatch to its reply being encoded, by service and method.",
            None,
            MetricType::Histogram,
        )?;
        for (key, sums) in &methods {
            // Per-bucket counts: the encoder makes them cumulative.
            let buckets: Vec<(f64, u64)> = LATENCY_BOUNDS
                .iter()
                .copied()
                .chain([f64::INFINITY])
                .zip(sums.buckets)
                .collect();
            let count = sums.buckets.iter().sum();
            family
                .encode_family(&labels(key))?
                .encode_histogram::<NoLabelSet>(
                    sums.latency_ns as f64 / 1e9,
                    count,
                    &buckets,
                    None,
                )?;
        }
        let gauges = [
            (
                "ringrpc_open_connections",
                "Connections open now.",
                opened.wrapping_sub(closed) as i64,
            ),
            (
                "ringrpc_requests_in_flight",
                "Requests dispatched and not yet answered.",
                started.wrapping_sub(finished) as i64,
            ),
        ];
        for (name, help, value) in gauges {
            encoder
                .encode_descriptor(name, help, None, MetricType::Gauge)?
                .encode_gauge(&value)?;
        }
        let counters = [
            (
                "ringrpc_connections",
                "Connections accepted (and not refused).",
                opened,
            ),
            ("ringrpc_read_bytes", "Bytes read from connections.", read),
            (
                "ringrpc_written_bytes",
                "Bytes of replies and pushes written to connections.",
                written,
            ),
        ];
        for (name, help, value) in counters {
            encoder
                .encode_descriptor(name, help, None, MetricType::Counter)?
                .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
        }
        Ok(())
    }
}

/// One worker's metrics interceptor: finds a request's series in a core-local map and bumps its
/// counters.
pub struct MetricsInterceptor {
    worker: WorkerId,
    core: Arc<CoreMetrics>,
    /// Series by service, then method: looked up with the request's bytes, no allocation.
    index: RefCell<FxHashMap<Box<[u8]>, MethodIndex>>,
    /// The `_other` series, once the core has [`MAX_SERIES`].
    other: RefCell<Option<Rc<SeriesRef>>>,
}

/// One service's series, by method.
type MethodIndex = FxHashMap<Box<[u8]>, Rc<SeriesRef>>;

/// A core-local handle on a series (`Rc`, so a lookup clones no atomic reference count).
struct SeriesRef(Arc<Series>);

impl MetricsInterceptor {
    /// Which worker counts here.
    pub fn worker(&self) -> WorkerId {
        self.worker
    }

    fn series(&self, service: &[u8], method: &[u8]) -> Rc<SeriesRef> {
        if let Some(series) = self
            .index
            .borrow()
            .get(service)
            .and_then(|methods| methods.get(method))
        {
            return series.clone();
        }
        self.add_series(service, method)
    }

    #[cold]
    fn add_series(&self, service: &[u8], method: &[u8]) -> Rc<SeriesRef> {
        // Set only once the core is full: names past the cap take no lock.
        if let Some(other) = self.other.borrow().as_ref() {
            return other.clone();
        }
        let mut list = self.core.series.lock().expect("metrics lock");
        if list.len() >= MAX_SERIES {
            return self
                .other
                .borrow_mut()
                .get_or_insert_with(|| {
                    let series = Arc::new(Series::new("_other".into(), "_other".into()));
                    list.push(series.clone());
                    Rc::new(SeriesRef(series))
                })
                .clone();
        }
        let series = Arc::new(Series::new(
            String::from_utf8_lossy(service).into_owned(),
            String::from_utf8_lossy(method).into_owned(),
        ));
        list.push(series.clone());
        let series = Rc::new(SeriesRef(series));
        self.index
            .borrow_mut()
            .entry(service.into())
            .or_default()
            .insert(method.into(), series.clone());
        series
    }
}

impl Interceptor for MetricsInterceptor {
    fn inspects_results(&self) -> bool {
        false
    }

    fn on_connect(&self, _peer: SocketAddr) -> Result<(), crate::Refusal> {
        self.core.connections_opened.add(1);
        Ok(())
    }

    fn on_close(&self, _peer: SocketAddr) {
        self.core.connections_closed.add(1);
    }

    #[inline]
    fn on_read(&self, bytes: usize) {
        self.core.bytes_read.add(bytes as u64);
    }

    #[inline]
    fn on_write(&self, bytes: usize) {
        self.core.bytes_written.add(bytes as u64);
    }

    #[inline]
    fn before_call(&self, ctx: &Context) -> Result<(), crate::Rejection> {
        self.core.requests_started.add(1);
        ctx.set_started(now_ns());
        Ok(())
    }

    #[inline]
    fn after_reply(&self, ctx: &Context, error: Option<&str>) {
        let request = ctx.request();
        let series = self.series(request.service_path(), request.service_method());
        let series = &series.0;
        series.requests.add(1);
        if error.is_some() {
            series.errors.add(1);
        }
        match ctx.started() {
            Some(started) => {
                let ns = now_ns().saturating_sub(started);
                let bucket = LATENCY_BOUNDS_NS
                    .iter()
                    .position(|&bound| ns <= bound)
                    .unwrap_or(LATENCY_BOUNDS_NS.len());
                series.buckets[bucket].add(1);
                series.latency_ns.add(ns);
            }
            // Refused by an interceptor installed before this one: not timed, but counted as
            // started so that the in-flight gauge stays right.
            None => self.core.requests_started.add(1),
        }
        self.core.requests_finished.add(1);
    }
}

/// The HTTP endpoint that serves [`Metrics::render`] (any path; `GET` or `HEAD`), one request per
/// connection, on a thread of its own: not a worker, so it answers while every worker is busy.
pub struct MetricsEndpoint {
    local_addr: SocketAddr,
}

/// How long the endpoint waits on a slow scraper before dropping it.
const SCRAPE_IO_TIMEOUT: Duration = Duration::from_secs(2);

impl MetricsEndpoint {
    /// Binds `addr` (the demo binary's `--metrics-addr`) and serves `metrics` there until the
    /// process exits.
    pub fn start(addr: SocketAddr, metrics: Metrics) -> io::Result<MetricsEndpoint> {
        let listener = TcpListener::bind(addr)?;
        let local_addr = listener.local_addr()?;
        std::thread::Builder::new()
            .name("ringrpc-metrics".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    match stream {
                        Ok(stream) => {
                            if let Err(e) = answer(stream, &metrics) {
                                tracing::debug!("metrics scrape failed: {e}");
                            }
                        }
                        Err(e) => {
                            tracing::warn!("metrics endpoint: accept failed: {e}");
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                }
            })?;
        Ok(MetricsEndpoint { local_addr })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

/// Reads one HTTP request head and answers it with the metrics.
fn answer(mut stream: TcpStream, metrics: &Metrics) -> io::Result<()> {
    stream.set_read_timeout(Some(SCRAPE_IO_TIMEOUT))?;
    stream.set_write_timeout(Some(SCRAPE_IO_TIMEOUT))?;
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk)?;
        if n == 0 || head.len() > 16 << 10 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let (status, body) = if head.starts_with(b"GET ") {
        ("200 OK", metrics.render())
    } else if head.starts_with(b"HEAD ") {
        ("200 OK", String::new())
    } else {
        ("405 Method Not Allowed", String::new())
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        Metrics::content_type(),
        body.len()
    );
    stream.write_all(response.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_in_nanoseconds_match_the_seconds() {
        assert_eq!(LATENCY_BOUNDS_NS[0], 10_000);
        assert_eq!(LATENCY_BOUNDS_NS[18], 10_000_000_000);
    }

    #[test]
    fn counters_of_every_core_are_summed_on_scrape() {
        let metrics = Metrics::new();
        let a = metrics.interceptor(WorkerId(0));
        let b = metrics.interceptor(WorkerId(1));
        for (core, n) in [(&a, 3u64), (&b, 4)] {
            let s = core.series(b"Arith", b"Mul");
            s.0.requests.add(n);
            s.0.buckets[0].add(n);
            core.on_read(100);
        }
        b.series(b"Arith", b"Div").0.errors.add(1);
        let text = metrics.render();
        assert!(
            text.contains(r#"ringrpc_requests_total{service="Arith",method="Mul"} 7"#),
            "{text}"
        );
        assert!(text.contains(r#"ringrpc_request_errors_total{service="Arith",method="Div"} 1"#));
        for le in ["1e-05", "10", "+Inf"] {
            let line = format!(
                r#"ringrpc_request_duration_seconds_bucket{{service="Arith",method="Mul",le="{le}"}} 7"#
            );
            assert!(text.contains(&line), "{line} in {text}");
        }
        assert!(text.contains("ringrpc_read_bytes_total 200"), "{text}");
    }

    #[test]
    fn a_core_keeps_at_most_max_series_then_counts_other() {
        let metrics = Metrics::new();
        let core = metrics.interceptor(WorkerId(0));
        for i in 0..MAX_SERIES + 10 {
            core.series(b"S", i.to_string().as_bytes())
                .0
                .requests
                .add(1);
        }
        assert_eq!(core.core.series.lock().unwrap().len(), MAX_SERIES + 1);
        let text = metrics.render();
        assert!(
            text.contains(r#"service="_other",method="_other"} 10"#),
            "{text}"
        );
    }
}
