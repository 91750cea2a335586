//! The one error type of the codec: every class of malformed frame, named (rpcx-protocol.md 1.8).
//!
//! Each of these closes the connection in the Go server and in ours; the texts follow Go's where
//! Go has one, so that logs read the same.

/// Which length-prefixed field of the body was malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyField {
    ServicePath,
    ServiceMethod,
    Metadata,
    /// The payload length field itself (its value is ignored, as in Go, but its 4 bytes must exist).
    PayloadLength,
}

impl std::fmt::Display for BodyField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BodyField::ServicePath => "service path",
            BodyField::ServiceMethod => "service method",
            BodyField::Metadata => "metadata",
            BodyField::PayloadLength => "payload length",
        })
    }
}

/// Why a frame could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The first byte was not 0x08. Go checks it before reading anything else.
    #[error("wrong magic number: {0}")]
    BadMagic(u8),

    /// The total-length field is over the configured limit; raised before any body byte is buffered.
    #[error("message is too long: total length {len} exceeds the limit of {max} bytes")]
    FrameTooLong { len: u32, max: u32 },

    /// A frame handed to `Message::parse` whose length is not the one its prefix announces (the
    /// decoder never does this; a caller slicing frames by hand might).
    #[error("frame of {actual} bytes announces {announced}")]
    FrameLengthMismatch { announced: usize, actual: usize },

    /// A length field of the body runs past the end of the body (Go panics and serves a partial
    /// message here, rpcx-protocol.md 1.4; we refuse it, 9.1).
    #[error("{field} length {len} overruns the body ({remaining} bytes left)")]
    InnerLengthOverrun {
        field: BodyField,
        len: u32,
        remaining: usize,
    },

    /// The metadata block does not split into whole key/value pairs (spec 1.5).
    #[error("wrong metadata lines. some keys or values are missing")]
    BadMetadata,

    /// The metadata block holds more pairs than the configured limit (Go has none).
    #[error("too many metadata pairs: more than the limit of {max}")]
    TooManyMetadataPairs { max: usize },

    /// A compress type with no registered compressor (2..7).
    #[error("unsupported compressor {0}")]
    UnsupportedCompressor(u8),

    /// The payload was flagged gzip but did not decompress.
    #[error("gzip decompression failed: {0}")]
    Decompress(#[source] std::io::Error),

    /// The decompressed payload would exceed the configured limit (Go: MaxDecompressedLength).
    #[error("decompressed size exceeds the maximum allowed size of {max} bytes")]
    DecompressedTooLarge { max: usize },
}
