//! Answer scorers for question-answering tasks: exact, contains (with the
//! answer's length capped, so dumping every candidate cannot win), regex and
//! numeric tolerance.

use serde::{Deserialize, Serialize};

use crate::Score;

/// How a task's answer is judged, as written in a suite file: either a bare
/// name (`"exact"`) or an object with options (`{"type": "numeric",
/// "tolerance": 0.01}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ScorerSpec {
    Name(String),
    Detailed(Scorer),
}

/// A scorer with its options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Scorer {
    /// Equal after trimming, collapsing whitespace and ignoring case.
    Exact,
    /// The answer contains the expected text (case-insensitive) and is at
    /// most `max_len` characters long.
    Contains {
        #[serde(default = "default_max_len")]
        max_len: usize,
    },
    /// The whole (trimmed) answer matches the expected regular expression.
    Regex,
    /// The last number in the answer (answers tend to end with the result:
    /// "2 + 2 = 4") is within `tolerance` of the expected number — absolute,
    /// or relative to it when `relative` is set.
    Numeric {
        #[serde(default)]
        tolerance: f64,
        #[serde(default)]
        relative: bool,
    },
}

fn default_max_len() -> usize {
    200
}

impl ScorerSpec {
    /// Resolves a bare name to a scorer with default options.
    pub fn resolve(&self) -> Result<Scorer, String> {
        match self {
            ScorerSpec::Detailed(s) => Ok(s.clone()),
            ScorerSpec::Name(name) => match name.as_str() {
                "exact" => Ok(Scorer::Exact),
                "contains" => Ok(Scorer::Contains {
                    max_len: default_max_len(),
                }),
                "regex" => Ok(Scorer::Regex),
                "numeric" => Ok(Scorer::Numeric {
                    tolerance: 0.0,
                    relative: false,
                }),
                other => Err(format!(
                    "unknown scorer `{other}` (expected exact, contains, regex or numeric)"
                )),
            },
        }
    }
}

impl Scorer {
    /// Checks options that can be checked before any answer exists
    /// (a regex compiles, a tolerance is not negative).
    pub fn validate(&self, expected: &str) -> Result<(), String> {
        match self {
            Scorer::Regex => regex::Regex::new(&anchored(expected))
                .map(|_| ())
                .map_err(|e| format!("expected is not a valid regex: {e}")),
            Scorer::Numeric { tolerance, .. } => {
                if *tolerance < 0.0 || !tolerance.is_finite() {
                    return Err(format!(
                        "tolerance must be a finite number ≥ 0, got {tolerance}"
                    ));
                }
                last_number(expected)
                    .map(|_| ())
                    .ok_or_else(|| format!("expected `{expected}` holds no number"))
            }
            Scorer::Exact | Scorer::Contains { .. } => Ok(()),
        }
    }

    /// Judges `answer` against `expected`.
    pub fn score(&self, answer: &str, expected: &str) -> Score {
        let (success, reason) = match self {
            Scorer::Exact => {
                let ok = normalize(answer) == normalize(expected);
                (
                    ok,
                    if ok {
                        "exact match".into()
                    } else {
                        "answer differs from the expected text".into()
                    },
                )
            }
            Scorer::Contains { max_len } => {
                let length = answer.chars().count();
                if length > *max_len {
                    (
                        false,
                        format!("answer is {length} characters; at most {max_len} are allowed"),
                    )
                } else {
                    let ok = answer.to_lowercase().contains(&expected.to_lowercase());
                    (
                        ok,
                        if ok {
                            "answer contains the expected text".into()
                        } else {
                            "expected text not found in the answer".into()
                        },
                    )
                }
            }
            Scorer::Regex => match regex::Regex::new(&anchored(expected)) {
                Ok(re) => {
                    let ok = re.is_match(answer.trim());
                    (
                        ok,
                        if ok {
                            "answer matches the pattern".into()
                        } else {
                            "answer does not match the pattern".into()
                        },
                    )
                }
                Err(e) => (false, format!("invalid expected pattern: {e}")),
            },
            Scorer::Numeric {
                tolerance,
                relative,
            } => match (last_number(answer), last_number(expected)) {
                (Some(got), Some(want)) => {
                    let allowed = if *relative {
                        tolerance * want.abs()
                    } else {
                        *tolerance
                    };
                    let ok = (got - want).abs() <= allowed + f64::EPSILON * want.abs().max(1.0);
                    (
                        ok,
                        if ok {
                            "number within tolerance".into()
                        } else {
                            format!("number {got} is outside the tolerance")
                        },
                    )
                }
                (None, _) => (false, "no number in the answer".into()),
                (_, None) => (false, "the expected value holds no number".into()),
            },
        };
        Score {
            value: if success { 1.0 } else { 0.0 },
            success,
            reason,
        }
    }
}

fn anchored(pattern: &str) -> String {
    format!("^(?:{pattern})$")
}

fn normalize(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// The last number in `text`: an optional sign, digits with optional
/// thousands commas, an optional fraction and exponent.
fn last_number(text: &str) -> Option<f64> {
    static NUMBER: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = NUMBER.get_or_init(|| {
        regex::Regex::new(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?")
            .unwrap_or_else(|_| unreachable!("the pattern is a constant"))
    });
    re.find_iter(text)
        .map(|m| m.as_str())
        .filter(|s| s.chars().any(|c| c.is_ascii_digit()))
        .filter_map(|s| s.replace(',', "").parse::<f64>().ok())
        .last()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(scorer: &Scorer, answer: &str, expected: &str) -> bool {
        scorer.score(answer, expected).success
    }

    #[test]
    fn exact_ignores_case_and_spacing_only() {
        assert!(check(&Scorer::Exact, "  Paris ", "paris"));
        assert!(check(&Scorer::Exact, "New   York", "new york"));
        assert!(!check(&Scorer::Exact, "Paris, France", "Paris"));
    }

    #[test]
    fn contains_caps_the_answer_length() {
        let s = Scorer::Contains { max_len: 20 };
        assert!(check(&s, "It is Paris.", "paris"));
        assert!(!check(&s, "London", "paris"));
        let dump = "Paris London Berlin Rome Madrid Vienna";
        let score = s.score(dump, "paris");
        assert!(!score.success);
        assert!(score.reason.contains("at most 20"), "{}", score.reason);
    }

    #[test]
    fn regex_matches_the_whole_answer() {
        assert!(check(&Scorer::Regex, " 42 apples ", r"\d+ apples?"));
        assert!(!check(&Scorer::Regex, "I have 42 apples", r"\d+ apples?"));
        assert!(Scorer::Regex.validate("(").is_err());
    }

    #[test]
    fn numeric_tolerance_absolute_and_relative() {
        let abs = Scorer::Numeric {
            tolerance: 0.5,
            relative: false,
        };
        assert!(check(&abs, "about 3.4 km", "3"));
        assert!(
            check(&abs, "2 + 2 = 4", "4"),
            "the last number is the answer"
        );
        assert!(!check(&abs, "3.6", "3"));
        assert!(check(&abs, "The total is 1,234.", "1234"));
        assert!(!check(&abs, "no idea", "3"));
        let rel = Scorer::Numeric {
            tolerance: 0.01,
            relative: true,
        };
        assert!(check(&rel, "1005", "1000"));
        assert!(!check(&rel, "1020", "1000"));
        assert!(check(
            &Scorer::Numeric {
                tolerance: 0.0,
                relative: false
            },
            "-2.5e3",
            "-2500"
        ));
        assert!(
            Scorer::Numeric {
                tolerance: -1.0,
                relative: false
            }
            .validate("3")
            .is_err()
        );
    }

    #[test]
    fn names_resolve_and_unknown_names_are_errors() {
        assert_eq!(
            ScorerSpec::Name("exact".into()).resolve(),
            Ok(Scorer::Exact)
        );
        assert!(
            ScorerSpec::Name("fuzzy".into())
                .resolve()
                .unwrap_err()
                .contains("unknown scorer `fuzzy`")
        );
        let detailed: ScorerSpec =
            serde_json::from_str(r#"{"type":"contains","max_len":5}"#).unwrap();
        assert_eq!(detailed.resolve(), Ok(Scorer::Contains { max_len: 5 }));
    }
}
