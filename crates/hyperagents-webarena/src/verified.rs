//! webarena-verified's `AgentResponseEvaluator`, ported from the package
//! (`core/evaluation`: the evaluator, `ValueNormalizer`, `ValueComparator`
//! and the data types) for the value types `string`, `number`/`integer`,
//! `boolean` and `null`.
//!
//! The agent answers with JSON (bare or in a ```json block):
//! `{"task_type": "RETRIEVE", "status": "SUCCESS", "retrieved_data": [...]}`.
//! Task type and status must equal the expected ones; for retrieve tasks
//! the retrieved items must equal the expected items (in any order unless
//! the task says `ordered`), each normalized by its schema type:
//! - strings: site URLs turned back into placeholders, ™®℠© dropped, NFKC,
//!   hyphens next to letters become spaces, control characters dropped,
//!   transliterated to ASCII, whitespace collapsed, lowercased; equal if
//!   any alternative matches, a `^…$` reference is a case-insensitive
//!   regular expression, and a second try ignores leading and trailing
//!   quotes and punctuation;
//! - numbers: `1,234.5`, `1 000` and number words (`twenty three`);
//! - booleans: `true/yes/y/1/t/on` and their opposites.
//!
//! Expected values may list alternatives (a list of 2+ items in place of a
//! value). ASCII transliteration uses `deunicode`, which agrees with
//! Python's `unidecode` on Latin, Greek and Cyrillic letters and common
//! symbols but may differ on rarer scripts and emoji.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};
use unicode_general_category::{GeneralCategory, get_general_category};
use unicode_normalization::UnicodeNormalization;

use crate::evaluate::PartResult;
use crate::py;
use crate::site::{Site, SiteConfig};
use crate::task::{AgentResponseCheck, TaskType};

/// The package's type names this port implements.
pub const SUPPORTED_TYPES: &[&str] = &["string", "number", "integer", "boolean", "null"];

/// Every type name the package knows (its `TYPE_REGISTRY`).
const KNOWN_TYPES: &[&str] = &[
    "currency",
    "date",
    "duration",
    "distance",
    "coordinates",
    "full_address",
    "url",
    "boolean",
    "string",
    "string_list",
    "number",
    "integer",
    "month",
    "null",
    "json",
    "markdown",
    "base64",
    "location-name",
];

/// Scores `answer` against an `AgentResponseEvaluator` configuration.
pub(crate) fn evaluate_agent_response(
    check: &AgentResponseCheck,
    task_sites: &[Site],
    sites: &SiteConfig,
    answer: &str,
) -> PartResult {
    let context = Context {
        task_sites,
        sites,
        schema: &check.results_schema,
    };
    let failures = match compare_response(check, &context, answer) {
        Ok(failures) => failures,
        // The package scores an evaluator that raises as 0.
        Err(error) => vec![format!("agent response: {}", error.0)],
    };
    PartResult {
        score: if failures.is_empty() { 1.0 } else { 0.0 },
        failures,
    }
}

/// Checks that every type a results schema uses is implemented; the error
/// names the first one that is not.
pub(crate) fn check_schema(schema: &Value) -> Result<(), String> {
    if schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("array")
        != "array"
    {
        // Retrieved data must be empty then; nothing is normalized.
        return Ok(());
    }
    let items = schema
        .get("items")
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    if items.get("type").and_then(Value::as_str) == Some("object") {
        return check_object_schema(&items);
    }
    check_type_name(&simple_type_name(&items))
}

fn check_object_schema(schema: &Value) -> Result<(), String> {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Ok(());
    };
    for property in properties.values() {
        match extract_type(property).map_err(|error| error.0)?.0 {
            TypeRef::Object(nested) => check_object_schema(nested)?,
            // Unknown names fall back to strings in `_normalize_object`.
            TypeRef::Name(name) if KNOWN_TYPES.contains(&name.as_str()) => {
                check_type_name(&name)?;
            }
            TypeRef::Name(_) => {}
        }
    }
    Ok(())
}

fn check_type_name(name: &str) -> Result<(), String> {
    if SUPPORTED_TYPES.contains(&name) {
        Ok(())
    } else {
        Err(name.to_string())
    }
}

/// An exception in the package's evaluator: the evaluator scores 0.
#[derive(Debug)]
struct EvalError(String);

fn error(message: impl Into<String>) -> EvalError {
    EvalError(message.into())
}

struct Context<'a> {
    task_sites: &'a [Site],
    sites: &'a SiteConfig,
    schema: &'a Value,
}

impl Context<'_> {
    fn derender(&self, text: &str) -> String {
        self.sites.derender(self.task_sites, text)
    }
}

/// A normalized value: the package's `NormalizedType` instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    Number,
    Boolean,
    Empty,
}

#[derive(Debug, Clone, PartialEq)]
enum Atom {
    Text(String),
    Number(f64),
    Flag(bool),
    Nothing,
}

#[derive(Debug, Clone)]
struct Normalized {
    kind: Kind,
    alternatives: Vec<Atom>,
}

/// A value after normalization: normalized leaves, raw leaves where
/// normalization failed on the agent's side, and structure.
#[derive(Debug, Clone)]
enum Node {
    None,
    Norm(Normalized),
    Raw(Value),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

/// A raw JSON value as the comparator sees it (Python objects).
fn raw_node(value: &Value) -> Node {
    match value {
        Value::Null => Node::None,
        Value::Array(items) => Node::Array(items.iter().map(raw_node).collect()),
        Value::Object(map) => Node::Object(
            map.iter()
                .map(|(key, value)| (key.clone(), raw_node(value)))
                .collect(),
        ),
        scalar => Node::Raw(scalar.clone()),
    }
}

fn compare_response(
    check: &AgentResponseCheck,
    context: &Context<'_>,
    answer: &str,
) -> Result<Vec<String>, EvalError> {
    let expected = &check.expected;
    let is_retrieve = expected.task_type == TaskType::Retrieve;
    let with_retrieved_data = expected.retrieved_data.is_some();

    // Errors here would quote expected values, which must not reach the
    // score's reason.
    let expected_error = |_| error("the expected answer cannot be normalized");
    let mut expected_fields = vec![
        (
            "task_type".to_string(),
            Node::Norm(
                normalize_text(Kind::String, expected.task_type.as_str())
                    .map_err(expected_error)?,
            ),
        ),
        (
            "status".to_string(),
            Node::Norm(
                normalize_text(Kind::String, expected.status.as_str()).map_err(expected_error)?,
            ),
        ),
    ];
    let expected_data = normalize_retrieved_data(
        expected.retrieved_data.as_ref().unwrap_or(&Value::Null),
        true,
        context,
    )
    .map_err(expected_error)?;
    expected_fields.push((
        "retrieved_data".to_string(),
        expected_data.clone().unwrap_or(Node::None),
    ));
    let expected_node = Node::Object(expected_fields);

    let Some(response) = parse_response(answer) else {
        return compare(
            &Node::None,
            &expected_node,
            false,
            "agent_response",
            &["retrieved_data"],
        );
    };
    let Value::Object(response) = response else {
        return compare(
            &raw_node(&response),
            &expected_node,
            false,
            "agent_response",
            &["retrieved_data"],
        );
    };

    // The fields the expected answer sets, read from the response.
    let mut actual_fields: Vec<(String, Node)> = Vec::new();
    let mut field_names = vec!["task_type", "status"];
    if with_retrieved_data {
        field_names.push("retrieved_data");
    }
    for name in field_names {
        let mut key = name;
        if key == "task_type"
            && !response.contains_key("task_type")
            && response.contains_key("performed_operation")
        {
            key = "performed_operation";
        }
        let Some(value) = response.get(key) else {
            if name == "retrieved_data" {
                actual_fields.push((name.to_string(), Node::None));
            }
            continue;
        };
        let node = if name == "retrieved_data" {
            if is_retrieve {
                normalize_retrieved_data(value, false, context)?.unwrap_or(Node::None)
            } else {
                Node::None
            }
        } else {
            let Value::String(text) = value else {
                return Err(error(format!("`{key}` is not a string")));
            };
            let text = py::strip(text);
            if text.is_empty() {
                Node::None
            } else {
                Node::Norm(normalize_text(Kind::String, text)?)
            }
        };
        actual_fields.push((name.to_string(), node));
    }
    let actual_empty = actual_fields.is_empty();
    let actual_data = actual_fields
        .iter()
        .find(|(name, _)| name == "retrieved_data")
        .map(|(_, node)| node.clone());
    let actual_node = Node::Object(actual_fields);

    let mut failures = compare(
        &actual_node,
        &expected_node,
        false,
        "agent_response",
        &["retrieved_data"],
    )?;
    if !is_retrieve || actual_empty {
        return Ok(failures);
    }
    let actual_data = match actual_data {
        None | Some(Node::None) => None,
        Some(node) => Some(node),
    };
    match (expected_data, actual_data) {
        (None, None) => {}
        (None, Some(_)) => failures.push("retrieved_data: expected no data, got some".into()),
        (Some(_), None) => failures.push("retrieved_data: missing or empty".into()),
        (Some(expected), Some(actual)) => {
            failures.extend(compare(
                &actual,
                &expected,
                check.ordered,
                "retrieved_data",
                &[],
            )?);
        }
    }
    Ok(failures)
}

static CODE_BLOCK: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::unwrap_used)] // a constant pattern
    let regex = Regex::new(r"(?s)```(?:json)?\s*\n?(.*?)\n?```").unwrap();
    regex
});

/// `_get_actual_agent_response_dict`: the JSON in a code block or the whole
/// answer; text that is not JSON stays text; a falsy value is `None`.
fn parse_response(answer: &str) -> Option<Value> {
    let mut text = py::strip(answer).to_string();
    if let Some(captures) = CODE_BLOCK.captures(answer) {
        text = py::strip(&captures[1]).to_string();
    }
    let value = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
    if py::is_falsy(&value) {
        None
    } else {
        Some(value)
    }
}

/// `_normalized_retrieved_data`.
fn normalize_retrieved_data(
    raw: &Value,
    strict: bool,
    context: &Context<'_>,
) -> Result<Option<Node>, EvalError> {
    let numeric = matches!(raw, Value::Number(_) | Value::Bool(_));
    if py::is_falsy(raw) && !numeric {
        return Ok(None);
    }
    let items = match raw {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    normalize_array(&items, context.schema, strict, context).map(Some)
}

/// `ValueNormalizer.normalize_array` (the value is already a list).
fn normalize_array(
    items: &[Value],
    schema: &Value,
    strict: bool,
    context: &Context<'_>,
) -> Result<Node, EvalError> {
    let schema_type = schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("array");
    if schema_type != "array" {
        return Err(error(format!(
            "Schema type must be 'array', got: '{schema_type}'"
        )));
    }
    let empty = Value::Object(Map::new());
    let items_schema = schema.get("items").unwrap_or(&empty);
    if items_schema.get("type").and_then(Value::as_str) == Some("object") {
        return items
            .iter()
            .map(|item| normalize_object_or_array(item, items_schema, strict, context))
            .collect::<Result<Vec<_>, _>>()
            .map(Node::Array);
    }
    let kind = kind_of(&simple_type_name(items_schema))?;
    let mut normalized = Vec::with_capacity(items.len());
    for item in items {
        normalized.push(match construct(kind, item, Some(context)) {
            Ok(value) => Node::Norm(value),
            Err(failure) if strict => return Err(failure),
            Err(_) => raw_node(item),
        });
    }
    Ok(Node::Array(normalized))
}

/// `_get_normalized_type_class`'s name: `format`, else `type`, else string.
fn simple_type_name(schema: &Value) -> String {
    schema
        .get("format")
        .and_then(Value::as_str)
        .filter(|name| !name.is_empty())
        .or_else(|| schema.get("type").and_then(Value::as_str))
        .unwrap_or("string")
        .to_string()
}

fn kind_of(name: &str) -> Result<Kind, EvalError> {
    match name {
        "string" => Ok(Kind::String),
        "number" | "integer" => Ok(Kind::Number),
        "boolean" => Ok(Kind::Boolean),
        "null" => Ok(Kind::Empty),
        other if KNOWN_TYPES.contains(&other) => {
            Err(error(format!("type `{other}` is not implemented")))
        }
        other => Err(error(format!("Unknown type name: '{other}'"))),
    }
}

enum TypeRef<'a> {
    Name(String),
    Object(&'a Value),
}

/// `_extract_type_from_schema`: a type name or an object schema, and
/// whether the schema is an array of it.
fn extract_type(schema: &Value) -> Result<(TypeRef<'_>, bool), EvalError> {
    if !schema.is_object() {
        return Err(error("Schema must be dict"));
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("array") => {
            let items = schema.get("items").unwrap_or(&EMPTY_OBJECT);
            Ok((extract_type(items)?.0, true))
        }
        Some("object") => Ok((TypeRef::Object(schema), false)),
        schema_type => {
            if let Some(format) = schema
                .get("format")
                .and_then(Value::as_str)
                .filter(|format| !format.is_empty())
            {
                return Ok((TypeRef::Name(format.to_string()), false));
            }
            Ok((
                TypeRef::Name(
                    schema_type
                        .filter(|t| !t.is_empty())
                        .unwrap_or("string")
                        .to_string(),
                ),
                false,
            ))
        }
    }
}

static EMPTY_OBJECT: LazyLock<Value> = LazyLock::new(|| Value::Object(Map::new()));

/// `_normalize_object_or_array`.
fn normalize_object_or_array(
    value: &Value,
    schema: &Value,
    strict: bool,
    context: &Context<'_>,
) -> Result<Node, EvalError> {
    match value {
        Value::Array(items) => items
            .iter()
            .map(|item| normalize_object(item, schema, strict, context))
            .collect::<Result<Vec<_>, _>>()
            .map(Node::Array),
        other => normalize_object(other, schema, strict, context),
    }
}

/// `_normalize_object`: each property by its schema (strings when it has
/// none); failures keep the raw value on the agent's side.
fn normalize_object(
    value: &Value,
    schema: &Value,
    strict: bool,
    context: &Context<'_>,
) -> Result<Node, EvalError> {
    let parsed;
    let object = match value {
        Value::Object(object) => object,
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) => {
                parsed = object;
                &parsed
            }
            _ => return not_an_object(value, strict),
        },
        _ => return not_an_object(value, strict),
    };
    let properties = schema.get("properties").and_then(Value::as_object);
    let mut normalized = Vec::with_capacity(object.len());
    for (name, property) in object {
        if property.is_null() {
            normalized.push((name.clone(), Node::None));
            continue;
        }
        let attempt = match properties.and_then(|properties| properties.get(name)) {
            None => construct(Kind::String, property, Some(context)).map(Node::Norm),
            Some(property_schema) => normalize_property(property, property_schema, strict, context),
        };
        normalized.push((
            name.clone(),
            match attempt {
                Ok(node) => node,
                Err(failure) if strict => return Err(failure),
                Err(_) => raw_node(property),
            },
        ));
    }
    Ok(Node::Object(normalized))
}

fn not_an_object(value: &Value, strict: bool) -> Result<Node, EvalError> {
    if strict {
        Err(error(format!(
            "Expected dict for object normalization, got {value}"
        )))
    } else {
        Ok(raw_node(value))
    }
}

fn normalize_property(
    value: &Value,
    schema: &Value,
    strict: bool,
    context: &Context<'_>,
) -> Result<Node, EvalError> {
    let (type_ref, is_array) = extract_type(schema)?;
    if is_array {
        return normalize_typed_array(value, &type_ref, strict, context);
    }
    match type_ref {
        TypeRef::Object(object_schema) => normalize_object(value, object_schema, strict, context),
        TypeRef::Name(name) if KNOWN_TYPES.contains(&name.as_str()) => {
            construct(kind_of(&name)?, value, Some(context)).map(Node::Norm)
        }
        TypeRef::Name(_) => construct(Kind::String, value, Some(context)).map(Node::Norm),
    }
}

/// `ValueNormalizer._normalize_array` (arrays inside objects).
fn normalize_typed_array(
    value: &Value,
    type_ref: &TypeRef<'_>,
    strict: bool,
    context: &Context<'_>,
) -> Result<Node, EvalError> {
    let parsed;
    let items = match value {
        Value::Array(items) => items,
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Array(items)) => {
                parsed = items;
                &parsed
            }
            _ => return not_an_array(value, strict),
        },
        _ => return not_an_array(value, strict),
    };
    let name = match type_ref {
        TypeRef::Object(schema) => {
            return items
                .iter()
                .map(|item| normalize_object(item, schema, strict, context))
                .collect::<Result<Vec<_>, _>>()
                .map(Node::Array);
        }
        TypeRef::Name(name) => name,
    };
    if !KNOWN_TYPES.contains(&name.as_str()) {
        return Err(error(format!("Unknown type name: '{name}'")));
    }
    let kind = kind_of(name)?;
    let mut normalized = Vec::with_capacity(items.len());
    for item in items {
        normalized.push(match construct(kind, item, Some(context)) {
            Ok(value) => Node::Norm(value),
            Err(failure) if strict => return Err(failure),
            Err(_) => raw_node(item),
        });
    }
    Ok(Node::Array(normalized))
}

fn not_an_array(value: &Value, strict: bool) -> Result<Node, EvalError> {
    if strict {
        Err(error(format!("expects array but got {value}")))
    } else {
        Ok(raw_node(value))
    }
}

/// A `NormalizedType` instance: a list of 2+ items is a set of
/// alternatives, a shorter list an error.
fn construct(
    kind: Kind,
    raw: &Value,
    context: Option<&Context<'_>>,
) -> Result<Normalized, EvalError> {
    let alternatives = match raw {
        Value::Array(items) => {
            if items.len() < 2 {
                return Err(error("Alternatives require 2+ items"));
            }
            items
                .iter()
                .map(|item| pipeline(kind, item, context))
                .collect::<Result<Vec<_>, _>>()?
        }
        single => vec![pipeline(kind, single, context)?],
    };
    Ok(Normalized { kind, alternatives })
}

fn normalize_text(kind: Kind, text: &str) -> Result<Normalized, EvalError> {
    construct(kind, &Value::String(text.to_string()), None)
}

/// `_normalize_pipeline`: string clean-up, then the type's conversion.
fn pipeline(kind: Kind, value: &Value, context: Option<&Context<'_>>) -> Result<Atom, EvalError> {
    let cleaned;
    let value = match value {
        Value::String(text) => {
            cleaned = Value::String(match kind {
                Kind::Empty => normalize_empty_string(text),
                _ => normalize_string(text, context),
            });
            &cleaned
        }
        other => other,
    };
    type_normalize(kind, value)
}

fn type_normalize(kind: Kind, value: &Value) -> Result<Atom, EvalError> {
    let numeric = matches!(value, Value::Number(_) | Value::Bool(_));
    match kind {
        Kind::String => {
            if py::is_falsy(value) {
                return Ok(Atom::Text(String::new()));
            }
            if let Value::String(text) = value
                && is_regexp(text)
            {
                return Ok(Atom::Text(py::strip(text).to_string()));
            }
            Ok(Atom::Text(
                py::strip(&py::str_of(value).to_lowercase()).to_string(),
            ))
        }
        Kind::Number => {
            if py::is_falsy(value) && !numeric {
                return Err(error("Number value is empty or None"));
            }
            match value {
                Value::Bool(flag) => return Ok(Atom::Number(if *flag { 1.0 } else { 0.0 })),
                Value::Number(number) => {
                    return Ok(Atom::Number(number.as_f64().unwrap_or(f64::NAN)));
                }
                _ => {}
            }
            let text = py::str_of(value);
            let compact = text.replace([',', ' '], "");
            py::parse_float(&compact)
                .or_else(|| word_to_number(&text))
                .map(Atom::Number)
                .ok_or_else(|| error(format!("Unable to parse number: {text}")))
        }
        Kind::Boolean => {
            if py::is_falsy(value) && !numeric {
                return Err(error("Cannot normalize empty value to boolean"));
            }
            match value {
                Value::Bool(flag) => Ok(Atom::Flag(*flag)),
                Value::Number(number) => Ok(Atom::Flag(number.as_f64() != Some(0.0))),
                Value::String(text) => match py::strip(text).to_lowercase().as_str() {
                    "true" | "yes" | "y" | "1" | "t" | "on" => Ok(Atom::Flag(true)),
                    "false" | "no" | "n" | "0" | "f" | "off" => Ok(Atom::Flag(false)),
                    _ => Err(error(format!("Cannot normalize string to boolean: {text}"))),
                },
                other => Err(error(format!("Cannot normalize {other} to boolean"))),
            }
        }
        Kind::Empty => {
            if py::is_falsy(value) {
                if numeric {
                    return Err(error("Numeric zero is not considered empty"));
                }
                return Ok(Atom::Nothing);
            }
            match value {
                Value::String(text)
                    if ["n/a", "na", "nan", "null", "none"].contains(&text.as_str()) =>
                {
                    Ok(Atom::Nothing)
                }
                other => Err(error(format!(
                    "Value is not an empty representation: {other}"
                ))),
            }
        }
    }
}

/// `is_regexp`: a string starting with `^` and ending with `$`.
fn is_regexp(text: &str) -> bool {
    text.len() >= 2 && text.starts_with('^') && text.ends_with('$')
}

const HYPHENS: &[char] = &[
    '\u{2D}', '\u{2010}', '\u{2011}', '\u{2012}', '\u{2013}', '\u{2014}', '\u{2015}', '\u{2212}',
    '\u{AD}',
];

/// `NormalizedType._normalize_string`.
fn normalize_string(text: &str, context: Option<&Context<'_>>) -> String {
    if text.is_empty() || is_regexp(text) {
        return text.to_string();
    }
    let mut text = text.to_string();
    if let Some(context) = context
        && text.contains("http")
    {
        text = context.derender(&text);
    }
    let text: String = text
        .chars()
        .filter(|c| !matches!(c, '\u{2122}' | '\u{AE}' | '\u{2120}' | '\u{A9}'))
        .collect::<String>()
        .nfkc()
        .collect();
    // Hyphens next to an ASCII letter become spaces ("Buffalo-Niagara"),
    // others stay ("123-4567"); neighbours are read before any change.
    let chars: Vec<char> = text.chars().collect();
    let mut spaced = String::with_capacity(text.len());
    for (index, c) in chars.iter().enumerate() {
        let next_to_letter = (index > 0 && chars[index - 1].is_ascii_alphabetic())
            || chars.get(index + 1).is_some_and(char::is_ascii_alphabetic);
        if HYPHENS.contains(c) && next_to_letter {
            spaced.push(' ');
        } else {
            spaced.push(*c);
        }
    }
    let mut cleaned = String::with_capacity(spaced.len());
    for c in spaced.chars() {
        let other = matches!(
            get_general_category(c),
            GeneralCategory::Control
                | GeneralCategory::Format
                | GeneralCategory::Surrogate
                | GeneralCategory::PrivateUse
                | GeneralCategory::Unassigned
        );
        if !other {
            cleaned.push(c);
        } else if matches!(c, '\t' | '\n' | '\r') {
            cleaned.push(' ');
        }
    }
    let ascii: String = deunicode::deunicode_with_tofu(&cleaned, "")
        .chars()
        .filter(char::is_ascii)
        .collect();
    ascii
        .split(|c: char| c.is_ascii_whitespace() || c == '\u{b}')
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase()
}

static SLASH_SPACES: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::unwrap_used)] // a constant pattern
    let regex = Regex::new(r"\s*/\s*").unwrap();
    regex
});

/// `Empty._normalize_string`: lowercase, collapse whitespace, `n / a` → `n/a`.
fn normalize_empty_string(text: &str) -> String {
    if text.is_empty() {
        return String::new();
    }
    let lowered = py::strip(text).to_lowercase();
    let collapsed = lowered
        .split(py::is_py_space)
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    SLASH_SPACES.replace_all(&collapsed, "/").into_owned()
}

/// `word2number.w2n.word_to_num` (version 1.1).
fn word_to_number(sentence: &str) -> Option<f64> {
    let sentence = sentence.replace('-', " ").to_lowercase();
    if !sentence.is_empty() && sentence.chars().all(|c| c.is_numeric()) {
        return sentence.parse::<f64>().ok();
    }
    let mut words: Vec<&str> = sentence
        .split_whitespace()
        .filter(|word| number_word(word).is_some())
        .collect();
    if words.is_empty() {
        return None;
    }
    let count = |target: &str, list: &[&str]| list.iter().filter(|word| **word == target).count();
    for big in ["thousand", "million", "billion", "point"] {
        if count(big, &words) > 1 {
            return None;
        }
    }
    let mut decimals: Vec<&str> = Vec::new();
    if let Some(point) = words.iter().position(|word| *word == "point") {
        decimals = words[point + 1..].to_vec();
        words.truncate(point);
    }
    let index_of = |target: &str| words.iter().position(|word| *word == target);
    let billion = index_of("billion");
    let million = index_of("million");
    let thousand = index_of("thousand");
    let before = |a: Option<usize>, b: Option<usize>| matches!((a, b), (Some(a), Some(b)) if a < b);
    if (thousand.is_some() && (before(thousand, million) || before(thousand, billion)))
        || before(million, billion)
    {
        return None;
    }
    let mut total: f64 = 0.0;
    if words.len() == 1 {
        total += number_word(words[0])?;
    } else if !words.is_empty() {
        if let Some(b) = billion {
            total += formation(&words[..b])? * 1e9;
        }
        if let Some(m) = million {
            let start = billion.map_or(0, |b| b + 1);
            total += formation(&words[start..m])? * 1e6;
        }
        if let Some(t) = thousand {
            let start = million.or(billion).map_or(0, |i| i + 1);
            total += formation(&words[start..t])? * 1e3;
        }
        let last = words.len() - 1;
        let hundreds = if thousand.is_some_and(|t| t != last) {
            formation(&words[thousand.map_or(0, |t| t + 1)..])?
        } else if million.is_some_and(|m| m != last) {
            formation(&words[million.map_or(0, |m| m + 1)..])?
        } else if billion.is_some_and(|b| b != last) {
            formation(&words[billion.map_or(0, |b| b + 1)..])?
        } else if thousand.is_none() && million.is_none() && billion.is_none() {
            formation(&words)?
        } else {
            0.0
        };
        total += hundreds;
    }
    if !decimals.is_empty() {
        let mut digits = String::from("0.");
        for word in decimals {
            match number_word(word) {
                Some(value) if value < 10.0 && word != "point" => {
                    digits.push_str(&(value as u8).to_string());
                }
                _ => return Some(total),
            }
        }
        total += digits.parse::<f64>().unwrap_or(0.0);
    }
    Some(total)
}

/// `number_formation` of word2number; an empty slice fails like Python's
/// `numbers[0]` on an empty list.
fn formation(words: &[&str]) -> Option<f64> {
    let numbers: Vec<f64> = words
        .iter()
        .map(|word| number_word(word))
        .collect::<Option<_>>()?;
    match numbers.as_slice() {
        [a, b, c, d] => Some(a * b + c + d),
        [a, b, c] => Some(a * b + c),
        [a, b] if *a == 100.0 || *b == 100.0 => Some(a * b),
        [a, b] => Some(a + b),
        [a, ..] => Some(*a),
        [] => None,
    }
}

fn number_word(word: &str) -> Option<f64> {
    const WORDS: &[(&str, f64)] = &[
        ("zero", 0.0),
        ("one", 1.0),
        ("two", 2.0),
        ("three", 3.0),
        ("four", 4.0),
        ("five", 5.0),
        ("six", 6.0),
        ("seven", 7.0),
        ("eight", 8.0),
        ("nine", 9.0),
        ("ten", 10.0),
        ("eleven", 11.0),
        ("twelve", 12.0),
        ("thirteen", 13.0),
        ("fourteen", 14.0),
        ("fifteen", 15.0),
        ("sixteen", 16.0),
        ("seventeen", 17.0),
        ("eighteen", 18.0),
        ("nineteen", 19.0),
        ("twenty", 20.0),
        ("thirty", 30.0),
        ("forty", 40.0),
        ("fifty", 50.0),
        ("sixty", 60.0),
        ("seventy", 70.0),
        ("eighty", 80.0),
        ("ninety", 90.0),
        ("hundred", 100.0),
        ("thousand", 1000.0),
        ("million", 1_000_000.0),
        ("billion", 1_000_000_000.0),
        // "point" is a number word too; its value is never used as one.
        ("point", f64::NAN),
    ];
    WORDS
        .iter()
        .find(|(name, _)| *name == word)
        .map(|(_, value)| *value)
}

// ---------------------------------------------------------------------------
// ValueComparator

/// `_compare_recursive`: the failures, empty when equal.
fn compare(
    actual: &Node,
    expected: &Node,
    ordered: bool,
    path: &str,
    ignored_keys: &[&str],
) -> Result<Vec<String>, EvalError> {
    match (expected, actual) {
        (Node::None, Node::None) => Ok(Vec::new()),
        (Node::None, _) | (_, Node::None) => {
            Ok(vec![format!("{path}: value missing or unexpected")])
        }
        (Node::Object(expected), actual) => {
            compare_objects(expected, actual, ordered, path, ignored_keys)
        }
        (Node::Array(expected), actual) => compare_arrays(expected, actual, ordered, path),
        (expected, actual) => Ok(if leaf_equal(expected, actual) {
            Vec::new()
        } else {
            vec![format!("{path}: mismatch")]
        }),
    }
}

fn compare_objects(
    expected: &[(String, Node)],
    actual: &Node,
    ordered: bool,
    path: &str,
    ignored_keys: &[&str],
) -> Result<Vec<String>, EvalError> {
    let Node::Object(actual) = actual else {
        return Ok(vec![format!("{path}: expected a structured object")]);
    };
    if expected.is_empty() {
        return Err(error("Expected object must have at least one key"));
    }
    let mut failures = Vec::new();
    let has = |list: &[(String, Node)], key: &str| list.iter().any(|(name, _)| name == key);
    let missing = expected.iter().filter(|(key, _)| !has(actual, key)).count();
    let extra = actual.iter().filter(|(key, _)| !has(expected, key)).count();
    if missing > 0 || extra > 0 {
        failures.push(format!("{path}: {missing} missing and {extra} extra keys"));
    }
    for (key, expected_value) in expected {
        if ignored_keys.contains(&key.as_str()) {
            continue;
        }
        if let Some((_, actual_value)) = actual.iter().find(|(name, _)| name == key) {
            failures.extend(compare(
                actual_value,
                expected_value,
                ordered,
                &format!("{path}.{key}"),
                ignored_keys,
            )?);
        }
    }
    Ok(failures)
}

fn compare_arrays(
    expected: &[Node],
    actual: &Node,
    ordered: bool,
    path: &str,
) -> Result<Vec<String>, EvalError> {
    let Node::Array(actual) = actual else {
        return Ok(vec![format!("{path}: expected an array")]);
    };
    if ordered {
        let mut failures = Vec::new();
        for (index, (expected_item, actual_item)) in expected.iter().zip(actual).enumerate() {
            failures.extend(compare(
                actual_item,
                expected_item,
                ordered,
                &format!("{path}[{index}]"),
                &[],
            )?);
        }
        if expected.len() != actual.len() || !failures.is_empty() {
            failures.push(format!(
                "{path}: ordered items differ ({} expected, {} given)",
                expected.len(),
                actual.len()
            ));
        }
        return Ok(failures);
    }
    // Greedy matching, as the package does: each expected item takes the
    // first unmatched actual item equal to it.
    let mut matched = vec![false; actual.len()];
    let mut missing = 0;
    for (index, expected_item) in expected.iter().enumerate() {
        let mut found = false;
        for (slot, actual_item) in actual.iter().enumerate() {
            if matched[slot] {
                continue;
            }
            if compare(
                actual_item,
                expected_item,
                ordered,
                &format!("{path}[{index}]"),
                &[],
            )?
            .is_empty()
            {
                matched[slot] = true;
                found = true;
                break;
            }
        }
        if !found {
            missing += 1;
        }
    }
    let extra = matched.iter().filter(|taken| !**taken).count();
    Ok(if missing > 0 || extra > 0 {
        vec![format!(
            "{path}: matched {} of {} expected items, {extra} extra",
            expected.len() - missing,
            expected.len()
        )]
    } else {
        Vec::new()
    })
}

/// `expected != actual` for leaves: normalized values of one kind compare
/// by their alternatives; a normalized string also accepts a raw string.
fn leaf_equal(expected: &Node, actual: &Node) -> bool {
    match (expected, actual) {
        (Node::Norm(expected), Node::Norm(actual)) => {
            expected.kind == actual.kind && alternatives_equal(expected, actual)
        }
        (Node::Norm(expected), Node::Raw(Value::String(text))) if expected.kind == Kind::String => {
            // Normalized on the fly, without URL derendering.
            let actual = Normalized {
                kind: Kind::String,
                alternatives: vec![
                    type_normalize(Kind::String, &Value::String(normalize_string(text, None)))
                        .unwrap_or(Atom::Text(String::new())),
                ],
            };
            alternatives_equal(expected, &actual)
        }
        (Node::Raw(expected), Node::Raw(actual)) => expected == actual,
        _ => false,
    }
}

fn alternatives_equal(expected: &Normalized, actual: &Normalized) -> bool {
    let overlap = |left: &[Atom], right: &[Atom]| left.iter().any(|atom| right.contains(atom));
    if expected.kind != Kind::String {
        return overlap(&expected.alternatives, &actual.alternatives);
    }
    let texts = |value: &Normalized| -> Vec<String> {
        value
            .alternatives
            .iter()
            .map(|atom| match atom {
                Atom::Text(text) => text.clone(),
                _ => String::new(),
            })
            .collect()
    };
    let (left, right) = (texts(expected), texts(actual));
    for (patterns, subjects) in [(&left, &right), (&right, &left)] {
        for pattern in patterns.iter().filter(|text| is_regexp(text)) {
            if let Ok(regex) = Regex::new(&format!("(?i)^(?:{pattern})$"))
                && subjects.iter().any(|subject| regex.is_match(subject))
            {
                return true;
            }
        }
    }
    if left.iter().any(|text| right.contains(text)) {
        return true;
    }
    let stripped = |texts: &[String]| -> Vec<String> {
        texts
            .iter()
            .map(|text| {
                text.trim_matches(['\'', '"', '`', '.', ',', ';', ':', '!', '?'])
                    .to_string()
            })
            .collect()
    };
    let (left, right) = (stripped(&left), stripped(&right));
    left.iter().any(|text| right.contains(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_normalize_like_the_package() {
        assert_eq!(
            normalize_string("Quest Lumaflex™ Band", None),
            "quest lumaflex band"
        );
        assert_eq!(
            normalize_string("Buffalo–Niagara  Airport", None),
            "buffalo niagara airport"
        );
        assert_eq!(normalize_string("412-555-0100", None), "412-555-0100");
        assert_eq!(normalize_string("Café ＦＵＬＬ\u{200b}", None), "cafe full");
        assert_eq!(normalize_string("^Exact$", None), "^Exact$");
    }

    #[test]
    fn number_words_convert() {
        assert_eq!(word_to_number("twenty three"), Some(23.0));
        assert_eq!(
            word_to_number("two million twenty three thousand and forty nine"),
            Some(2_023_049.0)
        );
        assert_eq!(word_to_number("one hundred"), Some(100.0));
        assert_eq!(word_to_number("two point five"), Some(2.5));
        assert_eq!(word_to_number("no numbers here"), None);
        assert_eq!(word_to_number("thousand thousand"), None);
    }

    #[test]
    fn schema_support_follows_the_type_resolution() {
        let supported = serde_json::json!({"type": "array", "items": {"type": "object", "title": "full_address",
            "properties": {"name": {"type": "string"}, "count": {"type": "integer"}}}});
        assert!(check_schema(&supported).is_ok());
        let currency =
            serde_json::json!({"type": "array", "items": {"type": "number", "format": "currency"}});
        assert_eq!(check_schema(&currency), Err("currency".into()));
        assert!(check_schema(&serde_json::json!({"type": "null"})).is_ok());
    }
}
