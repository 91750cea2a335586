//! Faults cost nothing to anyone else: a peer that resets mid-frame, mid-reply or with replies
//! in flight; a handler that panics or never finishes. Each test ends with a shutdown that must
//! be quick: a connection wedged by the fault would hold it for the whole grace period.

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::{request, Client, TestServer};
use ringrpc_codec::{Message, MessageStatus, SerializeType};
use ringrpc_server::bytes::Bytes;
use ringrpc_server::{demo, ServerConfig, Service, ServiceError, ServiceTable};

/// Closes the client's socket with a reset (SO_LINGER 0) instead of a FIN.
fn reset(client: Client) {
    let socket = socket2::Socket::from(client.stream);
    socket.set_linger(Some(Duration::ZERO)).unwrap();
    drop(socket);
}

fn server(grace_ms: u64) -> TestServer {
    TestServer::with(
        ServerConfig::default()
            .threads(2)
            .grace_period(Duration::from_millis(grace_ms)),
        demo::demo_table,
    )
}

/// Stops the server and says how long it took.
fn timed_stop(mut server: TestServer) -> Duration {
    let started = Instant::now();
    server.stop();
    started.elapsed()
}

#[test]
fn resets_mid_frame_mid_reply_and_with_replies_in_flight_cost_the_others_nothing() {
    let server = server(5000);
    let mut bystanders: Vec<Client> = (0..4).map(|_| server.connect()).collect();
    for round in 0..20u64 {
        // Mid-frame: half a request, then a reset.
        let mut half = server.connect();
        let frame = request(1, "Echo", "Echo", SerializeType::Raw, &[], &[1u8; 5000]);
        half.send(&frame[..2500]);
        reset(half);

        // Mid-reply: a 2 MiB reply, a few bytes of it read, then a reset.
        let mut big = server.connect();
        big.send(&request(
            2,
            "Echo",
            "Echo",
            SerializeType::Raw,
            &[],
            &vec![2u8; 2 << 20],
        ));
        let mut some = [0u8; 1000];
        big.stream.read_exact(&mut some).unwrap();
        reset(big);

        // Replies in flight: slow requests running when the peer resets.
        let mut pending = server.connect();
        for seq in 0..10 {
            pending.send(&request(
                seq,
                "Echo",
                "Sleep",
                SerializeType::Raw,
                &[],
                b"50",
            ));
        }
        reset(pending);

        for (i, client) in bystanders.iter_mut().enumerate() {
            let payload = format!("round {round} client {i}");
            assert_eq!(
                client.echo(round, payload.as_bytes()).payload(),
                payload.as_bytes()
            );
        }
    }
    // Let the in-flight sleeps finish and hit their dead sockets.
    std::thread::sleep(Duration::from_millis(200));
    drop(bystanders);
    let took = timed_stop(server);
    assert!(
        took < Duration::from_secs(2),
        "shutdown took {took:?}: a connection was wedged"
    );
}

#[test]
fn a_handler_that_never_finishes_wedges_neither_its_connection_nor_the_shutdown() {
    let server = server(500);
    let mut client = server.connect();
    // An hour: the grace period, not the handler, ends it.
    client.send(&request(
        1,
        "Echo",
        "Sleep",
        SerializeType::Raw,
        &[],
        b"3600000",
    ));
    for seq in 2..50 {
        assert_eq!(client.echo(seq, b"meanwhile").seq(), seq);
    }
    let took = timed_stop(server);
    assert!(
        took >= Duration::from_millis(400),
        "{took:?}: the grace period was not waited"
    );
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
}

#[test]
fn a_handler_that_panics_answers_with_an_error_and_the_connection_goes_on() {
    let server = TestServer::with(ServerConfig::default().threads(1), |_| {
        Ok(ServiceTable::builder()
            .service(
                Service::new("Boom")
                    .method("Now", |_ctx, _: Bytes| -> Result<Bytes, ServiceError> {
                        panic!("boom")
                    })
                    .async_method("Later", |_ctx, payload: Bytes| async move {
                        monoio::time::sleep(Duration::from_millis(20)).await;
                        if payload.is_empty() {
                            panic!("later boom");
                        }
                        Ok::<Bytes, ServiceError>(payload)
                    }),
            )?
            .service(demo::Echo)?
            .build())
    });
    let mut client = server.connect();
    client.send(&request(1, "Boom", "Later", SerializeType::Raw, &[], b""));
    client.send(&request(2, "Boom", "Now", SerializeType::Raw, &[], b""));
    client.send(&request(
        3,
        "Echo",
        "Echo",
        SerializeType::Raw,
        &[],
        b"alive",
    ));
    // Taken by seq: the async panic's reply may come first, since printing a panic's backtrace
    // (RUST_BACKTRACE set, as in CI) can take longer than that handler's 20 ms sleep.
    let mut replies: Vec<Message> = (0..3).map(|_| client.recv()).collect();
    replies.sort_by_key(|reply| reply.seq());
    let seqs: Vec<u64> = replies.iter().map(|reply| reply.seq()).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(replies[0].header().status(), MessageStatus::Error);
    assert_eq!(replies[1].header().status(), MessageStatus::Error);
    assert_eq!(replies[2].header().status(), MessageStatus::Normal);
    assert_eq!(replies[2].payload(), b"alive");
    assert_eq!(client.echo(4, b"still").payload(), b"still");
    drop(client);
    assert!(timed_stop(server) < Duration::from_secs(2));
}
