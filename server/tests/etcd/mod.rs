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
            client_port: free_port(),
            peer_port: free_port(),
            dir,
            child: None,
        };
        etcd.run();
        Some(etcd)
    }

    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// Starts the process (again, after `kill`) on the same ports and data, and waits until it
    /// answers.
    pub fn run(&mut self) {
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new(&self.binary)
            .arg("--data-dir")
            .arg(&self.dir)
            .args(["--name", "test"])
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("test={peer}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start etcd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while list(&self.endpoint(), "/").is_err() {
            assert!(Instant::now() < deadline, "etcd did not answer within 15 s");
            std::thread::sleep(Duration::from_millis(50));
        }
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
