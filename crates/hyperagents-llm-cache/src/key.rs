//! Cache keys: a SHA-256 over the provider, the model, the model's
//! fingerprint and the request in a canonical JSON form.
//!
//! The canonical form is the request's serde JSON with every object's keys
//! sorted, so a key never depends on map iteration order — except the members
//! of a JSON schema's `properties`, which keep their order: constrained
//! decoders (llama.cpp's grammars, vLLM, hosted structured outputs) generate
//! properties in that order, so two orders are two different requests.
//! Every part of the hash input is length-prefixed so no two distinct
//! (provider, model, …) tuples can run together into the same bytes.

use std::fmt;

use hyperagents_llm::{ChatRequest, ModelDescriptor};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::CacheError;

/// Bumped whenever the hashed input changes shape, so old entries are simply
/// never found instead of being misread.
const KEY_DOMAIN: &[u8] = b"hyperagents-llm-cache/key/v2";

/// The key of one cache entry: 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(String);

impl CacheKey {
    /// The key of `request` sent to the model `descriptor` names.
    pub fn for_request(
        descriptor: &ModelDescriptor,
        request: &ChatRequest,
    ) -> Result<Self, CacheError> {
        Ok(Self::from_normalized(
            descriptor,
            &normalized_request(request)?,
        ))
    }

    /// The key of a request already in the form [`normalized_request`] gives.
    pub fn from_normalized(descriptor: &ModelDescriptor, normalized_request: &str) -> Self {
        let mut hasher = Sha256::new();
        framed(&mut hasher, KEY_DOMAIN);
        framed(&mut hasher, descriptor.provider.as_bytes());
        framed(&mut hasher, descriptor.model.as_bytes());
        match &descriptor.fingerprint {
            None => hasher.update([0u8]),
            Some(fingerprint) => {
                hasher.update([1u8]);
                framed(&mut hasher, fingerprint.as_bytes());
            }
        }
        framed(&mut hasher, normalized_request.as_bytes());
        Self(hex::encode(hasher.finalize()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The request as canonical JSON: the serde form of [`ChatRequest`] with all
/// object keys sorted and no insignificant whitespace. This is what the key
/// hashes and what the cache stores next to the answer.
pub fn normalized_request(request: &ChatRequest) -> Result<String, CacheError> {
    let value = serde_json::to_value(request).map_err(|source| CacheError::Serialize {
        what: "request",
        source,
    })?;
    let mut out = String::new();
    write_canonical(&value, &mut out);
    Ok(out)
}

fn write_canonical(value: &Value, out: &mut String) {
    write_canonical_at(value, false, out);
}

fn framed(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

/// `in_order`: `value` is a schema's `properties` object, whose members keep
/// their order.
fn write_canonical_at(value: &Value, in_order: bool, out: &mut String) {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => out.push_str(&value.to_string()),
        Value::String(s) => write_json_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical_at(item, false, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            if !in_order {
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            }
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(key, out);
                out.push(':');
                // The members of `properties` are schemas again (sorted);
                // `properties` itself keeps its order.
                let ordered = !in_order && key == "properties" && item.is_object();
                write_canonical_at(item, ordered, out);
            }
            out.push('}');
        }
    }
}

fn write_json_string(s: &str, out: &mut String) {
    // A `Value::String`'s Display is its JSON encoding with escapes.
    out.push_str(&Value::String(s.to_owned()).to_string());
}

#[cfg(test)]
mod tests {
    use hyperagents_llm::{Capabilities, Message};

    use super::*;

    fn descriptor(fingerprint: Option<&str>) -> ModelDescriptor {
        ModelDescriptor {
            provider: "embedded".into(),
            model: "smollm2-135m".into(),
            fingerprint: fingerprint.map(str::to_owned),
            capabilities: Capabilities::default(),
        }
    }

    fn request(seed: u64) -> ChatRequest {
        ChatRequest::new(vec![Message::system("be brief"), Message::user("2+2?")]).with_seed(seed)
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"z":[{"y":2,"x":"\n"}],"c":null}}"#)
            .expect("valid json");
        let b: Value = serde_json::from_str(r#"{"a":{"c":null,"z":[{"x":"\n","y":2}]},"b":1}"#)
            .expect("valid json");
        let (mut sa, mut sb) = (String::new(), String::new());
        write_canonical(&a, &mut sa);
        write_canonical(&b, &mut sb);
        assert_eq!(sa, sb);
        assert_eq!(sa, r#"{"a":{"c":null,"z":[{"x":"\n","y":2}]},"b":1}"#);
    }

    #[test]
    fn same_request_same_key() {
        let d = descriptor(None);
        let a = CacheKey::for_request(&d, &request(7)).expect("key");
        let b = CacheKey::for_request(&d, &request(7)).expect("key");
        assert_eq!(a, b);
        assert_eq!(a.as_str().len(), 64);
        assert!(
            a.as_str()
                .bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }

    #[test]
    fn schema_keys_are_sorted_but_property_order_changes_the_key() {
        let d = descriptor(None);
        let schema_a: Value = serde_json::from_str(
            r#"{"type":"object","properties":{"answer":{"type":"integer"},"why":{"type":"string"}},"required":["answer"]}"#,
        )
        .expect("valid json");
        // The same schema written in another key order outside `properties`.
        let schema_b: Value = serde_json::from_str(
            r#"{"required":["answer"],"properties":{"answer":{"type":"integer"},"why":{"type":"string"}},"type":"object"}"#,
        )
        .expect("valid json");
        // The properties in the other order: generated in the other order.
        let schema_c: Value = serde_json::from_str(
            r#"{"type":"object","properties":{"why":{"type":"string"},"answer":{"type":"integer"}},"required":["answer"]}"#,
        )
        .expect("valid json");
        let key = |schema: Value| {
            CacheKey::for_request(&d, &request(1).with_json_schema("out", schema)).expect("key")
        };
        let a = key(schema_a);
        assert_eq!(a, key(schema_b));
        assert_ne!(a, key(schema_c));
    }

    #[test]
    fn every_part_of_the_identity_changes_the_key() {
        let base = CacheKey::for_request(&descriptor(None), &request(1)).expect("key");
        let other_seed = CacheKey::for_request(&descriptor(None), &request(2)).expect("key");
        let fingerprinted =
            CacheKey::for_request(&descriptor(Some("abc")), &request(1)).expect("k");
        let mut other_model = descriptor(None);
        other_model.model = "qwen2.5-coder-1.5b".into();
        let other_model = CacheKey::for_request(&other_model, &request(1)).expect("key");
        let mut other_provider = descriptor(None);
        other_provider.provider = "openai".into();
        let other_provider = CacheKey::for_request(&other_provider, &request(1)).expect("key");
        let all = [
            &base,
            &other_seed,
            &fingerprinted,
            &other_model,
            &other_provider,
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn fields_cannot_run_together() {
        let mut a = descriptor(None);
        a.provider = "ab".into();
        a.model = "c".into();
        let mut b = descriptor(None);
        b.provider = "a".into();
        b.model = "bc".into();
        assert_ne!(
            CacheKey::from_normalized(&a, "{}"),
            CacheKey::from_normalized(&b, "{}")
        );
        // An empty fingerprint is not the same as none.
        assert_ne!(
            CacheKey::from_normalized(&descriptor(None), "{}"),
            CacheKey::from_normalized(&descriptor(Some("")), "{}")
        );
    }
}
