//! Memory at scale: 10,000 idle connections to the `ringrpc-server` binary (2 workers) and the
//! server's resident memory read from /proc/PID/status, before, while idle, after every
//! connection made one call, and once they are idle again.
//!
//! Bounds asserted (the kernel's socket memory is not in a process's RSS):
//! - 10,000 connections that sent nothing: under 4 KiB each above the empty server, and under
//!   64 MiB in all — a new connection holds no buffer until its first byte (measured with the
//!   debug build: about 1.1 KiB each, 23 MiB in all; 3.1 KiB and 49 MiB while the connection
//!   task held its future twice);
//! - after one call each and a few seconds quiet: under 6 KiB each above the empty server, and
//!   fallen back from the RSS right after the calls by at least 256 B per connection — each keeps
//!   its connection state (loop, writer task, limits watch, push registration) and no buffer: it
//!   waits for its next request without a parked read buffer (`connection::WaitReadable`), and
//!   the burst's output buffers went back to the per-core pool (capped at 4 MiB, trimmed every
//!   4 s). Measured with the debug build: 59.5 MiB right after, 53.6 MiB idle again, about 4.1
//!   KiB each (with a 1 KiB read parked per connection: 59.4 and 59.5 MiB; 7.6 KiB and 95 MiB
//!   while the connection task held its future twice).
//! - then 1,000 of them make a 48 KiB call each, every one lent large buffers (the server runs
//!   with `--max-large-readers` past the connections; by default 64 a core are, and with 16 the
//!   same burst took 61 MiB, 1 MiB above the idle connections): once quiet, the RSS gives back at
//!   least half of what the burst added (measured, debug build: 98 MiB right after, 66 MiB a few
//!   seconds later, 60 MiB before it; with a purge delay the RSS stayed at its peak).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::binary::ServerProcess;
use ringrpc_codec::SerializeType;

const CONNECTIONS: usize = 10_000;
/// Connections that make a bulk call after the small ones (see the end of the test).
const BULK: usize = 1_000;
const MIB: u64 = 1 << 20;

/// Raises this process's open-file limit (the server inherits it): each side holds one end of
/// every connection.
fn raise_nofile(want: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = want.min(limit.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    assert!(
        limit.rlim_cur >= want,
        "RLIMIT_NOFILE hard limit {} is below {want}",
        limit.rlim_max
    );
}

/// VmRSS of a process, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kib * 1024
}

/// RSS once it has stopped moving (the allocator returns memory with a delay).
fn settled_rss(pid: u32, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    let mut last = rss(pid);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = rss(pid);
        if now.abs_diff(last) < MIB / 4 || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

#[test]
fn idle_connections_hold_no_buffers() {
    raise_nofile(CONNECTIONS as u64 + 1000);
    // RINGRPC_SERVER_BIN: measure another build (e.g. the release binary) the same way.
    let binary = std::env::var("RINGRPC_SERVER_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_ringrpc-server").to_string());
    // Every bulk connection below is lent large buffers (by default at most 16 a core are), so
    // that the burst's memory is large and its return measurable.
    let connections = CONNECTIONS.to_string();
    let server = ServerProcess::start_binary(
        &binary,
        &["--threads", "2", "--max-large-readers", &connections],
    );
    let (addr, pid) = (server.addr, server.pid() as u32);
    let empty = settled_rss(pid, Duration::from_secs(3));

    let mut conns: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|i| TcpStream::connect(addr).unwrap_or_else(|e| panic!("connection {i}: {e}")))
        .collect();
    let idle = settled_rss(pid, Duration::from_secs(5));
    let per_connection = idle.saturating_sub(empty) / CONNECTIONS as u64;
    println!(
        "RSS: empty {:.1} MiB, {CONNECTIONS} idle {:.1} MiB ({per_connection} B per connection)",
        empty as f64 / MIB as f64,
        idle as f64 / MIB as f64
    );
    assert!(
        per_connection < 4096,
        "{per_connection} B per idle connection"
    );
    assert!(idle < 64 * MIB, "{} MiB with idle connections", idle / MIB);

    // Every connection makes one call: requests first, then the replies.
    let frame = common::request(7, "Echo", "Echo", SerializeType::Raw, &[], &[b'x'; 581]);
    for conn in &mut conns {
        conn.write_all(&frame).unwrap();
    }
    let mut reply = vec![0u8; frame.len()];
    for conn in &mut conns {
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        conn.read_exact(&mut reply).unwrap();
        assert_eq!(reply[2] & 0x80, 0x80, "a response");
        assert_eq!(&reply[reply.len() - 581..], &[b'x'; 581][..]);
    }
    let busy = rss(pid);
    // Quiet again: the sweeper gives buffers back within a second, the pool trims every 4 s.
    std::thread::sleep(Duration::from_secs(6));
    let after = settled_rss(pid, Duration::from_secs(10));
    println!(
        "RSS: right after one call each {:.1} MiB, idle again {:.1} MiB",
        busy as f64 / MIB as f64,
        after as f64 / MIB as f64
    );
    let per_connection = after.saturating_sub(empty) / CONNECTIONS as u64;
    assert!(
        per_connection < 6 * 1024,
        "{per_connection} B per connection once idle again"
    );
    // Falls back: a connection that made one call waits for its next one holding no read
    // buffer (its 1 KiB parked read goes back to the pool, which frees what is past its cap).
    assert!(
        after + CONNECTIONS as u64 * 256 <= busy,
        "RSS did not fall back once the connections went idle: {:.1} MiB right after the calls, \
         {:.1} MiB once idle",
        busy as f64 / MIB as f64,
        after as f64 / MIB as f64
    );

    // A bulk burst: BULK connections each send a 48 KiB request. Each moves to large buffers
    // (its read parked in a 64 KiB buffer, a 64 KiB output buffer kept after its reply; the
    // server lends large buffers to all of them here), about 32 to 38 KiB per connection
    // resident as measured (91 MiB for 1,000 before the loans); once quiet the sweeper takes both
    // back, the pool keeps at most its cap, and the allocator returns the rest (the binary sets
    // mimalloc's purge delay to none: a delayed purge never ran in a server gone quiet, and the
    // RSS stayed at its peak): the RSS falls back.
    let payload = vec![b'y'; 48 << 10];
    let bulk_frame = common::request(8, "Echo", "Echo", SerializeType::Raw, &[], &payload);
    for conn in &mut conns[..BULK] {
        conn.write_all(&bulk_frame).unwrap();
    }
    let mut bulk_reply = vec![0u8; bulk_frame.len()];
    for conn in &mut conns[..BULK] {
        conn.read_exact(&mut bulk_reply).unwrap();
        assert_eq!(
            &bulk_reply[bulk_reply.len() - payload.len()..],
            &payload[..]
        );
    }
    let bulk_busy = rss(pid);
    std::thread::sleep(Duration::from_secs(6));
    let bulk_after = settled_rss(pid, Duration::from_secs(10));
    println!(
        "RSS: right after a {} KiB call on {BULK} connections {:.1} MiB, idle again {:.1} MiB",
        bulk_frame.len() >> 10,
        bulk_busy as f64 / MIB as f64,
        bulk_after as f64 / MIB as f64
    );
    // Half of what the burst added, at least, must be back with the allocator.
    let burst = bulk_busy.saturating_sub(after);
    assert!(
        burst >= 16 * MIB,
        "the burst added {} MiB: too little to measure its return",
        burst / MIB
    );
    assert!(
        bulk_after + burst / 2 <= bulk_busy,
        "RSS did not fall back after the bulk burst: {} MiB right after, {} MiB once quiet",
        bulk_busy / MIB,
        bulk_after / MIB
    );
    drop(conns);
}
