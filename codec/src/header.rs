//! The fixed 16-byte prefix of every rpcx frame (rpcx-protocol.md 1.1–1.3, 2).
//!
//! [`Header`] is a `zerocopy` struct: the decoder reads it in place from the receive buffer and the
//! encoder writes it with one copy. Every bit of bytes 2 and 3 has a typed accessor. This module
//! knows nothing of the body that follows the prefix.

use zerocopy::byteorder::{BigEndian, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Length of the prefix: Go's 12-byte `Header` plus the 4-byte total length.
pub const HEADER_LEN: usize = 16;
/// The first byte of every frame.
pub const MAGIC: u8 = 0x08;

const TYPE_MASK: u8 = 0x80;
const HEARTBEAT_MASK: u8 = 0x40;
const ONEWAY_MASK: u8 = 0x20;
const COMPRESS_MASK: u8 = 0x1C;
const COMPRESS_SHIFT: u8 = 2;
const STATUS_MASK: u8 = 0x03;

/// Whether a frame is a request (or server push) or a response: byte 2, bit 7.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Request,
    Response,
}

/// The payload compression: byte 2, bits 4..2. Only None and Gzip are registered (spec 1.6); the
/// other six values are kept so that the decoder can name them in its error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressType {
    None,
    Gzip,
    /// 2..=7: legal bits, no compressor registered.
    Unregistered(u8),
}

impl CompressType {
    /// The type for a 3-bit value; values above 7 are masked.
    pub fn from_bits(bits: u8) -> Self {
        match bits & 0x07 {
            0 => CompressType::None,
            1 => CompressType::Gzip,
            other => CompressType::Unregistered(other),
        }
    }

    /// The 3-bit wire value.
    pub fn bits(self) -> u8 {
        match self {
            CompressType::None => 0,
            CompressType::Gzip => 1,
            CompressType::Unregistered(v) => v & 0x07,
        }
    }
}

/// The message status: byte 2, bits 1..0. 2 and 3 are undefined but Go copies them through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageStatus {
    Normal,
    Error,
    Undefined(u8),
}

impl MessageStatus {
    /// The status for a 2-bit value; higher bits are masked.
    pub fn from_bits(bits: u8) -> Self {
        match bits & STATUS_MASK {
            0 => MessageStatus::Normal,
            1 => MessageStatus::Error,
            other => MessageStatus::Undefined(other),
        }
    }

    /// The 2-bit wire value.
    pub fn bits(self) -> u8 {
        match self {
            MessageStatus::Normal => 0,
            MessageStatus::Error => 1,
            MessageStatus::Undefined(v) => v & STATUS_MASK,
        }
    }
}

/// The payload codec: the high nibble of byte 3. 5..15 are free for custom codecs (spec 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SerializeType {
    /// `SerializeNone`: the payload is raw bytes.
    Raw,
    Json,
    Protobuf,
    MsgPack,
    Thrift,
    /// 5..=15: legal, codec chosen by the deployment.
    Custom(u8),
}

impl SerializeType {
    /// The type for a 4-bit value; higher bits are masked.
    pub fn from_bits(bits: u8) -> Self {
        match bits & 0x0F {
            0 => SerializeType::Raw,
            1 => SerializeType::Json,
            2 => SerializeType::Protobuf,
            3 => SerializeType::MsgPack,
            4 => SerializeType::Thrift,
            other => SerializeType::Custom(other),
        }
    }

    /// The 4-bit wire value.
    pub fn bits(self) -> u8 {
        match self {
            SerializeType::Raw => 0,
            SerializeType::Json => 1,
            SerializeType::Protobuf => 2,
            SerializeType::MsgPack => 3,
            SerializeType::Thrift => 4,
            SerializeType::Custom(v) => v & 0x0F,
        }
    }
}

/// The 16-byte frame prefix, laid out exactly as on the wire.
#[repr(C)]
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    magic: u8,
    version: u8,
    flags: u8,
    serialize: u8,
    seq: U64<BigEndian>,
    total_len: U32<BigEndian>,
}

const _: () = assert!(std::mem::size_of::<Header>() == HEADER_LEN);

impl Default for Header {
    fn default() -> Self {
        Header::new()
    }
}

impl Header {
    /// A request header: magic set, version 0, every flag clear, raw serialization, seq 0.
    pub fn new() -> Self {
        Header {
            magic: MAGIC,
            version: 0,
            flags: 0,
            serialize: 0,
            seq: U64::ZERO,
            total_len: U32::ZERO,
        }
    }

    /// Views the first 16 bytes of `buf` as a header, without copying. `None` if `buf` is shorter.
    /// The magic byte is not checked here: see [`crate::decode`].
    pub fn view(buf: &[u8]) -> Option<&Header> {
        Header::ref_from_prefix(buf).ok().map(|(header, _)| header)
    }

    /// Views the first 16 bytes of `buf` as a header to change in place (a frame being written).
    /// `None` if `buf` is shorter.
    pub fn view_mut(buf: &mut [u8]) -> Option<&mut Header> {
        Header::mut_from_prefix(buf).ok().map(|(header, _)| header)
    }

    /// The magic byte as received (0x08 in a valid frame).
    pub fn magic(&self) -> u8 {
        self.magic
    }

    /// Protocol version byte: never checked, copied into responses.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// Byte 2, all flags at once.
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Byte 3 whole: serialize type in the high nibble, a reserved nibble Go copies through.
    pub fn serialize_byte(&self) -> u8 {
        self.serialize
    }

    pub fn message_type(&self) -> MessageType {
        if self.flags & TYPE_MASK != 0 {
            MessageType::Response
        } else {
            MessageType::Request
        }
    }

    pub fn is_response(&self) -> bool {
        self.flags & TYPE_MASK != 0
    }

    pub fn is_heartbeat(&self) -> bool {
        self.flags & HEARTBEAT_MASK != 0
    }

    pub fn is_oneway(&self) -> bool {
        self.flags & ONEWAY_MASK != 0
    }

    pub fn compress_type(&self) -> CompressType {
        CompressType::from_bits((self.flags & COMPRESS_MASK) >> COMPRESS_SHIFT)
    }

    pub fn status(&self) -> MessageStatus {
        MessageStatus::from_bits(self.flags)
    }

    pub fn serialize_type(&self) -> SerializeType {
        SerializeType::from_bits(self.serialize >> 4)
    }

    pub fn seq(&self) -> u64 {
        self.seq.get()
    }

    /// Bytes after the prefix: the body length (spec 1.1).
    pub fn total_len(&self) -> u32 {
        self.total_len.get()
    }

    pub fn set_version(&mut self, version: u8) -> &mut Self {
        self.version = version;
        self
    }

    pub fn set_message_type(&mut self, message_type: MessageType) -> &mut Self {
        self.flags = match message_type {
            MessageType::Request => self.flags & !TYPE_MASK,
            MessageType::Response => self.flags | TYPE_MASK,
        };
        self
    }

    pub fn set_heartbeat(&mut self, heartbeat: bool) -> &mut Self {
        self.set_flag(HEARTBEAT_MASK, heartbeat)
    }

    pub fn set_oneway(&mut self, oneway: bool) -> &mut Self {
        self.set_flag(ONEWAY_MASK, oneway)
    }

    pub fn set_compress_type(&mut self, compress: CompressType) -> &mut Self {
        self.flags = (self.flags & !COMPRESS_MASK) | (compress.bits() << COMPRESS_SHIFT);
        self
    }

    pub fn set_status(&mut self, status: MessageStatus) -> &mut Self {
        self.flags = (self.flags & !STATUS_MASK) | status.bits();
        self
    }

    /// Sets the serialize type and keeps the reserved low nibble.
    pub fn set_serialize_type(&mut self, serialize: SerializeType) -> &mut Self {
        self.serialize = (serialize.bits() << 4) | (self.serialize & 0x0F);
        self
    }

    pub fn set_seq(&mut self, seq: u64) -> &mut Self {
        self.seq.set(seq);
        self
    }

    pub fn set_total_len(&mut self, len: u32) -> &mut Self {
        self.total_len.set(len);
        self
    }

    /// The header of the response to this request, by Go's `Clone` rule (spec 4.3): everything
    /// copied (version, heartbeat, oneway, status, serialize byte, seq), compression reset to None,
    /// the response bit set. The total length is left for the encoder.
    pub fn response_header(&self) -> Header {
        let mut response = *self;
        response.flags = (self.flags & !COMPRESS_MASK) | TYPE_MASK;
        response.total_len = U32::ZERO;
        response
    }

    /// Turns this header, the request's as copied into a reply, into the reply's header in place
    /// (the rule of [`Header::response_header`], with `compress` and `total_len` set): three
    /// stores where building a header and copying it over took about twenty instructions.
    #[inline(always)]
    pub(crate) fn make_response(&mut self, compress: CompressType, total_len: u32) {
        self.flags =
            (self.flags & !COMPRESS_MASK) | TYPE_MASK | (compress.bits() << COMPRESS_SHIFT);
        self.total_len = U32::new(total_len);
    }

    /// Whether the compress type is gzip, without decoding the type.
    #[inline(always)]
    pub(crate) fn is_gzip(&self) -> bool {
        (self.flags & COMPRESS_MASK) >> COMPRESS_SHIFT == CompressType::Gzip.bits()
    }

    fn set_flag(&mut self, mask: u8, on: bool) -> &mut Self {
        if on {
            self.flags |= mask;
        } else {
            self.flags &= !mask;
        }
        self
    }
}

impl std::fmt::Debug for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Header")
            .field("magic", &self.magic)
            .field("version", &self.version)
            .field("type", &self.message_type())
            .field("heartbeat", &self.is_heartbeat())
            .field("oneway", &self.is_oneway())
            .field("compress", &self.compress_type())
            .field("status", &self.status())
            .field("serialize", &self.serialize_type())
            .field("seq", &self.seq())
            .field("total_len", &self.total_len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_bit_in_place() {
        // Byte 2 = 0xFF: response, heartbeat, oneway, compress 7, status 3.
        let bytes = [
            0x08, 0x07, 0xFF, 0x3A, 0, 0, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0x20,
        ];
        let header = Header::view(&bytes).unwrap();
        assert_eq!(header.magic(), MAGIC);
        assert_eq!(header.version(), 7);
        assert_eq!(header.message_type(), MessageType::Response);
        assert!(header.is_heartbeat());
        assert!(header.is_oneway());
        assert_eq!(header.compress_type(), CompressType::Unregistered(7));
        assert_eq!(header.status(), MessageStatus::Undefined(3));
        assert_eq!(header.serialize_type(), SerializeType::MsgPack);
        assert_eq!(header.serialize_byte() & 0x0F, 0x0A);
        assert_eq!(header.seq(), 0x0102);
        assert_eq!(header.total_len(), 32);
    }

    #[test]
    fn view_needs_sixteen_bytes() {
        assert!(Header::view(&[0x08; 15]).is_none());
    }

    #[test]
    fn view_mut_changes_the_bytes_in_place() {
        let mut bytes = [
            0x08, 0, 0x24, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 3, 1, 2, 3,
        ];
        Header::view_mut(&mut bytes)
            .unwrap()
            .set_message_type(MessageType::Response);
        // Only the response bit of byte 2 changes; the body after the prefix is untouched.
        assert_eq!(bytes[2], 0xA4);
        assert_eq!(Header::view(&bytes).unwrap().seq(), 9);
        assert_eq!(bytes[16..], [1, 2, 3]);
        assert!(Header::view_mut(&mut [0x08; 15]).is_none());
    }

    #[test]
    fn setters_write_only_their_bits() {
        let mut header = Header::new();
        header
            .set_heartbeat(true)
            .set_oneway(true)
            .set_compress_type(CompressType::Gzip)
            .set_status(MessageStatus::Error)
            .set_serialize_type(SerializeType::Custom(15))
            .set_seq(u64::MAX);
        assert_eq!(header.flags(), 0x40 | 0x20 | 0x04 | 0x01);
        header.set_heartbeat(false).set_oneway(false);
        header.set_compress_type(CompressType::None);
        assert_eq!(header.flags(), 0x01);
        assert_eq!(header.serialize_type(), SerializeType::Custom(15));
        assert_eq!(header.seq(), u64::MAX);
        header.set_message_type(MessageType::Response);
        assert!(header.is_response());
        header.set_message_type(MessageType::Request);
        assert!(!header.is_response());
    }

    #[test]
    fn response_header_follows_go_clone_rule() {
        // rpcx-protocol.md 4.3 (observed): 08 07 65 4f … -> 08 07 e1 4f …
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&[0x08, 0x07, 0x65, 0x4f]);
        bytes[11] = 0x2a;
        let request = Header::view(&bytes).unwrap();
        let response = request.response_header();
        assert_eq!(&response.as_bytes()[..4], &[0x08, 0x07, 0xe1, 0x4f]);
        assert_eq!(response.seq(), 0x2a);
    }

    #[test]
    fn enum_values_match_the_spec() {
        for bits in 0..16u8 {
            assert_eq!(SerializeType::from_bits(bits).bits(), bits);
        }
        for bits in 0..8u8 {
            assert_eq!(CompressType::from_bits(bits).bits(), bits);
        }
        for bits in 0..4u8 {
            assert_eq!(MessageStatus::from_bits(bits).bits(), bits);
        }
        assert_eq!(SerializeType::from_bits(3), SerializeType::MsgPack);
        assert_eq!(CompressType::from_bits(1), CompressType::Gzip);
    }
}
