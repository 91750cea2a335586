//! `#[service]` end to end over a socket: every supported method shape (plain and async, with and
//! without the context, the payload owned or borrowed), renamed and skipped methods, and each
//! codec (JSON, MsgPack, Protobuf, raw) through the same typed method.

mod common;

use std::cell::Cell;
use std::time::Duration;

use bytes::Bytes;
use common::TestServer;
use prost::Message as _;
use ringrpc_codec::{CompressType, Header, MessageStatus, SerializeType, ERROR_KEY};
use ringrpc_server::demo::{ArithArgs, ArithReply};
use ringrpc_server::{service, Context, ServerConfig, ServiceError, ServiceTable};

/// A service with every shape the macro takes.
struct Shapes {
    prefix: &'static str,
    calls: Cell<u64>,
}

/// An error type of the user's own, turned into the client's error text by `Into`.
struct Refused(&'static str);

impl From<Refused> for ServiceError {
    fn from(refused: Refused) -> Self {
        ServiceError::from(format!("refused: {}", refused.0))
    }
}

#[service(name = "Shapes")]
impl Shapes {
    /// Not an rpc method: associated functions are left alone.
    pub fn new() -> Self {
        Shapes {
            prefix: "hello ",
            calls: Cell::new(0),
        }
    }

    /// Plain, no context, typed over every codec.
    pub fn mul(&self, args: ArithArgs) -> Result<ArithReply, ServiceError> {
        Ok(ArithReply { c: args.a * args.b })
    }

    /// Plain, with context, raw; uses `&self` state.
    pub fn greet(&self, ctx: &Context, name: Bytes) -> Result<Bytes, ServiceError> {
        self.calls.set(self.calls.get() + 1);
        // A skipped method is still an ordinary method the rpc ones can call.
        ctx.set_response_metadata("calls", self.internal().to_string());
        Ok(Bytes::from(format!(
            "{}{}",
            self.prefix,
            String::from_utf8_lossy(&name)
        )))
    }

    /// Async, no context.
    pub async fn later(&self, payload: Bytes) -> Result<Bytes, ServiceError> {
        monoio::time::sleep(Duration::from_millis(5)).await;
        Ok(payload)
    }

    /// Async, with context (held across the await).
    pub async fn later_seq(&self, ctx: &Context, _: Bytes) -> Result<Bytes, ServiceError> {
        monoio::time::sleep(Duration::from_millis(5)).await;
        Ok(Bytes::from(ctx.seq().to_string()))
    }

    /// Plain, the payload borrowed, the reply a slice of it.
    pub fn tail<'a>(&self, payload: &'a [u8]) -> Result<&'a [u8], ServiceError> {
        payload
            .get(1..)
            .ok_or_else(|| ServiceError::from("empty payload"))
    }

    /// Plain, the payload borrowed and the context, a typed reply.
    pub fn length(&self, ctx: &Context, payload: &[u8]) -> Result<ArithReply, ServiceError> {
        ctx.set_response_metadata("seq", ctx.seq().to_string());
        Ok(ArithReply {
            c: payload.len() as i64,
        })
    }

    /// Plain, the payload borrowed, and it panics.
    pub fn boom(&self, _: &[u8]) -> Result<&'static [u8], ServiceError> {
        panic!("boom")
    }

    /// Renamed, with the user's own error type.
    #[rpc(name = "refuse_always")]
    pub fn refuse(&self, _: Bytes) -> Result<Bytes, Refused> {
        Err(Refused("always"))
    }

    /// Left out on purpose.
    #[rpc(skip)]
    pub fn internal(&self) -> u64 {
        self.calls.get()
    }

    /// Private: never an rpc method.
    #[allow(dead_code)]
    fn helper(&self) {}
}

fn server() -> TestServer {
    TestServer::with(ServerConfig::default().threads(1), |_| {
        Ok(ServiceTable::builder().service(Shapes::new())?.build())
    })
}

fn error_text(msg: &ringrpc_codec::Message) -> String {
    assert_eq!(msg.header().status(), MessageStatus::Error);
    msg.metadata().get_str(ERROR_KEY).unwrap().to_string()
}

#[test]
fn a_typed_method_answers_over_json_msgpack_and_protobuf() {
    let server = server();
    let mut client = server.connect();
    let reply = client.call(1, "Shapes", "Mul", SerializeType::Json, br#"{"A":6,"B":7}"#);
    assert_eq!(reply.payload(), br#"{"C":42}"#);

    let args = rmp_serde::to_vec_named(&serde_json::json!({"A": 3, "B": 5})).unwrap();
    let reply = client.call(2, "Shapes", "Mul", SerializeType::MsgPack, &args);
    let value: serde_json::Value = rmp_serde::from_slice(reply.payload()).unwrap();
    assert_eq!(value, serde_json::json!({"C": 15}));

    let args = ArithArgs { a: 4, b: 5 }.encode_to_vec();
    let reply = client.call(3, "Shapes", "Mul", SerializeType::Protobuf, &args);
    assert_eq!(ArithReply::decode(reply.payload()).unwrap().c, 20);
}

#[test]
fn a_raw_method_with_context_keeps_per_core_state() {
    let server = server();
    let mut client = server.connect();
    for n in 1..=3 {
        let reply = client.call(n, "Shapes", "Greet", SerializeType::Raw, b"go");
        assert_eq!(reply.payload(), b"hello go");
        assert_eq!(
            reply.metadata().get_str("calls"),
            Some(n.to_string().as_str())
        );
    }
}

#[test]
fn async_methods_with_and_without_context() {
    let server = server();
    let mut client = server.connect();
    let reply = client.call(7, "Shapes", "Later", SerializeType::Raw, b"x");
    assert_eq!(reply.payload(), b"x");
    let reply = client.call(41, "Shapes", "LaterSeq", SerializeType::Raw, b"");
    assert_eq!(reply.payload(), b"41");
}

#[test]
fn methods_borrowing_the_payload_reply_with_a_slice_of_it_or_a_typed_value() {
    let server = server();
    let mut client = server.connect();
    let reply = client.call(1, "Shapes", "Tail", SerializeType::Raw, b"xyz");
    assert_eq!(reply.payload(), b"yz");
    // An error: the text, and the empty raw payload (as a `Bytes` reply's zero value).
    let reply = client.call(2, "Shapes", "Tail", SerializeType::Raw, b"");
    assert_eq!(error_text(&reply), "empty payload");
    assert_eq!(reply.payload(), b"");
    // Any serialize type is taken as is, as for a `Bytes` argument.
    let reply = client.call(3, "Shapes", "Tail", SerializeType::Json, b"\"q\"");
    assert_eq!(reply.payload(), b"q\"");
    // A typed reply, encoded with the request's serialize type; the context is there.
    let reply = client.call(4, "Shapes", "Length", SerializeType::Json, b"12345");
    assert_eq!(reply.payload(), br#"{"C":5}"#);
    assert_eq!(reply.metadata().get_str("seq"), Some("4"));
    let reply = client.call(5, "Shapes", "Boom", SerializeType::Raw, b"x");
    assert_eq!(
        error_text(&reply),
        "[service internal error]: boom, method: Boom"
    );
    // The connection goes on after the panic.
    let reply = client.call(6, "Shapes", "Tail", SerializeType::Raw, b"ok");
    assert_eq!(reply.payload(), b"k");
}

#[test]
fn a_borrowed_payload_is_the_decompressed_one() {
    let server = server();
    let mut client = server.connect();
    let payload: Vec<u8> = (0..4000u32).map(|i| (i % 251) as u8).collect();
    let mut header = Header::new();
    header
        .set_seq(9)
        .set_compress_type(CompressType::Gzip)
        .set_serialize_type(SerializeType::Raw);
    // (The frame writer compresses the payload, as the header says.)
    let frame = common::frame(&header, "Shapes", "Tail", &[], &payload);
    assert!(frame.len() < payload.len(), "the request went compressed");
    client.send(&frame);
    let reply = client.recv();
    // Over 1024 bytes: the reply is compressed like the request (the client decompresses it).
    assert_eq!(reply.header().compress_type(), CompressType::Gzip);
    assert_eq!(reply.payload(), &payload[1..]);
}

#[test]
fn renamed_skipped_and_private_methods() {
    let server = server();
    let mut client = server.connect();
    let reply = client.call(1, "Shapes", "refuse_always", SerializeType::Raw, b"");
    assert_eq!(error_text(&reply), "refused: always");
    for missing in ["Refuse", "Internal", "Helper", "New"] {
        let reply = client.call(2, "Shapes", missing, SerializeType::Raw, b"");
        assert_eq!(
            error_text(&reply),
            format!("rpcx: can't find method {missing}")
        );
    }
}

#[test]
fn a_failed_typed_call_sends_the_zero_reply() {
    // Go sends the zero value of the reply type with an error (spec 4.7): derived, not written.
    let server = TestServer::with(ServerConfig::default().threads(1), |_| {
        Ok(ServiceTable::builder()
            .service(ringrpc_server::demo::Arith)?
            .build())
    });
    let mut client = server.connect();
    let reply = client.call(1, "Arith", "Div", SerializeType::Json, br#"{"A":1,"B":0}"#);
    assert_eq!(error_text(&reply), "divide by zero");
    assert_eq!(reply.payload(), br#"{"C":0}"#);
}
