//! `recall(query, k=1, path="demos/exemplars.jsonl")`: the entries of one of
//! the program's own JSONL files most similar to a query, for agents that
//! show their model worked examples (demonstrations mined from successful
//! train episodes, rules, notes). Similarity is word overlap weighted by
//! rarity within the file (idf), so common words ("click", "the") count for
//! little; ties keep file order. Only the program's own files are read, so a
//! recalled example is as reviewable as any other edit.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

/// The file `recall()` reads when the caller names none.
pub const DEFAULT_RECALL_FILE: &str = "demos/exemplars.jsonl";

/// Most entries one call may return.
pub const MAX_RECALL: usize = 8;

/// Why a recall file could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}:{line}: {message}")]
pub struct RecallError {
    pub path: String,
    pub line: usize,
    pub message: String,
}

/// The `k` entries of the JSONL `text` (named `path` in errors) most similar
/// to `query`, best first; entries sharing no word with the query are left
/// out.
pub fn recall(path: &str, text: &str, query: &str, k: usize) -> Result<Vec<Value>, RecallError> {
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let entry: Value = serde_json::from_str(line).map_err(|e| RecallError {
            path: path.to_string(),
            line: index + 1,
            message: format!("not a JSON value: {e}"),
        })?;
        let words = words(&match_text(&entry));
        entries.push((entry, words));
    }
    let mut frequency: HashMap<&str, usize> = HashMap::new();
    for (_, words) in &entries {
        for word in words {
            *frequency.entry(word.as_str()).or_default() += 1;
        }
    }
    let total = entries.len() as f64;
    let wanted = words(query);
    let mut scored: Vec<(f64, usize)> = entries
        .iter()
        .enumerate()
        .filter_map(|(i, (_, words))| {
            let score: f64 = words
                .intersection(&wanted)
                .map(|w| {
                    let n = frequency.get(w.as_str()).copied().unwrap_or(1) as f64;
                    (1.0 + total / n).ln()
                })
                .sum();
            (score > 0.0).then(|| (score / (words.len() as f64).sqrt().max(1.0), i))
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    Ok(scored
        .into_iter()
        .take(k.min(MAX_RECALL))
        .map(|(_, i)| entries[i].0.clone())
        .collect())
}

/// What an entry is matched on: its `key`, else its `goal`, else all of it.
fn match_text(entry: &Value) -> String {
    for field in ["key", "goal"] {
        if let Some(Value::String(text)) = entry.get(field) {
            return text.clone();
        }
    }
    match entry {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Lower-case words of letters and digits.
fn words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FILE: &str = r#"{"goal": "Click on the \"Submit\" button.", "steps": ["click [3]"]}
{"goal": "Enter \"Kasey\" into the text field and press Submit.", "steps": ["type [2] Kasey", "click [4]"]}

{"goal": "Click on the link \"Eget\".", "steps": ["click [5]"]}
"#;

    #[test]
    fn the_most_similar_entries_come_first_and_rare_words_weigh_more() {
        let got = recall(
            "demos/x.jsonl",
            FILE,
            "Enter \"Bob\" into the text field",
            2,
        )
        .unwrap();
        assert_eq!(got[0]["steps"], json!(["type [2] Kasey", "click [4]"]));
        let got = recall("demos/x.jsonl", FILE, "Click on the link \"Morbi\".", 1).unwrap();
        assert_eq!(
            got,
            vec![json!({"goal": "Click on the link \"Eget\".", "steps": ["click [5]"]})]
        );
    }

    #[test]
    fn nothing_in_common_recalls_nothing_and_k_is_capped() {
        assert!(recall("d.jsonl", FILE, "zzz qqq", 3).unwrap().is_empty());
        let many: String = (0..20)
            .map(|i| format!("{{\"key\": \"alpha {i}\"}}\n"))
            .collect();
        assert_eq!(
            recall("d.jsonl", &many, "alpha", 100).unwrap().len(),
            MAX_RECALL
        );
    }

    #[test]
    fn a_bad_line_is_named() {
        let err = recall("demos/x.jsonl", "{\"goal\": \"a\"}\nnot json\n", "a", 1).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(
            err.to_string()
                .starts_with("demos/x.jsonl:2: not a JSON value"),
            "{err}"
        );
    }
}
