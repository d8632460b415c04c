//! The two published task files, read as published.
//!
//! `test.raw.json` is WebArena's original format: one `eval` object with
//! `eval_types` (`string_match`, `url_match`, `program_html`), reference
//! answers, a reference URL and `program_html` checks. `webarena-verified.json`
//! is the revised format: `eval` is a list of evaluator configurations, an
//! `AgentResponseEvaluator` (a structured JSON answer: task type, status,
//! retrieved data typed by a JSON schema) and optional
//! `NetworkEventEvaluator`s (checks on the recorded network traffic).
//!
//! URLs keep their site placeholders here; [`crate::ResolvedTask`] fills them.

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use serde_json::Value;

use crate::site::Site;

/// Which published file a task came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dataset {
    /// `test.raw.json`: WebArena's original evaluators.
    Original,
    /// `webarena-verified.json`: the revised evaluators of webarena-verified.
    Verified,
}

impl Dataset {
    /// The file name inside the package's `assets/dataset` directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Dataset::Original => "test.raw.json",
            Dataset::Verified => "webarena-verified.json",
        }
    }
}

/// One task, with its URLs still templated (`__GITLAB__/…`).
#[derive(Debug, Clone, PartialEq)]
pub struct WebArenaTask {
    pub id: u32,
    pub sites: Vec<Site>,
    pub intent: String,
    pub intent_template: String,
    pub intent_template_id: u32,
    /// The tabs to open, first one active (the original format joins
    /// several with ` |AND| `).
    pub start_urls: Vec<String>,
    /// Original format only; the verified format assumes logged-in sites.
    pub require_login: bool,
    /// Whether the sites must be reset before the task (original format).
    pub require_reset: bool,
    /// The Playwright storage-state file WebArena's harness would load
    /// (original format; informative only).
    pub storage_state: Option<String>,
    pub eval: TaskEval,
}

/// How a task is scored.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskEval {
    Original(OriginalEval),
    Verified(Vec<VerifiedEvaluator>),
}

/// The `eval` object of `test.raw.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct OriginalEval {
    /// Applied in this order, their scores multiplied.
    pub eval_types: Vec<EvalType>,
    /// `reference_answers`, in file order (the order matters for the
    /// `fuzzy_match: "N/A"` rule, which overrides earlier results).
    pub reference_answers: Option<Vec<ReferenceAnswer>>,
    /// Alternatives joined with ` |OR| `.
    pub reference_url: Option<String>,
    pub program_html: Vec<ProgramHtmlCheck>,
    /// `url_match`'s rule; absent means WebArena's default "GOLD in PRED".
    pub url_note: Option<String>,
    /// Why an unachievable task cannot be done (the `ua_match` reference).
    pub string_note: Option<String>,
}

/// One of `eval_types`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvalType {
    StringMatch,
    UrlMatch,
    ProgramHtml,
    /// A type this crate does not know; such tasks are unsupported.
    Other(String),
}

/// One entry of `reference_answers`.
#[derive(Debug, Clone, PartialEq)]
pub enum ReferenceAnswer {
    ExactMatch(String),
    /// Every item must occur in the answer.
    MustInclude(Vec<String>),
    FuzzyMatch(FuzzyReference),
    /// A kind this crate does not know; such tasks are unsupported.
    Other(String),
}

/// A `fuzzy_match` reference.
#[derive(Debug, Clone, PartialEq)]
pub enum FuzzyReference {
    /// The literal `"N/A"`: the task is unachievable; the answer must be
    /// "N/A" or name the reason in `string_note`.
    NotAchievable,
    /// Each must be judged equivalent to the answer.
    References(Vec<String>),
}

/// One `program_html` item.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgramHtmlCheck {
    /// A URL, `last` (the page as the agent left it) or a `func:` helper
    /// call producing the URL.
    pub url: String,
    /// A JavaScript expression (`document.…`), a `func:` helper call, or
    /// empty for the whole page's HTML.
    pub locator: String,
    pub required: RequiredContents,
    /// Scripts run before the locator (e.g. expanding a collapsed panel).
    pub prep_actions: Vec<String>,
}

/// What a `program_html` item's selected text must satisfy.
#[derive(Debug, Clone, PartialEq)]
pub enum RequiredContents {
    ExactMatch(String),
    /// Every item must occur; an item may list alternatives with ` |OR| `.
    MustInclude(Vec<String>),
}

/// One entry of a verified task's `eval` list.
#[derive(Debug, Clone, PartialEq)]
pub enum VerifiedEvaluator {
    AgentResponse(AgentResponseCheck),
    /// A check on recorded network events; kept as published.
    NetworkEvent(Value),
}

/// webarena-verified's `AgentResponseEvaluator` configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentResponseCheck {
    /// JSON schema of `retrieved_data`.
    pub results_schema: Value,
    /// Whether retrieved items must come in the expected order.
    pub ordered: bool,
    pub expected: ExpectedResponse,
}

/// The expected structured answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedResponse {
    pub task_type: TaskType,
    pub status: ResponseStatus,
    /// `None` when the file leaves the key out (which the package treats
    /// differently from an explicit `null`).
    pub retrieved_data: Option<Value>,
}

/// What kind of work a verified task asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskType {
    Retrieve,
    Mutate,
    Navigate,
}

impl TaskType {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskType::Retrieve => "RETRIEVE",
            TaskType::Mutate => "MUTATE",
            TaskType::Navigate => "NAVIGATE",
        }
    }
}

/// The outcome an agent reports in a verified task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseStatus {
    Success,
    ActionNotAllowedError,
    PermissionDeniedError,
    NotFoundError,
    DataValidationError,
    UnknownError,
}

impl ResponseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseStatus::Success => "SUCCESS",
            ResponseStatus::ActionNotAllowedError => "ACTION_NOT_ALLOWED_ERROR",
            ResponseStatus::PermissionDeniedError => "PERMISSION_DENIED_ERROR",
            ResponseStatus::NotFoundError => "NOT_FOUND_ERROR",
            ResponseStatus::DataValidationError => "DATA_VALIDATION_ERROR",
            ResponseStatus::UnknownError => "UNKNOWN_ERROR",
        }
    }
}

// ---------------------------------------------------------------------------
// The files' own shapes. Kept private: the public model above is converted
// by hand so that the file format stays an edge concern.

#[derive(Deserialize)]
pub(crate) struct RawOriginalTask {
    sites: Vec<Site>,
    task_id: u32,
    require_login: bool,
    storage_state: Option<String>,
    start_url: String,
    intent_template: String,
    intent: String,
    require_reset: bool,
    eval: RawOriginalEval,
    intent_template_id: u32,
}

#[derive(Deserialize)]
struct RawOriginalEval {
    eval_types: Vec<EvalType>,
    reference_answers: Option<ReferenceAnswers>,
    reference_url: Option<String>,
    #[serde(default)]
    program_html: Vec<RawProgramHtml>,
    url_note: Option<String>,
    string_note: Option<String>,
}

#[derive(Deserialize)]
struct RawProgramHtml {
    url: String,
    locator: String,
    required_contents: RequiredContents,
    #[serde(default)]
    prep_actions: Vec<String>,
}

#[derive(Deserialize)]
pub(crate) struct RawVerifiedTask {
    sites: Vec<Site>,
    task_id: u32,
    intent_template_id: u32,
    start_urls: Vec<String>,
    intent: String,
    intent_template: String,
    eval: Vec<RawVerifiedEvaluator>,
}

#[derive(Deserialize)]
#[serde(tag = "evaluator")]
enum RawVerifiedEvaluator {
    AgentResponseEvaluator {
        results_schema: Value,
        #[serde(default)]
        ordered: bool,
        expected: RawExpectedResponse,
    },
    NetworkEventEvaluator {
        #[serde(flatten)]
        config: serde_json::Map<String, Value>,
    },
}

#[derive(Deserialize)]
struct RawExpectedResponse {
    #[serde(alias = "performed_operation")]
    task_type: TaskType,
    status: ResponseStatus,
    #[serde(default, deserialize_with = "present")]
    retrieved_data: Option<Value>,
}

/// Keeps an explicit `null` as `Some(Value::Null)`; a missing key stays
/// `None` through `#[serde(default)]`.
fn present<'de, D: de::Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

impl From<RawOriginalTask> for WebArenaTask {
    fn from(raw: RawOriginalTask) -> Self {
        WebArenaTask {
            id: raw.task_id,
            sites: raw.sites,
            intent: raw.intent,
            intent_template: raw.intent_template,
            intent_template_id: raw.intent_template_id,
            start_urls: raw
                .start_url
                .split(" |AND| ")
                .map(|url| url.trim().to_string())
                .collect(),
            require_login: raw.require_login,
            require_reset: raw.require_reset,
            storage_state: raw.storage_state,
            eval: TaskEval::Original(OriginalEval {
                eval_types: raw.eval.eval_types,
                reference_answers: raw.eval.reference_answers.map(|answers| answers.0),
                reference_url: raw.eval.reference_url,
                program_html: raw
                    .eval
                    .program_html
                    .into_iter()
                    .map(|check| ProgramHtmlCheck {
                        url: check.url,
                        locator: check.locator,
                        required: check.required_contents,
                        prep_actions: check.prep_actions,
                    })
                    .collect(),
                url_note: raw.eval.url_note,
                string_note: raw.eval.string_note,
            }),
        }
    }
}

impl From<RawVerifiedTask> for WebArenaTask {
    fn from(raw: RawVerifiedTask) -> Self {
        WebArenaTask {
            id: raw.task_id,
            sites: raw.sites,
            intent: raw.intent,
            intent_template: raw.intent_template,
            intent_template_id: raw.intent_template_id,
            start_urls: raw.start_urls,
            require_login: true,
            require_reset: false,
            storage_state: None,
            eval: TaskEval::Verified(
                raw.eval
                    .into_iter()
                    .map(|evaluator| match evaluator {
                        RawVerifiedEvaluator::AgentResponseEvaluator {
                            results_schema,
                            ordered,
                            expected,
                        } => VerifiedEvaluator::AgentResponse(AgentResponseCheck {
                            results_schema,
                            ordered,
                            expected: ExpectedResponse {
                                task_type: expected.task_type,
                                status: expected.status,
                                retrieved_data: expected.retrieved_data,
                            },
                        }),
                        RawVerifiedEvaluator::NetworkEventEvaluator { mut config } => {
                            config.insert("evaluator".into(), "NetworkEventEvaluator".into());
                            VerifiedEvaluator::NetworkEvent(Value::Object(config))
                        }
                    })
                    .collect(),
            ),
        }
    }
}

impl<'de> Deserialize<'de> for EvalType {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(match name.as_str() {
            "string_match" => EvalType::StringMatch,
            "url_match" => EvalType::UrlMatch,
            "program_html" => EvalType::ProgramHtml,
            _ => EvalType::Other(name),
        })
    }
}

impl<'de> Deserialize<'de> for TaskType {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        [TaskType::Retrieve, TaskType::Mutate, TaskType::Navigate]
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(&name))
            .ok_or_else(|| de::Error::custom(format!("unknown task_type `{name}`")))
    }
}

impl<'de> Deserialize<'de> for ResponseStatus {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        [
            ResponseStatus::Success,
            ResponseStatus::ActionNotAllowedError,
            ResponseStatus::PermissionDeniedError,
            ResponseStatus::NotFoundError,
            ResponseStatus::DataValidationError,
            ResponseStatus::UnknownError,
        ]
        .into_iter()
        .find(|status| status.as_str().eq_ignore_ascii_case(&name))
        .ok_or_else(|| de::Error::custom(format!("unknown status `{name}`")))
    }
}

impl<'de> Deserialize<'de> for RequiredContents {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            exact_match: Option<String>,
            must_include: Option<Vec<String>>,
        }
        let raw = Raw::deserialize(deserializer)?;
        // WebArena checks `exact_match` first.
        match (raw.exact_match, raw.must_include) {
            (Some(exact), _) => Ok(RequiredContents::ExactMatch(exact)),
            (None, Some(items)) => Ok(RequiredContents::MustInclude(items)),
            (None, None) => Err(de::Error::custom(
                "required_contents needs `exact_match` or `must_include`",
            )),
        }
    }
}

/// `reference_answers` in file order.
struct ReferenceAnswers(Vec<ReferenceAnswer>);

impl<'de> Deserialize<'de> for ReferenceAnswers {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct InOrder;
        impl<'de> Visitor<'de> for InOrder {
            type Value = ReferenceAnswers;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of reference answers")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut answers = Vec::new();
                while let Some(kind) = map.next_key::<String>()? {
                    let answer = match kind.as_str() {
                        "exact_match" => ReferenceAnswer::ExactMatch(map.next_value()?),
                        "must_include" => ReferenceAnswer::MustInclude(map.next_value()?),
                        "fuzzy_match" => {
                            ReferenceAnswer::FuzzyMatch(match map.next_value::<Value>()? {
                                Value::String(text) if text == "N/A" => {
                                    FuzzyReference::NotAchievable
                                }
                                Value::Array(items) => FuzzyReference::References(
                                    items
                                        .into_iter()
                                        .map(|item| match item {
                                            Value::String(text) => Ok(text),
                                            other => Err(de::Error::custom(format!(
                                                "fuzzy_match items must be strings, found {other}"
                                            ))),
                                        })
                                        .collect::<Result<_, _>>()?,
                                ),
                                other => {
                                    return Err(de::Error::custom(format!(
                                        "fuzzy_match must be \"N/A\" or a list of strings, found {other}"
                                    )));
                                }
                            })
                        }
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                            ReferenceAnswer::Other(kind)
                        }
                    };
                    answers.push(answer);
                }
                Ok(ReferenceAnswers(answers))
            }
        }
        deserializer.deserialize_map(InOrder)
    }
}
