//! One HTTP/1 request taken off the connection's input: [`parse_head`] reads the request line and
//! headers (with `httparse`), [`take_body`] the body that follows (`Content-Length` or chunked),
//! each returning `Ok(None)` while incomplete, like the frame decoder. No IO here.

use bytes::Bytes;

/// Headers a request may carry at most (more is answered 431, as too large).
const MAX_HEADERS: usize = 100;

/// Why a request cannot be served; each answers with its own status, then the connection closes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("malformed request head: {0}")]
    Malformed(httparse::Error),
    #[error("request line and headers over {max} bytes")]
    HeadTooLarge { max: usize },
    #[error("request body of at least {len} bytes over the limit of {max}")]
    BodyTooLarge { len: u64, max: usize },
    #[error("bad Content-Length")]
    BadContentLength,
    #[error("unsupported Transfer-Encoding (only chunked is)")]
    UnsupportedTransferEncoding,
    #[error("malformed chunked body")]
    BadChunk,
}

impl RequestError {
    /// The status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            RequestError::HeadTooLarge { .. } => 431,
            RequestError::BodyTooLarge { .. } => 413,
            RequestError::UnsupportedTransferEncoding => 501,
            _ => 400,
        }
    }
}

/// How the body of a request is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    Length(u64),
    Chunked,
}

/// A request line and its headers, copied out of the input buffer.
#[derive(Debug)]
pub struct RequestHead {
    pub method: String,
    /// The request target as sent (path and query).
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// Names as sent (HTTP names are case-insensitive: look them up with [`RequestHead::header`]).
    headers: Vec<(String, Bytes)>,
    pub framing: BodyFraming,
    /// The connection stays open after the response (HTTP/1.1 unless `Connection: close`;
    /// HTTP/1.0 only with `Connection: keep-alive`).
    pub keep_alive: bool,
    /// `Expect: 100-continue`: the client waits for a `100 Continue` before sending the body.
    pub expects_continue: bool,
}

impl RequestHead {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| &v[..])
    }

    /// The first value of header `name` if it is UTF-8, with surrounding blanks trimmed.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name)
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::trim)
    }

    /// The path of the target, without its query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

/// Parses a request head from the start of `input`: the head and its length in bytes, or `None`
/// while it is incomplete (and under `max_head` bytes).
pub fn parse_head(
    input: &[u8],
    max_head: usize,
) -> Result<Option<(RequestHead, usize)>, RequestError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let head_len = match request.parse(input) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if input.len() > max_head => {
            return Err(RequestError::HeadTooLarge { max: max_head })
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(RequestError::HeadTooLarge { max: max_head })
        }
        Err(e) => return Err(RequestError::Malformed(e)),
    };
    if head_len > max_head {
        return Err(RequestError::HeadTooLarge { max: max_head });
    }
    let version = request.version.unwrap_or(1);
    let mut framing = BodyFraming::Length(0);
    let mut connection_close = version == 0;
    let mut expects_continue = false;
    let mut length: Option<u64> = None;
    let mut owned = Vec::with_capacity(request.headers.len());
    for header in request.headers.iter() {
        let value = header.value;
        if header.name.eq_ignore_ascii_case("content-length") {
            let parsed = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or(RequestError::BadContentLength)?;
            // Two different lengths are a smuggling attempt (RFC 9112 6.3).
            if length.is_some_and(|l| l != parsed) {
                return Err(RequestError::BadContentLength);
            }
            length = Some(parsed);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            if !value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Err(RequestError::UnsupportedTransferEncoding);
            }
            framing = BodyFraming::Chunked;
        } else if header.name.eq_ignore_ascii_case("connection") {
            let value = value.trim_ascii();
            if value.eq_ignore_ascii_case(b"close") {
                connection_close = true;
            } else if value.eq_ignore_ascii_case(b"keep-alive") {
                connection_close = false;
            }
        } else if header.name.eq_ignore_ascii_case("expect") {
            expects_continue = value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        }
        owned.push((header.name.to_string(), Bytes::copy_from_slice(value)));
    }
    if framing != BodyFraming::Chunked {
        framing = BodyFraming::Length(length.unwrap_or(0));
    } else if length.is_some() {
        // RFC 9112 6.1: both present is a smuggling attempt; refuse rather than guess.
        return Err(RequestError::BadContentLength);
    }
    let head = RequestHead {
        method: request.method.unwrap_or("").to_string(),
        target: request.path.unwrap_or("").to_string(),
        version,
        headers: owned,
        framing,
        keep_alive: !connection_close,
        expects_continue,
    };
    Ok(Some((head, head_len)))
}

/// Takes the body framed by `framing` from the start of `input`: the body and the bytes it took,
/// or `None` while it is incomplete. A body over `max` bytes is refused as soon as that is known.
pub fn take_body(
    input: &[u8],
    framing: BodyFraming,
    max: usize,
) -> Result<Option<(Bytes, usize)>, RequestError> {
    match framing {
        BodyFraming::Length(len) => {
            if len > max as u64 {
                return Err(RequestError::BodyTooLarge { len, max });
            }
            let len = len as usize;
            Ok((input.len() >= len).then(|| (Bytes::copy_from_slice(&input[..len]), len)))
        }
        BodyFraming::Chunked => take_chunked(input, max),
    }
}

/// Decodes a whole chunked body (RFC 9112 7.1), trailers skipped.
fn take_chunked(input: &[u8], max: usize) -> Result<Option<(Bytes, usize)>, RequestError> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let (size_len, size) = match httparse::parse_chunk_size(&input[at..]) {
            Ok(httparse::Status::Complete(found)) => found,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(RequestError::BadChunk),
        };
        at += size_len;
        if size == 0 {
            // The last chunk: trailer fields (ignored), then an empty line.
            let mut trailers = [httparse::EMPTY_HEADER; 16];
            return match httparse::parse_headers(&input[at..], &mut trailers) {
                Ok(httparse::Status::Complete((n, _))) => Ok(Some((body.into(), at + n))),
                Ok(httparse::Status::Partial) => Ok(None),
                Err(_) => Err(RequestError::BadChunk),
            };
        }
        let total = body.len() as u64 + size;
        if total > max as u64 {
            return Err(RequestError::BodyTooLarge { len: total, max });
        }
        let size = size as usize;
        if input.len() < at + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&input[at..at + size]);
        if &input[at + size..at + size + 2] != b"\r\n" {
            return Err(RequestError::BadChunk);
        }
        at += size + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_parsed_once_whole() {
        let input = b"POST /Arith HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
        assert!(parse_head(&input[..20], 1024).unwrap().is_none());
        let (head, len) = parse_head(input, 1024).unwrap().unwrap();
        assert_eq!(head.method, "POST");
        assert_eq!(head.path(), "/Arith");
        assert_eq!(head.framing, BodyFraming::Length(3));
        assert!(head.keep_alive);
        assert_eq!(head.header("content-LENGTH"), Some(&b"3"[..]));
        let (body, used) = take_body(&input[len..], head.framing, 10).unwrap().unwrap();
        assert_eq!((&body[..], used), (&b"abc"[..], 3));
    }

    #[test]
    fn http_1_0_closes_unless_asked_to_keep_alive() {
        let (head, _) = parse_head(b"GET / HTTP/1.0\r\n\r\n", 1024)
            .unwrap()
            .unwrap();
        assert!(!head.keep_alive);
        let (head, _) = parse_head(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 1024)
            .unwrap()
            .unwrap();
        assert!(head.keep_alive);
    }

    #[test]
    fn go_clients_connect_line_with_bare_newlines_parses() {
        let (head, len) = parse_head(b"CONNECT /_rpcx_ HTTP/1.0\n\n\x08", 1024)
            .unwrap()
            .unwrap();
        assert_eq!(
            (head.method.as_str(), head.path(), len),
            ("CONNECT", "/_rpcx_", 26)
        );
    }

    #[test]
    fn oversize_heads_and_bodies_are_refused() {
        let long = format!("GET / HTTP/1.1\r\nX-A: {}\r\n", "a".repeat(2000));
        assert_eq!(
            parse_head(long.as_bytes(), 1024).unwrap_err(),
            RequestError::HeadTooLarge { max: 1024 }
        );
        assert_eq!(
            take_body(b"", BodyFraming::Length(11), 10)
                .unwrap_err()
                .status(),
            413
        );
        assert_eq!(
            take_body(b"b\r\nhello world\r\n0\r\n\r\n", BodyFraming::Chunked, 10)
                .unwrap_err()
                .status(),
            413
        );
    }

    #[test]
    fn chunked_bodies_are_joined_and_trailers_skipped() {
        let input = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for cut in 0..input.len() - 4 {
            assert!(take_body(&input[..cut], BodyFraming::Chunked, 100)
                .unwrap()
                .is_none());
        }
        let (body, used) = take_body(input, BodyFraming::Chunked, 100)
            .unwrap()
            .unwrap();
        assert_eq!(&body[..], b"hello world");
        assert_eq!(&input[used..], b"NEXT");
    }

    #[test]
    fn both_length_and_chunked_is_refused() {
        let input = b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parse_head(input, 1024).unwrap_err().status(), 400);
    }
}
