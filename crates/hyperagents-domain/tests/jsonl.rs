//! JSONL suites: parsing errors name file:line; episodes answer once and
//! are scored on the host side without exposing the expected answer.

use hyperagents_domain::{Domain, DomainError, JsonlSuite};

const SUITE: &str = r#"# arithmetic
{"id": "add", "input": "What is 2+2?", "expected": 4, "scorer": "numeric"}
{"id": "capital", "input": "Capital of France?", "expected": "Paris", "scorer": {"type": "contains", "max_len": 40}}

{"id": 3, "input": "Say yes", "expected": "yes"}
"#;

fn parse_err(text: &str) -> String {
    match JsonlSuite::parse("t", "suite.jsonl", text) {
        Err(DomainError::Parse {
            file,
            line,
            message,
        }) => format!("{file}:{line}: {message}"),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn parses_ids_scorers_and_skips_comments() {
    let suite = JsonlSuite::parse("t", "suite.jsonl", SUITE).unwrap();
    assert_eq!(suite.task_ids(), vec!["add", "capital", "3"]);
}

#[test]
fn errors_name_file_and_line() {
    assert!(
        parse_err("{\"id\":\"a\",\"input\":\"x\",\"expected\":\"y\"}\n{bad json")
            .starts_with("suite.jsonl:2:")
    );
    assert!(
        parse_err("{\"id\":\"a\",\"input\":\"x\",\"expected\":\"y\",\"scorer\":\"fuzzy\"}")
            .contains("suite.jsonl:1: unknown scorer `fuzzy`")
    );
    assert!(parse_err("{\"id\":\"a\",\"input\":\"x\",\"expected\":\"y\"}\n{\"id\":\"a\",\"input\":\"x\",\"expected\":\"y\"}").contains("suite.jsonl:2: duplicate task id `a`"));
    assert!(
        parse_err("{\"id\":\"a\",\"input\":\"x\",\"expected\":\"(\",\"scorer\":\"regex\"}")
            .contains("not a valid regex")
    );
    assert!(
        parse_err("{\"id\":\"a\",\"input\":\"x\",\"expected\":\"y\",\"answer\":\"z\"}")
            .contains("unknown field `answer`")
    );
    assert!(parse_err("# only a comment\n").contains("no tasks"));
}

#[tokio::test]
async fn an_episode_answers_once_and_is_scored() {
    let suite = JsonlSuite::parse("t", "suite.jsonl", SUITE).unwrap();
    let mut env = suite.reset("capital", 0).await.unwrap();
    let observation = env.observe().await.unwrap();
    assert!(observation.contains("Capital of France?"));
    assert!(
        !observation.contains("Paris"),
        "the expected answer must not be observable"
    );
    assert_eq!(env.actions().len(), 1);
    assert!(env.act("click", &serde_json::json!({})).await.is_err());
    let outcome = env
        .act("answer", &serde_json::json!({"text": "It is Paris."}))
        .await
        .unwrap();
    assert!(outcome.done && env.is_done());
    assert!(matches!(
        env.act("answer", &serde_json::json!({"text": "Lyon"}))
            .await,
        Err(DomainError::EpisodeOver)
    ));
    let score = env.score().await.unwrap();
    assert!(score.success, "{score:?}");
    assert!(!score.reason.contains("Paris"));

    let mut env = suite.reset("add", 0).await.unwrap();
    assert_eq!(env.tools()[0].name, "calculator");
    assert_eq!(
        env.call_tool("calculator", &serde_json::json!({"expression": "6*7"}))
            .await
            .unwrap(),
        "42"
    );
    assert!(
        env.call_tool("calculator", &serde_json::json!({"expression": "1/0"}))
            .await
            .is_err()
    );
    assert!(
        env.call_tool("shell", &serde_json::json!({}))
            .await
            .is_err()
    );
    env.act("answer", &serde_json::json!("five")).await.unwrap();
    assert!(!env.score().await.unwrap().success);
    assert!(matches!(
        suite.reset("nope", 0).await,
        Err(DomainError::UnknownTask(_))
    ));
}

#[test]
fn tasks_default_to_train_and_may_be_held_out() {
    let suite = hyperagents_domain::JsonlSuite::parse(
        "jsonl:s",
        "s.jsonl",
        r#"{"id": "a", "input": "q", "expected": "x"}
{"id": "b", "input": "q", "expected": "y", "split": "test"}
"#,
    )
    .expect("parses");
    use hyperagents_domain::Split;
    assert_eq!(suite.split_ids(Split::Train), vec!["a".to_string()]);
    assert_eq!(suite.split_ids(Split::Test), vec!["b".to_string()]);
    let err = hyperagents_domain::JsonlSuite::parse(
        "jsonl:s",
        "s.jsonl",
        r#"{"id": "a", "input": "q", "expected": "x", "split": "dev"}"#,
    )
    .expect_err("unknown split");
    assert!(err.to_string().starts_with("s.jsonl:1:"), "{err}");
}
