//! The JSONL `command` scorer with real processes: the answer on stdin, the
//! expected answer in the environment, exit status as the verdict, an
//! optional printed score, a cleared environment, and kills on timeout.

#![allow(clippy::unwrap_used)] // Test helpers panic on setup failures by design.

use std::path::Path;
use std::time::Duration;

use hyperagents_domain::{Domain, DomainError, JsonlSuite};

/// A scorer script: accepts when stdin equals `$HYPERAGENTS_EXPECTED`,
/// printing a score of 1 or 0.25; exits 3 when asked to crash.
const CHECK_SH: &str = r#"#!/bin/sh
answer=$(cat)
if [ "$answer" = "crash" ]; then echo "internal failure" >&2; exit 3; fi
if [ "$answer" = "$HYPERAGENTS_EXPECTED" ]; then echo 1; exit 0; fi
echo 0.25
echo "not equal" >&2
exit 1
"#;

/// Writes `suite` and `check.sh` into a fresh directory and loads the suite
/// from there.
fn suite_in_dir(dir: &Path, suite: &str) -> JsonlSuite {
    std::fs::write(dir.join("check.sh"), CHECK_SH).unwrap();
    let mut perms = std::fs::metadata(dir.join("check.sh"))
        .unwrap()
        .permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(dir.join("check.sh"), perms).unwrap();
    let path = dir.join("suite.jsonl");
    std::fs::write(&path, suite).unwrap();
    JsonlSuite::load(&path).unwrap()
}

fn one_task(scorer: &str) -> String {
    format!(
        r#"{{"id": "t", "input": "What is six times seven?", "expected": "42", "scorer": {scorer}}}"#
    )
}

#[tokio::test]
async fn exit_status_decides_and_the_first_line_is_the_score() {
    let dir = tempfile::tempdir().unwrap();
    let suite = suite_in_dir(
        dir.path(),
        &one_task(r#"{"type": "command", "command": ["./check.sh"]}"#),
    );
    // Run from elsewhere: `./check.sh` is found beside the suite.
    let mut env = suite.reset("t", 0).await.unwrap();
    env.act("answer", &serde_json::json!({"text": "42"}))
        .await
        .unwrap();
    let score = env.score().await.unwrap();
    assert!(score.success && score.value == 1.0, "{score:?}");
    assert!(!score.reason.contains("42"), "{score:?}");

    let score = suite.score_answer("t", "41").await.unwrap();
    assert!(!score.success, "{score:?}");
    assert_eq!(score.value, 0.25);
    assert!(score.reason.contains("rejected"), "{score:?}");
}

#[tokio::test]
async fn other_exit_statuses_are_errors_quoting_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let suite = suite_in_dir(
        dir.path(),
        &one_task(r#"{"type": "command", "command": ["./check.sh"]}"#),
    );
    let err = suite.score_answer("t", "crash").await.unwrap_err();
    assert!(matches!(err, DomainError::Scoring(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("scoring command `./check.sh` exited with status 3")
            && message.contains("stderr: internal failure"),
        "{message}"
    );
}

#[tokio::test]
async fn printed_scores_must_lie_in_the_unit_interval() {
    let dir = tempfile::tempdir().unwrap();
    let suite = suite_in_dir(
        dir.path(),
        &one_task(r#"{"type": "command", "command": ["sh", "-c", "echo 1.5"]}"#),
    );
    let err = suite.score_answer("t", "42").await.unwrap_err();
    assert!(
        err.to_string()
            .contains("printed the score 1.5, outside [0, 1]"),
        "{err}"
    );
    // A first line that is not a number is not a score.
    let suite = suite_in_dir(
        dir.path(),
        &one_task(r#"{"type": "command", "command": ["sh", "-c", "echo looks good"]}"#),
    );
    let score = suite.score_answer("t", "42").await.unwrap();
    assert!(score.success && score.value == 1.0, "{score:?}");
}

#[tokio::test]
async fn the_program_sees_a_cleared_environment_and_the_answer_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("seen");
    let script = format!("cat > '{0}.stdin'; env > '{0}.env'", out.display());
    let suite = suite_in_dir(
        dir.path(),
        &one_task(
            &serde_json::json!({"type": "command", "command": ["sh", "-c", script]}).to_string(),
        ),
    );
    let answer = "line one\n  line two with 'quotes' and $HOME\n";
    assert!(suite.score_answer("t", answer).await.unwrap().success);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("seen.stdin")).unwrap(),
        answer
    );
    let env = std::fs::read_to_string(dir.path().join("seen.env")).unwrap();
    let names: Vec<&str> = env
        .lines()
        .filter_map(|line| line.split_once('=').map(|(name, _)| name))
        .collect();
    assert!(env.contains("HYPERAGENTS_EXPECTED=42\n"), "{env}");
    assert!(env.contains("HYPERAGENTS_TASK_ID=t\n"), "{env}");
    assert!(
        env.contains("HYPERAGENTS_QUESTION=What is six times seven?\n"),
        "{env}"
    );
    assert!(names.contains(&"PATH"), "{env}");
    // The test runner's own variables (CARGO_*, RUST_*) do not get through;
    // sh itself adds PWD and the like.
    let allowed = [
        "PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "PWD", "SHLVL", "OLDPWD", "_",
    ];
    for name in names {
        assert!(
            allowed.contains(&name) || name.starts_with("HYPERAGENTS_"),
            "{name} leaked into the scorer's environment"
        );
    }
    assert!(std::env::vars().any(|(name, _)| name.starts_with("CARGO")));
}

#[tokio::test]
async fn a_program_that_ignores_a_large_answer_is_fine() {
    let dir = tempfile::tempdir().unwrap();
    let suite = suite_in_dir(
        dir.path(),
        &one_task(r#"{"type": "command", "command": ["true"]}"#),
    );
    let answer = "y".repeat(4 << 20);
    assert!(suite.score_answer("t", &answer).await.unwrap().success);
}

#[tokio::test]
async fn a_slow_program_and_its_children_are_killed_at_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("child.pid");
    let script = format!("sleep 300 & echo $! > '{}'; wait", pid_file.display());
    let suite = suite_in_dir(
        dir.path(),
        &one_task(
            &serde_json::json!({"type": "command", "command": ["sh", "-c", script], "timeout_secs": 1})
                .to_string(),
        ),
    );
    let err = tokio::time::timeout(Duration::from_secs(60), suite.score_answer("t", "42"))
        .await
        .expect("the timeout fired")
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("scoring command `sh` ran past its 1 s timeout and was killed"),
        "{err}"
    );
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let stat = format!("/proc/{}/stat", pid.trim());
    // The grandchild gets SIGKILL with its group; wait for it to be gone
    // (or a zombie awaiting its reaper), bounded so a leak fails the test.
    let mut alive = true;
    for _ in 0..200 {
        alive = match std::fs::read_to_string(&stat) {
            Err(_) => false,
            Ok(text) => !text
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        };
        if !alive {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !alive,
        "`sleep 300` (pid {}) survived the timeout",
        pid.trim()
    );
}

#[tokio::test]
async fn a_missing_program_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let suite = suite_in_dir(
        dir.path(),
        &one_task(r#"{"type": "command", "command": ["./no-such-scorer", "x"]}"#),
    );
    let err = suite.score_answer("t", "42").await.unwrap_err().to_string();
    assert!(
        err.contains("cannot start scoring command `./no-such-scorer`")
            && err.contains("no-such-scorer"),
        "{err}"
    );
}

#[test]
fn bad_command_options_are_file_line_errors() {
    let cases = [
        (
            r#"{"type": "command", "command": []}"#,
            "`command` must name a program",
        ),
        (
            r#"{"type": "command", "command": ["x"], "timeout_secs": 0}"#,
            "`timeout_secs` must be between 1 and 3600",
        ),
        (r#""command""#, "the `command` scorer needs options"),
        (r#"{"type": "command"}"#, "suite.jsonl:1:"),
    ];
    for (scorer, expected) in cases {
        let text = one_task(scorer);
        let err = JsonlSuite::parse("t", "suite.jsonl", &text)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("suite.jsonl:1:") && err.contains(expected),
            "{scorer}: {err}"
        );
    }
}
