//! Payload compression: gzip both ways, and the rule for when a reply is compressed
//! (rpcx-protocol.md 1.6, 4.8).
//!
//! Only gzip is registered, as in Go. Decompression is bounded by a limit so that a gzip bomb
//! cannot make us allocate more than the caller allows.

use std::io::{Read, Write};

use bytes::{BufMut, BytesMut};
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

use crate::{CompressType, DecodeError, Header};

/// Replies up to this many bytes are never compressed (spec 4.8: strictly greater compresses).
pub const COMPRESS_THRESHOLD: usize = 1024;

/// Whether the reply to `request` with a `payload_len`-byte payload is to be compressed, and with
/// what: the request's own compress type, only above 1024 bytes (Go `Context.Write` and the
/// server's reply path, spec 4.8). Heartbeats follow their own rule (spec 4.4).
#[inline]
pub fn reply_compression(request: &Header, payload_len: usize) -> CompressType {
    if request.is_gzip() && payload_len > COMPRESS_THRESHOLD {
        CompressType::Gzip
    } else {
        CompressType::None
    }
}

/// Appends the gzip member of `payload` to `out`, at the default level as Go writes it.
pub fn gzip_into(payload: &[u8], out: &mut BytesMut) {
    let mut encoder = GzEncoder::new(out.writer(), Compression::default());
    // Writing into a BytesMut cannot fail.
    encoder
        .write_all(payload)
        .and_then(|_| encoder.try_finish())
        .expect("writing gzip into memory");
}

/// The gzip compression of `payload`.
pub fn gzip(payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(payload.len() / 2 + 32);
    gzip_into(payload, &mut out);
    out.to_vec()
}

/// Decompresses a gzip payload (several members are accepted, as Go's reader does), refusing to
/// produce more than `max` bytes.
pub fn gunzip(compressed: &[u8], max: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::with_capacity(compressed.len().saturating_mul(4).min(max).min(1 << 20));
    // One byte past the limit tells "exactly max" from "too large" without decompressing the rest.
    let limit = (max as u64).saturating_add(1);
    MultiGzDecoder::new(compressed)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(DecodeError::Decompress)?;
    if out.len() > max {
        return Err(DecodeError::DecompressedTooLarge { max });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SerializeType;

    #[test]
    fn round_trips() {
        let payload: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let packed = gzip(&payload);
        assert_eq!(&packed[..3], &[0x1f, 0x8b, 0x08]);
        assert_eq!(gunzip(&packed, usize::MAX).unwrap(), payload);
        assert_eq!(gunzip(&gzip(b""), 0).unwrap(), b"");
    }

    #[test]
    fn limit_is_inclusive() {
        let packed = gzip(&[7u8; 4096]);
        assert_eq!(gunzip(&packed, 4096).unwrap().len(), 4096);
        assert!(matches!(
            gunzip(&packed, 4095),
            Err(DecodeError::DecompressedTooLarge { max: 4095 })
        ));
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        let packed = gzip(&vec![0u8; 64 << 20]);
        assert!(packed.len() < 128 << 10);
        assert!(matches!(
            gunzip(&packed, 1 << 20),
            Err(DecodeError::DecompressedTooLarge { .. })
        ));
    }

    #[test]
    fn garbage_is_a_decompress_error() {
        assert!(matches!(
            gunzip(b"not gzip at all", 1024),
            Err(DecodeError::Decompress(_))
        ));
        let mut truncated = gzip(&[1u8; 2000]);
        truncated.truncate(truncated.len() - 5);
        assert!(matches!(
            gunzip(&truncated, 1 << 20),
            Err(DecodeError::Decompress(_))
        ));
    }

    #[test]
    fn reply_compression_follows_the_1024_byte_rule() {
        let mut request = Header::new();
        request.set_serialize_type(SerializeType::Raw);
        assert_eq!(reply_compression(&request, 5000), CompressType::None);
        request.set_compress_type(CompressType::Gzip);
        assert_eq!(reply_compression(&request, 1024), CompressType::None);
        assert_eq!(reply_compression(&request, 1025), CompressType::Gzip);
    }
}
