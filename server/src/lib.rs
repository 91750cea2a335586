//! `ringrpc-server`: a thread-per-core rpcx server on monoio (io_uring), wire-compatible with the
//! Go rpcx client.
//!
//! - [`runtime`]: worker threads pinned to cores, one `SO_REUSEPORT` listener each, driver choice,
//!   graceful drain.
//! - [`connection`]: the read → decode → dispatch → batched write loop of one connection.
//! - [`service`]: services, typed methods, raw handlers and the per-worker routing table.
//! - [`serialize`]: raw, JSON, MsgPack and Protobuf payload codecs.
//! - [`context`]: what a handler knows about its request.
//! - [`config`]: settings with defaults; [`shutdown`]: the shutdown signal.
//! - [`registry`]: registration in etcd (feature `etcd`) so Go clients discover the server.
//! - [`demo`]: the Arith and Echo services of the binary.
//!
//! ```no_run
//! use ringrpc_server::{demo, Server, ServerConfig, Shutdown};
//! let shutdown = Shutdown::new();
//! let running = Server::new(ServerConfig::default(), demo::demo_table().unwrap())
//!     .start(&shutdown)
//!     .unwrap();
//! running.join().unwrap();
//! ```

pub mod config;
pub mod connection;
pub mod context;
pub mod demo;
pub mod registry;
pub mod runtime;
pub mod serialize;
pub mod service;
pub mod shutdown;

use std::rc::Rc;
use std::sync::Mutex;

pub use bytes;
pub use config::{IoDriver, ServerConfig};
pub use context::Context;
pub use ringrpc_codec::{Message, SerializeType};
pub use runtime::{Running, StartError, WorkerError};
pub use service::{Payload, RawReply, RegistrationError, Service, ServiceError, ServiceTable};
pub use shutdown::Shutdown;

/// Logs to stderr through `tracing`, filtered by `RUST_LOG` (default `info`): the binaries call
/// it first, so the driver fallback, pinning failures and protocol errors are seen.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// A configured server: settings plus the service table every worker will clone.
pub struct Server {
    config: ServerConfig,
    table: ServiceTable,
}

impl Server {
    pub fn new(config: ServerConfig, table: ServiceTable) -> Self {
        Server { config, table }
    }

    /// Binds every worker's listener and starts the workers; returns once they are listening.
    pub fn start(self, shutdown: &Shutdown) -> Result<Running, StartError> {
        let config = self.config.clone();
        // Cloned once per worker at start-up; the Mutex only makes the prototype shareable.
        let prototype = Mutex::new(self.table);
        runtime::run_workers(&self.config, shutdown, move |_worker| {
            let table = Rc::new(prototype.lock().unwrap_or_else(|e| e.into_inner()).clone());
            let config = Rc::new(config.clone());
            move |stream, peer, worker| {
                connection::serve(stream, peer, table.clone(), config.clone(), worker)
            }
        })
    }
}
