//! The request path allocates nothing once buffers are warm: decoding a frame from a receive
//! `BytesMut` and encoding its reply into an output `BytesMut` make no heap allocation.
//!
//! A counting global allocator wraps the system one. The count is per thread (a `const`
//! thread-local, which itself never allocates), so the test harness's other threads do not disturb
//! it. Compressed frames are out of scope: gzip allocates its state and output by design.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::BytesMut;
use ringrpc_codec::*;

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with`: the slot may be gone while the thread is being torn down.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: every method forwards to `System` unchanged; counting touches only a thread-local `Cell`
// with a const initializer and no destructor, which neither allocates nor re-enters the allocator.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

const ROUNDS: usize = 10_000;

/// A request as a client would send it.
struct Request {
    name: &'static str,
    serialize: SerializeType,
    path: &'static [u8],
    method: &'static [u8],
    metadata: &'static [(&'static [u8], &'static [u8])],
    payload: Vec<u8>,
    reply: Vec<u8>,
}

impl Request {
    fn encode(&self, seq: u64) -> Vec<u8> {
        let mut header = Header::new();
        header.set_serialize_type(self.serialize).set_seq(seq);
        let mut buf = BytesMut::new();
        encode_frame(
            &mut buf,
            &header,
            self.path,
            self.method,
            self.metadata.iter().copied(),
            &self.payload,
        );
        buf.to_vec()
    }
}

const TWO_PAIRS: &[(&[u8], &[u8])] = &[
    (b"__ServerTimeout", b"5000"),
    (b"trace-id", b"4bf92f3577b34da6a3ce929d0e0e4736"),
];

fn requests() -> Vec<Request> {
    let echo: Vec<u8> = (0..581u32)
        .map(|i| b"abcdefghijklmnopqrstuvwxyz"[(i % 26) as usize])
        .collect();
    let mul = br#"{"A":10,"B":20}"#.to_vec();
    let mut out = Vec::new();
    for metadata in [&[][..], TWO_PAIRS] {
        out.push(Request {
            name: "raw Echo.Echo, 581 B",
            serialize: SerializeType::Raw,
            path: b"Echo",
            method: b"Echo",
            metadata,
            payload: echo.clone(),
            reply: echo.clone(),
        });
        out.push(Request {
            name: "JSON Arith.Mul",
            serialize: SerializeType::Json,
            path: b"Arith",
            method: b"Mul",
            metadata,
            payload: mul.clone(),
            reply: br#"{"C":200}"#.to_vec(),
        });
    }
    out
}

/// Serves `ROUNDS` copies of `request`, each pass reading `batch` pipelined frames, and returns
/// the allocations made in the first (warming) pass and in all the others.
fn serve(request: &Request, batch: usize) -> (u64, u64) {
    let wire = request.encode(42);
    let mut stream = Vec::new();
    for _ in 0..batch {
        stream.extend_from_slice(&wire);
    }
    let decoder = Decoder::default();
    let mut recv = BytesMut::with_capacity(64 << 10);
    let mut send = BytesMut::with_capacity(64 << 10);
    let mut served = 0;
    let start = allocations();
    let mut before = None;
    for pass in 0..ROUNDS / batch {
        if pass == 1 {
            // The first pass is the warm-up: `split_to` moves the receive buffer to shared
            // storage once, which allocates its reference count.
            before = Some(allocations());
        }
        // Reclaims the consumed space in place: every frame of the last pass has been dropped.
        recv.extend_from_slice(&stream);
        while let Some(msg) = decoder.decode(&mut recv).unwrap() {
            assert_eq!(msg.seq(), 42);
            assert_eq!(msg.payload(), &request.payload[..]);
            encode_reply(&mut send, &msg, msg.metadata().iter(), &request.reply);
            served += 1;
        }
        // The batched write went out.
        send.clear();
    }
    let before = before.unwrap();
    assert_eq!(served, ROUNDS);
    assert!(recv.is_empty());
    (before - start, allocations() - before)
}

#[test]
fn decoding_and_replying_allocate_nothing_once_warm() {
    let mut report = Vec::new();
    for request in requests() {
        for batch in [1, 10] {
            let (warming, made) = serve(&request, batch);
            // Proves the counter sees this path: the first `split_to` allocates a shared header.
            assert!(warming >= 1, "the warm-up pass should have allocated");
            let line = format!(
                "{:<22} {} pairs, batch {:>2}: warm-up {}, then {} allocations in {} requests ({:.4}/req)",
                request.name,
                request.metadata.len(),
                batch,
                warming,
                made,
                ROUNDS - batch,
                made as f64 / (ROUNDS - batch) as f64
            );
            println!("{line}");
            report.push((made, line));
        }
    }
    let failed: Vec<_> = report.iter().filter(|(n, _)| *n != 0).collect();
    assert!(failed.is_empty(), "allocations on a warm path: {failed:#?}");
}

#[test]
fn the_counter_sees_allocations() {
    // Guards the test above against a counter that counts nothing.
    let before = allocations();
    let v = std::hint::black_box(vec![1u8; 100]);
    drop(v);
    assert_eq!(allocations() - before, 1);
}
