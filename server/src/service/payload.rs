//! [`Payload`]: how a method's argument is read from a request and its reply written, with the
//! request's serialize type; and the macros that make serde and prost types payloads.

use bytes::{BufMut, Bytes, BytesMut};
use ringrpc_codec::{Message, SerializeType};

use crate::serialize::CodecError;

/// A method argument or reply: how it is read from and written to a payload.
///
/// `Bytes` is the raw payload (serialize type 0, any type accepted). Implement it for serde types
/// with [`serde_payload!`](crate::serde_payload) (JSON and MsgPack) or, for types that also derive
/// `prost::Message`, with [`proto_payload!`](crate::proto_payload).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an rpcx payload",
    label = "method arguments and replies must implement `ringrpc_server::Payload`",
    note = "use `Bytes` for raw payloads, `serde_payload!({Self})` for serde types (JSON, MsgPack), or `proto_payload!({Self})` for serde + prost types"
)]
pub trait Payload: Sized + 'static {
    /// Whether [`Payload::decode`] keeps a handle on the request's bytes (`payload_bytes`,
    /// `frame_bytes`, a clone of the request), as `Bytes` does. A latency-bound connection lends
    /// its lone frame to the request without a handle on it; for such a payload the request is
    /// given its handle first, and its payload shared, not copied. Left `false`, a decode that
    /// takes a handle anyway still works, on a copy of the bytes.
    const SHARES_FRAME: bool = false;

    /// Reads the argument from a request, with the request's serialize type.
    fn decode(request: &Message) -> Result<Self, CodecError>;
    /// Appends the reply, encoded with `serialize`.
    fn encode(&self, serialize: SerializeType, out: &mut BytesMut) -> Result<(), CodecError>;
    /// Appends the reply that goes with an error: Go sends the zero value of the reply type
    /// (docs/protocol.md 4.7, vector V6). The macros write `Self::default()`, which
    /// `#[derive(Default)]` (or prost's derive) provides: no hand-written zero value.
    fn encode_zero(serialize: SerializeType, out: &mut BytesMut) -> Result<(), CodecError>;
}

impl Payload for Bytes {
    const SHARES_FRAME: bool = true;

    fn decode(request: &Message) -> Result<Self, CodecError> {
        Ok(request.payload_bytes())
    }

    fn encode(&self, _: SerializeType, out: &mut BytesMut) -> Result<(), CodecError> {
        out.put_slice(self);
        Ok(())
    }

    /// Go's zero `[]byte`: an empty payload.
    fn encode_zero(_: SerializeType, _: &mut BytesMut) -> Result<(), CodecError> {
        Ok(())
    }
}

/// Makes serde types (with `Default`, Go's zero value for error replies) method arguments and
/// replies, over JSON and MsgPack.
#[macro_export]
macro_rules! serde_payload {
    ($($ty:ty),+ $(,)?) => {$(
        impl $crate::Payload for $ty {
            fn decode(
                request: &$crate::Message,
            ) -> Result<Self, $crate::serialize::CodecError> {
                $crate::serialize::decode_serde(request.serialize_type(), request.payload())
            }
            fn encode(
                &self,
                serialize: $crate::SerializeType,
                out: &mut $crate::bytes::BytesMut,
            ) -> Result<(), $crate::serialize::CodecError> {
                $crate::serialize::encode_serde(serialize, self, out)
            }
            fn encode_zero(
                serialize: $crate::SerializeType,
                out: &mut $crate::bytes::BytesMut,
            ) -> Result<(), $crate::serialize::CodecError> {
                $crate::serialize::encode_serde(serialize, &<$ty as Default>::default(), out)
            }
        }
    )+};
}

/// Makes types that are both serde and `prost::Message` arguments and replies, over JSON, MsgPack
/// and Protobuf.
#[macro_export]
macro_rules! proto_payload {
    ($($ty:ty),+ $(,)?) => {$(
        impl $crate::Payload for $ty {
            fn decode(
                request: &$crate::Message,
            ) -> Result<Self, $crate::serialize::CodecError> {
                $crate::serialize::decode_proto(request.serialize_type(), request.payload())
            }
            fn encode(
                &self,
                serialize: $crate::SerializeType,
                out: &mut $crate::bytes::BytesMut,
            ) -> Result<(), $crate::serialize::CodecError> {
                $crate::serialize::encode_proto(serialize, self, out)
            }
            fn encode_zero(
                serialize: $crate::SerializeType,
                out: &mut $crate::bytes::BytesMut,
            ) -> Result<(), $crate::serialize::CodecError> {
                $crate::serialize::encode_proto(serialize, &<$ty as Default>::default(), out)
            }
        }
    )+};
}
