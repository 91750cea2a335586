//! Server push over a socket (docs/protocol.md 4.16): `Push.Subscribe` pushes Go's frame (golden
//! V3.push but for the seq) ahead of its reply; code on the core finds a connection by peer
//! address; a push to a connection that has gone is an error, not a panic.

mod common;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::{vectors, TestServer};
use ringrpc_codec::{MessageStatus, SerializeType, ERROR_KEY};
use ringrpc_server::{demo, push, Context, Pusher, ServerConfig, Service, ServiceError};

#[test]
fn subscribe_pushes_gos_frame_before_its_reply() {
    let server = TestServer::with(ServerConfig::default().threads(1), demo::demo_table);
    let mut client = server.connect();
    let mut seqs = Vec::new();
    for seq in 1..=3 {
        client.send(&common::request(
            seq,
            "Push",
            "Subscribe",
            SerializeType::Raw,
            &[],
            b"hello",
        ));
        let pushed = client.recv();
        assert!(!pushed.header().is_response() && pushed.is_oneway() && !pushed.is_heartbeat());
        let mut bytes = pushed.frame().to_vec();
        bytes[4..12].copy_from_slice(&1u64.to_be_bytes());
        assert_eq!(bytes, vectors()["V3.push"], "V3.push but for the seq");
        seqs.push(pushed.seq());
        let reply = client.recv();
        assert!(reply.header().is_response());
        assert_eq!((reply.seq(), reply.payload()), (seq, &b"hello"[..]));
    }
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "push seqs {seqs:?}");
}

/// `Hub`: `Keep` keeps the caller's push handle; `SendKept` pushes through it; `SendTo` pushes to
/// the connection whose peer address is the payload.
fn hub_table() -> Result<ringrpc_server::ServiceTable, ringrpc_server::RegistrationError> {
    thread_local! {
        static KEPT: RefCell<Option<Pusher>> = const { RefCell::new(None) };
    }
    let to_error = |e: push::PushError| ServiceError::from(e.to_string());
    Ok(ringrpc_server::ServiceTable::builder()
        .service(
            Service::new("Hub")
                .method("Keep", |ctx: &Context, _: Bytes| {
                    KEPT.with(|kept| *kept.borrow_mut() = Some(ctx.pusher()));
                    Ok::<_, ServiceError>(Bytes::new())
                })
                .method("SendKept", move |_: &Context, payload: Bytes| {
                    let pusher = KEPT.with(|kept| kept.borrow().clone()).expect("kept");
                    pusher
                        .send("Hub", "Note", &[("from", "hub")], &payload)
                        .map_err(to_error)?;
                    Ok(Bytes::new())
                })
                .method("SendTo", move |_: &Context, payload: Bytes| {
                    let peer: SocketAddr = std::str::from_utf8(&payload)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| ServiceError::from("not an address"))?;
                    let pusher = push::connection_to(peer)
                        .ok_or_else(|| ServiceError::from("no such connection"))?;
                    pusher
                        .send("Hub", "Note", &[], b"to you")
                        .map_err(to_error)?;
                    Ok(Bytes::new())
                }),
        )?
        .build())
}

#[test]
fn code_on_the_core_pushes_to_a_connection_found_by_peer() {
    let server = TestServer::with(ServerConfig::default().threads(1), |_| hub_table());
    let mut target = server.connect();
    let mut sender = server.connect();
    // A connection is found once its first byte has arrived (before it, it holds nothing at all,
    // not even its place in the push registry).
    let echoed = target.call(7, "Hub", "Nope", SerializeType::Raw, b"");
    assert_eq!(echoed.seq(), 7);
    let peer = target.stream.local_addr().unwrap().to_string();
    let reply = sender.call(1, "Hub", "SendTo", SerializeType::Raw, peer.as_bytes());
    assert_eq!(reply.header().status(), MessageStatus::Normal);
    let pushed = target.recv();
    assert_eq!(
        (pushed.service_method(), pushed.payload()),
        (&b"Note"[..], &b"to you"[..])
    );
    assert!(sender.recv_within(Duration::from_millis(100)).is_none());
}

#[test]
fn a_push_to_a_closed_connection_reports_it() {
    let server = TestServer::with(ServerConfig::default().threads(1), |_| hub_table());
    let mut gone = server.connect();
    let peer = gone.stream.local_addr().unwrap().to_string();
    assert_eq!(
        gone.call(1, "Hub", "Keep", SerializeType::Raw, b"")
            .header()
            .status(),
        MessageStatus::Normal
    );
    // While it is open the kept handle works.
    let mut other = server.connect();
    other.call(1, "Hub", "SendKept", SerializeType::Raw, b"still here");
    assert_eq!(gone.recv().payload(), b"still here");
    drop(gone);
    std::thread::sleep(Duration::from_millis(200));

    let reply = other.call(2, "Hub", "SendKept", SerializeType::Raw, b"anyone?");
    assert_eq!(
        reply.metadata().get_str(ERROR_KEY),
        Some("push: the connection is closed")
    );
    let reply = other.call(3, "Hub", "SendTo", SerializeType::Raw, peer.as_bytes());
    assert_eq!(
        reply.metadata().get_str(ERROR_KEY),
        Some("no such connection")
    );
    // The server is fine.
    let reply = other.call(4, "Hub", "SendTo", SerializeType::Raw, b"nonsense");
    assert_eq!(reply.metadata().get_str(ERROR_KEY), Some("not an address"));
}
