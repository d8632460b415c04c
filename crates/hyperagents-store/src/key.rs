//! Evaluation keys: everything that decides an episode's result, hashed.
//!
//! Two evaluations with equal keys are the same computation (the same
//! program files, task, seed, models, sampling and host functions), so a
//! stored result can stand in for a rerun. The key's hash is a SHA-256 over
//! a domain tag and the key's canonical JSON (object keys sorted, no
//! whitespace), so it never depends on map order or on how `serde_json` was
//! built.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Bumped whenever the hashed form changes shape, so old rows are never
/// found under a new meaning.
const KEY_DOMAIN: &str = "hyperagents-store/eval-key/v1";

/// What identifies one evaluation (one episode's result).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EvalKey {
    /// Hash of the program files an episode loads.
    pub program_hash: String,
    /// The suite's name (`jsonl:qa.jsonl`, `miniwob`).
    pub suite: String,
    /// The suite's version (a content hash, a package version).
    pub suite_version: String,
    pub task: String,
    pub seed: u64,
    /// The fingerprint of each model the episode may call, by role
    /// (`provider/model@weights`).
    pub models: BTreeMap<String, String>,
    /// Hash of the sampling settings the episode's calls use.
    pub sampling_hash: String,
    /// Version of the host-function interface agents program against.
    pub host_api_version: u32,
}

/// The hash of an [`EvalKey`]: 64 lowercase hex digits; the primary key of
/// the `evaluations` table.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EvalKeyHash(String);

impl EvalKey {
    /// The key as canonical JSON (the hash input, after the domain tag).
    pub fn canonical_json(&self) -> String {
        canonical_json(&self.to_value())
    }

    /// The key's hash.
    pub fn hash(&self) -> EvalKeyHash {
        let mut hasher = Sha256::new();
        hasher.update(KEY_DOMAIN.as_bytes());
        hasher.update([0u8]);
        hasher.update(self.canonical_json().as_bytes());
        EvalKeyHash(hex::encode(hasher.finalize()))
    }

    /// The key as JSON (for exports; field names as in the struct).
    pub fn to_value(&self) -> Value {
        serde_json::json!({
            "program_hash": self.program_hash,
            "suite": self.suite,
            "suite_version": self.suite_version,
            "task": self.task,
            "seed": self.seed,
            "models": self.models,
            "sampling_hash": self.sampling_hash,
            "host_api_version": self.host_api_version,
        })
    }
}

impl EvalKeyHash {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Wraps a stored hash; `None` unless it is 64 lowercase hex digits.
    pub fn parse(text: &str) -> Option<Self> {
        let valid = text.len() == 64
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        valid.then(|| Self(text.to_string()))
    }
}

impl fmt::Display for EvalKeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `value` as canonical JSON: every object's keys sorted, no insignificant
/// whitespace. Use it (or [`canonical_sha256`]) to hash sampling settings
/// and configs the same way keys are hashed.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

/// SHA-256 (lowercase hex) of [`canonical_json`].
pub fn canonical_sha256(value: &Value) -> String {
    hex::encode(Sha256::digest(canonical_json(value).as_bytes()))
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (index, (name, item)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                // A string always serializes; its JSON form is its escaping.
                out.push_str(&Value::String(name.clone()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> EvalKey {
        EvalKey {
            program_hash: "p1".into(),
            suite: "jsonl:qa".into(),
            suite_version: "v1".into(),
            task: "t1".into(),
            seed: 7,
            models: BTreeMap::from([("task".into(), "embedded/smollm2@abc".into())]),
            sampling_hash: "s1".into(),
            host_api_version: 1,
        }
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let value = serde_json::json!({"b": 1, "a": {"d": [1, {"z": 0, "y": "é\n"}], "c": null}});
        assert_eq!(
            canonical_json(&value),
            r#"{"a":{"c":null,"d":[1,{"y":"é\n","z":0}]},"b":1}"#
        );
    }

    #[test]
    fn the_hash_is_stable_and_well_formed() {
        let hash = key().hash();
        assert_eq!(hash, key().hash());
        assert_eq!(EvalKeyHash::parse(hash.as_str()), Some(hash.clone()));
        assert_eq!(EvalKeyHash::parse("ABC"), None);
        // Pinned: a change here silently orphans every stored evaluation,
        // so it must come with a new KEY_DOMAIN.
        assert_eq!(
            key().canonical_json(),
            r#"{"host_api_version":1,"models":{"task":"embedded/smollm2@abc"},"program_hash":"p1","sampling_hash":"s1","seed":7,"suite":"jsonl:qa","suite_version":"v1","task":"t1"}"#
        );
    }

    #[test]
    fn every_field_changes_the_hash() {
        let base = key().hash();
        let variants: Vec<EvalKey> = vec![
            EvalKey {
                program_hash: "p2".into(),
                ..key()
            },
            EvalKey {
                suite: "jsonl:other".into(),
                ..key()
            },
            EvalKey {
                suite_version: "v2".into(),
                ..key()
            },
            EvalKey {
                task: "t2".into(),
                ..key()
            },
            EvalKey { seed: 8, ..key() },
            EvalKey {
                models: BTreeMap::from([("task".into(), "embedded/smollm2@abd".into())]),
                ..key()
            },
            EvalKey {
                sampling_hash: "s2".into(),
                ..key()
            },
            EvalKey {
                host_api_version: 2,
                ..key()
            },
        ];
        for variant in variants {
            assert_ne!(variant.hash(), base, "{variant:?}");
        }
    }
}
