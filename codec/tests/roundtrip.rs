//! Property tests: whatever the encoder writes the decoder reads back, field for field, and in the
//! layout of rpcx-protocol.md 1.1–1.5; a byte stream decodes the same however it is cut; and no
//! input makes the decoder panic.
//!
//! Payloads proptest generates stay small (a few KiB) to keep the suite fast in debug builds; sizes
//! above 1 MiB are covered by fixed cases.

use bytes::BytesMut;
use proptest::prelude::*;
use ringrpc_codec::*;

/// Everything an encoded frame carries, as plain values.
#[derive(Debug, Clone)]
struct Frame {
    version: u8,
    response: bool,
    heartbeat: bool,
    oneway: bool,
    gzip: bool,
    status: u8,
    /// Byte 3 whole: serialize type and the reserved low nibble.
    serialize: u8,
    seq: u64,
    path: Vec<u8>,
    method: Vec<u8>,
    metadata: Vec<(String, Vec<u8>)>,
    payload: Vec<u8>,
}

impl Frame {
    fn flags(&self) -> u8 {
        (self.response as u8) << 7
            | (self.heartbeat as u8) << 6
            | (self.oneway as u8) << 5
            | (self.gzip as u8) << 2
            | self.status
    }

    /// The header, built from raw bytes so that the reserved nibble of byte 3 can be set too.
    fn header(&self) -> Header {
        let mut bytes = [0u8; HEADER_LEN];
        bytes[..4].copy_from_slice(&[MAGIC, self.version, self.flags(), self.serialize]);
        bytes[4..12].copy_from_slice(&self.seq.to_be_bytes());
        *Header::view(&bytes).unwrap()
    }

    fn encode(&self, buf: &mut BytesMut) -> usize {
        encode_frame(
            buf,
            &self.header(),
            &self.path,
            &self.method,
            self.metadata.iter().map(|(k, v)| (k.as_bytes(), &v[..])),
            &self.payload,
        )
    }

    /// The frame laid out by hand from spec 1.1 and 1.4, independently of the encoder, with
    /// `wire_payload` as the payload bytes on the wire.
    fn wire(&self, wire_payload: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        let mut field = |bytes: &[u8]| {
            body.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            body.extend_from_slice(bytes);
        };
        field(&self.path);
        field(&self.method);
        let mut meta = Vec::new();
        for (k, v) in &self.metadata {
            meta.extend_from_slice(&(k.len() as u32).to_be_bytes());
            meta.extend_from_slice(k.as_bytes());
            meta.extend_from_slice(&(v.len() as u32).to_be_bytes());
            meta.extend_from_slice(v);
        }
        field(&meta);
        field(wire_payload);
        let mut out = vec![MAGIC, self.version, self.flags(), self.serialize];
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Asserts that `msg` is this frame, field by field and byte by byte.
    fn check(&self, msg: &Message) {
        let h = msg.header();
        assert_eq!(h.magic(), MAGIC);
        assert_eq!(h.version(), self.version);
        assert_eq!(h.flags(), self.flags());
        assert_eq!(h.is_response(), self.response);
        assert_eq!(
            h.message_type(),
            if self.response {
                MessageType::Response
            } else {
                MessageType::Request
            }
        );
        assert_eq!(h.is_heartbeat(), self.heartbeat);
        assert_eq!(h.is_oneway(), self.oneway);
        assert_eq!(h.status().bits(), self.status);
        assert_eq!(
            h.compress_type(),
            if self.gzip {
                CompressType::Gzip
            } else {
                CompressType::None
            }
        );
        assert_eq!(h.serialize_byte(), self.serialize);
        assert_eq!(h.serialize_type().bits(), self.serialize >> 4);
        assert_eq!(h.seq(), self.seq);
        assert_eq!(msg.service_path(), &self.path[..]);
        assert_eq!(msg.service_method(), &self.method[..]);

        let pairs: Vec<_> = msg.metadata().iter().collect();
        let expected: Vec<_> = self
            .metadata
            .iter()
            .map(|(k, v)| (k.as_bytes(), &v[..]))
            .collect();
        assert_eq!(pairs, expected);
        assert_eq!(msg.metadata().len(), self.metadata.len());
        for (key, _) in &self.metadata {
            let last = self.metadata.iter().rev().find(|(k, _)| k == key).unwrap();
            assert_eq!(
                msg.metadata().get(key),
                Some(&last.1[..]),
                "last {key:?} wins"
            );
        }

        assert_eq!(msg.payload(), &self.payload[..]);
        assert_eq!(msg.frame().len(), HEADER_LEN + h.total_len() as usize);
        if self.gzip {
            assert_eq!(
                gunzip(msg.wire_payload(), usize::MAX).unwrap(),
                self.payload
            );
        } else {
            assert_eq!(msg.wire_payload(), &self.payload[..]);
        }
        assert_eq!(msg.frame(), &self.wire(msg.wire_payload())[..]);
    }
}

fn key() -> impl Strategy<Value = String> {
    // Mostly from a tiny alphabet, so that empty keys and duplicates are common.
    prop_oneof![3 => "[ab]{0,2}", 1 => "\\PC{0,12}"]
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..64),
        1 => prop::collection::vec(any::<u8>(), 0..3000),
        // Compressible, and over the 1024-byte reply threshold half the time.
        1 => (0..2048usize, any::<u8>()).prop_map(|(n, b)| text(n, b)),
    ]
}

/// `n` bytes of repetitive text seeded by `seed`: what JSON payloads look like to gzip.
fn text(n: usize, seed: u8) -> Vec<u8> {
    let words: [&[u8]; 6] = [
        b"{\"id\":",
        b"\"name\":\"",
        b"alpha",
        b"\",",
        b"12345",
        b"},",
    ];
    let mut out = Vec::with_capacity(n + 8);
    let mut i = seed as usize;
    while out.len() < n {
        out.extend_from_slice(words[i % words.len()]);
        i = i.wrapping_mul(7).wrapping_add(3);
    }
    out.truncate(n);
    out
}

prop_compose! {
    fn frame()(
        version in any::<u8>(),
        response in any::<bool>(),
        heartbeat in any::<bool>(),
        oneway in any::<bool>(),
        gzip in any::<bool>(),
        status in 0..4u8,
        serialize in any::<u8>(),
        seq in any::<u64>(),
        path in prop::collection::vec(any::<u8>(), 0..24),
        method in prop::collection::vec(any::<u8>(), 0..24),
        metadata in prop::collection::vec((key(), prop::collection::vec(any::<u8>(), 0..16)), 0..6),
        payload in payload(),
    ) -> Frame {
        Frame { version, response, heartbeat, oneway, gzip, status, serialize, seq, path, method,
                metadata, payload }
    }
}

fn decode_one(bytes: &[u8]) -> Message {
    let mut buf = BytesMut::from(bytes);
    let msg = Decoder::new(Limits::unlimited())
        .decode(&mut buf)
        .unwrap()
        .expect("a whole frame");
    assert!(buf.is_empty());
    msg
}

/// Decodes every frame in `stream`, fed `chunk` bytes at a time.
fn decode_stream(stream: &[u8], chunk: usize) -> Vec<Message> {
    let decoder = Decoder::default();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        while let Some(msg) = decoder.decode(&mut buf).unwrap() {
            out.push(msg);
        }
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    out
}

/// Decodes until the decoder wants more bytes or fails, using every accessor and re-encoding each
/// message, as a server would. Returns how many frames decoded.
fn exercise(decoder: &Decoder, bytes: &[u8]) -> usize {
    let mut buf = BytesMut::from(bytes);
    let mut count = 0;
    while let Ok(Some(msg)) = decoder.decode(&mut buf) {
        count += 1;
        let _ = format!("{msg:?}");
        let meta = msg.metadata();
        assert!(meta.iter().count() <= msg.frame().len() / 8);
        let _ = meta.get("k");
        let _ = meta.get_str(AUTH_KEY);
        let mut out = BytesMut::new();
        encode_reply(&mut out, &msg, meta.iter(), msg.payload());
        encode_error_reply(&mut out, &msg, "boom", meta.iter(), b"");
        encode_heartbeat_reply(&mut out, &msg);
        let unlimited = Decoder::new(Limits::unlimited());
        for _ in 0..3 {
            let reply = unlimited.decode(&mut out).unwrap().unwrap();
            assert_eq!(reply.service_path(), msg.service_path());
        }
        assert!(out.is_empty());
    }
    count
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_frame_round_trips(frame in frame()) {
        let mut buf = BytesMut::new();
        let len = frame.encode(&mut buf);
        prop_assert_eq!(len, buf.len());
        if !frame.gzip {
            prop_assert_eq!(&buf[..], &frame.wire(&frame.payload)[..]);
        }
        frame.check(&decode_one(&buf));
    }

    #[test]
    fn unregistered_compress_types_encode_as_none(frame in frame(), bits in 2..8u8) {
        let mut header = frame.header();
        header.set_compress_type(CompressType::from_bits(bits));
        let mut buf = BytesMut::new();
        encode_frame(&mut buf, &header, &frame.path, &frame.method, [], &frame.payload);
        let msg = decode_one(&buf);
        prop_assert_eq!(msg.header().compress_type(), CompressType::None);
        prop_assert_eq!(msg.payload(), &frame.payload[..]);
    }

    #[test]
    fn reply_follows_the_clone_and_1024_byte_rules(frame in frame()) {
        let mut buf = BytesMut::new();
        frame.encode(&mut buf);
        let request = decode_one(&buf);
        let mut out = BytesMut::new();
        let pairs = [(&b"x"[..], &b"1"[..])];
        encode_reply(&mut out, &request, pairs, &frame.payload);
        let reply = decode_one(&out);
        let (q, r) = (request.header(), reply.header());
        prop_assert!(r.is_response());
        prop_assert_eq!(r.version(), q.version());
        prop_assert_eq!(r.is_heartbeat(), q.is_heartbeat());
        prop_assert_eq!(r.is_oneway(), q.is_oneway());
        prop_assert_eq!(r.status(), q.status());
        prop_assert_eq!(r.serialize_byte(), q.serialize_byte());
        prop_assert_eq!(r.seq(), q.seq());
        let compressed = frame.gzip && frame.payload.len() > COMPRESS_THRESHOLD;
        prop_assert_eq!(r.compress_type() == CompressType::Gzip, compressed);
        prop_assert_eq!(reply.service_path(), request.service_path());
        prop_assert_eq!(reply.service_method(), request.service_method());
        prop_assert_eq!(reply.metadata().iter().collect::<Vec<_>>(), pairs.to_vec());
        prop_assert_eq!(reply.payload(), request.payload());
    }

    #[test]
    fn heartbeat_reply_echoes_the_request(frame in frame()) {
        let mut buf = BytesMut::new();
        frame.encode(&mut buf);
        let request = decode_one(&buf);
        let mut out = BytesMut::new();
        encode_heartbeat_reply(&mut out, &request);
        let reply = decode_one(&out);
        prop_assert_eq!(reply.header().flags(), request.header().flags() | 0x80);
        let echoed = Frame { response: true, ..frame.clone() };
        echoed.check(&reply);
    }

    #[test]
    fn a_stream_decodes_the_same_however_it_is_cut(
        frames in prop::collection::vec(frame(), 1..6),
        chunk in 2..200usize,
    ) {
        let mut stream = BytesMut::new();
        for frame in &frames {
            frame.encode(&mut stream);
        }
        let whole = decode_stream(&stream, stream.len());
        let bytewise = decode_stream(&stream, 1);
        let chunked = decode_stream(&stream, chunk);
        prop_assert_eq!(whole.len(), frames.len());
        for (i, frame) in frames.iter().enumerate() {
            frame.check(&whole[i]);
            prop_assert_eq!(whole[i].frame(), bytewise[i].frame());
            prop_assert_eq!(whole[i].payload(), bytewise[i].payload());
            prop_assert_eq!(whole[i].frame(), chunked[i].frame());
            prop_assert_eq!(whole[i].payload(), chunked[i].payload());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        exercise(&Decoder::default(), &bytes);
        // Behind a valid magic byte, to get past the first check.
        let with_magic = [&[MAGIC][..], &bytes].concat();
        exercise(&Decoder::default(), &with_magic);
    }

    #[test]
    fn framed_garbage_never_panics(
        flags in any::<u8>(),
        serialize in any::<u8>(),
        lengths in prop::collection::vec(prop_oneof![0..40u32, any::<u32>()], 0..6),
        filler in prop::collection::vec(any::<u8>(), 0..200),
        max_frame_len in prop_oneof![Just(u32::MAX), 0..300u32],
        max_decompressed_len in prop_oneof![Just(usize::MAX), 0..300usize],
    ) {
        // A body of length fields with plausible values, interleaved with random bytes, behind a
        // correct prefix: this reaches the field, metadata and gzip parsers.
        let mut body = Vec::new();
        for (i, len) in lengths.iter().enumerate() {
            body.extend_from_slice(&len.to_be_bytes());
            let take = (*len as usize).min(filler.len()).min(8 * (i + 1));
            body.extend_from_slice(&filler[..take]);
        }
        body.extend_from_slice(&filler);
        let mut bytes = vec![MAGIC, 0, flags, serialize];
        bytes.extend_from_slice(&7u64.to_be_bytes());
        bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&body);
        let limits = Limits { max_frame_len, max_decompressed_len, ..Limits::default() };
        exercise(&Decoder::new(limits), &bytes);
        exercise(&Decoder::default(), &bytes);
    }

    #[test]
    fn mutated_frames_never_panic(
        frame in frame(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        max_decompressed_len in prop_oneof![Just(usize::MAX), 0..300usize],
    ) {
        let mut buf = BytesMut::new();
        frame.encode(&mut buf);
        frame.encode(&mut buf);
        for (at, value) in edits {
            let i = at.index(buf.len());
            buf[i] = value;
        }
        let limits = Limits { max_decompressed_len, ..Limits::default() };
        exercise(&Decoder::new(limits), &buf);
    }
}

#[test]
fn payloads_above_one_mebibyte_round_trip() {
    // Fixed sizes rather than generated ones: proptest would build megabytes on every case.
    for (size, gzip) in [
        ((1 << 20) + 1, false),
        (3 << 20, false),
        ((1 << 20) + 1, true),
    ] {
        let mut payload = text(size, size as u8);
        // Partly random, so that gzip has real work to do.
        for (i, b) in payload.iter_mut().enumerate().step_by(7) {
            *b = (i.wrapping_mul(2654435761) >> 13) as u8;
        }
        let frame = Frame {
            version: 0,
            response: false,
            heartbeat: false,
            oneway: false,
            gzip,
            status: 0,
            serialize: 0x00,
            seq: size as u64,
            path: b"Echo".to_vec(),
            method: b"Echo".to_vec(),
            metadata: vec![("k".into(), b"v".to_vec())],
            payload,
        };
        let mut stream = BytesMut::new();
        frame.encode(&mut stream);
        frame.encode(&mut stream);
        let decoded = decode_stream(&stream, 64 << 10);
        assert_eq!(decoded.len(), 2);
        frame.check(&decoded[0]);
        frame.check(&decoded[1]);
    }
}

#[test]
fn empty_payload_and_empty_everything_round_trip() {
    let frame = Frame {
        version: 0,
        response: false,
        heartbeat: false,
        oneway: false,
        gzip: false,
        status: 0,
        serialize: 0,
        seq: 0,
        path: vec![],
        method: vec![],
        metadata: vec![],
        payload: vec![],
    };
    let mut buf = BytesMut::new();
    assert_eq!(
        frame.encode(&mut buf),
        32,
        "the smallest frame is 32 bytes (spec 1.4)"
    );
    frame.check(&decode_one(&buf));
    // Gzip of an empty payload is a real (non-empty) gzip member, which decodes to nothing.
    let gz = Frame {
        gzip: true,
        ..frame
    };
    buf.clear();
    gz.encode(&mut buf);
    assert!(buf.len() > 32);
    gz.check(&decode_one(&buf));
}
