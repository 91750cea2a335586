//! One rpcx call made on behalf of an HTTP request: the gateway's and JSON-RPC's requests become
//! an rpcx request frame, go through the worker's [`ServiceTable`] exactly as a binary frame does
//! (interceptors, auth, rate limits, routing, the same error texts), and the reply frame the
//! table writes is decoded back into a [`Message`] for the caller to map onto HTTP.
//!
//! One dispatch path for every protocol: this module knows frames, not HTTP.

use std::net::SocketAddr;

use bytes::BytesMut;
use ringrpc_codec::{
    encode_frame, CompressType, DecodeError, Header, Limits, Message, MessageStatus, MessageType,
    SerializeType, ERROR_KEY,
};

use crate::service::{Dispatch, ServiceTable};

/// What an rpcx request is made of, as HTTP delivered it.
#[derive(Debug, Default)]
pub struct RpcRequest<'a> {
    pub seq: u64,
    pub heartbeat: bool,
    pub oneway: bool,
    /// Serialize type bits (0..=15).
    pub serialize: u8,
    /// Compress type bits; gzip means the payload arrives compressed (and is inflated, within the
    /// decompression limit, as a binary frame's would be).
    pub compress: u8,
    pub path: &'a [u8],
    pub method: &'a [u8],
    pub metadata: Vec<(Vec<u8>, Vec<u8>)>,
    pub payload: &'a [u8],
}

/// How a call ended.
#[derive(Debug)]
pub struct RpcOutcome {
    /// The reply frame; `None` for a oneway request.
    pub reply: Option<Message>,
    /// An interceptor rejected the call and asked for the connection to close (failed auth).
    pub close: bool,
}

impl RpcOutcome {
    /// The reply's `__rpcx_error__` text if it is an error reply.
    pub fn error(&self) -> Option<String> {
        let reply = self.reply.as_ref()?;
        if reply.header().status() != MessageStatus::Error {
            return None;
        }
        let text = reply.metadata().get(ERROR_KEY).unwrap_or_default();
        Some(String::from_utf8_lossy(text).into_owned())
    }
}

/// Encodes `request` as a frame and decodes it under `limits`, as the binary path would: a frame
/// the binary path would refuse (a bad gzip payload, too many metadata pairs) is refused here too.
pub fn request_message(request: &RpcRequest<'_>, limits: &Limits) -> Result<Message, DecodeError> {
    let mut header = Header::new();
    header
        .set_message_type(MessageType::Request)
        .set_heartbeat(request.heartbeat)
        .set_oneway(request.oneway)
        .set_serialize_type(SerializeType::from_bits(request.serialize))
        .set_seq(request.seq);
    let mut frame = BytesMut::new();
    let pairs = request
        .metadata
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()));
    encode_frame(
        &mut frame,
        &header,
        request.path,
        request.method,
        pairs,
        request.payload,
    );
    // The payload was written as it came; the compress bits say how it came.
    if let Some(header) = Header::view_mut(&mut frame) {
        header.set_compress_type(CompressType::from_bits(request.compress));
    }
    Message::parse(frame.freeze(), limits)
}

/// Runs `request` through `table` and waits for its reply.
pub async fn call(
    table: &ServiceTable,
    peer: SocketAddr,
    request: Message,
) -> Result<RpcOutcome, DecodeError> {
    let mut out = BytesMut::new();
    let close = match table.dispatch(request, peer, &mut out) {
        Dispatch::Done => false,
        Dispatch::Close => true,
        Dispatch::Pending(reply) => {
            if let Some(frame) = reply.await {
                out = frame;
            }
            false
        }
    };
    let reply = if out.is_empty() {
        None
    } else {
        // Our own table wrote it: one whole frame, within no limit but its own.
        Some(Message::parse(out.freeze(), &Limits::unlimited())?)
    };
    Ok(RpcOutcome { reply, close })
}

/// Runs a notification: an inline method runs now, an async one as a task of its own (its reply,
/// which a oneway request does not have, is dropped), so the HTTP answer does not wait for it.
pub fn call_detached(table: &ServiceTable, peer: SocketAddr, request: Message) {
    let mut out = BytesMut::new();
    if let Dispatch::Pending(reply) = table.dispatch(request, peer, &mut out) {
        monoio::spawn(async move {
            let _ = reply.await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_becomes_the_frame_a_client_would_send() {
        let request = RpcRequest {
            seq: 7,
            oneway: true,
            serialize: 1,
            path: b"Arith",
            method: b"Mul",
            metadata: vec![(b"k".to_vec(), b"v".to_vec())],
            payload: br#"{"A":2,"B":3}"#,
            ..Default::default()
        };
        let message = request_message(&request, &Limits::default()).unwrap();
        assert_eq!(message.seq(), 7);
        assert!(message.is_oneway());
        assert_eq!(message.serialize_type(), SerializeType::Json);
        assert_eq!(message.service_path(), b"Arith");
        assert_eq!(message.service_method(), b"Mul");
        assert_eq!(message.metadata().get("k"), Some(&b"v"[..]));
        assert_eq!(message.payload(), br#"{"A":2,"B":3}"#);
    }

    #[test]
    fn a_gzip_body_that_is_not_gzip_is_refused_like_a_frame() {
        let request = RpcRequest {
            compress: 1,
            path: b"A",
            method: b"B",
            payload: b"not gzip",
            ..Default::default()
        };
        assert!(request_message(&request, &Limits::default()).is_err());
    }
}
