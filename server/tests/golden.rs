//! The golden request vectors replayed over a socket give the golden replies byte for byte
//! (gzip ones compared after decompression), on one connection and pipelined.

mod common;

use std::time::Duration;

use common::{vectors, TestServer};
use ringrpc_codec::{CompressType, Decoder, Limits};

#[test]
fn golden_requests_get_golden_replies() {
    let server = TestServer::start(1);
    let v = vectors();
    for name in ["V1", "V2", "V4", "V4b", "V5b", "V6"] {
        let mut client = server.connect();
        client.send(&v[&format!("{name}.req")]);
        assert_eq!(client.recv_bytes(), v[&format!("{name}.res")], "{name}");
    }
}

#[test]
fn gzip_echo_is_compressed_again_above_1024_bytes() {
    let server = TestServer::start(1);
    let v = vectors();
    let mut client = server.connect();
    client.send(&v["V5.req"]);
    let reply = client.recv();
    let golden = Decoder::new(Limits::default())
        .decode(&mut bytes::BytesMut::from(&v["V5.res"][..]))
        .unwrap()
        .unwrap();
    assert_eq!(reply.frame()[..4], v["V5.res"][..4]);
    assert_eq!(reply.header().compress_type(), CompressType::Gzip);
    assert_eq!(reply.seq(), 6);
    assert_eq!(reply.payload(), golden.payload());
    assert_eq!(reply.payload().len(), 2048);
}

#[test]
fn oneway_request_gets_no_reply() {
    let server = TestServer::start(1);
    let v = vectors();
    let mut client = server.connect();
    client.send(&v["V3.req"]);
    assert!(client.recv_within(Duration::from_millis(300)).is_none());
    // The connection still serves.
    client.send(&v["V1.req"]);
    assert_eq!(client.recv_bytes(), v["V1.res"]);
}

#[test]
fn all_vectors_pipelined_on_one_connection() {
    let server = TestServer::start(1);
    let v = vectors();
    let mut client = server.connect();
    let mut burst = Vec::new();
    for name in ["V1", "V2", "V3", "V4", "V4b", "V5b", "V6"] {
        burst.extend_from_slice(&v[&format!("{name}.req")]);
    }
    client.send(&burst);
    // Plain methods reply inline, in order; the oneway V3 gets nothing.
    for name in ["V1", "V2", "V4", "V4b", "V5b", "V6"] {
        assert_eq!(client.recv_bytes(), v[&format!("{name}.res")], "{name}");
    }
}
