//! Auth: an [`Interceptor`] that hands every request and its `__AUTH` token to a check, Go's
//! `Server.AuthFunc` (docs/protocol.md 4.2 step 3, 4.11).
//!
//! - It runs on every request but heartbeats: the table answers heartbeats before any interceptor
//!   (spec 4.4), so a client without a token keeps its connection alive.
//! - A missing token is the empty string, as in Go.
//! - On failure, a non-oneway request gets an error reply whose `__rpcx_error__` is the check's
//!   message unchanged (empty payload, no metadata echoed), then the connection closes once the
//!   replies before it are written ([`Rejection::and_close`]); a oneway request gets nothing and the
//!   connection closes too. The Go client returns the text as a service error, which XClient does
//!   not retry.
//!
//! It does not cache a success per connection: Go checks every request, and so a token can be
//! revoked mid-connection.

use crate::interceptor::{Interceptor, Rejection};
use crate::service::ServiceError;
use crate::Context;
use ringrpc_codec::AUTH_KEY;

/// The text the demo server (and the Go peer) answers a bad token with.
pub const INVALID_TOKEN: &str = "invalid token";

/// Checks each request's `__AUTH` token with a function of the request and the token.
pub struct Auth<F> {
    check: F,
}

impl<F> Auth<F>
where
    F: Fn(&Context, &str) -> Result<(), ServiceError> + 'static,
{
    /// An auth interceptor calling `check(ctx, token)` for every non-heartbeat request; its error
    /// text is what the client reads.
    pub fn new(check: F) -> Self {
        Auth { check }
    }
}

/// Accepts exactly `token` and answers anything else with [`INVALID_TOKEN`] (the demo binary's
/// `--auth-token`).
pub fn auth_token(token: impl Into<String>) -> TokenAuth {
    TokenAuth {
        token: token.into().into_bytes().into_boxed_slice(),
    }
}

/// [`auth_token`]'s interceptor: compares the `__AUTH` bytes as they are on the wire, with no
/// UTF-8 check (which cost more than the comparison: ~60 instructions per request).
#[derive(Debug, Clone)]
pub struct TokenAuth {
    token: Box<[u8]>,
}

impl Interceptor for TokenAuth {
    fn inspects_results(&self) -> bool {
        false
    }

    #[inline]
    fn before_call(&self, ctx: &Context) -> Result<(), Rejection> {
        let given = ctx.metadata().get(AUTH_KEY).unwrap_or(b"");
        if constant_time_eq(given, &self.token) {
            Ok(())
        } else {
            Err(Rejection::new(INVALID_TOKEN).and_close())
        }
    }
}

/// Compares without stopping at the first difference, so the reply time does not tell a client
/// how much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl<F> Interceptor for Auth<F>
where
    F: Fn(&Context, &str) -> Result<(), ServiceError> + 'static,
{
    fn inspects_results(&self) -> bool {
        false
    }

    fn before_call(&self, ctx: &Context) -> Result<(), Rejection> {
        let token = ctx.metadata().get_str(AUTH_KEY).unwrap_or("");
        (self.check)(ctx, token).map_err(|error| Rejection::new(error).and_close())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison_needs_every_byte() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"secret"));
        assert!(constant_time_eq(b"", b""));
    }
}
