//! The service table: registration (Go's `RegisterName` and `suitableMethods`), routing and the
//! call of a method, with Go's exact error texts (rpcx-protocol.md 4.2, 4.6, 4.7, 4.12, 4.14, 4.15).
//!
//! - A [`Service`] has a name and methods. A method takes a [`Context`] and typed arguments and
//!   returns a typed reply or a [`ServiceError`]; arguments and replies are [`Payload`]s, decoded and
//!   encoded with the request's serialize type.
//! - Plain methods ([`Service::method`]) run inline on the connection's task and allocate nothing;
//!   async methods ([`Service::async_method`]) run as their own task, so a slow one never holds back
//!   the other requests of its connection.
//! - Raw handlers ([`ServiceTableBuilder::raw_handler`]) take the whole request and write their own
//!   reply; they are looked up before services, as in Go, and can reply at most once.
//! - [`ServiceTable`] is built once; every worker clones it, so a lookup touches only its core's
//!   memory. It knows frames (it writes replies) but not sockets.

use std::any::Any;
use std::borrow::Cow;
use std::cell::RefCell;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;

use bytes::{BufMut, Bytes, BytesMut};
use ringrpc_codec::{encode_heartbeat_reply, FrameWriter, Message, SerializeType, ERROR_KEY};
use rustc_hash::FxHashMap;

use crate::serialize::{has_codec, CodecError};
use crate::Context;

/// The error a method returns; its text goes verbatim into `__rpcx_error__` (Go's `err.Error()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceError(Cow<'static, str>);

impl ServiceError {
    pub fn new(text: impl Into<Cow<'static, str>>) -> Self {
        ServiceError(text.into())
    }

    pub fn text(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ServiceError {}

impl From<&'static str> for ServiceError {
    fn from(text: &'static str) -> Self {
        ServiceError(Cow::Borrowed(text))
    }
}

impl From<String> for ServiceError {
    fn from(text: String) -> Self {
        ServiceError(Cow::Owned(text))
    }
}

/// A method argument or reply: how it is read from and written to a payload.
///
/// `Bytes` is the raw payload (serialize type 0, any type accepted). Implement it for serde types
/// with [`serde_payload!`](crate::serde_payload) (JSON and MsgPack) or, for types that also derive
/// `prost::Message`, with [`proto_payload!`](crate::proto_payload).
pub trait Payload: Sized + 'static {
    /// Reads the argument from a request, with the request's serialize type.
    fn decode(request: &Message) -> Result<Self, CodecError>;
    /// Appends the reply, encoded with `serialize`.
    fn encode(&self, serialize: SerializeType, out: &mut BytesMut) -> Result<(), CodecError>;
}

impl Payload for Bytes {
    fn decode(request: &Message) -> Result<Self, CodecError> {
        Ok(request.payload_bytes())
    }

    fn encode(&self, _: SerializeType, out: &mut BytesMut) -> Result<(), CodecError> {
        out.put_slice(self);
        Ok(())
    }
}

/// Makes serde types method arguments and replies, over JSON and MsgPack.
#[macro_export]
macro_rules! serde_payload {
    ($($ty:ty),+ $(,)?) => {$(
        impl $crate::Payload for $ty {
            fn decode(
                request: &$crate::Message,
            ) -> Result<Self, $crate::serialize::CodecError> {
                $crate::serialize::decode_serde(request.serialize_type(), request.payload())
            }
            fn encode(
                &self,
                serialize: $crate::SerializeType,
                out: &mut $crate::bytes::BytesMut,
            ) -> Result<(), $crate::serialize::CodecError> {
                $crate::serialize::encode_serde(serialize, self, out)
            }
        }
    )+};
}

/// Makes types that are both serde and `prost::Message` arguments and replies, over JSON, MsgPack
/// and Protobuf.
#[macro_export]
macro_rules! proto_payload {
    ($($ty:ty),+ $(,)?) => {$(
        impl $crate::Payload for $ty {
            fn decode(
                request: &$crate::Message,
            ) -> Result<Self, $crate::serialize::CodecError> {
                $crate::serialize::decode_proto(request.serialize_type(), request.payload())
            }
            fn encode(
                &self,
                serialize: $crate::SerializeType,
                out: &mut $crate::bytes::BytesMut,
            ) -> Result<(), $crate::serialize::CodecError> {
                $crate::serialize::encode_proto(serialize, self, out)
            }
        }
    )+};
}

/// A future that runs on its worker's thread.
pub type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;

type InlineFn = dyn Fn(&Context, &mut BytesMut) + Send + Sync;
type AsyncFn = dyn Fn(Context) -> LocalFuture<Option<BytesMut>> + Send + Sync;
/// Methods of one service, by name.
type MethodMap = Names<MethodFn>;
type RawFn = dyn Fn(&Context, RawReply<'_>) -> Result<(), ServiceError> + Send + Sync;

#[derive(Clone)]
enum MethodFn {
    Inline(Arc<InlineFn>),
    Async(Arc<AsyncFn>),
}

/// A named set of methods, registered under its name (Go's `RegisterName`).
pub struct Service {
    name: String,
    methods: Vec<(String, MethodFn)>,
}

impl Service {
    pub fn new(name: impl Into<String>) -> Self {
        Service {
            name: name.into(),
            methods: Vec::new(),
        }
    }

    /// Adds a method that runs inline on the connection task: for work that does not wait. When it
    /// fails, the default reply is still encoded into the payload, as Go does (spec 4.7).
    pub fn method<A, R, F>(mut self, name: impl Into<String>, f: F) -> Self
    where
        A: Payload,
        R: Payload + Default,
        F: Fn(&Context, A) -> Result<R, ServiceError> + Send + Sync + 'static,
    {
        let name = name.into();
        let method_name = name.clone();
        let call = move |ctx: &Context, out: &mut BytesMut| {
            let request = ctx.request();
            let args = match A::decode(request) {
                Ok(args) => args,
                Err(e) => return write_error(out, ctx, &e.to_string()),
            };
            let outcome = catch_unwind(AssertUnwindSafe(|| f(ctx, args)));
            write_outcome(out, ctx, &method_name, outcome);
        };
        self.methods.push((name, MethodFn::Inline(Arc::new(call))));
        self
    }

    /// Adds an async method: it runs as its own task on the worker, so it may wait (timers, IO)
    /// without holding back anything else. It gets the context shared (`Rc`) because the reply,
    /// written after it returns, needs the response metadata it set. Costs a few allocations per
    /// call (task, context, reply buffer): keep plain methods for work that does not wait.
    pub fn async_method<A, R, F, Fut>(mut self, name: impl Into<String>, f: F) -> Self
    where
        A: Payload,
        R: Payload + Default,
        F: Fn(Rc<Context>, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, ServiceError>> + 'static,
    {
        let name = name.into();
        let method_name: Arc<str> = name.clone().into();
        let f = Arc::new(f);
        let call = move |ctx: Context| -> LocalFuture<Option<BytesMut>> {
            let f = f.clone();
            let method_name = method_name.clone();
            Box::pin(async move {
                let ctx = Rc::new(ctx);
                let mut out = BytesMut::new();
                let request = ctx.request();
                match A::decode(request) {
                    Err(e) => write_error(&mut out, &ctx, &e.to_string()),
                    Ok(args) => {
                        let outcome = CatchUnwind(f(ctx.clone(), args)).await;
                        write_outcome(&mut out, &ctx, &method_name, outcome);
                    }
                }
                (!out.is_empty()).then_some(out)
            })
        };
        self.methods.push((name, MethodFn::Async(Arc::new(call))));
        self
    }
}

/// Writes a method's result: reply, or error text plus the default reply (spec 4.7, 4.12).
#[inline]
fn write_outcome<R: Payload + Default>(
    out: &mut BytesMut,
    ctx: &Context,
    method: &str,
    outcome: Result<Result<R, ServiceError>, Box<dyn Any + Send>>,
) {
    match outcome {
        Ok(Ok(reply)) => write_reply(out, ctx, None, &reply),
        Ok(Err(error)) => write_reply(out, ctx, Some(error.text()), &R::default()),
        Err(panic) => {
            let text = format!(
                "[service internal error]: {}, method: {method}",
                panic_text(&*panic)
            );
            tracing::error!(method, "{text}");
            write_reply(out, ctx, Some(&text), &R::default());
        }
    }
}

/// Writes the reply frame of `ctx`'s request (nothing for oneway requests): cloned header, error
/// key first when failed, the context's response metadata, the encoded payload (spec 4.3, 4.8).
#[inline]
fn write_reply<R: Payload>(out: &mut BytesMut, ctx: &Context, error: Option<&str>, reply: &R) {
    let request = ctx.request();
    if request.is_oneway() {
        return;
    }
    let start = out.len();
    let mut writer = FrameWriter::reply(out, request, 0);
    if let Some(text) = error {
        writer.error(text);
    }
    ctx.for_each_response_metadata(|key, value| {
        if error.is_none() || key != ERROR_KEY.as_bytes() {
            writer.metadata(key, value);
        }
    });
    let mut payload = writer.payload();
    match reply.encode(request.serialize_type(), payload.buf()) {
        Ok(()) => {
            payload.finish_reply(request.header());
        }
        Err(e) => {
            out.truncate(start);
            write_error(out, ctx, &e.to_string());
        }
    }
}

/// Writes an error reply with an empty payload (routing and codec errors; Go's `WriteError`).
fn write_error(out: &mut BytesMut, ctx: &Context, text: &str) {
    write_error_for(out, ctx.request(), text);
}

fn write_error_for(out: &mut BytesMut, request: &Message, text: &str) {
    if request.is_oneway() {
        return;
    }
    let mut writer = FrameWriter::reply(out, request, 0);
    writer.error(text);
    writer.payload().finish();
}

/// The text of a panic payload.
pub(crate) fn panic_text(panic: &(dyn Any + Send)) -> Cow<'_, str> {
    if let Some(text) = panic.downcast_ref::<&'static str>() {
        Cow::Borrowed(text)
    } else if let Some(text) = panic.downcast_ref::<String>() {
        Cow::Borrowed(text.as_str())
    } else {
        Cow::Borrowed("panic with a non-string value")
    }
}

/// Polls a future, turning a panic into an error value.
struct CatchUnwind<F>(F);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        // SAFETY: structural pinning of the only field; it is never moved out.
        let inner = unsafe { self.map_unchecked_mut(|s| &mut s.0) };
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// A raw handler's reply: written at most once, either a payload or an error (Go's
/// `Context.Write` / `WriteError`, without its double-reply bug, spec 4.14, 9.6).
pub struct RawReply<'a> {
    out: &'a mut BytesMut,
    replied: &'a mut bool,
}

impl RawReply<'_> {
    /// Replies with `payload` (compressed above 1024 bytes if the request was) and the context's
    /// response metadata.
    pub fn write(self, ctx: &Context, payload: &[u8]) {
        *self.replied = true;
        write_reply(self.out, ctx, None, &Bytes::copy_from_slice(payload));
    }

    /// Replies with an error and an empty payload.
    pub fn write_error(self, ctx: &Context, text: &str) {
        *self.replied = true;
        write_error(self.out, ctx, text);
    }
}

/// Why a table could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistrationError {
    #[error("rpcx.Register: no service name")]
    EmptyServiceName,
    #[error("rpcx.Register: service {0} has no methods")]
    NoMethods(String),
    #[error("rpcx.Register: service {service}: empty method name")]
    EmptyMethodName { service: String },
    #[error("rpcx.Register: service already defined: {0}")]
    DuplicateService(String),
    #[error("rpcx.Register: service {service}: method {method} registered twice")]
    DuplicateMethod { service: String, method: String },
    #[error("rpcx.AddHandler: handler {0} registered twice")]
    DuplicateRawHandler(String),
}

/// Collects services and raw handlers, checking names as they come.
#[derive(Default)]
pub struct ServiceTableBuilder {
    services: Names<MethodMap>,
    raw: FxHashMap<Box<[u8]>, Arc<RawFn>>,
}

impl ServiceTableBuilder {
    /// Registers a service under its name. Unlike Go, a second service of the same name is an
    /// error rather than a silent replacement.
    pub fn service(mut self, service: Service) -> Result<Self, RegistrationError> {
        if service.name.is_empty() {
            return Err(RegistrationError::EmptyServiceName);
        }
        if service.methods.is_empty() {
            return Err(RegistrationError::NoMethods(service.name));
        }
        if self.services.get(service.name.as_bytes()).is_some() {
            return Err(RegistrationError::DuplicateService(service.name));
        }
        let mut methods = Names::default();
        for (method, f) in service.methods {
            if method.is_empty() {
                return Err(RegistrationError::EmptyMethodName {
                    service: service.name,
                });
            }
            if methods.get(method.as_bytes()).is_some() {
                return Err(RegistrationError::DuplicateMethod {
                    service: service.name,
                    method,
                });
            }
            methods.insert(method.as_bytes(), f);
        }
        self.services.insert(service.name.as_bytes(), methods);
        Ok(self)
    }

    /// Registers a raw handler under `path.method` (Go's `AddHandler`): it gets the whole request
    /// and writes its own reply through [`RawReply`]. Returning an error without having replied
    /// sends that error; after a reply, the error is only logged.
    pub fn raw_handler<F>(
        mut self,
        path: &str,
        method: &str,
        f: F,
    ) -> Result<Self, RegistrationError>
    where
        F: Fn(&Context, RawReply<'_>) -> Result<(), ServiceError> + Send + Sync + 'static,
    {
        let key = format!("{path}.{method}");
        if self.raw.contains_key(key.as_bytes()) {
            return Err(RegistrationError::DuplicateRawHandler(key));
        }
        self.raw.insert(key.into_bytes().into(), Arc::new(f));
        Ok(self)
    }

    pub fn build(self) -> ServiceTable {
        ServiceTable {
            services: self.services,
            raw: self.raw,
            raw_key: RefCell::new(Vec::new()),
        }
    }
}

/// Name → value, tuned for the handful of names in a service table: below
/// [`Names::SCAN_LIMIT`] entries a lookup is a scan comparing lengths then bytes (no hashing, the
/// common case); above it, a hash map index takes over.
#[derive(Clone)]
struct Names<V> {
    entries: Vec<(Box<[u8]>, V)>,
    index: Option<FxHashMap<Box<[u8]>, usize>>,
}

impl<V> Default for Names<V> {
    fn default() -> Self {
        Names {
            entries: Vec::new(),
            index: None,
        }
    }
}

impl<V> Names<V> {
    const SCAN_LIMIT: usize = 16;

    /// Adds a name the caller has checked is new.
    fn insert(&mut self, name: &[u8], value: V) {
        self.entries.push((name.into(), value));
        if self.entries.len() > Self::SCAN_LIMIT {
            let index = self
                .entries
                .iter()
                .enumerate()
                .map(|(i, (name, _))| (name.clone(), i))
                .collect();
            self.index = Some(index);
        }
    }

    #[inline]
    fn get(&self, name: &[u8]) -> Option<&V> {
        match &self.index {
            None => self
                .entries
                .iter()
                .find(|(n, _)| n.len() == name.len() && **n == *name)
                .map(|(_, v)| v),
            Some(index) => index.get(name).map(|&i| &self.entries[i].1),
        }
    }
}

/// What became of a dispatched request.
pub enum Dispatch {
    /// Done: its reply, if it has one, is in the output buffer.
    Done,
    /// Still running: the future yields the encoded reply frame (`None` for oneway requests).
    Pending(LocalFuture<Option<BytesMut>>),
}

/// The routing table of one worker.
#[derive(Clone)]
pub struct ServiceTable {
    services: Names<MethodMap>,
    raw: FxHashMap<Box<[u8]>, Arc<RawFn>>,
    /// Scratch space for the `path.method` key of raw handlers, kept to avoid an allocation.
    raw_key: RefCell<Vec<u8>>,
}

impl ServiceTable {
    pub fn builder() -> ServiceTableBuilder {
        ServiceTableBuilder::default()
    }

    /// Routes one request and runs it (spec 4.2): heartbeats are echoed, raw handlers come first,
    /// then service, method and codec are looked up, each miss answered with Go's text.
    pub fn dispatch(
        &self,
        request: Message,
        peer: std::net::SocketAddr,
        out: &mut BytesMut,
    ) -> Dispatch {
        if request.is_heartbeat() {
            // Spec 4.4: answered even when flagged oneway, without auth or routing.
            encode_heartbeat_reply(out, &request);
            return Dispatch::Done;
        }
        if !self.raw.is_empty() {
            let mut key = self.raw_key.borrow_mut();
            key.clear();
            key.extend_from_slice(request.service_path());
            key.push(b'.');
            key.extend_from_slice(request.service_method());
            if let Some(handler) = self.raw.get(key.as_slice()) {
                let handler = handler.clone();
                drop(key);
                let ctx = Context::new(request, peer);
                run_raw(&*handler, &ctx, out);
                return Dispatch::Done;
            }
        }
        let Some(methods) = self.services.get(request.service_path()) else {
            let text = format!(
                "rpcx: can't find service {}",
                String::from_utf8_lossy(request.service_path())
            );
            write_error_for(out, &request, &text);
            return Dispatch::Done;
        };
        let Some(method) = methods.get(request.service_method()) else {
            let text = format!(
                "rpcx: can't find method {}",
                String::from_utf8_lossy(request.service_method())
            );
            write_error_for(out, &request, &text);
            return Dispatch::Done;
        };
        let serialize = request.serialize_type();
        if !has_codec(serialize) {
            let text = CodecError::NoCodec(serialize.bits()).to_string();
            write_error_for(out, &request, &text);
            return Dispatch::Done;
        }
        let ctx = Context::new(request, peer);
        match method {
            MethodFn::Inline(f) => {
                f(&ctx, out);
                Dispatch::Done
            }
            MethodFn::Async(f) => Dispatch::Pending(f(ctx)),
        }
    }
}

fn run_raw(handler: &RawFn, ctx: &Context, out: &mut BytesMut) {
    let mut replied = false;
    let reply = RawReply {
        out,
        replied: &mut replied,
    };
    let text = match catch_unwind(AssertUnwindSafe(|| handler(ctx, reply))) {
        Ok(Ok(())) => return,
        Ok(Err(error)) => error.to_string(),
        Err(panic) => panic_text(&*panic).into_owned(),
    };
    if replied {
        tracing::warn!(seq = ctx.seq(), "raw handler failed after replying: {text}");
    } else {
        write_error(out, ctx, &text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_find_by_scan_and_by_index() {
        let mut names = Names::default();
        for i in 0..40u32 {
            names.insert(format!("name{i}").as_bytes(), i);
            for j in 0..=i {
                assert_eq!(
                    names.get(format!("name{j}").as_bytes()),
                    Some(&j),
                    "{i} {j}"
                );
            }
            assert_eq!(names.get(b"name"), None);
            assert_eq!(names.get(b"missing"), None);
        }
    }
}
