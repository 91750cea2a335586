//! End to end: the load generator against real servers on 127.0.0.1.

mod common;

use std::sync::Arc;
use std::time::Duration;

use ringrpc_bench_client::client::Client;
use ringrpc_bench_client::load::{run, LoadConfig, Stop};
use ringrpc_bench_client::report::{ErrorKind, Report, RunInfo};
use ringrpc_bench_client::{Io, Serialization, SlowMix, Workload, WorkloadSpec};

fn load(config: LoadConfig, spec: &WorkloadSpec) -> Report {
    let workload = Arc::new(Workload::new(spec).unwrap());
    run(config, workload, RunInfo::default()).expect("the run completes")
}

fn quick(addr: std::net::SocketAddr) -> LoadConfig {
    LoadConfig {
        addr,
        conns: 4,
        inflight: 16,
        warmup: Duration::ZERO,
        drain: Duration::from_millis(500),
        ..LoadConfig::default()
    }
}

#[test]
fn closed_loop_gets_every_request_answered_and_verified() {
    let addr = common::echo_limit();
    let config = LoadConfig {
        stop: Stop::Requests(20_000),
        verify: true,
        ..quick(addr)
    };
    let report = load(config, &WorkloadSpec::default());
    assert_eq!(report.requests(), 20_000);
    assert_eq!(report.errors(), 0, "{:?}", report.recorder.first_error());
    assert_eq!(report.recorder.latency.len(), 20_000);
    assert!(report.latency_us(0.5) > 0.0);
    assert!(report.throughput_rps() > 0.0);
    assert_eq!(report.info.conns, 4);
}

#[test]
fn closed_loop_by_duration_excludes_the_warmup() {
    let addr = common::echo_limit();
    let config = LoadConfig {
        stop: Stop::Duration(Duration::from_millis(400)),
        warmup: Duration::from_millis(200),
        threads: 2,
        ..quick(addr)
    };
    let report = load(config, &WorkloadSpec::default());
    assert!(
        (report.duration_s - 0.4).abs() < 0.05,
        "{}",
        report.duration_s
    );
    assert!(report.requests() > 100);
    assert_eq!(report.errors(), 0, "{:?}", report.recorder.first_error());
    assert_eq!(report.info.threads, 2);
}

#[test]
fn open_loop_holds_its_rate() {
    let addr = common::echo_limit();
    let config = LoadConfig {
        stop: Stop::Duration(Duration::from_secs(1)),
        warmup: Duration::from_millis(200),
        rate: Some(2_000.0),
        verify: true,
        ..quick(addr)
    };
    let report = load(config, &WorkloadSpec::default());
    // 2,000 intended sends in the measured second, each answered.
    let requests = report.requests() as f64;
    assert!((1_900.0..=2_100.0).contains(&requests), "{requests}");
    assert_eq!(report.errors(), 0, "{:?}", report.recorder.first_error());
    assert!((report.throughput_rps() - 2_000.0).abs() < 150.0);
}

#[test]
fn open_loop_charges_a_stall_to_the_requests_behind_it() {
    // The server stops answering for 300 ms in the middle of the run. A closed loop would simply
    // send less and report mostly fast replies; timed from their intended send times, the open
    // loop's requests show the stall.
    let addr = common::StallingEcho::start(Duration::from_millis(500), Duration::from_millis(300));
    let config = LoadConfig {
        conns: 1,
        inflight: 64,
        stop: Stop::Duration(Duration::from_secs(1)),
        warmup: Duration::from_millis(100),
        rate: Some(1_000.0),
        drain: Duration::from_secs(2),
        ..quick(addr)
    };
    let report = load(config, &WorkloadSpec::default());
    assert!(report.max_us() > 200_000.0, "max {} µs", report.max_us());
    // About 300 of the 1,000 measured requests were due during the stall.
    assert!(
        report.latency_us(0.9) > 50_000.0,
        "p90 {} µs",
        report.latency_us(0.9)
    );
    assert!(report.requests() > 900, "{}", report.requests());
}

#[test]
fn verify_flags_replies_that_are_not_the_expected_answer() {
    // The echo server sends {"A":10,"B":20} back: not an Arith reply.
    let addr = common::echo_limit();
    let spec = WorkloadSpec {
        target: "Arith.Mul".into(),
        serialization: Serialization::Json,
        ..WorkloadSpec::default()
    };
    let config = LoadConfig {
        stop: Stop::Requests(100),
        verify: true,
        ..quick(addr)
    };
    let report = load(config, &spec);
    assert_eq!(report.requests(), 100);
    assert_eq!(report.recorder.errors(ErrorKind::Verify), 100);
    assert!(report.recorder.first_error().unwrap().contains("Arith.Mul"));
}

#[test]
fn hello_say_load_is_verified_against_the_demo_server_and_not_against_an_echo() {
    let spec = WorkloadSpec {
        target: "Hello.Say".into(),
        serialization: Serialization::Protobuf,
        ..WorkloadSpec::default()
    };
    let config = LoadConfig {
        stop: Stop::Requests(5_000),
        verify: true,
        ..quick(common::demo_server())
    };
    let report = load(config.clone(), &spec);
    assert_eq!(report.requests(), 5_000);
    assert_eq!(report.errors(), 0, "{:?}", report.recorder.first_error());

    // The echo limit sends the request back: field1 is not "OK".
    let config = LoadConfig {
        stop: Stop::Requests(100),
        ..config
    };
    let report = load(
        LoadConfig {
            addr: common::echo_limit(),
            ..config
        },
        &spec,
    );
    assert_eq!(report.recorder.errors(ErrorKind::Verify), 100);
    assert!(report.recorder.first_error().unwrap().contains("field1"));
}

#[test]
fn a_silent_server_times_out_after_the_drain() {
    let addr = common::silent_server();
    let config = LoadConfig {
        conns: 2,
        inflight: 8,
        stop: Stop::Duration(Duration::from_millis(200)),
        drain: Duration::from_millis(200),
        ..quick(addr)
    };
    let report = load(config, &WorkloadSpec::default());
    assert_eq!(report.requests(), 0);
    assert_eq!(report.recorder.errors(ErrorKind::Timeout), 16);
}

#[test]
fn epoll_driver_and_several_threads_work_too() {
    let addr = common::echo_limit();
    let spec = WorkloadSpec {
        gzip: true,
        payload: ringrpc_bench_client::workload::pattern_payload(4000),
        metadata: vec![("k".into(), "v".into())],
        ..WorkloadSpec::default()
    };
    let config = LoadConfig {
        io: Io::Epoll,
        threads: 2,
        conns: 3,
        stop: Stop::Requests(3_000),
        verify: true,
        ..quick(addr)
    };
    let report = load(config, &spec);
    assert_eq!(report.requests(), 3_000);
    assert_eq!(report.errors(), 0, "{:?}", report.recorder.first_error());
    assert_eq!(report.info.io, "epoll");
}

#[test]
fn simple_client_calls_the_echo_limit() {
    let addr = common::echo_limit();
    let workload = Workload::new(&WorkloadSpec::default()).unwrap();
    monoio::start::<monoio::LegacyDriver, _>(async move {
        let mut client = Client::connect(addr).await.unwrap();
        for _ in 0..3 {
            let reply = client.call(workload.frame(0)).await.unwrap();
            assert!(reply.header().is_response());
            assert_eq!(reply.service_method(), b"Echo");
            assert_eq!(reply.payload().len(), 581);
        }
    });
}

#[test]
fn go_peer_answers_every_target_correctly() {
    let Some(peer) = common::go_peer() else {
        eprintln!("skipped: target/go/go-rpcx-server is not built (see benches/peers/go-rpcx)");
        return;
    };
    let targets = [
        ("Arith.Mul", Serialization::Json),
        ("Arith.Add", Serialization::MsgPack),
        ("Arith.Mul", Serialization::Protobuf),
        ("Echo.Echo", Serialization::Raw),
        ("Hello.Say", Serialization::Protobuf),
    ];
    for (target, serialization) in targets {
        let spec = WorkloadSpec {
            target: target.into(),
            serialization,
            ..WorkloadSpec::default()
        };
        let config = LoadConfig {
            stop: Stop::Requests(2_000),
            verify: true,
            ..quick(peer.addr)
        };
        let report = load(config, &spec);
        assert_eq!(report.requests(), 2_000, "{target}");
        assert_eq!(
            report.errors(),
            0,
            "{target}: {:?}",
            report.recorder.first_error()
        );
    }
    // Slow requests mixed in, and gzip both ways (Go compresses replies over 1024 bytes).
    let spec = WorkloadSpec {
        gzip: true,
        payload: ringrpc_bench_client::workload::pattern_payload(3000),
        slow: Some(SlowMix {
            percent: 5.0,
            ms: "2".into(),
        }),
        ..WorkloadSpec::default()
    };
    let config = LoadConfig {
        stop: Stop::Requests(1_000),
        verify: true,
        ..quick(peer.addr)
    };
    let report = load(config, &spec);
    assert_eq!(report.errors(), 0, "{:?}", report.recorder.first_error());
    assert!(report.max_us() >= 2_000.0);
}

#[test]
fn frames_larger_than_the_read_buffers_survive_both_ends() {
    let addr = common::echo_limit();
    let spec = WorkloadSpec {
        payload: ringrpc_bench_client::workload::pattern_payload(300_000),
        ..WorkloadSpec::default()
    };
    let config = LoadConfig {
        conns: 2,
        inflight: 4,
        stop: Stop::Requests(200),
        verify: true,
        ..quick(addr)
    };
    let report = load(config, &spec);
    assert_eq!(report.requests(), 200);
    assert_eq!(report.errors(), 0, "{:?}", report.recorder.first_error());
}

#[test]
fn fleet_spreads_connections_and_counts_each_server() {
    let fleet = vec![
        common::echo_limit(),
        common::echo_limit(),
        common::echo_limit(),
    ];
    let config = LoadConfig {
        fleet: fleet.clone(),
        conns: 6,
        threads: 2,
        stop: Stop::Requests(9_000),
        verify: true,
        ..quick(fleet[0])
    };
    let report = load(config, &WorkloadSpec::default());
    assert_eq!(report.errors(), 0, "{:?}", report.recorder.first_error());
    let addrs: Vec<_> = report.servers.iter().map(|s| s.addr).collect();
    assert_eq!(addrs, fleet);
    assert!(
        report.servers.iter().all(|s| s.conns == 2),
        "{:?}",
        report.servers
    );
    assert!(
        report.servers.iter().all(|s| s.requests > 0),
        "{:?}",
        report.servers
    );
    let total: u64 = report.servers.iter().map(|s| s.requests).sum();
    assert_eq!(total, report.requests());
    assert!(report
        .render_text()
        .contains(&format!("server {}", fleet[2])));
}
