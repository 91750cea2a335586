//! A round trip through a real server in-process over loopback: one request at a time (latency),
//! and bursts of 32 pipelined requests on one connection (throughput per connection). The server
//! runs one worker; the client is a plain blocking socket, so this measures the whole stack,
//! kernel included, and is as noisy as the machine. Compare runs side by side, not across days.

use std::io::{Read, Write};
use std::net::TcpStream;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringrpc_benches::request_frame;
use ringrpc_codec::SerializeType;
use ringrpc_server::{demo::demo_table, Server, ServerConfig, Shutdown};

/// Writes `burst` and reads back `count` whole reply frames.
fn round_trip(stream: &mut TcpStream, burst: &[u8], count: usize, buf: &mut [u8]) {
    stream.write_all(burst).unwrap();
    let mut replies = 0;
    let mut filled = 0;
    while replies < count {
        match stream.read(&mut buf[filled..]) {
            Ok(0) => panic!("server closed"),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("{e}"),
        }
        let mut at = 0;
        while filled - at >= 16 {
            let len = 16 + u32::from_be_bytes(buf[at + 12..at + 16].try_into().unwrap()) as usize;
            if filled - at < len {
                break;
            }
            at += len;
            replies += 1;
        }
        buf.copy_within(at..filled, 0);
        filled -= at;
    }
}

fn end_to_end(c: &mut Criterion) {
    let shutdown = Shutdown::new();
    let running = Server::new(
        ServerConfig::default()
            .addr("127.0.0.1:0".parse().unwrap())
            .threads(1),
        demo_table,
    )
    .start(&shutdown)
    .unwrap();
    let mut stream = TcpStream::connect(running.local_addr()).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut buf = vec![0u8; 1 << 20];

    let cases = [
        (
            "echo_581_raw",
            request_frame("Echo", "Echo", SerializeType::Raw, &[b'x'; 581]),
        ),
        (
            "arith_mul_json",
            request_frame("Arith", "Mul", SerializeType::Json, br#"{"A":10,"B":20}"#),
        ),
    ];
    let mut group = c.benchmark_group("end_to_end");
    for (name, frame) in &cases {
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("{name}/one_at_a_time"), |b| {
            b.iter(|| round_trip(&mut stream, frame, 1, &mut buf))
        });
        let burst = frame.repeat(32);
        group.throughput(Throughput::Elements(32));
        group.bench_function(format!("{name}/pipelined_32"), |b| {
            b.iter(|| round_trip(&mut stream, &burst, 32, &mut buf))
        });
    }
    group.finish();
    drop(stream);
    shutdown.trigger();
    running.join().unwrap();
}

criterion_group!(benches, end_to_end);
criterion_main!(benches);
