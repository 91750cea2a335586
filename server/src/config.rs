//! Server settings: a builder with documented defaults; the binary's flags map onto it one to one.

use std::net::SocketAddr;
use std::time::Duration;

use ringrpc_codec::Limits;

/// Which monoio driver the workers run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoDriver {
    /// io_uring when the kernel (and any seccomp profile) allows it, else epoll, said in one log line.
    #[default]
    Auto,
    IoUring,
    Epoll,
}

impl std::str::FromStr for IoDriver {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(IoDriver::Auto),
            "uring" | "io_uring" | "iouring" => Ok(IoDriver::IoUring),
            "epoll" | "legacy" => Ok(IoDriver::Epoll),
            other => Err(format!(
                "unknown io driver {other:?}: use uring, epoll or auto"
            )),
        }
    }
}

/// Everything a server needs to know before it starts.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address every worker binds with SO_REUSEPORT. Default `127.0.0.1:8972`, rpcx's usual port.
    pub addr: SocketAddr,
    /// Worker threads, one monoio runtime each. Default: one per CPU in `cpus`, else per core.
    pub threads: usize,
    /// Cores to pin the workers to, round-robin. Default: worker i on core i.
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
    /// Initial receive buffer per connection (grown for larger frames). Default 64 KiB.
    pub read_buffer: usize,
    /// How long a graceful shutdown may take before connections are dropped. Default 10 s.
    pub grace_period: Duration,
    /// io_uring submission queue entries per worker. Default 1024.
    pub ring_entries: u32,
    /// TCP keep-alive idle time on accepted connections; `None` leaves it off. Default 3 minutes,
    /// the period Go documents (rpcx-protocol.md 4.1), so dead peers are found.
    pub tcp_keepalive: Option<Duration>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 8972)),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpus: None,
            io: IoDriver::Auto,
            limits: Limits::default(),
            max_in_flight: 1024,
            max_pending_write: 4 << 20,
            read_buffer: 64 << 10,
            grace_period: Duration::from_secs(10),
            ring_entries: 1024,
            tcp_keepalive: Some(Duration::from_secs(180)),
        }
    }
}

impl ServerConfig {
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
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

/// A list of CPU ids, parsed from `0`, `0-3` or `0,2,4-5` (the `--cpus` flag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

impl std::str::FromStr for CpuList {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_cpu_list(s).map(CpuList)
    }
}

/// Parses a CPU list such as `0`, `0-3` or `0,2,4-5`.
pub fn parse_cpu_list(list: &str) -> Result<Vec<usize>, String> {
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("bad CPU list {list:?}: use e.g. 0, 0-3 or 0,2");
        match part.split_once('-') {
            Some((lo, hi)) => {
                let lo: usize = lo.trim().parse().map_err(|_| bad())?;
                let hi: usize = hi.trim().parse().map_err(|_| bad())?;
                if lo > hi {
                    return Err(bad());
                }
                cpus.extend(lo..=hi);
            }
            None => cpus.push(part.parse().map_err(|_| bad())?),
        }
    }
    if cpus.is_empty() {
        return Err(format!("empty CPU list {list:?}"));
    }
    Ok(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0").unwrap(), vec![0]);
        assert_eq!(parse_cpu_list("0-3").unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(parse_cpu_list("0,2,4-5").unwrap(), vec![0, 2, 4, 5]);
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("x").is_err());
        assert!(parse_cpu_list("").is_err());
    }

    #[test]
    fn io_driver_names() {
        assert_eq!("uring".parse::<IoDriver>().unwrap(), IoDriver::IoUring);
        assert_eq!("epoll".parse::<IoDriver>().unwrap(), IoDriver::Epoll);
        assert_eq!("auto".parse::<IoDriver>().unwrap(), IoDriver::Auto);
        assert!("kqueue".parse::<IoDriver>().is_err());
    }
}
