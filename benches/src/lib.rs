//! Shared by the criterion benches: request frames built through the codec, so every bench sends
//! exactly what a client would.

use bytes::{Bytes, BytesMut};
use ringrpc_codec::{encode_frame, Header, SerializeType};

/// A request frame (seq 1, no metadata) for `path.method` with `payload`.
pub fn request_frame(path: &str, method: &str, serialize: SerializeType, payload: &[u8]) -> Bytes {
    let mut header = Header::new();
    header.set_seq(1).set_serialize_type(serialize);
    let mut buf = BytesMut::new();
    encode_frame(
        &mut buf,
        &header,
        path.as_bytes(),
        method.as_bytes(),
        [],
        payload,
    );
    buf.freeze()
}
