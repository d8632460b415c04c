//! The evolution archive on real SQLite files: runs that resume, nodes
//! stored once with their lineage, stage scores through linked evaluation
//! runs, the event log, migration from a version-1 file and concurrent
//! writers.

#![allow(clippy::unwrap_used)] // Test helpers panic on setup failures by design.

use std::collections::BTreeMap;

use hyperagents_store::{
    DiffKind, EvalKey, EvalResult, EvalRunId, EvalStatus, NewEvalRun, NewEvolutionRun, NewNode,
    NodeRecord, NodeStatus, Recorded, ResultsStore, RunMode, RunStatus, SCHEMA_VERSION, StoreError,
};
use serde_json::json;

fn new_run(id: &str) -> NewEvolutionRun {
    NewEvolutionRun {
        id: id.into(),
        config: json!({"generations": 10, "parents": {"k": 3}}),
        mode: RunMode::Hyper,
        seed: u64::MAX - 7,
    }
}

fn node(run: &str, id: &str, parent: Option<&str>, generation: u64) -> NewNode {
    NewNode {
        run_id: run.into(),
        node_id: id.into(),
        program_hash: format!("prog-{id}"),
        parent_id: parent.map(Into::into),
        generation,
        label: format!("node {id}"),
        diff: if parent.is_some() {
            "--- a/agent.py\n+++ b/agent.py\n@@ -1 +1 @@\n-old\n+new\n".into()
        } else {
            String::new()
        },
        diff_kinds: if parent.is_some() {
            vec![DiffKind::Prompt, DiffKind::Code]
        } else {
            Vec::new()
        },
        status: NodeStatus::Valid,
        validation_errors: json!([]),
        meta_tokens: 1234,
    }
}

fn open(dir: &tempfile::TempDir) -> ResultsStore {
    ResultsStore::open(dir.path().join("results.sqlite")).unwrap()
}

fn key(program: &str, task: &str, seed: u64) -> EvalKey {
    EvalKey {
        program_hash: program.into(),
        suite: "jsonl:qa".into(),
        suite_version: "v1".into(),
        task: task.into(),
        seed,
        models: BTreeMap::from([("task".into(), "embedded/smollm2-135m@f00d".into())]),
        sampling_hash: "sampling".into(),
        host_api_version: 1,
    }
}

fn scored(success: bool) -> EvalResult {
    EvalResult {
        status: EvalStatus::Ok,
        success,
        score: if success { 1.0 } else { 0.0 },
        reason: "scored".into(),
        tokens_in: 10,
        tokens_out: 2,
        cost: 0.25,
        duration_ms: 100,
        trajectory: None,
        finished_at_ms: 1_700_000_000_000,
    }
}

fn eval_run(store: &ResultsStore, program: &str, split: &str) -> EvalRunId {
    store
        .create_run(&NewEvalRun {
            program_hash: program.into(),
            suite: "jsonl:qa".into(),
            split: split.into(),
            config: json!({}),
        })
        .unwrap()
}

fn assert_same_node(stored: &NodeRecord, given: &NewNode) {
    assert_eq!(stored.run_id, given.run_id);
    assert_eq!(stored.node_id, given.node_id);
    assert_eq!(stored.program_hash, given.program_hash);
    assert_eq!(stored.parent_id, given.parent_id);
    assert_eq!(stored.generation, given.generation);
    assert_eq!(stored.label, given.label);
    assert_eq!(stored.diff, given.diff);
    assert_eq!(stored.diff_kinds, given.diff_kinds);
    assert_eq!(stored.status, given.status);
    assert_eq!(stored.validation_errors, given.validation_errors);
    assert_eq!(stored.meta_tokens, given.meta_tokens);
    assert!(stored.created_at_ms > 0);
}

#[test]
fn runs_are_created_once_and_their_state_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    assert_eq!(store.evolution_run("r1").unwrap(), None);
    store.create_evolution_run(&new_run("r1")).unwrap();
    let created = store.evolution_run("r1").unwrap().unwrap();
    assert_eq!(created.status, RunStatus::Running);
    assert_eq!(created.state, serde_json::Value::Null);
    assert_eq!(created.mode, RunMode::Hyper);
    assert_eq!(created.seed, u64::MAX - 7);

    // A resume with the same settings (keys in another order) is harmless.
    let mut resumed = new_run("r1");
    resumed.config = json!({"parents": {"k": 3}, "generations": 10});
    store.create_evolution_run(&resumed).unwrap();

    let state = json!({"rng": [1, 2, 3], "budget_spent": 12.5, "generation": 4});
    store
        .set_run_state("r1", RunStatus::Stopped, &state)
        .unwrap();
    drop(store);

    let store = open(&dir);
    let reopened = store.evolution_run("r1").unwrap().unwrap();
    assert_eq!(reopened.status, RunStatus::Stopped);
    assert_eq!(reopened.state, state);
    assert_eq!(reopened.config, created.config);
    assert_eq!(reopened.created_at_ms, created.created_at_ms);

    for changed in [
        NewEvolutionRun {
            config: json!({"generations": 11, "parents": {"k": 3}}),
            ..new_run("r1")
        },
        NewEvolutionRun {
            mode: RunMode::FixedMeta,
            ..new_run("r1")
        },
        NewEvolutionRun {
            seed: 1,
            ..new_run("r1")
        },
    ] {
        let err = store.create_evolution_run(&changed).unwrap_err();
        assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
        assert!(err.to_string().contains("results.sqlite"), "{err}");
    }
    // The refused resumes changed nothing.
    assert_eq!(store.evolution_run("r1").unwrap().unwrap(), reopened);

    let err = store
        .set_run_state("missing", RunStatus::Finished, &json!({}))
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::UnknownEvolutionRun { run, .. } if run == "missing"),
        "{err}"
    );
}

#[test]
fn nodes_are_stored_once_and_conflicts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.create_evolution_run(&new_run("r1")).unwrap();
    let seed = node("r1", "n0", None, 0);
    assert_eq!(store.insert_node(&seed).unwrap(), Recorded::Inserted);
    assert_eq!(store.insert_node(&seed).unwrap(), Recorded::AlreadyPresent);
    let mut child = node("r1", "n1", Some("n0"), 1);
    child.status = NodeStatus::Invalid;
    child.validation_errors = json!([{"file": "agent.py", "line": 3, "message": "syntax"}]);
    assert_eq!(store.insert_node(&child).unwrap(), Recorded::Inserted);
    assert_same_node(&store.node("r1", "n1").unwrap().unwrap(), &child);
    assert_same_node(&store.node("r1", "n0").unwrap().unwrap(), &seed);
    assert_eq!(store.node("r1", "n9").unwrap(), None);

    let mut conflicting = child.clone();
    conflicting.diff_kinds = vec![DiffKind::Meta];
    conflicting.meta_tokens = 1;
    let err = store.insert_node(&conflicting).unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("diff kinds") && message.contains("meta tokens"));
    assert!(!message.contains("label"), "only what differs: {message}");
    assert_same_node(&store.node("r1", "n1").unwrap().unwrap(), &child);

    // An orphan or a node of an unknown run is refused, not stored.
    let err = store
        .insert_node(&node("r1", "n2", Some("ghost"), 1))
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::UnknownNode { node, .. } if node == "ghost"),
        "{err}"
    );
    let err = store.insert_node(&node("r2", "n0", None, 0)).unwrap_err();
    assert!(
        matches!(err, StoreError::UnknownEvolutionRun { .. }),
        "{err}"
    );
    assert_eq!(store.nodes("r1").unwrap().len(), 2);
}

#[test]
fn nodes_list_by_generation_and_count_children() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.create_evolution_run(&new_run("r1")).unwrap();
    store.create_evolution_run(&new_run("other")).unwrap();
    store.insert_node(&node("r1", "seed", None, 0)).unwrap();
    store
        .insert_node(&node("r1", "a", Some("seed"), 1))
        .unwrap();
    // Stored out of generation order: listed by generation anyway.
    store.insert_node(&node("r1", "c", Some("a"), 2)).unwrap();
    store
        .insert_node(&node("r1", "b", Some("seed"), 1))
        .unwrap();
    store.insert_node(&node("other", "seed", None, 0)).unwrap();
    store
        .insert_node(&node("other", "x", Some("seed"), 1))
        .unwrap();

    let ids: Vec<String> = store
        .nodes("r1")
        .unwrap()
        .into_iter()
        .map(|n| n.node_id)
        .collect();
    assert_eq!(ids, ["seed", "a", "b", "c"]);
    assert_eq!(store.children_count("r1", "seed").unwrap(), 2);
    assert_eq!(store.children_count("r1", "a").unwrap(), 1);
    assert_eq!(store.children_count("r1", "c").unwrap(), 0);
    assert_eq!(store.children_count("other", "seed").unwrap(), 1);
    assert!(store.nodes("nope").unwrap().is_empty());
}

#[test]
fn stage_scores_come_from_linked_evaluation_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.create_evolution_run(&new_run("r1")).unwrap();
    store.insert_node(&node("r1", "n0", None, 0)).unwrap();
    store.insert_node(&node("r1", "n1", Some("n0"), 1)).unwrap();

    let stage1 = eval_run(&store, "prog-n1", "train");
    store
        .record_in_run(stage1, &key("prog-n1", "t1", 1), &scored(true))
        .unwrap();
    store
        .record_in_run(stage1, &key("prog-n1", "t2", 1), &scored(false))
        .unwrap();
    let full = eval_run(&store, "prog-n1", "train");
    for seed in 1..=3 {
        store
            .record_in_run(full, &key("prog-n1", "t1", seed), &scored(true))
            .unwrap();
    }
    store
        .record_in_run(
            full,
            &key("prog-n1", "t2", 2),
            &EvalResult {
                status: EvalStatus::Unsupported,
                success: false,
                score: 0.0,
                reason: "needs a site".into(),
                ..scored(false)
            },
        )
        .unwrap();

    assert_eq!(
        store.node_stage_summary("r1", "n1", "stage1").unwrap(),
        None
    );
    assert!(
        store
            .node_task_stats("r1", "n1", "stage1")
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .link_node_evaluation("r1", "n1", "stage1", stage1)
            .unwrap(),
        Recorded::Inserted
    );
    assert_eq!(
        store
            .link_node_evaluation("r1", "n1", "stage1", stage1)
            .unwrap(),
        Recorded::AlreadyPresent
    );
    store
        .link_node_evaluation("r1", "n1", "full", full)
        .unwrap();

    let s1 = store
        .node_stage_summary("r1", "n1", "stage1")
        .unwrap()
        .unwrap();
    assert_eq!((s1.run, s1.episodes, s1.successes), (stage1, 2, 1));
    let f = store
        .node_stage_summary("r1", "n1", "full")
        .unwrap()
        .unwrap();
    assert_eq!(f.run, full);
    assert_eq!((f.episodes, f.successes, f.unsupported), (3, 3, 1));
    // The first full-stage evaluation was reused from stage 1.
    assert_eq!(f.reused, 1);
    let tasks = store.node_task_stats("r1", "n1", "full").unwrap();
    assert_eq!(tasks.len(), 2);
    assert_eq!((tasks[0].task.as_str(), tasks[0].successes), ("t1", 3));
    assert_eq!((tasks[1].task.as_str(), tasks[1].unsupported), ("t2", 1));
    assert_eq!(store.node_eval_run("r1", "n1", "full").unwrap(), Some(full));
    // The whole archive at once says what each linked stage says alone; a
    // stage linked to an evaluation with no results yet is there, empty.
    let empty = eval_run(&store, "prog-n0", "train");
    store
        .link_node_evaluation("r1", "n0", "full", empty)
        .unwrap();
    let archive = store.archive_task_stats("r1").unwrap();
    assert_eq!(archive.len(), 3, "{archive:?}");
    for (node, stage) in [("n1", "stage1"), ("n1", "full"), ("n0", "full")] {
        assert_eq!(
            archive[&(node.to_string(), stage.to_string())],
            store.node_task_stats("r1", node, stage).unwrap(),
            "{node} {stage}"
        );
    }
    assert!(archive[&("n0".to_string(), "full".to_string())].is_empty());
    assert!(store.archive_task_stats("nope").unwrap().is_empty());

    // A second evaluation run for a linked stage, an evaluation of another
    // program, an unknown node or evaluation run: all refused.
    let err = store
        .link_node_evaluation("r1", "n1", "stage1", full)
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    let err = store
        .link_node_evaluation("r1", "n0", "stage1", stage1)
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput { .. }), "{err}");
    let err = store
        .link_node_evaluation("r1", "n7", "stage1", stage1)
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownNode { .. }), "{err}");
    let err = store
        .link_node_evaluation("r1", "n1", "test", EvalRunId(999))
        .unwrap_err();
    assert!(
        matches!(err, StoreError::UnknownRun { run: 999, .. }),
        "{err}"
    );
    assert_eq!(store.node_stage_summary("r1", "n1", "test").unwrap(), None);
}

#[test]
fn events_are_ordered_and_read_after_a_sequence_number() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.create_evolution_run(&new_run("r1")).unwrap();
    store.create_evolution_run(&new_run("r2")).unwrap();
    let first = store
        .append_event("r1", "generation_started", &json!({"generation": 1}))
        .unwrap();
    let other = store.append_event("r2", "started", &json!(null)).unwrap();
    let second = store
        .append_event("r1", "node_added", &json!({"node": "n1"}))
        .unwrap();
    let third = store
        .append_event("r1", "node_scored", &json!({"node": "n1", "score": 0.5}))
        .unwrap();
    assert!(first < other && other < second && second < third);

    let all = store.events("r1", 0).unwrap();
    let kinds: Vec<&str> = all.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["generation_started", "node_added", "node_scored"]);
    assert_eq!(all[2].payload, json!({"node": "n1", "score": 0.5}));
    assert!(all.iter().all(|e| e.run_id == "r1" && e.at_ms > 0));

    let later = store.events("r1", first).unwrap();
    assert_eq!(
        later.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [second, third]
    );
    assert!(store.events("r1", third).unwrap().is_empty());
    assert_eq!(store.events("r2", 0).unwrap().len(), 1);
    // The latest event of a kind, for that run only.
    store
        .append_event("r1", "node_added", &json!({"node": "n2"}))
        .unwrap();
    let last = store.last_event("r1", "node_added").unwrap().unwrap();
    assert_eq!(last.payload, json!({"node": "n2"}));
    assert_eq!(
        (last.run_id.as_str(), last.kind.as_str()),
        ("r1", "node_added")
    );
    assert!(store.last_event("r2", "node_added").unwrap().is_none());
    let err = store.append_event("r3", "x", &json!({})).unwrap_err();
    assert!(
        matches!(err, StoreError::UnknownEvolutionRun { .. }),
        "{err}"
    );
}

#[test]
fn a_version_1_file_is_migrated_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.sqlite");
    let store = ResultsStore::open(&path).unwrap();
    let run = eval_run(&store, "prog-a", "train");
    store
        .record_in_run(run, &key("prog-a", "t1", 1), &scored(true))
        .unwrap();
    drop(store);
    // Take the file back to version 1: the tables of migrations 2 and 3 gone.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "DROP TABLE node_evaluations; DROP TABLE events; DROP TABLE nodes; DROP TABLE runs;
         DROP TABLE ledger_roles; DROP TABLE ledgers;
         PRAGMA user_version = 1;",
    )
    .unwrap();
    let tables: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('runs', 'nodes', 'events')",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0);
    drop(conn);

    let store = ResultsStore::open(&path).unwrap();
    assert_eq!(SCHEMA_VERSION, 3);
    assert_eq!(store.schema_version().unwrap(), 3);
    assert_eq!(store.run_summary(run).unwrap().successes, 1);
    store.create_evolution_run(&new_run("r1")).unwrap();
    store.insert_node(&node("r1", "n0", None, 0)).unwrap();
    store.append_event("r1", "started", &json!({})).unwrap();
    assert_eq!(store.nodes("r1").unwrap().len(), 1);
    store
        .save_ledger("evolution:r1", &hyperagents_store::StoredLedger::default())
        .unwrap();
}

#[test]
fn two_connections_write_nodes_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.sqlite");
    let store = ResultsStore::open(&path).unwrap();
    store.create_evolution_run(&new_run("r1")).unwrap();
    store.insert_node(&node("r1", "seed", None, 0)).unwrap();
    drop(store);
    let writers: Vec<_> = (0..2)
        .map(|writer| {
            let path = path.clone();
            std::thread::spawn(move || {
                // Each thread opens its own connection, as separate
                // processes would.
                let store = ResultsStore::open(&path).unwrap();
                let mut inserted = 0;
                for i in 0..40 {
                    // Even nodes are shared: both writers race on them.
                    let id = if i % 2 == 0 {
                        format!("shared-{i}")
                    } else {
                        format!("w{writer}-{i}")
                    };
                    if store
                        .insert_node(&node("r1", &id, Some("seed"), 1))
                        .unwrap()
                        == Recorded::Inserted
                    {
                        inserted += 1;
                    }
                    store
                        .append_event("r1", "node_added", &json!({"node": id}))
                        .unwrap();
                }
                inserted
            })
        })
        .collect();
    let inserted: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    let store = ResultsStore::open(&path).unwrap();
    // 20 shared + 2 × 20 own nodes, each stored exactly once.
    assert_eq!(
        inserted, 60,
        "every node was inserted by exactly one writer"
    );
    assert_eq!(store.children_count("r1", "seed").unwrap(), 60);
    assert_eq!(store.nodes("r1").unwrap().len(), 61);
    assert_eq!(store.events("r1", 0).unwrap().len(), 80);
}

#[test]
fn a_read_only_store_lists_runs_beside_a_writer_and_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let writer = open(&dir);
    writer.create_evolution_run(&new_run("first")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    writer.create_evolution_run(&new_run("second")).unwrap();
    let reader = ResultsStore::open_read_only(writer.path()).unwrap();
    assert_eq!(reader.evolution_run_ids().unwrap(), ["second", "first"]);
    // What the writer adds afterwards is seen.
    writer.insert_node(&node("first", "seed", None, 0)).unwrap();
    assert_eq!(reader.nodes("first").unwrap().len(), 1);
    // The reader cannot write.
    assert!(reader.create_evolution_run(&new_run("third")).is_err());
    assert_eq!(writer.evolution_run_ids().unwrap().len(), 2);
    // Nothing is created for a missing file, and another database is refused.
    assert!(ResultsStore::open_read_only(dir.path().join("missing.sqlite")).is_err());
    assert!(!dir.path().join("missing.sqlite").exists());
    let other = dir.path().join("other.sqlite");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t (x INTEGER)")
        .unwrap();
    assert!(matches!(
        ResultsStore::open_read_only(&other).unwrap_err(),
        hyperagents_store::StoreError::NotAStore { .. }
    ));
}
