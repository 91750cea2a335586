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
    /// Frame, decompression and metadata limits. Default 32 MiB, 32 MiB and 1024 pairs.
    pub limits: Limits,
    /// Requests a connection may have running at once before its reads pause. Default 1024.
    pub max_in_flight: usize,
    /// Reply bytes a connection may have waiting to be written before its reads pause.
    /// Default 4 MiB.
    pub max_pending_write: usize,
    /// The large buffer class: reads of a streaming connection and output batches (grown for
    /// larger frames). Default 64 KiB. Busy latency-bound connections park with 1 KiB instead.
    /// A streaming connection holding one of the core's [`ServerConfig::max_large_readers`]
    /// loans holds one while its read waits, and its reply batches go into another; 32 KiB made
    /// 16 KiB requests about a quarter slower in the README's benchmark.
    pub read_buffer: usize,
    /// Free buffers a core keeps for reuse, in bytes; past it they are freed, and unused ones are
    /// trimmed every few seconds (a large buffer grown past `read_buffer` is kept only while the
    /// core has loans of large buffers left, see [`crate::buffers::Pool::give`]). Default 4 MiB:
    /// the pool's free buffers stay resident, and 500 peers that stop reading
    /// (server/tests/hostile.rs, 2 workers; measured before the loans) peaked at 100 to 109 MiB
    /// with 4 MiB against 117 to 134 MiB with 8 MiB (1 MiB: 67 to 75 MiB), while 16 KiB requests
    /// at 10 x 32 cost the same server CPU per request as with 8 MiB (2 MiB and 1 MiB: about 15 %
    /// more, since the buffers a bulk stream reads with grow to 128 KiB and more, and few fit).
    pub max_pooled_bytes: usize,
    /// Streaming connections a core lends large buffers (`read_buffer`) to at once, for their
    /// reads and reply batches; past it, a streaming connection reads at least 8 KiB at a time
    /// (or the rest of its frame) into a buffer that fits, and batches its replies in buffers of
    /// their size ([`crate::buffers::LargeLoan`]). Default 64 per core: the connections of a busy
    /// client keep large buffers, while 500 peers sending 16 KiB requests and never reading
    /// (server/tests/hostile.rs, 2 workers) cannot each park a 64 KiB read buffer and a 64 KiB
    /// output buffer (32 MiB of each before). Measured there (debug build), when the loans came:
    /// 16 per core 58 to 65 MiB peak, 64 per core 73 to 85, 128 per core 97, without the loans
    /// 113 to 126; since the reply budget pauses writes in progress and grown buffers are freed
    /// past the loans: 64 per core 55 to 61 MiB (18 runs), 16 per core 44 to 47, 128 per core
    /// 71 to 73 (2 runs each). Fewer loans cost deeply pipelined connections past them: 100
    /// connections x 32 in flight on one core lost 32 % of their req/s with 16 loans, 16 % with
    /// 64, none with 128.
    pub max_large_readers: usize,
    /// How long a graceful shutdown may take before connections are dropped. Default 10 s.
    pub grace_period: Duration,
    /// io_uring submission queue entries per worker. Default 1024.
    pub ring_entries: u32,
    /// TCP keep-alive idle time on accepted connections; `None` leaves it off. Default 3 minutes,
    /// the period Go documents (docs/protocol.md 4.1), so dead peers are found.
    pub tcp_keepalive: Option<Duration>,
    /// No whole frame (heartbeats count) for this long: the connection stops being read, its
    /// running requests are answered and it closes. Default 5 minutes: longer than the 3-minute
    /// keep-alive and than any client's heartbeat interval, so only abandoned connections go.
    pub idle_timeout: Option<Duration>,
    /// A frame started and not finished for this long (slowloris): closed the same way. Default
    /// 30 s: a 32 MiB frame still fits at about 1 MB/s.
    pub frame_read_timeout: Option<Duration>,
    /// A reply write not finished for this long (the peer stopped reading): the connection is
    /// reset and its queued replies dropped. Default 30 s.
    pub write_timeout: Option<Duration>,
    /// Connections each worker serves at most; more are accepted and closed at once, logged.
    /// Default 10,000 per core.
    pub max_connections: usize,
    /// Reply bytes all of a worker's connections may hold queued before the connections holding
    /// the most stop being read; past it, a connection holding more than 8 KiB also makes no reply
    /// while a write of its is in progress (see [`crate::limits::ConnectionWatch::over_budget`]).
    /// Default 4 MiB per core.
    pub max_queued_bytes: usize,
    /// HTTP/1 on the binary port (gateway, JSON-RPC, CONNECT; see [`crate::http`]): the most bytes
    /// a request line and its headers may take. Default 64 KiB. Bodies are limited by
    /// [`Limits::max_frame_len`], as the frame they become.
    pub max_http_header_bytes: usize,
    /// An HTTP request started and its headers not all there after this long: the connection is
    /// closed (slowloris on HTTP). Default 10 s. Between keep-alive requests the idle timeout
    /// applies instead.
    pub http_header_timeout: Option<Duration>,
    /// TLS on the binary port (see [`crate::tls`]): set by [`ServerConfig::tls`]; `None` (the
    /// default) serves plain TCP only. With it, both are served: the first byte tells them apart.
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// A TLS handshake not finished after this long: the connection is closed. Default 10 s.
    pub tls_handshake_timeout: Duration,
    /// With [`ServerConfig::tls`], refuse every connection that does not open with a TLS
    /// handshake (plain binary, HTTP, CONNECT); off by default: plain TCP and TLS share the port.
    pub tls_only: bool,
    /// TLS handshakes in progress per worker (core); past it new TLS connections are closed at
    /// once, so a flood of handshakes cannot take the core's CPU. Default 64.
    pub max_tls_handshakes: usize,
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
            max_pooled_bytes: 4 << 20,
            max_large_readers: Self::DEFAULT_MAX_LARGE_READERS,
            grace_period: Duration::from_secs(10),
            ring_entries: 1024,
            tcp_keepalive: Some(Duration::from_secs(180)),
            idle_timeout: Some(Self::DEFAULT_IDLE_TIMEOUT),
            frame_read_timeout: Some(Self::DEFAULT_FRAME_READ_TIMEOUT),
            write_timeout: Some(Self::DEFAULT_WRITE_TIMEOUT),
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            max_queued_bytes: Self::DEFAULT_MAX_QUEUED_BYTES,
            max_http_header_bytes: Self::DEFAULT_MAX_HTTP_HEADER_BYTES,
            http_header_timeout: Some(Self::DEFAULT_HTTP_HEADER_TIMEOUT),
            tls: None,
            tls_handshake_timeout: Self::DEFAULT_TLS_HANDSHAKE_TIMEOUT,
            tls_only: false,
            max_tls_handshakes: Self::DEFAULT_MAX_TLS_HANDSHAKES,
        }
    }
}

impl ServerConfig {
    /// Default [`ServerConfig::idle_timeout`]: 5 minutes.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
    /// Default [`ServerConfig::frame_read_timeout`]: 30 s.
    pub const DEFAULT_FRAME_READ_TIMEOUT: Duration = Duration::from_secs(30);
    /// Default [`ServerConfig::write_timeout`]: 30 s.
    pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
    /// Default [`ServerConfig::max_connections`]: 10,000 per core.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
    /// Default [`ServerConfig::max_large_readers`]: 64 per core.
    pub const DEFAULT_MAX_LARGE_READERS: usize = 64;
    /// Default [`ServerConfig::max_queued_bytes`]: 4 MiB per core.
    pub const DEFAULT_MAX_QUEUED_BYTES: usize = 4 << 20;
    /// Default [`ServerConfig::max_http_header_bytes`]: 64 KiB.
    pub const DEFAULT_MAX_HTTP_HEADER_BYTES: usize = 64 << 10;
    /// Default [`ServerConfig::http_header_timeout`]: 10 s.
    pub const DEFAULT_HTTP_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default [`ServerConfig::tls_handshake_timeout`]: 10 s.
    pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default [`ServerConfig::max_tls_handshakes`]: 64 per core.
    pub const DEFAULT_MAX_TLS_HANDSHAKES: usize = 64;

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

    /// Connections per worker (core) reading in large buffers at once; 0: none does.
    pub fn max_large_readers(mut self, n: usize) -> Self {
        self.max_large_readers = n;
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

    /// `None` turns the idle timeout off.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// `None` turns the frame-read timeout off.
    pub fn frame_read_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.frame_read_timeout = timeout;
        self
    }

    /// `None` turns the write timeout off.
    pub fn write_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// Connections per worker (core); at least 1.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Queued reply bytes per worker (core) before the biggest queues stop being read.
    pub fn max_queued_bytes(mut self, bytes: usize) -> Self {
        self.max_queued_bytes = bytes.max(1);
        self
    }

    /// Bytes of an HTTP request line and headers; at least 1 KiB.
    pub fn max_http_header_bytes(mut self, bytes: usize) -> Self {
        self.max_http_header_bytes = bytes.max(1024);
        self
    }

    /// `None` turns the HTTP header-read timeout off.
    pub fn http_header_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.http_header_timeout = timeout;
        self
    }

    /// Serves TLS with this rustls configuration besides plain TCP (see
    /// [`crate::tls::load_pem`] for one from PEM files).
    pub fn tls(mut self, tls: std::sync::Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Refuses plain (non-TLS) connections when TLS is configured: for a port that must never
    /// carry traffic in the clear. Without [`ServerConfig::tls`] it has no effect.
    pub fn tls_only(mut self, tls_only: bool) -> Self {
        self.tls_only = tls_only;
        self
    }

    pub fn tls_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.tls_handshake_timeout = timeout;
        self
    }

    /// TLS handshakes in progress per worker (core); at least 1.
    pub fn max_tls_handshakes(mut self, n: usize) -> Self {
        self.max_tls_handshakes = n.max(1);
        self
    }

    /// Metadata pairs per frame ([`Limits::max_metadata_pairs`]).
    pub fn max_metadata_pairs(mut self, n: usize) -> Self {
        self.limits.max_metadata_pairs = n;
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
