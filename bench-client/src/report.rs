//! What a run measured and how it is shown.
//!
//! Each load thread fills its own [`Recorder`] (a latency histogram in nanoseconds, reply and
//! error counts); they are merged into one [`Report`] at the end, which renders as text, as one
//! JSON object, or as the full HdrHistogram percentile distribution. Nothing here does network IO.

use std::fmt::Write as _;
use std::io;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// The classes of failure the report counts separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A connection could not be opened.
    Connect,
    /// A read or write failed (connection reset and the like).
    Io,
    /// The server closed a connection with requests in flight (one error per request lost).
    Closed,
    /// The server sent bytes that are not an rpcx frame; the connection was dropped.
    Decode,
    /// A reply whose seq matches no request in flight.
    UnknownSeq,
    /// A reply with status Error (its `__rpcx_error__` is kept as the first error's detail).
    Status,
    /// A reply whose payload is not what was expected (`--verify`).
    Verify,
    /// No reply before the end of the drain period.
    Timeout,
    /// Open loop: a send time passed but the request was never sent, its connection's window was
    /// full until the end (the server fell behind the rate).
    Unsent,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 9] = [
        ErrorKind::Connect,
        ErrorKind::Io,
        ErrorKind::Closed,
        ErrorKind::Decode,
        ErrorKind::UnknownSeq,
        ErrorKind::Status,
        ErrorKind::Verify,
        ErrorKind::Timeout,
        ErrorKind::Unsent,
    ];

    /// The key used in reports.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Io => "io",
            ErrorKind::Closed => "closed",
            ErrorKind::Decode => "decode",
            ErrorKind::UnknownSeq => "unknown_seq",
            ErrorKind::Status => "status",
            ErrorKind::Verify => "verify",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unsent => "unsent",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Latencies up to an hour, in nanoseconds, at 3 significant digits.
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

/// One thread's measurements.
#[derive(Debug, Clone)]
pub struct Recorder {
    /// Latency of measured, successful replies, in nanoseconds.
    pub latency: Histogram<u64>,
    /// Replies to measured requests, whatever their status.
    pub replies: u64,
    errors: [u64; ErrorKind::ALL.len()],
    first_error: Option<String>,
    /// Time (run clock) of the last reply to a measured request.
    pub last_reply_ns: u64,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            latency: new_histogram(),
            replies: 0,
            errors: [0; ErrorKind::ALL.len()],
            first_error: None,
            last_reply_ns: 0,
        }
    }
}

impl Recorder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A successful reply to a measured request.
    pub fn success(&mut self, latency_ns: u64, now_ns: u64) {
        self.latency.saturating_record(latency_ns.max(1));
        self.replies += 1;
        self.last_reply_ns = self.last_reply_ns.max(now_ns);
    }

    /// A reply that failed (status Error, or verification). Failures are counted during the
    /// warm-up too; only `measured` ones count as replies.
    pub fn failed_reply(
        &mut self,
        kind: ErrorKind,
        measured: bool,
        now_ns: u64,
        detail: impl FnOnce() -> String,
    ) {
        if measured {
            self.replies += 1;
            self.last_reply_ns = self.last_reply_ns.max(now_ns);
        }
        self.error(kind, 1, detail);
    }

    /// `count` errors of `kind`; `detail` is kept if it is the first error of the thread.
    pub fn error(&mut self, kind: ErrorKind, count: u64, detail: impl FnOnce() -> String) {
        if count == 0 {
            return;
        }
        self.errors[kind.index()] += count;
        if self.first_error.is_none() {
            self.first_error = Some(format!("{}: {}", kind.name(), detail()));
        }
    }

    /// The first error's kind and detail, if any.
    pub fn first_error(&self) -> Option<&str> {
        self.first_error.as_deref()
    }

    pub fn errors(&self, kind: ErrorKind) -> u64 {
        self.errors[kind.index()]
    }

    pub fn total_errors(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Adds `other`'s measurements to these.
    pub fn merge(&mut self, other: &Recorder) {
        self.latency
            .add(&other.latency)
            .expect("histograms share their bounds");
        self.replies += other.replies;
        for (mine, theirs) in self.errors.iter_mut().zip(other.errors) {
            *mine += theirs;
        }
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
        self.last_reply_ns = self.last_reply_ns.max(other.last_reply_ns);
    }
}

/// How the run was set up, for the report's header and JSON.
#[derive(Debug, Clone, Default)]
pub struct RunInfo {
    pub addr: String,
    pub target: String,
    pub payload_bytes: usize,
    pub serialization: String,
    pub gzip: bool,
    pub threads: usize,
    /// Connections that were open when the load started.
    pub conns: usize,
    pub inflight: usize,
    /// Open-loop rate in requests per second; `None` for a closed loop.
    pub rate: Option<f64>,
    pub io: String,
    pub warmup_s: f64,
    /// Percentage of slow requests, if any.
    pub slow_percent: Option<f64>,
}

/// One server's part of a run: its connections and the measured requests it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerShare {
    pub addr: std::net::SocketAddr,
    pub conns: usize,
    pub requests: u64,
}

/// The merged result of a run.
#[derive(Debug, Clone)]
pub struct Report {
    pub info: RunInfo,
    pub recorder: Recorder,
    /// Per server, in the order given (one entry without a fleet).
    pub servers: Vec<ServerShare>,
    /// The measured period, in seconds (after warm-up).
    pub duration_s: f64,
    /// True if the run was cut short (Ctrl-C).
    pub interrupted: bool,
}

/// The percentiles every report shows, with their JSON keys.
pub const PERCENTILES: [(&str, &str, f64); 5] = [
    ("p50", "p50", 0.50),
    ("p90", "p90", 0.90),
    ("p99", "p99", 0.99),
    ("p999", "p99.9", 0.999),
    ("p9999", "p99.99", 0.9999),
];

impl Report {
    /// Replies to measured requests.
    pub fn requests(&self) -> u64 {
        self.recorder.replies
    }

    pub fn errors(&self) -> u64 {
        self.recorder.total_errors()
    }

    pub fn throughput_rps(&self) -> f64 {
        if self.duration_s > 0.0 {
            self.requests() as f64 / self.duration_s
        } else {
            0.0
        }
    }

    /// The latency at `quantile`, in microseconds (0 when nothing was measured).
    pub fn latency_us(&self, quantile: f64) -> f64 {
        let hist = &self.recorder.latency;
        if hist.is_empty() {
            return 0.0;
        }
        hist.value_at_quantile(quantile) as f64 / 1000.0
    }

    pub fn max_us(&self) -> f64 {
        self.recorder.latency.max() as f64 / 1000.0
    }

    pub fn mean_us(&self) -> f64 {
        if self.recorder.latency.is_empty() {
            0.0
        } else {
            self.recorder.latency.mean() / 1000.0
        }
    }

    /// One JSON object: `requests`, `errors`, `duration_s`, `throughput_rps`, `latency_us`
    /// {p50, p90, p99, p999, p9999, max, mean}, errors by kind, and the setup.
    pub fn to_json(&self) -> Value {
        let mut latency = serde_json::Map::new();
        for (key, _, q) in PERCENTILES {
            latency.insert(key.into(), json!(round3(self.latency_us(q))));
        }
        latency.insert("max".into(), json!(round3(self.max_us())));
        latency.insert("mean".into(), json!(round3(self.mean_us())));
        let by_kind: serde_json::Map<String, Value> = ErrorKind::ALL
            .iter()
            .map(|&k| (k.name().to_string(), json!(self.recorder.errors(k))))
            .collect();
        let info = &self.info;
        json!({
            "addr": info.addr,
            "target": info.target,
            "payload_bytes": info.payload_bytes,
            "serialize": info.serialization,
            "gzip": info.gzip,
            "mode": if info.rate.is_some() { "open" } else { "closed" },
            "rate": info.rate,
            "threads": info.threads,
            "conns": info.conns,
            "inflight": info.inflight,
            "io": info.io,
            "warmup_s": info.warmup_s,
            "slow_percent": info.slow_percent,
            "requests": self.requests(),
            "errors": self.errors(),
            "errors_by_kind": by_kind,
            "first_error": self.recorder.first_error,
            "duration_s": round3(self.duration_s),
            "throughput_rps": round3(self.throughput_rps()),
            "latency_us": latency,
            "interrupted": self.interrupted,
            "servers": self.servers.iter().map(|s| json!({
                "addr": s.addr.to_string(),
                "conns": s.conns,
                "requests": s.requests,
            })).collect::<Vec<_>>(),
        })
    }

    /// The human-readable summary.
    pub fn render_text(&self) -> String {
        let info = &self.info;
        let mut out = String::new();
        let gzip = if info.gzip { " gzip" } else { "" };
        let _ = writeln!(
            out,
            "ringrpc-bench: {} ({} B {}{}) -> {}",
            info.target, info.payload_bytes, info.serialization, gzip, info.addr
        );
        let mode = match info.rate {
            Some(rate) => format!("open loop at {} req/s", group(rate.round() as u64)),
            None => "closed loop".to_string(),
        };
        let slow = match info.slow_percent {
            Some(p) => format!(", {p}% Echo.Sleep"),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "  {mode}, {} thread{} ({}), {} conns x {} in flight{slow}, {:.2} s measured after {:.2} s warm-up{}",
            info.threads,
            if info.threads == 1 { "" } else { "s" },
            info.io,
            info.conns,
            info.inflight,
            self.duration_s,
            info.warmup_s,
            if self.interrupted { " (interrupted)" } else { "" },
        );
        let _ = writeln!(
            out,
            "  requests  {:>12}   {} req/s",
            group(self.requests()),
            group(self.throughput_rps().round() as u64)
        );
        let _ = write!(out, "  errors    {:>12}", group(self.errors()));
        let kinds: Vec<String> = ErrorKind::ALL
            .iter()
            .filter(|&&k| self.recorder.errors(k) > 0)
            .map(|&k| format!("{} {}", k.name(), group(self.recorder.errors(k))))
            .collect();
        if !kinds.is_empty() {
            let _ = write!(out, "   ({})", kinds.join(", "));
        }
        out.push('\n');
        if let Some(first) = &self.recorder.first_error {
            let _ = writeln!(out, "  first error: {first}");
        }
        let _ = write!(out, "  latency  ");
        for (_, label, q) in PERCENTILES {
            let _ = write!(out, " {label} {}", format_us(self.latency_us(q)));
        }
        let _ = writeln!(
            out,
            "  max {}  (mean {})",
            format_us(self.max_us()),
            format_us(self.mean_us())
        );
        if self.servers.len() > 1 {
            let total = self.servers.iter().map(|s| s.requests).sum::<u64>().max(1);
            for s in &self.servers {
                let _ = writeln!(
                    out,
                    "  server {:<21} {:>12} requests ({:>5.1} %), {} conns",
                    s.addr,
                    group(s.requests),
                    s.requests as f64 * 100.0 / total as f64,
                    s.conns
                );
            }
        }
        out
    }

    /// Writes the latency histogram as HdrHistogram's percentile distribution text (values in
    /// microseconds), the format HdrHistogram's plotter reads.
    pub fn write_percentiles(&self, out: &mut impl io::Write) -> io::Result<()> {
        let hist = &self.recorder.latency;
        writeln!(
            out,
            "{:>12} {:>14} {:>10} {:>14}\n",
            "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
        )?;
        let mut total = 0u64;
        for step in hist.iter_quantiles(5) {
            total += step.count_since_last_iteration();
            let q = step.quantile_iterated_to();
            let value = step.value_iterated_to() as f64 / 1000.0;
            if q < 1.0 {
                writeln!(
                    out,
                    "{value:>12.3} {q:>14.12} {total:>10} {:>14.2}",
                    1.0 / (1.0 - q)
                )?;
            } else {
                writeln!(out, "{value:>12.3} {q:>14.12} {total:>10}")?;
            }
        }
        let stdev = if hist.is_empty() {
            0.0
        } else {
            hist.stdev() / 1000.0
        };
        writeln!(
            out,
            "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
            self.mean_us(),
            stdev
        )?;
        writeln!(
            out,
            "#[Max     = {:>12.3}, Total count    = {:>12}]",
            self.max_us(),
            hist.len()
        )?;
        writeln!(
            out,
            "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
            hist.buckets(),
            // HdrHistogram's sub-bucket count for this precision (2048 at 3 digits).
            (2 * 10u64.pow(u32::from(hist.sigfig()))).next_power_of_two()
        )
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// A latency in µs, shown in the unit that keeps it short.
pub fn format_us(us: f64) -> String {
    if us < 1_000.0 {
        format!("{us:.1}µs")
    } else if us < 1_000_000.0 {
        format!("{:.2}ms", us / 1_000.0)
    } else {
        format!("{:.2}s", us / 1_000_000.0)
    }
}

/// `1234567` -> `1,234,567`.
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report_with(latencies_us: &[u64]) -> Report {
        let mut rec = Recorder::new();
        for (i, &us) in latencies_us.iter().enumerate() {
            rec.success(us * 1000, i as u64);
        }
        Report {
            servers: Vec::new(),
            info: RunInfo {
                target: "Echo.Echo".into(),
                ..RunInfo::default()
            },
            recorder: rec,
            duration_s: 2.0,
            interrupted: false,
        }
    }

    #[test]
    fn json_has_the_documented_fields() {
        let report = report_with(&(1..=1000).collect::<Vec<_>>());
        let v = report.to_json();
        assert_eq!(v["requests"], 1000);
        assert_eq!(v["errors"], 0);
        assert_eq!(v["duration_s"], 2.0);
        assert_eq!(v["throughput_rps"], 500.0);
        let p50 = v["latency_us"]["p50"].as_f64().unwrap();
        assert!((499.0..=501.0).contains(&p50), "{p50}");
        for key in ["p90", "p99", "p999", "p9999", "max"] {
            assert!(v["latency_us"][key].as_f64().unwrap() > p50, "{key}");
        }
        assert_eq!(v["errors_by_kind"]["timeout"], 0);
    }

    #[test]
    fn merging_adds_counts_and_keeps_the_first_error() {
        let mut a = Recorder::new();
        a.success(1_000, 5);
        let mut b = Recorder::new();
        b.success(3_000, 9);
        b.failed_reply(ErrorKind::Status, true, 10, || {
            "rpcx: can't find service".into()
        });
        b.error(ErrorKind::Timeout, 4, || "no reply".into());
        a.merge(&b);
        assert_eq!(a.replies, 3);
        assert_eq!(a.latency.len(), 2);
        assert_eq!(a.errors(ErrorKind::Status), 1);
        assert_eq!(a.errors(ErrorKind::Timeout), 4);
        assert_eq!(a.total_errors(), 5);
        assert_eq!(a.last_reply_ns, 10);
        assert_eq!(
            a.first_error.as_deref(),
            Some("status: rpcx: can't find service")
        );
    }

    #[test]
    fn text_report_names_error_kinds() {
        let mut report = report_with(&[10, 20]);
        report
            .recorder
            .error(ErrorKind::Unsent, 3, || "late".into());
        let text = report.render_text();
        assert!(text.contains("unsent 3"), "{text}");
        assert!(text.contains("p99.99"), "{text}");
    }

    #[test]
    fn percentile_distribution_is_hdr_text() {
        let report = report_with(&[10, 20, 30, 40]);
        let mut out = Vec::new();
        report.write_percentiles(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)"));
        assert!(text.contains("#[Max     =       40.0"), "{text}");
        assert!(text.contains("SubBuckets     =         2048]"), "{text}");
        assert!(text.contains("Total count    =            4]"), "{text}");
        let last_row = text.lines().rfind(|l| !l.starts_with('#')).unwrap();
        assert!(last_row.contains("1.000000000000"), "{last_row}");
    }

    #[test]
    fn numbers_are_grouped_and_latencies_scaled() {
        assert_eq!(group(0), "0");
        assert_eq!(group(1234567), "1,234,567");
        assert_eq!(group(100), "100");
        assert_eq!(format_us(43.21), "43.2µs");
        assert_eq!(format_us(2500.0), "2.50ms");
        assert_eq!(format_us(3_000_000.0), "3.00s");
    }
}
