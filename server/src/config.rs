//! Server settings: a builder with documented defaults; the binary's flags map onto it one to one
//! (`--max-in-flight` ↔ [`ServerConfig::max_in_flight`], and so on).

use std::net::SocketAddr;
use std::time::Duration;

use ringrpc_codec::Limits;
pub use ringrpc_io::{CpuList, IoDriver};

/// Everything a server needs to know before it starts.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address every worker binds with SO_REUSEPORT. Default `127.0.0.1:8972`, rpcx's usual port.
    pub addr: SocketAddr,
    /// Worker threads, one monoio runtime each. Default (`None`): one per CPU of `cpus` when it is
    /// set, else one per CPU the process may run on.
    pub threads: Option<usize>,
    /// Cores to pin the workers to, round-robin. Default: worker i on the machine's i-th CPU.
    pub cpus: Option<Vec<usize>>,
    /// Driver choice. Default auto.
    pub io: IoDriver,
    /// Frame and decompression limits. Default 32 MiB each.
    pub limits: Limits,
    /// Requests a connection may have running at once before its reads pause. Default 1024.
    pub max_in_flight: usize,
    /// Reply bytes a connection may have waiting to be written before its reads pause.
    /// Default 4 MiB.
    pub max_pending_write: usize,
    /// The large buffer class: reads of a streaming connection and output batches (grown for
    /// larger frames). Default 64 KiB. Quiet connections park with 1 KiB instead.
    pub read_buffer: usize,
    /// Free buffers a core keeps for reuse, in bytes; past it they are freed, and unused ones are
    /// trimmed every few seconds. Default 8 MiB.
    pub max_pooled_bytes: usize,
    /// How long a graceful shutdown may take before connections are dropped. Default 10 s.
    pub grace_period: Duration,
    /// io_uring submission queue entries per worker. Default 1024.
    pub ring_entries: u32,
    /// TCP keep-alive idle time on accepted connections; `None` leaves it off. Default 3 minutes,
    /// the period Go documents (docs/protocol.md 4.1), so dead peers are found.
    pub tcp_keepalive: Option<Duration>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 8972)),
            threads: None,
            cpus: None,
            io: IoDriver::Auto,
            limits: Limits::default(),
            max_in_flight: 1024,
            max_pending_write: 4 << 20,
            read_buffer: 64 << 10,
            max_pooled_bytes: 8 << 20,
            grace_period: Duration::from_secs(10),
            ring_entries: 1024,
            tcp_keepalive: Some(Duration::from_secs(180)),
        }
    }
}

impl ServerConfig {
    /// How many workers start: `threads`, else one per CPU of `cpus`, else one per available CPU.
    pub fn worker_count(&self) -> usize {
        self.threads
            .or_else(|| self.cpus.as_ref().map(Vec::len))
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }

    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads.max(1));
        self
    }

    pub fn cpus(mut self, cpus: Vec<usize>) -> Self {
        self.cpus = Some(cpus);
        self
    }

    pub fn io(mut self, io: IoDriver) -> Self {
        self.io = io;
        self
    }

    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    pub fn max_pending_write(mut self, bytes: usize) -> Self {
        self.max_pending_write = bytes.max(1);
        self
    }

    pub fn read_buffer(mut self, bytes: usize) -> Self {
        self.read_buffer = bytes.max(4096);
        self
    }

    pub fn max_pooled_bytes(mut self, bytes: usize) -> Self {
        self.max_pooled_bytes = bytes;
        self
    }

    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace_period = grace;
        self
    }

    pub fn tcp_keepalive(mut self, idle: Option<Duration>) -> Self {
        self.tcp_keepalive = idle;
        self
    }

    pub fn ring_entries(mut self, entries: u32) -> Self {
        self.ring_entries = entries.max(8);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_count_follows_threads_then_cpus() {
        assert_eq!(ServerConfig::default().threads(3).worker_count(), 3);
        assert_eq!(ServerConfig::default().cpus(vec![0, 1]).worker_count(), 2);
        assert_eq!(
            ServerConfig::default()
                .cpus(vec![0, 1])
                .threads(1)
                .worker_count(),
            1
        );
        assert!(ServerConfig::default().worker_count() >= 1);
    }
}
