//! `Hello.Say`, the service of [rpcx-benchmark](https://github.com/rpcxio/rpcx-benchmark), the
//! benchmark whose figures rpcx users cite: its client sends a 581-byte protobuf
//! [`BenchmarkMessage`]; the server sets `field1 = "OK"` and `field2 = 100` and replies with the
//! message. The Go peer (`benches/peers/go-rpcx`) serves the same method with the code
//! gogofaster generates from the same `benchmark.proto`.
//!
//! The message is proto2. Required fields are plain values; optional ones are `Option`s with the
//! proto's defaults, so a field is written back exactly when it was received. (gogofaster's Go
//! type writes the optional fields that have no default even when they were absent; the
//! benchmark's message sets every field, so both reply with the same bytes.)
//!
//! String fields are held as `Bytes` (prost's `bytes = "bytes"`; the wire format of a string and
//! of bytes is the same) and decoded from the request's payload `Bytes`, so each is a slice of the
//! receive buffer: no allocation and no copy per field, and no UTF-8 check, which gogofaster's Go
//! code does not make either (a proto2 string that is not UTF-8 comes back unchanged). With
//! `String` fields, the UTF-8 checks of the message's seven 54-byte strings alone cost about 4,700
//! instructions per request (callgrind), a third of the call.
//!
//! Protobuf only, as rpcx-benchmark's client sends it: other serialize types get
//! `can not find codec for N` (raw: `... is not a []byte`, as for every typed method). The message
//! has no serde derive on purpose: 40 more fields of serde code in the binary change how LTO
//! inlines serde_json for the other services (Arith.Mul over JSON took 12 % more instructions per
//! request with it).

use bytes::{Bytes, BytesMut};
use prost::Message as _;
use ringrpc_codec::SerializeType;

use crate::serialize::CodecError;
use crate::{Message, Payload, ServiceError};

/// `message BenchmarkMessage` of rpcx-benchmark's `proto/benchmark.proto` (proto2), field for
/// field, in the proto's order.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BenchmarkMessage {
    #[prost(bytes = "bytes", required, tag = "1")]
    pub field1: Bytes,
    #[prost(bytes = "bytes", optional, tag = "9")]
    pub field9: Option<Bytes>,
    #[prost(bytes = "bytes", optional, tag = "18")]
    pub field18: Option<Bytes>,
    #[prost(bool, optional, tag = "80", default = "false")]
    pub field80: Option<bool>,
    #[prost(bool, optional, tag = "81", default = "true")]
    pub field81: Option<bool>,
    #[prost(int32, required, tag = "2")]
    pub field2: i32,
    #[prost(int32, required, tag = "3")]
    pub field3: i32,
    #[prost(int32, optional, tag = "280")]
    pub field280: Option<i32>,
    #[prost(int32, optional, tag = "6", default = "0")]
    pub field6: Option<i32>,
    #[prost(int64, optional, tag = "22")]
    pub field22: Option<i64>,
    #[prost(bytes = "bytes", optional, tag = "4")]
    pub field4: Option<Bytes>,
    /// proto2 repeated scalars are not packed.
    #[prost(fixed64, repeated, packed = "false", tag = "5")]
    pub field5: Vec<u64>,
    #[prost(bool, optional, tag = "59", default = "false")]
    pub field59: Option<bool>,
    #[prost(bytes = "bytes", optional, tag = "7")]
    pub field7: Option<Bytes>,
    #[prost(int32, optional, tag = "16")]
    pub field16: Option<i32>,
    #[prost(int32, optional, tag = "130", default = "0")]
    pub field130: Option<i32>,
    #[prost(bool, optional, tag = "12", default = "true")]
    pub field12: Option<bool>,
    #[prost(bool, optional, tag = "17", default = "true")]
    pub field17: Option<bool>,
    #[prost(bool, optional, tag = "13", default = "true")]
    pub field13: Option<bool>,
    #[prost(bool, optional, tag = "14", default = "true")]
    pub field14: Option<bool>,
    #[prost(int32, optional, tag = "104", default = "0")]
    pub field104: Option<i32>,
    #[prost(int32, optional, tag = "100", default = "0")]
    pub field100: Option<i32>,
    #[prost(int32, optional, tag = "101", default = "0")]
    pub field101: Option<i32>,
    #[prost(bytes = "bytes", optional, tag = "102")]
    pub field102: Option<Bytes>,
    #[prost(bytes = "bytes", optional, tag = "103")]
    pub field103: Option<Bytes>,
    #[prost(int32, optional, tag = "29", default = "0")]
    pub field29: Option<i32>,
    #[prost(bool, optional, tag = "30", default = "false")]
    pub field30: Option<bool>,
    #[prost(int32, optional, tag = "60", default = "-1")]
    pub field60: Option<i32>,
    #[prost(int32, optional, tag = "271", default = "-1")]
    pub field271: Option<i32>,
    #[prost(int32, optional, tag = "272", default = "-1")]
    pub field272: Option<i32>,
    #[prost(int32, optional, tag = "150")]
    pub field150: Option<i32>,
    #[prost(int32, optional, tag = "23", default = "0")]
    pub field23: Option<i32>,
    #[prost(bool, optional, tag = "24", default = "false")]
    pub field24: Option<bool>,
    #[prost(int32, optional, tag = "25", default = "0")]
    pub field25: Option<i32>,
    #[prost(bool, optional, tag = "78")]
    pub field78: Option<bool>,
    #[prost(int32, optional, tag = "67", default = "0")]
    pub field67: Option<i32>,
    #[prost(int32, optional, tag = "68")]
    pub field68: Option<i32>,
    #[prost(int32, optional, tag = "128", default = "0")]
    pub field128: Option<i32>,
    #[prost(
        bytes = "bytes",
        optional,
        tag = "129",
        default = "b\"xxxxxxxxxxxxxxxxxxxxx\""
    )]
    pub field129: Option<Bytes>,
    #[prost(int32, optional, tag = "131", default = "0")]
    pub field131: Option<i32>,
}

impl Payload for BenchmarkMessage {
    /// Its string and bytes fields are slices of the payload (`payload_bytes`).
    const SHARES_FRAME: bool = true;

    fn decode(request: &Message) -> Result<Self, CodecError> {
        match request.serialize_type() {
            // Each string field is then a slice of the payload, not a copy.
            SerializeType::Protobuf => Ok(<Self as prost::Message>::decode(SlicingBuf::new(
                &request.payload_bytes(),
            ))?),
            SerializeType::Raw => Err(CodecError::NotRawBytes(std::any::type_name::<Self>())),
            other => Err(CodecError::NoCodec(other.bits())),
        }
    }

    fn encode(&self, serialize: SerializeType, out: &mut BytesMut) -> Result<(), CodecError> {
        match serialize {
            SerializeType::Protobuf => {
                self.encode_raw(out);
                Ok(())
            }
            SerializeType::Raw => Err(CodecError::NotRawBytes(std::any::type_name::<Self>())),
            other => Err(CodecError::NoCodec(other.bits())),
        }
    }

    /// Go's zero `BenchmarkMessage`: the message with no field set.
    fn encode_zero(serialize: SerializeType, out: &mut BytesMut) -> Result<(), CodecError> {
        Payload::encode(&Self::default(), serialize, out)
    }
}

/// The payload as a [`bytes::Buf`] for prost: read as a plain slice (prost's varint decoding keeps
/// its slice fast path), while `copy_to_bytes`, which prost calls for each `Bytes` field, slices the
/// payload's `Bytes` instead of copying.
struct SlicingBuf<'a> {
    whole: &'a Bytes,
    rest: &'a [u8],
}

impl<'a> SlicingBuf<'a> {
    fn new(whole: &'a Bytes) -> Self {
        SlicingBuf { whole, rest: whole }
    }
}

impl bytes::Buf for SlicingBuf<'_> {
    #[inline]
    fn remaining(&self) -> usize {
        self.rest.len()
    }

    #[inline]
    fn chunk(&self) -> &[u8] {
        self.rest
    }

    #[inline]
    fn advance(&mut self, n: usize) {
        self.rest = &self.rest[n..];
    }

    #[inline]
    fn copy_to_bytes(&mut self, len: usize) -> Bytes {
        let taken = self.whole.slice_ref(&self.rest[..len]);
        self.rest = &self.rest[len..];
        taken
    }
}

/// `Hello`: rpcx-benchmark's service.
#[derive(Debug, Default, Clone, Copy)]
pub struct Hello;

#[crate::service]
impl Hello {
    /// Sets `field1 = "OK"` and `field2 = 100` and returns the message, as rpcx-benchmark's server.
    pub fn say(&self, mut message: BenchmarkMessage) -> Result<BenchmarkMessage, ServiceError> {
        message.field1 = Bytes::from_static(b"OK");
        message.field2 = 100;
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    #[test]
    fn absent_optional_fields_read_as_the_proto_defaults() {
        let bytes = [0x0a, 0x02, b'O', b'K', 0x10, 0x64];
        let message = <BenchmarkMessage as prost::Message>::decode(&bytes[..]).unwrap();
        assert_eq!(message.field1, &b"OK"[..]);
        assert_eq!(message.field2, 100);
        assert!(message.field81.is_none());
        assert!(message.field81());
        assert_eq!(message.field60(), -1);
        assert_eq!(message.field129(), b"xxxxxxxxxxxxxxxxxxxxx");
        // Required fields are always written, absent optional ones never.
        assert_eq!(
            message.encode_to_vec(),
            [0x0a, 0x02, b'O', b'K', 0x10, 0x64, 0x18, 0x00]
        );
    }
}
