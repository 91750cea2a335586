//! Per-core services: each worker builds its own table, so per-core state (the demo `KV`) is
//! independent between workers, with no lock, and a factory error stops the start.

mod common;

use std::time::{Duration, Instant};

use common::{Client, TestServer};
use ringrpc_codec::SerializeType;
use ringrpc_server::{
    demo, RegistrationError, Server, ServerConfig, Service, ServiceTable, Shutdown, StartError,
};

fn worker_of(client: &mut Client) -> String {
    let reply = client.call(1, "KV", "Worker", SerializeType::Raw, b"");
    String::from_utf8(reply.payload().to_vec()).unwrap()
}

#[test]
fn two_workers_hold_independent_state() {
    let server = TestServer::with(ServerConfig::default().threads(2), demo::demo_table);
    // SO_REUSEPORT spreads connections by hash: open until both workers have one.
    let mut by_worker: Vec<(String, Client)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while by_worker.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the kernel never picked the second worker"
        );
        let mut client = server.connect();
        let worker = worker_of(&mut client);
        if by_worker.iter().all(|(w, _)| *w != worker) {
            by_worker.push((worker, client));
        }
    }
    let (first, second) = by_worker.split_at_mut(1);
    let (_, a) = &mut first[0];
    let (_, b) = &mut second[0];

    let set = a.call(
        2,
        "KV",
        "Set",
        SerializeType::Json,
        br#"{"Key":"k","Value":"on a"}"#,
    );
    assert_eq!(set.payload(), br#"{"Value":"","Found":false}"#);
    let here = a.call(3, "KV", "Get", SerializeType::Json, br#"{"Key":"k"}"#);
    assert_eq!(here.payload(), br#"{"Value":"on a","Found":true}"#);
    let there = b.call(4, "KV", "Get", SerializeType::Json, br#"{"Key":"k"}"#);
    assert_eq!(there.payload(), br#"{"Value":"","Found":false}"#);

    b.call(
        5,
        "KV",
        "Set",
        SerializeType::Json,
        br#"{"Key":"k","Value":"on b"}"#,
    );
    let here = a.call(6, "KV", "Get", SerializeType::Json, br#"{"Key":"k"}"#);
    assert_eq!(here.payload(), br#"{"Value":"on a","Found":true}"#);
}

#[test]
fn the_factory_runs_once_per_worker_on_its_own_thread() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let _server = TestServer::with(ServerConfig::default().threads(2), move |worker| {
        let thread = std::thread::current().name().unwrap_or("").to_string();
        record.lock().unwrap().push((worker.index(), thread));
        demo::demo_table(worker)
    });
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            (0, "ringrpc-worker-0".to_string()),
            (1, "ringrpc-worker-1".to_string())
        ]
    );
}

#[test]
fn a_failing_factory_stops_the_start() {
    let config = ServerConfig::default()
        .threads(2)
        .addr("127.0.0.1:0".parse().unwrap());
    let result = Server::new(config, |worker| {
        if worker.index() == 1 {
            ServiceTable::builder()
                .service(Service::new(""))
                .map(|b| b.build())
        } else {
            demo::demo_table(worker)
        }
    })
    .start(&Shutdown::new());
    match result {
        Err(StartError::Setup { worker, source }) => {
            assert_eq!(worker.index(), 1);
            assert_eq!(
                source.to_string(),
                RegistrationError::EmptyServiceName.to_string()
            );
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("started with a failing factory"),
    }
}
