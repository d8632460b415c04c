//! The published task files: they parse, their shape is what the
//! evaluators expect, and broken files are reported precisely.

use std::collections::BTreeMap;

use hyperagents_domain::DomainError;
use hyperagents_webarena::{
    ApiCredentials, Dataset, EvalOptions, EvalType, FuzzyReference, ReferenceAnswer, Site,
    SiteConfig, TaskEval, VerifiedEvaluator, WebArenaSuite, ensure_evaluable,
};

use crate::common::{all_sites, package_root};

fn load(dataset: Dataset, sites: SiteConfig) -> Option<WebArenaSuite> {
    let root = package_root()?;
    Some(WebArenaSuite::load(&root, dataset, sites).unwrap())
}

#[test]
fn original_file_parses_with_its_eval_types() {
    let Some(suite) = load(Dataset::Original, SiteConfig::new()) else {
        return;
    };
    assert_eq!(suite.tasks().len(), 812);
    let mut eval_types: BTreeMap<String, usize> = BTreeMap::new();
    let mut references: BTreeMap<&str, usize> = BTreeMap::new();
    for task in suite.tasks() {
        let TaskEval::Original(eval) = &task.eval else {
            panic!("verified eval in test.raw.json")
        };
        for eval_type in &eval.eval_types {
            let name = match eval_type {
                EvalType::StringMatch => "string_match".to_string(),
                EvalType::UrlMatch => "url_match".to_string(),
                EvalType::ProgramHtml => "program_html".to_string(),
                EvalType::Other(name) => name.clone(),
            };
            *eval_types.entry(name).or_default() += 1;
        }
        for reference in eval.reference_answers.iter().flatten() {
            let kind = match reference {
                ReferenceAnswer::ExactMatch(_) => "exact_match",
                ReferenceAnswer::MustInclude(_) => "must_include",
                ReferenceAnswer::FuzzyMatch(FuzzyReference::NotAchievable) => "fuzzy_match N/A",
                ReferenceAnswer::FuzzyMatch(FuzzyReference::References(_)) => "fuzzy_match",
                ReferenceAnswer::Other(_) => "other",
            };
            *references.entry(kind).or_default() += 1;
        }
    }
    let expected_types: BTreeMap<String, usize> = [
        ("program_html".to_string(), 411),
        ("string_match".to_string(), 335),
        ("url_match".to_string(), 205),
    ]
    .into();
    assert_eq!(eval_types, expected_types);
    let expected_references: BTreeMap<&str, usize> = [
        ("exact_match", 45),
        ("fuzzy_match", 82),
        ("fuzzy_match N/A", 36),
        ("must_include", 176),
    ]
    .into();
    assert_eq!(references, expected_references);
    // Multi-tab starts are split on " |AND| ".
    let tabs: usize = suite.tasks().iter().map(|task| task.start_urls.len()).sum();
    assert_eq!(tabs, 807 + 2 * 4 + 3);
}

#[test]
fn verified_file_parses_with_its_evaluators() {
    let Some(suite) = load(Dataset::Verified, SiteConfig::new()) else {
        return;
    };
    assert_eq!(suite.tasks().len(), 812);
    let (mut agent, mut network, mut with_network) = (0, 0, 0);
    for task in suite.tasks() {
        let TaskEval::Verified(evaluators) = &task.eval else {
            panic!("original eval")
        };
        let networks = evaluators
            .iter()
            .filter(|evaluator| matches!(evaluator, VerifiedEvaluator::NetworkEvent(_)))
            .count();
        agent += evaluators.len() - networks;
        network += networks;
        with_network += usize::from(networks > 0);
    }
    assert_eq!(agent, 812);
    assert_eq!(with_network, 812 - 324);
    assert_eq!(
        network,
        391 + 2 * 65 + 3 * 12 + 4 * 10 + 5 * 6 + 8 * 2 + 10 * 2
    );
}

#[test]
fn func_helper_table() {
    let Some(suite) = load(Dataset::Original, SiteConfig::new()) else {
        return;
    };
    let usage = suite.func_helper_usage();
    println!("func: helper → tasks: {usage:?}");
    let expected: BTreeMap<String, usize> = [
        ("gitlab_get_project_memeber_role", 9),
        ("reddit_get_post_url", 55),
        ("shopping_get_latest_order_url", 10),
        ("shopping_get_sku_latest_review_author", 5),
        ("shopping_get_sku_latest_review_rating", 5),
    ]
    .into_iter()
    .map(|(name, count)| (name.to_string(), count))
    .collect();
    assert_eq!(usage, expected);
    assert!(suite.unsupported_func_helpers().is_empty());
}

#[test]
fn evaluable_task_counts_follow_the_configuration() {
    let sites = all_sites("http://127.0.0.1:9");
    let Some(original) = load(Dataset::Original, sites.clone()) else {
        return;
    };
    let count = |suite: &WebArenaSuite, options: &EvalOptions| {
        suite
            .tasks()
            .iter()
            .filter(|task| ensure_evaluable(&suite.task(task.id).unwrap(), options).is_ok())
            .count()
    };
    let without_api = EvalOptions::default();
    assert_eq!(count(&original, &without_api), 812 - 15);
    let with_api = EvalOptions {
        shopping_admin_api: Some(ApiCredentials {
            username: "admin".into(),
            password: "secret".to_string().into(),
        }),
        ..EvalOptions::default()
    };
    assert_eq!(count(&original, &with_api), 812);
    // Task 436 checks the latest order through the shop's REST API.
    let error = ensure_evaluable(&original.task(436).unwrap(), &without_api).unwrap_err();
    assert!(
        matches!(&error, DomainError::Unsupported(m) if m.contains("shopping_get_latest_order_url")),
        "{error}"
    );

    let Some(verified) = load(Dataset::Verified, sites) else {
        return;
    };
    assert_eq!(count(&verified, &without_api), 198);
    let network_task = verified
        .tasks()
        .iter()
        .find(|task| {
            matches!(&task.eval, TaskEval::Verified(evaluators)
                if evaluators.iter().any(|e| matches!(e, VerifiedEvaluator::NetworkEvent(_))))
        })
        .unwrap();
    let error =
        ensure_evaluable(&verified.task(network_task.id).unwrap(), &without_api).unwrap_err();
    assert!(
        matches!(error, DomainError::Unsupported(ref m) if m.contains("NetworkEventEvaluator"))
    );
}

#[test]
fn tasks_resolve_against_configured_sites_only() {
    let sites = SiteConfig::new()
        .with(Site::ShoppingAdmin, "http://127.0.0.1:7780/admin")
        .with(Site::Shopping, "http://127.0.0.1:7770");
    let Some(suite) = load(Dataset::Original, sites) else {
        return;
    };
    let task = suite.task(0).unwrap();
    assert_eq!(task.start_url(), "http://127.0.0.1:7780/admin");
    assert_eq!(
        task.intent(),
        "What is the top-1 best-selling product in 2022"
    );
    assert_eq!(task.allowed_origins(), ["http://127.0.0.1:7780"]);
    // Task 44 is on GitLab, which is not configured.
    let error = suite.task(44).unwrap_err();
    assert!(
        matches!(&error, DomainError::Unsupported(message) if message.contains("`gitlab`")),
        "{error}"
    );
    assert!(matches!(suite.task(9999), Err(DomainError::UnknownTask(_))));
}

#[test]
fn malformed_files_name_the_file_the_task_and_the_field() {
    let Some(root) = package_root() else { return };
    let published = root.join("webarena_verified/assets/dataset");
    let dir = tempfile::tempdir().unwrap();

    // A wrong type deep inside task index 5.
    let mut tasks: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(published.join("test.raw.json")).unwrap())
            .unwrap();
    tasks[5]["eval"]["reference_answers"] = serde_json::json!({"exact_match": 7});
    let path = dir.path().join("test.raw.json");
    std::fs::write(&path, serde_json::to_string_pretty(&tasks).unwrap()).unwrap();
    let error = WebArenaSuite::from_file(&path, Dataset::Original, SiteConfig::new()).unwrap_err();
    let message = error.to_string();
    let DomainError::Parse { file, line, .. } = &error else {
        panic!("{message}")
    };
    assert_eq!(file, &path.display().to_string());
    assert!(*line > 0, "{message}");
    assert!(message.contains("task at index 5 (task_id 5)"), "{message}");
    assert!(message.contains("[5].eval.reference_answers"), "{message}");

    // A status the verified format does not define.
    let mut tasks: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(published.join("webarena-verified.json")).unwrap(),
    )
    .unwrap();
    tasks[3]["eval"][0]["expected"]["status"] = "DONE".into();
    let path = dir.path().join("webarena-verified.json");
    std::fs::write(&path, serde_json::to_string(&tasks).unwrap()).unwrap();
    let message = WebArenaSuite::from_file(&path, Dataset::Verified, SiteConfig::new())
        .unwrap_err()
        .to_string();
    assert!(message.contains("task at index 3 (task_id 3)"), "{message}");
    assert!(message.contains("unknown status `DONE`"), "{message}");

    // Broken JSON: the line is where the parser stopped.
    std::fs::write(&path, "[\n{\"task_id\": 1,\n").unwrap();
    let error = WebArenaSuite::from_file(&path, Dataset::Verified, SiteConfig::new()).unwrap_err();
    assert!(
        matches!(error, DomainError::Parse { line: 3, .. }),
        "{error}"
    );

    // A missing file names its path.
    let missing = dir.path().join("nope.json");
    let message = WebArenaSuite::from_file(&missing, Dataset::Original, SiteConfig::new())
        .unwrap_err()
        .to_string();
    assert!(message.contains("nope.json"), "{message}");
}
