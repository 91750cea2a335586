//! Name → value, tuned for the handful of names in a service table: below [`Names::SCAN_LIMIT`]
//! entries a lookup is a scan comparing lengths then bytes (no hashing, the common case); above
//! it, a hash map index takes over.

use rustc_hash::FxHashMap;

pub(crate) struct Names<V> {
    entries: Vec<(Box<[u8]>, V)>,
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
        self.entries.push((name.into(), value));
        if self.entries.len() > Self::SCAN_LIMIT {
            let index = self
                .entries
                .iter()
                .enumerate()
                .map(|(i, (name, _))| (name.clone(), i))
                .collect();
            self.index = Some(index);
        }
    }

    #[inline]
    pub(crate) fn get(&self, name: &[u8]) -> Option<&V> {
        match &self.index {
            None => self
                .entries
                .iter()
                .find(|(n, _)| n.len() == name.len() && **n == *name)
                .map(|(_, v)| v),
            Some(index) => index.get(name).map(|&i| &self.entries[i].1),
        }
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &[u8]> {
        self.entries.iter().map(|(name, _)| &**name)
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
}
