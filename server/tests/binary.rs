//! The `ringrpc-server` binary: flags (the feature flags included), serving, and a clean exit 0 on
//! SIGTERM and SIGINT.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ringrpc_codec::SerializeType;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run_and_signal(signal: i32) {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringrpc-server"))
        .args([
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--threads",
            "2",
            "--cpus",
            "0-1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut client = loop {
        if let Ok(stream) = std::net::TcpStream::connect(addr) {
            drop(stream);
            break common::Client::connect(addr);
        }
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    let reply = client.call(1, "Arith", "Mul", SerializeType::Json, br#"{"A":3,"B":5}"#);
    assert_eq!(reply.payload(), br#"{"C":15}"#);
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, signal) };
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");
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
fn feature_flags_reach_the_server() {
    let (port, metrics_port) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringrpc-server"))
        .args([
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--threads",
            "1",
            "--metrics-addr",
            &format!("127.0.0.1:{metrics_port}"),
            "--enforce-deadlines",
            "--conn-rate-limit",
            "1000",
            "--rate-limit",
            "1000",
            "--auth-token",
            "tok",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
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
    let mut scrape = std::net::TcpStream::connect(("127.0.0.1", metrics_port)).unwrap();
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
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}
