//! The seed fixture program, a fake script checker, and helpers that locate text in a fixture
//! so expected `file:line:col` values are computed rather than hand-counted.

use std::path::Path;

use hyperagents_program::{Program, ProgramError, ScriptChecker, ScriptSyntaxError};

pub const MANIFEST: &str = r#"format = 1

[program]
name = "seed"
description = "A minimal web agent"

[budgets]
max_steps = 40
max_calls = 100
max_tokens = 20000
max_wall_secs = 120.0

[hyper]
prompt = "hyper/prompt.md"
script = "hyper/main.py"
model = "task"
agents = ["web", "qa"]

[agents.web]
description = "Operates a web page to reach a goal"
prompt = "tasks/web/prompt.md"
script = "tasks/web/policy.py"
model = "task"
skills = ["click", "type_text", "answer"]
max_steps = 20

[agents.qa]
description = "Answers questions"
prompt = "tasks/qa/prompt.md"
script = "tasks/qa/policy.py"
skills = ["answer"]

[skills.click]
description = "Click an element by ref"
prompt = "skills/click/prompt.md"
script = "skills/click/skill.py"

[skills.type_text]
description = "Type text into an element"
script = "skills/type_text/skill.py"

[skills.answer]
description = "Give the final answer"
prompt = "skills/answer/prompt.md"
model = "judge"

[meta]
prompt = "meta/prompt.md"
script = "meta/improve.py"
select = "meta/select.py"
model = "meta"
"#;

/// Every file of the seed program.
pub fn seed_files() -> Vec<(&'static str, String)> {
    vec![
        ("hyperagent.toml", MANIFEST.to_owned()),
        (
            "hyper/prompt.md",
            "Goal: {{ goal }}\nAgents: {{ agents | join(\", \") }}\n".into(),
        ),
        ("hyper/main.py", "result = delegate(\"web\", goal)\n".into()),
        (
            "tasks/web/prompt.md",
            "Goal: {{ goal }}\nPage:\n{{ observation }}\n".into(),
        ),
        (
            "tasks/web/policy.py",
            "obs = observe()\nskill(\"click\", ref=1)\n".into(),
        ),
        ("tasks/qa/prompt.md", "Question: {{ goal }}\n".into()),
        (
            "tasks/qa/policy.py",
            "skill(\"answer\", text=llm(goal))\n".into(),
        ),
        (
            "skills/click/prompt.md",
            "Pick the element for {{ goal }}\n".into(),
        ),
        ("skills/click/skill.py", "click(ref)\n".into()),
        ("skills/type_text/skill.py", "type(ref, text)\n".into()),
        ("skills/answer/prompt.md", "Answer: {{ answer }}\n".into()),
        (
            "meta/prompt.md",
            "Improve the program. Failures:\n{{ failures }}\n".into(),
        ),
        ("meta/improve.py", "files = list_files(\".\")\n".into()),
        ("meta/select.py", "parent = best()\n".into()),
        ("memory/notes.md", "generation 0: seed\n".into()),
    ]
}

/// Writes `files` under `dir`, creating directories.
pub fn write_files<S: AsRef<str>>(dir: &Path, files: &[(&str, S)]) {
    for (path, content) in files {
        let host = dir.join(path);
        std::fs::create_dir_all(host.parent().unwrap()).unwrap();
        std::fs::write(host, content.as_ref()).unwrap();
    }
}

/// A fresh temporary directory holding the seed program.
pub fn seed_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), &seed_files());
    dir
}

/// The seed with the manifest text edited by `edit`.
pub fn seed_with_manifest(edit: impl FnOnce(&str) -> String) -> (tempfile::TempDir, String) {
    let dir = seed_dir();
    let manifest = edit(MANIFEST);
    std::fs::write(dir.path().join("hyperagent.toml"), &manifest).unwrap();
    (dir, manifest)
}

/// Replaces the one occurrence of `old` in `text` (panics otherwise, so fixtures stay honest).
pub fn edit(text: &str, old: &str, new: &str) -> String {
    assert_eq!(
        text.matches(old).count(),
        1,
        "fixture edit `{old}` is ambiguous"
    );
    text.replacen(old, new, 1)
}

/// `line:col` (1-based) of the first occurrence of `needle` in `text`.
pub fn pos(text: &str, needle: &str) -> String {
    pos_in(text, "", needle)
}

/// `line:col` of the first `needle` after the first `anchor`.
pub fn pos_in(text: &str, anchor: &str, needle: &str) -> String {
    let start = text
        .find(anchor)
        .unwrap_or_else(|| panic!("`{anchor}` not in fixture"));
    let offset = start
        + text[start..]
            .find(needle)
            .unwrap_or_else(|| panic!("`{needle}` not after `{anchor}`"));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("{line}:{col}")
}

/// Flags any line containing `SYNTAX ERROR`, at the column where it starts.
pub struct FakeChecker;

impl ScriptChecker for FakeChecker {
    fn check(&self, _file: &str, source: &str) -> Result<(), ScriptSyntaxError> {
        for (i, line) in source.lines().enumerate() {
            if let Some(col) = line.find("SYNTAX ERROR") {
                return Err(ScriptSyntaxError {
                    line: i + 1,
                    column: Some(col + 1),
                    message: "invalid syntax".into(),
                });
            }
        }
        Ok(())
    }
}

pub fn load(dir: &Path) -> Result<Program, Vec<ProgramError>> {
    Program::load(dir, &FakeChecker)
}

/// Loads `dir`, expecting failure, and returns the errors as displayed.
pub fn load_errors(dir: &Path) -> Vec<String> {
    match load(dir) {
        Ok(_) => panic!("expected the program at {} to be refused", dir.display()),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}
