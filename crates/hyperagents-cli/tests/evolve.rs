//! `hyperagents evolve` and `status` end to end with the embedded model
//! serving every role (task, judge and meta): mechanics, not improvement.

#![allow(clippy::unwrap_used)]

mod support;

use support::{repo, run_with, text};

const SUITE: &str = r#"{"id": "add", "input": "What is 2+2?", "expected": 4, "scorer": "numeric"}
{"id": "sub", "input": "What is 10 minus 3?", "expected": 7, "scorer": "numeric"}
"#;

#[test]
fn a_short_run_on_the_embedded_model_makes_and_resumes_generations() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("qa.jsonl");
    std::fs::write(&suite, SUITE).unwrap();
    let store = dir.path().join("results.sqlite");
    let run_dir = dir.path().join("run");
    // The seed with one model call per meta step (its policy allows 1-4
    // candidates and 1-3 tries each): this test is about the loop on the
    // real model, and four calls of over a thousand reply tokens per step
    // took it past 16 minutes on a slower 2-core machine.
    let seed = dir.path().join("seed");
    hyperagents_program::copy_program(&repo().join("programs/seed"), &seed).unwrap();
    let policy_path = seed.join("meta/policy.json");
    let mut policy: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&policy_path).unwrap()).unwrap();
    policy["model_candidates"] = 1.into();
    policy["attempts"] = 1.into();
    std::fs::write(&policy_path, policy.to_string()).unwrap();
    let args = [
        "evolve",
        "--run",
        "e2e",
        "--program",
        seed.to_str().unwrap(),
        "--suite",
        suite.to_str().unwrap(),
        "--generations",
        "2",
        "--children",
        "2",
        "--stage1",
        "1",
        "--store",
        store.to_str().unwrap(),
        "--dir",
        run_dir.to_str().unwrap(),
    ];
    let vars = [("HYPERAGENTS_ROLES__META", "smollm2-135m")];
    let out = run_with(dir.path(), &args, &vars);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with(['1', '2']))
        .collect();
    assert_eq!(rows.len(), 2, "one row per generation: {stdout}");

    // Four meta attempts, each a meta step that called the embedded model.
    let mut attempts = 0;
    for generation in 1..=2 {
        for child in 0..2 {
            let trace = std::fs::read_to_string(
                run_dir.join(format!("nodes/g{generation}c{child}.meta.txt")),
            )
            .unwrap();
            assert!(trace.contains("Llm llm"), "a model call in:\n{trace}");
            attempts += 1;
        }
    }
    assert_eq!(attempts, 4);

    let out = run_with(
        dir.path(),
        &["status", "e2e", "--store", store.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status = text(&out.stdout);
    assert!(status.contains("hyper mode, finished"), "{status}");
    for node in ["seed", "g1c0", "g1c1", "g2c0", "g2c1"] {
        assert!(
            status.lines().any(|l| l.starts_with(node)),
            "{node} in {status}"
        );
    }
    assert!(status.contains("event"), "{status}");
    // `--best` names the best node's program directory, ready for `eval`.
    let out = run_with(
        dir.path(),
        &[
            "status",
            "e2e",
            "--best",
            "--store",
            store.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let best = std::path::PathBuf::from(text(&out.stdout).trim());
    assert!(
        best.starts_with(run_dir.join("nodes")),
        "{}",
        best.display()
    );
    assert!(best.join("hyperagent.toml").is_file(), "{}", best.display());

    // Resuming a finished run by name, from another directory, repeats
    // nothing and reports the same table.
    let elsewhere = tempfile::tempdir().unwrap();
    let again = run_with(
        elsewhere.path(),
        &["resume", "e2e", "--store", store.to_str().unwrap()],
        &vars,
    );
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(text(&again.stdout), stdout);

    // The report: markdown with its tables, and the plots it links.
    let out = run_with(
        dir.path(),
        &["report", "e2e", "--store", store.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = std::fs::read_to_string(run_dir.join("report/report.md")).unwrap();
    for node in ["g1c0", "g1c1", "g2c0", "g2c1"] {
        assert!(report.contains(node), "{node} in {report}");
    }
    let lineage = std::fs::read_to_string(run_dir.join("report/lineage.svg")).unwrap();
    assert!(
        lineage.starts_with("<svg") || lineage.starts_with("<?xml"),
        "{lineage}"
    );
    assert!(lineage.contains("g2c1"), "{lineage}");
    assert!(
        text(&out.stdout).contains("report.md"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn resume_and_report_name_a_missing_run() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("results.sqlite");
    for command in ["resume", "report"] {
        let out = run_with(
            dir.path(),
            &[command, "nowhere", "--store", store.to_str().unwrap()],
            &[],
        );
        assert!(!out.status.success(), "{command}");
        assert!(
            text(&out.stderr).contains("nowhere"),
            "{command}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn evolve_refuses_unknown_modes_and_selections() {
    let dir = tempfile::tempdir().unwrap();
    let seed = repo().join("programs/seed");
    let suite = repo().join("examples/arith.jsonl");
    let base = [
        "evolve",
        "--run",
        "x",
        "--program",
        seed.to_str().unwrap(),
        "--suite",
        suite.to_str().unwrap(),
    ];
    let mut args: Vec<&str> = base.to_vec();
    args.extend(["--mode", "sideways"]);
    let out = run_with(dir.path(), &args, &[]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("unknown mode"),
        "{}",
        text(&out.stderr)
    );
    let mut args: Vec<&str> = base.to_vec();
    args.extend(["--selection", "{\"kind\":\"telepathy\"}"]);
    let out = run_with(dir.path(), &args, &[]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--selection"),
        "{}",
        text(&out.stderr)
    );
}
