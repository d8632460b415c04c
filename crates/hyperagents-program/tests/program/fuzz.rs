//! Generated untrusted inputs (issue 14): manifests a meta agent may write and replies a model
//! may give. Loading or parsing never panics or hangs, and every error names its file and line.
//!
//! A few hundred cases per property by default; `scripts/fuzz.sh` (or `PROPTEST_CASES=N`) runs
//! many more.

use std::path::Path;

use hyperagents_program::{MANIFEST_FILE, ParsedChange, ProgramError, parse_edits};
use hyperagents_testkit::fuzz::check;
use proptest::prelude::*;

use crate::support::{MANIFEST, load, seed_dir, seed_files};

// ---------------------------------------------------------------------------
// hyperagent.toml

/// Fragments of TOML and of this manifest, so random text gets past the first checks.
const TOML_TOKENS: &[&str] = &[
    "format = 1\n",
    "format = 2\n",
    "format = \"1\"\n",
    "[program]\n",
    "name = \"x\"\n",
    "[hyper]\n",
    "[meta]\n",
    "[budgets]\n",
    "[agents.web]\n",
    "[skills.click]\n",
    "[[agents]]\n",
    "prompt = \"hyper/prompt.md\"\n",
    "script = \"hyper/main.py\"\n",
    "agents = [\"web\", \"web\"]\n",
    "skills = [\"nope\"]\n",
    "model = \"gpt\"\n",
    "max_steps = 4294967296\n",
    "max_wall_secs = nan\n",
    "max_wall_secs = -inf\n",
    "max_tokens = -1\n",
    "prompt = \"../../etc/passwd\"\n",
    "script = \"/abs.py\"\n",
    "script = \"hyper\"\n",
    "\"\"\"",
    "'''",
    "\"",
    "'",
    "[",
    "]",
    "{",
    "}",
    "=",
    ",",
    ".",
    "#",
    "\n",
    "\r\n",
    " ",
    "\t",
    "\\u0000",
    "\\",
    "1979-05-27T07:32:00Z",
    "0x7fffffffffffffff",
    "99999999999999999999999999",
    "1e999",
    "é",
    "\u{feff}",
    "\u{0}",
    "a.b.c",
    "true",
];

fn toml_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOML_TOKENS), 0..60).prop_map(|t| t.concat())
}

/// A TOML value, possibly nested `depth` deep in arrays or inline tables.
fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\"\"".to_owned()),
        Just("\"tasks/web/policy.py\"".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("-9223372036854775808".to_owned()),
        Just("nan".to_owned()),
        Just("1e308".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        Just("\"\\uD800\"".to_owned()),
        Just("\"\\u{0}\"".to_owned()),
        Just("1979-05-27".to_owned()),
        "[a-z0-9 _./-]{0,20}".prop_map(|s| format!("\"{s}\"")),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        (0usize..400)
            .prop_map(|n| "x".repeat(n * 100))
            .prop_map(|s| format!("\"{s}\"")),
        (1usize..300, any::<bool>()).prop_map(|(depth, table)| nested(depth, table)),
    ]
}

/// `[[[…]]]` or `{a = {a = …}}`, `depth` deep (the TOML parser stops at 80).
fn nested(depth: usize, table: bool) -> String {
    if table {
        format!("{}1{}", "{a = ".repeat(depth), "}".repeat(depth))
    } else {
        format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Cut the text at this fraction of its length.
    Truncate(f64),
    DeleteLine(usize),
    DuplicateLine(usize),
    /// Give the line's key another value (or put the value on a non-assignment line).
    ReplaceValue(usize, String),
    InsertLine(usize, String),
    /// Flip bits of one byte (may leave invalid UTF-8).
    FlipByte(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (0.0..1.0f64).prop_map(Mutation::Truncate),
        any::<usize>().prop_map(Mutation::DeleteLine),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), toml_value()).prop_map(|(i, v)| Mutation::ReplaceValue(i, v)),
        (any::<usize>(), toml_soup()).prop_map(|(i, s)| Mutation::InsertLine(i, s)),
        (any::<usize>(), 1..=255u8).prop_map(|(i, b)| Mutation::FlipByte(i, b)),
    ]
}

fn apply(text: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = text.to_vec();
    for m in mutations {
        let mut lines: Vec<Vec<u8>> = bytes.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
        let pick = |i: usize, len: usize| i % len.max(1);
        match m {
            Mutation::Truncate(fraction) => {
                bytes.truncate((bytes.len() as f64 * fraction) as usize);
                continue;
            }
            Mutation::FlipByte(i, mask) => {
                if !bytes.is_empty() {
                    let i = pick(*i, bytes.len());
                    bytes[i] ^= mask;
                }
                continue;
            }
            Mutation::DeleteLine(i) => {
                let i = pick(*i, lines.len());
                lines.remove(i);
            }
            Mutation::DuplicateLine(i) => {
                let i = pick(*i, lines.len());
                let line = lines[i].clone();
                lines.insert(i, line);
            }
            Mutation::ReplaceValue(i, value) => {
                let i = pick(*i, lines.len());
                let line = &lines[i];
                let key_end = line.iter().position(|&b| b == b'=').unwrap_or(line.len());
                let mut new = line[..key_end].to_vec();
                new.extend_from_slice(b"= ");
                new.extend_from_slice(value.as_bytes());
                lines[i] = new;
            }
            Mutation::InsertLine(i, text) => {
                let i = pick(*i, lines.len() + 1);
                lines.insert(i, text.as_bytes().to_vec());
            }
        }
        bytes = lines.join(&b'\n');
    }
    bytes
}

/// Every file the seed program has, by program-relative path.
fn seed_paths() -> Vec<String> {
    seed_files()
        .into_iter()
        .map(|(p, _)| p.to_owned())
        .collect()
}

/// Loads the seed program in `dir` with `manifest` as its `hyperagent.toml`: it loads, or every
/// error names one of the program's files.
fn check_manifest(dir: &Path, manifest: &[u8]) -> Result<(), TestCaseError> {
    std::fs::write(dir.join(MANIFEST_FILE), manifest).unwrap();
    let Err(errors) = load(dir) else {
        return Ok(());
    };
    prop_assert!(!errors.is_empty(), "a refused program with no errors");
    let known = seed_paths();
    for error in &errors {
        check_names_a_file(error, &known)?;
    }
    Ok(())
}

fn check_names_a_file(error: &ProgramError, known: &[String]) -> Result<(), TestCaseError> {
    let shown = error.to_string();
    let file = &error.location.file;
    prop_assert!(
        known.contains(file),
        "error names no file of the program: {shown}"
    );
    prop_assert!(shown.starts_with(file.as_str()), "{shown}");
    if let Some(line) = error.location.line {
        prop_assert!(line >= 1, "{shown}");
    }
    Ok(())
}

#[test]
fn manifests_of_random_toml_load_or_name_the_file() {
    let dir = seed_dir();
    check(96, toml_soup(), |text| {
        check_manifest(dir.path(), text.as_bytes())
    });
}

#[test]
fn mutated_manifests_load_or_name_the_file() {
    let dir = seed_dir();
    let mutations = prop::collection::vec(mutation(), 1..5);
    check(192, mutations, |mutations| {
        check_manifest(dir.path(), &apply(MANIFEST.as_bytes(), &mutations))
    });
}

#[test]
fn manifests_of_arbitrary_bytes_load_or_name_the_file() {
    let dir = seed_dir();
    let bytes = prop::collection::vec(any::<u8>(), 0..600);
    check(64, bytes, |bytes| check_manifest(dir.path(), &bytes));
}

// ---------------------------------------------------------------------------
// parse_edits: a meta model's plain-text reply

const REPLY_LINES: &[&str] = &[
    "<<<<<<< SEARCH",
    "<<<< SEARCH",
    "=======",
    "====",
    ">>>>>>> REPLACE",
    "```",
    "```python",
    "```skills/act/skill.py",
    "````",
    "~~~",
    "~~~markdown",
    "skills/act/skill.py",
    "**tasks/web/prompt.md**",
    "### hyperagent.toml",
    "File: `meta/improve.py`:",
    "../../etc/passwd.py",
    "/etc/passwd.py",
    "a b.py",
    "x = 1",
    "Goal: {{ goal }}",
    "",
    "   ",
    "Here is the change:",
];

fn reply_line() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(REPLY_LINES).prop_map(str::to_owned),
        1 => "\\PC{0,40}",
        1 => "[a-z_/.]{1,30}",
    ]
}

fn reply() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(reply_line(), 0..40),
        prop::sample::select(&["\n", "\r\n"][..]),
    )
        .prop_map(|(lines, newline)| lines.join(newline))
}

/// The parse's promises: problems point at the line that opened the broken block, edits name
/// only plausible relative paths, and a replacement has something to search for.
fn check_reply(text: &str) -> Result<(), TestCaseError> {
    let parsed = parse_edits(text);
    let lines: Vec<&str> = text.lines().collect();
    for problem in &parsed.problems {
        let shown = problem.to_string();
        prop_assert!(
            shown.starts_with(&format!("line {}: ", problem.line)),
            "{shown}"
        );
        prop_assert!(
            (1..=lines.len()).contains(&problem.line),
            "{shown} is outside the reply's {} lines",
            lines.len()
        );
        let opened = lines[problem.line - 1].trim();
        prop_assert!(
            opened.starts_with("<<<<") || opened.starts_with("```") || opened.starts_with("~~~"),
            "{shown} points at {opened:?}, not at the block it names"
        );
    }
    for edit in &parsed.edits {
        if let Some(path) = &edit.path {
            prop_assert!(
                !path.starts_with('/')
                    && !path.contains("..")
                    && !path.contains(char::is_whitespace),
                "implausible path {path:?}"
            );
        }
        if let ParsedChange::Replace { old, .. } = &edit.change {
            prop_assert!(!old.trim().is_empty());
        }
    }
    Ok(())
}

#[test]
fn model_replies_parse_into_edits_and_located_problems() {
    check(512, reply(), |text| check_reply(&text));
}

#[test]
fn arbitrary_replies_parse_into_edits_and_located_problems() {
    check(256, "\\PC{0,400}", |text| check_reply(&text));
}
