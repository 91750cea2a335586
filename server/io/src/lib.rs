//! `ringrpc-io`: the monoio plumbing that the server, the echo limit and the load generator share,
//! so each exists once.
//!
//! - [`cpus`]: CPU lists (`0`, `0-3`, `0,2,4-5`) and pinning a thread to a core.
//! - [`driver`]: io_uring or epoll, chosen once per process, and the runtime builder for either.
//! - [`frame_reader`]: a connection's receive buffer and the decoder: `fill` from the socket, take
//!   whole frames off the front.
//! - [`read_instance`]: a read buffer under a type of its own, so that a read call site keeps its
//!   own, inlined instance of monoio's read future.
//! - [`waker_slot`]: one parked task, woken when the state it waits on changes.
//!
//! Nothing here knows services or replies: it moves bytes and finds frames.

pub mod cpus;
pub mod driver;
pub mod frame_reader;
pub mod read_instance;
pub mod waker_slot;

pub use cpus::{parse_cpu_list, pin_current_thread, CpuList};
pub use driver::{block_on, IoDriver, IoUnavailable};
pub use frame_reader::FrameReader;
pub use read_instance::OwnInstance;
pub use waker_slot::WakerSlot;
