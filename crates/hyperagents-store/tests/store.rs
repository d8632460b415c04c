//! The results store on real SQLite files: reopening, harmless repeats,
//! cache lookups by every key field, concurrent writers, reports and the
//! JSONL export.

#![allow(clippy::unwrap_used)] // Test helpers panic on setup failures by design.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use hyperagents_store::{
    EvalKey, EvalResult, EvalRunId, EvalStatus, NewEvalRun, Recorded, ResultsStore, SCHEMA_VERSION,
    StoreError, canonical_sha256,
};

fn key(task: &str, seed: u64) -> EvalKey {
    EvalKey {
        program_hash: "prog-a".into(),
        suite: "jsonl:qa".into(),
        suite_version: "v1".into(),
        task: task.into(),
        seed,
        models: BTreeMap::from([
            ("task".into(), "embedded/smollm2-135m@f00d".into()),
            ("meta".into(), "embedded/qwen@beef".into()),
        ]),
        sampling_hash: canonical_sha256(&serde_json::json!({"temperature": 0.7})),
        host_api_version: 1,
    }
}

fn ok(success: bool) -> EvalResult {
    EvalResult {
        status: EvalStatus::Ok,
        success,
        score: if success { 1.0 } else { 0.0 },
        reason: if success { "exact match" } else { "differs" }.into(),
        tokens_in: 100,
        tokens_out: 20,
        cost: 0.5,
        duration_ms: 1000,
        trajectory: Some(PathBuf::from("traces/prog-a/t-s1.jsonl.gz")),
        finished_at_ms: 1_700_000_000_000,
    }
}

fn failed(status: EvalStatus, reason: &str) -> EvalResult {
    EvalResult {
        status,
        success: false,
        score: 0.0,
        reason: reason.into(),
        tokens_in: 0,
        tokens_out: 0,
        cost: 0.0,
        duration_ms: 5,
        trajectory: None,
        finished_at_ms: 1_700_000_000_001,
    }
}

fn new_run(store: &ResultsStore) -> EvalRunId {
    store
        .create_run(&NewEvalRun {
            program_hash: "prog-a".into(),
            suite: "jsonl:qa".into(),
            split: "train".into(),
            config: serde_json::json!({"seeds": 2, "stage": "full"}),
        })
        .unwrap()
}

#[test]
fn opens_creates_and_reopens_with_data_intact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/results.sqlite");
    let store = ResultsStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let run = new_run(&store);
    store.record_in_run(run, &key("t1", 1), &ok(true)).unwrap();
    drop(store);

    let store = ResultsStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(store.run_ids().unwrap(), vec![run]);
    let stored = store.run(run).unwrap().unwrap();
    assert_eq!(stored.split, "train");
    assert_eq!(stored.config["seeds"], 2);
    assert!(stored.created_at_ms > 0);
    let record = store.lookup(&key("t1", 1)).unwrap().unwrap();
    assert_eq!(record.result, ok(true));
    assert_eq!(record.key, key("t1", 1));
    let journal: String = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
}

#[test]
fn a_repeated_insert_is_harmless_and_errors_are_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let store = ResultsStore::open(dir.path().join("results.sqlite")).unwrap();
    let run = new_run(&store);
    let k = key("t1", 1);
    assert_eq!(
        store.record_in_run(run, &k, &ok(true)).unwrap(),
        Recorded::Inserted
    );
    // The same evaluation again (a redelivered job): nothing changes.
    assert_eq!(
        store.record_in_run(run, &k, &ok(false)).unwrap(),
        Recorded::AlreadyPresent
    );
    assert!(store.lookup(&k).unwrap().unwrap().result.success);
    assert_eq!(store.run_evaluations(run).unwrap().len(), 1);
    assert_eq!(store.run_summary(run).unwrap().evaluations, 1);

    // An error is not final: the retry's result replaces it.
    let k2 = key("t2", 1);
    store
        .record_in_run(run, &k2, &failed(EvalStatus::Error, "worker died"))
        .unwrap();
    assert!(!store.lookup(&k2).unwrap().unwrap().result.status.is_final());
    assert_eq!(
        store.record_in_run(run, &k2, &ok(true)).unwrap(),
        Recorded::ReplacedError
    );
    assert_eq!(
        store.lookup(&k2).unwrap().unwrap().result.status,
        EvalStatus::Ok
    );
    assert_eq!(store.run_evaluations(run).unwrap().len(), 2);
}

#[test]
fn lookups_hit_only_the_exact_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = ResultsStore::open(dir.path().join("results.sqlite")).unwrap();
    let base = key("t1", 1);
    assert_eq!(store.lookup(&base).unwrap(), None, "miss before storing");
    store.record(&base, &ok(true)).unwrap();
    assert!(store.lookup(&base).unwrap().is_some(), "hit after storing");
    assert_eq!(
        store.get(&base.hash()).unwrap().unwrap().key_hash,
        base.hash()
    );

    let mut other_models = base.models.clone();
    other_models.insert("task".into(), "embedded/smollm2-135m@0bad".into());
    let mut extra_role = base.models.clone();
    extra_role.insert("judge".into(), "openai/gpt@x".into());
    let misses: Vec<(&str, EvalKey)> = vec![
        (
            "program_hash",
            EvalKey {
                program_hash: "prog-b".into(),
                ..base.clone()
            },
        ),
        (
            "suite",
            EvalKey {
                suite: "jsonl:other".into(),
                ..base.clone()
            },
        ),
        (
            "suite_version",
            EvalKey {
                suite_version: "v2".into(),
                ..base.clone()
            },
        ),
        ("task", key("t2", 1)),
        ("seed", key("t1", 2)),
        (
            "model fingerprint",
            EvalKey {
                models: other_models,
                ..base.clone()
            },
        ),
        (
            "model roles",
            EvalKey {
                models: extra_role,
                ..base.clone()
            },
        ),
        (
            "sampling_hash",
            EvalKey {
                sampling_hash: canonical_sha256(&serde_json::json!({"temperature": 0.0})),
                ..base.clone()
            },
        ),
        (
            "host_api_version",
            EvalKey {
                host_api_version: 2,
                ..base.clone()
            },
        ),
    ];
    for (field, miss) in misses {
        assert_eq!(store.lookup(&miss).unwrap(), None, "{field} must miss");
    }
    // Large seeds survive SQLite's signed integers.
    let big = key("t1", u64::MAX);
    store.record(&big, &ok(false)).unwrap();
    assert_eq!(store.lookup(&big).unwrap().unwrap().key.seed, u64::MAX);
}

#[test]
fn cached_evaluations_join_a_later_run() {
    let dir = tempfile::tempdir().unwrap();
    let store = ResultsStore::open(dir.path().join("results.sqlite")).unwrap();
    let first = new_run(&store);
    store
        .record_in_run(first, &key("t1", 1), &ok(true))
        .unwrap();
    let second = new_run(&store);
    let hit = store.lookup(&key("t1", 1)).unwrap().unwrap();
    store.link_cached(second, &hit.key_hash).unwrap();
    store.link_cached(second, &hit.key_hash).unwrap();
    store
        .record_in_run(second, &key("t2", 1), &ok(false))
        .unwrap();
    let summary = store.run_summary(second).unwrap();
    assert_eq!((summary.evaluations, summary.reused), (2, 1));
    assert_eq!(store.run_summary(first).unwrap().reused, 0);

    let unknown = key("never", 0).hash();
    let err = store.link_cached(second, &unknown).unwrap_err();
    assert!(matches!(err, StoreError::UnknownEvaluation { .. }), "{err}");
    let err = store
        .record_in_run(EvalRunId(999), &key("t3", 1), &ok(true))
        .unwrap_err();
    assert!(
        matches!(err, StoreError::UnknownRun { run: 999, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("results.sqlite"), "{err}");
    assert_eq!(
        store.lookup(&key("t3", 1)).unwrap(),
        None,
        "a refused write leaves nothing behind"
    );
}

#[test]
fn invalid_results_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = ResultsStore::open(dir.path().join("results.sqlite")).unwrap();
    let bad = [
        EvalResult {
            score: f64::NAN,
            ..ok(true)
        },
        EvalResult {
            cost: -1.0,
            ..ok(true)
        },
        EvalResult {
            status: EvalStatus::Unsupported,
            ..ok(true)
        },
    ];
    for result in bad {
        let err = store.record(&key("t1", 1), &result).unwrap_err();
        assert!(matches!(err, StoreError::InvalidInput { .. }), "{err}");
    }
    assert_eq!(store.lookup(&key("t1", 1)).unwrap(), None);
}

#[test]
fn two_connections_write_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.sqlite");
    let run = new_run(&ResultsStore::open(&path).unwrap());
    let writers: Vec<_> = (0..2u64)
        .map(|writer| {
            let path = path.clone();
            std::thread::spawn(move || {
                // Each thread opens its own connection, as separate worker
                // processes would.
                let store = ResultsStore::open(&path).unwrap();
                let mut inserted = 0;
                for i in 0..60u64 {
                    // Half the keys are shared: both writers race on them.
                    let seed = if i % 2 == 0 {
                        i
                    } else {
                        1000 * (writer + 1) + i
                    };
                    let outcome = store
                        .record_in_run(run, &key("t", seed), &ok(i % 3 == 0))
                        .unwrap();
                    if outcome == Recorded::Inserted {
                        inserted += 1;
                    }
                }
                inserted
            })
        })
        .collect();
    let inserted: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    let store = ResultsStore::open(&path).unwrap();
    let summary = store.run_summary(run).unwrap();
    // 30 shared + 2 × 30 own keys, each stored exactly once.
    assert_eq!(summary.evaluations, 90);
    assert_eq!(inserted, 90, "every key was inserted by exactly one writer");
}

#[test]
fn reports_aggregate_per_task_and_per_run() {
    let dir = tempfile::tempdir().unwrap();
    let store = ResultsStore::open(dir.path().join("results.sqlite")).unwrap();
    let run = new_run(&store);
    for (task, seed, result) in [
        ("add", 1, ok(true)),
        ("add", 2, ok(true)),
        ("add", 3, ok(false)),
        ("capital", 1, ok(false)),
        ("capital", 2, failed(EvalStatus::Error, "timeout")),
        (
            "site",
            1,
            failed(EvalStatus::Unsupported, "no gitlab configured"),
        ),
    ] {
        store.record_in_run(run, &key(task, seed), &result).unwrap();
    }
    let tasks = store.task_stats(run).unwrap();
    let by_task: Vec<(&str, u64, u64, u64, u64)> = tasks
        .iter()
        .map(|t| {
            (
                t.task.as_str(),
                t.successes,
                t.episodes,
                t.errors,
                t.unsupported,
            )
        })
        .collect();
    assert_eq!(
        by_task,
        vec![
            ("add", 2, 3, 0, 0),
            ("capital", 0, 1, 1, 0),
            ("site", 0, 0, 0, 1)
        ]
    );
    assert_eq!(tasks[0].success_rate(), Some(2.0 / 3.0));
    assert_eq!(tasks[2].success_rate(), None, "nothing scored");
    assert!(tasks[0].interval_95().unwrap().low < 2.0 / 3.0);

    let summary = store.run_summary(run).unwrap();
    assert_eq!(summary.evaluations, 6);
    assert_eq!(
        (
            summary.episodes,
            summary.successes,
            summary.errors,
            summary.unsupported
        ),
        (4, 2, 1, 1)
    );
    assert_eq!(summary.success_rate(), Some(0.5));
    assert_eq!(summary.mean_score, Some(0.5));
    assert_eq!((summary.tokens_in, summary.tokens_out), (400, 80));
    assert!((summary.cost - 2.0).abs() < 1e-9);
    assert_eq!(summary.duration_ms, 4 * 1000 + 2 * 5);
    let interval = summary.interval_95().unwrap();
    assert!((interval.low - 0.1500).abs() < 1e-4, "{interval:?}");
    assert!((interval.high - 0.8500).abs() < 1e-4, "{interval:?}");

    let empty = new_run(&store);
    let summary = store.run_summary(empty).unwrap();
    assert_eq!((summary.evaluations, summary.success_rate()), (0, None));
    assert!(store.task_stats(empty).unwrap().is_empty());
    assert!(matches!(
        store.run_summary(EvalRunId(42)),
        Err(StoreError::UnknownRun { run: 42, .. })
    ));
}

#[test]
fn export_appends_one_line_per_evaluation() {
    let dir = tempfile::tempdir().unwrap();
    let store = ResultsStore::open(dir.path().join("results.sqlite")).unwrap();
    let run = new_run(&store);
    store.record_in_run(run, &key("b", 1), &ok(true)).unwrap();
    store
        .record_in_run(
            run,
            &key("a", 1),
            &failed(EvalStatus::Unsupported, "no site"),
        )
        .unwrap();
    let other = new_run(&store);
    store.record_in_run(other, &key("c", 1), &ok(true)).unwrap();

    let path = dir.path().join("exports/run.jsonl");
    assert_eq!(store.export_jsonl(run, &path).unwrap(), 2);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["type"], "evaluation");
    assert_eq!(lines[0]["key"]["task"], "a", "ordered by task");
    assert_eq!(lines[0]["status"], "unsupported");
    assert_eq!(lines[0]["trajectory"], serde_json::Value::Null);
    assert_eq!(lines[1]["key"]["task"], "b");
    assert_eq!(lines[1]["success"], true);
    assert_eq!(
        lines[1]["key"]["models"]["task"],
        "embedded/smollm2-135m@f00d"
    );
    assert_eq!(lines[1]["key_hash"], key("b", 1).hash().as_str());
    assert_eq!(lines[1]["reused"], false);
    assert_eq!(lines[1]["run"], run.0);

    // Append-only: a second export adds to the file, keeping what was there.
    assert_eq!(store.export_jsonl(other, &path).unwrap(), 1);
    let appended = std::fs::read_to_string(&path).unwrap();
    assert_eq!(appended.lines().count(), 3);
    assert!(appended.starts_with(&text));
    assert!(appended.lines().last().unwrap().contains("\"task\":\"c\""));

    let err = store.export_jsonl(EvalRunId(77), &path).unwrap_err();
    assert!(
        matches!(err, StoreError::UnknownRun { run: 77, .. }),
        "{err}"
    );
}

#[test]
fn a_full_disk_is_a_clear_error_and_the_store_still_opens_with_what_it_held() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.sqlite");
    let store = ResultsStore::open(&path).unwrap();
    let run = new_run(&store);
    let in_use = store.page_count().unwrap();
    // A few pages more than the file holds: room for some results, not all.
    assert_eq!(store.limit_pages(in_use + 4).unwrap(), in_use + 4);
    let mut stored = 0u64;
    let mut full = None;
    for seed in 0..10_000 {
        let mut result = ok(seed % 2 == 0);
        // Long reasons fill pages quickly.
        result.reason = format!("{seed}: {}", "x".repeat(2_000));
        match store.record_in_run(run, &key("t", seed), &result) {
            Ok(_) => stored += 1,
            Err(e) => {
                full = Some(e);
                break;
            }
        }
    }
    let error = full.expect("the size limit was never reached");
    assert!(matches!(error, StoreError::Full { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("results.sqlite") && message.contains("is full"),
        "{message}"
    );
    assert!(stored > 0, "nothing fit under the limit");
    drop(store);

    // Reopened without the limit: every result stored before the error is
    // there, the one that failed is not, and writing goes on.
    let store = ResultsStore::open(&path).unwrap();
    for seed in 0..stored {
        assert!(
            store.lookup(&key("t", seed)).unwrap().is_some(),
            "seed {seed}"
        );
    }
    assert!(store.lookup(&key("t", stored)).unwrap().is_none());
    store
        .record_in_run(run, &key("t", stored), &ok(true))
        .unwrap();
}

#[test]
fn many_openers_of_a_new_store_at_once_all_get_it() {
    // Two `evolve` processes started together on one new store: the first
    // creates it, and none may fail (switching a new file to WAL answered
    // "database is locked" at once, whatever the busy timeout).
    common::all_open_at_once("results.sqlite", |path| {
        hyperagents_store::ResultsStore::open(path).map(|_| ())
    });
}
