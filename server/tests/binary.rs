//! The `ringrpc-server` binary: flags (the feature flags included), serving, and a clean exit 0 on
//! SIGTERM and SIGINT, with every request read before the signal answered.

mod common;

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use common::binary::ServerProcess;
use ringrpc_codec::SerializeType;

fn run_and_signal(signal: i32) {
    let mut server = ServerProcess::start(&["--threads", "2", "--cpus", "0-1"]);
    let mut client = common::Client::connect(server.addr);
    let reply = client.call(1, "Arith", "Mul", SerializeType::Json, br#"{"A":3,"B":5}"#);
    assert_eq!(reply.payload(), br#"{"C":15}"#);
    server.signal(signal);
    let status = server.exit_within(Duration::from_secs(15));
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        server.log()
    );
}

#[test]
fn serves_and_exits_zero_on_sigterm() {
    run_and_signal(libc::SIGTERM);
}

#[test]
fn serves_and_exits_zero_on_sigint() {
    run_and_signal(libc::SIGINT);
}

#[test]
fn bad_flags_are_refused_with_a_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_ringrpc-server"))
        .args(["--cpus", "3-1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CPU list"));
}

#[test]
fn sigterm_while_requests_run_answers_every_request_read_and_refuses_new_connections() {
    let mut server = ServerProcess::start(&["--threads", "2", "--grace-period", "5"]);
    let addr = server.addr;
    let mut clients: Vec<_> = (0..6).map(|_| common::Client::connect(addr)).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        // Every connection is served before the burst, so it is registered on its worker.
        assert_eq!(client.echo(1000, b"ready").payload(), b"ready");
        let mut burst = Vec::new();
        for seq in 0..40u64 {
            let (method, payload) = if seq % 4 == 0 {
                ("Sleep", b"400".to_vec())
            } else {
                ("Echo", vec![i as u8; 2000])
            };
            burst.extend(common::request(
                seq,
                "Echo",
                method,
                SerializeType::Raw,
                &[],
                &payload,
            ));
        }
        client.send(&burst);
    }
    // Every burst is read; the sleeps are still running when the signal comes.
    std::thread::sleep(Duration::from_millis(150));
    let signalled = Instant::now();
    server.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(100));
    match std::net::TcpStream::connect(addr) {
        Err(_) => {}
        Ok(mut late) => {
            // Accepted in a race with the listener's close: it must be closed, unserved.
            use std::io::{Read, Write};
            late.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = late.write_all(&common::request(
                1,
                "Echo",
                "Echo",
                SerializeType::Raw,
                &[],
                b"x",
            ));
            let mut byte = [0u8; 1];
            let refused = match late.read(&mut byte) {
                Ok(n) => n == 0,
                Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
            };
            assert!(refused, "a connection made after the signal was served");
        }
    }
    for client in clients.iter_mut() {
        let mut seen: Vec<u64> = (0..40).map(|_| client.recv().seq()).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..40).collect::<Vec<_>>(), "a reply was lost");
        assert!(client.is_closed_within(Duration::from_secs(5)));
    }
    let status = server.exit_within(Duration::from_secs(15));
    assert!(status.success(), "exit status {status:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "{:?}",
        signalled.elapsed()
    );
}

#[test]
fn feature_flags_reach_the_server() {
    let mut server = ServerProcess::start(&[
        "--threads",
        "1",
        "--metrics-addr",
        "127.0.0.1:0",
        "--enforce-deadlines",
        "--conn-rate-limit",
        "1000",
        "--rate-limit",
        "1000",
        "--auth-token",
        "tok",
    ]);
    let addr = server.addr;
    let mut client = common::Client::connect(addr);
    // --enforce-deadlines (and --auth-token: the token is there).
    client.send(&common::request(
        1,
        "Echo",
        "Sleep",
        SerializeType::Raw,
        &[("__AUTH", "tok"), ("__ServerTimeout", "20")],
        b"2000",
    ));
    let reply = client.recv();
    assert_eq!(
        reply.metadata().get_str("__rpcx_error__"),
        Some("context deadline exceeded")
    );
    // --metrics-addr: the request is counted, as an error.
    let mut scrape =
        std::net::TcpStream::connect(server.metrics_addr.expect("metrics served")).unwrap();
    scrape.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    scrape.read_to_string(&mut text).unwrap();
    assert!(
        text.contains(r#"ringrpc_request_errors_total{service="Echo",method="Sleep"} 1"#),
        "{text}"
    );
    // --auth-token: without it, refused and closed.
    client.send(&common::request(
        2,
        "Echo",
        "Echo",
        SerializeType::Raw,
        &[],
        b"x",
    ));
    assert_eq!(
        client.recv().metadata().get_str("__rpcx_error__"),
        Some("invalid token")
    );
    assert!(client.is_closed_within(Duration::from_secs(5)));
    server.signal(libc::SIGTERM);
    assert!(server.exit_within(Duration::from_secs(15)).success());
}
