//! A blocking HTTP/1 test client over any stream (a socket, a TLS stream): writes raw request
//! bytes, reads whole responses (`Content-Length` bodies), so tests state the exact bytes.

use std::io::{Read, Write};

/// One response as read.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

/// Reads responses off a stream, keeping what follows them.
pub struct HttpConn<S> {
    pub stream: S,
    pub buf: Vec<u8>,
}

impl<S: Read + Write> HttpConn<S> {
    pub fn new(stream: S) -> Self {
        HttpConn {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
        self.stream.flush().unwrap();
    }

    /// The next response, or `None` if the stream closes (or times out) first.
    pub fn response(&mut self) -> Option<HttpResponse> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut parsed = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head_len) = parsed.parse(&self.buf).unwrap() {
                let status = parsed.code.unwrap();
                let headers: Vec<(String, String)> = parsed
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                let len: usize = headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    .map_or(0, |(_, v)| v.parse().unwrap());
                if self.buf.len() >= head_len + len {
                    let body = self.buf[head_len..head_len + len].to_vec();
                    self.buf.drain(..head_len + len);
                    return Some(HttpResponse {
                        status,
                        headers,
                        body,
                    });
                }
            }
            let mut chunk = [0u8; 16384];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Whether the stream reaches EOF (or a reset) before anything more arrives.
    pub fn is_closed(&mut self) -> bool {
        let mut chunk = [0u8; 1024];
        matches!(self.stream.read(&mut chunk), Ok(0) | Err(_))
    }
}

/// A gateway request: POST `path` with the `X-RPCX-*` headers given and `body`.
pub fn gateway_request(path: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut request = format!("POST {path} HTTP/1.1\r\nHost: test\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    request.into_bytes()
}

/// A JSON-RPC request with `body`.
pub fn jsonrpc_request(body: &str) -> Vec<u8> {
    gateway_request("/", &[("X-JSONRPC-2.0", "true")], body)
}

/// The headers of an `Arith.Mul` gateway call over JSON.
pub const MUL: [(&str, &str); 2] = [
    ("X-RPCX-SerializeType", "1"),
    ("X-RPCX-ServiceMethod", "Mul"),
];
