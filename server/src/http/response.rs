//! An HTTP/1 response and its encoding into the connection's output buffer: status line,
//! headers, `Content-Length` (always: no chunked responses), the body. No IO here.

use bytes::{BufMut, BytesMut};

/// A response about to be written.
#[derive(Debug, Default)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16) -> Self {
        Response {
            status,
            ..Default::default()
        }
    }

    /// Adds a header; CR and LF in the value (an error text, say) become spaces, so no value
    /// can start a header of its own.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        let mut value = value.into();
        if value.contains(['\r', '\n']) {
            value = value.replace(['\r', '\n'], " ");
        }
        self.headers.push((name, value));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// A plain-text error response, as Go's `http.Error` writes it.
    pub fn text(status: u16, text: &str) -> Self {
        Response::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(format!("{text}\n"))
    }

    /// Appends the response to `out` for a client of HTTP/1.`version`; `keep_alive` says whether
    /// the connection stays open after it.
    pub fn encode(&self, out: &mut BytesMut, version: u8, keep_alive: bool) {
        out.reserve(128 + self.body.len() + self.headers.len() * 48);
        out.put_slice(if version == 0 {
            b"HTTP/1.0 "
        } else {
            b"HTTP/1.1 "
        });
        put_decimal(out, self.status as u64);
        out.put_u8(b' ');
        out.put_slice(reason(self.status).as_bytes());
        out.put_slice(b"\r\n");
        for (name, value) in &self.headers {
            out.put_slice(name.as_bytes());
            out.put_slice(b": ");
            out.put_slice(value.as_bytes());
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"Content-Length: ");
        put_decimal(out, self.body.len() as u64);
        out.put_slice(b"\r\n");
        match (keep_alive, version) {
            (false, _) => out.put_slice(b"Connection: close\r\n"),
            (true, 0) => out.put_slice(b"Connection: keep-alive\r\n"),
            (true, _) => {}
        }
        out.put_slice(b"\r\n");
        out.put_slice(&self.body);
    }
}

/// The `100 Continue` interim response a client sending `Expect: 100-continue` waits for.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

fn put_decimal(out: &mut BytesMut, n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[at..]);
}

/// The reason phrase of the statuses this server sends.
fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_has_its_length_and_connection_headers() {
        let mut out = BytesMut::new();
        Response::new(200)
            .header("X-A", "b\r\nInjected: yes")
            .body("hi")
            .encode(&mut out, 1, false);
        assert_eq!(
            &out[..],
            b"HTTP/1.1 200 OK\r\nX-A: b  Injected: yes\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
        );
    }
}
