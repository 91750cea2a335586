//! Finding frames in a byte stream: the incremental decoder and its limits.
//!
//! [`Decoder::frame_len`] is the cheap check (is a whole frame buffered, and how long is it?) and
//! [`Decoder::decode`] splits that frame off the buffer and parses it. Following Go's reader
//! (rpcx-protocol.md 1.4), the magic byte is checked as soon as it arrives and the total length as
//! soon as the prefix is in, so an oversized frame is refused before any body byte is buffered.

use bytes::BytesMut;

use crate::{DecodeError, Header, Message, HEADER_LEN, MAGIC};

/// Size limits, on by default (Go has none: rpcx-protocol.md 1.7, 9.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted total-length field (the body, without the 16-byte prefix).
    pub max_frame_len: u32,
    /// Largest payload a gzip frame may decompress to.
    pub max_decompressed_len: usize,
    /// Most metadata pairs one frame may carry. Each pair is only 8 bytes of lengths, so a frame
    /// within `max_frame_len` could otherwise hold millions of them, and every lookup walks them.
    pub max_metadata_pairs: usize,
}

impl Limits {
    /// Default `max_frame_len`: 32 MiB, room for the 8 MiB payloads Go clients are tested with.
    pub const DEFAULT_MAX_FRAME_LEN: u32 = 32 << 20;
    /// Default `max_decompressed_len`: 32 MiB.
    pub const DEFAULT_MAX_DECOMPRESSED_LEN: usize = 32 << 20;
    /// Default `max_metadata_pairs`: 1024. Go clients send a handful (the Go suite's largest case
    /// sends 64); a thousand leaves room for any real use.
    pub const DEFAULT_MAX_METADATA_PAIRS: usize = 1024;

    /// No limit at all, as Go's defaults. For tests and trusted peers only.
    pub fn unlimited() -> Self {
        Limits {
            max_frame_len: u32::MAX,
            max_decompressed_len: usize::MAX,
            max_metadata_pairs: usize::MAX,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_len: Self::DEFAULT_MAX_FRAME_LEN,
            max_decompressed_len: Self::DEFAULT_MAX_DECOMPRESSED_LEN,
            max_metadata_pairs: Self::DEFAULT_MAX_METADATA_PAIRS,
        }
    }
}

/// Splits rpcx frames off a receive buffer. Holds only its limits: any number of connections may
/// share one, and it never allocates except to decompress.
#[derive(Debug, Clone, Copy, Default)]
pub struct Decoder {
    limits: Limits,
}

impl Decoder {
    pub fn new(limits: Limits) -> Self {
        Decoder { limits }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The length of the frame at the front of `buf`, prefix included, once the prefix is buffered;
    /// `Ok(None)` before that. Fails on a bad magic byte as soon as one byte is in, and on an
    /// oversized total length as soon as the prefix is in.
    #[inline]
    pub fn frame_len(&self, buf: &[u8]) -> Result<Option<usize>, DecodeError> {
        match buf.first() {
            None => return Ok(None),
            Some(&MAGIC) => {}
            Some(&other) => return Err(DecodeError::BadMagic(other)),
        }
        let Some(header) = Header::view(buf) else {
            return Ok(None);
        };
        let len = header.total_len();
        if len > self.limits.max_frame_len {
            return Err(DecodeError::FrameTooLong {
                len,
                max: self.limits.max_frame_len,
            });
        }
        Ok(Some(HEADER_LEN + len as usize))
    }

    /// Takes the next whole frame off the front of `buf` and parses it; `Ok(None)` until a whole
    /// frame is buffered. The message's fields are slices of the frame, which shares `buf`'s
    /// allocation. After an error the stream is out of sync: close the connection.
    #[inline(always)]
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Message>, DecodeError> {
        let Some(frame_len) = self.frame_len(buf)? else {
            return Ok(None);
        };
        if buf.len() < frame_len {
            return Ok(None);
        }
        let frame = buf.split_to(frame_len).freeze();
        Message::parse(frame, &self.limits).map(Some)
    }

    /// As [`Decoder::decode`], parsing into `message` ([`Message::parse_into`]): `Ok(true)` when
    /// a frame was taken and `message` now holds it.
    #[inline(always)]
    pub fn decode_into(
        &self,
        buf: &mut BytesMut,
        message: &mut Message,
    ) -> Result<bool, DecodeError> {
        let Some(frame_len) = self.frame_len(buf)? else {
            return Ok(false);
        };
        if buf.len() < frame_len {
            return Ok(false);
        }
        let frame = buf.split_to(frame_len).freeze();
        message.parse_checked_into::<true>(frame, &self.limits)?;
        Ok(true)
    }
}
