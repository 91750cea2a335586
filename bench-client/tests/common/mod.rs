//! Servers for the end-to-end tests, on random 127.0.0.1 ports.
//!
//! - [`echo_limit`]: the real `ringrpc-echo-limit` (its source is compiled in here, so the tests
//!   need no prior build of the `benches` crate), started in-process.
//! - [`StallingEcho`]: a plain blocking echo that stops answering once for a while, to show that
//!   the open loop charges a stall to the requests queued behind it.
//! - [`demo_server`]: ringrpc-server's demo services, started in-process.
//! - [`go_peer`]: the Go rpcx server, when `target/go/go-rpcx-server` has been built.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../../../benches/src/bin/ringrpc-echo-limit.rs"]
mod echo_limit_server;

/// Starts the echo-limit server (one thread, default driver) on the server's runtime and returns
/// its address. Its worker runs until the test process exits.
pub fn echo_limit() -> SocketAddr {
    let args = echo_limit_server::Args {
        addr: "127.0.0.1:0".parse().unwrap(),
        threads: 1,
        cpus: None,
        io: ringrpc_server::IoDriver::Auto,
    };
    let shutdown = ringrpc_server::Shutdown::new();
    let running = echo_limit_server::start(&args, &shutdown).expect("echo-limit starts");
    // Dropping the last `Shutdown` would signal it: keep it for the life of the process. Dropping
    // `running` only detaches the worker thread.
    std::mem::forget(shutdown);
    running.local_addr()
}

/// Starts ringrpc's demo services (one worker) and returns their address; they run until the test
/// process exits.
pub fn demo_server() -> SocketAddr {
    let config = ringrpc_server::ServerConfig::default()
        .addr("127.0.0.1:0".parse().unwrap())
        .threads(1);
    // Never triggered: the server runs until the test process exits.
    let shutdown = ringrpc_server::Shutdown::new();
    let running = ringrpc_server::Server::new(config, ringrpc_server::demo::demo_table)
        .start(&shutdown)
        .expect("the demo server starts");
    running.local_addr()
}

/// The test certificates of the server crate (server/tests/data): the server's pair and the CA.
pub fn tls_data(file: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../server/tests/data")
        .join(file)
}

/// Like [`demo_server`], serving TLS too (the test certificate, for `localhost`).
pub fn demo_server_tls() -> SocketAddr {
    let tls = ringrpc_server::tls::load_pem(&tls_data("test-cert.pem"), &tls_data("test-key.pem"))
        .expect("the test certificate loads");
    let config = ringrpc_server::ServerConfig::default()
        .addr("127.0.0.1:0".parse().unwrap())
        .threads(1)
        .tls(tls);
    let shutdown = ringrpc_server::Shutdown::new();
    let running = ringrpc_server::Server::new(config, ringrpc_server::demo::demo_table)
        .start(&shutdown)
        .expect("the TLS demo server starts");
    std::mem::forget(shutdown);
    running.local_addr()
}

/// A thread-per-connection echo of rpcx frames (response bit set) that, `stall_after` after it
/// starts, stops answering for `stall_for`, once.
pub struct StallingEcho;

impl StallingEcho {
    pub fn start(stall_after: Duration, stall_for: Duration) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let started = Instant::now();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                stream.set_nodelay(true).unwrap();
                std::thread::spawn(move || {
                    let mut stalled = false;
                    let mut prefix = [0u8; 16];
                    loop {
                        if stream.read_exact(&mut prefix).is_err() {
                            return;
                        }
                        let len = u32::from_be_bytes(prefix[12..16].try_into().unwrap()) as usize;
                        let mut frame = prefix.to_vec();
                        frame.resize(16 + len, 0);
                        if stream.read_exact(&mut frame[16..]).is_err() {
                            return;
                        }
                        if !stalled && started.elapsed() >= stall_after {
                            stalled = true;
                            std::thread::sleep(stall_for);
                        }
                        frame[2] |= 0x80;
                        if stream.write_all(&frame).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }
}

/// A server that accepts connections and never answers.
pub fn silent_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in listener.incoming().flatten() {
            // Keep the connections open; read nothing.
            open.push(stream);
        }
    });
    addr
}

/// The Go rpcx peer as a child process, killed on drop.
pub struct GoPeer {
    child: Child,
    pub addr: SocketAddr,
}

impl Drop for GoPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `target/go/go-rpcx-server` on a random port, or `None` if it has not been built.
pub fn go_peer() -> Option<GoPeer> {
    let binary =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/go/go-rpcx-server");
    if !binary.exists() {
        return None;
    }
    let mut child = Command::new(binary)
        .args(["-addr", "127.0.0.1:0", "-procs", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take()?)
        .read_line(&mut line)
        .ok()?;
    let addr = line.trim().strip_prefix("listening on ")?.parse().ok()?;
    Some(GoPeer { child, addr })
}

/// The JSON report of a `ringrpc-bench --json` run, after checking the run succeeded (its stderr
/// is the failure message).
pub fn json_report(output: &std::process::Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("a JSON report on stdout")
}
