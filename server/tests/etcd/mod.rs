//! Test support: a real etcd (Debian's `etcd-server`) on free 127.0.0.1 ports, and a reader of
//! what it holds. Shared by server/tests/registry_etcd.rs and bench-client/tests/discovery_etcd.rs.
//!
//! Without an `etcd` binary, [`Etcd::start`] says why and returns None (the test then passes),
//! except under `CI=true`, where it panics: CI must run these tests.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One etcd member on free ports with its own data directory; killed on drop.
pub struct Etcd {
    binary: PathBuf,
    client_port: u16,
    peer_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Etcd {
    /// Starts etcd, or returns None (after printing why) when there is none outside CI.
    pub fn start(test: &str) -> Option<Etcd> {
        let binary = match find_etcd() {
            Some(binary) => binary,
            None if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("{test}: no etcd binary on PATH, and CI must run this test (apt-get install etcd-server)")
            }
            None => {
                eprintln!("{test}: skipped: no etcd binary on PATH (apt-get install etcd-server)");
                return None;
            }
        };
        let dir = std::env::temp_dir().join(format!(
            "ringrpc-etcd-{}-{test}-{}",
            std::process::id(),
            free_port()
        ));
        let mut etcd = Etcd {
            binary,
            client_port: 0,
            peer_port: 0,
            dir,
            child: None,
        };
        // A port found free can be taken again before etcd binds it (by a listener a sibling
        // test's fork holds until its exec): etcd then exits at once, and new ports are tried.
        for attempt in 1.. {
            (etcd.client_port, etcd.peer_port) = (free_port(), free_port());
            match etcd.try_run() {
                Ok(()) => break,
                Err(why) if attempt < 3 => eprintln!("{test}: {why}; trying other ports"),
                Err(why) => panic!("{test}: {why}"),
            }
        }
        Some(etcd)
    }

    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// Starts the process (again, after `kill`) on the same ports and data, and waits until it
    /// answers.
    pub fn run(&mut self) {
        if let Err(why) = self.try_run() {
            panic!("{why}");
        }
    }

    fn try_run(&mut self) -> Result<(), String> {
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut child = Command::new(&self.binary)
            .arg("--data-dir")
            .arg(&self.dir)
            .args(["--name", "test"])
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("test={peer}")])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start etcd");
        // Its log is read only if it exits early (a full pipe would stop it otherwise).
        let stderr = child.stderr.take().expect("piped");
        let log = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut { stderr }, &mut text);
            text
        });
        let deadline = Instant::now() + Duration::from_secs(15);
        while list(&self.endpoint(), "/").is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                let log = log.join().unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                return Err(format!(
                    "etcd exited ({status}) before answering; its last lines, newest first:\n{}",
                    tail.join("\n")
                ));
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err("etcd did not answer within 15 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL: etcd crashes, its data (and leases) stay on disk.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn find_etcd() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("etcd"))
        .find(|candidate| candidate.is_file())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A key as read back: its value and lease.
#[derive(Debug)]
pub struct Kv {
    pub key: String,
    pub value: String,
    pub lease: i64,
}

/// Every key under `prefix`, sorted, read with a client of our own.
pub fn list(endpoint: &str, prefix: &str) -> Result<Vec<Kv>, etcd_client::Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(1))
            .with_timeout(Duration::from_secs(1));
        let mut client =
            etcd_client::Client::connect([format!("http://{endpoint}")], Some(options)).await?;
        let response = client
            .get(
                prefix,
                Some(
                    etcd_client::GetOptions::new()
                        .with_prefix()
                        .with_sort(etcd_client::SortTarget::Key, etcd_client::SortOrder::Ascend),
                ),
            )
            .await?;
        Ok(response
            .kvs()
            .iter()
            .map(|kv| Kv {
                key: kv.key_str().unwrap().to_string(),
                value: kv.value_str().unwrap().to_string(),
                lease: kv.lease(),
            })
            .collect())
    })
}

/// Polls `list` until `check` holds, for up to `within`.
pub fn wait_for(
    endpoint: &str,
    prefix: &str,
    within: Duration,
    check: impl Fn(&[Kv]) -> bool,
) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if list(endpoint, prefix).is_ok_and(|kvs| check(&kvs)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
