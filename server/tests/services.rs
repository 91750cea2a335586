//! Routing, codecs, errors, panics, raw handlers, metadata and deadlines, as a Go client sees them.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{request, TestServer};
use ringrpc_codec::{
    compress::gzip, CompressType, Header, MessageStatus, SerializeType, ERROR_KEY,
};
use ringrpc_server::demo::{Arith, ArithArgs, ArithReply, Echo};
use ringrpc_server::{RegistrationError, ServerConfig, Service, ServiceError, ServiceTable};

fn error_text(msg: &ringrpc_codec::Message) -> String {
    assert_eq!(msg.header().status(), MessageStatus::Error);
    msg.metadata()
        .get_str(ERROR_KEY)
        .expect("__rpcx_error__ present")
        .to_string()
}

fn test_table() -> ServiceTable {
    let panicky = Service::new("Panic")
        .method("Now", |_, _: Bytes| -> Result<Bytes, ServiceError> {
            panic!("boom")
        })
        .async_method("Later", |_, _: Bytes| async move {
            monoio::time::sleep(Duration::from_millis(5)).await;
            if true {
                panic!("late boom");
            }
            Ok::<Bytes, ServiceError>(Bytes::new())
        });
    ServiceTable::builder()
        .service(Arith)
        .unwrap()
        .service(Echo)
        .unwrap()
        .service(panicky)
        .unwrap()
        .raw_handler("Raw", "Upper", |ctx, reply| {
            reply.write(ctx, &ctx.request().payload().to_ascii_uppercase());
            Ok(())
        })
        .unwrap()
        .raw_handler("Raw", "Fail", |_, _| Err(ServiceError::from("raw failure")))
        .unwrap()
        .raw_handler("Raw", "Twice", |ctx, reply| {
            reply.write(ctx, b"once");
            Err(ServiceError::from("after replying"))
        })
        .unwrap()
        // Raw handlers are looked up before services (spec 4.14).
        .raw_handler("Arith", "Add", |ctx, reply| {
            reply.write(ctx, b"raw wins");
            Ok(())
        })
        .unwrap()
        .build()
}

fn server() -> TestServer {
    TestServer::with(ServerConfig::default().threads(1), |_| Ok(test_table()))
}

#[test]
fn arith_over_json_msgpack_and_protobuf() {
    let server = server();
    let mut client = server.connect();
    let reply = client.call(1, "Arith", "Mul", SerializeType::Json, br#"{"A":7,"B":6}"#);
    assert_eq!(reply.payload(), br#"{"C":42}"#);

    let args = rmp_serde::to_vec_named(&serde_json::json!({"A": 7, "B": -6})).unwrap();
    let reply = client.call(2, "Arith", "Mul", SerializeType::MsgPack, &args);
    assert_eq!(reply.serialize_type(), SerializeType::MsgPack);
    let value: serde_json::Value = rmp_serde::from_slice(reply.payload()).unwrap();
    assert_eq!(value, serde_json::json!({"C": -42}));

    use prost::Message as _;
    let args = ArithArgs { a: 7, b: 5 }.encode_to_vec();
    let reply = client.call(3, "Arith", "Mul", SerializeType::Protobuf, &args);
    assert_eq!(ArithReply::decode(reply.payload()).unwrap().c, 35);
}

#[test]
fn json_fields_match_case_insensitively_like_go() {
    let server = server();
    let mut client = server.connect();
    let reply = client.call(
        1,
        "Arith",
        "Mul",
        SerializeType::Json,
        br#"{"a":3,"b":4,"extra":1}"#,
    );
    assert_eq!(reply.payload(), br#"{"C":12}"#);
}

#[test]
fn unknown_codec_gets_go_error_text() {
    let server = server();
    let mut client = server.connect();
    for ser in [4u8, 5, 15] {
        let reply = client.call(1, "Arith", "Mul", SerializeType::from_bits(ser), b"{}");
        assert_eq!(error_text(&reply), format!("can not find codec for {ser}"));
        assert!(reply.payload().is_empty());
    }
}

#[test]
fn routing_errors_have_go_texts() {
    let server = server();
    let mut client = server.connect();
    let reply = client.call(1, "Nope", "Mul", SerializeType::Json, b"{}");
    assert_eq!(error_text(&reply), "rpcx: can't find service Nope");
    let reply = client.call(2, "", "", SerializeType::Json, b"{}");
    assert_eq!(error_text(&reply), "rpcx: can't find service ");
    let reply = client.call(3, "Arith", "Pow", SerializeType::Json, b"{}");
    assert_eq!(error_text(&reply), "rpcx: can't find method Pow");
    assert_eq!(reply.service_method(), b"Pow");
    assert_eq!(reply.seq(), 3);
}

#[test]
fn service_error_still_carries_the_default_reply() {
    let server = server();
    let mut client = server.connect();
    let reply = client.call(7, "Arith", "Div", SerializeType::Json, br#"{"A":10,"B":0}"#);
    assert_eq!(error_text(&reply), "divide by zero");
    assert_eq!(reply.payload(), br#"{"C":0}"#);
    let reply = client.call(8, "Arith", "Div", SerializeType::Json, br#"{"A":10,"B":3}"#);
    assert_eq!(reply.payload(), br#"{"C":3}"#);
}

#[test]
fn bad_payload_gets_the_codec_error() {
    let server = server();
    let mut client = server.connect();
    let reply = client.call(1, "Arith", "Mul", SerializeType::Json, b"not json");
    assert!(!error_text(&reply).is_empty());
    assert!(reply.payload().is_empty());
}

#[test]
fn a_panicking_handler_gets_an_error_reply_and_the_connection_goes_on() {
    let server = server();
    let mut client = server.connect();
    let reply = client.call(1, "Panic", "Now", SerializeType::Raw, b"");
    let text = error_text(&reply);
    assert!(text.starts_with("[service internal error]: boom"), "{text}");
    assert!(text.contains("method: Now"), "{text}");
    let reply = client.call(2, "Panic", "Later", SerializeType::Raw, b"");
    assert!(error_text(&reply).contains("late boom"));
    let reply = client.call(3, "Echo", "Echo", SerializeType::Raw, b"after");
    assert_eq!(reply.payload(), b"after");
}

#[test]
fn raw_handlers_reply_once_and_come_first() {
    let server = server();
    let mut client = server.connect();
    let reply = client.call(1, "Raw", "Upper", SerializeType::Raw, b"abc");
    assert_eq!(reply.payload(), b"ABC");
    let reply = client.call(2, "Raw", "Fail", SerializeType::Raw, b"");
    assert_eq!(error_text(&reply), "raw failure");
    let reply = client.call(3, "Raw", "Twice", SerializeType::Raw, b"");
    assert_eq!(reply.payload(), b"once");
    // No second frame for seq 3 (Go's double-reply bug, spec 4.14).
    assert!(client.recv_within(Duration::from_millis(200)).is_none());
    let reply = client.call(4, "Arith", "Add", SerializeType::Json, br#"{"A":1,"B":2}"#);
    assert_eq!(reply.payload(), b"raw wins");
}

#[test]
fn metadata_goes_both_ways_and_is_not_echoed_by_default() {
    let server = server();
    let mut client = server.connect();
    client.send(&request(
        1,
        "Echo",
        "Echo",
        SerializeType::Raw,
        &[("trace", "abc"), ("k", "v")],
        b"x",
    ));
    let reply = client.recv();
    assert_eq!(reply.metadata().get_str("trace"), Some("abc"));
    assert_eq!(reply.metadata().get_str("k"), Some("v"));
    client.send(&request(
        2,
        "Arith",
        "Mul",
        SerializeType::Json,
        &[("k", "v")],
        br#"{"A":1,"B":1}"#,
    ));
    assert!(client.recv().metadata().is_empty());
}

#[test]
fn server_timeout_becomes_the_deadline() {
    let server = server();
    let mut client = server.connect();
    client.send(&request(
        1,
        "Echo",
        "Deadline",
        SerializeType::Raw,
        &[("__ServerTimeout", "5000")],
        b"",
    ));
    let left: u64 = std::str::from_utf8(client.recv().payload())
        .unwrap()
        .parse()
        .unwrap();
    assert!(left > 4000 && left <= 5000, "{left}");
    client.send(&request(
        2,
        "Echo",
        "Deadline",
        SerializeType::Raw,
        &[("__ServerTimeout", "soon")],
        b"",
    ));
    assert_eq!(client.recv().payload(), b"none");
    let reply = client.call(3, "Echo", "Deadline", SerializeType::Raw, b"");
    assert_eq!(reply.payload(), b"none");
}

#[test]
fn heartbeat_flagged_oneway_is_still_answered() {
    let server = server();
    let mut client = server.connect();
    let mut header = Header::new();
    header
        .set_heartbeat(true)
        .set_oneway(true)
        .set_seq(9)
        .set_serialize_type(SerializeType::MsgPack);
    let frame = common::frame(&header, "", "", &[], &[0xd3, 0, 0, 0, 0, 0, 0, 0, 1]);
    client.send(&frame);
    let reply = client.recv_bytes();
    let mut expected = frame.clone();
    expected[2] |= 0x80;
    assert_eq!(reply, expected);
}

#[test]
fn oneway_errors_and_oneway_calls_send_nothing() {
    let server = server();
    let mut client = server.connect();
    for (path, method) in [
        ("Nope", "X"),
        ("Arith", "Pow"),
        ("Arith", "Div"),
        ("Echo", "Sleep"),
    ] {
        let mut header = Header::new();
        header
            .set_oneway(true)
            .set_serialize_type(SerializeType::Json);
        client.send(&common::frame(
            &header,
            path,
            method,
            &[],
            br#"{"A":1,"B":0}"#,
        ));
    }
    assert!(client.recv_within(Duration::from_millis(300)).is_none());
    let reply = client.call(5, "Echo", "Echo", SerializeType::Raw, b"ok");
    assert_eq!(reply.seq(), 5);
}

#[test]
fn gzip_requests_of_any_size_are_accepted_and_small_replies_are_plain() {
    let server = server();
    let mut client = server.connect();
    let mut header = Header::new();
    header
        .set_compress_type(CompressType::Gzip)
        .set_serialize_type(SerializeType::Json);
    // rpcx-rs style: a tiny gzip payload.
    let mut frame = common::frame(
        &Header::new(),
        "Arith",
        "Mul",
        &[],
        &gzip(br#"{"A":2,"B":21}"#),
    );
    frame[2] = header.flags();
    frame[3] = header.serialize_byte();
    client.send(&frame);
    let reply = client.recv();
    assert_eq!(reply.header().compress_type(), CompressType::None);
    assert_eq!(reply.payload(), br#"{"C":42}"#);
}

#[test]
fn registration_errors_are_reported() {
    let err = ServiceTable::builder()
        .service(Service::new(""))
        .err()
        .unwrap();
    assert_eq!(err, RegistrationError::EmptyServiceName);
    let err = ServiceTable::builder()
        .service(Service::new("Empty"))
        .err()
        .unwrap();
    assert_eq!(err, RegistrationError::NoMethods("Empty".into()));
    let err = ServiceTable::builder()
        .service(Arith)
        .unwrap()
        .service(Arith)
        .err()
        .unwrap();
    assert_eq!(err, RegistrationError::DuplicateService("Arith".into()));
    let twice = Service::new("T")
        .method("M", |_, b: Bytes| Ok(b))
        .method("M", |_, b: Bytes| Ok(b));
    assert!(matches!(
        ServiceTable::builder().service(twice),
        Err(RegistrationError::DuplicateMethod { .. })
    ));
}

#[test]
fn the_epoll_driver_serves_the_same() {
    let config = ServerConfig::default()
        .threads(2)
        .io(ringrpc_server::IoDriver::Epoll);
    let server = TestServer::with(config, |_| Ok(test_table()));
    let mut clients: Vec<_> = (0..4).map(|_| server.connect()).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        client.send(&request(1, "Echo", "Sleep", SerializeType::Raw, &[], b"30"));
        let reply = client.call(2, "Arith", "Mul", SerializeType::Json, br#"{"A":6,"B":7}"#);
        assert_eq!(reply.payload(), br#"{"C":42}"#, "client {i}");
        assert_eq!(client.recv().payload(), b"30");
    }
}

#[test]
fn an_absurd_sleep_is_an_error_not_a_dead_worker() {
    let server = server();
    let mut client = server.connect();
    let reply = client.call(
        1,
        "Echo",
        "Sleep",
        SerializeType::Raw,
        b"18446744073709551615",
    );
    assert_eq!(error_text(&reply), "Echo.Sleep sleeps at most 3600000 ms");
    let reply = client.call(2, "Echo", "Sleep", SerializeType::Raw, b"not a number");
    assert!(error_text(&reply).contains("milliseconds"));
    let reply = client.call(3, "Echo", "Echo", SerializeType::Raw, b"alive");
    assert_eq!(reply.payload(), b"alive");
}
