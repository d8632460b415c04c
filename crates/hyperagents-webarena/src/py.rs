//! The few Python behaviours WebArena's evaluators rely on, reproduced so
//! that verdicts match theirs: `str()` of evaluated JavaScript values,
//! `str.strip()`, `float()`, `urllib.parse.urlparse` and `parse_qs`.

use std::collections::BTreeMap;

use serde_json::Value;

/// Python's `str.strip()`: Unicode whitespace plus the ASCII separators
/// `\x1c`–`\x1f`, which Python counts as whitespace and Rust does not.
pub(crate) fn strip(text: &str) -> &str {
    text.trim_matches(is_py_space)
}

pub(crate) fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's truthiness of a JSON value.
pub(crate) fn is_falsy(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(flag) => !flag,
        Value::Number(number) => number.as_f64() == Some(0.0),
        Value::String(text) => text.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
    }
}

/// Python's `str(value)` for the value Playwright (or `json.loads`) would
/// have produced from this JSON: `None`, `True`, `3`, `1.5`, `['a', 1]`,
/// `{'k': 'v'}`.
pub(crate) fn str_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => repr(other),
    }
}

/// Python's `repr(value)`.
pub(crate) fn repr(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(number) => {
            if let Some(int) = number.as_i64() {
                int.to_string()
            } else if let Some(int) = number.as_u64() {
                int.to_string()
            } else {
                float_repr(number.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(text) => string_repr(text),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(repr).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(key, value)| format!("{}: {}", string_repr(key), repr(value)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

/// Python's `repr(float)`: the shortest round-trip digits, positional for
/// decimal exponents in [-4, 16), scientific (`1e+16`, `1e-05`) outside.
pub(crate) fn float_repr(value: f64) -> String {
    if value.is_nan() {
        return "nan".into();
    }
    if value.is_infinite() {
        return if value > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    // Rust's `{:e}` yields the shortest round-trip digits, like Python.
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if negative { "-" } else { "" };
    if (-4..16).contains(&exponent) {
        let point = exponent + 1;
        let body = if point <= 0 {
            format!("0.{}{}", "0".repeat(point.unsigned_abs() as usize), digits)
        } else if (point as usize) >= digits.len() {
            format!("{}{}.0", digits, "0".repeat(point as usize - digits.len()))
        } else {
            format!(
                "{}.{}",
                &digits[..point as usize],
                &digits[point as usize..]
            )
        };
        format!("{sign}{body}")
    } else {
        let mantissa = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits
        };
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        format!(
            "{sign}{mantissa}e{exponent_sign}{:02}",
            exponent.unsigned_abs()
        )
    }
}

/// Python's `repr(str)`: single quotes unless the text holds a single
/// quote and no double quote.
fn string_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `float(text)`: surrounding whitespace, `inf`/`nan` spellings and
/// `_` between digits are accepted.
pub(crate) fn parse_float(text: &str) -> Option<f64> {
    let text = strip(text);
    if text.contains('_') {
        let chars: Vec<char> = text.chars().collect();
        for (index, c) in chars.iter().enumerate() {
            if *c == '_' {
                let digit_before = index > 0 && chars[index - 1].is_ascii_digit();
                let digit_after = chars.get(index + 1).is_some_and(char::is_ascii_digit);
                if !(digit_before && digit_after) {
                    return None;
                }
            }
        }
        return text.replace('_', "").parse().ok();
    }
    text.parse().ok()
}

/// The parts of `urllib.parse.urlparse(url)` the evaluators use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParsedUrl {
    pub scheme: String,
    pub netloc: String,
    pub path: String,
    pub query: String,
}

/// Schemes for which `urlparse` splits `;params` off the last path segment.
const USES_PARAMS: &[&str] = &[
    "", "ftp", "hdl", "prospero", "http", "imap", "https", "shttp", "rtsp", "rtspu", "sip", "sips",
    "mms", "sftp", "tel",
];

/// Python 3.11's `urlparse` (without its IPv6 validation).
pub(crate) fn urlparse(url: &str) -> ParsedUrl {
    let trimmed = url.trim_start_matches(|c: char| c <= ' ');
    let mut rest: String = trimmed
        .chars()
        .filter(|c| !matches!(c, '\t' | '\r' | '\n'))
        .collect();
    let mut scheme = String::new();
    if let Some(colon) = rest.find(':') {
        let candidate = &rest[..colon];
        let valid = colon > 0
            && candidate.starts_with(|c: char| c.is_ascii_alphabetic())
            && candidate
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if valid {
            scheme = candidate.to_ascii_lowercase();
            rest = rest[colon + 1..].to_string();
        }
    }
    let mut netloc = String::new();
    if let Some(after) = rest.strip_prefix("//") {
        let end = after.find(['/', '?', '#']).unwrap_or(after.len());
        netloc = after[..end].to_string();
        rest = after[end..].to_string();
    }
    if let Some(hash) = rest.find('#') {
        rest.truncate(hash);
    }
    let mut query = String::new();
    if let Some(question) = rest.find('?') {
        query = rest[question + 1..].to_string();
        rest.truncate(question);
    }
    let mut path = rest;
    if USES_PARAMS.contains(&scheme.as_str()) && path.contains(';') {
        // `_splitparams`: the `;` in the last segment, else the first one.
        let cut = match path.rfind('/') {
            Some(slash) => path[slash..].find(';').map(|offset| slash + offset),
            None => path.find(';'),
        };
        if let Some(cut) = cut {
            path.truncate(cut);
        }
    }
    ParsedUrl {
        scheme,
        netloc,
        path,
        query,
    }
}

/// Python's `parse_qs(query)`: `&`-separated pairs, `+` and `%xx` decoded,
/// pairs without `=` or with an empty value dropped.
pub(crate) fn parse_qs(query: &str) -> BTreeMap<String, Vec<String>> {
    let mut parsed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for piece in query.split('&') {
        if piece.is_empty() || !piece.contains('=') {
            continue;
        }
        for (name, value) in form_urlencoded::parse(piece.as_bytes()) {
            if !value.is_empty() {
                parsed
                    .entry(name.into_owned())
                    .or_default()
                    .push(value.into_owned());
            }
        }
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn str_matches_python() {
        assert_eq!(str_of(&json!("x")), "x");
        assert_eq!(str_of(&json!(3)), "3");
        assert_eq!(str_of(&json!(1.5)), "1.5");
        assert_eq!(
            str_of(&serde_json::from_str::<Value>("2.0").unwrap()),
            "2.0"
        );
        assert_eq!(str_of(&json!(true)), "True");
        assert_eq!(str_of(&Value::Null), "None");
        assert_eq!(str_of(&json!(["a", 1, null])), "['a', 1, None]");
        assert_eq!(str_of(&json!(["it's"])), "[\"it's\"]");
        assert_eq!(str_of(&json!({"k": "v"})), "{'k': 'v'}");
    }

    #[test]
    fn float_repr_matches_python() {
        assert_eq!(float_repr(1e16), "1e+16");
        assert_eq!(float_repr(1e15), "1000000000000000.0");
        assert_eq!(float_repr(0.0001), "0.0001");
        assert_eq!(float_repr(0.00001), "1e-05");
        assert_eq!(float_repr(-2.5e-7), "-2.5e-07");
        assert_eq!(float_repr(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(float_repr(123.456), "123.456");
    }

    #[test]
    fn parse_float_matches_python() {
        assert_eq!(parse_float(" 1_000.5 "), Some(1000.5));
        assert_eq!(parse_float("1__0"), None);
        assert_eq!(parse_float("-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_float("abc"), None);
    }

    #[test]
    fn urlparse_matches_python() {
        let parsed = urlparse("HTTP://h:1/a/b;p?x=1&y=#frag");
        assert_eq!(parsed.scheme, "http");
        assert_eq!(parsed.netloc, "h:1");
        assert_eq!(parsed.path, "/a/b");
        assert_eq!(parsed.query, "x=1&y=");
        let relative = urlparse("localhost:7770/f/x");
        assert_eq!(relative.scheme, "localhost");
        assert_eq!(relative.netloc, "");
    }

    #[test]
    fn parse_qs_matches_python() {
        let parsed = parse_qs("a=1&a=2&b=&c&d=x+y%21");
        assert_eq!(
            parsed.get("a").unwrap(),
            &vec!["1".to_string(), "2".to_string()]
        );
        assert!(!parsed.contains_key("b") && !parsed.contains_key("c"));
        assert_eq!(parsed.get("d").unwrap(), &vec!["x y!".to_string()]);
    }
}
