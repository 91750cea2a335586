//! JSON-RPC 2.0 over HTTP (docs/protocol.md 4.18): a POST (any path) with `X-JSONRPC-2.0: true`
//! whose body is a request object; `method` is `Service.Method`, `params` the JSON payload. The
//! call goes through the same table as binary requests; `X-RPCX-Meta` and `Authorization` become
//! metadata and `__AUTH`.
//!
//! As Go: a request with `id` is answered with its `result` or an `error` (-32603 for every auth,
//! routing or service error, -32601 for a method without a dot, -32700 for unparsable JSON or a
//! `jsonrpc` other than "2.0"); one without `id` (a notification) runs without waiting and gets
//! an empty 200. Beyond Go: batches (an array of requests, answered with an array of the
//! responses, notifications left out; an empty array is -32600), -32602 instead of a crash for a
//! request or notification without usable `params`, and a real `Content-Type` header.

use std::net::SocketAddr;

use ringrpc_codec::{Limits, AUTH_KEY};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::gateway::X_META;
use super::request::RequestHead;
use super::response::Response;
use super::rpc_call::{self, RpcRequest};
use crate::service::ServiceTable;

/// The header that selects JSON-RPC (value `true`).
pub const X_JSONRPC: &str = "X-JSONRPC-2.0";

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;

/// One request object; `params` and `id` are kept as raw JSON (the payload, the echo).
#[derive(Deserialize)]
struct JsonRpcRequest<'a> {
    #[serde(default)]
    jsonrpc: Option<String>,
    method: String,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
}

/// Whether a request selects JSON-RPC.
pub fn selected(head: &RequestHead) -> bool {
    head.header_str(X_JSONRPC) == Some("true")
}

/// Serves one JSON-RPC HTTP request (a single call or a batch); the flag says whether the
/// connection must close after it (an interceptor rejected a call and closes: failed auth).
pub async fn handle(
    head: &RequestHead,
    body: &[u8],
    table: &ServiceTable,
    peer: SocketAddr,
    limits: &Limits,
) -> (Response, bool) {
    let caller = Caller {
        head,
        table,
        peer,
        limits,
    };
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let mut close = false;
    let json = if first == Some(&b'[') {
        match serde_json::from_slice::<Vec<&RawValue>>(body) {
            Err(e) => Some(error_object(None, PARSE_ERROR, &e.to_string())),
            Ok(items) if items.is_empty() => {
                Some(error_object(Some("null"), INVALID_REQUEST, "empty batch"))
            }
            Ok(items) => {
                let mut answers = Vec::new();
                for item in items {
                    // An element that is no request object is answered on its own, as
                    // JSON-RPC 2.0 section 6 asks, and does not spoil the batch.
                    let answer = match serde_json::from_str::<JsonRpcRequest>(item.get()) {
                        Ok(request) => caller.run(request, &mut close).await,
                        Err(e) => Some(error_object(Some("null"), INVALID_REQUEST, &e.to_string())),
                    };
                    answers.extend(answer);
                }
                (!answers.is_empty()).then(|| format!("[{}]", answers.join(",")))
            }
        }
    } else {
        match serde_json::from_slice::<JsonRpcRequest>(body) {
            Ok(request) => caller.run(request, &mut close).await,
            Err(e) => Some(error_object(None, PARSE_ERROR, &e.to_string())),
        }
    };
    let response = match json {
        Some(json) => Response::new(200)
            .header("Content-Type", "application/json")
            .body(json),
        // Only notifications: nothing to say (JSON-RPC 2.0 section 6; Go sends an empty 200).
        None => Response::new(200),
    };
    (response, close)
}

/// What every call of one HTTP request shares.
struct Caller<'a> {
    head: &'a RequestHead,
    table: &'a ServiceTable,
    peer: SocketAddr,
    limits: &'a Limits,
}

impl Caller<'_> {
    /// Runs one request object: its response object, or `None` for a notification.
    async fn run(&self, request: JsonRpcRequest<'_>, close: &mut bool) -> Option<String> {
        // `"id": null` is no id, as in Go (its pointer stays nil).
        let id = request.id.map(RawValue::get).filter(|id| *id != "null");
        if let Some(version) = request.jsonrpc.as_deref().filter(|v| *v != "2.0") {
            return Some(error_object(
                None,
                PARSE_ERROR,
                &format!("invalid RPC version {version}"),
            ));
        }
        let Some(dot) = request.method.rfind('.').filter(|&dot| dot > 0) else {
            return id.map(|id| {
                error_object(
                    Some(id),
                    METHOD_NOT_FOUND,
                    "must contains servicepath and method",
                )
            });
        };
        // Go dereferences a nil params here and crashes; answered -32602 instead, with a null id
        // for a notification (it has none to give).
        let Some(params) = request.params.map(RawValue::get).filter(|p| *p != "null") else {
            return Some(error_object(
                Some(id.unwrap_or("null")),
                INVALID_PARAMS,
                "invalid params: params is missing or null",
            ));
        };
        let rpc = RpcRequest {
            oneway: id.is_none(),
            serialize: 1, // JSON
            path: &request.method.as_bytes()[..dot],
            method: &request.method.as_bytes()[dot + 1..],
            metadata: self.metadata(),
            payload: params.as_bytes(),
            ..Default::default()
        };
        let message = match rpc_call::request_message(&rpc, self.limits) {
            Ok(message) => message,
            Err(e) => {
                return id.map(|id| error_object(Some(id), INTERNAL_ERROR, &e.to_string()));
            }
        };
        let Some(id) = id else {
            rpc_call::call_detached(self.table, self.peer, message);
            return None;
        };
        match rpc_call::call(self.table, self.peer, message).await {
            Err(e) => Some(error_object(Some(id), INTERNAL_ERROR, &e.to_string())),
            Ok(outcome) => {
                *close |= outcome.close;
                if let Some(text) = outcome.error() {
                    return Some(error_object(Some(id), INTERNAL_ERROR, &text));
                }
                let payload = outcome.reply.as_ref().map(|r| r.payload()).unwrap_or(b"");
                let result = match std::str::from_utf8(payload) {
                    Ok(text) if !text.trim().is_empty() => text,
                    _ => "null",
                };
                Some(format!(
                    r#"{{"jsonrpc":"2.0","result":{result},"id":{id}}}"#
                ))
            }
        }
    }

    /// `X-RPCX-Meta` (first value of each key) and `Authorization` as `__AUTH`.
    fn metadata(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut metadata: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        if let Some(meta) = self.head.header(X_META) {
            for (key, value) in form_urlencoded::parse(meta) {
                if !metadata.iter().any(|(k, _)| k == key.as_bytes()) {
                    metadata.push((
                        key.into_owned().into_bytes(),
                        value.into_owned().into_bytes(),
                    ));
                }
            }
        }
        if let Some(auth) = self.head.header("Authorization").filter(|v| !v.is_empty()) {
            metadata.retain(|(k, _)| k != AUTH_KEY.as_bytes());
            metadata.push((AUTH_KEY.as_bytes().to_vec(), auth.to_vec()));
        }
        metadata
    }
}

/// An error response object; `id: None` leaves the member out (Go does so for parse errors).
fn error_object(id: Option<&str>, code: i64, message: &str) -> String {
    let message = serde_json::to_string(message).unwrap_or_else(|_| "\"\"".into());
    let error = format!(r#""error":{{"code":{code},"message":{message},"data":null}}"#);
    match id {
        Some(id) => format!(r#"{{"jsonrpc":"2.0",{error},"id":{id}}}"#),
        None => format!(r#"{{"jsonrpc":"2.0",{error}}}"#),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_objects_are_go_shaped() {
        assert_eq!(
            error_object(Some("1"), INTERNAL_ERROR, "a \"b\""),
            r#"{"jsonrpc":"2.0","error":{"code":-32603,"message":"a \"b\"","data":null},"id":1}"#
        );
        assert_eq!(
            error_object(None, PARSE_ERROR, "x"),
            r#"{"jsonrpc":"2.0","error":{"code":-32700,"message":"x","data":null}}"#
        );
    }
}
