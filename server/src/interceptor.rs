//! Interceptors: cross-cutting logic (auth, rate limits, metrics, tracing) at Go's plugin points
//! (docs/protocol.md 4.14), installed on a [`ServiceTable`](crate::ServiceTable).
//!
//! An interceptor is installed per server and instantiated per core: the table factory that every
//! worker runs builds its own instances, so an interceptor keeps per-core state behind `&self`
//! (`Cell`, `RefCell`) with no lock; state shared across cores is the user's choice (`Arc`).
//!
//! Hooks, in the order a request meets them (every hook runs interceptors in installation order):
//!
//! | hook | when | what an error does |
//! |---|---|---|
//! | [`on_connect`](Interceptor::on_connect) | a connection was accepted, before any byte is read | [`Refusal`]: the connection is closed at once, with one log line naming the peer and the reason; later interceptors are not asked |
//! | [`before_call`](Interceptor::before_call) | a request was decoded (any request but a heartbeat, before routing: unknown services are seen too) | [`Rejection`]: its text goes back as an rpcx error reply (nothing for oneway), the method does not run, later interceptors' `before_call` does not run; with [`Rejection::and_close`] the connection then closes, after the replies before it |
//! | [`after_call`](Interceptor::after_call) | the method returned (or failed to decode its arguments, or panicked); skipped when no interceptor [`inspects_results`](Interceptor::inspects_results) | sees the result ([`CallResult`]: error text, encoded payload) and may replace either |
//! | [`after_reply`](Interceptor::after_reply) | the reply frame is encoded into the connection's output (it leaves with the next batched write), or would have been for a oneway request; runs for every request `before_call` saw | — |
//! | [`on_read`](Interceptor::on_read), [`on_write`](Interceptor::on_write) | bytes were read from or written to a connection (once per read and per batched write, not per request) | — |
//! | [`on_close`](Interceptor::on_close) | the connection is closed (also for the interceptors that accepted a connection a later one refused) | — |
//!
//! A panic in `before_call` or `after_call` is treated as the handler's panic: the client gets
//! `[service internal error]: <panic>, method: <Method>`; a panic in `on_connect` refuses the
//! connection; panics in `after_reply` and `on_close` are logged. With no interceptor installed,
//! none of this runs: the request path is what it is without them.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use bytes::BytesMut;
use ringrpc_codec::SerializeType;

use crate::serialize::CodecError;
use crate::service::{panic_text, Payload, ServiceError};
use crate::Context;

/// Hooks around connections and calls; every method has a default that does nothing.
pub trait Interceptor: 'static {
    /// A connection was accepted; `Err` closes it at once.
    fn on_connect(&self, peer: SocketAddr) -> Result<(), Refusal> {
        let _ = peer;
        Ok(())
    }

    /// A request is about to be routed and called; `Err` answers it with an error instead.
    fn before_call(&self, ctx: &Context) -> Result<(), Rejection> {
        let _ = ctx;
        Ok(())
    }

    /// The method has run; `result` may be changed.
    fn after_call(&self, ctx: &Context, result: &mut CallResult<'_>) {
        let _ = (ctx, result);
    }

    /// Whether [`after_call`](Interceptor::after_call) is used. Return `false` from an
    /// interceptor that does not override it: when no installed interceptor needs the result,
    /// `after_call` is not run and replies are encoded straight into the output buffer instead of
    /// being encoded apart and copied (one copy of every reply saved).
    fn inspects_results(&self) -> bool {
        true
    }

    /// The reply is encoded (`error` is its `__rpcx_error__`, if it failed).
    fn after_reply(&self, ctx: &Context, error: Option<&str>) {
        let _ = (ctx, error);
    }

    /// `bytes` were read from a connection (one read may hold many requests, or part of one).
    fn on_read(&self, bytes: usize) {
        let _ = bytes;
    }

    /// `bytes` of replies and pushes were written to a connection in one batch.
    fn on_write(&self, bytes: usize) {
        let _ = bytes;
    }

    /// The connection is gone.
    fn on_close(&self, peer: SocketAddr) {
        let _ = peer;
    }
}

/// Why a connection was refused: logged with the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub Cow<'static, str>);

impl Refusal {
    pub fn new(reason: impl Into<Cow<'static, str>>) -> Self {
        Refusal(reason.into())
    }
}

/// Why a request was not called: its text is the error reply the client reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    error: ServiceError,
    close: bool,
}

impl Rejection {
    /// Answers with `error` (in `__rpcx_error__`) and an empty payload; the connection stays open.
    pub fn new(error: impl Into<ServiceError>) -> Self {
        Rejection {
            error: error.into(),
            close: false,
        }
    }

    /// Also closes the connection once the error reply is written (e.g. failed auth, spec 4.11).
    pub fn and_close(mut self) -> Self {
        self.close = true;
        self
    }

    pub fn error(&self) -> &ServiceError {
        &self.error
    }

    pub fn closes_connection(&self) -> bool {
        self.close
    }
}

/// A call's result as `after_call` sees it: the error, if any, and the reply payload encoded with
/// the request's serialize type (uncompressed; the 1024-byte gzip rule applies when it is written).
pub struct CallResult<'a> {
    error: Option<ServiceError>,
    payload: &'a mut BytesMut,
    serialize: SerializeType,
}

impl<'a> CallResult<'a> {
    pub(crate) fn new(
        error: Option<ServiceError>,
        payload: &'a mut BytesMut,
        serialize: SerializeType,
    ) -> Self {
        CallResult {
            error,
            payload,
            serialize,
        }
    }

    /// The error text the client will read, if the call failed.
    pub fn error(&self) -> Option<&str> {
        self.error.as_ref().map(|e| e.text())
    }

    /// The encoded reply payload.
    pub fn payload(&self) -> &[u8] {
        self.payload
    }

    /// The serialize type the payload is encoded with.
    pub fn serialize_type(&self) -> SerializeType {
        self.serialize
    }

    /// Makes the call fail with `error`; the payload is kept (Go sends both).
    pub fn set_error(&mut self, error: impl Into<ServiceError>) {
        self.error = Some(error.into());
    }

    /// Makes the call succeed.
    pub fn clear_error(&mut self) {
        self.error = None;
    }

    /// Replaces the payload with already encoded bytes.
    pub fn set_payload(&mut self, payload: &[u8]) {
        self.payload.clear();
        self.payload.extend_from_slice(payload);
    }

    /// Replaces the payload with `reply`, encoded with the request's serialize type.
    pub fn set_reply<R: Payload>(&mut self, reply: &R) -> Result<(), CodecError> {
        self.payload.clear();
        reply.encode(self.serialize, self.payload)
    }

    pub(crate) fn take_error(&mut self) -> Option<ServiceError> {
        self.error.take()
    }
}

/// The interceptors of one worker's table, in installation order. Cloning shares them (an async
/// call keeps them for its reply).
#[derive(Clone, Default)]
pub(crate) struct Interceptors(Rc<[Box<dyn Interceptor>]>, bool);

impl Interceptors {
    pub(crate) fn new(list: Vec<Box<dyn Interceptor>>) -> Self {
        let inspect = list.iter().any(|i| i.inspects_results());
        Interceptors(list.into(), inspect)
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether some interceptor's `after_call` needs each call's result.
    #[inline]
    pub(crate) fn inspect_results(&self) -> bool {
        self.1
    }

    pub(crate) fn on_connect(&self, peer: SocketAddr) -> Result<(), Refusal> {
        for (index, interceptor) in self.0.iter().enumerate() {
            let refusal = match catch_unwind(AssertUnwindSafe(|| interceptor.on_connect(peer))) {
                Ok(Ok(())) => continue,
                Ok(Err(refusal)) => refusal,
                Err(panic) => Refusal::new(format!(
                    "interceptor panicked in on_connect: {}",
                    panic_text(&*panic)
                )),
            };
            // Those that accepted it see it close, so what they counted on connect is undone
            // (open connections in the metrics).
            Interceptors::close_each(&self.0[..index], peer);
            return Err(refusal);
        }
        Ok(())
    }

    #[inline]
    pub(crate) fn on_read(&self, bytes: usize) {
        for interceptor in self.0.iter() {
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| interceptor.on_read(bytes))) {
                tracing::error!("interceptor panicked in on_read: {}", panic_text(&*panic));
            }
        }
    }

    #[inline]
    pub(crate) fn on_write(&self, bytes: usize) {
        for interceptor in self.0.iter() {
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| interceptor.on_write(bytes))) {
                tracing::error!("interceptor panicked in on_write: {}", panic_text(&*panic));
            }
        }
    }

    // Always: out of line it cost 28 instructions per request more with one interceptor (10 x 32
    // Echo, callgrind).
    #[inline(always)]
    pub(crate) fn before_call(&self, ctx: &Context) -> Result<(), Rejection> {
        for interceptor in self.0.iter() {
            match catch_unwind(AssertUnwindSafe(|| interceptor.before_call(ctx))) {
                Ok(Ok(())) => {}
                Ok(Err(rejection)) => return Err(rejection),
                Err(panic) => {
                    let method = String::from_utf8_lossy(ctx.request().service_method());
                    return Err(Rejection::new(internal_error(&*panic, &method)));
                }
            }
        }
        Ok(())
    }

    pub(crate) fn after_call(&self, ctx: &Context, method: &str, result: &mut CallResult<'_>) {
        for interceptor in self.0.iter() {
            if let Err(panic) =
                catch_unwind(AssertUnwindSafe(|| interceptor.after_call(ctx, result)))
            {
                result.set_error(internal_error(&*panic, method));
            }
        }
    }

    pub(crate) fn after_reply(&self, ctx: &Context, error: Option<&str>) {
        for interceptor in self.0.iter() {
            if let Err(panic) =
                catch_unwind(AssertUnwindSafe(|| interceptor.after_reply(ctx, error)))
            {
                tracing::error!(
                    seq = ctx.seq(),
                    "interceptor panicked in after_reply: {}",
                    panic_text(&*panic)
                );
            }
        }
    }

    pub(crate) fn on_close(&self, peer: SocketAddr) {
        Interceptors::close_each(&self.0, peer);
    }

    fn close_each(interceptors: &[Box<dyn Interceptor>], peer: SocketAddr) {
        for interceptor in interceptors {
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| interceptor.on_close(peer))) {
                tracing::error!(%peer, "interceptor panicked in on_close: {}", panic_text(&*panic));
            }
        }
    }
}

/// Go's text for a panic during a call (spec 4.12), logged once.
pub(crate) fn internal_error(panic: &(dyn std::any::Any + Send), method: &str) -> String {
    let text = format!(
        "[service internal error]: {}, method: {method}",
        panic_text(panic)
    );
    tracing::error!(method, "{text}");
    text
}
