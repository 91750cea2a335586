//! The `ringrpc-server` binary as a test's child process: started on port 0, its address read
//! from its own `listening on` line, its log kept for the test, and killed when the test ends,
//! failed or not.
//!
//! Why not a free port found beforehand and handed to `--addr`: the port is found by binding a
//! listener and closing it, and a sibling test that spawns a process at that moment forks the
//! listener into its child until that child's `exec`. For those milliseconds a connection to the
//! port is accepted by nobody's listener and then reset, or the server's own bind fails: both
//! were seen, under load, as flaky tests.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a server may take to say it listens (a debug build, on a loaded CI machine).
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `ringrpc-server`; killed (SIGKILL) on drop if still running.
pub struct ServerProcess {
    child: Child,
    /// Where it serves rpcx (its `listening on` line).
    pub addr: SocketAddr,
    /// Where it serves metrics, if started with `--metrics-addr` (its `metrics on` line).
    pub metrics_addr: Option<SocketAddr>,
    log: Arc<Mutex<String>>,
    log_reader: Option<JoinHandle<()>>,
}

impl ServerProcess {
    /// This crate's `ringrpc-server` with `args` (never `--addr`: the helper passes
    /// `--addr 127.0.0.1:0`; a `--metrics-addr` should be `127.0.0.1:0` too).
    pub fn start(args: &[&str]) -> ServerProcess {
        Self::start_binary(env!("CARGO_BIN_EXE_ringrpc-server"), args)
    }

    /// As [`ServerProcess::start`], with another build of the binary.
    pub fn start_binary(binary: &str, args: &[&str]) -> ServerProcess {
        let mut child = Command::new(binary)
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            // The lines read below are logged at info.
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        let log = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr is piped");
        let log_reader = {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut metrics_addr = None;
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(addr) = address_after(&line, "metrics on http://") {
                        metrics_addr = Some(addr);
                    }
                    {
                        let mut log = log.lock().unwrap();
                        log.push_str(&line);
                        log.push('\n');
                    }
                    if let Some(addr) = address_after(&line, "listening on ") {
                        let _ = ready_tx.send((addr, metrics_addr));
                    }
                }
            })
        };
        let Ok((addr, metrics_addr)) = ready_rx.recv_timeout(START_TIMEOUT) else {
            let exited = child.try_wait().ok().flatten();
            let _ = child.kill();
            let _ = child.wait();
            // Its stderr is closed: the log is whole once the reader is done.
            let _ = log_reader.join();
            panic!(
                "{binary} did not say it listens within {START_TIMEOUT:?} (exit: {exited:?}); \
                 its log:\n{}",
                log.lock().unwrap()
            );
        };
        ServerProcess {
            child,
            addr,
            metrics_addr,
            log,
            log_reader: Some(log_reader),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `signal` (SIGTERM, SIGINT...) to the server.
    pub fn signal(&self, signal: i32) {
        // SAFETY: a signal to our own child process, which has not been waited for (so its pid
        // is still its own).
        unsafe { libc::kill(self.pid(), signal) };
    }

    /// Waits (`limit` at most, else panics with the log) for the server to exit.
    pub fn exit_within(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for the server") {
                // Its stderr is closed: the log is complete once the reader is done.
                if let Some(reader) = self.log_reader.take() {
                    let _ = reader.join();
                }
                return status;
            }
            if Instant::now() >= deadline {
                panic!(
                    "the server did not exit within {limit:?}; its log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The address right after `marker` in a log line (up to a space or a `/`), if there is one.
fn address_after(line: &str, marker: &str) -> Option<SocketAddr> {
    let (_, rest) = line.split_once(marker)?;
    let end = rest.find([' ', '/']).unwrap_or(rest.len());
    rest[..end].parse().ok()
}
