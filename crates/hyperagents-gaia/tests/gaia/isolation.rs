//! Answers stay on the host: an episode's folder holds only its attachment, and no tool call or
//! observation can reach the metadata file or reveal an expected answer.

use hyperagents_domain::{Domain, Environment};
use hyperagents_gaia::{GaiaConfig, GaiaDomain, METADATA_FILE};
use serde_json::json;

use crate::common::{Fixture, FixtureSearch, SECRETS, python_pool, within};

/// Fails if `text` (something an agent sees) carries an answer or annotator note.
fn assert_clean(context: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{context} leaked {secret}: {text}");
    }
}

/// Every way an agent could try to get at the metadata, from inside an episode.
fn escape_paths(fixture: &Fixture, env_folder: &std::path::Path) -> Vec<String> {
    vec![
        "../metadata.jsonl".into(),
        "../../metadata.jsonl".into(),
        "./../metadata.jsonl".into(),
        "sales.csv/../../metadata.jsonl".into(),
        METADATA_FILE.into(),
        fixture.metadata().display().to_string(),
        fixture.validation().join("sales.csv").display().to_string(),
        env_folder
            .join("..")
            .join(METADATA_FILE)
            .display()
            .to_string(),
        "/etc/passwd".into(),
        "~/.bashrc".into(),
        "/proc/self/environ".into(),
        ".".into(),
        "".into(),
    ]
}

#[tokio::test]
async fn each_episode_gets_a_fresh_folder_with_only_its_attachment() {
    let fixture = Fixture::new();
    let domain = fixture.domain(GaiaConfig::default());
    let first = domain.start("t-csv").unwrap();
    let second = domain.start("t-csv").unwrap();
    assert_ne!(first.workspace_path(), second.workspace_path());
    let names = |env: &hyperagents_gaia::GaiaEnvironment| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(env.workspace_path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(&first), ["sales.csv"]);
    assert!(!first.workspace_path().starts_with(fixture.root.path()));
    let plain = domain.start("t-plain").unwrap();
    assert!(names(&plain).is_empty());
    // Changing one episode's copy leaves the dataset and other episodes alone.
    std::fs::write(first.workspace_path().join("sales.csv"), "tampered").unwrap();
    assert!(
        std::fs::read_to_string(second.workspace_path().join("sales.csv"))
            .unwrap()
            .starts_with("region,amount")
    );
    let folder = first.workspace_path().to_path_buf();
    drop(first);
    assert!(!folder.exists(), "the folder goes with the episode");
    assert!(fixture.validation().join("sales.csv").is_file());
}

#[tokio::test]
async fn episode_folders_can_live_under_a_chosen_root() {
    let fixture = Fixture::new();
    let root = tempfile::tempdir().unwrap();
    let domain = fixture.domain(GaiaConfig {
        workspace_root: Some(root.path().to_path_buf()),
        ..GaiaConfig::default()
    });
    let env = domain.start("t-json").unwrap();
    assert!(env.workspace_path().starts_with(root.path()));
}

#[tokio::test]
async fn read_file_cannot_leave_the_episode_folder() {
    let fixture = Fixture::new();
    let domain = fixture.domain(GaiaConfig::default());
    let mut env = domain.start("t-csv").unwrap();
    let folder = env.workspace_path().to_path_buf();
    for path in escape_paths(&fixture, &folder) {
        let result = env.call_tool("read_file", &json!({"path": path})).await;
        let text = match result {
            Ok(text) => text,
            Err(e) => e.to_string(),
        };
        assert_clean(&format!("read_file({path:?})"), &text);
        assert!(
            !text.contains("task_id"),
            "read_file({path:?}) read metadata: {text}"
        );
        assert!(
            !text.contains("root:"),
            "read_file({path:?}) read /etc: {text}"
        );
    }
    // A symlink planted in the folder (agents cannot make one, but a tool might) leads nowhere.
    std::os::unix::fs::symlink(fixture.metadata(), folder.join("answers.txt")).unwrap();
    let err = env
        .call_tool("read_file", &json!("answers.txt"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("leads outside the episode folder"),
        "{err}"
    );
    assert_clean("symlink", &err.to_string());
    // The folder's own absolute path is fine.
    let own = folder.join("sales.csv").display().to_string();
    assert!(env.call_tool("read_file", &json!(own)).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_cannot_reach_the_metadata_either() {
    let fixture = Fixture::new();
    let domain = fixture.domain(GaiaConfig {
        python: Some(python_pool().await),
        ..GaiaConfig::default()
    });
    let mut env = domain.reset("t-csv", 0).await.unwrap();
    let metadata = fixture.metadata().display().to_string();
    let mut attempts = vec![
        "print(open('../metadata.jsonl').read())".to_string(),
        format!("print(open({metadata:?}).read())"),
        format!("from pathlib import Path\nprint(Path({metadata:?}).read_text())"),
        "import os\nprint(os.listdir('..'))".to_string(),
        "import os\nprint(os.environ)".to_string(),
        "print(__import__('os'))".to_string(),
    ];
    for path in escape_paths(&fixture, std::path::Path::new("/tmp/x")) {
        attempts.push(format!("print(read_file({path:?}))"));
    }
    for code in attempts {
        let text = within(60, env.call_tool("python", &json!({"code": code})))
            .await
            .unwrap();
        assert!(text.contains("python error:"), "{code}: {text}");
        assert_clean(&code, &text);
        assert!(!text.contains("task_id"), "{code}: {text}");
    }
    let ok = within(
        60,
        env.call_tool("python", &json!("print(len(read_file('sales.csv')))")),
    )
    .await
    .unwrap();
    assert_eq!(ok, "50");
}

#[tokio::test]
async fn nothing_an_agent_sees_carries_an_answer() {
    let fixture = Fixture::new();
    let docs = tempfile::tempdir().unwrap();
    std::fs::write(docs.path().join("ref.txt"), "ferries and piers").unwrap();
    let domain = fixture.domain(GaiaConfig {
        documents: Some(docs.path().to_path_buf()),
        web_search: Some(FixtureSearch::new()),
        ..GaiaConfig::default()
    });
    for id in domain.task_ids() {
        let mut env = domain.reset(&id, 0).await.unwrap();
        let mut seen = vec![env.instruction(), env.observe().await.unwrap()];
        seen.extend(env.tools().iter().map(|t| format!("{t:?}")));
        seen.extend(env.actions().iter().map(|a| format!("{a:?}")));
        for file in ["sales.csv", "config.json", "notes.txt", "report.pdf"] {
            match env.call_tool("read_file", &json!(file)).await {
                Ok(text) => seen.push(text),
                Err(e) => seen.push(e.to_string()),
            }
        }
        for query in ["answer", "Final answer", "metadata", "Marmoset", "ferry"] {
            seen.push(
                env.call_tool("search_documents", &json!(query))
                    .await
                    .unwrap(),
            );
            seen.push(env.call_tool("web_search", &json!(query)).await.unwrap());
        }
        seen.push(env.call_tool("calculator", &json!("2+2")).await.unwrap());
        seen.push(format!("{:?}", domain.start(&id).unwrap()));
        // Debug prints end up in logs and traces: they leave answers out too.
        seen.push(format!("{:?}", domain.suite()));
        seen.push(format!("{domain:?}"));
        seen.push(
            env.act("answer", &json!("a wrong guess"))
                .await
                .unwrap()
                .message,
        );
        seen.push(env.observe().await.unwrap());
        // The score's reason is for people, but must not spell the answer out either.
        seen.push(env.score().await.unwrap().reason);
        for text in &seen {
            assert_clean(&id, text);
        }
    }
}

#[test]
fn a_document_folder_holding_the_metadata_is_refused() {
    let fixture = Fixture::new();
    for folder in [fixture.root.path().to_path_buf(), fixture.validation()] {
        let err = GaiaDomain::new(
            fixture.suite(),
            GaiaConfig {
                documents: Some(folder.clone()),
                ..GaiaConfig::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("would reveal the answers"),
            "{}: {err}",
            folder.display()
        );
    }
    // A sibling split's folder is allowed, but its metadata file is never indexed.
    let domain = GaiaDomain::new(
        fixture.suite(),
        GaiaConfig {
            documents: Some(fixture.root.path().join("2023/test")),
            ..GaiaConfig::default()
        },
    )
    .unwrap();
    let index = domain.documents().unwrap();
    assert_eq!(index.file_count(), 0);
    assert!(index.search("Unanswered", 5).is_empty());
}
