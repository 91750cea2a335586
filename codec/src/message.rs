//! A decoded frame: the header plus zero-copy views of path, method, metadata and payload.
//!
//! A [`Message`] owns one `Bytes` handle on the whole frame (a slice of the receive buffer) and
//! remembers where each body field lies in it; nothing is copied unless the payload was compressed.
//! Parsing a buffered frame lives here; finding frames in a byte stream lives in [`crate::decode`].

use bytes::Bytes;

use crate::compress::gunzip;
use crate::{
    BodyField, CompressType, DecodeError, Header, Limits, Metadata, SerializeType, HEADER_LEN,
};

/// Where a field lies inside the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
}

impl Span {
    fn range(self) -> std::ops::Range<usize> {
        self.start..self.end
    }
}

/// One decoded rpcx frame.
#[derive(Clone)]
pub struct Message {
    header: Header,
    frame: Bytes,
    path: Span,
    method: Span,
    metadata: Span,
    wire_payload: Span,
    /// The payload after decompression; a slice of `frame` when the frame was not compressed.
    payload: Bytes,
}

impl Message {
    /// Parses one whole frame (prefix included). `frame` must hold exactly the prefix plus the
    /// total length it announces; [`crate::Decoder`] guarantees that, and so does this check.
    pub fn parse(frame: Bytes, limits: &Limits) -> Result<Message, DecodeError> {
        let header = *Header::view(&frame).ok_or(DecodeError::InnerLengthOverrun {
            field: BodyField::ServicePath,
            len: HEADER_LEN as u32,
            remaining: frame.len(),
        })?;
        if header.magic() != crate::MAGIC {
            return Err(DecodeError::BadMagic(header.magic()));
        }
        debug_assert_eq!(frame.len(), HEADER_LEN + header.total_len() as usize);

        let mut cursor = HEADER_LEN;
        let path = take_field(&frame, &mut cursor, BodyField::ServicePath)?;
        let method = take_field(&frame, &mut cursor, BodyField::ServiceMethod)?;
        let metadata = take_field(&frame, &mut cursor, BodyField::Metadata)?;
        Metadata::parse(&frame[metadata.range()])?;
        // rpcx-protocol.md 1.4 / 9.2: the payload length field must be there, but its value is
        // ignored as Go ignores it: the payload is the rest of the body.
        if frame.len() - cursor < 4 {
            return Err(DecodeError::InnerLengthOverrun {
                field: BodyField::PayloadLength,
                len: 4,
                remaining: frame.len() - cursor,
            });
        }
        let wire_payload = Span {
            start: cursor + 4,
            end: frame.len(),
        };

        let payload = match header.compress_type() {
            CompressType::None => frame.slice(wire_payload.range()),
            CompressType::Gzip => Bytes::from(gunzip(
                &frame[wire_payload.range()],
                limits.max_decompressed_len,
            )?),
            CompressType::Unregistered(bits) => {
                return Err(DecodeError::UnsupportedCompressor(bits))
            }
        };

        Ok(Message {
            header,
            frame,
            path,
            method,
            metadata,
            wire_payload,
            payload,
        })
    }

    /// The 16-byte prefix as received.
    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn seq(&self) -> u64 {
        self.header.seq()
    }

    pub fn serialize_type(&self) -> SerializeType {
        self.header.serialize_type()
    }

    pub fn is_heartbeat(&self) -> bool {
        self.header.is_heartbeat()
    }

    pub fn is_oneway(&self) -> bool {
        self.header.is_oneway()
    }

    /// The service path bytes (UTF-8 by convention only; never validated, as in Go).
    pub fn service_path(&self) -> &[u8] {
        &self.frame[self.path.range()]
    }

    /// The service method bytes.
    pub fn service_method(&self) -> &[u8] {
        &self.frame[self.method.range()]
    }

    /// The metadata, validated at parse time.
    pub fn metadata(&self) -> Metadata<'_> {
        // Validated in `parse`; checking again would cost a second walk of the block.
        Metadata::from_validated(&self.frame[self.metadata.range()])
    }

    /// The payload, decompressed.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The payload bytes exactly as on the wire (still compressed if the frame was).
    pub fn wire_payload(&self) -> &[u8] {
        &self.frame[self.wire_payload.range()]
    }

    /// The whole frame as received, prefix included.
    pub fn frame(&self) -> &Bytes {
        &self.frame
    }

    /// Takes the payload out, dropping the rest of the message.
    pub fn into_payload(self) -> Bytes {
        self.payload
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("header", &self.header)
            .field(
                "service_path",
                &String::from_utf8_lossy(self.service_path()),
            )
            .field(
                "service_method",
                &String::from_utf8_lossy(self.service_method()),
            )
            .field("metadata", &self.metadata())
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

/// Reads one `u32 len, bytes` field at `*cursor`, advancing past it.
fn take_field(frame: &[u8], cursor: &mut usize, field: BodyField) -> Result<Span, DecodeError> {
    let remaining = frame.len() - *cursor;
    let len_bytes: [u8; 4] = frame
        .get(*cursor..*cursor + 4)
        .and_then(|b| b.try_into().ok())
        .ok_or(DecodeError::InnerLengthOverrun {
            field,
            len: 4,
            remaining,
        })?;
    let len = u32::from_be_bytes(len_bytes);
    let start = *cursor + 4;
    if (len as usize) > frame.len() - start {
        return Err(DecodeError::InnerLengthOverrun {
            field,
            len,
            remaining: frame.len() - start,
        });
    }
    let end = start + len as usize;
    *cursor = end;
    Ok(Span { start, end })
}
