//! The steady-state request path allocates nothing: a counting global allocator watches a real
//! server (its worker thread, io_uring reads and writes, decode, dispatch, encode) serve
//! pipelined `Echo.Echo` and `Arith.Mul` (JSON and MsgPack) requests once its buffers are warm,
//! and requests sent one at a time (each a lone frame: lent to the request where it lies, or,
//! for a method whose argument keeps a `Bytes` handle on it, split off as before).
//! The client side of this test allocates nothing while measuring: frames are encoded up front
//! and replies are read into a fixed buffer.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{request, TestServer};
use ringrpc_codec::SerializeType;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Sends `rounds` bursts of `burst` copies and reads every reply back; returns allocations made.
fn serve_rounds(
    stream: &mut std::net::TcpStream,
    burst: &[u8],
    per_burst: usize,
    rounds: usize,
) -> usize {
    let mut buf = vec![0u8; 1 << 20];
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..rounds {
        stream.write_all(burst).unwrap();
        let mut replies = 0;
        let mut filled = 0;
        while replies < per_burst {
            let n = match stream.read(&mut buf[filled..]) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => panic!("{e}"),
            };
            assert!(n > 0, "server closed");
            filled += n;
            // Count whole frames and keep the tail.
            let mut at = 0;
            while filled - at >= 16 {
                let len =
                    16 + u32::from_be_bytes(buf[at + 12..at + 16].try_into().unwrap()) as usize;
                if filled - at < len {
                    break;
                }
                assert_eq!(buf[at + 2] & 0x83, 0x80, "a normal response");
                at += len;
                replies += 1;
            }
            buf.copy_within(at..filled, 0);
            filled -= at;
        }
    }
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

#[test]
fn steady_state_requests_allocate_nothing() {
    let server = TestServer::start(1);
    let echo = request(1, "Echo", "Echo", SerializeType::Raw, &[], &[b'x'; 581]);
    let cases = [
        ("Echo.Echo raw 581 B", echo.clone(), 32),
        ("Echo.Echo raw 581 B, one at a time", echo, 1),
        (
            "Echo.Deadline raw (a Bytes argument), one at a time",
            request(4, "Echo", "Deadline", SerializeType::Raw, &[], b"left?"),
            1,
        ),
        (
            "Arith.Mul JSON",
            request(
                2,
                "Arith",
                "Mul",
                SerializeType::Json,
                &[],
                br#"{"A":10,"B":20}"#,
            ),
            32,
        ),
        (
            "Arith.Mul MsgPack",
            request(
                3,
                "Arith",
                "Mul",
                SerializeType::MsgPack,
                &[],
                &[0x82, 0xa1, b'A', 10, 0xa1, b'B', 20],
            ),
            32,
        ),
    ];
    for (name, frame, per_burst) in &cases {
        let mut client = server.connect();
        let per_burst = *per_burst;
        let burst = frame.repeat(per_burst);
        // Warm-up: buffers grow to their working size, pools fill.
        serve_rounds(&mut client.stream, &burst, per_burst, 500);
        let rounds = 300;
        let allocations = serve_rounds(&mut client.stream, &burst, per_burst, rounds);
        let requests = rounds * per_burst;
        println!(
            "{name}: {allocations} allocations in {requests} requests ({:.4} per request)",
            allocations as f64 / requests as f64
        );
        assert_eq!(allocations, 0, "{name}: the warm request path allocated");
    }
}
