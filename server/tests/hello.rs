//! `Hello.Say`, rpcx-benchmark's method, over a socket: the request its Go client sends gets the
//! reply its Go server sends, byte for byte (the same hex as benches/peers/go-rpcx/hello_test.go).

mod common;

use common::TestServer;
use prost::Message as _;
use ringrpc_codec::{MessageStatus, SerializeType, ERROR_KEY};
use ringrpc_server::demo_hello::BenchmarkMessage;

/// rpcx-benchmark's request: `proto.PrepareArgs()` encoded by gogofaster, 581 bytes.
const REQUEST: &[&str] = &[
    "0a36e8aeb8e5a49ae5be80e4ba8be59ca8e79cbce5898de4b880e5b995e4b880e5b995efbc8ce58f98e79a84",
    "e982a3e9babce6a8a1e7b38a10a08d0618a08d062236e8aeb8e5a49ae5be80e4ba8be59ca8e79cbce5898de4",
    "b880e5b995e4b880e5b995efbc8ce58f98e79a84e982a3e9babce6a8a1e7b38a30a08d063a36e8aeb8e5a49a",
    "e5be80e4ba8be59ca8e79cbce5898de4b880e5b995e4b880e5b995efbc8ce58f98e79a84e982a3e9babce6a8",
    "a1e7b38a4a36e8aeb8e5a49ae5be80e4ba8be59ca8e79cbce5898de4b880e5b995e4b880e5b995efbc8ce58f",
    "98e79a84e982a3e9babce6a8a1e7b38a6001680170018001a08d06880101920136e8aeb8e5a49ae5be80e4ba",
    "8be59ca8e79cbce5898de4b880e5b995e4b880e5b995efbc8ce58f98e79a84e982a3e9babce6a8a1e7b38ab0",
    "01a08d06b801a08d06c00101c801a08d06e801a08d06f00101d80301e003a08d069804a08d06a004a08d06f0",
    "0401800501880501a006a08d06a806a08d06b20636e8aeb8e5a49ae5be80e4ba8be59ca8e79cbce5898de4b8",
    "80e5b995e4b880e5b995efbc8ce58f98e79a84e982a3e9babce6a8a1e7b38aba0636e8aeb8e5a49ae5be80e4",
    "ba8be59ca8e79cbce5898de4b880e5b995e4b880e5b995efbc8ce58f98e79a84e982a3e9babce6a8a1e7b38a",
    "c006a08d068008a08d068a0836e8aeb8e5a49ae5be80e4ba8be59ca8e79cbce5898de4b880e5b995e4b880e5",
    "b995efbc8ce58f98e79a84e982a3e9babce6a8a1e7b38a9008a08d069808a08d06b009a08d06f810a08d0680",
    "11a08d06c011a08d06",
];

/// The Go server's reply: the same message with field1 "OK" and field2 100.
const REPLY: &[&str] = &[
    "0a024f4b106418a08d062236e8aeb8e5a49ae5be80e4ba8be59ca8e79cbce5898de4b880e5b995e4b880e5b9",
    "95efbc8ce58f98e79a84e982a3e9babce6a8a1e7b38a30a08d063a36e8aeb8e5a49ae5be80e4ba8be59ca8e7",
    "9cbce5898de4b880e5b995e4b880e5b995efbc8ce58f98e79a84e982a3e9babce6a8a1e7b38a4a36e8aeb8e5",
    "a49ae5be80e4ba8be59ca8e79cbce5898de4b880e5b995e4b880e5b995efbc8ce58f98e79a84e982a3e9babc",
    "e6a8a1e7b38a6001680170018001a08d06880101920136e8aeb8e5a49ae5be80e4ba8be59ca8e79cbce5898d",
    "e4b880e5b995e4b880e5b995efbc8ce58f98e79a84e982a3e9babce6a8a1e7b38ab001a08d06b801a08d06c0",
    "0101c801a08d06e801a08d06f00101d80301e003a08d069804a08d06a004a08d06f00401800501880501a006",
    "a08d06a806a08d06b20636e8aeb8e5a49ae5be80e4ba8be59ca8e79cbce5898de4b880e5b995e4b880e5b995",
    "efbc8ce58f98e79a84e982a3e9babce6a8a1e7b38aba0636e8aeb8e5a49ae5be80e4ba8be59ca8e79cbce589",
    "8de4b880e5b995e4b880e5b995efbc8ce58f98e79a84e982a3e9babce6a8a1e7b38ac006a08d068008a08d06",
    "8a0836e8aeb8e5a49ae5be80e4ba8be59ca8e79cbce5898de4b880e5b995e4b880e5b995efbc8ce58f98e79a",
    "84e982a3e9babce6a8a1e7b38a9008a08d069808a08d06b009a08d06f810a08d068011a08d06c011a08d06",
];

fn unhex(chunks: &[&str]) -> Vec<u8> {
    let hex = chunks.concat();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn hello_say_replies_as_the_go_benchmark_server() {
    let request = unhex(REQUEST);
    assert_eq!(request.len(), 581);
    let server = TestServer::start(1);
    let mut client = server.connect();
    for seq in 1..=3 {
        let reply = client.call(seq, "Hello", "Say", SerializeType::Protobuf, &request);
        assert_eq!(reply.seq(), seq);
        assert_eq!(reply.header().status(), MessageStatus::Normal);
        assert_eq!(reply.serialize_type(), SerializeType::Protobuf);
        assert_eq!(reply.payload(), &unhex(REPLY)[..]);
        let message = BenchmarkMessage::decode(reply.payload()).unwrap();
        assert_eq!(message.field1, &b"OK"[..]);
        assert_eq!(message.field2, 100);
        assert_eq!(message.field3, 100_000);
        assert_eq!(message.field129.as_ref().map(|text| text.len()), Some(54));
    }
}

#[test]
fn hello_say_decodes_and_reencodes_the_benchmark_message_unchanged() {
    let request = unhex(REQUEST);
    let mut message = BenchmarkMessage::decode(&request[..]).unwrap();
    assert_eq!(message.encode_to_vec(), request);
    message.field1 = "OK".into();
    message.field2 = 100;
    assert_eq!(message.encode_to_vec(), unhex(REPLY));
}

/// gogofaster's Go code does not check that a string field is UTF-8, and neither do we: bytes
/// that are not come back unchanged.
#[test]
fn hello_say_returns_string_fields_that_are_not_utf8_unchanged() {
    let mut message = BenchmarkMessage::decode(&unhex(REQUEST)[..]).unwrap();
    message.field9 = Some(vec![0xff, 0xfe, b'x'].into());
    let request = message.encode_to_vec();
    message.field1 = "OK".into();
    message.field2 = 100;
    let server = TestServer::start(1);
    let mut client = server.connect();
    let reply = client.call(9, "Hello", "Say", SerializeType::Protobuf, &request);
    assert_eq!(reply.header().status(), MessageStatus::Normal);
    assert_eq!(reply.payload(), &message.encode_to_vec()[..]);
}

#[test]
fn hello_say_speaks_protobuf_only() {
    let server = TestServer::start(1);
    let mut client = server.connect();
    let reply = client.call(8, "Hello", "Say", SerializeType::Json, br#"{"field1":"x"}"#);
    assert_eq!(reply.header().status(), MessageStatus::Error);
    assert_eq!(
        reply.metadata().get_str(ERROR_KEY),
        Some("can not find codec for 1")
    );
}

#[test]
fn hello_say_refuses_a_payload_that_is_not_a_benchmark_message() {
    let server = TestServer::start(1);
    let mut client = server.connect();
    let reply = client.call(7, "Hello", "Say", SerializeType::Protobuf, &[0xff, 0xff]);
    assert_eq!(reply.seq(), 7);
    assert_eq!(reply.header().status(), MessageStatus::Error);
}
