//! Metrics over a socket: requests sent on two workers, then a scrape of the Prometheus endpoint
//! whose counters equal what was sent (requests, errors, histogram counts, bytes, connections);
//! and refusals by the limits, counted by reason.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{request, TestServer};
use ringrpc_codec::{MessageStatus, SerializeType};
use ringrpc_server::{auth_token, demo, Metrics, MetricsEndpoint, Reason, ServerConfig};

/// GETs the endpoint; returns each sample line's value by its name and labels.
fn scrape(addr: SocketAddr) -> (String, HashMap<String, f64>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.contains("Content-Type: text/plain; version=0.0.4"));
    let body = response.split_once("\r\n\r\n").unwrap().1.to_string();
    let samples = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap();
            (name.to_string(), value.parse().unwrap())
        })
        .collect();
    (body, samples)
}

#[test]
fn a_scrape_counts_exactly_the_requests_sent() {
    let metrics = Metrics::new();
    let endpoint = MetricsEndpoint::start("127.0.0.1:0".parse().unwrap(), metrics.clone()).unwrap();
    let for_workers = metrics.clone();
    let server = TestServer::with(ServerConfig::default().threads(2), move |worker| {
        Ok(demo::demo_services(worker)?
            .interceptor(for_workers.interceptor(worker))
            .interceptor(auth_token("t"))
            .build())
    });

    let (mut sent, mut received) = (0usize, 0usize);
    let mut clients: Vec<_> = (0..4).map(|_| server.connect()).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        let mut burst = Vec::new();
        for seq in 0..25u64 {
            burst.extend(request(
                seq,
                "Arith",
                "Mul",
                SerializeType::Json,
                &[("__AUTH", "t")],
                br#"{"A":2,"B":3}"#,
            ));
        }
        if i == 0 {
            for seq in 100..107u64 {
                burst.extend(request(
                    seq,
                    "Arith",
                    "Div",
                    SerializeType::Json,
                    &[("__AUTH", "t")],
                    br#"{"A":2,"B":0}"#,
                ));
            }
            burst.extend(request(
                200,
                "Echo",
                "Sleep",
                SerializeType::Raw,
                &[("__AUTH", "t")],
                b"5",
            ));
        }
        sent += burst.len();
        client.send(&burst);
        let replies = if i == 0 { 25 + 7 + 1 } else { 25 };
        for _ in 0..replies {
            received += client.recv().frame().len();
        }
    }
    // One refused by auth: an error, and its connection closes.
    let mut refused = server.connect();
    let bad = request(
        1,
        "Arith",
        "Mul",
        SerializeType::Json,
        &[],
        br#"{"A":1,"B":1}"#,
    );
    sent += bad.len();
    refused.send(&bad);
    let reply = refused.recv();
    assert_eq!(reply.header().status(), MessageStatus::Error);
    received += reply.frame().len();
    assert!(refused.is_closed_within(Duration::from_secs(5)));

    // Bytes written are counted when the write returns, which may be just after the client read
    // them: scrape until they settle.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (body, samples) = loop {
        let (body, samples) = scrape(endpoint.local_addr());
        let settled = samples.get("ringrpc_written_bytes_total") == Some(&(received as f64))
            && samples.get("ringrpc_open_connections") == Some(&4.0);
        if settled || Instant::now() > deadline {
            break (body, samples);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let get = |key: &str| {
        *samples
            .get(key)
            .unwrap_or_else(|| panic!("no {key} in\n{body}"))
    };
    let mul = r#"{service="Arith",method="Mul"}"#;
    let div = r#"{service="Arith",method="Div"}"#;
    let sleep = r#"{service="Echo",method="Sleep"}"#;
    assert_eq!(get(&format!("ringrpc_requests_total{mul}")), 101.0);
    assert_eq!(get(&format!("ringrpc_request_errors_total{mul}")), 1.0);
    assert_eq!(get(&format!("ringrpc_requests_total{div}")), 7.0);
    assert_eq!(get(&format!("ringrpc_request_errors_total{div}")), 7.0);
    assert_eq!(get(&format!("ringrpc_requests_total{sleep}")), 1.0);
    assert_eq!(
        get(&format!("ringrpc_request_duration_seconds_count{mul}")),
        101.0
    );
    assert_eq!(
        get(r#"ringrpc_request_duration_seconds_bucket{service="Arith",method="Mul",le="+Inf"}"#),
        101.0
    );
    // Echo.Sleep slept 5 ms: its one sample is in the 5 ms bucket or above, not below.
    assert_eq!(
        get(
            r#"ringrpc_request_duration_seconds_bucket{service="Echo",method="Sleep",le="0.0025"}"#
        ),
        0.0
    );
    assert!(get(&format!("ringrpc_request_duration_seconds_sum{sleep}")) >= 0.005);
    assert_eq!(get("ringrpc_read_bytes_total"), sent as f64);
    assert_eq!(get("ringrpc_written_bytes_total"), received as f64);
    assert_eq!(get("ringrpc_connections_total"), 5.0);
    assert_eq!(get("ringrpc_open_connections"), 4.0);
    assert_eq!(get("ringrpc_requests_in_flight"), 0.0);
    drop(clients);
}

/// Scrapes until `key` reads `want` (the counters are read as the workers write them), 5 s at most.
fn scrape_until(addr: SocketAddr, key: &str, want: f64) -> (String, HashMap<String, f64>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (body, samples) = scrape(addr);
        if samples.get(key) == Some(&want) || Instant::now() > deadline {
            return (body, samples);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn refusals_are_counted_by_reason() {
    let metrics = Metrics::new();
    let endpoint = MetricsEndpoint::start("127.0.0.1:0".parse().unwrap(), metrics.clone()).unwrap();
    let server = TestServer::with(
        ServerConfig::default().threads(2).max_connections(1),
        demo::demo_table,
    );
    metrics.count_refusals(server.refusals());
    let malformed = r#"ringrpc_refusals_total{reason="malformed"}"#;
    let (body, samples) = scrape(endpoint.local_addr());
    assert_eq!(samples.get(malformed), Some(&0.0), "{body}");

    // Neither an rpcx frame nor HTTP (which the port serves too): refused as malformed, and its
    // connection closed.
    let mut garbage = server.connect();
    garbage.send(b"HELLO / SMTP\r\n\r\n");
    assert!(garbage.is_closed_within(Duration::from_secs(5)));
    let (body, samples) = scrape_until(endpoint.local_addr(), malformed, 1.0);
    assert_eq!(samples.get(malformed), Some(&1.0), "{body}");

    // One connection per worker at most: of three open at once, one or two are refused at once
    // (two when the kernel hands all three to one worker's listener). The clients see which: a
    // refused connection is closed before any byte. Counted from the clients, not from the
    // server's counter at some moment, which a second refusal may still be about to raise.
    let mut clients: Vec<_> = (0..3).map(|_| server.connect()).collect();
    let cap = r#"ringrpc_refusals_total{reason="connection_cap"}"#;
    let mut refused = 0;
    for client in &mut clients {
        if client.is_closed_within(Duration::from_secs(1)) {
            refused += 1;
        }
    }
    let want = refused as f64;
    assert!(
        (1..=2).contains(&refused),
        "three connections on two workers of one each: {refused} refused"
    );
    let (body, samples) = scrape_until(endpoint.local_addr(), cap, want);
    assert_eq!(samples.get(cap), Some(&want), "{body}");
    assert_eq!(server.refusals().get(Reason::ConnectionCap) as f64, want);
    assert_eq!(
        samples.get(r#"ringrpc_refusals_total{reason="write_timeout"}"#),
        Some(&0.0)
    );
    drop(clients);
}
