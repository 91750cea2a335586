//! TLS on the binary port, end to end, with a rustls client trusting the test certificate
//! (tests/data): binary frames, the gateway and JSON-RPC inside TLS, a client sending garbage
//! after the handshake, a stalled handshake, and plain clients on the same port.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::http::{gateway_request, jsonrpc_request, HttpConn, MUL};
use common::TestServer;
use ringrpc_codec::{Decoder, Limits, SerializeType};
use ringrpc_server::{demo, Reason, ServerConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn data(file: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(file)
}

fn tls_server(config: ServerConfig) -> TestServer {
    let tls = ringrpc_server::tls::load_pem(&data("test-cert.pem"), &data("test-key.pem")).unwrap();
    TestServer::with(config.threads(1).tls(tls), demo::demo_table)
}

fn tls_connect(server: &TestServer) -> TlsStream {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(data("test-ca.pem")).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let socket = TcpStream::connect(server.addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    rustls::StreamOwned::new(connection, socket)
}

/// Reads one whole frame off a TLS stream.
fn recv_frame(stream: &mut TlsStream, buf: &mut bytes::BytesMut) -> ringrpc_codec::Message {
    let decoder = Decoder::new(Limits::unlimited());
    loop {
        if let Some(message) = decoder.decode(buf).unwrap() {
            return message;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "closed before a reply");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Whether one refusal of `reason` is counted within a second.
fn counted(server: &TestServer, reason: Reason) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while server.refusals().get(reason) != 1 {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

#[test]
fn binary_frames_inside_tls() {
    let server = tls_server(ServerConfig::default());
    let mut stream = tls_connect(&server);
    let mut buf = bytes::BytesMut::new();
    for seq in 0..5u64 {
        let payload = format!("hello {seq}");
        let frame = common::request(
            seq,
            "Echo",
            "Echo",
            SerializeType::Raw,
            &[],
            payload.as_bytes(),
        );
        stream.write_all(&frame).unwrap();
        let reply = recv_frame(&mut stream, &mut buf);
        assert_eq!((reply.seq(), reply.payload()), (seq, payload.as_bytes()));
    }
    // A large one, across many TLS records.
    let big = vec![7u8; 300_000];
    let frame = common::request(9, "Echo", "Echo", SerializeType::Raw, &[], &big);
    stream.write_all(&frame).unwrap();
    assert_eq!(recv_frame(&mut stream, &mut buf).payload(), &big[..]);
}

#[test]
fn gateway_and_jsonrpc_inside_tls() {
    let server = tls_server(ServerConfig::default());
    let mut conn = HttpConn::new(tls_connect(&server));
    conn.send(&gateway_request("/Arith", &MUL, r#"{"A":6,"B":7}"#));
    let res = conn.response().unwrap();
    assert_eq!((res.status, res.body_text()), (200, r#"{"C":42}"#));
    conn.send(&jsonrpc_request(
        r#"{"jsonrpc":"2.0","method":"Arith.Add","params":{"A":6,"B":7},"id":1}"#,
    ));
    assert_eq!(
        conn.response().unwrap().body_text(),
        r#"{"jsonrpc":"2.0","result":{"C":13},"id":1}"#
    );
}

#[test]
fn connect_inside_tls_switches_to_frames() {
    let server = tls_server(ServerConfig::default());
    let mut stream = tls_connect(&server);
    stream.write_all(b"CONNECT /_rpcx_ HTTP/1.0\n\n").unwrap();
    let mut answer = vec![0u8; ringrpc_server::http::connect::CONNECTED.len()];
    stream.read_exact(&mut answer).unwrap();
    assert_eq!(answer, ringrpc_server::http::connect::CONNECTED);
    let frame = common::request(3, "Echo", "Echo", SerializeType::Raw, &[], b"via connect");
    stream.write_all(&frame).unwrap();
    let mut buf = bytes::BytesMut::new();
    assert_eq!(recv_frame(&mut stream, &mut buf).payload(), b"via connect");
}

#[test]
fn garbage_after_the_handshake_is_closed_and_logged() {
    let server = tls_server(ServerConfig::default());
    let mut stream = tls_connect(&server);
    stream
        .write_all(b"\x00\x01garbage that is no protocol")
        .unwrap();
    let mut rest = Vec::new();
    // EOF (close_notify or a plain close): either ends the read without data.
    let _ = stream.read_to_end(&mut rest);
    assert!(rest.is_empty());
    assert!(counted(&server, Reason::Malformed));
    // The server is fine.
    assert_eq!(
        server.connect().echo(1, b"still here").payload(),
        b"still here"
    );
}

#[test]
fn a_stalled_handshake_times_out() {
    let server =
        tls_server(ServerConfig::default().tls_handshake_timeout(Duration::from_millis(300)));
    let mut socket = TcpStream::connect(server.addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // The start of a client hello record, then nothing.
    socket.write_all(&[0x16, 0x03, 0x01, 0x00, 0x80]).unwrap();
    let start = std::time::Instant::now();
    let mut chunk = [0u8; 64];
    assert!(matches!(socket.read(&mut chunk), Ok(0) | Err(_)));
    assert!(start.elapsed() < Duration::from_secs(4));
    // The socket closes as the handshake is dropped, just before the refusal is counted.
    assert!(counted(&server, Reason::TlsHandshake));
}

#[test]
fn plain_binary_clients_share_the_port_with_tls() {
    let server = tls_server(ServerConfig::default());
    let mut tls = tls_connect(&server);
    let mut plain = server.connect();
    let mut buf = bytes::BytesMut::new();
    for seq in 0..3u64 {
        assert_eq!(plain.echo(seq, b"plain").payload(), b"plain");
        let frame = common::request(seq, "Echo", "Echo", SerializeType::Raw, &[], b"tls");
        tls.write_all(&frame).unwrap();
        assert_eq!(recv_frame(&mut tls, &mut buf).payload(), b"tls");
    }
}

#[test]
fn a_tls_only_server_refuses_plain_clients_and_serves_tls() {
    let server = tls_server(ServerConfig::default().tls_only(true));
    // Plain binary rpcx: closed without a reply, counted.
    let mut plain = TcpStream::connect(server.addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let frame = common::request(1, "Echo", "Echo", SerializeType::Raw, &[], b"clear");
    plain.write_all(&frame).unwrap();
    let mut rest = Vec::new();
    let _ = plain.read_to_end(&mut rest);
    assert!(rest.is_empty(), "a plain client got bytes back: {rest:?}");
    assert!(counted(&server, Reason::PlainRefused));
    // Plain HTTP: closed too.
    let mut http = TcpStream::connect(server.addr).unwrap();
    http.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut rest = Vec::new();
    let _ = http.read_to_end(&mut rest);
    assert!(rest.is_empty(), "a plain HTTP client got an answer");
    // TLS still served.
    let mut tls = tls_connect(&server);
    let mut buf = bytes::BytesMut::new();
    let frame = common::request(2, "Echo", "Echo", SerializeType::Raw, &[], b"sealed");
    tls.write_all(&frame).unwrap();
    assert_eq!(recv_frame(&mut tls, &mut buf).payload(), b"sealed");
}
