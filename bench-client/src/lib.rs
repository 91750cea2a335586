//! `ringrpc-bench-client`: a pipelined rpcx client on monoio, and the load generator built on it.
//!
//! It speaks plain rpcx (rpcx-protocol.md 1, 2, 5) through `ringrpc-codec`, so it measures any
//! rpcx server, Go's included. The binary is `ringrpc-bench`.
//!
//! - [`client`]: one connection's pieces: the in-flight [`client::Window`] (seq -> request), the
//!   batching [`client::Outbox`], the in-place [`client::Inbox`] (the project's frame reader),
//!   and a simple [`client::Client`].
//! - [`benchmark_message`]: rpcx-benchmark's `BenchmarkMessage`, the `Hello.Say` load.
//! - [`workload`]: the requests (encoded once), the slow-request mix, and reply verification.
//! - [`load`]: threads, connections, closed and open loops, warm-up, drain; [`load::LoadRun`].
//! - [`pacer`]: the run clock and the per-thread pacer that sends open-loop requests on time.
//! - [`report`]: per-thread recorders, the merged [`report::Report`] and its text/JSON/HdrHistogram
//!   output.
//! - [`progress`]: the once-a-second progress line.
//! - [`runtime`]: CPU lists, pinning, and the monoio driver (io_uring, or epoll as fallback).
//! - [`event`]: wake-ups between the tasks of one thread.
//! - [`discovery`]: finding a fleet in etcd as a Go XClient does (feature `etcd`).

pub mod benchmark_message;
pub mod client;
#[cfg(feature = "etcd")]
pub mod discovery;
pub mod event;
pub mod load;
pub mod pacer;
pub mod progress;
pub mod report;
pub mod runtime;
pub mod workload;

pub use load::{LoadConfig, LoadError, LoadRun, Stop};
pub use report::{ErrorKind, Report, RunInfo, ServerShare};
pub use runtime::Io;
pub use workload::{Serialization, SlowMix, Workload, WorkloadSpec};
