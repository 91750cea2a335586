//! `ringrpc-bench --etcd`: servers registered by ringrpc's own registry in a real etcd are found
//! as a Go XClient finds them (inactive left out, `--group` honoured) and loaded, each server
//! counted.
#![cfg(feature = "etcd")]

mod common;
#[path = "../../server/tests/etcd/mod.rs"]
mod etcd;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use etcd::Etcd;
use ringrpc_bench_client::discovery::{discover, EtcdQuery};
use ringrpc_server::registry::etcd::{EtcdConfig, EtcdRegistry};
use ringrpc_server::registry::{Node, Registration, RegistrationOptions, ServiceEntry};

fn register(etcd: &Etcd, addr: SocketAddr, metadata: &str) -> Registration {
    let config = EtcdConfig {
        endpoints: vec![etcd.endpoint()],
        base_path: "/rpcx_bench".into(),
        ..EtcdConfig::default()
    };
    let node = Node::tcp(addr, vec![ServiceEntry::new("Echo", metadata).unwrap()]).unwrap();
    let registration = Registration::start(
        EtcdRegistry::new(config).unwrap(),
        node,
        RegistrationOptions::default(),
    )
    .unwrap();
    assert!(registration.wait_registered(Duration::from_secs(10)));
    registration
}

#[test]
fn finds_the_active_servers_and_loads_each() {
    let Some(etcd) = Etcd::start("bench") else {
        return;
    };
    let (a, b) = (common::echo_limit(), common::echo_limit());
    let inactive: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let _registrations = [
        register(&etcd, a, "group=g1"),
        register(&etcd, b, "group=g2"),
        register(&etcd, inactive, "group=g1&state=inactive"),
    ];

    let query = |group: Option<&str>| EtcdQuery {
        endpoints: vec![etcd.endpoint()],
        base_path: "/rpcx_bench".into(),
        service: "Echo".into(),
        group: group.map(str::to_string),
    };
    let found = |group| -> Vec<SocketAddr> {
        let mut addrs: Vec<_> = discover(&query(group))
            .unwrap()
            .iter()
            .map(|d| d.addr)
            .collect();
        addrs.sort();
        addrs
    };
    let mut both = vec![a, b];
    both.sort();
    assert_eq!(found(None), both);
    assert_eq!(found(Some("g2")), [b]);
    assert!(discover(&query(Some("g3"))).is_err());

    let output = Command::new(env!("CARGO_BIN_EXE_ringrpc-bench"))
        .args(["--etcd", &etcd.endpoint(), "--base-path", "/rpcx_bench"])
        .args([
            "--conns",
            "4",
            "--requests",
            "4000",
            "--warmup",
            "0s",
            "--json",
            "--quiet",
        ])
        .output()
        .unwrap();
    let report = common::json_report(&output);
    let servers = report["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2, "{report}");
    for server in servers {
        assert_eq!(server["conns"], 2, "{report}");
        assert!(server["requests"].as_u64().unwrap() > 0, "{report}");
    }
    assert_eq!(report["errors"], 0, "{report}");
}
