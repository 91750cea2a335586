//! Many requests at once: pipelined bursts, odd framing, slow handlers beside fast ones, many
//! connections, back-pressure.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{request, Client, TestServer};
use ringrpc_codec::{MessageStatus, SerializeType};
use ringrpc_server::ServerConfig;

/// A raw Echo.Echo request.
fn echo(seq: u64, payload: &[u8]) -> Vec<u8> {
    request(seq, "Echo", "Echo", SerializeType::Raw, &[], payload)
}

/// `count` raw Echo.Echo requests back to back, seq 0 up: request `seq` carries `size(seq)` bytes
/// of the letter `b'a' + seq % 26`.
fn echo_stream(count: u64, size: impl Fn(u64) -> usize) -> Vec<u8> {
    let mut stream = Vec::new();
    for seq in 0..count {
        let payload = vec![b'a' + (seq % 26) as u8; size(seq)];
        stream.extend_from_slice(&echo(seq, &payload));
    }
    stream
}

#[test]
fn pipelined_burst_with_repeated_and_random_seqs_is_all_answered() {
    let server = TestServer::start(2);
    let mut client = server.connect();
    // A cheap xorshift: repeated seqs on purpose (the server must never dedupe, spec 5).
    let mut state = 0x9E3779B97F4A7C15u64;
    let mut expected: HashMap<u64, Vec<Vec<u8>>> = HashMap::new();
    let mut burst = Vec::new();
    for i in 0..5000u64 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let seq = if i % 10 == 0 { 42 } else { state };
        let payload = format!("payload-{i}").into_bytes();
        burst.extend_from_slice(&echo(seq, &payload));
        expected.entry(seq).or_default().push(payload);
    }
    client.send(&burst);
    for _ in 0..5000 {
        let reply = client.recv();
        assert_eq!(reply.header().status(), MessageStatus::Normal);
        let payloads = expected.get_mut(&reply.seq()).expect("a seq we sent");
        let at = payloads
            .iter()
            .position(|p| p[..] == reply.payload()[..])
            .expect("a payload we sent with this seq");
        payloads.swap_remove(at);
    }
    assert!(expected.values().all(Vec::is_empty));
}

#[test]
fn frames_split_byte_by_byte_are_reassembled() {
    let server = TestServer::start(1);
    let mut client = server.connect();
    let frame = request(
        7,
        "Arith",
        "Mul",
        SerializeType::Json,
        &[("k", "v")],
        br#"{"A":6,"B":7}"#,
    );
    for byte in &frame {
        client.send(std::slice::from_ref(byte));
        std::thread::sleep(Duration::from_micros(200));
    }
    let reply = client.recv();
    assert_eq!(reply.seq(), 7);
    assert_eq!(reply.payload(), br#"{"C":42}"#);
}

#[test]
fn many_frames_coalesced_in_one_write_and_straddling_writes() {
    let server = TestServer::start(1);
    let mut client = server.connect();
    let stream = echo_stream(200, |seq| (seq as usize * 37) % 3000);
    // Writes of an odd size so frames straddle them.
    for chunk in stream.chunks(997) {
        client.send(chunk);
    }
    for seq in 0..200u64 {
        let reply = client.recv();
        assert_eq!(reply.seq(), seq, "inline replies keep request order");
        assert_eq!(reply.payload().len(), (seq as usize * 37) % 3000);
    }
}

#[test]
fn a_slow_handler_does_not_hold_back_the_others() {
    let server = TestServer::start(1);
    let mut client = server.connect();
    let started = Instant::now();
    client.send(&request(
        1,
        "Echo",
        "Sleep",
        SerializeType::Raw,
        &[],
        b"500",
    ));
    client.send(&echo(2, b"fast"));
    let first = client.recv();
    assert_eq!(first.seq(), 2, "the fast reply overtakes the slow one");
    assert!(started.elapsed() < Duration::from_millis(400));
    let second = client.recv();
    assert_eq!(second.seq(), 1);
    assert_eq!(second.payload(), b"500");
    assert!(started.elapsed() >= Duration::from_millis(500));
}

#[test]
fn thousand_concurrent_connections() {
    let server = TestServer::start(2);
    let mut clients: Vec<_> = (0..1000).map(|_| server.connect()).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        let payload = format!(r#"{{"A":{i},"B":3}}"#);
        client.send(&request(
            i as u64,
            "Arith",
            "Mul",
            SerializeType::Json,
            &[],
            payload.as_bytes(),
        ));
    }
    for (i, client) in clients.iter_mut().enumerate() {
        let reply = client.recv();
        assert_eq!(reply.seq(), i as u64);
        assert_eq!(
            reply.payload()[..],
            format!(r#"{{"C":{}}}"#, i * 3).into_bytes()[..]
        );
    }
}

#[test]
fn back_pressure_pauses_reading_but_answers_everything() {
    // Two running requests at most: the rest wait in the socket, then all are answered.
    let config = ServerConfig::default().threads(1).max_in_flight(2);
    let server = TestServer::with(config, ringrpc_server::demo::demo_table);
    let mut client = server.connect();
    let mut burst = Vec::new();
    for seq in 0..20u64 {
        burst.extend_from_slice(&request(
            seq,
            "Echo",
            "Sleep",
            SerializeType::Raw,
            &[],
            b"20",
        ));
    }
    let started = Instant::now();
    client.send(&burst);
    let mut seen: Vec<u64> = (0..20).map(|_| client.recv().seq()).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..20).collect::<Vec<_>>());
    // 20 sleeps of 20 ms, two at a time, take at least ~200 ms; unbounded they would take ~20 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_client_that_never_reads_does_not_grow_server_memory_without_bound() {
    // Small write cap: the server stops reading this connection once 64 KiB of replies wait.
    let config = ServerConfig::default()
        .threads(1)
        .max_pending_write(64 << 10);
    let server = TestServer::with(config, ringrpc_server::demo::demo_table);
    let mut hog = server.connect();
    hog.stream.set_nonblocking(true).unwrap();
    let frame = echo(1, &[0u8; 16 << 10]);
    // Frames written back to back; `offset` keeps partial writes in sync with frame boundaries.
    let mut sent = 0usize;
    let mut offset = 0usize;
    let mut blocked = false;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match std::io::Write::write(&mut hog.stream, &frame[offset..]) {
            Ok(n) => {
                sent += n;
                offset = (offset + n) % frame.len();
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                // Give the server every chance to read more before concluding it stopped.
                std::thread::sleep(Duration::from_millis(200));
                match std::io::Write::write(&mut hog.stream, &frame[offset..]) {
                    Ok(n) => {
                        sent += n;
                        offset = (offset + n) % frame.len();
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        blocked = true;
                        break;
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            Err(e) => panic!("{e}"),
        }
    }
    // The socket buffers fill up and the client's writes block: the server stopped reading
    // instead of buffering replies without bound.
    assert!(blocked, "server kept reading: {sent} bytes taken in 5 s");
    // Other connections are still served.
    let mut other = server.connect();
    let reply = other.call(9, "Echo", "Echo", SerializeType::Raw, b"still here");
    assert_eq!(reply.payload(), b"still here");
}

#[test]
fn a_connection_past_the_large_buffer_loans_streams_frames_of_every_size() {
    // No loan of large buffers at all: every streaming read goes into a buffer fitted to its
    // frame (8 KiB at least), and every batch of replies into one of its size.
    let config = ServerConfig::default().threads(1).max_large_readers(0);
    let server = TestServer::with(config, ringrpc_server::demo::demo_table);
    let mut client = server.connect();
    let size = |seq: u64| (seq as usize * 7919) % (150 << 10);
    let stream = echo_stream(300, size);
    // Sent from another thread while the replies are read: they are larger than the socket
    // buffers. Writes of an odd size, so frames straddle them.
    let mut sender = client.stream.try_clone().unwrap();
    let sending = std::thread::spawn(move || {
        for chunk in stream.chunks(5003) {
            std::io::Write::write_all(&mut sender, chunk).unwrap();
        }
    });
    for seq in 0..300u64 {
        let reply = client.recv();
        assert_eq!(reply.seq(), seq);
        assert_eq!(reply.payload().len(), size(seq));
        assert!(reply
            .payload()
            .iter()
            .all(|&b| b == b'a' + (seq % 26) as u8));
    }
    sending.join().unwrap();
}

/// Sends what a connection's first read (1 KiB) takes, and only that: Echo.Echo seq 1 (300 bytes
/// of `a`) whole and the start of seq 2 (900 bytes of `b`). Returns the rest of seq 2.
fn send_a_burst_cut_by_the_first_read(client: &mut Client) -> Vec<u8> {
    let first = echo(1, &[b'a'; 300]);
    let second = echo(2, &[b'b'; 900]);
    let cut = 1024 - first.len();
    let mut head = first;
    head.extend_from_slice(&second[..cut]);
    client.send(&head);
    second[cut..].to_vec()
}

#[test]
fn a_burst_cut_by_the_first_small_read_is_answered_with_its_rest() {
    let server = TestServer::start(1);
    let mut client = server.connect();
    let rest = send_a_burst_cut_by_the_first_read(&mut client);
    // The first frame waits for the rest of its burst, to be answered in the same write: a reply
    // of its own would split the client's pipeline for good.
    assert!(
        client.recv_within(Duration::from_millis(300)).is_none(),
        "the first frame was answered before the rest of its burst came"
    );
    client.send(&rest);
    for (seq, fill, len) in [(1, b'a', 300), (2, b'b', 900)] {
        let reply = client.recv();
        assert_eq!(reply.seq(), seq);
        assert_eq!(reply.payload(), &vec![fill; len][..]);
    }
}

#[test]
fn frames_held_for_the_rest_of_their_burst_are_answered_if_it_never_comes() {
    let server = TestServer::start(1);
    let mut client = server.connect();
    // The second frame is never finished: once the quiet read is cancelled (the sweeper, after a
    // second), the first is answered anyway.
    send_a_burst_cut_by_the_first_read(&mut client);
    let reply = client
        .recv_within(Duration::from_secs(5))
        .expect("the first frame answered while the second stalls");
    assert_eq!(reply.seq(), 1);
    assert_eq!(reply.payload(), &[b'a'; 300][..]);
}
