//! The dispatch path without sockets: parse a buffered frame, look the method up, decode the
//! arguments, call, encode the reply into a warm output buffer. Arith.Mul over JSON and MsgPack,
//! Echo.Echo with a 581-byte raw payload (the size rpcx-benchmark uses; the demo's method borrows
//! it, and `echo_581_raw_bytes_argument` is the same echo taking it as `Bytes`), a routing miss,
//! and two methods called in turn (each call misses the last-route cache and looks its names up).

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ringrpc_benches::request_frame;
use ringrpc_codec::{Limits, Message, SerializeType};
use ringrpc_server::demo::demo_table;
use ringrpc_server::service::Dispatch;
use ringrpc_server::{Service, ServiceTable};

fn dispatch(c: &mut Criterion) {
    let table = demo_table(ringrpc_server::WorkerId(0)).unwrap();
    let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let limits = Limits::default();
    let msgpack_args = rmp_serde::to_vec_named(&serde_json::json!({"A": 10, "B": 20})).unwrap();
    // The echo as it was written before methods could borrow the payload: a `Bytes` argument (a
    // reference-counted slice of the frame) returned as the reply.
    let bytes_echo = ServiceTable::builder()
        .service(Service::new("Echo").method("Echo", |_, payload: Bytes| Ok(payload)))
        .unwrap()
        .build();
    let cases = [
        (
            "arith_mul_json",
            request_frame("Arith", "Mul", SerializeType::Json, br#"{"A":10,"B":20}"#),
        ),
        (
            "arith_mul_msgpack",
            request_frame("Arith", "Mul", SerializeType::MsgPack, &msgpack_args),
        ),
        (
            "echo_581_raw",
            request_frame("Echo", "Echo", SerializeType::Raw, &[b'x'; 581]),
        ),
        (
            "echo_581_raw_bytes_argument",
            request_frame("Echo", "Echo", SerializeType::Raw, &[b'x'; 581]),
        ),
        (
            "unknown_method",
            request_frame("Arith", "Pow", SerializeType::Json, b"{}"),
        ),
    ];
    let mut group = c.benchmark_group("dispatch");
    group.throughput(Throughput::Elements(1));
    for (name, bytes) in cases {
        let mut out = BytesMut::with_capacity(64 << 10);
        let table = if name == "echo_581_raw_bytes_argument" {
            &bytes_echo
        } else {
            &table
        };
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || (),
                |()| {
                    out.clear();
                    let request = Message::parse(bytes.clone(), &limits).unwrap();
                    match table.dispatch(request, peer, &mut out) {
                        Dispatch::Done => {}
                        Dispatch::Pending(_) | Dispatch::Close => {
                            unreachable!("plain methods reply inline, nothing rejects")
                        }
                    }
                    std::hint::black_box(out.len())
                },
                BatchSize::SmallInput,
            )
        });
    }
    // Two methods in turn: every call takes the lookup path, not the last route.
    let alternating = [
        request_frame("Arith", "Mul", SerializeType::Json, br#"{"A":10,"B":20}"#),
        request_frame("Arith", "Add", SerializeType::Json, br#"{"A":10,"B":20}"#),
    ];
    let mut out = BytesMut::with_capacity(64 << 10);
    group.throughput(Throughput::Elements(2));
    group.bench_function("arith_mul_add_in_turn_json", |b| {
        b.iter(|| {
            out.clear();
            for bytes in &alternating {
                let request = Message::parse(bytes.clone(), &limits).unwrap();
                assert!(matches!(
                    table.dispatch(request, peer, &mut out),
                    Dispatch::Done
                ));
            }
            std::hint::black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, dispatch);
criterion_main!(benches);
