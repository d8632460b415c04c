//! Loading GAIA's layout, and the errors malformed metadata gets.

use hyperagents_domain::{Domain, DomainError};
use hyperagents_gaia::{GaiaConfig, GaiaDomain, GaiaSuite};
use serde_json::json;

use crate::common::{Fixture, write_lines};

/// Loads a one-folder split made of `lines` (and `files` beside it) and returns the error text.
fn load_error(lines: &[serde_json::Value], files: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    for file in files {
        std::fs::write(dir.path().join(file), "x").unwrap();
    }
    write_lines(&dir.path().join("metadata.jsonl"), lines);
    GaiaSuite::load(dir.path()).unwrap_err().to_string()
}

fn task(id: &str) -> serde_json::Value {
    json!({"task_id": id, "Question": "Q?", "Level": 1, "Final answer": "a", "file_name": ""})
}

#[test]
fn loads_a_split_folder_or_its_metadata_file() {
    let fixture = Fixture::new();
    let suite = GaiaSuite::load(&fixture.validation()).unwrap();
    assert_eq!(suite.name(), "gaia:2023/validation");
    let ids: Vec<&str> = suite.tasks().iter().map(|t| t.task_id.as_str()).collect();
    assert_eq!(ids, ["t-csv", "t-json", "t-text", "t-pdf", "t-plain"]);
    let csv = suite.task("t-csv").unwrap();
    assert_eq!(csv.level, 1);
    assert_eq!(csv.file_name.as_deref(), Some("sales.csv"));
    assert_eq!(
        csv.attachment_path().unwrap(),
        fixture.validation().join("sales.csv")
    );
    assert!(csv.has_answer());
    assert_eq!(csv.annotator_metadata().unwrap()["Tools"], json!("python"));
    assert_eq!(suite.task("t-text").unwrap().level, 3, "a string level");
    let plain = suite.task("t-plain").unwrap();
    assert_eq!(
        (plain.file_name.clone(), plain.attachment_path()),
        (None, None)
    );
    assert!(matches!(
        suite.task("nope"),
        Err(DomainError::UnknownTask(_))
    ));

    let by_file = GaiaSuite::load(&fixture.metadata()).unwrap();
    assert_eq!(by_file.tasks(), suite.tasks());
    assert_eq!(by_file.scorable_task_ids().len(), 5);
}

#[test]
fn the_top_folder_names_the_splits_below_it() {
    let fixture = Fixture::new();
    let err = GaiaSuite::load(fixture.root.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("holds no metadata.jsonl"), "{err}");
    assert!(err.contains("2023/test, 2023/validation"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let err = GaiaSuite::load(empty.path()).unwrap_err().to_string();
    assert!(err.contains("nor does any folder below it"), "{err}");
    let err = GaiaSuite::load(&empty.path().join("missing"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing"), "{err}");
}

#[test]
fn file_path_is_resolved_from_the_dataset_root() {
    // GAIA copies made from Hugging Face name attachments relative to the dataset's root.
    let dir = tempfile::tempdir().unwrap();
    let split = dir.path().join("2023/validation");
    let files = dir.path().join("files");
    std::fs::create_dir_all(&split).unwrap();
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("scan.txt"), "text").unwrap();
    write_lines(
        &split.join("metadata.jsonl"),
        &[
            json!({"task_id": "a", "Question": "Q", "Level": 1, "Final answer": "x",
            "file_name": "scan.txt", "file_path": "files/scan.txt"}),
        ],
    );
    let suite = GaiaSuite::load(&split).unwrap();
    assert_eq!(
        suite.task("a").unwrap().attachment_path().unwrap(),
        dir.path().join("files/scan.txt")
    );
}

#[tokio::test]
async fn test_split_tasks_load_but_cannot_be_scored() {
    let fixture = Fixture::new();
    let suite = GaiaSuite::load(&fixture.root.path().join("2023/test")).unwrap();
    assert_eq!(suite.tasks().len(), 2);
    assert!(suite.tasks().iter().all(|t| !t.has_answer()));
    assert!(suite.scorable_task_ids().is_empty());
    let domain = GaiaDomain::new(suite, GaiaConfig::default()).unwrap();
    for id in ["q-1", "q-2"] {
        let mut env = domain.reset(id, 0).await.unwrap();
        env.act("answer", &json!({"text": "anything"}))
            .await
            .unwrap();
        let err = env.score().await.unwrap_err();
        assert!(matches!(err, DomainError::Unsupported(_)), "{err:?}");
        assert!(err.to_string().contains("no public answer"), "{err}");
    }
}

#[test]
fn malformed_lines_are_errors_naming_file_and_line() {
    let ok = task("ok");
    let cases: Vec<(Vec<serde_json::Value>, &[&str], &str)> = vec![
        (
            vec![
                ok.clone(),
                json!({"task_id": "b", "Question": "Q", "Level": 1,
                "file_name": "", "Extra": 1}),
            ],
            &[],
            "unknown field `Extra`",
        ),
        (
            vec![
                ok.clone(),
                json!({"task_id": "b", "Level": 1, "file_name": ""}),
            ],
            &[],
            "missing field `Question`",
        ),
        (
            vec![
                ok.clone(),
                json!({"task_id": "b", "Question": "Q", "Level": 1}),
            ],
            &[],
            "missing field `file_name`",
        ),
        (
            vec![
                ok.clone(),
                json!({"task_id": "b", "Question": "Q", "Level": 7,
                "file_name": ""}),
            ],
            &[],
            "`Level`: expected 1, 2 or 3, got 7",
        ),
        (vec![ok.clone(), task("ok")], &[], "duplicate task_id `ok`"),
        (vec![ok.clone(), task(" ")], &[], "`task_id` is empty"),
        (
            vec![
                ok.clone(),
                json!({"task_id": "b", "Question": "Q", "Level": 1,
                "file_name": "gone.csv"}),
            ],
            &[],
            "task `b`: attachment `gone.csv` not found",
        ),
        (
            vec![
                ok.clone(),
                json!({"task_id": "b", "Question": "Q", "Level": 1,
                "file_name": "../secret.txt"}),
            ],
            &[],
            "must be a plain file name",
        ),
        (
            vec![
                ok.clone(),
                json!({"task_id": "b", "Question": "Q", "Level": 1,
                "file_name": "metadata.jsonl"}),
            ],
            &[],
            "may not be named metadata.jsonl",
        ),
        (
            vec![
                ok.clone(),
                json!({"task_id": "b", "Question": "Q", "Level": 1,
                "Final answer": ["x"], "file_name": ""}),
            ],
            &[],
            "`Final answer`: expected a string",
        ),
    ];
    for (lines, files, want) in cases {
        let err = load_error(&lines, files);
        assert!(err.contains("metadata.jsonl:2: "), "{want}: {err}");
        assert!(err.contains(want), "{want}: {err}");
    }
}

#[test]
fn broken_json_and_empty_files_are_errors_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metadata.jsonl");
    std::fs::write(&path, format!("{}\n\n{{\"task_id\": \n", task("a"))).unwrap();
    let err = GaiaSuite::load(&path).unwrap_err().to_string();
    assert!(err.contains("metadata.jsonl:3: "), "{err}");
    std::fs::write(&path, "\n\n").unwrap();
    let err = GaiaSuite::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("metadata.jsonl:1: the file holds no tasks"),
        "{err}"
    );
}

#[test]
fn an_attachment_that_is_the_metadata_file_is_refused() {
    // A file_path pointing back at the metadata would copy the answers into the episode.
    let dir = tempfile::tempdir().unwrap();
    write_lines(
        &dir.path().join("metadata.jsonl"),
        &[
            json!({"task_id": "a", "Question": "Q", "Level": 1, "Final answer": "x",
            "file_name": "", "file_path": "metadata.jsonl"}),
        ],
    );
    let err = GaiaSuite::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("metadata.jsonl:1: "), "{err}");
    assert!(err.contains("holds the answers"), "{err}");
    std::os::unix::fs::symlink(
        dir.path().join("metadata.jsonl"),
        dir.path().join("innocent.txt"),
    )
    .unwrap();
    write_lines(
        &dir.path().join("metadata.jsonl"),
        &[
            json!({"task_id": "a", "Question": "Q", "Level": 1, "Final answer": "x",
            "file_name": "innocent.txt"}),
        ],
    );
    let err = GaiaSuite::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("is the metadata file itself"), "{err}");
}
