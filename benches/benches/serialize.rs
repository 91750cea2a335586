//! Criterion benchmarks of the payload codecs on small objects: the JSON arguments and reply of
//! `Arith.Mul` (`{"A":10,"B":20}` → `{"C":200}`), decoded with Go's field matching (exact keys
//! and keys in another case) and encoded into a warm output buffer, beside plain
//! `serde_json::from_slice`, which matches keys exactly, as the peer to quote ratios against. Run:
//! `cargo bench -p ringrpc-benches --bench serialize -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringrpc_server::demo::{ArithArgs, ArithReply};
use ringrpc_server::serialize::{decode_serde, encode_serde};
use ringrpc_server::SerializeType;

fn json(c: &mut Criterion) {
    let mut group = c.benchmark_group("json");
    group.throughput(Throughput::Elements(1));
    for (name, payload) in [
        ("decode_arith_args", &br#"{"A":10,"B":20}"#[..]),
        ("decode_arith_args_lower_case", &br#"{"a":10,"b":20}"#[..]),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| decode_serde::<ArithArgs>(SerializeType::Json, black_box(payload)).unwrap())
        });
    }
    group.bench_function("decode_arith_args_serde_json_exact_keys", |b| {
        b.iter(|| serde_json::from_slice::<ArithArgs>(black_box(br#"{"A":10,"B":20}"#)).unwrap())
    });
    let mut out = BytesMut::with_capacity(4096);
    group.bench_function("encode_arith_reply", |b| {
        b.iter(|| {
            out.clear();
            encode_serde(
                SerializeType::Json,
                black_box(&ArithReply { c: 200 }),
                &mut out,
            )
            .unwrap();
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, json);
criterion_main!(benches);
