//! Generated observation payloads (issue 14): what the isolated-world helper returns for
//! `observe`, carrying whatever the page put in it — huge titles and URLs, odd text, positions
//! far outside any screen, wrong types, missing or extra fields. Reading never panics; an
//! unexpected shape is an error naming `observe` and the field; and what is read renders
//! within its token cap, reporting what it left out.
//!
//! A few hundred cases per property by default; `scripts/fuzz.sh` (or `PROPTEST_CASES=N`) runs
//! many more.
#![allow(clippy::unwrap_used)]

use hyperagents_browser::observe::{MAX_HEADER_CHARS, approx_tokens};
use hyperagents_browser::{Layout, Observation, TabInfo};
use hyperagents_testkit::fuzz::check;
use proptest::prelude::*;
use serde_json::{Value, json};

/// Text a page may hold: short or long, any characters, quotes and newlines.
fn page_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "\\PC{0,30}",
        1 => "[\"\\\\\n\t\u{0}\u{7f}<>]{0,10}",
        1 => (0usize..2_000).prop_map(|n| "é".repeat(n)),
    ]
}

/// A coordinate as a page's layout may give it.
fn pixels() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (-5000i64..5000).prop_map(Value::from),
        1 => Just(json!(1e30)),
        1 => Just(json!(-1.5e300)),
        1 => Just(json!(18_446_744_073_709_551_615_u64)),
        1 => Just(json!(0.5)),
        1 => Just(Value::Null),
    ]
}

fn element() -> impl Strategy<Value = Value> {
    (
        (0u64..1000, "[a-z]{1,8}", pixels(), pixels(), pixels(), pixels()),
        (
            prop::option::of(page_text()),
            prop::option::of(page_text()),
            prop::option::of(page_text()),
            prop::option::of(any::<bool>()),
            prop::option::of(prop::collection::vec(page_text(), 0..5)),
            any::<bool>(),
        ),
    )
        .prop_map(|((reference, tag, x, y, w, h), (text, label, value, checked, options, clickable))| {
            let mut element = json!({"ref": reference, "tag": tag, "x": x, "y": y, "w": w, "h": h,
                                     "clickable": clickable});
            for (key, v) in [("text", text), ("label", label), ("value", value)] {
                if let Some(v) = v {
                    element[key] = json!(v);
                }
            }
            if let Some(checked) = checked {
                element["checked"] = json!(checked);
            }
            if let Some(options) = options {
                element["options"] = json!(options);
            }
            element
        })
}

/// Values to put in place of a field: wrong types, deep nesting.
fn replacement() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(json!(-1)),
        Just(json!("12")),
        Just(json!([1, 2])),
        Just(json!({"ok": 1})),
        Just(json!(true)),
        (1usize..100).prop_map(|d| (0..d).fold(json!(0), |inner, _| json!([inner]))),
    ]
}

#[derive(Debug, Clone)]
enum Edit {
    /// Replace field `field` of element `element` (or of the observation when there are none).
    Replace(usize, usize, Value),
    Remove(usize, usize),
    Extra(usize, Value),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<usize>(), replacement())
            .prop_map(|(e, f, v)| Edit::Replace(e, f, v)),
        (any::<usize>(), any::<usize>()).prop_map(|(e, f)| Edit::Remove(e, f)),
        (any::<usize>(), replacement()).prop_map(|(e, v)| Edit::Extra(e, v)),
    ]
}

/// The object an edit applies to: one of the elements, or the observation itself (also when
/// an earlier edit left no element objects).
fn target(observation: &mut Value, choice: usize) -> &mut serde_json::Map<String, Value> {
    let count = observation["elements"].as_array().map_or(0, Vec::len);
    let index = choice % (count + 1);
    if index < count && observation["elements"][index].is_object() {
        observation["elements"][index].as_object_mut().unwrap()
    } else {
        observation.as_object_mut().unwrap()
    }
}

fn payload() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            3 => Just("http://127.0.0.1:8123/miniwob/click-button.html".to_owned()),
            // Longer than any cap the test tries: shown whole, it would break every one.
            1 => (20_000usize..100_000).prop_map(|n| format!("data:text/html,{}", "a".repeat(n))),
        ],
        prop_oneof![
            3 => page_text(),
            1 => (20_000usize..100_000).prop_map(|n| "é".repeat(n)),
        ],
        (pixels(), pixels()),
        prop::collection::vec(element(), 0..30),
        prop::collection::vec(edit(), 0..3),
    )
        .prop_map(|(url, title, (width, height), elements, edits)| {
            let mut observation = json!({"url": url, "title": title, "width": width,
                                         "height": height, "elements": elements});
            for edit in edits {
                match edit {
                    Edit::Replace(e, f, value) => {
                        let object = target(&mut observation, e);
                        if let Some(key) = object.keys().nth(f % object.len().max(1)).cloned() {
                            object.insert(key, value);
                        }
                    }
                    Edit::Remove(e, f) => {
                        let object = target(&mut observation, e);
                        if let Some(key) = object.keys().nth(f % object.len().max(1)).cloned() {
                            object.remove(&key);
                        }
                    }
                    Edit::Extra(e, value) => {
                        target(&mut observation, e).insert("shadow".into(), value);
                    }
                }
            }
            observation
        })
}

/// The rendering's promises: every element shown or counted as omitted, and the text within
/// `max_tokens` beyond a header of bounded size (URL, title and tab URLs are clipped).
fn check_render(observation: &Observation, max_tokens: usize) -> Result<(), TestCaseError> {
    let tabs = [
        TabInfo {
            index: 0,
            url: "x".repeat(10_000),
            title: String::new(),
            current: true,
        },
        TabInfo {
            index: 1,
            url: String::new(),
            title: String::new(),
            current: false,
        },
    ];
    // Each clipped field quoted, every character escaped at worst (`\u0000`).
    let header_tokens = 3 * (MAX_HEADER_CHARS * 6 + 100) / 4;
    for (tabs, positions) in [(&tabs[..], true), (&[][..], false)] {
        let rendered = observation.render_with(max_tokens, tabs, Layout { positions });
        prop_assert_eq!(
            rendered.shown + rendered.omitted,
            observation.elements.len()
        );
        let tokens = approx_tokens(&rendered.text);
        prop_assert!(
            tokens <= max_tokens.max(header_tokens) + 30,
            "{} tokens rendered under a cap of {}",
            tokens,
            max_tokens
        );
        if rendered.omitted > 0 {
            prop_assert!(rendered.text.contains("more elements omitted"));
        }
    }
    Ok(())
}

#[test]
fn fuzz_observations_read_and_render_within_their_cap() {
    check(256, (payload(), 0usize..4000), |(value, max_tokens)| {
        match Observation::from_helper(value) {
            Ok(observation) => check_render(&observation, max_tokens)?,
            Err(error) => {
                let shown = error.to_string();
                prop_assert!(
                    shown
                        .contains("observe: the helper's observation has an unexpected shape at `"),
                    "{}",
                    shown
                );
            }
        }
        Ok(())
    });
}

#[test]
fn fuzz_observations_of_arbitrary_json_are_refused_naming_the_field() {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "\\PC{0,10}".prop_map(Value::String),
    ];
    let any_json = leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "url", "title", "elements", "ref", "tag", "x", "w", "ok"
                ]),
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    });
    check(128, any_json, |value| {
        if let Err(error) = Observation::from_helper(value) {
            prop_assert!(
                error.to_string().starts_with("script error: observe: "),
                "{}",
                error
            );
        }
        Ok(())
    });
}
