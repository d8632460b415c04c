//! The CLI from a directory outside the repository: `init` writes the
//! built-in seed, and `eval` and `evolve` without `--program` run it (every
//! role bound to a loopback OpenAI-compatible server).

#![allow(clippy::unwrap_used)]

mod support;

use support::{bin, fake_openai, repo, text};

const SUITE: &str = r#"{"id": "add", "input": "What is 2+2?", "expected": 4, "scorer": "numeric"}
"#;

#[test]
fn init_writes_the_seed_and_eval_defaults_to_the_built_in_one() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let cache = dir.path().join("cache");
    std::fs::create_dir_all(&work).unwrap();
    let run = |args: &[&str]| {
        bin()
            .current_dir(&work)
            .env("HYPERAGENTS_CACHE_DIR", &cache)
            .args(args)
            .output()
            .unwrap()
    };

    // init: the repository's seed, file for file; a second init refuses.
    let out = run(&["init", "mine"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let seed = repo().join("programs/seed");
    for entry in [
        "hyperagent.toml",
        "meta/improve.py",
        "skills/choose_action/prompt.md",
    ] {
        assert_eq!(
            std::fs::read(work.join("mine").join(entry)).unwrap(),
            std::fs::read(seed.join(entry)).unwrap(),
            "{entry}"
        );
    }
    let out = run(&["program", "check", "mine"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&["init", "mine"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("already exists"),
        "{}",
        text(&out.stderr)
    );

    // eval with no --program, where no programs/seed exists: the built-in seed.
    let (url, seen) = fake_openai("4");
    std::fs::write(
        work.join("hyperagents.toml"),
        format!(
            "[openai]\nbase_url = \"{url}\"\n[cache]\nmode = \"off\"\n\
             [roles]\ntask = \"openai:fake-model\"\n"
        ),
    )
    .unwrap();
    std::fs::write(work.join("qa.jsonl"), SUITE).unwrap();
    let out = run(&["eval", "--suite", "qa.jsonl", "--episodes", "1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!seen.lock().unwrap().is_empty());
    let written: Vec<_> = std::fs::read_dir(cache.join("programs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        written.len() == 1 && written[0].starts_with("seed-"),
        "{written:?}"
    );
    // evolve with no --program evolves the built-in seed (the meta agent's
    // model is the same loopback server: its "4" is no edit, which the loop
    // records as a failed attempt; the run itself completes).
    std::fs::write(
        work.join("hyperagents.toml"),
        format!(
            "[openai]\nbase_url = \"{url}\"\n[cache]\nmode = \"off\"\n\
             [roles]\ntask = \"openai:fake-model\"\nmeta = \"openai:fake-model\"\n"
        ),
    )
    .unwrap();
    let out = run(&[
        "evolve",
        "--run",
        "anywhere",
        "--suite",
        "qa.jsonl",
        "--generations",
        "1",
        "--children",
        "1",
    ]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let seed_copy = cache.join("runs/anywhere/nodes/seed");
    assert_eq!(
        std::fs::read(seed_copy.join("meta/improve.py")).unwrap(),
        std::fs::read(seed.join("meta/improve.py")).unwrap(),
        "the run's seed node is the built-in seed"
    );
    let out = run(&["status", "anywhere"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // A missing program is named once, as given.
    let out = run(&["eval", "--program", "nowhere", "--suite", "qa.jsonl"]);
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(said.contains("nowhere: cannot read"), "{said}");
    assert!(!said.contains("nowhere/nowhere"), "{said}");
}
