//! The generation loop: choose parents from the archive as it stood when the
//! generation began, let each parent's own meta agent edit a copy, validate
//! the child, evaluate it in stages, and insert it into the archive.
//!
//! Everything durable lives in the archive (nodes, evaluations, events; an
//! [`Archive`], the results store in the binary) and in the run directory (one program directory per node), so a
//! run can be resumed: a node already in the store is never made again, an
//! evaluation already stored is reused (its key is the same), and parents of
//! a generation are drawn with an RNG seeded from (run seed, generation)
//! over the nodes of earlier generations only, so a resumed generation picks
//! the same parents.
//!
//! Layout of the run directory:
//! `nodes/<node>/` (the program), `nodes/<node>.diff`, `nodes/<node>.meta.txt` (the
//! meta step's span tree; a repair round's follows it), `traces/<node>/<stage>/`
//! (trajectories; a parent's failures feed its meta step; `smoke` and
//! `quick-<n>` hold the smoke episode and the meta agent's quick evaluations),
//! `work/` (scratch: failures gathered for a meta step, rejected children
//! awaiting repair).
//!
//! A child is made in up to two rounds: the parent's meta agent edits a copy;
//! the copy must load (manifest, every script compiles, the mode's limits),
//! differ from the parent and from every archived program, and run one smoke
//! episode without a code defect. When it fails, the same meta agent gets one
//! repair round that starts from the rejected child with the errors in
//! `context()["repair"]`. Tokens spent by the run (meta steps, episodes,
//! smoke and quick evaluations) are summed from the store, so an equal-budget
//! stop survives a resume.
//!
//! A run also stops, with [`EvolveError::Interrupted`], when it must: a
//! role's run-level budget is spent or the run was asked to stop (a
//! signal). Nothing cut short is stored — no episode, no node — and the
//! run is marked stopped with a `stopped` event, so `resume` redoes exactly
//! the unfinished work.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use hyperagents_domain::Domain;
use hyperagents_eval::{EvalPlan, EvalReport, EvalTarget, Evaluator, SuiteIdentity, run_limit};
use hyperagents_program::{DiffKind, Program, copy_program};
pub use hyperagents_runtime::improve::LocalMetaSteps;
use hyperagents_runtime::improve::{ImproveConfig, ImproveError, MetaStepper, QuickEvalHandle};
use hyperagents_runtime::{Interruption, RunContext, SandboxChecker, killed_from_outside};
use hyperagents_sandbox::{HostError, HostFunctions, ScriptSource, ScriptValue};
use hyperagents_store::events::{
    BudgetSpent, ChildComparison, ChildMade, GenerationDone, ParentsChosen, RepairRound,
    SelectorUsed, SmokeEpisode, Stopped, TestScore,
};
use hyperagents_store::{
    Archive, DiffKind as StoredDiffKind, EvalRunId, EvolutionEvent, FeedbackSource, LaunchRecord,
    NewEvalRun, NewEvolutionRun, NewNode, NodeRecord, NodeStatus, RunMode, RunStatus, RunSummary,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::json;

use crate::quick::{QuickEvalEvents, TrainQuickEval, clip_chars, program_defect};

mod child;
mod context;
mod generation;
mod parents;
mod stages;

use crate::select::{Candidate, NodeId, SelectionPolicy, select_parents};
pub use stages::Paired;

/// The seed node's id.
pub const SEED_NODE: &str = "seed";
/// The small first stage every child runs.
pub const STAGE1: &str = "stage1";
/// The whole train split, for children that pass stage 1.
pub const FULL: &str = "full";
/// The held-out split: run only by the engine, on each generation's best
/// node, after the last generation. No meta agent ever sees its results.
pub const TEST: &str = "test";
/// A file in the run directory that ends the run gracefully before the next
/// generation.
pub const STOP_FILE: &str = "STOP";
/// The one episode a new child runs before its staged evaluation.
pub const SMOKE: &str = "smoke";

/// How a run evolves.
#[derive(Debug, Clone)]
pub struct EvolveSettings {
    /// The run's id in the store; resuming uses the same id.
    pub run_id: String,
    pub mode: RunMode,
    pub generations: u64,
    /// Children made per generation (concurrently).
    pub children: usize,
    pub selection: SelectionPolicy,
    /// Train tasks of stage 1 (a small subset).
    pub stage1_tasks: Vec<String>,
    /// Every train task (the full stage).
    pub full_tasks: Vec<String>,
    /// Held-out tasks on which each generation's best node is scored at the
    /// end; empty to skip.
    pub test_tasks: Vec<String>,
    /// Episode seeds of each evaluation.
    pub seeds: Vec<u64>,
    /// Episodes in flight at once, per evaluation.
    pub concurrency: usize,
    pub improve: ImproveConfig,
    /// Children in flight at once: one child's meta step overlaps another's
    /// evaluation. 1 makes them one at a time.
    pub parallel_children: usize,
    /// No generation starts once the run has spent this many tokens (meta
    /// steps, episodes, smoke and quick evaluations): runs of different modes
    /// compare at an equal budget.
    pub token_budget: Option<u64>,
    /// In `hyper` mode, the best node's own `meta/select.py` (the manifest's
    /// `meta.select`) chooses parents; any error falls back to `selection`.
    pub program_selection: bool,
    /// Run one smoke episode before a child's staged evaluation.
    pub smoke: bool,
    /// Give a rejected child one repair round with its errors fed back.
    pub repair: bool,
    /// `quick_eval(tasks)` for meta agents: calls per meta step (0 disables
    /// it) and train tasks per call.
    pub quick_eval_calls: u64,
    pub quick_eval_tasks: usize,
    /// How the run was launched (e.g. the CLI's arguments), kept as a
    /// `launch` event so it can be resumed by name.
    pub launch: Option<LaunchRecord>,
    /// How much people's preferences weigh in fitness, in `[0, 1]`.
    pub feedback_weight: f64,
}

impl Default for EvolveSettings {
    fn default() -> Self {
        Self {
            run_id: String::new(),
            mode: RunMode::Hyper,
            generations: 3,
            children: 2,
            selection: SelectionPolicy::dgm_default(),
            stage1_tasks: Vec::new(),
            full_tasks: Vec::new(),
            test_tasks: Vec::new(),
            seeds: vec![0],
            concurrency: 2,
            improve: ImproveConfig::default(),
            parallel_children: 2,
            token_budget: None,
            program_selection: false,
            smoke: true,
            repair: true,
            quick_eval_calls: 4,
            quick_eval_tasks: 4,
            launch: None,
            feedback_weight: 0.25,
        }
    }
}

/// Tokens a run has spent so far, by role.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokensSpent {
    /// The meta model's calls in meta steps (repair rounds included).
    pub meta: u64,
    /// Episodes: each distinct one of the staged evaluations, smoke
    /// episodes and quick evaluations, once.
    pub episodes: u64,
}

impl TokensSpent {
    pub fn total(&self) -> u64 {
        self.meta + self.episodes
    }
}

/// One generation's outcome, also stored as a `generation` event.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationStats {
    pub generation: u64,
    /// Children inserted as valid in this generation.
    pub valid_children: usize,
    /// Attempts that produced no valid child.
    pub failed_attempts: usize,
    /// Best and mean score over the valid archive after this generation.
    pub best: f64,
    pub mean: f64,
    /// Best score minus the seed's: the improvement so far.
    pub improvement: f64,
    pub archive_size: usize,
    /// The best valid node so far.
    pub best_node: String,
    /// That node's success rate on the test split, once scored.
    pub best_test: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum EvolveError {
    #[error("results store: {0}")]
    Store(#[from] hyperagents_store::StoreError),
    #[error("evaluation: {0}")]
    Eval(#[from] hyperagents_eval::EvalError),
    #[error("the seed program {path} is invalid: {errors}")]
    InvalidSeed { path: PathBuf, errors: String },
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("parent selection: {0}")]
    Select(#[from] crate::select::SelectError),
    #[error("the plan has no tasks for stage `{0}`")]
    NoTasks(&'static str),
    #[error(
        "node {node}'s program in {path} changed since it was archived (content hash {found}, archived as {stored})"
    )]
    Changed {
        node: String,
        path: PathBuf,
        stored: String,
        found: String,
    },
    /// The run stopped before it was done (see the module's documentation);
    /// `resume` continues it.
    #[error("the run stopped before it was done; resume it to continue")]
    Interrupted(#[source] Interruption),
}

impl EvolveError {
    /// Why the run was cut short, if it was (here or in an evaluation).
    pub fn interruption(&self) -> Option<&Interruption> {
        match self {
            EvolveError::Interrupted(cause) => Some(cause),
            EvolveError::Eval(error) => error.interruption(),
            _ => None,
        }
    }
}

/// A run of the loop.
pub struct Evolution {
    /// The episodes' models (task/judge roles): their run-level budgets
    /// and stop requests, and the run's seed.
    pub episodes: RunContext,
    /// The meta model's run-level budget and stop requests (and, for
    /// [`LocalMetaSteps`], the meta model itself).
    pub meta: RunContext,
    /// Where meta steps run: [`LocalMetaSteps`] over `meta`, or workers.
    pub meta_steps: Arc<dyn MetaStepper>,
    /// Where runs, nodes, events and evaluation results are kept.
    pub archive: Arc<dyn Archive>,
    /// Where episodes run.
    pub evaluator: Arc<dyn Evaluator>,
    /// People's judgements of the run's episodes, which shape fitness
    /// ([`crate::fitness`]); `None`: fitness is the automated score.
    pub feedback: Option<Arc<dyn FeedbackSource>>,
    pub domain: Arc<dyn Domain>,
    pub suite: SuiteIdentity,
    pub settings: EvolveSettings,
    /// The run directory.
    pub dir: PathBuf,
}

impl Evolution {
    /// Runs (or resumes) every generation and returns their statistics.
    pub async fn run(&self, seed_program: &Path) -> Result<Vec<GenerationStats>, EvolveError> {
        let outcome = self.run_generations(seed_program).await;
        if let Err(error) = &outcome
            && let Some(cause) = error.interruption()
            && let Err(recording) = self.record_interruption(cause)
        {
            // The interruption is what the caller must hear about.
            tracing::warn!(error = %recording, "cannot mark the interrupted run stopped");
        }
        outcome
    }

    /// Marks the run stopped, with a `stopped` event saying why.
    pub(super) fn record_interruption(&self, cause: &Interruption) -> Result<(), EvolveError> {
        let run = &self.settings.run_id;
        let mut message = cause.to_string();
        let mut source = std::error::Error::source(cause);
        while let Some(inner) = source {
            message.push_str(": ");
            message.push_str(&inner.to_string());
            source = inner.source();
        }
        let kind = match cause {
            Interruption::Budget(_) => "budget",
            Interruption::Stop(_) => "signal",
            Interruption::Host(_) => "host",
        };
        self.archive.append(
            run,
            &EvolutionEvent::Stopped(Stopped {
                interrupted: Some(kind.to_string()),
                message: Some(message),
                before_generation: None,
            }),
        )?;
        let done = self.recorded_generations()?.finished.len();
        self.archive
            .set_run_state(run, RunStatus::Stopped, &json!({"generations_done": done}))?;
        Ok(())
    }

    /// Why the run may start no more work, if it may not: a stop request or
    /// a spent run-level budget, of the episodes' models or the meta model.
    pub(super) fn run_limit(&self) -> Option<Interruption> {
        run_limit(&self.episodes).or_else(|| run_limit(&self.meta))
    }

    /// A safe point: an error once the run may start no more work.
    pub(super) fn check_run_limit(&self) -> Result<(), EvolveError> {
        match self.run_limit() {
            Some(cause) => Err(EvolveError::Interrupted(cause)),
            None => Ok(()),
        }
    }

    /// Completes, with the reason, once the run is asked to stop.
    pub(super) async fn stop_requested(&self) -> String {
        let episodes = self.episodes.router.ledger().stopped();
        let meta = self.meta.router.ledger().stopped();
        futures::future::select(std::pin::pin!(episodes), std::pin::pin!(meta))
            .await
            .factor_first()
            .0
    }

    pub(super) async fn run_generations(
        &self,
        seed_program: &Path,
    ) -> Result<Vec<GenerationStats>, EvolveError> {
        let s = &self.settings;
        if s.stage1_tasks.is_empty() {
            return Err(EvolveError::NoTasks(STAGE1));
        }
        if s.full_tasks.is_empty() {
            return Err(EvolveError::NoTasks(FULL));
        }
        self.archive.create_evolution_run(&NewEvolutionRun {
            id: s.run_id.clone(),
            config: json!({
                "suite": self.suite.name,
                "suite_version": self.suite.version,
                "generations": s.generations,
                "children": s.children,
                "selection": s.selection,
                "stage1_tasks": s.stage1_tasks,
                "full_tasks": s.full_tasks,
                "seeds": s.seeds,
                "test_tasks": s.test_tasks.len(),
            }),
            mode: s.mode,
            seed: self.episodes.run_seed,
        })?;
        // Recorded as an event rather than in the config, so a resume with,
        // say, more episodes in flight is not a conflicting run.
        if let Some(launch) = &s.launch {
            let event = EvolutionEvent::Launch(Box::new(launch.clone()));
            let last = self.archive.last_event(&s.run_id, "launch")?;
            if last.is_none_or(|e| e.payload != event.payload()) {
                self.archive.append(&s.run_id, &event)?;
            }
        }
        self.ensure_seed(seed_program).await?;
        let mut stats = Vec::new();
        let history = self.recorded_generations()?;
        for generation in 1..=s.generations {
            // A generation that began before a restart was admitted under the
            // stop file and the budget as they were then: it is finished
            // (replayed from the store), so a resumed run ends where an
            // uninterrupted one would have, and keeps every generation's stats.
            let begun = history.begun.contains(&generation);
            if !begun {
                self.check_run_limit()?;
            }
            if !begun && self.dir.join(STOP_FILE).exists() {
                self.archive.append(
                    &s.run_id,
                    &EvolutionEvent::Stopped(Stopped {
                        before_generation: Some(generation),
                        ..Stopped::default()
                    }),
                )?;
                self.archive.set_run_state(
                    &s.run_id,
                    RunStatus::Stopped,
                    &json!({"generations_done": generation - 1}),
                )?;
                return Ok(stats);
            }
            if let Some(budget) = s.token_budget.filter(|_| !begun) {
                let spent = self.tokens_spent()?;
                if spent.total() >= budget {
                    self.archive.append(
                        &s.run_id,
                        &EvolutionEvent::Budget(BudgetSpent {
                            before_generation: generation,
                            token_budget: budget,
                            meta_tokens: spent.meta,
                            episode_tokens: spent.episodes,
                        }),
                    )?;
                    break;
                }
            }
            stats.push(self.generation(generation, &history).await?);
            self.archive.set_run_state(
                &s.run_id,
                RunStatus::Running,
                &json!({"generations_done": generation}),
            )?;
        }
        self.score_on_test(&mut stats).await?;
        let done = stats.last().map(|g| g.generation).unwrap_or(0);
        self.archive.set_run_state(
            &s.run_id,
            RunStatus::Finished,
            &json!({"generations_done": done}),
        )?;
        Ok(stats)
    }

    /// Scores the seed and each generation's best node so far on the test
    /// split: the report pairs the final best with the seed there, episode
    /// by episode, so a run shows whether its gain holds on held-out tasks.
    pub(super) async fn score_on_test(
        &self,
        stats: &mut [GenerationStats],
    ) -> Result<(), EvolveError> {
        if self.settings.test_tasks.is_empty() {
            return Ok(());
        }
        let seeds = self.settings.seeds.clone();
        let seed = self.evaluate_stage(SEED_NODE, TEST, &seeds).await?;
        self.record_once(&EvolutionEvent::Test(TestScore {
            generation: 0,
            node: SEED_NODE.into(),
            success_rate: seed.success_rate(),
        }))?;
        for entry in stats.iter_mut() {
            let summary = self.evaluate_stage(&entry.best_node, TEST, &seeds).await?;
            entry.best_test = summary.success_rate();
            self.record_once(&EvolutionEvent::Test(TestScore {
                generation: entry.generation,
                node: entry.best_node.clone(),
                success_rate: entry.best_test,
            }))?;
        }
        Ok(())
    }

    pub(super) fn node_dir(&self, node: &str) -> PathBuf {
        self.dir.join("nodes").join(node)
    }

    pub(super) async fn ensure_seed(&self, seed_program: &Path) -> Result<(), EvolveError> {
        let run = &self.settings.run_id;
        let dir = self.node_dir(SEED_NODE);
        if self.archive.node(run, SEED_NODE)?.is_none() {
            let program = load(seed_program).map_err(|errors| EvolveError::InvalidSeed {
                path: seed_program.to_path_buf(),
                errors,
            })?;
            if dir.exists() {
                remove_dir(&dir)?;
            }
            create_parent(&dir)?;
            copy_program(seed_program, &dir).map_err(|e| io(&dir, e))?;
            self.archive.insert_node(&NewNode {
                run_id: run.clone(),
                node_id: SEED_NODE.into(),
                program_hash: program.content_hash().to_hex(),
                parent_id: None,
                generation: 0,
                label: "seed".into(),
                diff: String::new(),
                diff_kinds: Vec::new(),
                status: NodeStatus::Valid,
                validation_errors: json!([]),
                meta_tokens: 0,
            })?;
        }
        let seeds = self.settings.seeds.clone();
        self.evaluate_stage(SEED_NODE, STAGE1, &seeds).await?;
        self.evaluate_stage(SEED_NODE, FULL, &seeds).await?;
        Ok(())
    }
}

fn load(dir: &Path) -> Result<Program, String> {
    Program::load(dir, &SandboxChecker).map_err(|errors| {
        errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    })
}

fn io(path: &Path, error: impl std::fmt::Display) -> EvolveError {
    EvolveError::Io {
        path: path.to_path_buf(),
        message: error.to_string(),
    }
}

fn remove_dir(path: &Path) -> Result<(), EvolveError> {
    std::fs::remove_dir_all(path).map_err(|e| io(path, e))
}

fn create_parent(path: &Path) -> Result<(), EvolveError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
    }
    Ok(())
}

/// The index of child `g<generation>c<index>` (0 for any other name).
fn child_index(child: &str) -> u64 {
    child
        .rsplit_once('c')
        .and_then(|(_, index)| index.parse().ok())
        .unwrap_or(0)
}

/// A stable 64-bit hash of a label (FNV-1a), for seeds.
fn fnv(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Mixes two seeds (splitmix64 of their combination).
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
