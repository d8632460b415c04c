//! Scoring a finished episode: the task's evaluators, run in the task's
//! order with their scores multiplied, as WebArena does.

use std::time::Duration;

use hyperagents_domain::judge::Judge;
use hyperagents_domain::{DomainError, Score};
use secrecy::SecretString;

use crate::helpers;
use crate::original;
use crate::page::EvalPage;
use crate::suite::ResolvedTask;
use crate::task::{EvalType, FuzzyReference, ReferenceAnswer, TaskEval, VerifiedEvaluator};
use crate::verified;

/// Settings of the evaluators.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Wait after each `program_html` navigation before reading the page
    /// (WebArena sleeps 3 s, letting scripts render the page).
    pub settle_after_goto: Duration,
    /// The shopping site's administrator account, for the `func:shopping_*`
    /// helpers (they query Magento's REST API). Without it those tasks are
    /// unsupported.
    pub shopping_admin_api: Option<ApiCredentials>,
    /// Time limit of each REST call the helpers make.
    pub http_timeout: Duration,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            settle_after_goto: Duration::from_secs(3),
            shopping_admin_api: None,
            http_timeout: Duration::from_secs(30),
        }
    }
}

/// A username and password (never logged).
#[derive(Debug, Clone)]
pub struct ApiCredentials {
    pub username: String,
    pub password: SecretString,
}

/// One evaluator's result.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PartResult {
    pub score: f64,
    /// What failed, without the expected values.
    pub failures: Vec<String>,
}

/// Scores `answer` (the agent's final answer; empty when it gave none) and
/// the state `page` shows, for `task`.
///
/// For `test.raw.json` tasks the answer is free text. For
/// `webarena-verified.json` tasks it is the JSON response that format asks
/// agents for (`{"task_type": "RETRIEVE", "status": "SUCCESS",
/// "retrieved_data": [...]}`, bare or in a ```json block); those tasks
/// never touch `page`.
///
/// `page` must be a page the host controls, left where the agent finished:
/// `url_match` reads its URL and `program_html` navigates it and runs the
/// task's locators in it. `judge` decides `fuzzy_match` references.
///
/// Returns [`DomainError::Unsupported`] (before touching the page) when the
/// task needs something this crate cannot do — see [`ensure_evaluable`] —
/// and [`DomainError::Environment`] when the browser or a site API fails;
/// neither is a score.
pub async fn evaluate(
    task: &ResolvedTask,
    answer: &str,
    page: &mut dyn EvalPage,
    judge: &dyn Judge,
    options: &EvalOptions,
) -> Result<Score, DomainError> {
    ensure_evaluable(task, options)?;
    let mut score = 1.0;
    let mut failures = Vec::new();
    match &task.task().eval {
        TaskEval::Original(eval) => {
            for eval_type in &eval.eval_types {
                let part = match eval_type {
                    EvalType::StringMatch => {
                        original::string_match(
                            eval.reference_answers.as_deref().unwrap_or_default(),
                            task.intent(),
                            eval.string_note.as_deref(),
                            answer,
                            judge,
                        )
                        .await?
                    }
                    EvalType::UrlMatch => {
                        let current = page.current_url().await.map_err(|error| {
                            DomainError::Environment(format!("evaluation page: {error}"))
                        })?;
                        let reference = task.reference_url.as_deref().unwrap_or_default();
                        let matched = original::url_match(reference, &current);
                        PartResult {
                            score: if matched { 1.0 } else { 0.0 },
                            failures: if matched {
                                Vec::new()
                            } else {
                                vec!["url_match: the final URL is not the expected page".into()]
                            },
                        }
                    }
                    EvalType::ProgramHtml => {
                        original::program_html(
                            &task.program_html,
                            page,
                            task.site_config(),
                            options,
                        )
                        .await?
                    }
                    EvalType::Other(name) => {
                        return Err(DomainError::Unsupported(format!(
                            "eval type `{name}` is not supported"
                        )));
                    }
                };
                score *= part.score;
                failures.extend(part.failures);
            }
        }
        TaskEval::Verified(evaluators) => {
            for evaluator in evaluators {
                let VerifiedEvaluator::AgentResponse(check) = evaluator else {
                    // ensure_evaluable has refused these already.
                    return Err(DomainError::Unsupported(network_reason()));
                };
                let part = verified::evaluate_agent_response(
                    check,
                    task.sites(),
                    task.site_config(),
                    answer,
                );
                score *= part.score;
                failures.extend(part.failures);
            }
        }
    }
    #[allow(clippy::float_cmp)] // products of 0.0 and 1.0
    let success = score == 1.0;
    Ok(Score {
        value: score,
        success,
        reason: if failures.is_empty() {
            "all checks passed".into()
        } else {
            failures.join("; ")
        },
    })
}

/// Fails with [`DomainError::Unsupported`] when `task` cannot be scored
/// here: an unknown eval type or reference kind, a `url_note` other than
/// "GOLD in PRED", a missing reference, a `func:` helper that is not
/// implemented or lacks its credentials, a webarena-verified
/// `NetworkEventEvaluator` (it needs a recorded network trace), or a
/// results schema using a value type not implemented (see
/// [`crate::verified_supported_types`]).
pub fn ensure_evaluable(task: &ResolvedTask, options: &EvalOptions) -> Result<(), DomainError> {
    let unsupported = |message: String| {
        Err(DomainError::Unsupported(format!(
            "task {}: {message}",
            task.id()
        )))
    };
    match &task.task().eval {
        TaskEval::Original(eval) => {
            for eval_type in &eval.eval_types {
                match eval_type {
                    EvalType::StringMatch => {
                        let Some(references) = &eval.reference_answers else {
                            return unsupported("string_match without reference answers".into());
                        };
                        for reference in references {
                            match reference {
                                ReferenceAnswer::Other(kind) => {
                                    return unsupported(format!(
                                        "reference answer kind `{kind}` is not supported"
                                    ));
                                }
                                ReferenceAnswer::FuzzyMatch(FuzzyReference::NotAchievable)
                                    if eval.string_note.is_none() =>
                                {
                                    return unsupported(
                                        "fuzzy_match \"N/A\" without a string_note".into(),
                                    );
                                }
                                _ => {}
                            }
                        }
                    }
                    EvalType::UrlMatch => {
                        if task.reference_url.is_none() {
                            return unsupported("url_match without a reference_url".into());
                        }
                        if let Some(note) = &eval.url_note
                            && note != "GOLD in PRED"
                        {
                            return unsupported(format!("url_note `{note}` is not supported"));
                        }
                    }
                    EvalType::ProgramHtml => {
                        for name in helpers::task_helpers(task.task()) {
                            if let Some(reason) = helpers::unsupported_reason(&name, options) {
                                return unsupported(reason);
                            }
                        }
                    }
                    EvalType::Other(name) => {
                        return unsupported(format!("eval type `{name}` is not supported"));
                    }
                }
            }
        }
        TaskEval::Verified(evaluators) => {
            for evaluator in evaluators {
                match evaluator {
                    VerifiedEvaluator::NetworkEvent(_) => return unsupported(network_reason()),
                    VerifiedEvaluator::AgentResponse(check) => {
                        if let Err(type_name) = verified::check_schema(&check.results_schema) {
                            return unsupported(format!(
                                "results value type `{type_name}` is not implemented"
                            ));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

fn network_reason() -> String {
    "webarena-verified's NetworkEventEvaluator needs a recorded network trace, which this \
     evaluator does not take"
        .into()
}
