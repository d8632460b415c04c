//! Deterministic seeds. A seed is derived from a path of labelled parts —
//! (run seed, node, task, episode seed, call index) — so that a rerun makes
//! exactly the same calls (and hits the response cache), while two distinct
//! sampled calls get distinct seeds and therefore distinct cache entries.

use sha2::{Digest, Sha256};

/// A path of labelled parts from which a seed is derived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedPath {
    hasher_input: Vec<u8>,
}

impl SeedPath {
    /// Starts a path at a run's seed.
    pub fn root(run_seed: u64) -> Self {
        let mut path = Self {
            hasher_input: Vec::new(),
        };
        path.push("run", &run_seed.to_le_bytes());
        path
    }

    /// Extends the path by one labelled part; labels keep `("a","bc")` and
    /// `("ab","c")` apart.
    pub fn child(&self, label: &str, value: impl AsRef<[u8]>) -> Self {
        let mut next = self.clone();
        next.push(label, value.as_ref());
        next
    }

    /// Extends the path by a numbered part (an episode seed, a call index).
    pub fn index(&self, label: &str, index: u64) -> Self {
        self.child(label, index.to_le_bytes())
    }

    fn push(&mut self, label: &str, value: &[u8]) {
        for part in [label.as_bytes(), value] {
            self.hasher_input
                .extend_from_slice(&(part.len() as u64).to_le_bytes());
            self.hasher_input.extend_from_slice(part);
        }
    }

    /// The seed: the first 8 bytes of the path's SHA-256, kept below 2^53 so
    /// it survives JSON numbers and 32-bit-seeded engines can fold it.
    pub fn seed(&self) -> u64 {
        let digest = Sha256::digest(&self.hasher_input);
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&digest[..8]);
        u64::from_le_bytes(bytes) & ((1 << 53) - 1)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn same_path_same_seed() {
        let a = SeedPath::root(7).child("node", "abc").index("call", 3);
        let b = SeedPath::root(7).child("node", "abc").index("call", 3);
        assert_eq!(a.seed(), b.seed());
    }

    #[test]
    fn distinct_calls_do_not_collide() {
        let mut seen = HashSet::new();
        for run in 0..4u64 {
            for node in ["a", "b", "ab"] {
                for call in 0..50u64 {
                    let seed = SeedPath::root(run)
                        .child("node", node)
                        .index("call", call)
                        .seed();
                    assert!(seen.insert(seed), "collision at {run}/{node}/{call}");
                }
            }
        }
    }

    #[test]
    fn labels_separate_parts() {
        let a = SeedPath::root(1).child("a", "bc").seed();
        let b = SeedPath::root(1).child("ab", "c").seed();
        assert_ne!(a, b);
    }
}
