//! Auth over a socket (docs/protocol.md 4.11): a missing or wrong `__AUTH` token gets the hook's
//! message as an error reply and the connection closes; heartbeats need no token; the right token
//! is checked on every request.

mod common;

use std::time::Duration;

use common::{frame, request, Client, TestServer};
use ringrpc_codec::{Header, Message, MessageStatus, SerializeType, AUTH_KEY, ERROR_KEY};
use ringrpc_server::{auth_token, demo, Auth, ServerConfig, ServiceError};

const TOKEN: &str = "s3cret";

fn auth_server() -> TestServer {
    TestServer::with(ServerConfig::default().threads(1), |worker| {
        Ok(demo::demo_services(worker)?
            .interceptor(auth_token(TOKEN))
            .build())
    })
}

fn mul(seq: u64, metadata: &[(&str, &str)]) -> Vec<u8> {
    request(
        seq,
        "Arith",
        "Mul",
        SerializeType::Json,
        metadata,
        br#"{"A":6,"B":7}"#,
    )
}

/// The reply is Go's auth error: status Error, only `__rpcx_error__`, no payload.
fn assert_auth_error(reply: &Message, seq: u64, text: &str) {
    assert_eq!(reply.seq(), seq);
    assert_eq!(reply.header().status(), MessageStatus::Error);
    assert_eq!(reply.metadata().get_str(ERROR_KEY), Some(text));
    assert_eq!(reply.metadata().len(), 1, "only the error key");
    assert!(reply.payload().is_empty());
}

fn heartbeat(seq: u64) -> Vec<u8> {
    let mut header = Header::new();
    header
        .set_heartbeat(true)
        .set_seq(seq)
        .set_serialize_type(SerializeType::MsgPack);
    frame(&header, "", "", &[], &[0xd3, 0, 0, 0, 0, 0, 0, 0, 42])
}

#[test]
fn the_right_token_is_served_on_every_request() {
    let server = auth_server();
    let mut client = server.connect();
    for seq in 1..=3 {
        client.send(&mul(seq, &[(AUTH_KEY, TOKEN)]));
        let reply = client.recv();
        assert_eq!((reply.seq(), reply.payload()), (seq, &br#"{"C":42}"#[..]));
    }
    // Checked on every request, not once per connection: a later request without it fails.
    client.send(&mul(4, &[]));
    assert_auth_error(&client.recv(), 4, "invalid token");
    assert!(client.is_closed_within(Duration::from_secs(5)));
}

#[test]
fn a_missing_token_gets_the_error_then_the_connection_closes() {
    let server = auth_server();
    let mut client = server.connect();
    client.send(&mul(1, &[("other", "x")]));
    assert_auth_error(&client.recv(), 1, "invalid token");
    assert!(client.is_closed_within(Duration::from_secs(5)));
}

#[test]
fn a_wrong_token_gets_the_error_then_the_connection_closes() {
    let server = auth_server();
    let mut client = server.connect();
    client.send(&mul(9, &[(AUTH_KEY, "s3cre")]));
    assert_auth_error(&client.recv(), 9, "invalid token");
    assert!(client.is_closed_within(Duration::from_secs(5)));
    // Another connection is not affected.
    let mut other = server.connect();
    other.send(&mul(1, &[(AUTH_KEY, TOKEN)]));
    assert_eq!(other.recv().payload(), br#"{"C":42}"#);
}

#[test]
fn a_oneway_request_with_a_bad_token_gets_nothing_and_closes() {
    let server = auth_server();
    let mut client = server.connect();
    let mut header = Header::new();
    header
        .set_oneway(true)
        .set_seq(1)
        .set_serialize_type(SerializeType::Json);
    client.send(&frame(&header, "Arith", "Mul", &[], br#"{"A":1,"B":1}"#));
    assert!(client.recv_within(Duration::from_secs(5)).is_none());
    assert!(client.is_closed_within(Duration::from_secs(1)));
}

#[test]
fn heartbeats_need_no_token() {
    let server = auth_server();
    let mut client = server.connect();
    for seq in 1..=5 {
        client.send(&heartbeat(seq));
        let reply = client.recv();
        assert!(reply.is_heartbeat() && reply.header().is_response());
        assert_eq!(reply.header().status(), MessageStatus::Normal);
        assert_eq!(reply.seq(), seq);
    }
    // Still open and serving.
    client.send(&mul(6, &[(AUTH_KEY, TOKEN)]));
    assert_eq!(client.recv().payload(), br#"{"C":42}"#);
}

#[test]
fn the_hook_sees_the_request_and_its_message_reaches_the_client_unchanged() {
    let server = TestServer::with(ServerConfig::default().threads(1), |worker| {
        Ok(demo::demo_services(worker)?
            .interceptor(Auth::new(|ctx, token| {
                // Echo is public; Arith needs a token naming the service.
                match ctx.request().service_path() {
                    b"Echo" => Ok(()),
                    _ if token == "arith-user" => Ok(()),
                    _ => Err(ServiceError::from(format!(
                        "{{\"code\":401,\"token\":\"{token}\"}}"
                    ))),
                }
            }))
            .build())
    });
    let mut client = Client::connect(server.addr);
    let reply = client.call(1, "Echo", "Echo", SerializeType::Raw, b"open");
    assert_eq!(reply.payload(), b"open");
    client.send(&mul(2, &[(AUTH_KEY, "arith-user")]));
    assert_eq!(client.recv().payload(), br#"{"C":42}"#);
    client.send(&mul(3, &[(AUTH_KEY, "nobody")]));
    assert_auth_error(&client.recv(), 3, r#"{"code":401,"token":"nobody"}"#);
    assert!(client.is_closed_within(Duration::from_secs(5)));
}
