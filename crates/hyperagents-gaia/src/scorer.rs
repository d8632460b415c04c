//! GAIA's answer scorer: normalised exact match, written from the published algorithm of the
//! GAIA leaderboard's `question_scorer` so scores here are comparable with the leaderboard's.
//!
//! The rule depends on the ground truth:
//! - **a number** (anything Python's `float()` accepts) → the answer has every `$`, `%` and `,`
//!   removed and is read with `float()`; the two floats must be equal. Other units are *not*
//!   removed (`"5 km"` never equals `5`), exactly as GAIA does;
//! - **a list** (the ground truth contains `,` or `;`) → both are split on `,` and `;`; the lists
//!   must have the same length, numeric ground-truth items compare as numbers (above), the others
//!   as strings with whitespace removed and case folded, punctuation kept;
//! - **a string** → both have whitespace removed, case folded and ASCII punctuation removed, then
//!   must be equal.
//!
//! One deliberate difference: GAIA turns an answer that does not parse as a number into
//! `float("inf")`, so a ground truth of `inf` would accept any garbage; here such an answer simply
//! fails. No GAIA task has an infinite answer, so scores are unchanged.

use hyperagents_domain::Score;

/// GAIA's verdict on `model_answer` against `ground_truth`.
pub fn question_scorer(model_answer: &str, ground_truth: &str) -> bool {
    judge(model_answer, ground_truth).0
}

/// GAIA's verdict as a [`Score`], with a reason that never contains the ground truth.
pub fn score_answer(model_answer: &str, ground_truth: &str) -> Score {
    let (success, reason) = judge(model_answer, ground_truth);
    Score {
        value: if success { 1.0 } else { 0.0 },
        success,
        reason,
    }
}

/// Reads `text` the way Python's `float()` does: surrounding whitespace ignored, `inf`,
/// `infinity` and `nan` in any case with an optional sign, exponents, and single underscores
/// between digits (`1_000`). Non-ASCII digits, which Python also accepts, are not.
pub fn python_float(text: &str) -> Option<f64> {
    let trimmed = text.trim_matches(is_python_whitespace);
    if trimmed.is_empty() {
        return None;
    }
    let chars: Vec<char> = trimmed.chars().collect();
    let mut cleaned = String::with_capacity(trimmed.len());
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' {
            // PEP 515: an underscore must sit between two digits.
            let before = i.checked_sub(1).and_then(|j| chars.get(j));
            let after = chars.get(i + 1);
            if !(before.is_some_and(char::is_ascii_digit)
                && after.is_some_and(char::is_ascii_digit))
            {
                return None;
            }
        } else {
            cleaned.push(c);
        }
    }
    cleaned.parse::<f64>().ok()
}

/// GAIA's string normalisation: all whitespace removed, lowercased, and ASCII punctuation
/// (Python's `string.punctuation`) removed when `remove_punctuation` is set.
pub fn normalize_str(text: &str, remove_punctuation: bool) -> String {
    let lowered: String = text
        .chars()
        .filter(|c| !is_python_whitespace(*c))
        .collect::<String>()
        .to_lowercase();
    if remove_punctuation {
        lowered
            .chars()
            .filter(|c| !c.is_ascii_punctuation())
            .collect()
    } else {
        lowered
    }
}

/// GAIA's number normalisation: `$`, `%` and `,` removed, then read as a Python float. `None`
/// where GAIA would use `inf` (see the module docs).
pub fn normalize_number_str(text: &str) -> Option<f64> {
    let stripped: String = text
        .chars()
        .filter(|c| !matches!(c, '$' | '%' | ','))
        .collect();
    python_float(&stripped)
}

fn judge(model_answer: &str, ground_truth: &str) -> (bool, String) {
    if let Some(expected) = python_float(ground_truth) {
        return match normalize_number_str(model_answer) {
            Some(got) if got == expected => (true, "the number matches".into()),
            Some(got) => (
                false,
                format!("the number {got} differs from the expected number"),
            ),
            None => (
                false,
                "a number was expected; the answer does not read as one".into(),
            ),
        };
    }
    if ground_truth.contains([',', ';']) {
        let expected: Vec<&str> = split_list(ground_truth);
        let got: Vec<&str> = split_list(model_answer);
        if expected.len() != got.len() {
            return (
                false,
                format!(
                    "a list of {} items was expected; the answer has {}",
                    expected.len(),
                    got.len()
                ),
            );
        }
        let wrong: Vec<String> = got
            .iter()
            .zip(&expected)
            .enumerate()
            .filter(|(_, (got, expected))| !list_item_matches(got, expected))
            .map(|(i, _)| (i + 1).to_string())
            .collect();
        return if wrong.is_empty() {
            (true, "every list item matches".into())
        } else {
            (false, format!("list items {} differ", wrong.join(", ")))
        };
    }
    if normalize_str(model_answer, true) == normalize_str(ground_truth, true) {
        (true, "the answer matches after normalisation".into())
    } else {
        (
            false,
            "the answer differs from the expected one after normalisation".into(),
        )
    }
}

fn split_list(text: &str) -> Vec<&str> {
    text.split([',', ';']).collect()
}

/// One list element: numbers as numbers; strings without whitespace and case, punctuation kept
/// (list items such as `a.b` must keep their dots).
fn list_item_matches(got: &str, expected: &str) -> bool {
    match python_float(expected) {
        Some(expected) => normalize_number_str(got) == Some(expected),
        None => normalize_str(got, false) == normalize_str(expected, false),
    }
}

/// Python's `str.isspace()`: Unicode whitespace plus the ASCII separators U+001C–U+001F, which
/// Rust's `char::is_whitespace` leaves out.
fn is_python_whitespace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One scorer case: (model answer, ground truth, GAIA's verdict).
    fn check(cases: &[(&str, &str, bool)]) {
        for &(answer, truth, want) in cases {
            assert_eq!(
                question_scorer(answer, truth),
                want,
                "answer {answer:?} vs ground truth {truth:?}"
            );
        }
    }

    #[test]
    fn numbers_ignore_dollars_percent_and_thousands_commas() {
        check(&[
            ("17", "17", true),
            ("17.0", "17", true),
            (" 17 ", "17", true),
            ("$1,234", "1234", true),
            ("$ 1,234.50", "1234.5", true),
            ("12%", "12", true),
            ("12 %", "12", true),
            ("1,000,000", "1000000", true),
            ("-3.5", "-3.5", true),
            ("1e3", "1000", true),
            ("1_000", "1000", true),
            ("0.1", "0.10", true),
            ("18", "17", false),
            ("17.01", "17", false),
            ("seventeen", "17", false),
            ("", "17", false),
        ]);
    }

    #[test]
    fn numbers_keep_other_units_as_gaia_does() {
        // GAIA removes only `$`, `%` and `,` before float(): any other unit fails the parse.
        check(&[
            ("5 km", "5", false),
            ("5km", "5", false),
            ("€5", "5", false),
            ("5 USD", "5", false),
            ("about 5", "5", false),
            ("5.", "5", true),
        ]);
    }

    #[test]
    fn a_numeric_ground_truth_is_read_by_python_float_rules() {
        check(&[
            ("3", " 3 ", true),
            ("3", "+3", true),
            ("0.5", ".5", true),
            ("100", "1e2", true),
            ("1000", "1_000", true),
        ]);
        // A ground truth with a thousands comma is not a float: GAIA treats it as a list.
        check(&[("1,000", "1,000", true), ("1000", "1,000", false)]);
        assert_eq!(python_float("1__0"), None);
        assert_eq!(python_float("_1"), None);
        assert_eq!(python_float("1_"), None);
        assert_eq!(python_float("1_.5"), None);
        assert_eq!(python_float("Infinity"), Some(f64::INFINITY));
        assert_eq!(python_float("-inf"), Some(f64::NEG_INFINITY));
        assert!(python_float("nan").is_some_and(f64::is_nan));
        assert_eq!(python_float("\u{1f}2\t\n"), Some(2.0));
        assert_eq!(python_float("1e"), None);
        assert_eq!(python_float("."), None);
        assert_eq!(python_float(""), None);
    }

    #[test]
    fn nan_never_matches_and_garbage_never_matches_infinity() {
        check(&[("nan", "nan", false), ("garbage", "inf", false)]);
    }

    #[test]
    fn strings_ignore_case_whitespace_and_punctuation() {
        check(&[
            ("Paris", "paris", true),
            ("  PARIS  ", "Paris", true),
            ("sea gull", "seagull", true),
            ("Paris.", "Paris", true),
            ("St. Louis", "st louis", true),
            ("O'Brien", "OBrien", true),
            ("e-mail", "email", true),
            ("New\tYork\n", "new york", true),
            ("London", "Paris", false),
            ("Parris", "Paris", false),
            // Only ASCII punctuation goes: typographic quotes and accents stay.
            ("“Paris”", "Paris", false),
            ("Café", "Cafe", false),
            ("CAFÉ", "café", true),
        ]);
    }

    #[test]
    fn lists_split_on_commas_and_semicolons() {
        check(&[
            ("a, b, c", "a, b, c", true),
            ("A,B,C", "a, b, c", true),
            ("a; b; c", "a, b, c", true),
            ("a, b; c", "a; b; c", true),
            ("1, 2, 3", "1, 2, 3", true),
            ("$1, 2%, 3.0", "1, 2, 3", true),
            ("a, b", "a, b, c", false),
            ("a, b, c, d", "a, b, c", false),
            ("c, b, a", "a, b, c", false),
            ("a, b, 4", "a, b, 3", false),
            ("apple pie, banana", "applepie, Banana", true),
        ]);
    }

    #[test]
    fn list_items_keep_their_punctuation() {
        check(&[
            ("a.b, c", "a.b, c", true),
            ("ab, c", "a.b, c", false),
            ("St. Louis; Paris", "St. Louis; Paris", true),
            ("St Louis; Paris", "St. Louis; Paris", false),
        ]);
    }

    #[test]
    fn a_string_answer_to_a_list_question_is_split_too() {
        // The answer's own commas decide its length: one item against two is a failure.
        check(&[("a b", "a, b", false), ("a,,b", "a,b", false)]);
    }

    #[test]
    fn reasons_never_contain_the_ground_truth() {
        let truths = ["Zanzibar", "Zanzibar, Quixote", "987654"];
        for truth in truths {
            for answer in ["wrong", "Zanzibar", "1, 2", "123"] {
                let score = score_answer(answer, truth);
                for part in truth.split(", ") {
                    assert!(
                        !score.reason.contains(part),
                        "{answer:?} vs {truth:?}: {}",
                        score.reason
                    );
                }
                assert_eq!(score.value, if score.success { 1.0 } else { 0.0 });
            }
        }
        assert!(score_answer("zanzibar", "Zanzibar").success);
        assert!(
            score_answer("1, 2", "1, 2, 3")
                .reason
                .contains("3 items was expected; the answer has 2")
        );
    }
}
