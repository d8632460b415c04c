//! WebArena's original `string_match` and `url_match` semantics.
//!
//! WebArena's original evaluator (`evaluation_harness/evaluators.py` in the
//! WebArena repository) is not part of the webarena-verified package and
//! needs an LLM and Playwright to run, so the expected verdicts below were
//! derived once by reading that code; each case says which rule it pins.

use hyperagents_domain::DomainError;
use hyperagents_webarena::{
    Dataset, EvalOptions, SiteConfig, WebArenaSuite, evaluate, exact_match, must_include,
    must_include_any, url_match,
};
use serde_json::{Value, json};

use crate::common::{NoPage, ScriptedJudge, original_task, suite_from_text};

fn string_task(reference_answers: Value, string_note: Option<&str>) -> Value {
    let mut eval = json!({
        "eval_types": ["string_match"],
        "reference_answers": reference_answers,
        "reference_url": "",
        "program_html": [],
    });
    if let Some(note) = string_note {
        eval["string_note"] = note.into();
    }
    original_task(1, "What is the answer?", eval)
}

fn one_task_suite(task: Value) -> (tempfile::TempDir, WebArenaSuite) {
    one_task_suite_text(serde_json::to_string(&[task]).unwrap())
}

fn one_task_suite_text(text: String) -> (tempfile::TempDir, WebArenaSuite) {
    suite_from_text(
        &text,
        Dataset::Original,
        SiteConfig::new().with(
            hyperagents_webarena::Site::Shopping,
            "http://127.0.0.1:7770",
        ),
    )
}

/// Scores `answer` for a one-task suite, with a judge scripted to answer
/// `verdicts` in turn.
async fn score(task: Value, answer: &str, verdicts: &[bool]) -> (f64, ScriptedJudge) {
    score_text(serde_json::to_string(&[task]).unwrap(), answer, verdicts).await
}

async fn score_text(tasks: String, answer: &str, verdicts: &[bool]) -> (f64, ScriptedJudge) {
    let (_dir, suite) = one_task_suite_text(tasks);
    let judge = ScriptedJudge::answering(verdicts);
    let resolved = suite.task(1).unwrap();
    let score = evaluate(
        &resolved,
        answer,
        &mut NoPage,
        &judge,
        &EvalOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(score.success, score.value == 1.0);
    (score.value, judge)
}

#[tokio::test]
async fn exact_match_cleans_quotes_case_and_spaces_only() {
    let task = || string_task(json!({"exact_match": "Quest Lumaflex™ Band"}), None);
    // clean_answer: strip, one pair of quotes, lowercase.
    assert_eq!(score(task(), "  'QUEST LUMAFLEX™ band' ", &[]).await.0, 1.0);
    // Nothing else is normalized: the ™ sign is part of the reference.
    assert_eq!(score(task(), "Quest Lumaflex Band", &[]).await.0, 0.0);
    assert_eq!(score(task(), "Quest Lumaflex™ Band.", &[]).await.0, 0.0);
}

#[tokio::test]
async fn must_include_needs_every_item() {
    let task = || {
        string_task(
            json!({"must_include": ["Hyatt Regency", "Pittsburgh"]}),
            None,
        )
    };
    assert_eq!(
        score(task(), "The HYATT REGENCY near pittsburgh airport", &[])
            .await
            .0,
        1.0
    );
    assert_eq!(score(task(), "The Hyatt Regency", &[]).await.0, 0.0);
}

#[tokio::test]
async fn a_single_one_character_item_must_be_a_token() {
    let task = || string_task(json!({"must_include": ["0"]}), None);
    assert_eq!(score(task(), "0", &[]).await.0, 1.0);
    assert_eq!(score(task(), "There are 0 reviews.", &[]).await.0, 1.0);
    assert_eq!(score(task(), "There are 10 reviews", &[]).await.0, 0.0);
    // With two items nothing is tokenized: plain substrings.
    let two = string_task(json!({"must_include": ["0", "5"]}), None);
    assert_eq!(score(two, "10 and 15", &[]).await.0, 1.0);
}

#[tokio::test]
async fn or_alternatives_in_must_include() {
    // Task 386's reference; WebArena itself compares the literal text.
    let task = || string_task(json!({"must_include": ["65 |OR| 3"]}), None);
    assert_eq!(score(task(), "3", &[]).await.0, 1.0);
    assert_eq!(score(task(), "It is 65.", &[]).await.0, 1.0);
    assert_eq!(score(task(), "13", &[]).await.0, 0.0);
}

#[tokio::test]
async fn fuzzy_match_asks_the_judge_per_reference() {
    let task = || {
        string_task(
            json!({"must_include": ["Acadia National Park"], "fuzzy_match": ["10h 33min"]}),
            None,
        )
    };
    let (value, judge) = score(
        task(),
        "Acadia National Park, about 10 hours 33 minutes",
        &[true],
    )
    .await;
    assert_eq!(value, 1.0);
    // The judge sees the intent, the reference and the cleaned answer.
    assert_eq!(
        judge.calls(),
        [(
            "What is the answer?".to_string(),
            "10h 33min".to_string(),
            "acadia national park, about 10 hours 33 minutes".to_string()
        )]
    );
    assert_eq!(
        score(task(), "Acadia National Park, 2 hours", &[false])
            .await
            .0,
        0.0
    );
    // An empty answer fails without asking the judge.
    let (value, judge) = score(task(), "  ", &[]).await;
    assert_eq!(value, 0.0);
    assert!(judge.calls().is_empty());
}

#[tokio::test]
async fn not_achievable_tasks_accept_na_or_the_reason() {
    let note = "There is no review about under water photo";
    let task = || string_task(json!({"fuzzy_match": "N/A"}), Some(note));
    // "N/A" itself passes without the judge.
    let (value, judge) = score(task(), "n/a", &[]).await;
    assert_eq!(value, 1.0);
    assert!(judge.calls().is_empty());
    // Otherwise the judge compares the answer with the reason.
    let (value, judge) = score(task(), "No reviews mention underwater photos.", &[true]).await;
    assert_eq!(value, 1.0);
    let calls = judge.calls();
    assert_eq!(calls.len(), 1);
    assert!(calls[0].1.contains(note), "{calls:?}");
    assert_eq!(
        score(task(), "The answer is 3 reviews", &[false]).await.0,
        0.0
    );
    // The reason verdict replaces the score so far: an earlier failing
    // must_include does not count once the judge accepts the reason, while
    // a later one still does (file order matters).
    let in_order = |first: &str, second: &str| {
        let task = string_task(json!("REFERENCES"), Some(note));
        serde_json::to_string(&[task])
            .unwrap()
            .replace("\"REFERENCES\"", &format!("{{{first}, {second}}}"))
    };
    let include = r#""must_include": ["x"]"#;
    let not_achievable = r#""fuzzy_match": "N/A""#;
    let answer = "nothing about photos";
    assert_eq!(
        score_text(in_order(include, not_achievable), answer, &[true])
            .await
            .0,
        1.0
    );
    assert_eq!(
        score_text(in_order(not_achievable, include), answer, &[true])
            .await
            .0,
        0.0
    );
}

#[tokio::test]
async fn unsupported_configurations_are_not_scored() {
    let mut task = string_task(json!({"exact_match": "a"}), None);
    task["eval"]["eval_types"] = json!(["string_match", "screenshot_match"]);
    let (_dir, suite) = one_task_suite(task);
    let judge = ScriptedJudge::default();
    let error = evaluate(
        &suite.task(1).unwrap(),
        "a",
        &mut NoPage,
        &judge,
        &EvalOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&error, DomainError::Unsupported(m) if m.contains("screenshot_match")),
        "{error}"
    );

    let mut task = string_task(json!({"exact_match": "a"}), None);
    task["eval"]["eval_types"] = json!(["url_match"]);
    task["eval"]["reference_url"] = "__SHOPPING__/x".into();
    task["eval"]["url_note"] = "EXACT".into();
    let (_dir, suite) = one_task_suite(task);
    let error = evaluate(
        &suite.task(1).unwrap(),
        "",
        &mut NoPage,
        &judge,
        &EvalOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&error, DomainError::Unsupported(m) if m.contains("EXACT")),
        "{error}"
    );
}

#[test]
fn primitive_rules() {
    assert!(exact_match("\"Yes\"", " yes "));
    assert!(!must_include("0", "10", true));
    assert!(must_include("0", "10", false));
    assert!(must_include_any(
        "SPAAS White Taper Candles - 4 Pack |OR| 10 Inch Tall",
        "x 10 inch tall y",
        false
    ));
}

#[test]
fn url_match_gold_in_pred() {
    // Host+path of a reference within the page's host+path; trailing
    // slashes ignored; alternatives with |OR|.
    let reference = "http://h:9999/f/washington |OR| http://h:9999/f/washingtondc";
    assert!(url_match(reference, "http://h:9999/f/washington/"));
    assert!(url_match(reference, "http://h:9999/f/washingtondc/hot"));
    assert!(!url_match(reference, "http://h:9999/f/seattle"));
    // Every reference query key needs one of its values; others are free.
    let reference = "http://h:7770/catalogsearch/result/?q=tea";
    assert!(url_match(
        reference,
        "http://h:7770/catalogsearch/result/?q=tea&p=2"
    ));
    assert!(url_match(
        reference,
        "http://h:7770/catalogsearch/result/index/?q=tea"
    ));
    assert!(!url_match(
        reference,
        "http://h:7770/catalogsearch/result/?q=coffee"
    ));
    assert!(!url_match(reference, "http://h:7770/catalogsearch/result/"));
    // Percent-encoding and '+' are decoded before comparing values.
    assert!(url_match("http://h/s?q=a+b", "http://h/s?q=a%20b"));
    // Case matters in paths.
    assert!(!url_match(
        "http://h/f/MachineLearning",
        "http://h/f/machinelearning"
    ));
}
