//! Generated WebArena task files (issue 14): valid tasks of both formats with values replaced
//! (wrong types, huge numbers, deep nesting, placeholders and separators in odd places), keys
//! removed or added, ids repeated, the text cut short or bit-flipped. Loading never panics or
//! hangs and its errors name the file; a loaded task resolves and is checked for evaluability
//! without panicking, its errors naming the task.
//!
//! A few hundred cases per property by default; `scripts/fuzz.sh` (or `PROPTEST_CASES=N`) runs
//! many more.

use hyperagents_domain::DomainError;
use hyperagents_testkit::fuzz::check;
use hyperagents_webarena::{Dataset, EvalOptions, WebArenaSuite, ensure_evaluable};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::common::{all_sites, original_task};

/// Original-format tasks covering every eval type, reference kind and `func:` helper shape.
fn original_seeds() -> Vec<Value> {
    vec![
        original_task(
            0,
            "What is the top-1 best-selling product?",
            json!({
                "eval_types": ["string_match"],
                "reference_answers": {"exact_match": "Quest Lumaflex Band"},
                "reference_url": "",
                "program_html": [],
                "string_note": "",
            }),
        ),
        original_task(
            1,
            "List the colours",
            json!({
                "eval_types": ["string_match"],
                "reference_answers": {"must_include": ["red", "blue |OR| navy"], "fuzzy_match": "N/A"},
                "reference_url": null,
                "program_html": [],
                "string_note": "the store sells none",
            }),
        ),
        original_task(
            2,
            "Open the order page",
            json!({
                "eval_types": ["url_match", "string_match"],
                "reference_answers": {"fuzzy_match": ["a", "b"]},
                "reference_url": "__SHOPPING__/sales/order |OR| __SHOPPING__/orders",
                "url_note": "GOLD in PRED",
                "program_html": [],
            }),
        ),
        original_task(
            3,
            "Update the project",
            json!({
                "eval_types": ["program_html"],
                "reference_answers": null,
                "reference_url": "",
                "program_html": [
                    {
                        "url": "func:shopping_get_latest_order_url()",
                        "locator": "document.querySelector('.title').outerText",
                        "required_contents": {"must_include": ["Done"]},
                        "prep_actions": ["document.querySelector('.more').click()"],
                    },
                    {
                        "url": "__GITLAB__/byteblaze/a11y",
                        "locator": "func:gitlab_get_project_memeber_role(__page__, 'yjlou')",
                        "required_contents": {"exact_match": "Developer"},
                    },
                    {
                        "url": "last",
                        "locator": "",
                        "required_contents": {"must_include": ["x"]},
                    },
                ],
            }),
        ),
    ]
}

/// Verified-format tasks covering the results schema's shapes and both evaluators.
fn verified_seeds() -> Vec<Value> {
    let task = |id: u32, schema: Value, expected: Value| {
        json!({
            "sites": ["shopping_admin"],
            "task_id": id,
            "intent_template_id": 279,
            "start_urls": ["__SHOPPING_ADMIN__"],
            "intent": "Get the top-2 best-selling products in 2022",
            "intent_template": "Get the top-{{n}} best-selling products in {{period}}",
            "instantiation_dict": {"n": 2},
            "eval": [{
                "evaluator": "AgentResponseEvaluator",
                "results_schema": schema,
                "expected": expected,
            }],
            "revision": 2,
        })
    };
    let mut network = task(
        3,
        json!({"type": "null"}),
        json!({"task_type": "navigate", "status": "SUCCESS", "retrieved_data": null}),
    );
    network["eval"].as_array_mut().unwrap().push(json!({
        "evaluator": "NetworkEventEvaluator",
        "ignored_query_params_patterns": ["page"],
        "expected": {"url": ["__GITLAB__/dashboard/todos"]},
    }));
    vec![
        task(
            0,
            json!({"type": "array", "items": {"type": "string"}}),
            json!({"task_type": "retrieve", "status": "SUCCESS",
                   "retrieved_data": ["Quest Lumaflex Band", ["Sprite Ball 65 cm", "Cruise Ball"]]}),
        ),
        task(
            1,
            json!({"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"},
                "price": {"type": "number", "format": "currency"},
                "when": {"type": "string", "format": "date"},
                "where": {"type": "object", "properties": {"city": {"type": "string"}}},
            }}}),
            json!({"task_type": "retrieve", "status": "SUCCESS",
                   "retrieved_data": [{"name": "a", "price": 1.5, "when": "2022-01-01", "where": {"city": "x"}}]}),
        ),
        task(
            2,
            json!({"type": "array", "items": {"type": "integer", "format": "month"}}),
            json!({"task_type": "mutate", "status": "NOT_FOUND_ERROR"}),
        ),
        network,
    ]
}

/// Values to put anywhere: wrong types, huge and odd numbers, placeholders and separators,
/// unknown enum names, deep nesting.
fn replacement() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(json!(true)),
        Just(json!(-1)),
        Just(json!(4_294_967_296_u64)),
        Just(json!(1.5)),
        Just(json!("")),
        Just(json!("func:")),
        Just(json!("func:shopping_get_sku_latest_review_rating('B0')")),
        Just(json!("func:unknown_helper(__page__, ")),
        Just(json!("__GITLAB__ |AND| __MAP__ |OR| __NOPE__")),
        Just(json!("N/A")),
        Just(json!("GOLD in PRED")),
        Just(json!([
            "string_match",
            "url_match",
            "program_html",
            "other_match"
        ])),
        Just(json!({"exact_match": ["a"]})),
        Just(json!({"type": "array", "items": {"type": "email"}})),
        Just(json!({"type": ["string", "null"]})),
        Just(json!({"$ref": "#"})),
        Just(json!(["shopping", "wikipedia", "nowhere"])),
        Just(json!("UNKNOWN_ERROR")),
        "\\PC{0,20}".prop_map(Value::String),
        any::<i64>().prop_map(Value::from),
        (1usize..120).prop_map(|depth| {
            (0..depth).fold(json!(1), |inner, i| {
                if i % 2 == 0 {
                    json!([inner])
                } else {
                    json!({"type": inner})
                }
            })
        }),
    ]
}

#[derive(Debug, Clone)]
enum Edit {
    /// Walk down by these child choices, then replace what is there.
    Replace(Vec<usize>, Value),
    /// Walk down, then remove a key of the object reached (or an element of the array).
    Remove(Vec<usize>),
    /// Walk down, then add a key to the object reached.
    Add(Vec<usize>, Value),
}

fn edit() -> impl Strategy<Value = Edit> {
    let path = prop::collection::vec(any::<usize>(), 0..6);
    prop_oneof![
        3 => (path.clone(), replacement()).prop_map(|(p, v)| Edit::Replace(p, v)),
        1 => path.clone().prop_map(Edit::Remove),
        1 => (path, replacement()).prop_map(|(p, v)| Edit::Add(p, v)),
    ]
}

/// The node `path` leads to, going down while there are children; with the last choice left
/// for the caller (a key or index to act on) when the node has children.
fn walk<'v>(mut value: &'v mut Value, path: &[usize]) -> (&'v mut Value, Option<usize>) {
    for (depth, &choice) in path.iter().enumerate() {
        let children = match &*value {
            Value::Array(items) => items.len(),
            Value::Object(map) => map.len(),
            _ => 0,
        };
        if children == 0 {
            return (value, None);
        }
        if depth + 1 == path.len() {
            return (value, Some(choice % children));
        }
        value = match value {
            Value::Array(items) => &mut items[choice % children],
            Value::Object(map) => map.values_mut().nth(choice % children).unwrap(),
            _ => unreachable!("a node with children"),
        };
    }
    (value, None)
}

fn apply(tasks: &mut Value, edit: &Edit) {
    match edit {
        Edit::Replace(path, new) => match walk(tasks, path) {
            (Value::Array(items), Some(i)) => items[i] = new.clone(),
            (Value::Object(map), Some(i)) => *map.values_mut().nth(i).unwrap() = new.clone(),
            (node, _) => *node = new.clone(),
        },
        Edit::Remove(path) => match walk(tasks, path) {
            (Value::Array(items), Some(i)) => {
                items.remove(i);
            }
            (Value::Object(map), Some(i)) => {
                let key = map.keys().nth(i).unwrap().clone();
                map.remove(&key);
            }
            _ => {}
        },
        Edit::Add(path, new) => {
            if let (Value::Object(map), _) = walk(tasks, path) {
                map.insert("unexpected_key".into(), new.clone());
            }
        }
    }
}

#[derive(Debug, Clone)]
enum TextEdit {
    None,
    Truncate(f64),
    Flip(usize, u8),
}

fn text_edit() -> impl Strategy<Value = TextEdit> {
    prop_oneof![
        4 => Just(TextEdit::None),
        1 => (0.0..1.0f64).prop_map(TextEdit::Truncate),
        1 => (any::<usize>(), 1..=255u8).prop_map(|(at, mask)| TextEdit::Flip(at, mask)),
    ]
}

/// A task file: seed tasks (ids possibly repeated), edited, serialized, maybe damaged.
fn task_file(seeds: Vec<Value>) -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec((prop::sample::select(seeds), 0u32..6), 1..4),
        prop::collection::vec(edit(), 0..4),
        text_edit(),
    )
        .prop_map(|(picked, edits, text_edit)| {
            let mut tasks = Value::Array(
                picked
                    .into_iter()
                    .map(|(mut task, id)| {
                        task["task_id"] = json!(id);
                        task
                    })
                    .collect(),
            );
            for edit in &edits {
                apply(&mut tasks, edit);
            }
            let mut bytes = serde_json::to_vec_pretty(&tasks).unwrap();
            match text_edit {
                TextEdit::None => {}
                TextEdit::Truncate(fraction) => {
                    bytes.truncate((bytes.len() as f64 * fraction) as usize);
                }
                TextEdit::Flip(at, mask) => {
                    let at = at % bytes.len();
                    bytes[at] ^= mask;
                }
            }
            bytes
        })
}

/// Loads `bytes` as a `dataset` file: its errors name the file; each loaded task resolves
/// against every site and is checked for evaluability without panicking, errors naming it.
fn check_file(dir: &std::path::Path, dataset: Dataset, bytes: &[u8]) -> Result<(), TestCaseError> {
    let path = dir.join(dataset.file_name());
    std::fs::write(&path, bytes).unwrap();
    let suite = match WebArenaSuite::from_file(&path, dataset, all_sites("http://127.0.0.1:9")) {
        Ok(suite) => suite,
        Err(error) => {
            // `file:line: …`, whatever is wrong with the content (bytes, JSON, fields).
            let shown = error.to_string();
            let file = path.display().to_string();
            prop_assert!(
                matches!(&error, DomainError::Parse { file: named, .. } if *named == file),
                "{}",
                shown
            );
            prop_assert!(shown.starts_with(&file), "{}", shown);
            return Ok(());
        }
    };
    for task in suite.tasks() {
        match suite.task(task.id) {
            Ok(resolved) => {
                if let Err(error) = ensure_evaluable(&resolved, &EvalOptions::default()) {
                    let shown = error.to_string();
                    prop_assert!(matches!(error, DomainError::Unsupported(_)), "{}", shown);
                    prop_assert!(shown.contains(&format!("task {}", task.id)), "{}", shown);
                }
            }
            Err(error) => {
                // Every site is configured, so only an unknown placeholder site is left.
                prop_assert!(matches!(error, DomainError::Unsupported(_)), "{}", error);
            }
        }
    }
    Ok(())
}

/// The generators start from valid tasks: unedited, every seed loads and resolves.
#[test]
fn seed_tasks_load_and_resolve() {
    let dir = tempfile::tempdir().unwrap();
    for (dataset, seeds) in [
        (Dataset::Original, original_seeds()),
        (Dataset::Verified, verified_seeds()),
    ] {
        let path = dir.path().join(dataset.file_name());
        std::fs::write(&path, serde_json::to_vec(&seeds).unwrap()).unwrap();
        let suite =
            WebArenaSuite::from_file(&path, dataset, all_sites("http://127.0.0.1:9")).unwrap();
        assert_eq!(suite.tasks().len(), seeds.len());
        for task in suite.tasks() {
            suite.task(task.id).unwrap();
        }
    }
}

#[test]
fn original_task_files_load_or_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    check(256, task_file(original_seeds()), |bytes| {
        check_file(dir.path(), Dataset::Original, &bytes)
    });
}

#[test]
fn verified_task_files_load_or_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    check(256, task_file(verified_seeds()), |bytes| {
        check_file(dir.path(), Dataset::Verified, &bytes)
    });
}

#[test]
fn task_files_of_arbitrary_bytes_load_or_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = (any::<bool>(), prop::collection::vec(any::<u8>(), 0..400));
    check(64, input, |(original, bytes)| {
        let dataset = if original {
            Dataset::Original
        } else {
            Dataset::Verified
        };
        check_file(dir.path(), dataset, &bytes)
    });
}
