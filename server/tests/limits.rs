//! The limits, each against a real socket on 127.0.0.1: idle, frame-read and write timeouts, the
//! connection cap, the per-core reply budget. Timeouts are short here (hundreds of ms) so that
//! each test takes a second or two; the defaults are minutes and tens of seconds.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{request, Client, TestServer};
use ringrpc_codec::SerializeType;
use ringrpc_server::{demo, Reason, ServerConfig};

fn ms(n: u64) -> Option<Duration> {
    Some(Duration::from_millis(n))
}

/// One worker, every timeout off unless the test sets it.
fn config() -> ServerConfig {
    ServerConfig::default()
        .threads(1)
        .idle_timeout(None)
        .frame_read_timeout(None)
        .write_timeout(None)
}

#[test]
fn an_idle_connection_is_closed_and_a_busy_one_is_not() {
    let server = TestServer::with(config().idle_timeout(ms(400)), demo::demo_table);
    let mut idle = server.connect();
    let mut busy = server.connect();
    // A heartbeat-like stream of frames keeps `busy` open well past the timeout.
    let started = Instant::now();
    let mut seq = 0;
    while started.elapsed() < Duration::from_millis(1200) {
        seq += 1;
        assert_eq!(busy.echo(seq, b"ping").payload(), b"ping");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        idle.is_closed_within(Duration::from_millis(10)),
        "idle one closed by now"
    );
    assert_eq!(busy.echo(seq + 1, b"still").payload(), b"still");
    assert!(server.refusals().get(Reason::IdleTimeout) >= 1);
    // Once idle, the busy one goes too: no frame for 400 ms.
    assert!(busy.is_closed_within(Duration::from_secs(3)));
}

#[test]
fn a_request_running_past_the_idle_timeout_still_gets_its_reply() {
    let server = TestServer::with(config().idle_timeout(ms(300)), demo::demo_table);
    let mut client = server.connect();
    client.send(&request(
        1,
        "Echo",
        "Sleep",
        SerializeType::Raw,
        &[],
        b"800",
    ));
    // Read-closed at about 300 ms, the reply still goes out at 800 ms, then the close.
    assert_eq!(client.recv().payload(), b"800");
    assert!(client.is_closed_within(Duration::from_secs(3)));
}

#[test]
fn slowloris_is_closed_by_the_frame_read_timeout_after_its_earlier_replies() {
    let server = TestServer::with(
        config()
            .frame_read_timeout(ms(500))
            .idle_timeout(ms(60_000)),
        demo::demo_table,
    );
    let mut bystander = server.connect();
    let mut slow = server.connect();
    let whole = request(1, "Echo", "Echo", SerializeType::Raw, &[], b"first");
    slow.send(&whole);
    assert_eq!(slow.recv().payload(), b"first");
    // Five bytes of a frame, then a byte every 100 ms: each byte resets no clock.
    let next = request(2, "Echo", "Echo", SerializeType::Raw, &[], &[7u8; 200]);
    slow.send(&next[..5]);
    let started = Instant::now();
    let mut sent = 5;
    let closed = loop {
        std::thread::sleep(Duration::from_millis(100));
        if slow.stream.write_all(&next[sent..sent + 1]).is_err() {
            break true;
        }
        sent += 1;
        if slow.is_closed_within(Duration::from_millis(1)) {
            break true;
        }
        if started.elapsed() > Duration::from_secs(5) {
            break false;
        }
    };
    assert!(closed, "slowloris still open after {:?}", started.elapsed());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.refusals().get(Reason::FrameReadTimeout), 1);
    assert_eq!(bystander.echo(9, b"fine").payload(), b"fine");
}

#[test]
fn a_large_frame_arriving_steadily_within_the_timeout_is_served() {
    let server = TestServer::with(config().frame_read_timeout(ms(1000)), demo::demo_table);
    let mut client = server.connect();
    let big = request(
        1,
        "Echo",
        "Echo",
        SerializeType::Raw,
        &[],
        &vec![3u8; 600_000],
    );
    for piece in big.chunks(100_000) {
        client.send(piece);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(client.recv().payload().len(), 600_000);
    assert_eq!(server.refusals().total(), 0);
}

/// Sends 64 KiB echo requests without reading until the socket blocks; returns the bytes sent.
fn flood_without_reading(client: &mut Client, seconds: f64) -> usize {
    client.stream.set_nonblocking(true).unwrap();
    let frame = request(
        1,
        "Echo",
        "Echo",
        SerializeType::Raw,
        &[],
        &vec![1u8; 64 << 10],
    );
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let (mut sent, mut at) = (0, 0);
    while Instant::now() < until {
        match client.stream.write(&frame[at..]) {
            Ok(n) => {
                sent += n;
                at = (at + n) % frame.len();
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(_) => break,
        }
    }
    client.stream.set_nonblocking(false).unwrap();
    sent
}

#[test]
fn a_peer_that_stops_reading_is_reset_by_the_write_timeout() {
    let server = TestServer::with(config().write_timeout(ms(500)), demo::demo_table);
    let mut bystander = server.connect();
    let mut deaf = server.connect();
    let sent = flood_without_reading(&mut deaf, 2.0);
    assert!(
        sent > 1 << 20,
        "only {sent} bytes went out before the socket blocked"
    );
    assert!(server.refusals().get(Reason::WriteTimeout) >= 1);
    // The reset reaches the client: reading now gives an error or EOF, not the queued replies
    // forever.
    assert!(deaf.is_closed_within(Duration::from_secs(3)));
    assert_eq!(bystander.echo(1, b"fine").payload(), b"fine");
}

#[test]
fn the_reply_budget_pauses_the_biggest_queue_and_serves_the_rest() {
    let server = TestServer::with(
        config()
            .max_queued_bytes(256 << 10)
            .max_pending_write(16 << 20),
        demo::demo_table,
    );
    let mut deaf = server.connect();
    let mut good = server.connect();
    flood_without_reading(&mut deaf, 1.0);
    assert!(
        server.refusals().get(Reason::ReplyBudget) >= 1,
        "the deaf one was paused"
    );
    for seq in 0..100 {
        assert_eq!(good.echo(seq, &[5u8; 1000]).payload(), &[5u8; 1000]);
    }
    assert_eq!(server.refusals().get(Reason::WriteTimeout), 0);
}

#[test]
fn past_the_connection_cap_a_client_is_refused_cleanly_and_served_once_others_leave() {
    let server = TestServer::with(config().max_connections(3), demo::demo_table);
    let mut first: Vec<Client> = (0..3).map(|_| server.connect()).collect();
    for (i, client) in first.iter_mut().enumerate() {
        assert_eq!(client.echo(i as u64, b"in").payload(), b"in");
    }
    let mut refused = server.connect();
    let _ = refused
        .stream
        .write_all(&request(1, "Echo", "Echo", SerializeType::Raw, &[], b"x"));
    assert!(
        refused.is_closed_within(Duration::from_secs(2)),
        "closed at once, no reply"
    );
    assert_eq!(server.refusals().get(Reason::ConnectionCap), 1);
    // Two leave: two more get in (the server notices the closes first).
    first.truncate(1);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut again = loop {
        let mut client = server.connect();
        client.send(&request(
            7,
            "Echo",
            "Echo",
            SerializeType::Raw,
            &[],
            b"back",
        ));
        if let Some(reply) = client.recv_within(Duration::from_millis(500)) {
            assert_eq!(reply.payload(), b"back");
            break client;
        }
        assert!(Instant::now() < deadline, "never let back in");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(again.echo(8, b"served").payload(), b"served");
    assert_eq!(first[0].echo(9, b"still").payload(), b"still");
}
