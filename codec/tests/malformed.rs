//! Every class of malformed frame yields its own [`DecodeError`] (rpcx-protocol.md 1.4–1.8, 9.1–9.3),
//! and the two places where Go is lenient stay lenient: the payload length field is ignored, and a
//! frame of exactly the limit is accepted.
//!
//! Frames are built by hand, field by field, so that each test states the exact bytes it sends.

use bytes::BytesMut;
use ringrpc_codec::*;

/// One `u32 len, bytes` body field.
fn field(bytes: &[u8]) -> Vec<u8> {
    let mut out = (bytes.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

/// A metadata block of whole pairs.
fn pairs(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
    pairs
        .iter()
        .flat_map(|(k, v)| [field(k), field(v)].concat())
        .collect()
}

/// The 16-byte prefix: request, JSON, seq 1, `flags` as byte 2, `total_len` as given.
fn prefix(flags: u8, total_len: u32) -> Vec<u8> {
    let mut out = vec![MAGIC, 0x00, flags, 0x10];
    out.extend_from_slice(&1u64.to_be_bytes());
    out.extend_from_slice(&total_len.to_be_bytes());
    out
}

/// A frame whose total length is exactly `body`'s length.
fn frame(flags: u8, body: &[u8]) -> Vec<u8> {
    let mut out = prefix(flags, body.len() as u32);
    out.extend_from_slice(body);
    out
}

/// A well-formed body: path, method, metadata block, payload length field, payload.
fn body(path: &[u8], method: &[u8], metadata: &[u8], payload: &[u8]) -> Vec<u8> {
    [field(path), field(method), field(metadata), field(payload)].concat()
}

fn decode_with(limits: Limits, bytes: &[u8]) -> Result<Option<Message>, DecodeError> {
    Decoder::new(limits).decode(&mut BytesMut::from(bytes))
}

fn decode(bytes: &[u8]) -> Result<Option<Message>, DecodeError> {
    decode_with(Limits::default(), bytes)
}

/// Decodes a whole frame that must fail, and returns the error.
fn decode_err(bytes: &[u8]) -> DecodeError {
    match decode(bytes) {
        Err(e) => e,
        Ok(Some(msg)) => panic!("decoded {msg:?}, expected an error"),
        Ok(None) => panic!("frame incomplete, expected an error"),
    }
}

const GZIP: u8 = 0x04;

#[test]
fn bad_magic_is_raised_on_the_first_byte() {
    for byte in (0..=255u8).filter(|&b| b != MAGIC) {
        let err = decode(&[byte]).unwrap_err();
        assert!(
            matches!(err, DecodeError::BadMagic(b) if b == byte),
            "{err:?}"
        );
        assert!(matches!(
            Decoder::default().frame_len(&[byte]),
            Err(DecodeError::BadMagic(b)) if b == byte
        ));
    }
    // Go's text, with the byte in decimal (spec 1.8).
    assert_eq!(
        DecodeError::BadMagic(0x09).to_string(),
        "wrong magic number: 9"
    );
}

#[test]
fn bad_magic_in_a_whole_frame() {
    let mut bytes = frame(0, &body(b"Arith", b"Mul", b"", b"{}"));
    bytes[0] = 0x09;
    assert!(matches!(decode_err(&bytes), DecodeError::BadMagic(0x09)));
    // The frame parser checks it too, for callers that bypass the decoder.
    assert!(matches!(
        Message::parse(bytes.into(), &Limits::default()),
        Err(DecodeError::BadMagic(0x09))
    ));
}

#[test]
fn every_proper_prefix_of_a_frame_is_incomplete() {
    let bytes = frame(0, &body(b"Arith", b"Mul", b"", b"{}"));
    for cut in 0..bytes.len() {
        assert!(decode(&bytes[..cut]).unwrap().is_none(), "cut at {cut}");
    }
    assert!(decode(&bytes).unwrap().is_some());
}

#[test]
fn frame_too_long_is_raised_from_the_prefix_alone() {
    let limits = Limits {
        max_frame_len: 100,
        ..Limits::default()
    };
    let decoder = Decoder::new(limits);
    // Only the 16-byte prefix is buffered: no body byte at all.
    let mut buf = BytesMut::from(&prefix(0, 101)[..]);
    assert!(matches!(
        decoder.decode(&mut buf),
        Err(DecodeError::FrameTooLong { len: 101, max: 100 })
    ));
    assert_eq!(buf.len(), HEADER_LEN, "nothing was consumed");
    // Fifteen bytes are not enough to know.
    assert!(decoder
        .decode(&mut BytesMut::from(&prefix(0, 101)[..15]))
        .unwrap()
        .is_none());

    // The default limit: 32 MiB.
    let over = Limits::DEFAULT_MAX_FRAME_LEN + 1;
    assert!(matches!(
        decode(&prefix(0, over)),
        Err(DecodeError::FrameTooLong { len, max })
            if len == over && max == Limits::DEFAULT_MAX_FRAME_LEN
    ));
    assert!(matches!(
        decode(&prefix(0, u32::MAX)),
        Err(DecodeError::FrameTooLong { len: u32::MAX, .. })
    ));
    assert!(DecodeError::FrameTooLong { len: 101, max: 100 }
        .to_string()
        .starts_with("message is too long"));
}

#[test]
fn frame_of_exactly_the_limit_is_accepted() {
    let bytes = frame(0, &body(b"Arith", b"Mul", b"", br#"{"A":10,"B":20}"#));
    let body_len = (bytes.len() - HEADER_LEN) as u32;
    let exact = Limits {
        max_frame_len: body_len,
        ..Limits::default()
    };
    let msg = decode_with(exact, &bytes).unwrap().unwrap();
    assert_eq!(msg.payload(), br#"{"A":10,"B":20}"#);

    let one_less = Limits {
        max_frame_len: body_len - 1,
        ..Limits::default()
    };
    assert!(matches!(
        decode_with(one_less, &bytes),
        Err(DecodeError::FrameTooLong { len, max }) if len == body_len && max == body_len - 1
    ));

    // The smallest legal frame (32 bytes, all four lengths 0) under a limit of 16.
    let empty = frame(0, &body(b"", b"", b"", b""));
    assert_eq!(empty.len(), 32);
    let sixteen = Limits {
        max_frame_len: 16,
        ..Limits::default()
    };
    let msg = decode_with(sixteen, &empty).unwrap().unwrap();
    assert!(msg.service_path().is_empty() && msg.payload().is_empty());
}

#[test]
fn path_length_overrun() {
    // Path claims 50 bytes; the body has 5 after the length field, then nothing else.
    let mut b = 50u32.to_be_bytes().to_vec();
    b.extend_from_slice(b"Arith");
    assert!(matches!(
        decode_err(&frame(0, &b)),
        DecodeError::InnerLengthOverrun {
            field: BodyField::ServicePath,
            len: 50,
            remaining: 5
        }
    ));
    // An empty body cannot hold even the path length field.
    assert!(matches!(
        decode_err(&frame(0, b"")),
        DecodeError::InnerLengthOverrun {
            field: BodyField::ServicePath,
            len: 4,
            remaining: 0
        }
    ));
    // u32::MAX must not wrap anything.
    let b = [&u32::MAX.to_be_bytes()[..], &[0u8; 12]].concat();
    assert!(matches!(
        decode_err(&frame(0, &b)),
        DecodeError::InnerLengthOverrun {
            field: BodyField::ServicePath,
            len: u32::MAX,
            remaining: 12
        }
    ));
}

#[test]
fn method_length_overrun() {
    let b = [
        field(b"Arith"),
        9u32.to_be_bytes().to_vec(),
        b"Mul".to_vec(),
    ]
    .concat();
    assert!(matches!(
        decode_err(&frame(0, &b)),
        DecodeError::InnerLengthOverrun {
            field: BodyField::ServiceMethod,
            len: 9,
            remaining: 3
        }
    ));
    // The body ends right after the path: no room for the method length.
    assert!(matches!(
        decode_err(&frame(0, &field(b"Arith"))),
        DecodeError::InnerLengthOverrun {
            field: BodyField::ServiceMethod,
            len: 4,
            remaining: 0
        }
    ));
}

#[test]
fn metadata_length_overrun() {
    let meta = pairs(&[(b"k", b"v")]);
    let b = [
        field(b"Arith"),
        field(b"Mul"),
        (meta.len() as u32 + 20).to_be_bytes().to_vec(),
        meta.clone(),
        field(b"{}"),
    ]
    .concat();
    assert!(matches!(
        decode_err(&frame(0, &b)),
        DecodeError::InnerLengthOverrun {
            field: BodyField::Metadata,
            len: 30,
            remaining: 16
        }
    ));
    let b = [field(b"Arith"), field(b"Mul"), vec![0, 0]].concat();
    assert!(matches!(
        decode_err(&frame(0, &b)),
        DecodeError::InnerLengthOverrun {
            field: BodyField::Metadata,
            len: 4,
            remaining: 2
        }
    ));
}

#[test]
fn missing_payload_length_field() {
    // A body shorter than 16 bytes: the three length fields are there, the fourth is not.
    for missing in 1..=4 {
        let b = [field(b""), field(b""), field(b""), vec![0; 4 - missing]].concat();
        assert_eq!(b.len(), 16 - missing);
        let err = decode_err(&frame(0, &b));
        assert!(
            matches!(
                err,
                DecodeError::InnerLengthOverrun { field: BodyField::PayloadLength, len: 4, remaining }
                    if remaining == 4 - missing
            ),
            "{err:?}"
        );
    }
    // Same with real fields before it.
    let b = [
        field(b"Arith"),
        field(b"Mul"),
        field(&pairs(&[(b"k", b"v")])),
    ]
    .concat();
    assert!(matches!(
        decode_err(&frame(0, &b)),
        DecodeError::InnerLengthOverrun {
            field: BodyField::PayloadLength,
            remaining: 0,
            ..
        }
    ));
}

#[test]
fn truncated_metadata_pair_is_bad_metadata() {
    let whole = pairs(&[(b"key", b"value")]);
    // Every cut inside the pair: key length, key, value length, value.
    for cut in 1..whole.len() {
        let b = body(b"Arith", b"Mul", &whole[..cut], b"{}");
        assert!(
            matches!(decode_err(&frame(0, &b)), DecodeError::BadMetadata),
            "cut at {cut}"
        );
    }
    // A key that leaves no room for the value length (Go: `n+sl > l-4`).
    let b = body(
        b"Arith",
        b"Mul",
        &[&field(b"key")[..], &[0, 0]].concat(),
        b"{}",
    );
    assert!(matches!(
        decode_err(&frame(0, &b)),
        DecodeError::BadMetadata
    ));
    // A value that runs past the block but not past the body.
    let meta = [field(b"k"), 10u32.to_be_bytes().to_vec(), b"v".to_vec()].concat();
    let b = body(b"Arith", b"Mul", &meta, b"0123456789");
    assert!(matches!(
        decode_err(&frame(0, &b)),
        DecodeError::BadMetadata
    ));
    assert_eq!(
        DecodeError::BadMetadata.to_string(),
        "wrong metadata lines. some keys or values are missing"
    );
}

#[test]
fn stray_trailing_metadata_bytes_are_bad_metadata() {
    // spec 1.5: two stray bytes after a whole pair (observed in Go).
    for stray in 1..8 {
        let meta = [pairs(&[(b"k", b"v")]), vec![0; stray]].concat();
        let b = body(b"Arith", b"Mul", &meta, b"{}");
        assert!(
            matches!(decode_err(&frame(0, &b)), DecodeError::BadMetadata),
            "{stray} stray bytes"
        );
    }
    // Eight zero bytes are one whole pair of empty key and value, which is legal.
    let meta = [pairs(&[(b"k", b"v")]), vec![0; 8]].concat();
    let msg = decode(&frame(0, &body(b"Arith", b"Mul", &meta, b"{}")))
        .unwrap()
        .unwrap();
    assert_eq!(msg.metadata().len(), 2);
    assert_eq!(msg.metadata().get(""), Some(&b""[..]));
}

#[test]
fn more_metadata_pairs_than_the_limit_are_refused() {
    let keys: Vec<Vec<u8>> = (0..65).map(|i| format!("key-{i}").into_bytes()).collect();
    let block = |n: usize| {
        let list: Vec<(&[u8], &[u8])> = keys[..n].iter().map(|k| (&k[..], &b"v"[..])).collect();
        pairs(&list)
    };
    let limits = Limits {
        max_metadata_pairs: 64,
        ..Limits::default()
    };
    // The Go suite's largest case: 64 keys, exactly the limit.
    let sixty_four = frame(0, &body(b"Echo", b"Echo", &block(64), b"x"));
    let msg = decode_with(limits, &sixty_four).unwrap().unwrap();
    assert_eq!(msg.metadata().len(), 64);
    let sixty_five = frame(0, &body(b"Echo", b"Echo", &block(65), b"x"));
    assert!(matches!(
        decode_with(limits, &sixty_five),
        Err(DecodeError::TooManyMetadataPairs { max: 64 })
    ));
    // The default is generous: 65 pairs pass.
    assert_eq!(decode(&sixty_five).unwrap().unwrap().metadata().len(), 65);
    assert_eq!(Limits::default().max_metadata_pairs, 1024);
    // A flood of empty pairs (8 bytes each) within the frame limit is refused by count.
    let flood = vec![0u8; 8 * 2000];
    assert!(matches!(
        decode_err(&frame(0, &body(b"Echo", b"Echo", &flood, b""))),
        DecodeError::TooManyMetadataPairs { max: 1024 }
    ));
}

#[test]
fn unregistered_compressors_are_unsupported() {
    for bits in 2..=7u8 {
        let b = body(b"Echo", b"Echo", b"", b"hello");
        let err = decode_err(&frame(bits << 2, &b));
        assert!(
            matches!(err, DecodeError::UnsupportedCompressor(v) if v == bits),
            "{bits}: {err:?}"
        );
    }
    assert_eq!(
        DecodeError::UnsupportedCompressor(2).to_string(),
        "unsupported compressor 2"
    );
}

#[test]
fn gzip_flag_on_non_gzip_bytes_fails() {
    let b = body(b"Echo", b"Echo", b"", b"hello, not gzip");
    assert!(matches!(
        decode_err(&frame(GZIP, &b)),
        DecodeError::Decompress(_)
    ));
    // A valid gzip header followed by garbage deflate data.
    let mut bad = gzip(b"payload")[..10].to_vec();
    bad.extend_from_slice(&[0xff; 16]);
    let b = body(b"Echo", b"Echo", b"", &bad);
    assert!(matches!(
        decode_err(&frame(GZIP, &b)),
        DecodeError::Decompress(_)
    ));
}

#[test]
fn truncated_gzip_fails() {
    let packed = gzip(&[b'x'; 2048]);
    // Every cut: inside the header, the deflate stream, and the 8-byte CRC/size trailer.
    for cut in 0..packed.len() {
        let b = body(b"Echo", b"Echo", b"", &packed[..cut]);
        let err = decode_err(&frame(GZIP, &b));
        assert!(
            matches!(err, DecodeError::Decompress(_)),
            "cut at {cut}: {err:?}"
        );
    }
    // A corrupted CRC is caught too.
    let mut bad_crc = packed.clone();
    let at = bad_crc.len() - 8;
    bad_crc[at] ^= 0xff;
    let b = body(b"Echo", b"Echo", b"", &bad_crc);
    assert!(matches!(
        decode_err(&frame(GZIP, &b)),
        DecodeError::Decompress(_)
    ));
}

#[test]
fn gzip_flag_on_an_empty_payload_fails() {
    // Go decompresses whatever the flag says, and gzip.Reader returns io.EOF on empty input; flate2
    // reports UnexpectedEof. Either way the connection closes.
    let b = body(b"Echo", b"Echo", b"", b"");
    match decode_err(&frame(GZIP, &b)) {
        DecodeError::Decompress(e) => assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof),
        other => panic!("{other:?}"),
    }
    // Whereas a real gzip of nothing is an empty payload.
    let b = body(b"Echo", b"Echo", b"", &gzip(b""));
    let msg = decode(&frame(GZIP, &b)).unwrap().unwrap();
    assert!(msg.payload().is_empty());
}

#[test]
fn decompressed_too_large() {
    let payload = vec![b'x'; 4096];
    let b = body(b"Echo", b"Echo", b"", &gzip(&payload));
    let bytes = frame(GZIP, &b);
    let limit = |max| Limits {
        max_decompressed_len: max,
        ..Limits::default()
    };
    assert!(matches!(
        decode_with(limit(4095), &bytes),
        Err(DecodeError::DecompressedTooLarge { max: 4095 })
    ));
    // Exactly the limit is accepted.
    let msg = decode_with(limit(4096), &bytes).unwrap().unwrap();
    assert_eq!(msg.payload(), &payload[..]);
    assert!(DecodeError::DecompressedTooLarge { max: 1 }
        .to_string()
        .starts_with("decompressed size exceeds the maximum allowed size"));

    // A bomb: 4 MiB of zeros in a few KiB, stopped at 1 MiB + 1 byte of output.
    let bomb = gzip(&vec![0u8; 4 << 20]);
    assert!(bomb.len() < 16 << 10);
    let b = body(b"Echo", b"Echo", b"", &bomb);
    assert!(matches!(
        decode_with(limit(1 << 20), &frame(GZIP, &b)),
        Err(DecodeError::DecompressedTooLarge { max }) if max == 1 << 20
    ));
}

#[test]
fn payload_length_field_is_ignored_as_go_does() {
    // spec 1.4 (observed): a payload length of 100 in front of 2 real bytes decodes as those 2.
    let b = [
        field(b"Arith"),
        field(b"Mul"),
        field(b""),
        100u32.to_be_bytes().to_vec(),
        b"hi".to_vec(),
    ]
    .concat();
    let msg = decode(&frame(0, &b)).unwrap().unwrap();
    assert_eq!(msg.payload(), b"hi");
    assert_eq!(msg.wire_payload(), b"hi");

    // And a length of 0 in front of 5 bytes decodes as the 5.
    let b = [
        field(b""),
        field(b""),
        field(b""),
        vec![0; 4],
        b"hello".to_vec(),
    ]
    .concat();
    let msg = decode(&frame(0, &b)).unwrap().unwrap();
    assert_eq!(msg.payload(), b"hello");

    // With gzip, the payload is still the rest of the body.
    let packed = gzip(b"hello gzip");
    let b = [
        field(b"Echo"),
        field(b"Echo"),
        field(b""),
        u32::MAX.to_be_bytes().to_vec(),
        packed,
    ]
    .concat();
    let msg = decode(&frame(GZIP, &b)).unwrap().unwrap();
    assert_eq!(msg.payload(), b"hello gzip");
}

#[test]
fn inner_errors_consume_exactly_the_bad_frame() {
    // Inner errors are raised after the whole frame is split off, so the buffer stays in sync
    // (spec 1.4: framing holds even when the inner content is garbage). The connection is closed
    // anyway; this only checks the decoder does not consume past the bad frame.
    let bad = frame(0x08, &body(b"Echo", b"Echo", b"", b"x")); // compress type 2
    let good = frame(0, &body(b"Arith", b"Mul", b"", b"{}"));
    let mut buf = BytesMut::from(&[&bad[..], &good[..]].concat()[..]);
    let decoder = Decoder::default();
    assert!(matches!(
        decoder.decode(&mut buf),
        Err(DecodeError::UnsupportedCompressor(2))
    ));
    assert_eq!(&buf[..], &good[..]);
    assert_eq!(
        decoder.decode(&mut buf).unwrap().unwrap().service_method(),
        b"Mul"
    );
}
