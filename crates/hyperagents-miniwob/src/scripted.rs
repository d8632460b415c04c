//! Scripted reference policies for a few MiniWoB tasks. They prove the
//! plumbing (observation → refs → real input → page reward) and drive the
//! throughput benchmark; they are not agents.

use std::time::{Duration, Instant};

use hyperagents_browser::{BrowserError, Element, Observation, WebEnvironment};
use hyperagents_domain::{DomainError, Environment};
use serde_json::json;

/// Tasks with a scripted policy.
pub const SCRIPTED_TASKS: &[&str] = &[
    "click-button",
    "click-checkboxes",
    "click-link",
    "click-test",
    "click-test-2",
    "enter-text",
    "focus-text",
];

/// Why a scripted policy could not finish.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("no scripted policy for `{0}`")]
    NoPolicy(String),
    #[error("{task}: {message}")]
    Stuck { task: String, message: String },
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Browser(#[from] BrowserError),
}

/// Latencies of the steps a policy took, by kind.
#[derive(Debug, Clone, Default)]
pub struct StepTimings {
    /// Collecting and rendering an observation.
    pub observe: Vec<Duration>,
    pub click: Vec<Duration>,
    pub type_text: Vec<Duration>,
}

impl StepTimings {
    pub fn extend(&mut self, other: StepTimings) {
        self.observe.extend(other.observe);
        self.click.extend(other.click);
        self.type_text.extend(other.type_text);
    }
}

/// Runs the scripted policy for `task` in `env` until its last action.
pub async fn solve(
    env: &mut WebEnvironment,
    task: &str,
    timings: &mut StepTimings,
) -> Result<(), ScriptError> {
    let instruction = env.instruction();
    let stuck = |message: String| ScriptError::Stuck {
        task: task.to_string(),
        message,
    };
    let observation = observe(env, timings).await?;
    let find = |what: &str, matches: &dyn Fn(&Element) -> bool| -> Result<u64, ScriptError> {
        observation
            .elements
            .iter()
            .find(|e| matches(e))
            .map(|e| e.reference)
            .ok_or_else(|| stuck(format!("no {what} in the observation")))
    };
    match task {
        "click-button" => {
            let label = quoted(&instruction).ok_or_else(|| stuck(instruction.clone()))?;
            let button = find("button", &|e| {
                e.tag == "button" && e.text.as_deref() == Some(label)
            })?;
            click(env, button, timings).await
        }
        "click-test" => {
            let button = find("button", &|e| e.tag == "button")?;
            click(env, button, timings).await
        }
        "click-test-2" => {
            let label = instruction
                .trim_end_matches('.')
                .rsplit(' ')
                .next()
                .unwrap_or_default()
                .to_string();
            let button = find("button", &|e| {
                e.tag == "button" && e.text.as_deref() == Some(&label)
            })?;
            click(env, button, timings).await
        }
        "click-link" => {
            let label = quoted(&instruction).ok_or_else(|| stuck(instruction.clone()))?;
            let link = find("link", &|e| {
                (e.tag == "a" || e.clickable) && e.text.as_deref() == Some(label)
            })?;
            click(env, link, timings).await
        }
        "focus-text" => {
            let input = find("text field", &|e| is_text_input(e))?;
            click(env, input, timings).await
        }
        "enter-text" => {
            let text = quoted(&instruction).ok_or_else(|| stuck(instruction.clone()))?;
            let input = find("text field", &|e| is_text_input(e))?;
            let submit = find("Submit", &|e| {
                e.tag == "button" && e.text.as_deref() == Some("Submit")
            })?;
            type_text(env, input, text, timings).await?;
            click(env, submit, timings).await
        }
        "click-checkboxes" => {
            let wanted = checkbox_words(&instruction).ok_or_else(|| stuck(instruction.clone()))?;
            let submit = find("Submit", &|e| {
                e.tag == "button" && e.text.as_deref() == Some("Submit")
            })?;
            let boxes: Vec<u64> = observation
                .elements
                .iter()
                .filter(|e| e.input_type.as_deref() == Some("checkbox"))
                .filter(|e| e.label.as_deref().is_some_and(|l| wanted.contains(&l)))
                .map(|e| e.reference)
                .collect();
            if boxes.len() != wanted.len() {
                return Err(stuck(format!(
                    "found {} of {} checkboxes",
                    boxes.len(),
                    wanted.len()
                )));
            }
            for checkbox in boxes {
                click(env, checkbox, timings).await?;
            }
            click(env, submit, timings).await
        }
        other => Err(ScriptError::NoPolicy(other.to_string())),
    }
}

async fn observe(
    env: &mut WebEnvironment,
    timings: &mut StepTimings,
) -> Result<Observation, ScriptError> {
    let started = Instant::now();
    let observation = env.observation().await?;
    // Rendering is part of what an agent's observe costs.
    let _text = observation.render(1500, &[]);
    timings.observe.push(started.elapsed());
    Ok(observation)
}

async fn click(
    env: &mut WebEnvironment,
    reference: u64,
    timings: &mut StepTimings,
) -> Result<(), ScriptError> {
    let started = Instant::now();
    env.act("click", &json!({"ref": reference})).await?;
    timings.click.push(started.elapsed());
    Ok(())
}

async fn type_text(
    env: &mut WebEnvironment,
    reference: u64,
    text: &str,
    timings: &mut StepTimings,
) -> Result<(), ScriptError> {
    let started = Instant::now();
    env.act("type", &json!({"ref": reference, "text": text}))
        .await?;
    timings.type_text.push(started.elapsed());
    Ok(())
}

fn is_text_input(element: &Element) -> bool {
    element.tag == "input" && element.input_type.as_deref() == Some("text")
}

/// The text between the first and the last double quote.
fn quoted(instruction: &str) -> Option<&str> {
    let start = instruction.find('"')?;
    let end = instruction.rfind('"')?;
    (end > start).then(|| &instruction[start + 1..end])
}

/// `Select a, b and click Submit.` → `[a, b]`; `Select nothing …` → `[]`.
fn checkbox_words(instruction: &str) -> Option<Vec<&str>> {
    let list = instruction
        .strip_prefix("Select ")?
        .strip_suffix(" and click Submit.")?;
    if list == "nothing" {
        return Some(Vec::new());
    }
    Some(list.split(", ").map(str::trim).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_parse() {
        assert_eq!(quoted(r#"Click on the "Ok" button."#), Some("Ok"));
        assert_eq!(quoted("no quotes"), None);
        assert_eq!(
            checkbox_words("Select vel, nunc and click Submit."),
            Some(vec!["vel", "nunc"])
        );
        assert_eq!(
            checkbox_words("Select nothing and click Submit."),
            Some(vec![])
        );
        assert_eq!(checkbox_words("Click it."), None);
    }
}
