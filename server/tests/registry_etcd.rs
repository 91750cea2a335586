//! Registration in a real etcd (Debian's `etcd-server`), started on free 127.0.0.1 ports: the exact
//! key layout, etcd down at start-up, etcd restarted while serving, `state=inactive`, and the
//! binary deleting its keys before it stops accepting.
//!
//! Without an `etcd` binary every test says why and passes, except under `CI=true`, where that is
//! a failure (scripts/test.sh installs etcd-server). The etcd harness is `tests/etcd/mod.rs`.
#![cfg(feature = "etcd")]

mod common;
mod etcd;

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::binary::ServerProcess;
use etcd::{list, wait_for, Etcd, Kv};

use ringrpc_codec::SerializeType;
use ringrpc_server::registry::etcd::{EtcdConfig, EtcdRegistry};
use ringrpc_server::registry::{Node, Registration, RegistrationOptions, ServiceEntry};

fn node(port: u16) -> Node {
    Node::tcp(
        SocketAddr::from(([127, 0, 0, 1], port)),
        vec![
            ServiceEntry::new("Arith", "weight=10&group=g1").unwrap(),
            ServiceEntry::new("Echo", "").unwrap(),
        ],
    )
    .unwrap()
}

fn register(etcd: &Etcd, base: &str, node: Node) -> Registration {
    let config = EtcdConfig {
        endpoints: vec![etcd.endpoint()],
        base_path: base.into(),
        ttl: Duration::from_secs(4),
        timeout: Duration::from_millis(500),
    };
    let options = RegistrationOptions {
        retry_interval: Duration::from_millis(200),
        settle: Duration::ZERO,
        ..RegistrationOptions::default()
    };
    Registration::start(EtcdRegistry::new(config).unwrap(), node, options).unwrap()
}

#[test]
fn keys_are_exactly_those_of_the_go_plugin_on_one_lease() {
    let Some(etcd) = Etcd::start("layout") else {
        return;
    };
    let registration = register(&etcd, "/rpcx_layout", node(18001));
    assert!(registration.wait_registered(Duration::from_secs(10)));
    let kvs = list(&etcd.endpoint(), "/rpcx_layout").unwrap();
    let pairs: Vec<(&str, &str)> = kvs
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.as_str()))
        .collect();
    // Every service at once: Go's v0.5.0 plugin would still lack the last one (Echo) here.
    assert_eq!(
        pairs,
        [
            ("/rpcx_layout", "rpcx_path"),
            ("/rpcx_layout/Arith", "Arith"),
            (
                "/rpcx_layout/Arith/tcp@127.0.0.1:18001",
                "weight=10&group=g1"
            ),
            ("/rpcx_layout/Echo", "Echo"),
            ("/rpcx_layout/Echo/tcp@127.0.0.1:18001", ""),
        ]
    );
    assert!(kvs[0].lease != 0 && kvs.iter().all(|kv| kv.lease == kvs[0].lease));

    registration.set_active(false).unwrap();
    let kvs = list(&etcd.endpoint(), "/rpcx_layout/Arith/").unwrap();
    assert_eq!(kvs[0].value, "weight=10&group=g1&state=inactive");
    registration.set_active(true).unwrap();
    let kvs = list(&etcd.endpoint(), "/rpcx_layout/Arith/").unwrap();
    assert_eq!(kvs[0].value, "weight=10&group=g1");

    registration.deregister().unwrap();
    assert!(list(&etcd.endpoint(), "/rpcx_layout").unwrap().is_empty());
}

#[test]
fn etcd_down_at_start_up_registers_once_it_is_up() {
    let Some(mut etcd) = Etcd::start("down") else {
        return;
    };
    etcd.kill();
    let registration = register(&etcd, "/rpcx_down", node(18002));
    assert!(!registration.wait_registered(Duration::from_millis(800)));
    etcd.run();
    assert!(
        registration.wait_registered(Duration::from_secs(10)),
        "not registered within 10 s of etcd coming up"
    );
    assert_eq!(list(&etcd.endpoint(), "/rpcx_down").unwrap().len(), 5);
    registration.deregister().unwrap();
}

#[test]
fn etcd_restarted_while_serving_gets_the_keys_back_and_requests_go_on() {
    let Some(mut etcd) = Etcd::start("restart") else {
        return;
    };
    let mut server = common::TestServer::start(1);
    let port = server.addr.port();
    let registration = register(&etcd, "/rpcx_restart", node(port));
    assert!(registration.wait_registered(Duration::from_secs(10)));
    let first_lease = list(&etcd.endpoint(), "/rpcx_restart").unwrap()[0].lease;

    etcd.kill();
    // The request path never waits on etcd: calls are served while it is down.
    let mut client = server.connect();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(3);
    let mut seq = 0;
    while Instant::now() < deadline {
        seq += 1;
        let reply = client.call(
            seq,
            "Arith",
            "Mul",
            SerializeType::Json,
            br#"{"A":6,"B":7}"#,
        );
        assert_eq!(reply.payload(), br#"{"C":42}"#);
    }
    assert!(!registration.is_registered(), "the outage went unnoticed");

    etcd.run();
    let endpoint = etcd.endpoint();
    assert!(
        wait_for(&endpoint, "/rpcx_restart", Duration::from_secs(10), |kvs| {
            kvs.len() == 5 && kvs.iter().all(|kv| kv.lease != first_lease)
        }),
        "keys not back on a new lease within 10 s of the restart: {:?}",
        list(&endpoint, "/rpcx_restart")
    );
    registration.deregister().unwrap();
    server.stop();
}

#[test]
fn binary_deletes_its_keys_before_it_stops_accepting() {
    let Some(etcd) = Etcd::start("binary") else {
        return;
    };
    let mut server = ServerProcess::start(&[
        "--threads",
        "1",
        "--etcd",
        &etcd.endpoint(),
        "--base-path",
        "/rpcx_binary",
        "--metadata",
        "group=g1",
        "--metadata",
        "Echo:state=inactive",
    ]);
    let addr = server.addr;
    let endpoint = etcd.endpoint();
    let node_keys = |kvs: &[Kv]| -> Vec<(String, String)> {
        kvs.iter()
            .filter(|kv| kv.key.contains("tcp@"))
            .map(|kv| (kv.key.clone(), kv.value.clone()))
            .collect()
    };
    assert!(
        wait_for(
            &endpoint,
            "/rpcx_binary",
            Duration::from_secs(10),
            // The base key, then a service key and a node key for each of the demo's five
            // services (Arith, Echo, Hello, KV, Push).
            |kvs| kvs.len() == 11
        ),
        "the binary did not register"
    );
    assert_eq!(
        node_keys(&list(&endpoint, "/rpcx_binary").unwrap()),
        [
            (format!("/rpcx_binary/Arith/tcp@{addr}"), "group=g1".into()),
            (
                format!("/rpcx_binary/Echo/tcp@{addr}"),
                "state=inactive".into()
            ),
            (format!("/rpcx_binary/Hello/tcp@{addr}"), "group=g1".into()),
            (format!("/rpcx_binary/KV/tcp@{addr}"), "group=g1".into()),
            (format!("/rpcx_binary/Push/tcp@{addr}"), "group=g1".into()),
        ]
    );

    server.signal(libc::SIGTERM);
    assert!(
        wait_for(&endpoint, "/rpcx_binary", Duration::from_secs(5), |kvs| {
            node_keys(kvs).is_empty()
        }),
        "keys still there after SIGTERM"
    );
    // Deregistered, and still accepting: clients move away before the listener closes.
    assert!(
        TcpStream::connect(addr).is_ok(),
        "stopped accepting before deregistering"
    );
    let status = server.exit_within(Duration::from_secs(15));
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn binary_refuses_an_unspecified_address_without_advertise() {
    let output = Command::new(env!("CARGO_BIN_EXE_ringrpc-server"))
        .args([
            "--addr",
            "0.0.0.0:0",
            "--threads",
            "1",
            "--etcd",
            "127.0.0.1:1",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--advertise"), "stderr: {stderr}");
}
