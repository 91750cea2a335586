//! The HTTP gateway (docs/protocol.md 4.17): a GET, POST or PUT whose `X-RPCX-*` headers name a
//! service, a method and a codec, with the payload as its body, becomes an rpcx call through the
//! same table as binary requests; its reply becomes the response's `X-RPCX-*` headers and body.
//!
//! Statuses as Go's: 200 on success; 200 with `X-RPCX-MessageStatusType: Error` and
//! `X-RPCX-ErrorMessage` when a required header is missing or unparsable; 401 when an interceptor
//! rejects the call and closes (failed auth); 500 with the two error headers and an empty body on
//! any other error reply (routing, service, rate limit). Unlike Go, a gzip `X-RPCX-CompressType`
//! means the body is gzip (Go only set the bits and handed the compressed bytes to the codec),
//! and the reply body is always sent inflated.

use std::net::SocketAddr;

use ringrpc_codec::{Limits, AUTH_KEY};

use super::request::RequestHead;
use super::response::Response;
use super::rpc_call::{self, RpcRequest};
use crate::service::ServiceTable;

pub const X_VERSION: &str = "X-RPCX-Version";
pub const X_MESSAGE_ID: &str = "X-RPCX-MessageID";
/// Go's server constant.
pub const X_MESSAGE_TYPE: &str = "X-RPCX-MessageType";
/// What Go's client sends for it (misspelt in rpcx's client package): accepted too.
pub const X_MESSAGE_TYPE_GO_CLIENT: &str = "X-RPCX-MesssageType";
pub const X_HEARTBEAT: &str = "X-RPCX-Heartbeat";
pub const X_ONEWAY: &str = "X-RPCX-Oneway";
pub const X_MESSAGE_STATUS_TYPE: &str = "X-RPCX-MessageStatusType";
pub const X_SERIALIZE_TYPE: &str = "X-RPCX-SerializeType";
pub const X_COMPRESS_TYPE: &str = "X-RPCX-CompressType";
pub const X_SERVICE_PATH: &str = "X-RPCX-ServicePath";
pub const X_SERVICE_METHOD: &str = "X-RPCX-ServiceMethod";
pub const X_META: &str = "X-RPCX-Meta";
pub const X_ERROR_MESSAGE: &str = "X-RPCX-ErrorMessage";

/// Why a gateway request could not become an rpcx request: answered 200 with error headers.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Go's text for a bad number (`strconv.ParseUint`/`strconv.Atoi`).
    #[error("strconv.{func}: parsing {value:?}: invalid syntax")]
    BadNumber { func: &'static str, value: String },
    #[error("{header} {value} is out of range")]
    OutOfRange { header: &'static str, value: u64 },
    #[error("empty servicepath")]
    EmptyServicePath,
    #[error("empty servicemethod")]
    EmptyServiceMethod,
    #[error("empty serialized type")]
    EmptySerializeType,
    #[error("{0}")]
    Frame(#[from] ringrpc_codec::DecodeError),
}

/// Serves one gateway request; the flag says whether the connection must close after it.
pub async fn handle(
    head: &RequestHead,
    body: &[u8],
    table: &ServiceTable,
    peer: SocketAddr,
    limits: &Limits,
) -> (Response, bool) {
    let path = match head.header_str(X_SERVICE_PATH) {
        Some(path) => path.to_string(),
        None => head.path().trim_start_matches('/').to_string(),
    };
    let method = head.header_str(X_SERVICE_METHOD).unwrap_or("");
    let serialize = head.header_str(X_SERIALIZE_TYPE).unwrap_or("");
    // Echoed whatever happens, as Go does.
    let mut response = Response::new(200)
        .header(X_VERSION, head.header_str(X_VERSION).unwrap_or(""))
        .header(X_MESSAGE_ID, head.header_str(X_MESSAGE_ID).unwrap_or(""))
        .header(X_SERVICE_PATH, path.as_str())
        .header(X_SERVICE_METHOD, method)
        .header(X_SERIALIZE_TYPE, serialize);
    let message = match rpc_request(head, &path, method, serialize, body)
        .and_then(|request| Ok(rpc_call::request_message(&request, limits)?))
    {
        Ok(message) => message,
        Err(e) => {
            response = response
                .header(X_MESSAGE_STATUS_TYPE, "Error")
                .header(X_ERROR_MESSAGE, e.to_string());
            return (response, false);
        }
    };
    let outcome = match rpc_call::call(table, peer, message).await {
        Ok(outcome) => outcome,
        Err(e) => return (Response::text(500, &e.to_string()), false),
    };
    if let Some(text) = outcome.error() {
        response.status = if outcome.close { 401 } else { 500 };
        response = response
            .header(X_MESSAGE_STATUS_TYPE, "Error")
            .header(X_ERROR_MESSAGE, text);
        return (response, outcome.close);
    }
    let Some(reply) = outcome.reply else {
        // Oneway: nothing came back (Go answers 200 with an empty body too).
        return (response.header(X_META, ""), outcome.close);
    };
    let mut meta: Vec<(&[u8], &[u8])> = reply.metadata().iter().collect();
    // Go's url.Values.Encode sorts by key.
    meta.sort_by(|a, b| a.0.cmp(b.0));
    let mut encoded = form_urlencoded::Serializer::new(String::new());
    for (key, value) in meta {
        encoded.append_pair(
            &String::from_utf8_lossy(key),
            &String::from_utf8_lossy(value),
        );
    }
    response = response
        .header(X_META, encoded.finish())
        .body(reply.payload().to_vec());
    (response, outcome.close)
}

/// The rpcx request the headers describe (Go's `HTTPRequest2RpcxRequest`, then the gateway's
/// checks for path, method and serialize type, in Go's order).
fn rpc_request<'a>(
    head: &RequestHead,
    path: &'a str,
    method: &'a str,
    serialize: &str,
    body: &'a [u8],
) -> Result<RpcRequest<'a>, GatewayError> {
    let mut request = RpcRequest {
        path: path.as_bytes(),
        method: method.as_bytes(),
        payload: body,
        ..Default::default()
    };
    if let Some(seq) = head.header_str(X_MESSAGE_ID).filter(|v| !v.is_empty()) {
        request.seq = seq.parse().map_err(|_| GatewayError::BadNumber {
            func: "ParseUint",
            value: seq.to_string(),
        })?;
    }
    // The message type is not read by Go: every gateway message is a request. Either spelling
    // is accepted and ignored.
    let _ = (
        head.header(X_MESSAGE_TYPE),
        head.header(X_MESSAGE_TYPE_GO_CLIENT),
    );
    request.heartbeat = head.header(X_HEARTBEAT).is_some_and(|v| !v.is_empty());
    request.oneway = head.header(X_ONEWAY).is_some_and(|v| !v.is_empty());
    if !serialize.is_empty() {
        request.serialize = small_number(serialize, X_SERIALIZE_TYPE, 15)?;
    }
    if let Some(compress) = head.header_str(X_COMPRESS_TYPE).filter(|v| !v.is_empty()) {
        request.compress = small_number(compress, X_COMPRESS_TYPE, 7)?;
    }
    if let Some(meta) = head.header(X_META).filter(|v| !v.is_empty()) {
        // Go keeps the first value of each key.
        for (key, value) in form_urlencoded::parse(meta) {
            if !request.metadata.iter().any(|(k, _)| k == key.as_bytes()) {
                request.metadata.push((
                    key.into_owned().into_bytes(),
                    value.into_owned().into_bytes(),
                ));
            }
        }
    }
    if let Some(auth) = head.header("Authorization").filter(|v| !v.is_empty()) {
        let auth_key = AUTH_KEY.as_bytes();
        request.metadata.retain(|(k, _)| k != auth_key);
        request.metadata.push((auth_key.to_vec(), auth.to_vec()));
    }
    if path.is_empty() {
        return Err(GatewayError::EmptyServicePath);
    }
    if method.is_empty() {
        return Err(GatewayError::EmptyServiceMethod);
    }
    if serialize.is_empty() {
        return Err(GatewayError::EmptySerializeType);
    }
    Ok(request)
}

/// A decimal header value that must fit in `max` (the bits the frame has for it).
fn small_number(value: &str, header: &'static str, max: u8) -> Result<u8, GatewayError> {
    let n: u64 = value.parse().map_err(|_| GatewayError::BadNumber {
        func: "Atoi",
        value: value.to_string(),
    })?;
    if n > max as u64 {
        return Err(GatewayError::OutOfRange { header, value: n });
    }
    Ok(n as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::parse_head;

    fn head(headers: &str) -> RequestHead {
        let text = format!("POST /Arith HTTP/1.1\r\n{headers}\r\n");
        parse_head(text.as_bytes(), 1 << 16).unwrap().unwrap().0
    }

    #[test]
    fn headers_become_frame_fields() {
        let head = head(
            "X-RPCX-MessageID: 12\r\nX-RPCX-SerializeType: 1\r\nX-RPCX-ServiceMethod: Mul\r\n\
             X-RPCX-Meta: a=1&a=2&b=x%20y\r\nAuthorization: tok\r\nX-RPCX-Oneway: true\r\n",
        );
        let request = rpc_request(&head, "Arith", "Mul", "1", b"{}").unwrap();
        assert_eq!(request.seq, 12);
        assert_eq!(request.serialize, 1);
        assert!(request.oneway && !request.heartbeat);
        assert_eq!(
            request.metadata,
            vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"b".to_vec(), b"x y".to_vec()),
                (b"__AUTH".to_vec(), b"tok".to_vec())
            ]
        );
    }

    #[test]
    fn missing_or_bad_headers_are_named_as_go_names_them() {
        let h = head("");
        assert_eq!(
            rpc_request(&h, "", "Mul", "1", b"")
                .unwrap_err()
                .to_string(),
            "empty servicepath"
        );
        assert_eq!(
            rpc_request(&h, "Arith", "", "1", b"")
                .unwrap_err()
                .to_string(),
            "empty servicemethod"
        );
        assert_eq!(
            rpc_request(&h, "Arith", "Mul", "", b"")
                .unwrap_err()
                .to_string(),
            "empty serialized type"
        );
        let h = head("X-RPCX-MessageID: x1\r\n");
        assert_eq!(
            rpc_request(&h, "Arith", "Mul", "1", b"")
                .unwrap_err()
                .to_string(),
            "strconv.ParseUint: parsing \"x1\": invalid syntax"
        );
    }
}
