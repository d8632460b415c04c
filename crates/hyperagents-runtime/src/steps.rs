//! An episode as the steps it took — what the agent saw, chose and got — so
//! that a meta agent's own script can look for patterns across episodes (one
//! action repeated until the cap, typing into the wrong element, a wrong final
//! answer) without reading span trees.

use serde::Serialize;
use serde_json::Value;

use crate::trace::{SpanKind, SpanRecord, Trajectory};

/// Lines of the observation shown on each side of the acted-on element.
const CONTEXT_LINES: usize = 2;

/// One episode, step by step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EpisodeSteps {
    pub task: String,
    pub seed: u64,
    pub goal: String,
    pub success: bool,
    /// The scorer's reason (never the expected answer).
    pub reason: String,
    /// Why the episode stopped early, if it did.
    pub stopped: Option<String>,
    pub steps: Vec<Step>,
}

/// One environment action or tool call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// 1-based, in the order the episode took them.
    pub index: usize,
    /// `click`, `type`, `answer`, a tool's name, …
    pub action: String,
    /// `action` or `tool`.
    pub kind: &'static str,
    pub args: Value,
    /// What the environment said back.
    pub result: Option<String>,
    /// Why the environment refused it.
    pub error: Option<String>,
    /// The latest observation's line for the element acted on (`[ref] …`).
    pub target: Option<String>,
    /// That line with a few lines around it.
    pub around: Option<String>,
    /// The whole observation this step acted on, so that a meta agent's
    /// script can ask what else the page offered (say, the element whose
    /// text the goal quotes) — the script chooses what any prompt shows.
    pub observation: Option<String>,
    /// Whether the next observation differs from the one this step acted on
    /// (`None` when either is missing): a step that changes nothing, repeated,
    /// is how most failed web episodes end.
    pub page_changed: Option<bool>,
    /// The model's last answer before this step (the choice it made).
    pub model_reply: Option<Value>,
}

/// The steps of `trajectory`, in order.
pub fn episode_steps(trajectory: &Trajectory) -> EpisodeSteps {
    let spans = &trajectory.spans;
    let goal = spans
        .iter()
        .find(|s| s.kind == SpanKind::Episode)
        .and_then(|s| s.input.get("goal"))
        .map(text_of)
        .unwrap_or_default();
    let mut steps = Vec::new();
    for (position, span) in spans.iter().enumerate() {
        let kind = match span.kind {
            SpanKind::Action => "action",
            SpanKind::Tool => "tool",
            _ => continue,
        };
        let args = span
            .input
            .get("args")
            .cloned()
            .unwrap_or_else(|| span.input.clone());
        let seen = observation_before(spans, position);
        let next = observation_after(spans, position);
        let reference = args.get("ref").and_then(Value::as_u64);
        let (target, around) = match (&seen, reference) {
            (Some(text), Some(reference)) => element_lines(text, reference),
            _ => (None, None),
        };
        steps.push(Step {
            index: steps.len() + 1,
            action: span.name.clone(),
            kind,
            args,
            result: span.output.as_ref().map(|o| match o.get("message") {
                Some(message) => text_of(message),
                None => text_of(o),
            }),
            error: span.error.clone(),
            target,
            around,
            observation: seen.clone(),
            page_changed: match (&seen, &next) {
                (Some(before), Some(after)) => Some(before != after),
                _ => None,
            },
            model_reply: last_reply_before(spans, position),
        });
    }
    let summary = trajectory.summary.as_ref();
    EpisodeSteps {
        task: trajectory.header.task.clone(),
        seed: trajectory.header.seed,
        goal,
        success: summary.is_some_and(|s| s.success),
        reason: summary.map(|s| s.reason.clone()).unwrap_or_default(),
        stopped: summary.and_then(|s| s.stopped.clone()),
        steps,
    }
}

/// The last observation taken before span `position`.
fn observation_before(spans: &[SpanRecord], position: usize) -> Option<String> {
    spans[..position]
        .iter()
        .rev()
        .find(|s| s.kind == SpanKind::Observe && s.output.is_some())
        .and_then(|s| s.output.as_ref().map(text_of))
}

/// The first observation taken after span `position`.
fn observation_after(spans: &[SpanRecord], position: usize) -> Option<String> {
    spans[position + 1..]
        .iter()
        .find(|s| s.kind == SpanKind::Observe && s.output.is_some())
        .and_then(|s| s.output.as_ref().map(text_of))
}

/// The output of the last model call before span `position`.
fn last_reply_before(spans: &[SpanRecord], position: usize) -> Option<Value> {
    spans[..position]
        .iter()
        .rev()
        .find(|s| s.kind == SpanKind::Llm && s.output.is_some())
        .and_then(|s| s.output.clone())
}

/// The observation line starting with `[reference]`, and it with its neighbours.
fn element_lines(observation: &str, reference: u64) -> (Option<String>, Option<String>) {
    let lines: Vec<&str> = observation.lines().collect();
    let marker = format!("[{reference}]");
    let Some(at) = lines
        .iter()
        .position(|l| l.trim_start().starts_with(&marker))
    else {
        return (None, None);
    };
    let from = at.saturating_sub(CONTEXT_LINES);
    let to = (at + CONTEXT_LINES + 1).min(lines.len());
    (
        Some(lines[at].trim().to_string()),
        Some(lines[from..to].join("\n")),
    )
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{EpisodeHeader, EpisodeSummary, EpisodeTiming};
    use serde_json::json;

    fn span(
        id: u64,
        kind: SpanKind,
        name: &str,
        input: Value,
        output: Option<Value>,
    ) -> SpanRecord {
        SpanRecord {
            id,
            parent: None,
            kind,
            name: name.into(),
            input,
            output,
            error: None,
            tokens_in: 0,
            tokens_out: 0,
            tokens_cached: 0,
            cost: 0.0,
            start_ms: id * 10,
            end_ms: Some(id * 10 + 5),
        }
    }

    fn trajectory(spans: Vec<SpanRecord>) -> Trajectory {
        Trajectory {
            header: EpisodeHeader {
                domain: "miniwob".into(),
                task: "click-button".into(),
                seed: 3,
                program: "p".into(),
                started_at_unix_ms: 0,
            },
            spans,
            summary: Some(EpisodeSummary {
                domain: "miniwob".into(),
                task: "click-button".into(),
                seed: 3,
                program: "p".into(),
                success: false,
                score: 0.0,
                reason: "wrong button".into(),
                failure: None,
                stopped: Some("step budget spent".into()),
                steps: 2,
                calls: 4,
                llm_calls: 2,
                tokens_in: 0,
                tokens_out: 0,
                cost: 0.0,
                duration_ms: 0,
                files_used: Vec::new(),
                timing: EpisodeTiming::default(),
            }),
        }
    }

    #[test]
    fn steps_carry_what_was_seen_chosen_and_returned() {
        let page =
            "url: x\n[1] div \"Pick one\"\n[2] button \"yes\"\n[3] button \"no\"\n[4] span \"\"";
        let t = trajectory(vec![
            span(
                0,
                SpanKind::Episode,
                "episode",
                json!({"goal": "Click no"}),
                None,
            ),
            span(
                1,
                SpanKind::Observe,
                "observe",
                Value::Null,
                Some(json!(page)),
            ),
            span(
                2,
                SpanKind::Llm,
                "llm",
                json!({}),
                Some(json!({"action": "click", "ref": 2})),
            ),
            span(
                3,
                SpanKind::Action,
                "click",
                json!({"action": "click", "args": {"ref": 2}}),
                Some(json!({"message": "clicked [2]", "done": false})),
            ),
            span(
                4,
                SpanKind::Observe,
                "observe",
                Value::Null,
                Some(json!(page)),
            ),
            span(
                5,
                SpanKind::Llm,
                "llm",
                json!({}),
                Some(json!({"action": "click", "ref": 9})),
            ),
            SpanRecord {
                error: Some("unknown ref 9".into()),
                ..span(
                    6,
                    SpanKind::Action,
                    "click",
                    json!({"action": "click", "args": {"ref": 9}}),
                    None,
                )
            },
        ]);
        let steps = episode_steps(&t);
        assert_eq!(steps.goal, "Click no");
        assert_eq!(steps.reason, "wrong button");
        assert_eq!(steps.steps.len(), 2);
        let first = &steps.steps[0];
        assert_eq!(first.index, 1);
        assert_eq!(first.action, "click");
        assert_eq!(first.args, json!({"ref": 2}));
        assert_eq!(first.result.as_deref(), Some("clicked [2]"));
        assert_eq!(first.target.as_deref(), Some("[2] button \"yes\""));
        assert_eq!(
            first.around.as_deref(),
            Some(
                "url: x\n[1] div \"Pick one\"\n[2] button \"yes\"\n[3] button \"no\"\n[4] span \"\""
            )
        );
        assert_eq!(first.observation.as_deref(), Some(page));
        assert_eq!(
            first.page_changed,
            Some(false),
            "the page read the same after it"
        );
        assert_eq!(
            first.model_reply,
            Some(json!({"action": "click", "ref": 2}))
        );
        let second = &steps.steps[1];
        assert_eq!(second.error.as_deref(), Some("unknown ref 9"));
        assert_eq!(
            second.observation.as_deref(),
            Some(page),
            "the latest observation before it"
        );
        assert_eq!(second.target, None);
        assert_eq!(second.page_changed, None, "no observation came after it");
    }

    #[test]
    fn tool_calls_are_steps_too() {
        let t = trajectory(vec![span(
            1,
            SpanKind::Tool,
            "calculator",
            json!({"expression": "2+2"}),
            Some(json!("4")),
        )]);
        let steps = episode_steps(&t);
        assert_eq!(steps.steps[0].kind, "tool");
        assert_eq!(steps.steps[0].args, json!({"expression": "2+2"}));
        assert_eq!(steps.steps[0].result.as_deref(), Some("4"));
    }
}
