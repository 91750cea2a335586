//! `ringrpc-codec`: the rpcx wire format, byte-compatible with the Go implementation, and no IO.
//!
//! The spec is `rpcx-protocol.md` (shared with the team); section numbers in comments refer to it.
//!
//! - [`header`]: the 16-byte prefix as a `zerocopy` struct read in place, typed accessors for every
//!   bit, and the protocol's enums.
//! - [`decode`]: the incremental decoder over `BytesMut` and its [`Limits`]; [`FrameRun`], a
//!   connection's whole frames cut off the buffer in one piece and parsed one by one.
//! - [`message`]: a decoded frame whose path, method, metadata and payload are views of the frame.
//! - [`metadata`]: the zero-copy metadata view, the outgoing builder and the reserved keys.
//! - [`encode`]: frame writers into caller-supplied buffers, and the response rules.
//! - [`compress`]: gzip both ways and the 1024-byte reply rule.
//! - [`error`]: [`DecodeError`], one variant per class of malformed frame.
//!
//! Nothing here panics on any input: every malformed frame is a [`DecodeError`].

pub mod compress;
pub mod decode;
pub mod encode;
pub mod error;
pub mod header;
pub mod message;
pub mod metadata;

pub use compress::{gunzip, gzip, reply_compression, COMPRESS_THRESHOLD};
pub use decode::{Decoder, FrameRun, Limits};
pub use encode::{
    encode_error_reply, encode_frame, encode_heartbeat_reply, encode_plain_reply_with,
    encode_reply, encode_reply_with, FrameWriter, PayloadWriter,
};
pub use error::{BodyField, DecodeError};
pub use header::{
    CompressType, Header, MessageStatus, MessageType, SerializeType, HEADER_LEN, MAGIC,
};
pub use message::Message;
pub use metadata::{
    Metadata, MetadataBuilder, MetadataIter, AUTH_KEY, ERROR_KEY, SERVER_TIMEOUT_KEY,
};
