//! The routing table of one worker: services, raw handlers and interceptors, and
//! [`ServiceTable::dispatch`], which routes a request with Go's exact error texts
//! (docs/protocol.md 4.2, 4.6) and runs it.
//!
//! Each worker builds its own table (the server's factory runs once per worker thread), so a
//! lookup touches only its core's memory and handlers may hold `Rc` state.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::ptr::NonNull;
use std::rc::Rc;

use bytes::BytesMut;
use ringrpc_codec::{encode_heartbeat_reply, Message};
use rustc_hash::FxHashMap;

use crate::context::DEADLINE_EXCEEDED;
use crate::interceptor::{Interceptor, Interceptors, Refusal};
use crate::serialize::{has_codec, CodecError};
use crate::service::method::{AsyncFn, LocalFuture, MethodFn};
use crate::service::names::Names;
use crate::service::raw::{run_raw, RawFn, RawReply};
use crate::service::reply::{write_error, ReplySink};
use crate::service::{IntoService, RegistrationError, ServiceError};
use crate::Context;

/// Methods of one service, by name.
type MethodMap = Names<MethodFn>;

/// Collects services, raw handlers and interceptors, checking names as they come.
#[derive(Default)]
pub struct ServiceTableBuilder {
    services: Names<MethodMap>,
    raw: FxHashMap<Box<[u8]>, Box<RawFn>>,
    interceptors: Vec<Box<dyn Interceptor>>,
    enforce_deadlines: bool,
}

impl ServiceTableBuilder {
    /// Registers a service under its name. Unlike Go, a second service of the same name is an
    /// error rather than a silent replacement.
    pub fn service(mut self, service: impl IntoService) -> Result<Self, RegistrationError> {
        let service = service.into_service();
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
        F: Fn(&Context, RawReply<'_>) -> Result<(), ServiceError> + 'static,
    {
        let key = format!("{path}.{method}");
        if self.raw.contains_key(key.as_bytes()) {
            return Err(RegistrationError::DuplicateRawHandler(key));
        }
        self.raw.insert(key.into_bytes().into(), Box::new(f));
        Ok(self)
    }

    /// Installs an interceptor; hooks run in installation order (see [`crate::interceptor`]).
    pub fn interceptor(mut self, interceptor: impl Interceptor) -> Self {
        self.interceptors.push(Box::new(interceptor));
        self
    }

    /// Enforces `__ServerTimeout` (off by default, as in Go, which only hands it to the service;
    /// spec 4.9): once a request's deadline passes, it is answered with
    /// [`DEADLINE_EXCEEDED`](crate::context::DEADLINE_EXCEEDED) and a late reply is dropped; an
    /// async handler still running is cancelled (its future is dropped). A plain method cannot be
    /// interrupted: its late reply is replaced when it returns.
    pub fn enforce_deadlines(mut self, enforce: bool) -> Self {
        self.enforce_deadlines = enforce;
        self
    }

    pub fn build(self) -> ServiceTable {
        ServiceTable {
            services: self.services,
            raw: self.raw,
            enforce_deadlines: self.enforce_deadlines,
            interceptors: Interceptors::new(self.interceptors),
            raw_key: RefCell::new(Vec::new()),
            scratch: RefCell::new(BytesMut::new()),
            last_route: Cell::new(RouteHit {
                key: RouteKey::NONE,
                method: NonNull::dangling(),
            }),
        }
    }
}

/// What became of a dispatched request.
pub enum Dispatch {
    /// Done: its reply, if it has one, is in the output buffer.
    Done,
    /// Still running: the future yields the encoded reply frame (`None` for oneway requests).
    Pending(LocalFuture<Option<BytesMut>>),
    /// Rejected by an interceptor that closes the connection: its error reply is in the output
    /// buffer; read nothing more.
    Close,
}

/// The routing table of one worker.
pub struct ServiceTable {
    services: Names<MethodMap>,
    raw: FxHashMap<Box<[u8]>, Box<RawFn>>,
    interceptors: Interceptors,
    enforce_deadlines: bool,
    /// Scratch space for the `path.method` key of raw handlers, kept to avoid an allocation.
    raw_key: RefCell<Vec<u8>>,
    /// Scratch space for a reply payload while interceptors look at it.
    scratch: RefCell<BytesMut>,
    /// The last route found, when its names are short enough for their [`RouteKey`] to be
    /// whole: a connection calling one method again and again (the common load) skips both
    /// lookups and the codec check.
    last_route: Cell<RouteHit>,
}

/// A route found: its key and the method. A pointer rather than the service's and method's
/// positions, whose two bounds-checked lookups cost 14 instructions per request (callgrind): the
/// methods are never changed or dropped while the table lives (no `&mut self` method touches
/// `services`), and they lie in the heap storage of its `Names`, which stays in place when the
/// table moves.
#[derive(Clone, Copy)]
struct RouteHit {
    key: RouteKey,
    method: NonNull<MethodFn>,
}

/// What the last-route cache compares: the wire bytes naming the method (both names with their
/// length prefixes, [`Message::names_on_wire`]) and the serialize type. Their length and two
/// overlapping loads, of 16 bytes each, or of 8 below 16 bytes, cover every byte of names up to
/// 32 bytes long together (`Arith` and `Mul`: 16), so a hit costs three integer compares where
/// two name keys, a scan and the codec check cost about 55 instructions (callgrind).
#[derive(Clone, Copy, PartialEq, Eq)]
struct RouteKey {
    /// Length of the names on the wire (at least 8, below 2^32: a frame's length is a `u32`) and
    /// the serialize type's bits above it.
    len_serialize: u64,
    head: u128,
    tail: u128,
}

impl RouteKey {
    /// Matches no request: every request's names take at least 8 bytes on the wire.
    const NONE: RouteKey = RouteKey {
        len_serialize: 0,
        head: 0,
        tail: 0,
    };

    #[inline(always)]
    fn of(request: &Message) -> Self {
        let names = request.names_on_wire();
        let len = names.len();
        let (head, tail) = if len >= 16 {
            (
                u128::from_le_bytes(names[..16].try_into().expect("sixteen bytes")),
                u128::from_le_bytes(names[len - 16..].try_into().expect("sixteen bytes")),
            )
        } else {
            let eight = |at: usize| u64::from_le_bytes(names[at..at + 8].try_into().expect("8"));
            (u128::from(eight(0)), u128::from(eight(len.max(8) - 8)))
        };
        RouteKey {
            // Whole, with no clamp (3 instructions per request, callgrind): 64 bits hold both.
            len_serialize: len as u64 | (u64::from(request.serialize_type().bits()) << 48),
            head,
            tail,
        }
    }

    /// Whether the key covers every byte of the names (and its length bits are the length).
    #[inline(always)]
    fn is_whole(request: &Message) -> bool {
        request.names_on_wire().len() <= 32
    }
}

impl ServiceTable {
    pub fn builder() -> ServiceTableBuilder {
        ServiceTableBuilder::default()
    }

    /// The registered service names, in registration order (e.g. for a registry).
    pub fn service_names(&self) -> impl Iterator<Item = &str> {
        self.services
            .names()
            .map(|name| std::str::from_utf8(name).expect("registered from a String"))
    }

    /// Asks the interceptors whether to serve a new connection.
    pub fn on_connect(&self, peer: SocketAddr) -> Result<(), Refusal> {
        self.interceptors.on_connect(peer)
    }

    /// Tells the interceptors `bytes` were read from a connection.
    #[inline(always)]
    pub fn on_read(&self, bytes: usize) {
        if !self.interceptors.is_empty() {
            self.interceptors.on_read(bytes)
        }
    }

    /// Tells the interceptors `bytes` were written to a connection.
    #[inline(always)]
    pub fn on_write(&self, bytes: usize) {
        if !self.interceptors.is_empty() {
            self.interceptors.on_write(bytes)
        }
    }

    /// Tells the interceptors a connection is gone.
    pub fn on_close(&self, peer: SocketAddr) {
        self.interceptors.on_close(peer)
    }

    /// Routes one request and runs it (spec 4.2): heartbeats are echoed, then the interceptors'
    /// `before_call`, raw handlers, then service, method and codec are looked up, each miss
    /// answered with Go's text. For callers with a request at a time (the HTTP gateway,
    /// JSON-RPC); a connection dispatches from its context ([`ServiceTable::dispatch_in`]).
    /// Its context belongs to no connection that takes pushes (HTTP has no channel for them):
    /// [`Context::pusher`]'s pushes fail with `Closed`.
    pub fn dispatch(&self, request: Message, peer: SocketAddr, out: &mut BytesMut) -> Dispatch {
        let mut ctx = self.connection_context(peer, 0);
        *ctx.request_slot() = request;
        ctx.begin_request();
        // A request parsed by the caller is not lent: nothing to own.
        self.dispatch_in(&mut ctx, out, &mut |_: &mut Message| {})
    }

    /// The context a connection from `peer` parses its requests into, one after the other
    /// ([`Context::for_connection`]), with this table's deadline rule. `connection`: the id its
    /// pushes go to (`push::Registration::id`; 0: none).
    pub(crate) fn connection_context(&self, peer: SocketAddr, connection: u64) -> Context {
        let mut ctx = Context::for_connection(peer, connection);
        if self.enforce_deadlines {
            ctx.enforce_deadline();
        }
        ctx
    }

    /// [`ServiceTable::dispatch`] of the request in `ctx` (begun with
    /// [`Context::begin_request`]). An async method gets a context of its own
    /// ([`Context::detach`]); end the request after ([`Context::end_request`]).
    ///
    /// A request lent its frame (`Message::is_lent`: a view of the receive buffer, with no handle
    /// on it) is handed to `own` to be given its own handle when it may outlive the call: before
    /// an async method, a method whose argument keeps a handle on the bytes
    /// ([`crate::Payload::SHARES_FRAME`]), and a raw handler (which may keep the request).
    /// Interceptors see it lent: one that keeps the request or its bytes gets a copy.
    // Always: with a second caller LTO stopped inlining it into the binary loop (about 190
    // instructions per request, callgrind).
    #[inline(always)]
    pub(crate) fn dispatch_in(
        &self,
        ctx: &mut Context,
        out: &mut BytesMut,
        own: &mut impl FnMut(&mut Message),
    ) -> Dispatch {
        let request = ctx.request();
        if request.is_heartbeat() {
            // Spec 4.4: answered even when flagged oneway, without auth or routing.
            encode_heartbeat_reply(out, request);
            return Dispatch::Done;
        }
        if self.interceptors.is_empty() && self.raw.is_empty() {
            // The route found last time, or the lookup out of line: the common case handles no
            // `Result` (its spills cost about 5 instructions per request, callgrind).
            let hit = self.last_route.get();
            if hit.key == RouteKey::of(request) {
                // SAFETY: as in `cached_route`.
                return self.run(unsafe { hit.method.as_ref() }, ctx, out, own);
            }
            return self.dispatch_looked_up(ctx, out, own);
        }
        self.dispatch_intercepted(ctx, out, own)
    }

    /// [`ServiceTable::dispatch_in`] of a request whose route is not the last one found.
    #[inline(never)]
    fn dispatch_looked_up(
        &self,
        ctx: &mut Context,
        out: &mut BytesMut,
        own: &mut impl FnMut(&mut Message),
    ) -> Dispatch {
        match self.look_up(ctx.request()) {
            Err(text) => {
                write_error(out, ctx.request(), &text);
                Dispatch::Done
            }
            Ok(method) => self.run(method, ctx, out, own),
        }
    }

    /// The path with interceptors or raw handlers. Out of line: inlined, it changed the
    /// connection loop's register allocation (6 instructions per request more at 10 x 32 without
    /// interceptors, callgrind).
    #[inline(never)]
    fn dispatch_intercepted(
        &self,
        ctx: &mut Context,
        out: &mut BytesMut,
        own: &mut impl FnMut(&mut Message),
    ) -> Dispatch {
        if let Err(rejection) = self.interceptors.before_call(ctx) {
            let text = rejection.error().text();
            write_error(out, ctx.request(), text);
            self.interceptors.after_reply(ctx, Some(text));
            return if rejection.closes_connection() {
                Dispatch::Close
            } else {
                Dispatch::Done
            };
        }
        if let Some(handler) = self.raw_handler(ctx.request()) {
            own_if_lent(ctx, own);
            let error = run_raw(handler, ctx, out);
            self.interceptors.after_reply(ctx, error.as_deref());
            return Dispatch::Done;
        }
        match self.route(ctx.request()) {
            Err(text) => {
                write_error(out, ctx.request(), &text);
                self.interceptors.after_reply(ctx, Some(&text));
                Dispatch::Done
            }
            Ok(method) => self.run(method, ctx, out, own),
        }
    }

    #[inline(always)]
    fn run(
        &self,
        method: &MethodFn,
        ctx: &mut Context,
        out: &mut BytesMut,
        own: &mut impl FnMut(&mut Message),
    ) -> Dispatch {
        let f = match method {
            MethodFn::Inline(f) => f,
            MethodFn::InlineSharing(f) => {
                own_if_lent(ctx, own);
                f
            }
            MethodFn::Async(f) => {
                own_if_lent(ctx, own);
                return self.run_async(f, ctx.detach());
            }
        };
        f(
            ctx,
            ReplySink {
                out,
                hooks: &self.interceptors,
                scratch: &self.scratch,
            },
        );
        Dispatch::Done
    }

    /// Starts an async method on its own context, under the enforced deadline if there is one.
    #[inline(never)]
    fn run_async(&self, f: &Rc<AsyncFn>, ctx: Context) -> Dispatch {
        match ctx.enforced_deadline() {
            None => Dispatch::Pending(f(ctx, self.interceptors.clone())),
            Some(deadline) => {
                let request = ctx.request().clone();
                let peer = ctx.peer_addr();
                let hooks = self.interceptors.clone();
                let call = f(ctx, hooks.clone());
                Dispatch::Pending(Box::pin(async move {
                    let deadline = monoio::time::Instant::from_std(deadline);
                    match monoio::time::timeout_at(deadline, call).await {
                        Ok(reply) => reply,
                        // The handler's future was dropped with the timer: its task is
                        // cancelled at the await it was parked on.
                        Err(_) => {
                            let mut out = BytesMut::new();
                            write_error(&mut out, &request, DEADLINE_EXCEEDED);
                            let ctx = Context::new(request, peer);
                            hooks.after_reply(&ctx, Some(DEADLINE_EXCEEDED));
                            (!out.is_empty()).then_some(out)
                        }
                    }
                }))
            }
        }
    }

    /// The raw handler a request names, if any: the check for none stays inline (a call of 19
    /// instructions per request with an interceptor, callgrind).
    #[inline(always)]
    fn raw_handler(&self, request: &Message) -> Option<&RawFn> {
        if self.raw.is_empty() {
            return None;
        }
        self.raw_handler_named(request)
    }

    #[inline(never)]
    fn raw_handler_named(&self, request: &Message) -> Option<&RawFn> {
        let mut key = self.raw_key.borrow_mut();
        key.clear();
        key.extend_from_slice(request.service_path());
        key.push(b'.');
        key.extend_from_slice(request.service_method());
        self.raw.get(key.as_slice()).map(|handler| &**handler)
    }

    /// The method a request names, or Go's error text for the miss.
    #[inline(always)]
    fn route(&self, request: &Message) -> Result<&MethodFn, String> {
        match self.cached_route(request) {
            Some(method) => Ok(method),
            None => self.look_up(request),
        }
    }

    /// The method of the last route found, if the request names it (with the same serialize
    /// type).
    #[inline(always)]
    fn cached_route(&self, request: &Message) -> Option<&MethodFn> {
        let hit = self.last_route.get();
        // The same names and serialize type as a route found before: its codec was checked.
        // SAFETY: set from a `&MethodFn` of this table's `services`, which live, unchanged and
        // in place, as long as the table (see `RouteHit`).
        if hit.key == RouteKey::of(request) {
            Some(unsafe { hit.method.as_ref() })
        } else {
            None
        }
    }

    /// Finds the method a request names and checks its codec (remembering the route when its
    /// key is whole), or gives Go's error text for the miss.
    #[cold]
    #[inline(never)]
    fn look_up(&self, request: &Message) -> Result<&MethodFn, String> {
        let Some(service_at) = self.services.position(request.service_path()) else {
            return Err(format!(
                "rpcx: can't find service {}",
                String::from_utf8_lossy(request.service_path())
            ));
        };
        let methods = self.services.at(service_at);
        let Some(method_at) = methods.position(request.service_method()) else {
            return Err(format!(
                "rpcx: can't find method {}",
                String::from_utf8_lossy(request.service_method())
            ));
        };
        let serialize = request.serialize_type();
        if !has_codec(serialize) {
            return Err(CodecError::NoCodec(serialize.bits()).to_string());
        }
        if RouteKey::is_whole(request) {
            self.last_route.set(RouteHit {
                key: RouteKey::of(request),
                method: NonNull::from(methods.at(method_at)),
            });
        }
        Ok(methods.at(method_at))
    }
}

/// Gives a request lent its frame its own handle (`own`), for a call it may outlive
/// ([`ServiceTable::dispatch_in`]).
#[inline(always)]
fn own_if_lent(ctx: &mut Context, own: &mut impl FnMut(&mut Message)) {
    if ctx.request().is_lent() {
        own(ctx.request_slot());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use ringrpc_codec::{encode_frame, Header, Limits, SerializeType, ERROR_KEY};

    use crate::service::Service;

    fn request(path: &str, method: &str, serialize: u8) -> Message {
        let mut header = Header::new();
        header.set_seq(1);
        header.set_serialize_type(SerializeType::from_bits(serialize));
        let mut wire = BytesMut::new();
        encode_frame(
            &mut wire,
            &header,
            path.as_bytes(),
            method.as_bytes(),
            [],
            b"x",
        );
        Message::parse(wire.freeze(), &Limits::default()).unwrap()
    }

    /// The reply's payload, or its error text.
    fn call(table: &ServiceTable, path: &str, method: &str, serialize: u8) -> String {
        let mut out = BytesMut::new();
        let peer = "127.0.0.1:1".parse().unwrap();
        assert!(matches!(
            table.dispatch(request(path, method, serialize), peer, &mut out),
            Dispatch::Done
        ));
        let reply = Message::parse(out.freeze(), &Limits::default()).unwrap();
        match reply.metadata().get_str(ERROR_KEY) {
            Some(error) => error.to_string(),
            None => String::from_utf8(reply.payload().to_vec()).unwrap(),
        }
    }

    #[test]
    fn the_last_route_cache_tells_every_name_and_codec_apart() {
        let named = |name: &'static str| move |_: &Context, _: Bytes| Ok(Bytes::from(name));
        let long = "S".repeat(40);
        let table = ServiceTable::builder()
            .service(
                Service::new("Arith")
                    .method("Mul", named("Arith.Mul"))
                    .method("Add", named("Arith.Add"))
                    .method("Muls", named("Arith.Muls")),
            )
            .unwrap()
            .service(Service::new("Arity").method("Mul", named("Arity.Mul")))
            .unwrap()
            .service(Service::new(long.clone()).method("Mul", named("long.Mul")))
            .unwrap()
            .build();
        // Each call follows a different one, so a stale cached route would answer it.
        let calls = [
            ("Arith", "Mul", 0, "Arith.Mul"),
            ("Arith", "Mul", 0, "Arith.Mul"),
            ("Arith", "Add", 0, "Arith.Add"),
            ("Arity", "Mul", 0, "Arity.Mul"),
            ("Arith", "Muls", 0, "Arith.Muls"),
            ("Arith", "Mul", 1, "Arith.Mul"),
            // Same names as the route cached just before, but a serialize type with no codec.
            ("Arith", "Mul", 5, "can not find codec for 5"),
            (&long, "Mul", 0, "long.Mul"),
            (&long, "Mul", 0, "long.Mul"),
            ("Arith", "Mul", 0, "Arith.Mul"),
            ("Arith", "Mu", 0, "rpcx: can't find method Mu"),
            ("Arit", "Mul", 0, "rpcx: can't find service Arit"),
        ];
        for (path, method, serialize, expected) in calls {
            assert_eq!(
                call(&table, path, method, serialize),
                expected,
                "{path}.{method} serialize {serialize}"
            );
        }
    }
}
