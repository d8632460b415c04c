//! End-to-end tests of `program check`, `run`, `trace` and `improve` on real
//! parts: the seed program, the sandbox workers, and the embedded model.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};

use support::{repo, run, text};

fn copy_seed(dir: &Path) -> PathBuf {
    let target = dir.join("program");
    hyperagents_program::copy_program(&repo().join("programs/seed"), &target).unwrap();
    target
}

#[test]
fn program_check_accepts_the_seed_and_names_file_and_line_of_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &[
            "program",
            "check",
            repo().join("programs/seed").to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("ok — program `seed`"));

    let program = copy_seed(dir.path());
    let manifest = std::fs::read_to_string(program.join("hyperagent.toml")).unwrap();
    std::fs::write(
        program.join("hyperagent.toml"),
        manifest.replace(
            "\"reason\", \"extract_answer\"",
            "\"reason\", \"extract_answr\"",
        ),
    )
    .unwrap();
    std::fs::write(program.join("hyper/main.py"), "x = (1 +\n").unwrap();
    let out = run(dir.path(), &["program", "check", "program"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let line = manifest
        .lines()
        .position(|l| l.contains("\"reason\", \"extract_answer\""))
        .unwrap()
        + 1;
    assert!(err.contains(&format!("hyperagent.toml:{line}:")), "{err}");
    assert!(err.contains("unknown skill `extract_answr`"), "{err}");
    assert!(err.contains("hyper/main.py:"), "{err}");
    assert!(err.contains("2 error(s)"), "{err}");
}

#[test]
fn run_trace_and_improve_with_the_embedded_model() {
    let dir = tempfile::tempdir().unwrap();
    let suite = repo().join("examples/arith.jsonl");
    let traces = dir.path().join("traces");
    let out = run(
        dir.path(),
        &[
            "run",
            "--program",
            repo().join("programs/seed").to_str().unwrap(),
            "--suite",
            suite.to_str().unwrap(),
            "--task",
            "capital",
            "--traces",
            traces.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("task capital (seed 0): score"), "{stdout}");
    let path = stdout
        .lines()
        .find_map(|l| l.strip_prefix("trajectory: "))
        .unwrap()
        .to_string();

    let out = run(dir.path(), &["trace", &path]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let tree = text(&out.stdout);
    for part in [
        "Hyper hyper",
        "Task answerer",
        "Skill reason",
        "Llm llm",
        "Action answer",
        "outcome:",
    ] {
        assert!(tree.contains(part), "{part} missing:\n{tree}");
    }

    // The meta agent on the embedded task model (the 1 GB meta model stays out of CI).
    std::fs::write(
        dir.path().join("hyperagents.toml"),
        "[roles]\nmeta = \"smollm2-135m\"\n[sandbox]\nvm_secs_total = 300.0\n",
    )
    .unwrap();
    let child = dir.path().join("child");
    let out = run(
        dir.path(),
        &[
            "improve",
            "--program",
            repo().join("programs/seed").to_str().unwrap(),
            "--failures",
            traces.to_str().unwrap(),
            "--out",
            child.to_str().unwrap(),
        ],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    // A weak model may fail to produce a valid edit; either way the step
    // ends cleanly, and a child that exists validates.
    match out.status.code() {
        Some(0) => {
            assert!(stdout.contains("validation: ok"), "{stdout}");
            assert!(PathBuf::from(format!("{}.diff", child.display())).is_file());
        }
        Some(1) => assert!(
            stderr.contains("changed nothing") || stdout.contains("validation:"),
            "{stdout}\n{stderr}"
        ),
        other => panic!("improve ended with {other:?}:\n{stdout}\n{stderr}"),
    }
    assert!(
        stderr.contains("Llm llm"),
        "the meta agent asked its model:\n{stderr}"
    );
    let entries: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for entry in &entries {
        assert!(
            ["traces", "hyperagents.toml", "child", "child.diff"].contains(&entry.as_str()),
            "unexpected {entry}"
        );
    }
}
