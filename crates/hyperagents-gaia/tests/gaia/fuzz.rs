//! Generated GAIA metadata (issue 14): lines with fields present, missing, mistyped or extra,
//! attachments named every way a file can be named, lines cut short, arbitrary text. Parsing
//! never panics or hangs; a loaded task's attachment is a plain file beside the metadata (never
//! the metadata itself), and every error names the metadata file and the line at fault.
//!
//! A few hundred cases per property by default; `scripts/fuzz.sh` (or `PROPTEST_CASES=N`) runs
//! many more.

use std::path::Path;

use hyperagents_domain::DomainError;
use hyperagents_gaia::GaiaSuite;
use hyperagents_testkit::fuzz::check;
use proptest::prelude::*;

/// A split folder with two attachments, and a file outside it.
struct Layout {
    _root: tempfile::TempDir,
    metadata: std::path::PathBuf,
}

impl Layout {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let split = root.path().join("2023/validation");
        std::fs::create_dir_all(&split).unwrap();
        std::fs::write(split.join("sales.csv"), "a,b\n1,2\n").unwrap();
        std::fs::write(split.join("notes.txt"), "notes").unwrap();
        std::fs::write(root.path().join("secret.txt"), "outside").unwrap();
        Self {
            metadata: split.join("metadata.jsonl"),
            _root: root,
        }
    }
}

const FILE_NAMES: &[&str] = &[
    "",
    " ",
    "sales.csv",
    "notes.txt",
    "missing.pdf",
    "metadata.jsonl",
    "../secret.txt",
    "2023/validation/sales.csv",
    "/etc/hostname",
    ".",
    "..",
    "a\\b.txt",
    "nul\u{0}.txt",
];

const FILE_PATHS: &[&str] = &[
    "",
    "2023/validation/sales.csv",
    "2023/validation/notes.txt",
    "2023/validation/metadata.jsonl",
    "secret.txt",
    "/",
    "..",
    "missing/x.csv",
];

/// A JSON value of the right type for a field, or of any other.
fn json_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("\"?\"".to_owned()),
        Just("\"\"".to_owned()),
        Just("\" 2 \"".to_owned()),
        Just("\"\\ud800\"".to_owned()),
        Just("1e999".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("[\"a\"]".to_owned()),
        Just("{\"Steps\": \"1. look\"}".to_owned()),
        (-2i64..6).prop_map(|n| n.to_string()),
        "[a-z0-9 ?]{0,12}".prop_map(|s| format!("\"{s}\"")),
        (1usize..300).prop_map(|d| format!("{}0{}", "[".repeat(d), "]".repeat(d))),
    ]
}

fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

fn metadata_line() -> impl Strategy<Value = String> {
    let field = |name: &'static str, value: BoxedStrategy<String>| {
        prop_oneof![
            4 => value.prop_map(move |v| format!("{}: {v}", quoted(name))),
            1 => Just(String::new()),
        ]
    };
    (
        field(
            "task_id",
            prop_oneof!["[a-c]{1,2}".prop_map(|id| quoted(&id)), json_value()].boxed(),
        ),
        field(
            "Question",
            prop_oneof!["\\PC{0,20}".prop_map(|q| quoted(&q)), json_value()].boxed(),
        ),
        field("Level", json_value().boxed()),
        field("Final answer", json_value().boxed()),
        field(
            "file_name",
            prop::sample::select(FILE_NAMES).prop_map(quoted).boxed(),
        ),
        prop::option::of(prop::sample::select(FILE_PATHS)),
        prop::option::of(json_value()),
        prop::option::of(json_value()),
    )
        .prop_map(
            |(id, question, level, answer, file_name, file_path, annotator, extra)| {
                let mut fields = vec![id, question, level, answer, file_name];
                fields.extend(file_path.map(|p| format!("\"file_path\": {}", quoted(p))));
                fields.extend(annotator.map(|v| format!("\"Annotator Metadata\": {v}")));
                fields.extend(extra.map(|v| format!("\"Difficulty\": {v}")));
                fields.retain(|f| !f.is_empty());
                format!("{{{}}}", fields.join(", "))
            },
        )
}

fn metadata_text() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        8 => metadata_line(),
        1 => Just(String::new()),
        1 => Just("# comment".to_owned()),
        1 => "\\PC{0,60}",
        1 => (metadata_line(), 0.0..1.0f64).prop_map(|(line, cut)| {
            line.chars().take((line.chars().count() as f64 * cut) as usize).collect()
        }),
    ];
    (
        prop::collection::vec(line, 0..8),
        prop::sample::select(vec!["\n", "\r\n"]),
    )
        .prop_map(|(lines, newline)| lines.join(newline))
}

/// Parses `text` as the layout's metadata: the tasks keep their promises, or the error is
/// `<metadata>:<line>: …` at a line holding a task (line 1 when none does).
fn check_metadata(layout: &Layout, text: &str) -> Result<(), TestCaseError> {
    std::fs::write(&layout.metadata, text).unwrap();
    let error = match GaiaSuite::parse("gaia:fuzz", &layout.metadata, text) {
        Ok(suite) => return check_tasks(&suite, &layout.metadata),
        Err(error) => error,
    };
    let shown = error.to_string();
    let DomainError::Parse { file, line, .. } = &error else {
        return Err(TestCaseError::fail(format!("not a parse error: {shown}")));
    };
    let path = layout.metadata.display().to_string();
    prop_assert_eq!(file, &path);
    prop_assert!(shown.starts_with(&format!("{path}:{line}: ")), "{}", shown);
    let lines: Vec<&str> = text.lines().collect();
    let holds_a_task = |l: &str| !l.trim().is_empty() && !l.trim().starts_with('#');
    if lines.iter().any(|l| holds_a_task(l)) {
        prop_assert!(
            *line >= 1 && *line <= lines.len() && holds_a_task(lines[line - 1]),
            "{} points at no task line",
            shown
        );
    } else {
        prop_assert_eq!(*line, 1);
    }
    Ok(())
}

fn check_tasks(suite: &GaiaSuite, metadata: &Path) -> Result<(), TestCaseError> {
    prop_assert!(!suite.tasks().is_empty());
    let canonical_metadata = std::fs::canonicalize(metadata).unwrap();
    for task in suite.tasks() {
        prop_assert!((1..=3).contains(&task.level));
        prop_assert!(!task.task_id.trim().is_empty());
        if let Some(name) = &task.file_name {
            prop_assert!(
                !name.contains('/') && name != ".." && name != ".",
                "{}",
                name
            );
        }
        if let Some(attachment) = task.attachment_path() {
            prop_assert!(attachment.is_file());
            prop_assert_ne!(
                std::fs::canonicalize(attachment).unwrap(),
                canonical_metadata.clone()
            );
        }
    }
    Ok(())
}

#[test]
fn metadata_parses_or_names_file_and_line() {
    let layout = Layout::new();
    check(384, metadata_text(), |text| check_metadata(&layout, &text));
}

#[test]
fn metadata_of_arbitrary_text_parses_or_names_file_and_line() {
    let layout = Layout::new();
    check(128, "\\PC{0,300}", |text| check_metadata(&layout, &text));
}
