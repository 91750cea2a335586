//! The exposition: at each scrape, every core's counters summed and encoded by
//! `prometheus-client`'s classic text encoder, through a [`Collector`] (so the crate keeps no
//! metric objects of its own, which would mean shared atomics on the request path).

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use super::{CoreMetrics, Cores, Refusals, Series, LATENCY_BOUNDS};
use crate::limits::Reason;

/// Sums of the per-core counters (and of the workers' refusal counters), encoded at each scrape.
#[derive(Debug)]
pub(super) struct Sums(pub(super) Arc<Cores>, pub(super) Arc<Refusals>);

/// Reads one counter of a [`MethodSums`].
type MethodValue = fn(&MethodSums) -> u64;

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
        // Counters by service and method: one family per row, one series per method.
        let by_method: [(&str, &str, MethodValue); 2] = [
            (
                "ringrpc_requests",
                "Requests handled, by service and method (heartbeats excluded).",
                |sums| sums.requests,
            ),
            (
                "ringrpc_request_errors",
                "Requests answered with an error (rpcx __rpcx_error__), by service and method.",
                |sums| sums.errors,
            ),
        ];
        for (name, help, value) in by_method {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (key, sums) in &methods {
                family
                    .encode_family(&labels(key))?
                    .encode_counter::<NoLabelSet, _, u64>(&value(sums), None)?;
            }
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
        self.encode_refusals(&mut encoder)
    }
}

impl Sums {
    /// `ringrpc_refusals_total{reason}`: every reason, 0 included, once a server's counts are
    /// given; nothing before (a 0 would claim that nothing was refused).
    fn encode_refusals(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sources = self.1 .0.lock().expect("metrics lock").clone();
        if sources.is_empty() {
            return Ok(());
        }
        let mut family = encoder.encode_descriptor(
            "ringrpc_refusals",
            "Connections refused, closed or paused by a limit, by reason (each one also a \
             rate-limited log line).",
            None,
            MetricType::Counter,
        )?;
        for reason in Reason::ALL {
            let count: u64 = sources.iter().map(|counts| counts.get(reason)).sum();
            family
                .encode_family(&[("reason", reason.label())])?
                .encode_counter::<NoLabelSet, _, u64>(&count, None)?;
        }
        Ok(())
    }
}
