//! HTTP/1 on the binary port: one connection's loop of requests and responses, for everything
//! that is not a binary rpcx frame (docs/protocol.md 4.17, 4.18, 4.1 "Other modes").
//!
//! - [`request`]: the request head (`httparse`) and body (`Content-Length`, chunked);
//! - [`response`]: status line, headers, body;
//! - [`gateway`]: `X-RPCX-*` headers ↔ an rpcx call; [`jsonrpc`]: JSON-RPC 2.0 ↔ an rpcx call;
//! - [`rpc_call`]: the call itself, through the same [`ServiceTable`] as binary frames;
//! - [`connect`]: `CONNECT /_rpcx_`, after which the connection is handed back to carry frames.
//!
//! Requests are served in order, one at a time (HTTP/1 answers in request order); pipelined
//! requests already buffered are all answered before one write. Limits: the head is at most
//! [`ServerConfig::max_http_header_bytes`] and must arrive within
//! [`ServerConfig::http_header_timeout`] once started (431 / closed); a body is at most the frame
//! limit (413); the worker's sweeper applies the idle timeout between requests and the
//! frame-read timeout to a request that started and did not finish.

pub mod connect;
pub mod gateway;
pub mod jsonrpc;
pub mod request;
pub mod response;
pub mod rpc_call;

use std::net::SocketAddr;
use std::rc::Rc;

use bytes::{Buf, BytesMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};

use crate::config::ServerConfig;
use crate::limits::Reason;
use crate::runtime::{ConnectionEntry, WorkerState};
use crate::service::ServiceTable;
use request::{parse_head, take_body, RequestError, RequestHead};
use response::Response;

/// Bytes read at a time.
const READ_SIZE: usize = 4096;

/// How the HTTP part of a connection ended.
pub enum Ending<S> {
    /// Closed (by either side, or refused).
    Closed,
    /// `CONNECT /_rpcx_` was answered: the stream now carries rpcx frames, starting with
    /// `leftover` (bytes the client sent right after its request).
    Connect { stream: S, leftover: BytesMut },
}

/// What the HTTP loop needs of its connection.
pub struct HttpConnection<'a> {
    pub peer: SocketAddr,
    pub table: &'a ServiceTable,
    pub config: &'a ServerConfig,
    pub worker: &'a Rc<WorkerState>,
    pub entry: &'a ConnectionEntry,
}

impl HttpConnection<'_> {
    /// Serves HTTP requests on `stream`, whose first bytes (already read) are `input`, until the
    /// client closes, a request asks to close, a limit is hit, or CONNECT hands it over.
    pub async fn serve<S>(&self, mut stream: S, mut input: BytesMut) -> Ending<S>
    where
        S: AsyncReadRent + AsyncWriteRent,
    {
        let watch = &self.entry.watch;
        let max_body = self.config.limits.max_frame_len as usize;
        let mut out = BytesMut::new();
        // Set once a `100 Continue` went out for the request at the head of the input.
        let mut continued = false;
        // When the request at the head of the input started arriving (header timeout).
        let mut head_deadline: Option<monoio::time::Instant> = None;
        loop {
            // Answer every whole request buffered.
            let mut keep_open = true;
            let mut head_complete = true;
            while !input.is_empty() {
                let (head, head_len) = match parse_head(&input, self.config.max_http_header_bytes) {
                    Ok(Some(found)) => found,
                    Ok(None) => {
                        head_complete = false;
                        break;
                    }
                    Err(e) => {
                        self.refuse(&mut stream, out, &e).await;
                        return Ending::Closed;
                    }
                };
                let body = match take_body(&input[head_len..], head.framing, max_body) {
                    Ok(Some(body)) => body,
                    Ok(None) => {
                        if head.expects_continue && !continued {
                            out.extend_from_slice(response::CONTINUE);
                            continued = true;
                        }
                        break;
                    }
                    Err(e) => {
                        self.refuse(&mut stream, out, &e).await;
                        return Ending::Closed;
                    }
                };
                let (body, body_len) = body;
                input.advance(head_len + body_len);
                continued = false;
                head_deadline = None;
                watch.frame_done(); // limits: idle and frame-read clocks
                if connect::is_rpcx_connect(&head) {
                    out.extend_from_slice(connect::CONNECTED);
                    let (result, _) = stream.write_all(out).await;
                    return match result {
                        Ok(_) => Ending::Connect {
                            stream,
                            leftover: input,
                        },
                        Err(_) => Ending::Closed,
                    };
                }
                let (response, close) = self.respond(&head, &body).await;
                keep_open = head.keep_alive && !close;
                response.encode(&mut out, head.version, keep_open);
                if !keep_open {
                    break;
                }
            }
            watch.buffered(input.len()); // limits: frame-read clock for a partial request
            if !out.is_empty() {
                let len = out.len();
                watch.write_started(len, 0); // limits: write timeout
                let (result, mut written) = stream.write_all(out).await;
                watch.write_finished(0);
                if result.is_err() {
                    return Ending::Closed;
                }
                self.table.on_write(len);
                written.clear();
                out = written;
            }
            if !keep_open {
                let _ = stream.shutdown().await;
                return Ending::Closed;
            }

            // Read more. A request whose head is incomplete must finish it within the header
            // timeout; between requests, the sweeper's idle timeout applies.
            if !head_complete {
                if let Some(timeout) = self.config.http_header_timeout {
                    head_deadline.get_or_insert_with(|| monoio::time::Instant::now() + timeout);
                }
            }
            input.reserve(READ_SIZE);
            let read = stream.read(input.split_off(input.len()));
            let (result, more) = match head_deadline.filter(|_| !head_complete) {
                Some(deadline) => match monoio::time::timeout_at(deadline, read).await {
                    Ok(read) => read,
                    Err(_) => {
                        watch.refuse(Reason::HttpHeaderTimeout, None);
                        return Ending::Closed;
                    }
                },
                None => read.await,
            };
            self.entry.read_done(self.worker);
            match result {
                Ok(0) | Err(_) => return Ending::Closed,
                Ok(n) => {
                    self.table.on_read(n);
                    input.unsplit(more);
                }
            }
        }
    }

    /// Routes one whole request: CONNECT elsewhere than `/_rpcx_` is 404, `X-JSONRPC-2.0: true`
    /// is JSON-RPC (any method, any path, as Go), GET/POST/PUT the gateway, anything else 405.
    async fn respond(&self, head: &RequestHead, body: &[u8]) -> (Response, bool) {
        let limits = &self.config.limits;
        if head.method == "CONNECT" {
            return (Response::text(404, "404 page not found"), true);
        }
        if jsonrpc::selected(head) {
            return jsonrpc::handle(head, body, self.table, self.peer, limits).await;
        }
        match head.method.as_str() {
            "GET" | "POST" | "PUT" => {
                gateway::handle(head, body, self.table, self.peer, limits).await
            }
            _ => (
                Response::text(405, "Method Not Allowed").header("Allow", "GET, POST, PUT"),
                false,
            ),
        }
    }

    /// Answers a request that cannot be served with its status (after the responses before it),
    /// logs the refusal, and closes.
    async fn refuse<S: AsyncWriteRent>(
        &self,
        stream: &mut S,
        mut out: BytesMut,
        error: &RequestError,
    ) {
        let reason = match error {
            RequestError::HeadTooLarge { .. } | RequestError::BodyTooLarge { .. } => {
                Reason::HttpTooLarge
            }
            _ => Reason::Malformed,
        };
        self.entry.watch.refuse(reason, Some(error));
        Response::text(error.status(), &error.to_string()).encode(&mut out, 1, false);
        let _ = stream.write_all(out).await;
        let _ = stream.shutdown().await;
    }
}
