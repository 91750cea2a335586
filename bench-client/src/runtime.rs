//! Threads of the load: each load thread owns one monoio runtime (io_uring when the kernel has it,
//! else monoio's epoll-based legacy driver) and is pinned to one CPU of the list, round robin,
//! like the server. The pieces are the server's own ([`ringrpc_io`]): one CPU-list parser, one
//! driver choice, one runtime builder for the whole project.

use std::future::Future;
use std::io;

pub use ringrpc_io::{
    parse_cpu_list as parse_cpus, pin_current_thread as pin_current, IoDriver as Io,
};

/// Submission queue size: room for a read and a write per connection of a thread, and more.
const URING_ENTRIES: u32 = 1024;

/// The driver `io` stands for on this machine: `Auto` resolved, an explicit io_uring that the
/// kernel refuses falls back to epoll (a load generator should still run).
pub fn resolve(io: Io) -> Io {
    io.resolve().unwrap_or(Io::Epoll)
}

/// Builds a runtime with `io` (and timers) on the current thread and runs `make()`'s future on it.
pub fn block_on<F, Fut>(io: Io, make: F) -> io::Result<Fut::Output>
where
    F: FnOnce() -> Fut,
    Fut: Future,
{
    ringrpc_io::block_on(resolve(io), URING_ENTRIES, make)
}
