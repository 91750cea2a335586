//! A [`Service`]: a name and its methods, built with closures (the `#[service]` macro writes the
//! same calls). How a method runs: decode the arguments, call, catch a panic, hand the result to
//! the reply.
//!
//! Plain methods ([`Service::method`]) run inline on the connection's task and allocate nothing;
//! async methods ([`Service::async_method`]) run as their own task, so a slow one never holds back
//! the other requests of its connection. Handlers need not be `Send` or `Sync`: each worker builds
//! its own services (see [`crate::Server::new`]).

use std::any::Any;
use std::borrow::Cow;
use std::cell::RefCell;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;

use bytes::BytesMut;

use crate::interceptor::{internal_error, Interceptors};
use crate::service::reply::{CallError, ReplySink};
use crate::service::{Payload, ServiceError};
use crate::Context;

/// A future that runs on its worker's thread.
pub type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;

pub(crate) type InlineFn = dyn Fn(&Context, ReplySink<'_>);
pub(crate) type AsyncFn = dyn Fn(Context, Interceptors) -> LocalFuture<Option<BytesMut>>;

/// How a registered method runs.
pub(crate) enum MethodFn {
    Inline(Box<InlineFn>),
    /// Inline, and its argument keeps a handle on the request's bytes ([`Payload::SHARES_FRAME`]):
    /// a lent request is given its own handle before the call.
    InlineSharing(Box<InlineFn>),
    Async(Rc<AsyncFn>),
}

/// Anything that can be registered as a service: a [`Service`] built with closures, or a type
/// whose impl block carries [`#[service]`](crate::service).
pub trait IntoService {
    fn into_service(self) -> Service;
}

impl IntoService for Service {
    fn into_service(self) -> Service {
        self
    }
}

/// The registration of a method borrowing its payload: one body for the two reply kinds, whose
/// closure types cannot be named by one generic function (a borrowed reply's type depends on the
/// call's lifetime).
macro_rules! borrowing_method {
    ($service:ident, $name:ident, $f:ident) => {{
        let mut service = $service;
        let name = $name.into();
        let method_name = ::std::clone::Clone::clone(&name);
        let call = move |ctx: &Context, sink: ReplySink<'_>| {
            let payload = ctx.request().payload();
            let result = call_caught(&method_name, || $f(ctx, payload));
            sink.finish(ctx, &method_name, result);
        };
        service
            .methods
            .push((name, MethodFn::Inline(Box::new(call))));
        service
    }};
}

/// A named set of methods, registered under its name (Go's `RegisterName`).
pub struct Service {
    pub(crate) name: String,
    pub(crate) methods: Vec<(String, MethodFn)>,
}

impl Service {
    pub fn new(name: impl Into<String>) -> Self {
        Service {
            name: name.into(),
            methods: Vec::new(),
        }
    }

    /// The name the service is registered under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The names of its methods, in registration order.
    pub fn method_names(&self) -> impl Iterator<Item = &str> {
        self.methods.iter().map(|(name, _)| name.as_str())
    }

    /// Adds a method that runs inline on the connection task: for work that does not wait. When it
    /// fails, the zero reply is still encoded into the payload, as Go does (spec 4.7).
    pub fn method<A, R, F>(mut self, name: impl Into<String>, f: F) -> Self
    where
        A: Payload,
        R: Payload,
        F: Fn(&Context, A) -> Result<R, ServiceError> + 'static,
    {
        let name = name.into();
        let method_name = name.clone();
        let call = move |ctx: &Context, sink: ReplySink<'_>| {
            let result = match A::decode(ctx.request()) {
                Ok(args) => call_caught(&method_name, || f(ctx, args)),
                Err(e) => Err(CallError::Decode(e.to_string())),
            };
            sink.finish(ctx, &method_name, result);
        };
        let call = Box::new(call);
        let method = if A::SHARES_FRAME {
            MethodFn::InlineSharing(call)
        } else {
            MethodFn::Inline(call)
        };
        self.methods.push((name, method));
        self
    }

    /// Adds an inline method whose argument is the raw payload (decompressed), borrowed where it
    /// was received: no copy and no reference count, unlike a `Bytes` argument. Any serialize type
    /// is accepted, as for `Bytes`. Its reply is any [`Payload`].
    pub fn method_borrowing<R, F>(self, name: impl Into<String>, f: F) -> Self
    where
        R: Payload,
        F: Fn(&Context, &[u8]) -> Result<R, ServiceError> + 'static,
    {
        borrowing_method!(self, name, f)
    }

    /// As [`Service::method_borrowing`], with a reply that may borrow the argument (or the
    /// context): an echo copies the payload once, into the reply frame, and touches no reference
    /// count. The reply is written as a `Bytes` reply is: raw, whatever the serialize type.
    pub fn method_borrowing_reply<F>(self, name: impl Into<String>, f: F) -> Self
    where
        F: for<'a> Fn(&'a Context, &'a [u8]) -> Result<&'a [u8], ServiceError> + 'static,
    {
        borrowing_method!(self, name, f)
    }

    /// Adds an async method: it runs as its own task on the worker, so it may wait (timers, IO)
    /// without holding back anything else. It gets the context shared (`Rc`) because the reply,
    /// written after it returns, needs the response metadata it set. Costs a few allocations per
    /// call (task, context, reply buffer): keep plain methods for work that does not wait.
    pub fn async_method<A, R, F, Fut>(mut self, name: impl Into<String>, f: F) -> Self
    where
        A: Payload,
        R: Payload,
        F: Fn(Rc<Context>, A) -> Fut + 'static,
        Fut: Future<Output = Result<R, ServiceError>> + 'static,
    {
        let name = name.into();
        let method_name: Rc<str> = name.clone().into();
        let f = Rc::new(f);
        let call = move |ctx: Context, hooks: Interceptors| -> LocalFuture<Option<BytesMut>> {
            let f = f.clone();
            let method_name = method_name.clone();
            Box::pin(async move {
                let ctx = Rc::new(ctx);
                let result = match A::decode(ctx.request()) {
                    Ok(args) => match CatchUnwind(f(ctx.clone(), args)).await {
                        Ok(Ok(reply)) => Ok(reply),
                        Ok(Err(error)) => Err(CallError::Service(error)),
                        Err(panic) => Err(CallError::Panic(internal_error(&*panic, &method_name))),
                    },
                    Err(e) => Err(CallError::Decode(e.to_string())),
                };
                let mut out = BytesMut::new();
                let scratch = RefCell::new(BytesMut::new());
                let sink = ReplySink {
                    out: &mut out,
                    hooks: &hooks,
                    scratch: &scratch,
                };
                sink.finish(&ctx, &method_name, result);
                (!out.is_empty()).then_some(out)
            })
        };
        self.methods.push((name, MethodFn::Async(Rc::new(call))));
        self
    }
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
        // SAFETY: `CatchUnwind` pins its only field structurally: the field is never moved out of
        // a pinned `CatchUnwind`, and `CatchUnwind` implements neither `Drop` nor `Unpin` by hand.
        let inner = unsafe { self.map_unchecked_mut(|s| &mut s.0) };
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// Calls a method (on its decoded or its borrowed argument), a panic caught and turned into the
/// internal error Go answers with.
#[inline(always)]
fn call_caught<R>(
    method_name: &str,
    call: impl FnOnce() -> Result<R, ServiceError>,
) -> Result<R, CallError> {
    match catch_unwind(AssertUnwindSafe(call)) {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(error)) => Err(CallError::Service(error)),
        Err(panic) => Err(CallError::Panic(internal_error(&*panic, method_name))),
    }
}
