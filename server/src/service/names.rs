//! Name → value, tuned for the handful of names in a service table: below [`Names::SCAN_LIMIT`]
//! entries a lookup is a scan; above it, a hash map index takes over.
//!
//! The scan compares a [`NameKey`] first — the length and up to eight bytes as one integer,
//! built once per lookup with fixed-size loads — so a miss costs two integer compares and a hit
//! on a name of at most eight bytes (most rpcx names: `Arith`, `Echo`, `Mul`, `Deadline`) needs
//! no byte comparison at all; longer names compare their tail.

use rustc_hash::FxHashMap;

/// A name's length and its first eight bytes (zero-padded), compared as integers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct NameKey {
    len: usize,
    head: u64,
}

impl NameKey {
    /// Fixed-size loads only (a variable-length copy would call memcpy): with the length, the
    /// key determines every byte of a name of at most eight bytes, so equal keys mean equal names
    /// there; longer names compare their tail after the first eight bytes.
    #[inline(always)]
    pub(crate) fn of(name: &[u8]) -> Self {
        let len = name.len();
        let head = if len >= 8 {
            u64::from_le_bytes(name[..8].try_into().expect("eight bytes"))
        } else if len >= 4 {
            // Two overlapping four-byte loads cover every byte.
            let lo = u32::from_le_bytes(name[..4].try_into().expect("four bytes"));
            let hi = u32::from_le_bytes(name[len - 4..].try_into().expect("four bytes"));
            u64::from(lo) | (u64::from(hi) << 32)
        } else if len > 0 {
            // First, middle and last byte cover a name of one to three bytes.
            u64::from(name[0]) | (u64::from(name[len / 2]) << 8) | (u64::from(name[len - 1]) << 16)
        } else {
            0
        };
        NameKey { len, head }
    }
}

pub(crate) struct Names<V> {
    entries: Vec<(NameKey, Box<[u8]>, V)>,
    index: Option<FxHashMap<Box<[u8]>, usize>>,
}

impl<V> Default for Names<V> {
    fn default() -> Self {
        Names {
            entries: Vec::new(),
            index: None,
        }
    }
}

impl<V> Names<V> {
    const SCAN_LIMIT: usize = 16;

    /// Adds a name the caller has checked is new.
    pub(crate) fn insert(&mut self, name: &[u8], value: V) {
        self.entries.push((NameKey::of(name), name.into(), value));
        if self.entries.len() > Self::SCAN_LIMIT {
            let index = self
                .entries
                .iter()
                .enumerate()
                .map(|(i, (_, name, _))| (name.clone(), i))
                .collect();
            self.index = Some(index);
        }
    }

    #[inline(always)]
    pub(crate) fn get(&self, name: &[u8]) -> Option<&V> {
        self.position(name).map(|i| &self.entries[i].2)
    }

    /// Where a name is, for [`Names::at`].
    #[inline(always)]
    pub(crate) fn position(&self, name: &[u8]) -> Option<usize> {
        match &self.index {
            None => {
                let key = NameKey::of(name);
                self.entries
                    .iter()
                    .position(|(k, n, _)| *k == key && (key.len <= 8 || n[8..] == name[8..]))
            }
            Some(index) => index.get(name).copied(),
        }
    }

    /// The value at a position [`Names::position`] gave.
    #[inline(always)]
    pub(crate) fn at(&self, position: usize) -> &V {
        &self.entries[position].2
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &[u8]> {
        self.entries.iter().map(|(_, name, _)| &**name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_find_by_scan_and_by_index() {
        let mut names = Names::default();
        for i in 0..40u32 {
            names.insert(format!("name{i}").as_bytes(), i);
            for j in 0..=i {
                assert_eq!(
                    names.get(format!("name{j}").as_bytes()),
                    Some(&j),
                    "{i} {j}"
                );
            }
            assert_eq!(names.get(b"name"), None);
            assert_eq!(names.get(b"missing"), None);
        }
    }

    #[test]
    fn long_names_compare_their_tails_and_short_ones_their_padding() {
        let mut names = Names::default();
        names.insert(b"BenchmarkMessage", 1);
        names.insert(b"BenchmarkMessages", 2);
        names.insert(b"Echo", 3);
        names.insert(b"", 4);
        assert_eq!(names.get(b"BenchmarkMessage"), Some(&1));
        assert_eq!(names.get(b"BenchmarkMessages"), Some(&2));
        assert_eq!(names.get(b"BenchmarkMassage"), None);
        assert_eq!(names.get(b"BenchmarkMessagf"), None);
        assert_eq!(names.get(b"Echo"), Some(&3));
        assert_eq!(names.get(b"Echo\0"), None, "zero padding is not a match");
        assert_eq!(names.get(b""), Some(&4));
        // Up to eight bytes, the key alone tells names apart: every length, every position.
        let words: Vec<Vec<u8>> = (1..=8)
            .flat_map(|len| {
                (0..len).map(move |at| {
                    let mut w = vec![b'a'; len];
                    w[at] = b'b';
                    w
                })
            })
            .chain((0..=8).map(|len| vec![b'a'; len]))
            .collect();
        let keys: std::collections::HashSet<(usize, u64)> = words
            .iter()
            .map(|w| {
                let key = NameKey::of(w);
                (key.len, key.head)
            })
            .collect();
        assert_eq!(keys.len(), words.len());
    }
}
