//! The metadata block: `u32 keyLen, key, u32 valLen, value` pairs with no count (rpcx-protocol.md 1.5).
//!
//! [`Metadata`] is a read-only view over a block that [`Metadata::parse`] has already validated, so
//! lookups and iteration never fail and never copy. [`MetadataBuilder`] collects pairs for an
//! outgoing frame; the encoder writes them. Reserved keys used by the protocol are constants here.

use bytes::{BufMut, Bytes};

use crate::DecodeError;

/// Error text of a failed call (spec 3, 4.7). Present whenever the status is Error.
pub const ERROR_KEY: &str = "__rpcx_error__";
/// Auth token sent by clients (spec 3, 4.11).
pub const AUTH_KEY: &str = "__AUTH";
/// Milliseconds left before the client's deadline (spec 3, 4.9).
pub const SERVER_TIMEOUT_KEY: &str = "__ServerTimeout";

/// A validated metadata block, borrowed from a frame.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Metadata<'a> {
    block: &'a [u8],
}

impl<'a> Metadata<'a> {
    /// Checks that `block` is a sequence of whole pairs and returns a view of it. Go rejects a block
    /// where a key leaves no room for the value length, or a value runs past the end, or stray bytes
    /// trail: all are [`DecodeError::BadMetadata`]. No limit on the number of pairs: see
    /// [`Metadata::parse_limited`].
    pub fn parse(block: &'a [u8]) -> Result<Self, DecodeError> {
        Self::parse_limited(block, usize::MAX)
    }

    /// As [`Metadata::parse`], and more than `max_pairs` pairs is
    /// [`DecodeError::TooManyMetadataPairs`]: counted in the same walk, so it costs nothing more.
    pub fn parse_limited(block: &'a [u8], max_pairs: usize) -> Result<Self, DecodeError> {
        let mut rest = block;
        let mut pairs = 0usize;
        while !rest.is_empty() {
            if pairs == max_pairs {
                return Err(DecodeError::TooManyMetadataPairs { max: max_pairs });
            }
            let (_, after_key) = split_field(rest).ok_or(DecodeError::BadMetadata)?;
            let (_, after_value) = split_field(after_key).ok_or(DecodeError::BadMetadata)?;
            rest = after_value;
            pairs += 1;
        }
        Ok(Metadata { block })
    }

    /// A view of a block that `parse` has already accepted.
    #[inline]
    pub(crate) fn from_validated(block: &'a [u8]) -> Self {
        Metadata { block }
    }

    /// An empty view.
    pub fn empty() -> Self {
        Metadata { block: &[] }
    }

    /// The block as on the wire, without its length prefix.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.block
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.block.is_empty()
    }

    /// Number of pairs, duplicates included.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// The value of `key`; when the key repeats, the last one wins, as in Go's map decoding.
    pub fn get(&self, key: &str) -> Option<&'a [u8]> {
        self.iter()
            .filter(|(k, _)| *k == key.as_bytes())
            .last()
            .map(|(_, v)| v)
    }

    /// The value of `key` if it is UTF-8.
    pub fn get_str(&self, key: &str) -> Option<&'a str> {
        self.get(key).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Pairs in wire order, duplicates included.
    pub fn iter(&self) -> MetadataIter<'a> {
        MetadataIter { rest: self.block }
    }
}

impl<'a> IntoIterator for Metadata<'a> {
    type Item = (&'a [u8], &'a [u8]);
    type IntoIter = MetadataIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl std::fmt::Debug for Metadata<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(
                self.iter()
                    .map(|(k, v)| (String::from_utf8_lossy(k), String::from_utf8_lossy(v))),
            )
            .finish()
    }
}

/// Iterator over the pairs of a validated block.
#[derive(Clone)]
pub struct MetadataIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for MetadataIter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        // The block was validated by `Metadata::parse`, so a short field only means the end.
        let (key, after_key) = split_field(self.rest)?;
        let (value, after_value) = split_field(after_key)?;
        self.rest = after_value;
        Some((key, value))
    }
}

/// Splits one `u32 len, bytes` field off the front of `buf`.
fn split_field(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let len_bytes: [u8; 4] = buf.get(..4)?.try_into().ok()?;
    let len = u32::from_be_bytes(len_bytes) as usize;
    let rest = &buf[4..];
    if rest.len() < len {
        return None;
    }
    Some(rest.split_at(len))
}

/// Encoded length of one pair.
pub(crate) fn pair_len(key: &[u8], value: &[u8]) -> usize {
    8 + key.len() + value.len()
}

/// Appends one pair in wire form.
pub(crate) fn put_pair(buf: &mut impl BufMut, key: &[u8], value: &[u8]) {
    buf.put_u32(key.len() as u32);
    buf.put_slice(key);
    buf.put_u32(value.len() as u32);
    buf.put_slice(value);
}

/// Pairs for an outgoing frame, in insertion order. Keys are not deduplicated: the decoder's
/// last-wins rule applies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataBuilder {
    pairs: Vec<(Bytes, Bytes)>,
}

impl MetadataBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a pair.
    pub fn insert(&mut self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> &mut Self {
        self.pairs.push((key.into(), value.into()));
        self
    }

    /// Adds a pair, builder style.
    pub fn with(mut self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        self.insert(key, value);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Removes every pair and keeps the allocation.
    pub fn clear(&mut self) {
        self.pairs.clear();
    }

    /// The pairs in insertion order.
    pub fn pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))
    }

    /// Length of the encoded block.
    pub fn encoded_len(&self) -> usize {
        self.pairs().map(|(k, v)| pair_len(k, v)).sum()
    }

    /// Appends the block (without its length prefix) to `buf`.
    pub fn encode(&self, buf: &mut impl BufMut) {
        for (key, value) in self.pairs() {
            put_pair(buf, key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut buf = Vec::new();
        for (k, v) in pairs {
            put_pair(&mut buf, k.as_bytes(), v.as_bytes());
        }
        buf
    }

    #[test]
    fn last_duplicate_wins() {
        let bytes = block(&[("k", "1"), ("x", "y"), ("k", "2")]);
        let meta = Metadata::parse(&bytes).unwrap();
        assert_eq!(meta.get("k"), Some(&b"2"[..]));
        assert_eq!(meta.get_str("x"), Some("y"));
        assert_eq!(meta.get("missing"), None);
        assert_eq!(meta.len(), 3);
    }

    #[test]
    fn empty_keys_and_values_are_legal() {
        let bytes = block(&[("", ""), ("a", "")]);
        let meta = Metadata::parse(&bytes).unwrap();
        assert_eq!(meta.get(""), Some(&b""[..]));
        assert_eq!(meta.get("a"), Some(&b""[..]));
    }

    #[test]
    fn truncated_blocks_are_bad_metadata() {
        let bytes = block(&[("key", "value")]);
        for cut in 1..bytes.len() {
            assert!(
                matches!(
                    Metadata::parse(&bytes[..cut]),
                    Err(DecodeError::BadMetadata)
                ),
                "cut at {cut}"
            );
        }
        // Two stray trailing bytes (spec 1.5, observed in Go).
        let mut stray = bytes.clone();
        stray.extend_from_slice(&[0, 0]);
        assert!(matches!(
            Metadata::parse(&stray),
            Err(DecodeError::BadMetadata)
        ));
    }

    #[test]
    fn more_pairs_than_the_limit_are_refused() {
        let pairs: Vec<(String, String)> = (0..5).map(|i| (format!("k{i}"), "v".into())).collect();
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        let bytes = block(&pairs);
        assert_eq!(Metadata::parse_limited(&bytes, 5).unwrap().len(), 5);
        assert!(matches!(
            Metadata::parse_limited(&bytes, 4),
            Err(DecodeError::TooManyMetadataPairs { max: 4 })
        ));
        assert!(Metadata::parse_limited(&[], 0).unwrap().is_empty());
        // A malformed block within the limit is still malformed.
        assert!(matches!(
            Metadata::parse_limited(&bytes[..bytes.len() - 1], 5),
            Err(DecodeError::BadMetadata)
        ));
    }

    #[test]
    fn builder_encodes_what_the_view_reads() {
        let builder = MetadataBuilder::new().with("a", "1").with("bb", "22");
        let mut buf = Vec::new();
        builder.encode(&mut buf);
        assert_eq!(buf.len(), builder.encoded_len());
        let meta = Metadata::parse(&buf).unwrap();
        let pairs: Vec<_> = meta.iter().collect();
        assert_eq!(
            pairs,
            vec![(&b"a"[..], &b"1"[..]), (&b"bb"[..], &b"22"[..])]
        );
    }
}
