//! Every malformed frame class closes its own connection, and only that one (spec 1.8).

mod common;

use std::time::Duration;

use common::{frame, request, TestServer};
use ringrpc_codec::{compress::gzip, CompressType, Header, Limits, SerializeType};
use ringrpc_server::ServerConfig;

fn with_total_len(mut bytes: Vec<u8>, total: u32) -> Vec<u8> {
    bytes[12..16].copy_from_slice(&total.to_be_bytes());
    bytes
}

fn malformed_frames() -> Vec<(&'static str, Vec<u8>)> {
    let good = request(1, "Echo", "Echo", SerializeType::Raw, &[], b"hello");
    let mut gzip_header = Header::new();
    gzip_header.set_compress_type(CompressType::Gzip);
    let mut body_too_short = good[..16].to_vec();
    body_too_short.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
    let body_too_short = with_total_len(body_too_short, 8);

    let mut path_overrun = good.clone();
    path_overrun[16..20].copy_from_slice(&1000u32.to_be_bytes());

    let mut bad_metadata = request(1, "Echo", "Echo", SerializeType::Raw, &[], b"");
    // Metadata block of 3 bytes: not a whole pair.
    let at = 16 + 4 + 4 + 4 + 4;
    bad_metadata.splice(at..at + 4, [0, 0, 0, 3, 0, 0, 1]);
    let total = (bad_metadata.len() - 16) as u32;
    let bad_metadata = with_total_len(bad_metadata, total);

    let mut unsupported = Header::new();
    unsupported.set_compress_type(CompressType::Unregistered(3));
    let mut bomb_header = Header::new();
    bomb_header.set_compress_type(CompressType::Gzip);

    let nine_pairs: Vec<(String, String)> = (0..9).map(|i| (format!("k{i}"), "v".into())).collect();
    let nine_pairs: Vec<(&str, &str)> = nine_pairs.iter().map(|(k, v)| (&k[..], &v[..])).collect();

    vec![
        ("bad magic", {
            let mut b = good.clone();
            b[0] = 0x09;
            b
        }),
        (
            "frame too long",
            with_total_len(good[..16].to_vec(), 64 << 20),
        ),
        ("body too short", body_too_short),
        ("path length overrun", path_overrun),
        ("bad metadata", bad_metadata),
        ("unsupported compressor", {
            // The encoder never writes an unregistered type: set the bits by hand.
            let mut b = frame(&Header::new(), "Echo", "Echo", &[], b"x");
            b[2] |= unsupported.flags();
            b
        }),
        ("not gzip", {
            let mut b = frame(&Header::new(), "Echo", "Echo", &[], b"plainly not gzip");
            b[2] |= gzip_header.flags();
            b
        }),
        (
            "too many metadata pairs",
            request(1, "Echo", "Echo", SerializeType::Raw, &nine_pairs, b"x"),
        ),
        ("decompressed too large", {
            // Encoded with compress None, then flagged gzip with a bomb for payload.
            let bomb = gzip(&vec![0u8; 8 << 20]);
            let mut b = frame(&Header::new(), "Echo", "Echo", &[], &bomb);
            b[2] |= 0x04;
            b
        }),
    ]
}

#[test]
fn each_malformed_class_closes_only_its_connection() {
    let limits = Limits {
        max_frame_len: 1 << 20,
        max_decompressed_len: 1 << 20,
        max_metadata_pairs: 8,
    };
    let server = TestServer::with(
        ServerConfig::default().threads(1).limits(limits),
        ringrpc_server::demo::demo_table,
    );
    let mut bystander = server.connect();
    let classes = malformed_frames();
    let count = classes.len() as u64;
    for (name, bytes) in classes {
        let mut victim = server.connect();
        // A good request first: its reply must still arrive before the close.
        victim.send(&request(
            5,
            "Echo",
            "Echo",
            SerializeType::Raw,
            &[],
            b"before",
        ));
        victim.send(&bytes);
        let reply = victim.recv();
        assert_eq!(reply.payload(), b"before", "{name}");
        assert!(
            victim.is_closed_within(Duration::from_secs(5)),
            "{name}: connection closed"
        );
        let reply = bystander.call(1, "Echo", "Echo", SerializeType::Raw, name.as_bytes());
        assert_eq!(
            reply.payload(),
            name.as_bytes(),
            "{name}: bystander still served"
        );
    }
    // Each close was one refusal, counted (and logged, rate-limited) with its reason.
    assert_eq!(
        server.refusals().get(ringrpc_server::Reason::Malformed),
        count
    );
}

#[test]
fn oversized_frame_is_refused_before_its_body_arrives() {
    let server = TestServer::with(
        ServerConfig::default().threads(1).limits(Limits {
            max_frame_len: 1024,
            max_decompressed_len: 1024,
            ..Limits::default()
        }),
        ringrpc_server::demo::demo_table,
    );
    let mut client = server.connect();
    // Only the prefix: the server must not wait for 1 GiB of body.
    let prefix = with_total_len(
        request(1, "Echo", "Echo", SerializeType::Raw, &[], b"")[..16].to_vec(),
        1 << 30,
    );
    client.send(&prefix);
    assert!(client.is_closed_within(Duration::from_secs(5)));
}

#[test]
fn garbage_and_truncated_streams_never_stop_the_server() {
    let server = TestServer::start(1);
    let mut state = 12345u64;
    for round in 0..200 {
        let mut client = server.connect();
        let mut bytes = vec![0u8; 1 + round % 97];
        for b in bytes.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = state as u8;
        }
        bytes[0] = 0x08; // get past the magic check half the time
        if round % 2 == 0 {
            bytes[0] = state as u8;
        }
        client.send(&bytes);
        drop(client);
    }
    let mut client = server.connect();
    let reply = client.call(1, "Echo", "Echo", SerializeType::Raw, b"alive");
    assert_eq!(reply.payload(), b"alive");
}
