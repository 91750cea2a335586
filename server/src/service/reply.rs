//! The reply of a call: how its result becomes a frame in the output buffer, with every reply rule
//! applied by the codec's one reply writer ([`encode_reply_with`]).
//!
//! The rules that belong to the service layer live here once: a failed call still sends the zero
//! reply of its type (docs/protocol.md 4.7, vector V6); arguments that cannot be decoded send the
//! error with an empty payload; a reply that cannot be encoded becomes an error reply; oneway
//! requests get nothing (4.5). With interceptors installed, the reply is first encoded on its own
//! so that `after_call` can see and replace it ([`CallResult`]).

use std::cell::RefCell;

use bytes::{BufMut, BytesMut};
use ringrpc_codec::{encode_plain_reply_with, encode_reply_with, Message, SerializeType};

use crate::context::DEADLINE_EXCEEDED;
use crate::interceptor::{CallResult, Interceptors};
use crate::serialize::CodecError;
use crate::service::{Payload, ServiceError};
use crate::Context;

/// What a method's reply is written from: a [`Payload`], or the bytes a method that borrows its
/// payload answers with (`&[u8]`, which may borrow the request; see
/// [`crate::Service::method_borrowing_reply`]).
pub(crate) trait Reply {
    fn encode(&self, serialize: SerializeType, out: &mut BytesMut) -> Result<(), CodecError>;
    fn encode_zero(serialize: SerializeType, out: &mut BytesMut) -> Result<(), CodecError>;
}

impl<R: Payload> Reply for R {
    #[inline(always)]
    fn encode(&self, serialize: SerializeType, out: &mut BytesMut) -> Result<(), CodecError> {
        Payload::encode(self, serialize, out)
    }

    fn encode_zero(serialize: SerializeType, out: &mut BytesMut) -> Result<(), CodecError> {
        <R as Payload>::encode_zero(serialize, out)
    }
}

/// Raw bytes, as `Bytes` is written: whatever the serialize type, and empty for an error.
impl Reply for &[u8] {
    #[inline(always)]
    fn encode(&self, _: SerializeType, out: &mut BytesMut) -> Result<(), CodecError> {
        out.put_slice(self);
        Ok(())
    }

    fn encode_zero(_: SerializeType, _: &mut BytesMut) -> Result<(), CodecError> {
        Ok(())
    }
}

/// How a call failed, before its reply is written.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The arguments could not be decoded: the error with an empty payload, as Go's `handleError`
    /// before the call.
    Decode(String),
    /// The method returned an error: its text and the zero reply (spec 4.7).
    Service(ServiceError),
    /// The method panicked: Go's `[service internal error]` text and the zero reply (spec 4.12).
    Panic(String),
    /// The request's enforced deadline passed before the reply was made: the reply is dropped for
    /// [`DEADLINE_EXCEEDED`] with an empty payload (off by default; spec 4.9).
    Deadline,
}

/// Where a method's reply goes: the connection's output buffer, through the interceptors' hooks
/// when there are any.
pub(crate) struct ReplySink<'a> {
    pub(crate) out: &'a mut BytesMut,
    pub(crate) hooks: &'a Interceptors,
    /// Worker scratch for the reply payload while `after_call` looks at it.
    pub(crate) scratch: &'a RefCell<BytesMut>,
}

impl ReplySink<'_> {
    /// Writes the reply of `ctx`'s request from the method's result. With interceptors: encodes
    /// the payload apart, runs `after_call`, writes the (possibly replaced) reply, runs
    /// `after_reply`.
    #[inline(always)]
    pub(crate) fn finish<R: Reply>(
        self,
        ctx: &Context,
        method: &str,
        result: Result<R, CallError>,
    ) {
        // With deadlines not enforced this is one flag test, and the result is not moved: the
        // default path stays as it was.
        if ctx.deadline_passed() {
            return self.finish_late::<R>(ctx, method);
        }
        if !self.hooks.inspect_results() {
            // No `after_call` wants the result: encode in place, as with no interceptor at all.
            let encode_error = write_result(self.out, ctx, &result);
            if !self.hooks.is_empty() {
                let error = encode_error.as_deref().or_else(|| error_text(&result));
                self.hooks.after_reply(ctx, error);
            }
            return;
        }
        let mut scratch = self.scratch.borrow_mut();
        scratch.clear();
        let serialize = ctx.request().serialize_type();
        let error = match result {
            Ok(reply) => reply
                .encode(serialize, &mut scratch)
                .err()
                .map(|e| ServiceError::from(e.to_string())),
            Err(CallError::Decode(text)) => Some(ServiceError::from(text)),
            Err(CallError::Deadline) => Some(ServiceError::from(DEADLINE_EXCEEDED)),
            Err(CallError::Service(error)) => {
                let _ = R::encode_zero(serialize, &mut scratch);
                Some(error)
            }
            Err(CallError::Panic(text)) => {
                let _ = R::encode_zero(serialize, &mut scratch);
                Some(ServiceError::from(text))
            }
        };
        let mut call = CallResult::new(error, &mut scratch, serialize);
        self.hooks.after_call(ctx, method, &mut call);
        let error = call.take_error();
        write_payload(self.out, ctx, error.as_ref().map(|e| e.text()), &scratch);
        self.hooks
            .after_reply(ctx, error.as_ref().map(|e| e.text()));
    }

    /// The enforced deadline passed while the method ran: its reply is dropped for the deadline
    /// error.
    #[cold]
    #[inline(never)]
    fn finish_late<R: Reply>(self, ctx: &Context, method: &str) {
        let hooks = self.hooks;
        if !hooks.inspect_results() {
            write_result::<R>(self.out, ctx, &Err(CallError::Deadline));
            if !hooks.is_empty() {
                hooks.after_reply(ctx, Some(DEADLINE_EXCEEDED));
            }
            return;
        }
        let mut scratch = self.scratch.borrow_mut();
        scratch.clear();
        let serialize = ctx.request().serialize_type();
        let mut call = CallResult::new(
            Some(ServiceError::from(DEADLINE_EXCEEDED)),
            &mut scratch,
            serialize,
        );
        hooks.after_call(ctx, method, &mut call);
        let error = call.take_error();
        write_payload(self.out, ctx, error.as_ref().map(|e| e.text()), &scratch);
        hooks.after_reply(ctx, error.as_ref().map(|e| e.text()));
    }
}

/// The error text a call's result will be answered with, if it failed.
fn error_text<R>(result: &Result<R, CallError>) -> Option<&str> {
    match result {
        Ok(_) => None,
        Err(CallError::Decode(text)) | Err(CallError::Panic(text)) => Some(text),
        Err(CallError::Service(error)) => Some(error.text()),
        Err(CallError::Deadline) => Some(DEADLINE_EXCEEDED),
    }
}

/// Writes a typed result as the reply (the path with no interceptor that inspects results: the
/// payload is encoded in place, into the frame). Returns the error sent instead if the reply
/// could not be encoded. Always inlined: it is the whole reply path of a plain method.
#[inline(always)]
pub(crate) fn write_result<R: Reply>(
    out: &mut BytesMut,
    ctx: &Context,
    result: &Result<R, CallError>,
) -> Option<String> {
    let request = ctx.request();
    if request.is_oneway() {
        return None;
    }
    let serialize = request.serialize_type();
    let written = match result {
        // The common reply (no response metadata) through the codec's shortest path.
        Ok(reply) if !ctx.has_response_metadata() => {
            encode_plain_reply_with(out, request, 0, |buf| reply.encode(serialize, buf))
        }
        Ok(reply) => {
            let metadata = ctx.response_metadata();
            let pairs = metadata.iter().flat_map(|builder| builder.pairs());
            encode_reply_with(out, request, None, pairs, 0, |buf| {
                reply.encode(serialize, buf)
            })
        }
        Err(CallError::Decode(text)) => {
            write_error(out, request, text);
            return None;
        }
        Err(CallError::Deadline) => {
            write_error(out, request, DEADLINE_EXCEEDED);
            return None;
        }
        Err(CallError::Service(error)) => {
            let metadata = ctx.response_metadata();
            let pairs = metadata.iter().flat_map(|builder| builder.pairs());
            encode_reply_with(out, request, Some(error.text()), pairs, 0, |buf| {
                R::encode_zero(serialize, buf)
            })
        }
        Err(CallError::Panic(text)) => {
            let metadata = ctx.response_metadata();
            let pairs = metadata.iter().flat_map(|builder| builder.pairs());
            encode_reply_with(out, request, Some(text), pairs, 0, |buf| {
                R::encode_zero(serialize, buf)
            })
        }
    };
    match written {
        Ok(_) => None,
        Err(e) => {
            let text = e.to_string();
            write_error(out, request, &text);
            Some(text)
        }
    }
}

/// Writes a reply whose payload is already encoded (raw handlers, interceptors), with the
/// context's response metadata.
pub(crate) fn write_payload(
    out: &mut BytesMut,
    ctx: &Context,
    error: Option<&str>,
    payload: &[u8],
) {
    let request = ctx.request();
    if request.is_oneway() {
        return;
    }
    let metadata = ctx.response_metadata();
    let pairs = metadata.iter().flat_map(|builder| builder.pairs());
    let written = encode_reply_with(out, request, error, pairs, payload.len(), |buf| {
        buf.extend_from_slice(payload);
        Ok::<(), std::convert::Infallible>(())
    });
    if let Err(never) = written {
        match never {}
    }
}

/// Writes an error reply with an empty payload and no response metadata (routing and decoding
/// errors, rejections; Go's `handleError`). Nothing for oneway requests.
pub(crate) fn write_error(out: &mut BytesMut, request: &Message, text: &str) {
    if request.is_oneway() {
        return;
    }
    let written = encode_reply_with(out, request, Some(text), [], 0, |_| {
        Ok::<(), std::convert::Infallible>(())
    });
    if let Err(never) = written {
        match never {}
    }
}
