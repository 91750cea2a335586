//! Graceful shutdown: stop accepting and reading, finish what was read, write every reply, exit
//! (spec 4.13).

mod common;

use std::time::{Duration, Instant};

use common::{request, TestServer};
use ringrpc_codec::SerializeType;

#[test]
fn shutdown_with_requests_in_flight_loses_none_of_their_replies() {
    let mut server = TestServer::start(2);
    let mut clients: Vec<_> = (0..8).map(|_| server.connect()).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        let mut burst = Vec::new();
        for j in 0..50u64 {
            // Slow and fast requests mixed: the slow ones are still running at shutdown.
            let (method, payload) = if j % 5 == 0 {
                ("Sleep", b"300".to_vec())
            } else {
                ("Echo", vec![i as u8; 100])
            };
            burst.extend_from_slice(&request(
                j,
                "Echo",
                method,
                SerializeType::Raw,
                &[],
                &payload,
            ));
        }
        client.send(&burst);
    }
    // Let every burst be read, then shut down while the sleeps run.
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    let shutdown = server.shutdown.clone();
    let stopper = std::thread::spawn(move || shutdown.trigger());
    for client in clients.iter_mut() {
        let mut seen: Vec<u64> = (0..50).map(|_| client.recv().seq()).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
        assert!(
            client.is_closed_within(Duration::from_secs(5)),
            "closed after draining"
        );
    }
    stopper.join().unwrap();
    server.stop();
    assert!(started.elapsed() < Duration::from_secs(5));
    // New connections are refused once stopped.
    assert!(std::net::TcpStream::connect(server.addr).is_err());
}

#[test]
fn grace_period_bounds_shutdown() {
    let config = ringrpc_server::ServerConfig::default()
        .threads(1)
        .grace_period(Duration::from_millis(300));
    let mut server = TestServer::with(config, ringrpc_server::demo::demo_table);
    let mut client = server.connect();
    client.send(&request(
        1,
        "Echo",
        "Sleep",
        SerializeType::Raw,
        &[],
        b"60000",
    ));
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    server.stop();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn the_epoll_driver_shuts_down_gracefully_too() {
    let config = ringrpc_server::ServerConfig::default()
        .threads(1)
        .io(ringrpc_server::IoDriver::Epoll);
    let mut server = TestServer::with(config, ringrpc_server::demo::demo_table);
    let mut client = server.connect();
    client.send(&request(
        1,
        "Echo",
        "Sleep",
        SerializeType::Raw,
        &[],
        b"200",
    ));
    std::thread::sleep(Duration::from_millis(50));
    let shutdown = server.shutdown.clone();
    shutdown.trigger();
    assert_eq!(client.recv().seq(), 1, "the running request is answered");
    assert!(client.is_closed_within(Duration::from_secs(5)));
    server.stop();
}
