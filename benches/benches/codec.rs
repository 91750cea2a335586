//! Criterion benchmarks of the codec on the request path: decoding requests from a warm receive
//! buffer (pipelined, and one per read), encoding requests and replies into a warm output buffer, and gzip both ways.
//!
//! Requests: a raw `Echo.Echo` with a 581-byte payload and a JSON `Arith.Mul` with `{"A":10,"B":20}`,
//! each without metadata and with two pairs. Run:
//! `cargo bench -p ringrpc-benches --bench codec -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringrpc_codec::compress::gzip_into;
use ringrpc_codec::{
    encode_frame, encode_plain_reply_with, encode_reply, gunzip, Decoder, FrameRun, Header,
    Message, SerializeType,
};

/// One benchmarked request and the reply a service would give.
struct Case {
    name: String,
    serialize: SerializeType,
    path: &'static [u8],
    method: &'static [u8],
    metadata: &'static [(&'static [u8], &'static [u8])],
    payload: Vec<u8>,
    reply: Vec<u8>,
}

const TWO_PAIRS: &[(&[u8], &[u8])] = &[
    (b"__ServerTimeout", b"5000"),
    (b"trace-id", b"4bf92f3577b34da6a3ce929d0e0e4736"),
];

fn cases() -> Vec<Case> {
    let echo: Vec<u8> = (0..581u32)
        .map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789"[(i * 7 % 36) as usize])
        .collect();
    let mut out = Vec::new();
    for (suffix, metadata) in [("", &[][..]), ("+meta2", TWO_PAIRS)] {
        out.push(Case {
            name: format!("echo581{suffix}"),
            serialize: SerializeType::Raw,
            path: b"Echo",
            method: b"Echo",
            metadata,
            payload: echo.clone(),
            reply: echo.clone(),
        });
        out.push(Case {
            name: format!("mul_json{suffix}"),
            serialize: SerializeType::Json,
            path: b"Arith",
            method: b"Mul",
            metadata,
            payload: br#"{"A":10,"B":20}"#.to_vec(),
            reply: br#"{"C":200}"#.to_vec(),
        });
    }
    out
}

impl Case {
    fn header(&self) -> Header {
        let mut header = Header::new();
        header.set_serialize_type(self.serialize).set_seq(42);
        header
    }

    fn encode_request(&self, out: &mut BytesMut) -> usize {
        encode_frame(
            out,
            &self.header(),
            self.path,
            self.method,
            self.metadata.iter().copied(),
            &self.payload,
        )
    }

    fn request(&self) -> Message {
        let mut buf = BytesMut::new();
        self.encode_request(&mut buf);
        Decoder::default().decode(&mut buf).unwrap().unwrap()
    }
}

/// Frames buffered per refill of the receive buffer, as if one read returned that many.
const PIPELINE: u64 = 256;

/// Times `iters` calls of `decode_one`, each taking one frame off `recv`, refilled from `batch`
/// (`PIPELINE` frames of `frame_len` bytes) whenever it runs out: only the decode calls are
/// timed; refilling the buffer (a socket read) is not.
fn time_decodes(
    iters: u64,
    recv: &mut BytesMut,
    batch: &[u8],
    frame_len: usize,
    mut decode_one: impl FnMut(&mut BytesMut),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(PIPELINE);
        recv.extend_from_slice(&batch[..frame_len * n as usize]);
        let start = Instant::now();
        for _ in 0..n {
            decode_one(recv);
        }
        total += start.elapsed();
        left -= n;
    }
    total
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for case in cases() {
        let mut wire = BytesMut::new();
        let frame_len = case.encode_request(&mut wire);
        let batch: Vec<u8> = wire
            .iter()
            .copied()
            .cycle()
            .take(frame_len * PIPELINE as usize)
            .collect();
        let decoder = Decoder::default();
        let mut recv = BytesMut::with_capacity(batch.len());
        group.throughput(Throughput::Bytes(frame_len as u64));
        group.bench_function(BenchmarkId::from_parameter(&case.name), |b| {
            b.iter_custom(|iters| {
                time_decodes(iters, &mut recv, &batch, frame_len, |recv| {
                    black_box(decoder.decode(recv).unwrap().unwrap());
                })
            })
        });
        // As a connection decodes: every frame parsed into one message kept across frames
        // (`Decoder::decode_into`), not returned as a new one.
        let mut kept = Message::empty();
        group.bench_function(BenchmarkId::new("into_kept_message", &case.name), |b| {
            b.iter_custom(|iters| {
                time_decodes(iters, &mut recv, &batch, frame_len, |recv| {
                    assert!(decoder.decode_into(recv, &mut kept).unwrap());
                    black_box(kept.payload().len());
                })
            })
        });
        kept.clear();
        // As the server's connections decode: the frames buffered cut off in one run, and the
        // messages of the run sharing one handle on it (`Decoder::next_into`); the kept message
        // lets go of it after the run's last frame, as a connection does.
        let mut run = FrameRun::default();
        group.bench_function(BenchmarkId::new("by_runs", &case.name), |b| {
            b.iter_custom(|iters| {
                time_decodes(iters, &mut recv, &batch, frame_len, |recv| {
                    assert!(decoder.next_into(recv, &mut run, &mut kept).unwrap());
                    black_box(kept.payload().len());
                    if run.remaining() == 0 {
                        kept.clear();
                    }
                })
            })
        });
        kept.clear();
    }
    group.finish();
}

/// A latency-bound connection's frames, one per read: split off (`Decoder::next_into`, whose
/// buffer is reclaimed before the next read) or lent where they lie (`Decoder::next_lending_into`,
/// whose buffer is refilled from its start once the lend ends). Each iteration reads the frame
/// into the buffer (a copy) and takes it, as a connection does.
fn decode_lone(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_lone");
    for case in cases() {
        let mut wire = BytesMut::new();
        let frame_len = case.encode_request(&mut wire);
        let decoder = Decoder::default();
        let mut recv = BytesMut::with_capacity(4096);
        let mut run = FrameRun::default();
        let mut kept = Message::empty();
        group.throughput(Throughput::Bytes(frame_len as u64));
        group.bench_function(BenchmarkId::new("split", &case.name), |b| {
            b.iter(|| {
                // The next read's room, as `FrameReader::make_room` asks: a reclaim here.
                recv.reserve(frame_len);
                recv.extend_from_slice(&wire);
                assert!(decoder.next_into(&mut recv, &mut run, &mut kept).unwrap());
                black_box(kept.payload().len());
                kept.clear();
            })
        });
        group.bench_function(BenchmarkId::new("lent", &case.name), |b| {
            b.iter(|| {
                recv.reserve(frame_len);
                recv.extend_from_slice(&wire);
                // SAFETY: the lend ends below, before `recv` is written again.
                let taken = unsafe { decoder.next_lending_into(&mut recv, &mut run, &mut kept) };
                assert!(taken.unwrap());
                black_box(kept.payload().len());
                assert!(run.end_lend(&recv, &mut kept));
            })
        });
    }
    group.finish();
}

fn encode_request(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_request");
    for case in cases() {
        let mut out = BytesMut::with_capacity(4096);
        group.bench_function(BenchmarkId::from_parameter(&case.name), |b| {
            b.iter(|| {
                black_box(case.encode_request(&mut out));
                out.clear();
            })
        });
    }
    group.finish();
}

fn encode_reply_bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_reply");
    for case in cases() {
        let request = case.request();
        let mut out = BytesMut::with_capacity(4096);
        // The reply carries as much metadata as the request did (a service setting two keys).
        group.bench_function(BenchmarkId::from_parameter(&case.name), |b| {
            b.iter(|| {
                black_box(encode_reply(
                    &mut out,
                    black_box(&request),
                    case.metadata.iter().copied(),
                    black_box(&case.reply),
                ));
                out.clear();
            })
        });
    }
    group.finish();
}

/// The reply most calls get (no error, no response metadata), by the general writer and by the
/// codec's shortest one (`encode_plain_reply_with`, which the server uses for it).
fn encode_plain_reply_bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_plain_reply");
    for case in cases() {
        let request = case.request();
        let mut out = BytesMut::with_capacity(4096);
        group.bench_function(BenchmarkId::new("general", &case.name), |b| {
            b.iter(|| {
                black_box(encode_reply(
                    &mut out,
                    black_box(&request),
                    [],
                    black_box(&case.reply),
                ));
                out.clear();
            })
        });
        group.bench_function(BenchmarkId::new("plain", &case.name), |b| {
            b.iter(|| {
                let reply = black_box(&case.reply);
                black_box(encode_plain_reply_with(
                    &mut out,
                    black_box(&request),
                    reply.len(),
                    |buf| {
                        buf.extend_from_slice(reply);
                        Ok::<(), std::convert::Infallible>(())
                    },
                ))
                .ok();
                out.clear();
            })
        });
    }
    group.finish();
}

/// 4 KiB of JSON records with varying numbers and random-looking tokens: compresses to roughly a
/// third, as API payloads do.
fn json_4k() -> Vec<u8> {
    let mut out = Vec::with_capacity(4096 + 256);
    out.push(b'[');
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut id = 1000;
    while out.len() < 4096 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        id += 1 + state % 7;
        let record = format!(
            r#"{{"id":{id},"user":"user-{:04}","score":{}.{:03},"active":{},"token":"{:016x}"}},"#,
            state % 5000,
            state % 100,
            (state >> 8) % 1000,
            state % 3 == 0,
            state.rotate_left(17),
        );
        out.extend_from_slice(record.as_bytes());
    }
    out.truncate(4096);
    out
}

fn gzip(c: &mut Criterion) {
    let payload = json_4k();
    let mut packed = BytesMut::new();
    gzip_into(&payload, &mut packed);
    eprintln!(
        "gzip: 4096-byte JSON payload compresses to {} bytes ({:.0}%)",
        packed.len(),
        packed.len() as f64 * 100.0 / 4096.0
    );
    let mut group = c.benchmark_group("gzip_4k");
    group.throughput(Throughput::Bytes(payload.len() as u64));
    let mut out = BytesMut::with_capacity(8192);
    group.bench_function("compress", |b| {
        b.iter(|| {
            gzip_into(black_box(&payload), &mut out);
            out.clear();
        })
    });
    group.bench_function("decompress", |b| {
        b.iter(|| black_box(gunzip(black_box(&packed), usize::MAX).unwrap()))
    });
    group.finish();
}

criterion_group!(
    benches,
    decode,
    decode_lone,
    encode_request,
    encode_reply_bench,
    encode_plain_reply_bench,
    gzip
);
criterion_main!(benches);
