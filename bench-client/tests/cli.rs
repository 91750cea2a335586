//! The `ringrpc-bench` binary, run for about a second against the echo-limit server.

mod common;

use std::process::Command;

const BENCH: &str = env!("CARGO_BIN_EXE_ringrpc-bench");

#[test]
fn json_report_has_its_numbers() {
    let addr = common::echo_limit();
    let hist = std::env::temp_dir().join(format!("ringrpc-bench-hist-{}.txt", std::process::id()));
    let output = Command::new(BENCH)
        .args(["--addr", &addr.to_string()])
        .args([
            "--duration",
            "1s",
            "--warmup",
            "200ms",
            "--conns",
            "4",
            "--inflight",
            "8",
        ])
        .args(["--verify", "--json", "--quiet", "--hist-out"])
        .arg(&hist)
        .output()
        .unwrap();
    let report = common::json_report(&output);

    assert!(report["requests"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["errors"].as_u64(), Some(0), "{report}");
    assert!(report["duration_s"].as_f64().unwrap() > 0.9, "{report}");
    assert!(report["throughput_rps"].as_f64().unwrap() > 0.0, "{report}");
    for key in ["p50", "p90", "p99", "p999", "p9999", "max"] {
        let value = report["latency_us"][key].as_f64();
        assert!(
            value.is_some_and(|v| v > 0.0),
            "latency_us.{key} in {report}"
        );
    }

    let distribution = std::fs::read_to_string(&hist).unwrap();
    let _ = std::fs::remove_file(&hist);
    assert!(distribution.contains("Percentile"));
    assert!(distribution.contains("#[Max"));
}

#[test]
fn text_report_and_exit_status() {
    let addr = common::echo_limit();
    let output = Command::new(BENCH)
        .args(["--addr", &addr.to_string()])
        .args([
            "--requests",
            "500",
            "--warmup",
            "0s",
            "--target",
            "Arith.Mul",
        ])
        .args(["--serialize", "json", "--verify", "--quiet"])
        .output()
        .unwrap();
    // The echo server does not compute C: --verify fails, and says so.
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("verify 500"), "{text}");
    assert!(text.contains("p99.9"), "{text}");
}

#[test]
fn bad_arguments_exit_with_2() {
    let output = Command::new(BENCH)
        .args([
            "--addr",
            "127.0.0.1:1",
            "--requests",
            "1",
            "--warmup",
            "0s",
            "--quiet",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no connection"));
    let output = Command::new(BENCH)
        .args(["--target", "nodot"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn tls_ca_loads_a_server_over_tls_with_every_reply_verified() {
    let addr = common::demo_server_tls();
    let output = Command::new(BENCH)
        .args(["--addr", &addr.to_string()])
        .args(["--tls-ca"])
        .arg(common::tls_data("test-ca.pem"))
        .args(["--target", "Arith.Mul", "--serialize", "json"])
        .args(["--requests", "2000", "--warmup", "0s", "--conns", "2"])
        .args(["--verify", "--json", "--quiet"])
        .output()
        .unwrap();
    let report = common::json_report(&output);
    assert_eq!(report["requests"].as_u64(), Some(2000), "{report}");
    assert_eq!(report["errors"].as_u64(), Some(0), "{report}");
}
