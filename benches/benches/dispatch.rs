//! The dispatch path without sockets: parse a buffered frame, look the method up, decode the
//! arguments, call, encode the reply into a warm output buffer. Arith.Mul over JSON and MsgPack,
//! Echo.Echo with a 581-byte raw payload (the size rpcx-benchmark uses), and a routing miss.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ringrpc_codec::{encode_frame, Header, Limits, Message, SerializeType};
use ringrpc_server::demo::demo_table;
use ringrpc_server::service::Dispatch;

fn frame(path: &str, method: &str, serialize: SerializeType, payload: &[u8]) -> Bytes {
    let mut header = Header::new();
    header.set_seq(1).set_serialize_type(serialize);
    let mut buf = BytesMut::new();
    encode_frame(
        &mut buf,
        &header,
        path.as_bytes(),
        method.as_bytes(),
        [],
        payload,
    );
    buf.freeze()
}

fn dispatch(c: &mut Criterion) {
    let table = demo_table().unwrap();
    let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let limits = Limits::default();
    let msgpack_args = rmp_serde::to_vec_named(&serde_json::json!({"A": 10, "B": 20})).unwrap();
    let cases = [
        (
            "arith_mul_json",
            frame("Arith", "Mul", SerializeType::Json, br#"{"A":10,"B":20}"#),
        ),
        (
            "arith_mul_msgpack",
            frame("Arith", "Mul", SerializeType::MsgPack, &msgpack_args),
        ),
        (
            "echo_581_raw",
            frame("Echo", "Echo", SerializeType::Raw, &[b'x'; 581]),
        ),
        (
            "unknown_method",
            frame("Arith", "Pow", SerializeType::Json, b"{}"),
        ),
    ];
    let mut group = c.benchmark_group("dispatch");
    group.throughput(Throughput::Elements(1));
    for (name, bytes) in cases {
        let mut out = BytesMut::with_capacity(64 << 10);
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || (),
                |()| {
                    out.clear();
                    let request = Message::parse(bytes.clone(), &limits).unwrap();
                    match table.dispatch(request, peer, &mut out) {
                        Dispatch::Done => {}
                        Dispatch::Pending(_) => unreachable!("plain methods reply inline"),
                    }
                    std::hint::black_box(out.len())
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, dispatch);
criterion_main!(benches);
