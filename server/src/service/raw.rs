//! Raw handlers (Go's `AddHandler`, docs/protocol.md 4.14): a function that takes the whole
//! request and writes its own reply through [`RawReply`], at most once (Go can reply twice,
//! spec 9.6; ringrpc cannot).

use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::BytesMut;

use crate::service::reply::{write_error, write_payload};
use crate::service::{panic_text, ServiceError};
use crate::Context;

pub(crate) type RawFn = dyn Fn(&Context, RawReply<'_>) -> Result<(), ServiceError>;

/// A raw handler's reply: written at most once, either a payload or an error (Go's
/// `Context.Write` / `WriteError`).
pub struct RawReply<'a> {
    out: &'a mut BytesMut,
    replied: &'a mut bool,
}

impl RawReply<'_> {
    /// Replies with `payload` (compressed above 1024 bytes if the request was) and the context's
    /// response metadata.
    pub fn write(self, ctx: &Context, payload: &[u8]) {
        *self.replied = true;
        write_payload(self.out, ctx, None, payload);
    }

    /// Replies with an error and an empty payload.
    pub fn write_error(self, ctx: &Context, text: &str) {
        *self.replied = true;
        write_error(self.out, ctx.request(), text);
    }
}

/// Runs a raw handler: an error (or a panic) before it replied is sent as the error reply; after a
/// reply it is only logged. Returns the error text sent, if any.
pub(crate) fn run_raw(handler: &RawFn, ctx: &Context, out: &mut BytesMut) -> Option<String> {
    let mut replied = false;
    let reply = RawReply {
        out,
        replied: &mut replied,
    };
    let text = match catch_unwind(AssertUnwindSafe(|| handler(ctx, reply))) {
        Ok(Ok(())) => return None,
        Ok(Err(error)) => error.to_string(),
        Err(panic) => panic_text(&*panic).into_owned(),
    };
    if replied {
        tracing::warn!(seq = ctx.seq(), "raw handler failed after replying: {text}");
        None
    } else {
        write_error(out, ctx.request(), &text);
        Some(text)
    }
}
