//! The golden frames of `docs/vectors/rpcx-golden.txt` (docs/protocol.md 6): every one decodes to
//! its documented fields, and our encoder rebuilds each byte for byte (gzip ones after decompression).

use std::collections::HashMap;

use bytes::BytesMut;
use ringrpc_codec::*;

fn vectors() -> HashMap<String, Vec<u8>> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/vectors/rpcx-golden.txt"
    );
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("golden vectors not found at {path} : {e}"));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, hex) = l.split_once(' ').expect("NAME HEX");
            (name.to_string(), decode_hex(hex.trim()))
        })
        .collect()
}

fn decode_hex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn decode_one(bytes: &[u8]) -> Message {
    let mut buf = BytesMut::from(bytes);
    let msg = Decoder::default()
        .decode(&mut buf)
        .unwrap()
        .expect("whole frame");
    assert!(buf.is_empty(), "the frame is consumed exactly");
    msg
}

fn meta_pairs(msg: &Message) -> Vec<(String, String)> {
    msg.metadata()
        .iter()
        .map(|(k, v)| {
            (
                String::from_utf8(k.to_vec()).unwrap(),
                String::from_utf8(v.to_vec()).unwrap(),
            )
        })
        .collect()
}

/// Re-encodes a decoded request with the generic frame encoder.
fn reencode(msg: &Message) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode_frame(
        &mut buf,
        msg.header(),
        msg.service_path(),
        msg.service_method(),
        msg.metadata().iter(),
        msg.payload(),
    );
    buf.to_vec()
}

#[test]
fn v1_request_and_reply() {
    let v = vectors();
    let req = decode_one(&v["V1.req"]);
    assert_eq!(req.header().message_type(), MessageType::Request);
    assert_eq!(req.serialize_type(), SerializeType::Json);
    assert_eq!(req.header().compress_type(), CompressType::None);
    assert_eq!(req.header().status(), MessageStatus::Normal);
    assert_eq!(req.seq(), 1);
    assert_eq!(req.header().total_len(), 49);
    assert_eq!(req.service_path(), b"Arith");
    assert_eq!(req.service_method(), b"Mul");
    assert_eq!(meta_pairs(&req), vec![("k".into(), "v".into())]);
    assert_eq!(req.payload(), br#"{"A":10,"B":20}"#);
    assert_eq!(reencode(&req), v["V1.req"]);

    let mut out = BytesMut::new();
    let len = encode_reply(&mut out, &req, [], br#"{"C":200}"#);
    assert_eq!(len, out.len());
    assert_eq!(out.to_vec(), v["V1.res"]);
}

#[test]
fn v2_heartbeat_is_echoed() {
    let v = vectors();
    let req = decode_one(&v["V2.req"]);
    assert!(req.is_heartbeat());
    assert!(!req.is_oneway());
    assert_eq!(req.serialize_type(), SerializeType::MsgPack);
    assert_eq!(req.seq(), 2);
    assert!(req.service_path().is_empty() && req.service_method().is_empty());
    assert_eq!(req.payload(), &decode_hex("d317979cfe362a0000")[..]);
    assert_eq!(reencode(&req), v["V2.req"]);

    let mut out = BytesMut::new();
    encode_heartbeat_reply(&mut out, &req);
    assert_eq!(out.to_vec(), v["V2.res"]);
    let res = decode_one(&out);
    assert!(res.header().is_response() && res.is_heartbeat());
}

#[test]
fn v3_oneway_and_push() {
    let v = vectors();
    let req = decode_one(&v["V3.req"]);
    assert!(req.is_oneway());
    assert_eq!(req.seq(), 3);
    assert_eq!(reencode(&req), v["V3.req"]);

    let push = decode_one(&v["V3.push"]);
    assert_eq!(push.header().message_type(), MessageType::Request);
    assert!(push.is_oneway() && !push.is_heartbeat());
    assert_eq!(push.serialize_type(), SerializeType::Raw);
    assert_eq!(push.seq(), 1);
    let mut header = Header::new();
    header.set_oneway(true).set_seq(1);
    let mut out = BytesMut::new();
    encode_frame(&mut out, &header, b"Push", b"Notify", [], b"hello");
    assert_eq!(out.to_vec(), v["V3.push"]);
}

#[test]
fn v4_routing_errors() {
    let v = vectors();
    for (req_name, res_name, text) in [
        ("V4.req", "V4.res", "rpcx: can't find method Pow"),
        ("V4b.req", "V4b.res", "rpcx: can't find service Foo"),
    ] {
        let req = decode_one(&v[req_name]);
        assert_eq!(reencode(&req), v[req_name]);
        let mut out = BytesMut::new();
        encode_error_reply(&mut out, &req, text, [], b"");
        assert_eq!(out.to_vec(), v[res_name], "{res_name}");
        let res = decode_one(&out);
        assert_eq!(res.header().status(), MessageStatus::Error);
        assert_eq!(res.metadata().get_str(ERROR_KEY), Some(text));
    }
}

#[test]
fn v5_gzip_echo_above_1024_is_compressed_again() {
    let v = vectors();
    let req = decode_one(&v["V5.req"]);
    assert_eq!(req.header().compress_type(), CompressType::Gzip);
    assert_eq!(req.serialize_type(), SerializeType::Raw);
    assert_eq!(req.payload(), &[b'x'; 2048][..]);
    assert_eq!(req.wire_payload(), &v["V5.req"][40..]);

    // Re-encoded with our gzip: equal after decompression, header bytes identical.
    let again = decode_one(&reencode(&req));
    assert_eq!(again.payload(), req.payload());
    assert_eq!(again.header().flags(), req.header().flags());

    let mut out = BytesMut::new();
    encode_reply(&mut out, &req, [], req.payload());
    let res = decode_one(&out);
    let golden = decode_one(&v["V5.res"]);
    assert_eq!(&out[..4], &v["V5.res"][..4], "byte 2 = 0x84");
    assert_eq!(res.seq(), golden.seq());
    assert_eq!(res.service_path(), golden.service_path());
    assert_eq!(res.payload(), golden.payload());
}

#[test]
fn v5b_small_gzip_reply_is_not_compressed() {
    let v = vectors();
    let req = decode_one(&v["V5b.req"]);
    assert_eq!(req.payload(), b"hi");
    let mut out = BytesMut::new();
    encode_reply(&mut out, &req, [], req.payload());
    assert_eq!(out.to_vec(), v["V5b.res"]);
}

#[test]
fn v6_service_error_keeps_the_reply() {
    let v = vectors();
    let req = decode_one(&v["V6.req"]);
    assert_eq!(reencode(&req), v["V6.req"]);
    let mut out = BytesMut::new();
    encode_error_reply(&mut out, &req, "divide by zero", [], br#"{"C":0}"#);
    assert_eq!(out.to_vec(), v["V6.res"]);
}

#[test]
fn v7_rate_limit_error() {
    let v = vectors();
    let req = decode_one(&v["V7.req"]);
    assert_eq!(req.seq(), 8);
    let mut out = BytesMut::new();
    encode_error_reply(&mut out, &req, "request reached rate limit", [], b"");
    assert_eq!(out.to_vec(), v["V7.res"]);
}

#[test]
fn v8_repository_fixture() {
    let v = vectors();
    let msg = decode_one(&v["V8"]);
    assert_eq!(msg.seq(), 1234567890);
    assert_eq!(msg.service_path(), b"Arith");
    assert_eq!(msg.service_method(), b"Add");
    assert_eq!(
        msg.metadata().get_str("__ID"),
        Some("6ba7b810-9dad-11d1-80b4-00c04fd430c9")
    );
    assert_eq!(msg.payload().len(), 26);
    assert_eq!(reencode(&msg), v["V8"]);
}

#[test]
fn all_vectors_in_one_buffer_decode_in_order() {
    let v = vectors();
    let names = [
        "V1.req", "V2.req", "V3.req", "V4.req", "V4b.req", "V5.req", "V6.req", "V8",
    ];
    let mut buf = BytesMut::new();
    for name in names {
        buf.extend_from_slice(&v[name]);
    }
    let decoder = Decoder::default();
    for name in names {
        let msg = decoder.decode(&mut buf).unwrap().unwrap();
        assert_eq!(msg.frame().len(), v[name].len(), "{name}");
    }
    assert!(decoder.decode(&mut buf).unwrap().is_none());
}
