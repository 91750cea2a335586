//! Rate limits over a socket (docs/protocol.md 4.10, vector V7): a burst gets exactly the
//! bucket's worth of replies and Go's exact refusal for the rest, the connection stays open and
//! is served again once the bucket refills; oneway requests and heartbeats; the accept limit.

mod common;

use std::time::Duration;

use common::{frame, request, vectors, TestServer};
use ringrpc_codec::{Header, MessageStatus, SerializeType, ERROR_KEY};
use ringrpc_server::{demo, ConnectionRateLimit, RequestRateLimit, ServerConfig};

/// One worker with `rate` requests per second (so its bucket holds `rate` tokens).
fn limited(rate: f64) -> TestServer {
    TestServer::with(ServerConfig::default().threads(1), move |worker| {
        Ok(demo::demo_services(worker)?
            .interceptor(RequestRateLimit::per_second(rate, 1))
            .build())
    })
}

/// V7.req with its seq (bytes 4..12) replaced.
fn v7_request(seq: u64) -> Vec<u8> {
    let mut bytes = vectors()["V7.req"].clone();
    bytes[4..12].copy_from_slice(&seq.to_be_bytes());
    bytes
}

#[test]
fn a_burst_gets_exactly_the_bucket_and_gos_refusal_for_the_rest() {
    // 5 per second: one token every 200 ms, so a burst sent in one write sees no refill.
    let server = limited(5.0);
    let mut client = server.connect();
    let burst: Vec<u8> = (1..=40).flat_map(v7_request).collect();
    client.send(&burst);
    let golden_refusal = &vectors()["V7.res"];
    let (mut ok, mut refused) = (0, 0);
    for _ in 1..=40 {
        let reply = client.recv();
        match reply.header().status() {
            MessageStatus::Normal => {
                assert_eq!(reply.payload(), br#"{"C":200}"#);
                ok += 1;
            }
            MessageStatus::Error => {
                // Byte for byte Go's refusal (V7.res), but for the seq.
                let mut bytes = reply.frame().to_vec();
                bytes[4..12].copy_from_slice(&8u64.to_be_bytes());
                assert_eq!(&bytes, golden_refusal);
                refused += 1;
            }
            other => panic!("status {other:?}"),
        }
    }
    assert_eq!((ok, refused), (5, 35));
}

#[test]
fn the_connection_stays_open_and_is_served_after_a_refill() {
    let server = limited(5.0);
    let mut client = server.connect();
    let burst: Vec<u8> = (1..=10).flat_map(v7_request).collect();
    client.send(&burst);
    let refused = (0..10)
        .filter(|_| client.recv().header().status() == MessageStatus::Error)
        .count();
    assert_eq!(refused, 5);
    std::thread::sleep(Duration::from_millis(450)); // two tokens back
    client.send(&[v7_request(11), v7_request(12), v7_request(13)].concat());
    let statuses: Vec<_> = (0..3).map(|_| client.recv().header().status()).collect();
    assert_eq!(
        statuses,
        [
            MessageStatus::Normal,
            MessageStatus::Normal,
            MessageStatus::Error
        ]
    );
}

#[test]
fn oneway_requests_are_counted_but_never_answered_and_heartbeats_are_free() {
    let server = limited(2.0);
    let mut client = server.connect();
    let mut oneway = Header::new();
    oneway
        .set_oneway(true)
        .set_serialize_type(SerializeType::Json);
    let mut bytes = Vec::new();
    for seq in 1..=4 {
        oneway.set_seq(seq);
        bytes.extend(frame(&oneway, "Arith", "Mul", &[], br#"{"A":1,"B":1}"#));
    }
    // Heartbeats: answered whatever the bucket holds.
    let mut beat = Header::new();
    for seq in 5..=7 {
        beat.set_heartbeat(true).set_seq(seq);
        bytes.extend(frame(&beat, "", "", &[], b""));
    }
    bytes.extend(v7_request(8));
    client.send(&bytes);
    for seq in 5..=7 {
        let reply = client.recv();
        assert!(reply.is_heartbeat());
        assert_eq!(reply.seq(), seq);
    }
    // The two oneway requests took both tokens: the call is refused.
    let reply = client.recv();
    assert_eq!(reply.seq(), 8);
    assert_eq!(
        reply.metadata().get_str(ERROR_KEY),
        Some("request reached rate limit")
    );
    assert!(client.recv_within(Duration::from_millis(200)).is_none());
}

#[test]
fn connections_over_the_accept_rate_are_closed_at_once() {
    let server = TestServer::with(ServerConfig::default().threads(1), |worker| {
        Ok(demo::demo_services(worker)?
            .interceptor(ConnectionRateLimit::per_second(2.0, 1))
            .build())
    });
    let mut served = 0;
    let mut clients = Vec::new();
    for seq in 1..=5 {
        let mut client = server.connect();
        client.send(&request(
            seq,
            "Echo",
            "Echo",
            SerializeType::Raw,
            &[],
            b"hi",
        ));
        if client.recv_within(Duration::from_secs(5)).is_some() {
            served += 1;
        } else {
            assert!(client.is_closed_within(Duration::from_secs(1)));
        }
        clients.push(client);
    }
    assert_eq!(served, 2);
}
