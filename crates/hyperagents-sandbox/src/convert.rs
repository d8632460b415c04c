//! Conversion between monty's values and plain JSON ([`ScriptValue`]).
//!
//! Script → JSON: `None`→null, bool, int (big ints that fit `i64`/`u64` → number, larger → their
//! decimal string), float (NaN/±inf → `"nan"`/`"inf"`/`"-inf"`), str, list and tuple → array,
//! dict → object (non-string keys → their `str()` form; a later duplicate key wins); anything else
//! (sets, bytes, dataclasses, dates, functions, …) → its `repr` string.
//!
//! JSON → script: null→`None`, bool, integers → int (beyond `i64`, up to `u64`, too: a 64-bit
//! seed must stay exact), floats, strings,
//! arrays → list, objects → dict with string keys.
//!
//! Both directions refuse values nested deeper than [`MAX_DEPTH`] (JSON parsers stop at 128).

use monty_types::MontyObject;
use num_bigint::BigInt;
use serde_json::{Map, Number, Value};

use crate::ScriptValue;

/// Deepest nesting of lists/dicts that crosses the boundary.
pub const MAX_DEPTH: usize = 100;

/// A value that cannot cross the boundary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("value nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// Converts a script value to JSON.
pub fn to_json(obj: &MontyObject) -> Result<ScriptValue, ConvertError> {
    to_json_at(obj, 0)
}

fn to_json_at(obj: &MontyObject, depth: usize) -> Result<Value, ConvertError> {
    if depth > MAX_DEPTH {
        return Err(ConvertError::TooDeep);
    }
    Ok(match obj {
        MontyObject::None => Value::Null,
        MontyObject::Bool(b) => Value::Bool(*b),
        MontyObject::Int(i) => Value::Number((*i).into()),
        MontyObject::BigInt(_) => {
            let repr = obj.py_repr();
            if let Ok(u) = repr.parse::<u64>() {
                Value::Number(u.into())
            } else if let Ok(i) = repr.parse::<i64>() {
                Value::Number(i.into())
            } else {
                Value::String(repr)
            }
        }
        MontyObject::Float(f) => match Number::from_f64(*f) {
            Some(n) => Value::Number(n),
            None => Value::String(obj.py_repr()),
        },
        MontyObject::String(s) => Value::String(s.clone()),
        MontyObject::List(items) | MontyObject::Tuple(items) => Value::Array(
            items
                .iter()
                .map(|item| to_json_at(item, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        MontyObject::Dict(pairs) => {
            let mut map = Map::new();
            for (key, value) in pairs.iter() {
                let key = match key {
                    MontyObject::String(s) => s.clone(),
                    other => other.to_string(),
                };
                map.insert(key, to_json_at(value, depth + 1)?);
            }
            Value::Object(map)
        }
        other => Value::String(other.py_repr()),
    })
}

/// Converts JSON to a script value.
pub fn from_json(value: &ScriptValue) -> Result<MontyObject, ConvertError> {
    from_json_at(value, 0)
}

fn from_json_at(value: &Value, depth: usize) -> Result<MontyObject, ConvertError> {
    if depth > MAX_DEPTH {
        return Err(ConvertError::TooDeep);
    }
    Ok(match value {
        Value::Null => MontyObject::None,
        Value::Bool(b) => MontyObject::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => MontyObject::Int(i),
            (None, Some(u)) => MontyObject::BigInt(BigInt::from(u)),
            (None, None) => MontyObject::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => MontyObject::String(s.clone()),
        Value::Array(items) => MontyObject::List(
            items
                .iter()
                .map(|item| from_json_at(item, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => {
            let mut pairs = Vec::with_capacity(map.len());
            for (key, value) in map {
                pairs.push((
                    MontyObject::String(key.clone()),
                    from_json_at(value, depth + 1)?,
                ));
            }
            MontyObject::dict(pairs)
        }
    })
}

/// How deep a JSON value nests (a scalar is 0).
pub fn depth(value: &ScriptValue) -> usize {
    // Iterative, so a hostile value cannot overflow the stack here.
    let mut max = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, d)) = stack.pop() {
        max = max.max(d);
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, d + 1))),
            Value::Object(map) => stack.extend(map.values().map(|i| (i, d + 1))),
            _ => {}
        }
    }
    max
}

/// About how many bytes a JSON value holds (its strings' bytes, 8 per other scalar, plus keys),
/// counted without serializing it.
pub fn approx_bytes(value: &ScriptValue) -> usize {
    let mut total = 0usize;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        total = total.saturating_add(match v {
            Value::String(text) => text.len(),
            Value::Array(items) => {
                stack.extend(items.iter());
                8
            }
            Value::Object(map) => {
                stack.extend(map.values());
                map.keys().map(String::len).sum::<usize>()
            }
            _ => 8,
        });
    }
    total
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    fn s(x: &str) -> MontyObject {
        MontyObject::String(x.to_owned())
    }

    #[test]
    fn script_values_become_plain_json() {
        let obj = MontyObject::dict(vec![
            (s("none"), MontyObject::None),
            (s("t"), MontyObject::Bool(true)),
            (s("i"), MontyObject::Int(-7)),
            (s("f"), MontyObject::Float(1.5)),
            (s("nan"), MontyObject::Float(f64::NAN)),
            (s("inf"), MontyObject::Float(f64::INFINITY)),
            (s("l"), MontyObject::List(vec![MontyObject::Int(1), s("a")])),
            (s("tu"), MontyObject::Tuple(vec![MontyObject::Bool(false)])),
            (MontyObject::Int(3), s("int key")),
            (
                MontyObject::Tuple(vec![MontyObject::Int(1), MontyObject::Int(2)]),
                s("tuple key"),
            ),
            (s("set"), MontyObject::Set(vec![MontyObject::Int(1)])),
            (s("bytes"), MontyObject::Bytes(b"hi".to_vec())),
        ]);
        assert_eq!(
            to_json(&obj).unwrap(),
            json!({
                "none": null, "t": true, "i": -7, "f": 1.5, "nan": "nan", "inf": "inf",
                "l": [1, "a"], "tu": [false], "3": "int key", "(1, 2)": "tuple key",
                "set": "{1}", "bytes": "b'hi'"
            })
        );
    }

    #[test]
    fn json_becomes_script_values_and_round_trips() {
        let v = json!({"a": [1, 2.5, "x", null, true, {"b": []}], "big": 18446744073709551615u64});
        let obj = from_json(&v).unwrap();
        let MontyObject::Dict(pairs) = &obj else {
            panic!("not a dict: {obj:?}")
        };
        let big = pairs.iter().find(|(k, _)| *k == s("big")).unwrap();
        assert!(
            matches!(big.1, MontyObject::BigInt(_)),
            "an integer past i64 stays an exact int, not a float: {:?}",
            big.1
        );
        let back = to_json(&obj).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn deep_values_are_refused_both_ways() {
        let mut obj = MontyObject::None;
        let mut value = json!(null);
        for _ in 0..MAX_DEPTH {
            obj = MontyObject::List(vec![obj]);
            value = json!([value]);
        }
        assert_eq!(depth(&value), MAX_DEPTH);
        assert!(to_json(&obj).is_ok());
        assert!(from_json(&value).is_ok());
        obj = MontyObject::List(vec![obj]);
        value = json!([value]);
        assert_eq!(to_json(&obj), Err(ConvertError::TooDeep));
        assert_eq!(from_json(&value).err(), Some(ConvertError::TooDeep));
    }
}
