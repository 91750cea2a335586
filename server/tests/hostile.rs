//! The `ringrpc-server` binary, 2 workers, under attack: 500 slowloris connections (5 bytes of a
//! frame, then a byte every 200 ms) and 500 that send 16 KiB requests and never read a reply,
//! while 16 good clients run. The good clients get every reply, right; the hostile ones are
//! closed by the frame-read and write timeouts (2 s here); the refusal log is rate-limited; and
//! the server's peak RSS (`VmHWM` in /proc/PID/status) stays under [`RSS_BOUND_KIB`].

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::binary::ServerProcess;
use common::request;
use ringrpc_codec::SerializeType;

const SLOWLORIS: usize = 500;
const DEAF: usize = 500;
const GOOD: usize = 16;
/// The bound on the server's peak resident memory, 2 workers: 72 MiB. The aim was under
/// 64 MiB with the default settings (the Go server takes 50 in the same test, release build).
/// Measured here, debug build as CI runs it: 55 to 61 MiB (18 runs; 11 MiB of it the binary's
/// mapped code, the idle debug server 13 MiB), against 70 to 84 MiB (11 runs) before the last
/// two changes below; the release build (pointed at by hand) 50 to 53 MiB (4 runs) against 64
/// to 70 MiB (8 runs; the idle release server 6 MiB). The margin is for the spread between
/// sittings and machines, which has been wide (a shared 2-core machine: the attack took 4.3 to
/// 8 s).
///
/// Where the memory is at the peak, counted with an instrumented build (both workers): the
/// never-readers' unsent replies, about 15 KiB each in a write the socket took in part (7 to 9
/// MiB); read buffers, mostly the never-readers' unread requests (8 to 10 MiB: a paused
/// connection keeps the frames it read, in a buffer that fits them, or in its 64 KiB buffer if it
/// holds a loan and the buffer is more than half full); the pools' free buffers
/// (`max_pooled_bytes`, 2 to 3 MiB a core); connection state (1.8 KiB each before the first
/// byte) and mimalloc's partly used 512 KiB pages (6 to 11 MiB committed past the blocks in use).
///
/// What brought it down, in order:
/// - loans of large buffers (`max_large_readers`, 64 a core): past them a streaming connection
///   reads 8 KiB or the rest of its frame into a buffer that fits and batches its replies in
///   buffers of their size (`buffers::LargeLoan`); 113 to 126 MiB before, 73 to 85 after;
/// - past the reply budget, a connection with a write in progress makes no reply until it
///   finishes (`ConnectionWatch::over_budget`): most never-readers held a 16 KiB reply behind
///   their unsent write; 70 to 84 MiB before (11 runs), 69 to 73 after (7 runs);
/// - a large buffer grown past its class (128 KiB and more) goes back to the pool only while the
///   core has loans left (`Pool::give`): mimalloc packs blocks of 64 to 512 KiB into 4 MiB pages,
///   and pooled grown buffers kept 31 to 41 MiB of such pages for 15 to 19 MiB of blocks in use;
///   69 to 73 MiB before, 55 to 61 after.
///
/// Tried and dropped: freeing grown large buffers always (as low, but 16 KiB requests at 10 x 32
/// lost 15 to 30 % of their req/s); keeping them but freeing them while the reply budget is
/// exceeded (64 to 71 MiB: they were pooled before the budget was); keeping at most 4 or 16 of
/// them (62 to 65, 66 to 72 MiB); giving every allocation of 64 to 512 KiB a page of its own
/// (`mi_malloc_aligned` past 64 KiB alignment: 60 to 63 MiB, 15 % more server CPU per 16 KiB
/// request, each freed batch returned to the OS and faulted back in); rounding 10 to 64 KiB
/// allocations up (no better); past the budget, granting no new loans and shrinking paused
/// connections' read buffers to their bytes (within the noise); clearing the pool's free buffers
/// when a connection pauses (within the noise: their pages stayed for the blocks beside them);
/// a readiness wait without a buffer for streaming connections past the loans (not measured: at
/// the peak nearly every never-reader is paused, not waiting in a read); pausing reads while the
/// writer is congested, without the budget (no lower peak, a longer attack); mimalloc's v2 (71
/// to 74 MiB at 64 loans) and its page options (`page_full_retain` 0, `page_commit_on_demand`:
/// within the noise). Before the loans: `--max-pooled-bytes 1048576` (67 to 75 MiB release,
/// about 15 % more server CPU per 16 KiB request), `--read-buffer 32768` (56 to 64 MiB, a quarter
/// of the throughput of 16 KiB requests), read sizes that follow the connection's reads in
/// power-of-two classes up to 64 KiB (little saved, 16 KiB requests about 30 % dearer).
const RSS_BOUND_KIB: u64 = 72 << 10;
/// The hostile connections must all be closed by then: the timeouts are 2 s, the rest is room
/// for a machine shared with other builds.
const HOSTILE_DEADLINE: Duration = Duration::from_secs(25);

fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the local struct passed, nothing else.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
}

/// A field of /proc/PID/status, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn start_server() -> ServerProcess {
    ServerProcess::start(&[
        "--threads",
        "2",
        "--frame-read-timeout",
        "2",
        "--write-timeout",
        "2",
        "--idle-timeout",
        "30",
        "--grace-period",
        "5",
    ])
}

/// Whether a non-blocking socket has been closed by the server (EOF or reset).
fn closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

/// Slowloris: 5 bytes of a frame, then one more every 200 ms to each, until all are closed.
/// Returns how many were closed and when the last one was.
fn slowloris(addr: SocketAddr) -> (usize, Duration) {
    let frame = request(1, "Echo", "Echo", SerializeType::Raw, &[], &[9u8; 1000]);
    let mut conns: Vec<Option<(TcpStream, usize)>> = (0..SLOWLORIS)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(&frame[..5]).unwrap();
            s.set_nonblocking(true).unwrap();
            Some((s, 5))
        })
        .collect();
    let started = Instant::now();
    let mut last = Duration::ZERO;
    while started.elapsed() < HOSTILE_DEADLINE && conns.iter().any(Option::is_some) {
        std::thread::sleep(Duration::from_millis(200));
        for slot in conns.iter_mut() {
            let Some((stream, sent)) = slot else { continue };
            let gone = stream.write(&frame[*sent..*sent + 1]).is_err() || closed(stream);
            *sent += 1;
            if gone {
                *slot = None;
                last = started.elapsed();
            }
        }
    }
    (conns.iter().filter(|c| c.is_none()).count(), last)
}

/// Never reads: sends 16 KiB requests as fast as the socket takes them, until all are closed.
fn deaf(addr: SocketAddr) -> (usize, Duration) {
    let frame = request(
        2,
        "Echo",
        "Echo",
        SerializeType::Raw,
        &[],
        &vec![4u8; 16 << 10],
    );
    let mut conns: Vec<Option<(TcpStream, usize)>> = (0..DEAF)
        .map(|_| {
            let socket =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            // A small window, as a peer that does not read soon advertises, and a small send
            // buffer: the point is a peer that stops reading, not moving gigabytes.
            socket.set_recv_buffer_size(4096).unwrap();
            socket.set_send_buffer_size(16 << 10).unwrap();
            socket.connect(&addr.into()).unwrap();
            socket.set_nonblocking(true).unwrap();
            Some((TcpStream::from(socket), 0))
        })
        .collect();
    let started = Instant::now();
    let mut last = Duration::ZERO;
    while started.elapsed() < HOSTILE_DEADLINE && conns.iter().any(Option::is_some) {
        for slot in conns.iter_mut() {
            let Some((stream, at)) = slot else { continue };
            let gone = loop {
                match stream.write(&frame[*at..]) {
                    Ok(n) => *at = (*at + n) % frame.len(),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
                    Err(_) => break true,
                }
            };
            if gone {
                *slot = None;
                last = started.elapsed();
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (conns.iter().filter(|c| c.is_none()).count(), last)
}

/// A good client: echo calls of varying size, each checked, a millisecond apart, until `stop`.
fn good(addr: SocketAddr, id: u64, stop: &AtomicBool, replies: &AtomicU64) {
    let mut client = common::Client::connect(addr);
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        let payload: Vec<u8> = (0..(100 + (seq * 37 + id) % 2000))
            .map(|i| (i ^ seq ^ id) as u8)
            .collect();
        let reply = client.echo(seq, &payload);
        assert_eq!(reply.seq(), seq, "client {id}");
        assert_eq!(reply.payload(), &payload[..], "client {id} seq {seq}");
        replies.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn hostile_connections_are_closed_and_good_clients_served_within_the_memory_bound() {
    raise_fd_limit();
    let mut server = start_server();
    let addr = server.addr;
    let pid = server.pid() as u32;
    let stop = Arc::new(AtomicBool::new(false));
    let replies = Arc::new(AtomicU64::new(0));
    let good_clients: Vec<_> = (0..GOOD as u64)
        .map(|id| {
            let (stop, replies) = (stop.clone(), replies.clone());
            std::thread::spawn(move || good(addr, id, &stop, &replies))
        })
        .collect();
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut max_rss = 0;
            while !stop.load(Ordering::Relaxed) {
                max_rss = max_rss.max(status_kib(pid, "VmRSS:"));
                std::thread::sleep(Duration::from_millis(100));
            }
            max_rss
        })
    };
    let started = Instant::now();
    let slow = std::thread::spawn(move || slowloris(addr));
    let deaf = std::thread::spawn(move || deaf(addr));
    let (slow_closed, slow_last) = slow.join().unwrap();
    let (deaf_closed, deaf_last) = deaf.join().unwrap();
    let hostile_time = started.elapsed();
    // The good clients keep going a little after the attack.
    std::thread::sleep(Duration::from_millis(500));
    let peak_kib = status_kib(pid, "VmHWM:");
    stop.store(true, Ordering::Relaxed);
    for client in good_clients {
        client
            .join()
            .expect("a good client got a wrong or missing reply");
    }
    let sampled_kib = sampler.join().unwrap();
    let served = replies.load(Ordering::Relaxed);

    server.signal(libc::SIGTERM);
    let status = server.exit_within(Duration::from_secs(30));
    let log = server.log();
    let refusal_lines = log.lines().filter(|l| l.contains("timeout")).count();
    eprintln!(
        "hostile: {slow_closed}/{SLOWLORIS} slowloris closed (last at {slow_last:?}), \
         {deaf_closed}/{DEAF} deaf closed (last at {deaf_last:?}), attack over in \
         {hostile_time:?}; {served} good replies; server peak RSS {} KiB (VmHWM; sampled max \
         {sampled_kib} KiB), bound {RSS_BOUND_KIB} KiB; {refusal_lines} timeout log lines",
        peak_kib
    );
    assert_eq!(slow_closed, SLOWLORIS, "every slowloris connection closed");
    assert_eq!(deaf_closed, DEAF, "every deaf connection closed");
    assert!(
        served >= 500,
        "good clients made progress: {served} replies"
    );
    assert!(
        peak_kib < RSS_BOUND_KIB,
        "server peak RSS {peak_kib} KiB over the {RSS_BOUND_KIB} KiB bound"
    );
    assert!(
        refusal_lines < SLOWLORIS + DEAF,
        "{refusal_lines} log lines for {} refusals: not rate-limited",
        SLOWLORIS + DEAF
    );
    assert!(status.success(), "exit status {status:?}");
}
