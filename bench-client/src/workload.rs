//! What the load sends and what it expects back.
//!
//! A [`Workload`] is built once from a [`WorkloadSpec`]: each kind of request (the main target, and
//! `Echo.Sleep` for the slow share of a mixed load) is encoded once into a whole frame, so that
//! sending is a copy plus a seq patch. [`Workload::check`] verifies a reply against what that kind
//! expects (echoed payload, `C = A op B` for `Arith.*`, `field1 = "OK"` and `field2 = 100` for
//! rpcx-benchmark's `Hello.Say`, or just a Normal status). Nothing here does IO; the frames follow
//! rpcx-protocol.md 1.1–1.5 through the codec's encoder.

use bytes::BytesMut;
use prost::Message as _;
use ringrpc_codec::{encode_frame, CompressType, Header, Message, SerializeType};
use serde::{Deserialize, Serialize};

use crate::benchmark_message::{benchmark_args, BenchmarkMessage};

/// How the payload is serialized (the header's serialize type, spec 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serialization {
    /// SerializeNone: the payload is sent as given.
    Raw,
    /// JSON; `Arith.*` targets get `{"A":a,"B":b}`.
    Json,
    /// MsgPack; `Arith.*` targets get a map with keys "A" and "B", as Go's msgpack writes structs.
    MsgPack,
    /// Protobuf; `Arith.*` targets get `ProtoArgs { int64 A = 1; int64 B = 2 }`, `Hello.Say`
    /// rpcx-benchmark's 581-byte `BenchmarkMessage`.
    Protobuf,
}

impl Serialization {
    fn wire(self) -> SerializeType {
        match self {
            Serialization::Raw => SerializeType::Raw,
            Serialization::Json => SerializeType::Json,
            Serialization::MsgPack => SerializeType::MsgPack,
            Serialization::Protobuf => SerializeType::Protobuf,
        }
    }
}

/// A share of requests sent to `Echo.Sleep` instead of the main target, to measure tail latency
/// under mixed load.
#[derive(Debug, Clone, PartialEq)]
pub struct SlowMix {
    /// Percentage of requests (0..=100) that are slow.
    pub percent: f64,
    /// The sleep in milliseconds, written in decimal as the raw payload (e.g. "5").
    pub ms: String,
}

/// Everything that decides the bytes on the wire.
#[derive(Debug, Clone)]
pub struct WorkloadSpec {
    /// `Service.Method`, split at the last dot.
    pub target: String,
    /// The payload, unless the target and serialization have their own (`Arith.*` serialized,
    /// `Hello.Say` with Protobuf).
    pub payload: Vec<u8>,
    pub serialization: Serialization,
    /// Gzip the main request's payload (whatever its size) and flag it so.
    pub gzip: bool,
    /// Metadata pairs sent with every request.
    pub metadata: Vec<(String, String)>,
    /// A and B for `Arith.*` targets serialized as JSON or MsgPack.
    pub arith_args: (i64, i64),
    pub slow: Option<SlowMix>,
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        WorkloadSpec {
            target: "Echo.Echo".into(),
            payload: pattern_payload(581),
            serialization: Serialization::Raw,
            gzip: false,
            metadata: Vec::new(),
            arith_args: (10, 20),
            slow: None,
        }
    }
}

/// Why a spec cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("target {0:?} is not Service.Method")]
    BadTarget(String),
    #[error("slow percentage {0} is not within 0..=100")]
    BadSlowPercent(f64),
    #[error("slow sleep {0:?} is not a whole number of milliseconds")]
    BadSlowMs(String),
}

/// Why a reply failed verification.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{kind}: payload differs from the one sent ({got} bytes back, {expected} expected)")]
    Payload {
        kind: String,
        expected: usize,
        got: usize,
    },
    #[error("{kind}: reply C = {got}, expected {expected}")]
    ArithResult {
        kind: String,
        expected: i64,
        got: i64,
    },
    #[error("{kind}: reply payload does not decode: {reason}")]
    Undecodable { kind: String, reason: String },
    #[error("{kind}: reply {field} = {got}, expected {expected}")]
    Field {
        kind: String,
        field: &'static str,
        expected: String,
        got: String,
    },
}

/// The answer a request kind expects.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// The payload comes back unchanged (`Echo.Echo`, `Echo.Sleep`).
    Echo(Vec<u8>),
    /// `{"C": value}` in the given serialization.
    ArithResult {
        value: i64,
        serialization: Serialization,
    },
    /// rpcx-benchmark's `Hello.Say`: a `BenchmarkMessage` with `field1 = "OK"`, `field2 = 100`.
    HelloSay,
    /// Any reply with status Normal.
    Normal,
}

/// One kind of request: its whole frame, encoded once with seq 0, and its expected answer.
#[derive(Debug, Clone)]
pub struct RequestKind {
    /// `Service.Method`, for messages.
    pub name: String,
    /// The complete frame; the sender patches its seq.
    pub frame: Vec<u8>,
    /// The payload's length before any compression.
    pub payload_len: usize,
    pub expect: Expect,
}

/// The encoded request kinds and the mix between them.
#[derive(Debug, Clone)]
pub struct Workload {
    kinds: Vec<RequestKind>,
    /// A request is slow when a uniform u32 draw is below this.
    slow_threshold: u64,
}

/// Index of the main request kind in [`Workload::kinds`].
pub const MAIN: usize = 0;
/// Index of the slow (`Echo.Sleep`) kind, when there is a slow mix.
pub const SLOW: usize = 1;

#[derive(Serialize)]
struct ArithArgs {
    #[serde(rename = "A")]
    a: i64,
    #[serde(rename = "B")]
    b: i64,
}

#[derive(Deserialize, Clone, PartialEq, prost::Message)]
struct ArithReply {
    // Go decodes JSON field names case-insensitively (spec 2); accept both spellings.
    #[serde(rename = "C", alias = "c")]
    #[prost(int64, tag = "1")]
    c: i64,
}

/// `ProtoArgs { int64 A = 1; int64 B = 2 }`, the Protobuf form of [`ArithArgs`].
#[derive(Clone, PartialEq, prost::Message)]
struct ProtoArgs {
    #[prost(int64, tag = "1")]
    a: i64,
    #[prost(int64, tag = "2")]
    b: i64,
}

impl Workload {
    pub fn new(spec: &WorkloadSpec) -> Result<Self, WorkloadError> {
        let (service, method) = spec
            .target
            .rsplit_once('.')
            .filter(|(s, m)| !s.is_empty() && !m.is_empty())
            .ok_or_else(|| WorkloadError::BadTarget(spec.target.clone()))?;

        let arith = (service == "Arith" && spec.serialization != Serialization::Raw)
            .then(|| arith_expectation(method, spec.arith_args))
            .flatten();
        let payload = match (service, spec.serialization) {
            ("Arith", Serialization::Json) => {
                serde_json::to_vec(&args(spec)).expect("plain struct")
            }
            ("Arith", Serialization::MsgPack) => {
                rmp_serde::to_vec_named(&args(spec)).expect("plain struct")
            }
            ("Arith", Serialization::Protobuf) => ProtoArgs {
                a: spec.arith_args.0,
                b: spec.arith_args.1,
            }
            .encode_to_vec(),
            _ if hello_say(service, method, spec.serialization) => benchmark_args().encode_to_vec(),
            _ => spec.payload.clone(),
        };
        let expect = match (service, method) {
            ("Echo", "Echo" | "Sleep") => Expect::Echo(payload.clone()),
            _ if hello_say(service, method, spec.serialization) => Expect::HelloSay,
            ("Arith", _) => arith.map_or(Expect::Normal, |value| Expect::ArithResult {
                value,
                serialization: spec.serialization,
            }),
            _ => Expect::Normal,
        };
        let mut kinds = vec![RequestKind {
            name: spec.target.clone(),
            frame: encode_request(
                service,
                method,
                spec.serialization.wire(),
                spec.gzip,
                &spec.metadata,
                &payload,
            ),
            payload_len: payload.len(),
            expect,
        }];

        let mut slow_threshold = 0;
        if let Some(slow) = &spec.slow {
            if !(0.0..=100.0).contains(&slow.percent) {
                return Err(WorkloadError::BadSlowPercent(slow.percent));
            }
            // Go's Echo.Sleep parses the payload with strconv.ParseInt: whole milliseconds only.
            if slow.ms.parse::<u64>().is_err() {
                return Err(WorkloadError::BadSlowMs(slow.ms.clone()));
            }
            slow_threshold = (slow.percent / 100.0 * (1u64 << 32) as f64) as u64;
            let payload = slow.ms.as_bytes();
            kinds.push(RequestKind {
                name: "Echo.Sleep".into(),
                frame: encode_request(
                    "Echo",
                    "Sleep",
                    SerializeType::Raw,
                    false,
                    &spec.metadata,
                    payload,
                ),
                payload_len: payload.len(),
                expect: Expect::Echo(payload.to_vec()),
            });
        }
        Ok(Workload {
            kinds,
            slow_threshold,
        })
    }

    /// The request kinds: [`MAIN`], then [`SLOW`] if there is a slow mix.
    pub fn kinds(&self) -> &[RequestKind] {
        &self.kinds
    }

    /// The encoded frame of a kind.
    pub fn frame(&self, kind: usize) -> &[u8] {
        &self.kinds[kind].frame
    }

    /// A picker of request kinds for one connection; `seed` makes each connection's mix differ.
    pub fn mixer(&self, seed: u64) -> Mixer {
        Mixer {
            // xorshift must not start at 0.
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            slow_threshold: self.slow_threshold,
        }
    }

    /// Checks a reply to a request of `kind` (whose status is already known to be Normal).
    pub fn check(&self, kind: usize, reply: &Message) -> Result<(), VerifyError> {
        let kind = &self.kinds[kind];
        match &kind.expect {
            Expect::Normal => Ok(()),
            Expect::Echo(sent) => {
                if reply.payload() == sent.as_slice() {
                    Ok(())
                } else {
                    Err(VerifyError::Payload {
                        kind: kind.name.clone(),
                        expected: sent.len(),
                        got: reply.payload().len(),
                    })
                }
            }
            Expect::ArithResult {
                value,
                serialization,
            } => {
                let decoded = match serialization {
                    Serialization::MsgPack => rmp_serde::from_slice::<ArithReply>(reply.payload())
                        .map_err(|e| e.to_string()),
                    Serialization::Protobuf => {
                        ArithReply::decode(reply.payload()).map_err(|e| e.to_string())
                    }
                    _ => serde_json::from_slice::<ArithReply>(reply.payload())
                        .map_err(|e| e.to_string()),
                };
                match decoded {
                    Ok(ArithReply { c }) if c == *value => Ok(()),
                    Ok(ArithReply { c }) => Err(VerifyError::ArithResult {
                        kind: kind.name.clone(),
                        expected: *value,
                        got: c,
                    }),
                    Err(reason) => Err(VerifyError::Undecodable {
                        kind: kind.name.clone(),
                        reason,
                    }),
                }
            }
            Expect::HelloSay => {
                let message = BenchmarkMessage::decode(reply.payload()).map_err(|e| {
                    VerifyError::Undecodable {
                        kind: kind.name.clone(),
                        reason: e.to_string(),
                    }
                })?;
                let field = |field, expected: &str, got: String| {
                    (got != expected).then(|| VerifyError::Field {
                        kind: kind.name.clone(),
                        field,
                        expected: expected.to_string(),
                        got,
                    })
                };
                match field("field1", "OK", message.field1)
                    .or_else(|| field("field2", "100", message.field2.to_string()))
                {
                    Some(error) => Err(error),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Picks the kind of each request of one connection: [`SLOW`] with the slow mix's probability,
/// else [`MAIN`]. A xorshift generator: no allocation, a few instructions per pick.
#[derive(Debug, Clone)]
pub struct Mixer {
    state: u64,
    slow_threshold: u64,
}

impl Mixer {
    pub fn next_kind(&mut self) -> usize {
        if self.slow_threshold == 0 {
            return MAIN;
        }
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        if (x >> 32) < self.slow_threshold {
            SLOW
        } else {
            MAIN
        }
    }
}

/// `len` printable bytes in a fixed pseudo-random pattern: not all one byte, so that gzip has
/// realistic work to do, and identical between runs.
pub fn pattern_payload(len: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut x: u32 = 0x2545_F491;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            ALPHABET[(x % ALPHABET.len() as u32) as usize]
        })
        .collect()
}

/// Whether a target is rpcx-benchmark's `Hello.Say` with its Protobuf `BenchmarkMessage`.
fn hello_say(service: &str, method: &str, serialization: Serialization) -> bool {
    (service, method, serialization) == ("Hello", "Say", Serialization::Protobuf)
}

fn args(spec: &WorkloadSpec) -> ArithArgs {
    ArithArgs {
        a: spec.arith_args.0,
        b: spec.arith_args.1,
    }
}

/// `C` for the methods of the demo `Arith` service; `None` for others (and for a division by zero,
/// which the server answers with an error).
fn arith_expectation(method: &str, (a, b): (i64, i64)) -> Option<i64> {
    match method {
        "Mul" => Some(a.wrapping_mul(b)),
        "Add" => Some(a.wrapping_add(b)),
        "Sub" => Some(a.wrapping_sub(b)),
        "Div" => a.checked_div(b),
        _ => None,
    }
}

fn encode_request(
    service: &str,
    method: &str,
    serialize: SerializeType,
    gzip: bool,
    metadata: &[(String, String)],
    payload: &[u8],
) -> Vec<u8> {
    let mut header = Header::new();
    header.set_serialize_type(serialize);
    if gzip {
        header.set_compress_type(CompressType::Gzip);
    }
    let mut buf = BytesMut::new();
    encode_frame(
        &mut buf,
        &header,
        service.as_bytes(),
        method.as_bytes(),
        metadata.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())),
        payload,
    );
    buf.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use ringrpc_codec::{encode_reply, Decoder, Limits};

    fn decode(frame: &[u8]) -> Message {
        let mut buf = BytesMut::from(frame);
        Decoder::new(Limits::default())
            .decode(&mut buf)
            .unwrap()
            .unwrap()
    }

    fn reply_to(request: &[u8], payload: &[u8]) -> Message {
        let request = decode(request);
        let mut buf = BytesMut::new();
        encode_reply(&mut buf, &request, [], payload);
        decode(&buf)
    }

    #[test]
    fn arith_mul_json_matches_the_spec_vector() {
        let spec = WorkloadSpec {
            target: "Arith.Mul".into(),
            serialization: Serialization::Json,
            metadata: vec![("k".into(), "v".into())],
            ..WorkloadSpec::default()
        };
        let workload = Workload::new(&spec).unwrap();
        // rpcx-protocol.md 6, V1.req (seq 1 there, 0 here).
        let v1 = "08000010000000000000000000000031000000054172697468000000034d756c0000000a\
                  000000016b00000001760000000f7b2241223a31302c2242223a32307d";
        let hex: String = workload
            .frame(MAIN)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, v1);
        let good = reply_to(workload.frame(MAIN), br#"{"C":200}"#);
        workload.check(MAIN, &good).unwrap();
        let bad = reply_to(workload.frame(MAIN), br#"{"C":201}"#);
        assert!(matches!(
            workload.check(MAIN, &bad),
            Err(VerifyError::ArithResult {
                expected: 200,
                got: 201,
                ..
            })
        ));
        let garbage = reply_to(workload.frame(MAIN), b"oops");
        assert!(matches!(
            workload.check(MAIN, &garbage),
            Err(VerifyError::Undecodable { .. })
        ));
    }

    #[test]
    fn arith_msgpack_is_a_named_map() {
        let spec = WorkloadSpec {
            target: "Arith.Add".into(),
            serialization: Serialization::MsgPack,
            arith_args: (2, 3),
            ..WorkloadSpec::default()
        };
        let workload = Workload::new(&spec).unwrap();
        let request = decode(workload.frame(MAIN));
        assert_eq!(request.serialize_type(), SerializeType::MsgPack);
        // fixmap of 2, "A" 2, "B" 3.
        assert_eq!(request.payload(), &[0x82, 0xa1, b'A', 2, 0xa1, b'B', 3]);
        // Go writes int64 in the 9-byte form (spec 2); any width must verify.
        let go_reply = [0x81, 0xa1, b'C', 0xd3, 0, 0, 0, 0, 0, 0, 0, 5];
        workload
            .check(MAIN, &reply_to(workload.frame(MAIN), &go_reply))
            .unwrap();
    }

    #[test]
    fn echo_with_gzip_verifies_the_decompressed_payload() {
        let spec = WorkloadSpec {
            gzip: true,
            payload: pattern_payload(4000),
            ..WorkloadSpec::default()
        };
        let workload = Workload::new(&spec).unwrap();
        let request = decode(workload.frame(MAIN));
        assert_eq!(request.header().compress_type(), CompressType::Gzip);
        assert!(request.wire_payload().len() < 4000);
        assert_eq!(request.payload(), &Bytes::from(pattern_payload(4000)));
        let reply = reply_to(workload.frame(MAIN), request.payload());
        assert_eq!(reply.header().compress_type(), CompressType::Gzip);
        workload.check(MAIN, &reply).unwrap();
        let short = reply_to(workload.frame(MAIN), b"short");
        assert!(matches!(
            workload.check(MAIN, &short),
            Err(VerifyError::Payload {
                expected: 4000,
                got: 5,
                ..
            })
        ));
    }

    /// rpcx-benchmark's request as Go's gogofaster code encodes it (go-rpcx's hello_test.go).
    const HELLO_REQUEST: &[&str] = &[
        "0a36e8aeb8e5a49ae5be80e4ba8be59ca8e79cbce5898de4b880e5b995e4b880e5b995efbc8ce58f98e79a84",
        "e982a3e9babce6a8a1e7b38a10a08d0618a08d062236e8aeb8e5a49ae5be80e4ba8be59ca8e79cbce5898de4",
        "b880e5b995e4b880e5b995efbc8ce58f98e79a84e982a3e9babce6a8a1e7b38a30a08d063a36e8aeb8e5a49a",
        "e5be80e4ba8be59ca8e79cbce5898de4b880e5b995e4b880e5b995efbc8ce58f98e79a84e982a3e9babce6a8",
        "a1e7b38a4a36e8aeb8e5a49ae5be80e4ba8be59ca8e79cbce5898de4b880e5b995e4b880e5b995efbc8ce58f",
        "98e79a84e982a3e9babce6a8a1e7b38a6001680170018001a08d06880101920136e8aeb8e5a49ae5be80e4ba",
        "8be59ca8e79cbce5898de4b880e5b995e4b880e5b995efbc8ce58f98e79a84e982a3e9babce6a8a1e7b38ab0",
        "01a08d06b801a08d06c00101c801a08d06e801a08d06f00101d80301e003a08d069804a08d06a004a08d06f0",
        "0401800501880501a006a08d06a806a08d06b20636e8aeb8e5a49ae5be80e4ba8be59ca8e79cbce5898de4b8",
        "80e5b995e4b880e5b995efbc8ce58f98e79a84e982a3e9babce6a8a1e7b38aba0636e8aeb8e5a49ae5be80e4",
        "ba8be59ca8e79cbce5898de4b880e5b995e4b880e5b995efbc8ce58f98e79a84e982a3e9babce6a8a1e7b38a",
        "c006a08d068008a08d068a0836e8aeb8e5a49ae5be80e4ba8be59ca8e79cbce5898de4b880e5b995e4b880e5",
        "b995efbc8ce58f98e79a84e982a3e9babce6a8a1e7b38a9008a08d069808a08d06b009a08d06f810a08d0680",
        "11a08d06c011a08d06",
    ];

    #[test]
    fn hello_say_sends_the_rpcx_benchmark_message_and_checks_field1_and_field2() {
        let spec = WorkloadSpec {
            target: "Hello.Say".into(),
            serialization: Serialization::Protobuf,
            ..WorkloadSpec::default()
        };
        let workload = Workload::new(&spec).unwrap();
        let request = decode(workload.frame(MAIN));
        assert_eq!(request.serialize_type(), SerializeType::Protobuf);
        assert_eq!(request.service_path(), b"Hello");
        assert_eq!(request.service_method(), b"Say");
        let hex: String = request
            .payload()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, HELLO_REQUEST.concat());
        assert_eq!(workload.kinds()[MAIN].payload_len, 581);

        let mut answer = benchmark_args();
        answer.field1 = "OK".into();
        answer.field2 = 100;
        let good = reply_to(workload.frame(MAIN), &answer.encode_to_vec());
        workload.check(MAIN, &good).unwrap();
        // An echo of the request is not an answer.
        let echoed = reply_to(workload.frame(MAIN), request.payload());
        assert!(matches!(
            workload.check(MAIN, &echoed),
            Err(VerifyError::Field {
                field: "field1",
                ..
            })
        ));
        answer.field2 = 99;
        let bad = reply_to(workload.frame(MAIN), &answer.encode_to_vec());
        let error = workload.check(MAIN, &bad).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Hello.Say: reply field2 = 99, expected 100"
        );
        let garbage = reply_to(workload.frame(MAIN), &[0xff, 0xff]);
        assert!(matches!(
            workload.check(MAIN, &garbage),
            Err(VerifyError::Undecodable { .. })
        ));
    }

    #[test]
    fn hello_say_without_protobuf_sends_the_given_payload() {
        let spec = WorkloadSpec {
            target: "Hello.Say".into(),
            ..WorkloadSpec::default()
        };
        let workload = Workload::new(&spec).unwrap();
        assert_eq!(
            decode(workload.frame(MAIN)).payload(),
            &pattern_payload(581)[..]
        );
        assert_eq!(workload.kinds()[MAIN].expect, Expect::Normal);
    }

    #[test]
    fn arith_protobuf_is_proto_args() {
        let spec = WorkloadSpec {
            target: "Arith.Mul".into(),
            serialization: Serialization::Protobuf,
            ..WorkloadSpec::default()
        };
        let workload = Workload::new(&spec).unwrap();
        // ProtoArgs { A: 10, B: 20 }, as the Go peer's test pins it.
        assert_eq!(
            decode(workload.frame(MAIN)).payload(),
            &[0x08, 0x0a, 0x10, 0x14][..]
        );
        // ProtoReply { C: 200 }.
        let reply = reply_to(workload.frame(MAIN), &[0x08, 0xc8, 0x01]);
        workload.check(MAIN, &reply).unwrap();
        let zero = reply_to(workload.frame(MAIN), &[]);
        assert!(matches!(
            workload.check(MAIN, &zero),
            Err(VerifyError::ArithResult { got: 0, .. })
        ));
    }

    #[test]
    fn slow_mix_sends_the_decimal_ms_to_echo_sleep() {
        let spec = WorkloadSpec {
            slow: Some(SlowMix {
                percent: 10.0,
                ms: "25".into(),
            }),
            ..WorkloadSpec::default()
        };
        let workload = Workload::new(&spec).unwrap();
        let slow = decode(workload.frame(SLOW));
        assert_eq!(slow.service_path(), b"Echo");
        assert_eq!(slow.service_method(), b"Sleep");
        assert_eq!(slow.payload(), &b"25"[..]);
        let mut mixer = workload.mixer(7);
        let slow_count = (0..100_000).filter(|_| mixer.next_kind() == SLOW).count();
        assert!((9_000..11_000).contains(&slow_count), "{slow_count}");
    }

    #[test]
    fn without_slow_mix_every_request_is_main() {
        let workload = Workload::new(&WorkloadSpec::default()).unwrap();
        let mut mixer = workload.mixer(1);
        assert!((0..1000).all(|_| mixer.next_kind() == MAIN));
        assert_eq!(workload.kinds().len(), 1);
    }

    #[test]
    fn bad_specs_are_refused() {
        for target in ["EchoEcho", ".Echo", "Echo."] {
            let spec = WorkloadSpec {
                target: target.into(),
                ..WorkloadSpec::default()
            };
            assert!(matches!(
                Workload::new(&spec),
                Err(WorkloadError::BadTarget(_))
            ));
        }
        let spec = WorkloadSpec {
            slow: Some(SlowMix {
                percent: 101.0,
                ms: "1".into(),
            }),
            ..WorkloadSpec::default()
        };
        assert!(Workload::new(&spec).is_err());
        let spec = WorkloadSpec {
            slow: Some(SlowMix {
                percent: 1.0,
                ms: "2.5".into(),
            }),
            ..WorkloadSpec::default()
        };
        assert!(matches!(
            Workload::new(&spec),
            Err(WorkloadError::BadSlowMs(_))
        ));
    }

    #[test]
    fn pattern_payload_is_printable_and_stable() {
        let a = pattern_payload(581);
        assert_eq!(a.len(), 581);
        assert!(a.iter().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(a, pattern_payload(581));
    }
}
