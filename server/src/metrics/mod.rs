//! Metrics: per-core counters kept by an interceptor, summed on scrape into the Prometheus text
//! format, served by [`MetricsEndpoint`] on a port of its own.
//!
//! - this file: the counters ([`CoreMetrics`], one per core) and [`Metrics`], which owns them all;
//! - `interceptor.rs`: [`MetricsInterceptor`], a core's writer of its counters;
//! - `exposition.rs`: the sums over cores, encoded at each scrape;
//! - `endpoint.rs`: [`MetricsEndpoint`], the HTTP server of the text.
//!
//! What is counted: requests and errors by service and method, a latency histogram by service and
//! method (from `before_call` to the reply being encoded), open connections, requests in flight,
//! bytes read and written, and the limits' refusals by reason (once [`Metrics::count_refusals`]
//! is given a running server's counts; each worker keeps its own, as here). Heartbeats are
//! answered before any interceptor and are not counted; requests refused by auth or the rate
//! limiter are, as errors (install the metrics first so that they are also timed).
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
//!   hand; a `Collector` lets it encode our per-core sums without keeping metric objects of its
//!   own (which would mean shared atomics on the request path).

mod endpoint;
mod exposition;
mod interceptor;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::registry::Registry;

use crate::limits::RefusalCounts;
use crate::WorkerId;
pub use endpoint::MetricsEndpoint;
use exposition::Sums;
pub use interceptor::MetricsInterceptor;

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
    refusals: Arc<Refusals>,
    registry: Arc<Registry>,
}

#[derive(Debug, Default)]
struct Cores(Mutex<Vec<Arc<CoreMetrics>>>);

/// The refusal counts of the servers these metrics watch (usually one).
#[derive(Debug, Default)]
struct Refusals(Mutex<Vec<Arc<RefusalCounts>>>);

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let cores = Arc::new(Cores::default());
        let refusals = Arc::new(Refusals::default());
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Sums(cores.clone(), refusals.clone())));
        Metrics {
            cores,
            refusals,
            registry: Arc::new(registry),
        }
    }

    /// Exports a running server's refusals ([`crate::Running::refusals`]) as
    /// `ringrpc_refusals_total{reason=...}`: the counters stay the workers' own and are summed at
    /// each scrape. Refusals made before this call are counted too.
    pub fn count_refusals(&self, refusals: Arc<RefusalCounts>) {
        self.refusals.0.lock().expect("metrics lock").push(refusals);
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
        MetricsInterceptor::new(worker, core)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Interceptor;

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
    fn refusals_are_exported_by_reason_once_given() {
        use crate::limits::{Reason, RefusalLog};
        let metrics = Metrics::new();
        assert!(
            !metrics.render().contains("ringrpc_refusals"),
            "none given yet"
        );
        let counts = Arc::new(RefusalCounts::default());
        let (a, b) = (
            RefusalLog::new(counts.clone()),
            RefusalLog::new(counts.clone()),
        );
        let peer = "127.0.0.1:9".parse().unwrap();
        a.refuse(peer, Reason::WriteTimeout);
        b.refuse(peer, Reason::WriteTimeout);
        metrics.count_refusals(counts);
        let text = metrics.render();
        assert!(
            text.contains("# TYPE ringrpc_refusals_total counter"),
            "{text}"
        );
        assert!(
            text.contains(r#"ringrpc_refusals_total{reason="write_timeout"} 2"#),
            "{text}"
        );
        for reason in Reason::ALL
            .into_iter()
            .filter(|&r| r != Reason::WriteTimeout)
        {
            let line = format!(r#"ringrpc_refusals_total{{reason="{}"}} 0"#, reason.label());
            assert!(text.contains(&line), "{line} in {text}");
        }
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
        assert_eq!(core.core().series.lock().unwrap().len(), MAX_SERIES + 1);
        let text = metrics.render();
        assert!(
            text.contains(r#"service="_other",method="_other"} 10"#),
            "{text}"
        );
    }
}
