//! The evolution engine's event log as typed records: what the engine writes
//! and what reports, the CLI and resume read back, one enum for all of them.
//!
//! Stored as the `events` table's `kind` column and `payload_json` (the
//! variant's fields), the shape runs have always been stored in: a run
//! recorded before this type existed reads as these variants. A kind this
//! build does not know, or a payload it cannot read, is an [`EventError`]
//! naming the event, never a panic; readers decide whether to skip it.

use std::path::PathBuf;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::evolution::EventRecord;

/// One entry of an evolution run's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload", rename_all = "snake_case")]
pub enum EvolutionEvent {
    /// The arguments the run was started with (what `resume` runs again).
    Launch(Box<LaunchRecord>),
    /// The run stopped before it was done.
    Stopped(Stopped),
    /// The token budget was spent before a generation.
    Budget(BudgetSpent),
    /// A child's smoke episode, before its staged evaluation.
    Smoke(SmokeEpisode),
    /// A meta agent's `quick_eval` call on train tasks.
    QuickEval(QuickEvalCall),
    /// The parents drawn for a generation.
    Parents(ParentsChosen),
    /// A meta step made (or failed to make) a child.
    Child(ChildMade),
    /// A rejected child goes back to its meta agent once.
    Repair(RepairRound),
    /// A child against its parent on the same tasks and seeds.
    Comparison(ChildComparison),
    /// A generation finished.
    Generation(GenerationDone),
    /// A generation's best node scored on the test split (after the last
    /// generation).
    Test(TestScore),
}

/// How an evolution run was started, as `resume` needs it: paths absolute,
/// so a resume from another directory finds the same files. Its own type,
/// converted by hand from the CLI's arguments, so the CLI's grammar can
/// change without breaking stored runs; the field names are those runs were
/// always stored with, and fields added later default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchRecord {
    pub run: String,
    pub program: PathBuf,
    /// A node (`RUN/NODE`) or program directory to start from instead.
    #[serde(default)]
    pub from: Option<String>,
    /// A node whose `meta/` goes on the seed (meta-level transfer).
    #[serde(default)]
    pub meta_from: Option<String>,
    pub suite: String,
    pub mode: String,
    pub generations: u64,
    pub children: usize,
    #[serde(default)]
    pub tasks: Vec<String>,
    pub stage1: usize,
    pub episodes: u64,
    pub concurrency: usize,
    #[serde(default)]
    pub no_test: bool,
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// A selection policy as JSON text.
    #[serde(default)]
    pub selection: Option<String>,
    #[serde(default)]
    pub program_selection: bool,
    #[serde(default)]
    pub parallel: Option<usize>,
    #[serde(default)]
    pub token_budget: Option<u64>,
    #[serde(default)]
    pub no_smoke: bool,
    #[serde(default)]
    pub no_repair: bool,
    /// 0 in runs stored before `quick_eval` existed: none for them.
    #[serde(default)]
    pub quick_eval_calls: u64,
    #[serde(default = "default_quick_eval_tasks")]
    pub quick_eval_tasks: usize,
    #[serde(default)]
    pub store: Option<PathBuf>,
    /// Runs stored before people's preferences counted: the default weight.
    #[serde(default = "default_feedback_weight")]
    pub feedback_weight: f64,
    /// The NATS server episodes ran on, and the coordinator's name there.
    #[serde(default)]
    pub nats: Option<String>,
    #[serde(default)]
    pub coordinator: Option<String>,
    /// Meta steps ran on workers too (runs stored before: here).
    #[serde(default)]
    pub meta_on_workers: bool,
}

fn default_quick_eval_tasks() -> usize {
    4
}

fn default_feedback_weight() -> f64 {
    0.25
}

/// Why a run stopped: interrupted (`interrupted` says by what, `message`
/// how), or at a stop request between generations (`before_generation`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stopped {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_generation: Option<u64>,
}

/// Fields default to 0: the log reads even where an older build wrote less.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BudgetSpent {
    pub before_generation: u64,
    pub token_budget: u64,
    pub meta_tokens: u64,
    pub episode_tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmokeEpisode {
    pub node: String,
    /// The evaluation run holding the episode (absent in runs stored before
    /// evaluations were kept per event: then `tokens` is all there is).
    #[serde(default)]
    pub eval_run: Option<i64>,
    #[serde(default)]
    pub tokens: u64,
    #[serde(default)]
    pub ok: bool,
    #[serde(default)]
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuickEvalCall {
    /// The child whose meta step made the call.
    pub node: String,
    /// 1 for the step's first call.
    #[serde(default)]
    pub call: u64,
    #[serde(default)]
    pub tasks: Vec<String>,
    /// As in [`SmokeEpisode::eval_run`].
    #[serde(default)]
    pub eval_run: Option<i64>,
    #[serde(default)]
    pub tokens: u64,
    #[serde(default)]
    pub success_rate: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParentsChosen {
    pub generation: u64,
    pub parents: Vec<String>,
    /// The program's own selection script, when one chose (or was tried).
    #[serde(default)]
    pub selector: Option<SelectorUsed>,
    /// The fitness parents were drawn by, for nodes where people's
    /// judgements made it differ from the automated score.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fitness: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectorUsed {
    /// `<node>/meta/select.py`.
    pub script: String,
    /// Why the script's answer was not used, when the configured policy
    /// chose instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildMade {
    pub node: String,
    pub parent: String,
    /// The node's status as stored (`valid`, `invalid`, …).
    pub status: String,
    #[serde(default)]
    pub errors: Vec<String>,
    #[serde(default)]
    pub meta_tokens: u64,
    /// Dollars the meta step cost (absent in runs stored before it was).
    #[serde(default)]
    pub meta_cost: Option<f64>,
    /// Prompt tokens the meta step's model calls read, and of those the ones
    /// the model reused from its cache instead of computing (0 in runs
    /// stored before they were recorded): what a layout that shares prefixes
    /// across calls and sibling steps saves shows here, in real runs.
    #[serde(default)]
    pub meta_prompt_tokens: u64,
    #[serde(default)]
    pub meta_prompt_reused: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepairRound {
    pub node: String,
    pub parent: String,
    #[serde(default)]
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildComparison {
    pub node: String,
    pub parent: String,
    /// `stage1` or `full`.
    pub stage: String,
    #[serde(default)]
    pub tasks: u64,
    /// Mean over tasks of child minus parent success rate.
    pub mean_difference: f64,
    /// Lower bound of its 95% interval; none with fewer than two tasks.
    pub lower_95: Option<f64>,
    pub accepted: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationDone {
    pub generation: u64,
    #[serde(default)]
    pub valid_children: u64,
    #[serde(default)]
    pub failed_attempts: u64,
    pub best: f64,
    pub mean: f64,
    #[serde(default)]
    pub improvement: f64,
    #[serde(default)]
    pub archive_size: u64,
    pub best_node: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestScore {
    pub generation: u64,
    #[serde(default)]
    pub node: String,
    pub success_rate: Option<f64>,
}

/// An event this build cannot read.
#[derive(Debug, thiserror::Error)]
#[error("event {seq} ({kind}) of run `{run}` cannot be read: {reason}")]
pub struct EventError {
    pub seq: i64,
    pub run: String,
    pub kind: String,
    pub reason: String,
}

impl EvolutionEvent {
    /// Every kind this build writes and reads.
    pub const KINDS: [&'static str; 11] = [
        "launch",
        "stopped",
        "budget",
        "smoke",
        "quick_eval",
        "parents",
        "child",
        "repair",
        "comparison",
        "generation",
        "test",
    ];

    /// The `kind` column's value.
    pub fn kind(&self) -> &'static str {
        match self {
            EvolutionEvent::Launch(_) => "launch",
            EvolutionEvent::Stopped(_) => "stopped",
            EvolutionEvent::Budget(_) => "budget",
            EvolutionEvent::Smoke(_) => "smoke",
            EvolutionEvent::QuickEval(_) => "quick_eval",
            EvolutionEvent::Parents(_) => "parents",
            EvolutionEvent::Child(_) => "child",
            EvolutionEvent::Repair(_) => "repair",
            EvolutionEvent::Comparison(_) => "comparison",
            EvolutionEvent::Generation(_) => "generation",
            EvolutionEvent::Test(_) => "test",
        }
    }

    /// The `payload_json` column's value.
    pub fn payload(&self) -> Value {
        match serde_json::to_value(self) {
            Ok(Value::Object(mut map)) => map.remove("payload").unwrap_or(Value::Null),
            // An adjacently tagged enum of plain structs always serializes
            // to an object; nothing else reaches here.
            _ => Value::Null,
        }
    }

    /// For smoke episodes and quick evaluations (whose episodes count
    /// against budgets): the evaluation run holding them, if recorded, the
    /// node they were for, and the tokens they used.
    pub fn episodes_run(&self) -> Option<(Option<i64>, &str, u64)> {
        match self {
            EvolutionEvent::Smoke(e) => Some((e.eval_run, e.node.as_str(), e.tokens)),
            EvolutionEvent::QuickEval(e) => Some((e.eval_run, e.node.as_str(), e.tokens)),
            _ => None,
        }
    }
}

impl EventRecord {
    /// The typed event this record stores.
    pub fn event(&self) -> Result<EvolutionEvent, EventError> {
        let tagged = serde_json::json!({"kind": self.kind, "payload": self.payload});
        serde_json::from_value(tagged).map_err(|e| EventError {
            seq: self.seq,
            run: self.run_id.clone(),
            kind: self.kind.clone(),
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    fn record(kind: &str, payload: Value) -> EventRecord {
        EventRecord {
            seq: 7,
            run_id: "run".into(),
            at_ms: 0,
            kind: kind.into(),
            payload,
        }
    }

    #[test]
    fn events_round_trip_through_kind_and_payload() {
        let events = [
            EvolutionEvent::Launch(Box::new(LaunchRecord {
                run: "r".into(),
                program: "/p/seed".into(),
                from: None,
                meta_from: None,
                suite: "miniwob".into(),
                mode: "hyper".into(),
                generations: 2,
                children: 2,
                tasks: vec![],
                stage1: 4,
                episodes: 1,
                concurrency: 2,
                no_test: false,
                dir: Some("/runs/r".into()),
                selection: None,
                program_selection: false,
                parallel: None,
                token_budget: Some(1000),
                no_smoke: false,
                no_repair: false,
                quick_eval_calls: 4,
                quick_eval_tasks: 4,
                store: None,
                feedback_weight: 0.25,
                nats: Some("nats://127.0.0.1:4222".into()),
                coordinator: None,
                meta_on_workers: true,
            })),
            EvolutionEvent::Stopped(Stopped {
                interrupted: Some("signal".into()),
                message: Some("SIGTERM".into()),
                before_generation: None,
            }),
            EvolutionEvent::Parents(ParentsChosen {
                generation: 1,
                parents: vec!["seed".into()],
                selector: None,
                fitness: BTreeMap::new(),
            }),
            EvolutionEvent::Comparison(ChildComparison {
                node: "g1c0".into(),
                parent: "seed".into(),
                stage: "full".into(),
                tasks: 12,
                mean_difference: 0.125,
                lower_95: None,
                accepted: false,
            }),
            EvolutionEvent::Test(TestScore {
                generation: 2,
                node: "g2c1".into(),
                success_rate: Some(0.5),
            }),
        ];
        for event in events {
            assert!(EvolutionEvent::KINDS.contains(&event.kind()));
            let stored = record(event.kind(), event.payload());
            assert_eq!(stored.event().unwrap(), event);
        }
    }

    #[test]
    fn payloads_stored_before_the_type_still_read() {
        // As the engine wrote them by hand: a `parents` event without a
        // program selector, a stop request between generations, a
        // generation without the counts added later.
        let parents = record(
            "parents",
            json!({"generation": 3, "parents": ["seed", "g1c0"], "selector": null}),
        );
        assert_eq!(
            parents.event().unwrap(),
            EvolutionEvent::Parents(ParentsChosen {
                generation: 3,
                parents: vec!["seed".into(), "g1c0".into()],
                selector: None,
                fitness: BTreeMap::new(),
            })
        );
        // A launch record from before quick evaluations and budgets.
        let launch = record(
            "launch",
            json!({"run": "old", "program": "/p", "from": null, "meta_from": null,
                   "suite": "s.jsonl", "mode": "hyper", "generations": 3, "children": 2,
                   "tasks": [], "stage1": 5, "episodes": 1, "concurrency": 2,
                   "no_test": false, "dir": "/runs/old", "selection": null, "store": null}),
        );
        let EvolutionEvent::Launch(old) = launch.event().unwrap() else {
            panic!("not a launch")
        };
        assert_eq!((old.quick_eval_calls, old.quick_eval_tasks), (0, 4));
        assert_eq!(old.token_budget, None);
        let stopped = record("stopped", json!({"before_generation": 2}));
        assert!(matches!(
            stopped.event().unwrap(),
            EvolutionEvent::Stopped(Stopped {
                before_generation: Some(2),
                ..
            })
        ));
        let generation = record(
            "generation",
            json!({"generation": 1, "best": 0.5, "mean": 0.25, "best_node": "g1c0"}),
        );
        assert!(matches!(
            generation.event().unwrap(),
            EvolutionEvent::Generation(GenerationDone {
                archive_size: 0,
                ..
            })
        ));
    }

    #[test]
    fn an_unknown_kind_or_a_bad_payload_is_an_error_naming_the_event() {
        let unknown = record("teleport", json!({}));
        let error = unknown.event().unwrap_err().to_string();
        assert!(error.contains("event 7 (teleport)"), "{error}");
        let bad = record("generation", json!({"generation": "one"}));
        let error = bad.event().unwrap_err().to_string();
        assert!(error.contains("event 7 (generation)"), "{error}");
    }
}
