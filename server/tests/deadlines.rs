//! `__ServerTimeout` over a socket (docs/protocol.md 4.9): not enforced by default (the late reply
//! arrives, as from Go); enforced with `enforce_deadlines`, the client gets `context deadline
//! exceeded` at the deadline, the late reply never comes, and an async handler is cancelled.

mod common;

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{request, Client, TestServer};
use ringrpc_codec::{MessageStatus, SerializeType, ERROR_KEY, SERVER_TIMEOUT_KEY};
use ringrpc_server::{demo, Context, ServerConfig, Service, ServiceError};

fn server(enforce: bool) -> TestServer {
    TestServer::with(ServerConfig::default().threads(1), move |worker| {
        Ok(demo::demo_services(worker)?
            .enforce_deadlines(enforce)
            .build())
    })
}

fn sleep_request(seq: u64, sleep_ms: u64, timeout_ms: &str) -> Vec<u8> {
    request(
        seq,
        "Echo",
        "Sleep",
        SerializeType::Raw,
        &[(SERVER_TIMEOUT_KEY, timeout_ms)],
        sleep_ms.to_string().as_bytes(),
    )
}

fn assert_deadline_error(client: &mut Client, seq: u64) {
    let reply = client.recv();
    assert_eq!(reply.seq(), seq);
    assert_eq!(reply.header().status(), MessageStatus::Error);
    assert_eq!(
        reply.metadata().get_str(ERROR_KEY),
        Some("context deadline exceeded")
    );
    assert!(reply.payload().is_empty());
}

#[test]
fn by_default_the_deadline_is_not_enforced_and_the_late_reply_arrives() {
    let server = server(false);
    let mut client = server.connect();
    client.send(&sleep_request(1, 300, "50"));
    let reply = client.recv();
    assert_eq!(reply.header().status(), MessageStatus::Normal);
    assert_eq!(reply.payload(), b"300");
    // Inline methods with a passed deadline are answered too.
    client.send(&request(
        2,
        "Echo",
        "Deadline",
        SerializeType::Raw,
        &[(SERVER_TIMEOUT_KEY, "-5")],
        b"",
    ));
    assert_eq!(client.recv().payload(), b"0");
}

#[test]
fn an_enforced_deadline_answers_at_the_deadline_and_drops_the_late_reply() {
    let server = server(true);
    let mut client = server.connect();
    let sent = Instant::now();
    client.send(&sleep_request(1, 600, "100"));
    assert_deadline_error(&mut client, 1);
    let waited = sent.elapsed();
    assert!(
        waited >= Duration::from_millis(90) && waited < Duration::from_millis(550),
        "answered after {waited:?}, want about 100 ms"
    );
    // Nothing else comes for seq 1, even after the handler would have finished.
    assert!(client.recv_within(Duration::from_millis(800)).is_none());
    // The connection goes on; a request inside its deadline is answered normally.
    client.send(&sleep_request(2, 5, "5000"));
    let reply = client.recv();
    assert_eq!((reply.seq(), reply.payload()), (2, &b"5"[..]));
}

#[test]
fn an_enforced_deadline_of_zero_or_less_has_already_passed() {
    let server = server(true);
    let mut client = server.connect();
    for (seq, timeout) in [(1, "0"), (2, "-20")] {
        // Inline (Echo.Echo) and async (Echo.Sleep) methods alike.
        client.send(&request(
            seq,
            "Echo",
            "Echo",
            SerializeType::Raw,
            &[(SERVER_TIMEOUT_KEY, timeout)],
            b"late",
        ));
        assert_deadline_error(&mut client, seq);
        client.send(&sleep_request(seq + 10, 1, timeout));
        assert_deadline_error(&mut client, seq + 10);
    }
    // Without the key, no deadline at all.
    let reply = client.call(3, "Echo", "Echo", SerializeType::Raw, b"x");
    assert_eq!(reply.payload(), b"x");
}

#[test]
fn an_enforced_deadline_cancels_the_async_handler() {
    let finished = Arc::new(AtomicBool::new(false));
    let flag = finished.clone();
    let server = TestServer::with(ServerConfig::default().threads(1), move |_| {
        let flag = flag.clone();
        Ok(ringrpc_server::ServiceTable::builder()
            .service(Service::new("Slow").async_method(
                "Work",
                move |_ctx: Rc<Context>, payload: Bytes| {
                    let flag = flag.clone();
                    async move {
                        monoio::time::sleep(Duration::from_millis(300)).await;
                        flag.store(true, Ordering::SeqCst);
                        Ok::<_, ServiceError>(payload)
                    }
                },
            ))?
            .enforce_deadlines(true)
            .build())
    });
    let mut client = server.connect();
    client.send(&request(
        1,
        "Slow",
        "Work",
        SerializeType::Raw,
        &[(SERVER_TIMEOUT_KEY, "50")],
        b"x",
    ));
    assert_deadline_error(&mut client, 1);
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        !finished.load(Ordering::SeqCst),
        "the handler ran on past its deadline"
    );
}
