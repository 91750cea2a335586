//! Which protocol a new connection speaks, told from its first bytes before anything is read
//! (docs/protocol.md 4.1: Go's cmux does the same on the same port).
//!
//! - `0x08` (the rpcx magic): the binary protocol, the common case, decided on the first byte;
//! - `0x16` (a TLS handshake record) when TLS is configured: TLS, sniffed again inside;
//! - an HTTP method name followed by a space: HTTP/1 (gateway, JSON-RPC, CONNECT);
//! - anything else: handed to the binary path, which logs and closes it as a malformed frame,
//!   exactly as before sniffing existed.
//!
//! The bytes are looked at with `recv(MSG_PEEK)`: nothing is consumed, so the binary path starts
//! from the socket as it did before, and its per-request cost does not change (one peek per
//! connection, none per request). It does not parse HTTP; [`crate::http`] does.

use std::os::fd::AsRawFd;

/// The protocols served on the binary port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// rpcx frames (or bytes that are nothing else: the frame decoder refuses them).
    Binary,
    /// HTTP/1: the gateway, JSON-RPC 2.0 or CONNECT.
    Http,
    /// A TLS client hello.
    Tls,
}

/// The first byte of a TLS record carrying a handshake message.
pub const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Methods routed to HTTP: the gateway's GET, POST and PUT, JSON-RPC's any, CONNECT, and the
/// others so that they get a proper 405 rather than a closed socket.
const HTTP_METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"HEAD ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"TRACE ",
    b"CONNECT ",
];

/// Bytes enough to see the longest method name and its space.
pub const SNIFF_LEN: usize = 8;

/// Tells the protocol from the first bytes received (`first` is never empty). A short start
/// that could still become a method name counts as HTTP; the HTTP parser refuses it if not.
pub fn sniff(first: &[u8], tls_enabled: bool) -> Protocol {
    match first.first() {
        Some(&ringrpc_codec::MAGIC) | None => Protocol::Binary,
        Some(&TLS_HANDSHAKE_RECORD) if tls_enabled => Protocol::Tls,
        Some(_) => {
            let http = HTTP_METHODS.iter().any(|method| {
                let n = first.len().min(method.len());
                first[..n] == method[..n]
            });
            if http {
                Protocol::Http
            } else {
                Protocol::Binary
            }
        }
    }
}

/// Peeks at the first bytes of a socket that is readable, without consuming them; sniffs them.
/// A failed peek counts as binary: the binary path then meets the same error and closes.
pub fn sniff_socket(socket: &impl AsRawFd, tls_enabled: bool) -> Protocol {
    let mut first = [0u8; SNIFF_LEN];
    // SAFETY: recv(2) writes at most `first.len()` bytes into `first`, a live local array, and
    // keeps no pointer to it; the fd is the caller's open socket.
    let n = unsafe {
        libc::recv(
            socket.as_raw_fd(),
            first.as_mut_ptr().cast(),
            first.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n <= 0 {
        return Protocol::Binary;
    }
    sniff(&first[..n as usize], tls_enabled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_magic_byte_is_binary_whatever_follows() {
        assert_eq!(sniff(&[0x08], true), Protocol::Binary);
        assert_eq!(sniff(b"\x08GET ", true), Protocol::Binary);
    }

    #[test]
    fn method_names_are_http_even_when_cut_short() {
        for start in [
            &b"GET /"[..],
            b"POST /Arith",
            b"CONNECT ",
            b"PUT",
            b"G",
            b"OPTIONS",
        ] {
            assert_eq!(sniff(start, false), Protocol::Http, "{start:?}");
        }
    }

    #[test]
    fn other_bytes_go_to_the_binary_path_to_be_refused() {
        for start in [&b"HELLO"[..], b"GETX", b"get /", b"\x00", b"\xff\xff"] {
            assert_eq!(sniff(start, false), Protocol::Binary, "{start:?}");
        }
    }

    #[test]
    fn a_tls_hello_is_tls_only_when_tls_is_configured() {
        assert_eq!(sniff(&[0x16, 0x03, 0x01], true), Protocol::Tls);
        assert_eq!(sniff(&[0x16, 0x03, 0x01], false), Protocol::Binary);
    }
}
