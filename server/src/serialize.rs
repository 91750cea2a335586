//! Payload codecs by serialize type: raw bytes (0), JSON (1), Protobuf (2), MsgPack (3)
//! (rpcx-protocol.md 2). Knows nothing of frames or connections: bytes in, values out.
//!
//! - JSON: field names as written on output (`{"C":200}`), matched case-insensitively on input as
//!   Go's `encoding/json` does (see [`json`]).
//! - MsgPack: structs as **named maps** and integers in the fixed width of their type, byte for
//!   byte as Go's vmihailenco/msgpack writes them (see [`msgpack`]); arrays and any integer width
//!   are accepted on input.
//! - Protobuf: `prost` messages, only for methods registered with a protobuf type.
//! - Any other type: Go's exact error, `can not find codec for N`.

use bytes::{BufMut, BytesMut};
use ringrpc_codec::SerializeType;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub mod json;
pub mod msgpack;

/// Why a payload could not be decoded or a reply encoded. The text goes into `__rpcx_error__`.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// No codec for this serialize type (Go's text).
    #[error("can not find codec for {0}")]
    NoCodec(u8),
    /// A typed method was called with serialize type 0 (Go: `<T> is not a *[]byte`).
    #[error("{0} is not a []byte")]
    NotRawBytes(&'static str),
    /// A Protobuf request to a method whose types have no Protobuf encoding.
    #[error("{0} is not a proto.Message")]
    NotProtobuf(&'static str),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    MsgPackDecode(#[from] rmp_serde::decode::Error),
    #[error("{0}")]
    MsgPackEncode(#[from] rmp_serde::encode::Error),
    #[error("{0}")]
    ProtobufDecode(#[from] prost::DecodeError),
}

/// Decodes a serde value from a JSON or MsgPack payload.
pub fn decode_serde<T: DeserializeOwned>(
    serialize: SerializeType,
    payload: &[u8],
) -> Result<T, CodecError> {
    match serialize {
        SerializeType::Json => Ok(json::from_slice_case_insensitive(payload)?),
        SerializeType::MsgPack => Ok(rmp_serde::from_slice(payload)?),
        SerializeType::Raw => Err(CodecError::NotRawBytes(std::any::type_name::<T>())),
        SerializeType::Protobuf => Err(CodecError::NotProtobuf(std::any::type_name::<T>())),
        other => Err(CodecError::NoCodec(other.bits())),
    }
}

/// Appends a serde value as JSON or MsgPack (named map, fixed-width integers, as Go writes it) to
/// `out`.
pub fn encode_serde<T: Serialize>(
    serialize: SerializeType,
    value: &T,
    out: &mut BytesMut,
) -> Result<(), CodecError> {
    match serialize {
        SerializeType::Json => Ok(serde_json::to_writer(OutputWriter(out), value)?),
        SerializeType::MsgPack => Ok(msgpack::to_writer_go(&mut OutputWriter(out), value)?),
        SerializeType::Raw => Err(CodecError::NotRawBytes(std::any::type_name::<T>())),
        SerializeType::Protobuf => Err(CodecError::NotProtobuf(std::any::type_name::<T>())),
        other => Err(CodecError::NoCodec(other.bits())),
    }
}

/// `io::Write` straight into the output buffer, for the serializers. They write a field at a
/// time and punctuation a byte at a time (`{`, `"`, `:`): a single byte is pushed inline, longer
/// writes are one copy, where the `bytes` writer went through `write_all`'s loop and a `memcpy`
/// call for every byte of punctuation.
struct OutputWriter<'a>(&'a mut BytesMut);

impl std::io::Write for OutputWriter<'_> {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    #[inline]
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match buf {
            [byte] => self.0.put_u8(*byte),
            _ => self.0.extend_from_slice(buf),
        }
        Ok(())
    }

    #[inline]
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Decodes a value that has both a serde and a Protobuf encoding.
pub fn decode_proto<T: DeserializeOwned + prost::Message + Default>(
    serialize: SerializeType,
    payload: &[u8],
) -> Result<T, CodecError> {
    match serialize {
        SerializeType::Protobuf => Ok(T::decode(payload)?),
        other => decode_serde(other, payload),
    }
}

/// Appends a value that has both a serde and a Protobuf encoding.
pub fn encode_proto<T: Serialize + prost::Message>(
    serialize: SerializeType,
    value: &T,
    out: &mut BytesMut,
) -> Result<(), CodecError> {
    match serialize {
        SerializeType::Protobuf => {
            value.encode_raw(out);
            Ok(())
        }
        other => encode_serde(other, value, out),
    }
}

/// Whether a codec is registered for this serialize type (Go's default codec map, less Thrift,
/// whose TBinaryProtocol structs have no Rust counterpart here).
pub fn has_codec(serialize: SerializeType) -> bool {
    matches!(
        serialize,
        SerializeType::Raw | SerializeType::Json | SerializeType::Protobuf | SerializeType::MsgPack
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(PartialEq, Serialize, Deserialize, prost::Message)]
    struct Args {
        #[prost(int64, tag = "1")]
        #[serde(rename = "A")]
        a: i64,
        #[prost(int64, tag = "2")]
        #[serde(rename = "B")]
        b: i64,
    }

    #[test]
    fn json_round_trip_uses_go_field_names() {
        let mut out = BytesMut::new();
        encode_serde(SerializeType::Json, &Args { a: 10, b: 20 }, &mut out).unwrap();
        assert_eq!(&out[..], br#"{"A":10,"B":20}"#);
        let back: Args = decode_serde(SerializeType::Json, &out).unwrap();
        assert_eq!(back, Args { a: 10, b: 20 });
    }

    #[test]
    fn msgpack_is_a_named_map_and_arrays_are_accepted() {
        let mut out = BytesMut::new();
        encode_serde(SerializeType::MsgPack, &Args { a: 1, b: 2 }, &mut out).unwrap();
        // Go's bytes: a fixmap of two entries, each int64 in the fixed 9-byte form.
        let go_bytes = [
            0x82, // fixmap, 2 entries
            0xa1, b'A', 0xd3, 0, 0, 0, 0, 0, 0, 0, 1, // "A": int64 1
            0xa1, b'B', 0xd3, 0, 0, 0, 0, 0, 0, 0, 2, // "B": int64 2
        ];
        assert_eq!(&out[..], &go_bytes);
        let back: Args = decode_serde(SerializeType::MsgPack, &out).unwrap();
        assert_eq!(back, Args { a: 1, b: 2 });
        let array = rmp_serde::to_vec(&Args { a: 3, b: 4 }).unwrap();
        let back: Args = decode_serde(SerializeType::MsgPack, &array).unwrap();
        assert_eq!(back, Args { a: 3, b: 4 });
        // Go writes int64 in the fixed 9-byte form: any width decodes.
        let go_form = [
            0x82, 0xa1, b'A', 0xd3, 0, 0, 0, 0, 0, 0, 0, 7, 0xa1, b'B', 0x01,
        ];
        let back: Args = decode_serde(SerializeType::MsgPack, &go_form).unwrap();
        assert_eq!(back, Args { a: 7, b: 1 });
    }

    #[test]
    fn protobuf_round_trip() {
        let mut out = BytesMut::new();
        encode_proto(SerializeType::Protobuf, &Args { a: 10, b: 20 }, &mut out).unwrap();
        assert_eq!(&out[..], &[0x08, 10, 0x10, 20]);
        let back: Args = decode_proto(SerializeType::Protobuf, &out).unwrap();
        assert_eq!(back, Args { a: 10, b: 20 });
    }

    #[test]
    fn unknown_types_get_go_error_text() {
        let err = decode_serde::<Args>(SerializeType::Thrift, b"").unwrap_err();
        assert_eq!(err.to_string(), "can not find codec for 4");
        let err = decode_serde::<Args>(SerializeType::Custom(9), b"").unwrap_err();
        assert_eq!(err.to_string(), "can not find codec for 9");
    }
}
