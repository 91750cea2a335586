//! `ringrpc-server`: a thread-per-core rpcx server on monoio (io_uring), wire-compatible with the
//! Go rpcx client.
//!
//! - [`runtime`]: worker threads pinned to cores, one `SO_REUSEPORT` listener each, driver choice,
//!   two-step start, graceful drain.
//! - [`connection`]: the read → decode → dispatch → batched write loop of one connection.
//! - [`protocol_sniff`] and [`port_sharing`]: one port for every client: binary rpcx, [`http`]
//!   (the gateway, JSON-RPC 2.0, CONNECT) and [`tls`] around any of them; [`prefixed`] hands bytes
//!   read while sniffing on to the binary loop.
//! - [`buffers`]: the per-core buffer pool (memory follows bytes in flight, not connections).
//! - [`service`]: services (by closures or [`macro@service`]), payloads, replies, raw handlers and
//!   the per-worker routing table.
//! - [`interceptor`]: hooks around connections and calls; built on them: [`auth`] (`__AUTH`
//!   tokens), [`rate_limit`] (per-core token buckets on requests and connections) and [`metrics`]
//!   (per-core counters, a Prometheus endpoint).
//! - [`limits`]: timeouts, the connection cap, the per-core reply budget, accept backoff, and the
//!   rate-limited, counted log of every refusal.
//! - [`push`]: server push to a connection ([`Pusher`]); [`clock`]: the monotonic clock in
//!   nanoseconds for per-request bookkeeping.
//! - [`serialize`]: raw, JSON, MsgPack and Protobuf payload codecs.
//! - [`context`]: what a handler knows about its request.
//! - [`config`]: settings with defaults; [`shutdown`]: the shutdown signal.
//! - [`registry`]: registration in etcd (feature `etcd`) so Go clients discover the server.
//! - [`demo`]: the services of the binary.
//! - `cli` (feature `cli`, on by default; off for library users who bring their own): logging set-up
//!   for the binaries.
//!
//! ```no_run
//! use ringrpc_server::{demo, Server, ServerConfig, Shutdown};
//! let shutdown = Shutdown::new();
//! // The factory runs once on each worker thread: every core builds its own services.
//! let running = Server::new(ServerConfig::default(), demo::demo_table)
//!     .start(&shutdown)
//!     .unwrap();
//! running.join().unwrap();
//! ```

// The `#[service]` macro names `::ringrpc_server`; this lets the demo services use it too.
extern crate self as ringrpc_server;

pub mod auth;
pub mod buffers;
#[cfg(feature = "cli")]
pub mod cli;
pub mod clock;
pub mod cold_tcp;
pub mod config;
pub mod connection;
pub mod context;
pub mod demo;
pub mod demo_hello;
pub mod http;
pub mod interceptor;
pub mod limits;
pub mod metrics;
pub mod port_sharing;
pub mod prefixed;
pub mod protocol_sniff;
pub mod push;
pub mod rate_limit;
pub mod registry;
pub mod runtime;
pub mod serialize;
pub mod service;
pub mod shutdown;
pub mod tls;

use std::rc::Rc;
use std::sync::Arc;

pub use auth::{auth_token, Auth, TokenAuth};
pub use bytes;
pub use config::{CpuList, IoDriver, ServerConfig};
pub use context::Context;
pub use interceptor::{CallResult, Interceptor, Refusal, Rejection};
pub use limits::{Reason, RefusalCounts};
pub use metrics::{Metrics, MetricsEndpoint};
pub use push::{PushError, Pusher};
pub use rate_limit::{ConnectionRateLimit, RequestRateLimit};
pub use ringrpc_codec::{Message, SerializeType};
pub use runtime::{Running, StartError, WorkerError, WorkerId};
pub use service::{
    IntoService, Payload, RawReply, RegistrationError, Service, ServiceError, ServiceTable,
    ServiceTableBuilder,
};
pub use shutdown::Shutdown;

/// Turns an impl block into an rpcx service, registered with
/// `ServiceTable::builder().service(value)` (Go's `RegisterName(name, value, "")`).
///
/// - `#[service]` registers under the type's name, `#[service(name = "Arith")]` under another.
/// - Every `pub fn` with a receiver is an rpc method, named as Go exports it: `mul` → `Mul`,
///   `get_user` → `GetUser`; `#[rpc(name = "Other")]` renames one, `#[rpc(skip)]` leaves one out.
///   Private methods and associated functions (constructors) are left alone.
/// - The shape: `pub fn name(&self, ctx: &Context, args: Args) -> Result<Reply, E>`, where `Args`
///   and `Reply` are [`Payload`]s (`Bytes`, serde types with `serde_payload!`, serde + prost types
///   with `proto_payload!`) and `E: Into<ServiceError>`; `ctx` may be left out. A plain `fn` runs
///   inline on the connection's task; an `async fn` runs as its own task. Anything else is a
///   compile error saying what is wrong.
/// - A plain `fn` may borrow the raw payload where it was received, as `payload: &[u8]` (no copy,
///   no reference count: [`Service::method_borrowing`]), and reply with any [`Payload`] or with
///   bytes borrowed from it: `pub fn echo<'a>(&self, payload: &'a [u8]) -> Result<&'a [u8], E>`
///   ([`Service::method_borrowing_reply`]).
/// - `&self` is the per-core state: each worker builds its own value (see [`Server::new`]), so it
///   may hold `Cell`, `RefCell` or `Rc` without a lock.
///
/// ```
/// use std::cell::Cell;
/// use ringrpc_server::{service, Context, ServiceError, ServiceTable};
/// use ringrpc_server::bytes::Bytes;
///
/// #[derive(Default)]
/// struct Counter {
///     calls: Cell<u64>,
/// }
///
/// #[service]
/// impl Counter {
///     /// `Counter.Next`: this core's count.
///     pub fn next(&self, _ctx: &Context, _: Bytes) -> Result<Bytes, ServiceError> {
///         self.calls.set(self.calls.get() + 1);
///         Ok(Bytes::from(self.calls.get().to_string()))
///     }
/// }
///
/// let table = ServiceTable::builder().service(Counter::default())?.build();
/// # Ok::<(), ringrpc_server::RegistrationError>(())
/// ```
pub use ringrpc_macros::service;

/// The README's library example, compiled by `cargo test` (a doctest) so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeExamples;

/// Builds the service table of one worker; called once on each worker thread.
pub type TableFactory = dyn Fn(WorkerId) -> Result<ServiceTable, RegistrationError> + Send + Sync;

/// A configured server: settings plus the factory every worker builds its services with.
pub struct Server {
    config: ServerConfig,
    factory: Arc<TableFactory>,
}

impl Server {
    /// A server whose workers each build their own table with `factory`, on their own thread:
    /// handlers and their state need not be `Send` or `Sync`, and per-core state needs no lock.
    /// State shared across cores is the factory's choice (capture an `Arc`). A factory error stops
    /// the start ([`StartError::Setup`]).
    pub fn new<F>(config: ServerConfig, factory: F) -> Self
    where
        F: Fn(WorkerId) -> Result<ServiceTable, RegistrationError> + Send + Sync + 'static,
    {
        Server {
            config,
            factory: Arc::new(factory),
        }
    }

    /// Binds every worker's listener, builds every worker's table and starts the workers; returns
    /// once they are all accepting.
    pub fn start(self, shutdown: &Shutdown) -> Result<Running, StartError> {
        let config = self.config.clone();
        let factory = self.factory;
        runtime::run_workers(&self.config, shutdown, move |worker| {
            let table = Rc::new(factory(worker)?);
            let config = Rc::new(config.clone());
            Ok::<_, RegistrationError>(move |accepted| {
                connection::serve(accepted, table.clone(), config.clone())
            })
        })
    }
}
