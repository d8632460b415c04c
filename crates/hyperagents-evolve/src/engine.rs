//! The generation loop: choose parents from the archive as it stood when the
//! generation began, let each parent's own meta agent edit a copy, validate
//! the child, evaluate it in stages, and insert it into the archive.
//!
//! Everything durable lives in the results store (nodes, evaluations,
//! events) and in the run directory (one program directory per node), so a
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
use hyperagents_eval::{EvalPlan, EvalReport, EvalTarget, SuiteIdentity, evaluate, run_limit};
use hyperagents_program::{DiffKind, Program, copy_program};
use hyperagents_runtime::improve::{ImproveConfig, QuickEvalHandle, improve};
use hyperagents_runtime::{Interruption, RunContext, SandboxChecker, killed_from_outside};
use hyperagents_sandbox::{HostError, HostFunctions, ScriptSource, ScriptValue};
use hyperagents_store::events::{
    BudgetSpent, ChildComparison, ChildMade, GenerationDone, ParentsChosen, RepairRound,
    SelectorUsed, SmokeEpisode, Stopped, TestScore,
};
use hyperagents_store::{
    DiffKind as StoredDiffKind, EvalRunId, EvolutionEvent, LaunchRecord, NewEvalRun,
    NewEvolutionRun, NewNode, NodeRecord, NodeStatus, ResultsStore, RunMode, RunStatus, RunSummary,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::json;

use crate::quick::{QuickEvalEvents, TrainQuickEval, clip_chars, program_defect};
use crate::select::{Candidate, NodeId, SelectError, SelectionPolicy, select_parents};

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
    /// Runs episodes (task/judge models bound).
    pub episodes: RunContext,
    /// Runs meta agents (the meta model bound).
    pub meta: RunContext,
    pub store: ResultsStore,
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
    fn record_interruption(&self, cause: &Interruption) -> Result<(), EvolveError> {
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
        self.store.append(
            run,
            &EvolutionEvent::Stopped(Stopped {
                interrupted: Some(kind.to_string()),
                message: Some(message),
                before_generation: None,
            }),
        )?;
        let done = self.recorded_generations()?.finished.len();
        self.store
            .set_run_state(run, RunStatus::Stopped, &json!({"generations_done": done}))?;
        Ok(())
    }

    /// Why the run may start no more work, if it may not: a stop request or
    /// a spent run-level budget, of the episodes' models or the meta model.
    fn run_limit(&self) -> Option<Interruption> {
        run_limit(&self.episodes).or_else(|| run_limit(&self.meta))
    }

    /// A safe point: an error once the run may start no more work.
    fn check_run_limit(&self) -> Result<(), EvolveError> {
        match self.run_limit() {
            Some(cause) => Err(EvolveError::Interrupted(cause)),
            None => Ok(()),
        }
    }

    /// Completes, with the reason, once the run is asked to stop.
    async fn stop_requested(&self) -> String {
        let episodes = self.episodes.router.ledger().stopped();
        let meta = self.meta.router.ledger().stopped();
        futures::future::select(std::pin::pin!(episodes), std::pin::pin!(meta))
            .await
            .factor_first()
            .0
    }

    async fn run_generations(
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
        self.store.create_evolution_run(&NewEvolutionRun {
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
            let last = self.store.last_event(&s.run_id, "launch")?;
            if last.is_none_or(|e| e.payload != event.payload()) {
                self.store.append(&s.run_id, &event)?;
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
                self.store.append(
                    &s.run_id,
                    &EvolutionEvent::Stopped(Stopped {
                        before_generation: Some(generation),
                        ..Stopped::default()
                    }),
                )?;
                self.store.set_run_state(
                    &s.run_id,
                    RunStatus::Stopped,
                    &json!({"generations_done": generation - 1}),
                )?;
                return Ok(stats);
            }
            if let Some(budget) = s.token_budget.filter(|_| !begun) {
                let spent = self.tokens_spent()?;
                if spent.total() >= budget {
                    self.store.append(
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
            self.store.set_run_state(
                &s.run_id,
                RunStatus::Running,
                &json!({"generations_done": generation}),
            )?;
        }
        self.score_on_test(&mut stats).await?;
        let done = stats.last().map(|g| g.generation).unwrap_or(0);
        self.store.set_run_state(
            &s.run_id,
            RunStatus::Finished,
            &json!({"generations_done": done}),
        )?;
        Ok(stats)
    }

    /// Tokens spent so far, summed from the store: meta tokens of every
    /// attempt, and each distinct episode the search used once — staged
    /// evaluations, smoke episodes and quick evaluations. An episode shared
    /// by two stages or two nodes (stage 1 inside the full stage, a child
    /// whose edit cannot change an episode) is one episode, and one reused
    /// from another run counts as if this run had run it, so a run's spending
    /// does not depend on what else the store holds. Test episodes are not
    /// search and do not count.
    pub fn tokens_spent(&self) -> Result<TokensSpent, EvolveError> {
        let run = &self.settings.run_id;
        let mut spent = TokensSpent::default();
        let mut eval_runs = Vec::new();
        for node in self.store.nodes(run)? {
            spent.meta += node.meta_tokens;
            for stage in [STAGE1, FULL] {
                eval_runs.extend(self.store.node_eval_run(run, &node.node_id, stage)?);
            }
        }
        for event in self.store.events(run, 0)? {
            if let Ok(event) = event.event()
                && let Some((eval_run, _, tokens)) = event.episodes_run()
            {
                match eval_run {
                    Some(id) => eval_runs.push(EvalRunId(id)),
                    None => spent.episodes += tokens,
                }
            }
        }
        let mut counted = BTreeSet::new();
        for eval_run in eval_runs {
            for record in self.store.run_evaluations(eval_run)? {
                if counted.insert(record.key_hash.as_str().to_owned()) {
                    spent.episodes += record.result.tokens_in + record.result.tokens_out;
                }
            }
        }
        Ok(spent)
    }

    /// Scores each generation's best node so far on the test split.
    async fn score_on_test(&self, stats: &mut [GenerationStats]) -> Result<(), EvolveError> {
        if self.settings.test_tasks.is_empty() {
            return Ok(());
        }
        let seeds = self.settings.seeds.clone();
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

    fn node_dir(&self, node: &str) -> PathBuf {
        self.dir.join("nodes").join(node)
    }

    async fn ensure_seed(&self, seed_program: &Path) -> Result<(), EvolveError> {
        let run = &self.settings.run_id;
        let dir = self.node_dir(SEED_NODE);
        if self.store.node(run, SEED_NODE)?.is_none() {
            let program = load(seed_program).map_err(|errors| EvolveError::InvalidSeed {
                path: seed_program.to_path_buf(),
                errors,
            })?;
            if dir.exists() {
                remove_dir(&dir)?;
            }
            create_parent(&dir)?;
            copy_program(seed_program, &dir).map_err(|e| io(&dir, e))?;
            self.store.insert_node(&NewNode {
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

    /// The stage's summary for `node`, evaluating it unless the store holds it.
    async fn evaluate_stage(
        &self,
        node: &str,
        stage: &'static str,
        seeds: &[u64],
    ) -> Result<RunSummary, EvolveError> {
        let run = &self.settings.run_id;
        if let Some(summary) = self.store.node_stage_summary(run, node, stage)? {
            return Ok(summary);
        }
        let dir = self.node_dir(node);
        let program = Arc::new(load(&dir).map_err(|errors| EvolveError::Io {
            path: dir.clone(),
            message: errors,
        })?);
        // A node's directory must still hold the program its row names: an
        // edited or damaged directory is never scored under the node's name.
        if let Some(record) = self.store.node(run, node)? {
            let found = program.content_hash().to_hex();
            if record.program_hash != found {
                return Err(EvolveError::Changed {
                    node: node.to_string(),
                    path: dir,
                    stored: record.program_hash,
                    found,
                });
            }
        }
        let (tasks, split) = match stage {
            STAGE1 => (self.settings.stage1_tasks.clone(), "train"),
            TEST => (self.settings.test_tasks.clone(), "test"),
            _ => (self.settings.full_tasks.clone(), "train"),
        };
        let eval_run = self.store.create_run(&NewEvalRun {
            // The node's own (content) hash; evaluation keys use the
            // episode hash, so children differing only in meta/ share results.
            program_hash: program.content_hash().to_hex(),
            suite: self.suite.name.clone(),
            split: split.into(),
            config: json!({"evolution": run, "node": node, "stage": stage, "seeds": seeds}),
        })?;
        let traces = self.dir.join("traces").join(node).join(stage);
        let report = self
            .run_plan(program, tasks, seeds.to_vec(), eval_run, traces)
            .await?;
        self.store
            .link_node_evaluation(run, node, stage, eval_run)?;
        Ok(report.summary)
    }

    async fn run_plan(
        &self,
        program: Arc<Program>,
        tasks: Vec<String>,
        seeds: Vec<u64>,
        eval_run: hyperagents_store::EvalRunId,
        traces: PathBuf,
    ) -> Result<EvalReport, EvolveError> {
        run_plan(
            &self.episodes,
            &self.store,
            EvalTarget {
                program,
                domain: self.domain.clone(),
                suite: self.suite.clone(),
            },
            EvalPlan {
                tasks,
                seeds,
                concurrency: self.settings.concurrency,
                reuse_cached: true,
            },
            eval_run,
            traces,
        )
        .await
    }

    /// One episode of the first stage-1 task, before any staged evaluation:
    /// the child's errors if the episode failed to run or ended in a code
    /// defect (see [`crate::quick::CODE_DEFECTS`]); an agent that merely fails the task
    /// passes. The result is stored like any evaluation, so stage 1 reuses it.
    async fn smoke(&self, generation: u64, child: &str) -> Result<Vec<String>, EvolveError> {
        let dir = self.node_dir(child);
        let program = match load(&dir) {
            Ok(program) => Arc::new(program),
            Err(message) => return Ok(vec![message]),
        };
        let task = self.settings.stage1_tasks[0].clone();
        let seed = self
            .seeds_for(generation, child)
            .first()
            .copied()
            .unwrap_or(0);
        let eval_run = self.store.create_run(&NewEvalRun {
            program_hash: program.content_hash().to_hex(),
            suite: self.suite.name.clone(),
            split: "train".into(),
            config: json!({"evolution": self.settings.run_id, "node": child, "stage": SMOKE, "seeds": [seed]}),
        })?;
        let traces = self.dir.join("traces").join(child).join(SMOKE);
        let report = self
            .run_plan(program, vec![task], vec![seed], eval_run, traces)
            .await?;
        let errors = smoke_errors(&report);
        self.store.append(
            &self.settings.run_id,
            &EvolutionEvent::Smoke(SmokeEpisode {
                node: child.to_string(),
                eval_run: Some(eval_run.0),
                tokens: report.summary.tokens_in + report.summary.tokens_out,
                ok: errors.is_empty(),
                errors: errors.clone(),
            }),
        )?;
        Ok(errors)
    }

    /// Candidates for parent selection: valid nodes of earlier generations,
    /// scored by their full stage (else stage 1).
    fn candidates(&self, before: u64) -> Result<Vec<Candidate>, EvolveError> {
        let run = &self.settings.run_id;
        let mut nodes: Vec<NodeRecord> = self
            .store
            .nodes(run)?
            .into_iter()
            .filter(|n| n.generation < before)
            .collect();
        // The store lists a generation's children in the order they
        // finished, which varies when they run side by side; parent draws
        // and ties need an order that does not.
        nodes.sort_by(|a, b| {
            (a.generation, a.node_id.len(), &a.node_id).cmp(&(
                b.generation,
                b.node_id.len(),
                &b.node_id,
            ))
        });
        let mut candidates = Vec::new();
        for node in &nodes {
            let stage = if self
                .store
                .node_eval_run(run, &node.node_id, FULL)?
                .is_some()
            {
                FULL
            } else {
                STAGE1
            };
            let score = self
                .store
                .node_stage_summary(run, &node.node_id, stage)?
                .and_then(|s| s.success_rate());
            let task_successes: BTreeMap<String, f64> = self
                .store
                .node_task_stats(run, &node.node_id, stage)?
                .into_iter()
                .filter_map(|t| t.success_rate().map(|r| (t.task, r)))
                .collect();
            let children = nodes
                .iter()
                .filter(|n| n.parent_id.as_deref() == Some(node.node_id.as_str()))
                .count();
            candidates.push(Candidate {
                node: NodeId(node.node_id.clone()),
                score: score.unwrap_or(0.0),
                children: u32::try_from(children).unwrap_or(u32::MAX),
                task_successes,
                valid: node.status == NodeStatus::Valid && score.is_some(),
            });
        }
        Ok(candidates)
    }

    /// A node's mean score per train task on its latest stage (the full
    /// stage if it reached it).
    fn task_scores(&self, node: &str) -> Result<BTreeMap<String, f64>, EvolveError> {
        let run = &self.settings.run_id;
        let stage = if self.store.node_eval_run(run, node, FULL)?.is_some() {
            FULL
        } else {
            STAGE1
        };
        Ok(self
            .store
            .node_task_stats(run, node, stage)?
            .into_iter()
            .filter_map(|t| t.mean_score.map(|score| (t.task, score)))
            .collect())
    }

    /// Parents chosen by the best node's own selection script
    /// (`meta.select`), or by the configured policy when it has none or the
    /// script fails or answers nonsense. Also returns what was used, for the
    /// `parents` event.
    async fn program_selected_parents(
        &self,
        generation: u64,
        candidates: &[Candidate],
        rng: &mut StdRng,
    ) -> Result<(Vec<NodeId>, Option<SelectorUsed>), EvolveError> {
        let count = self.settings.children;
        let mut best: Option<&Candidate> = None;
        for candidate in candidates.iter().filter(|c| c.valid) {
            if best.is_none_or(|b| candidate.score > b.score) {
                best = Some(candidate);
            }
        }
        let Some(best) = best else {
            return Err(SelectError::NoValidCandidate {
                total: candidates.len(),
            }
            .into());
        };
        let script_seed = rand::RngCore::next_u64(rng);
        let answer = self
            .run_select_script(&best.node.0, generation, candidates, count, script_seed)
            .await;
        let scripted = answer.and_then(|parents| {
            crate::select::check_answer(candidates, count, &parents).map(|()| parents)
        });
        match scripted {
            Ok(parents) => Ok((
                parents,
                Some(SelectorUsed {
                    script: format!("{}/meta/select.py", best.node.0),
                    fallback: None,
                }),
            )),
            Err(error) => {
                tracing::warn!(node = %best.node.0, %error, "the selection script was not used; falling back to the configured policy");
                let parents = select_parents(&self.settings.selection, candidates, count, rng)?;
                Ok((
                    parents,
                    Some(SelectorUsed {
                        script: format!("{}/meta/select.py", best.node.0),
                        fallback: Some(error.to_string()),
                    }),
                ))
            }
        }
    }

    /// Runs `node`'s selection script in the sandbox with the candidates as
    /// input (`candidates`, `count`, `seed`, `generation`); it returns a list
    /// of node ids. The script gets no host function but `log`.
    async fn run_select_script(
        &self,
        node: &str,
        generation: u64,
        candidates: &[Candidate],
        count: usize,
        seed: u64,
    ) -> Result<Vec<NodeId>, String> {
        let program = load(&self.node_dir(node))?;
        let Some(script) = program.meta().select.clone() else {
            return Err(format!("{node} has no `meta.select` script"));
        };
        let code = program
            .source(script.as_str())
            .ok_or_else(|| format!("{node}: {} is not readable text", script.as_str()))?
            .to_string();
        let mut shown = Vec::new();
        for c in candidates.iter().filter(|c| c.valid) {
            shown.push(json!({
                "node": c.node.0,
                "score": c.score,
                "children": c.children,
                "task_successes": c.task_successes,
                // Mean benchmark score per train task: partial progress
                // (MiniWoB's raw reward) that success rates round away; for a
                // selection script's own auxiliary metrics, never the
                // official score.
                "task_scores": self.task_scores(&c.node.0).map_err(|e| e.to_string())?,
            }));
        }
        let mut inputs = serde_json::Map::new();
        inputs.insert("candidates".into(), serde_json::Value::Array(shown));
        inputs.insert("count".into(), json!(count));
        inputs.insert("seed".into(), json!(seed));
        inputs.insert("generation".into(), json!(generation));
        let source = ScriptSource {
            file: script.as_str().to_string(),
            code,
        };
        let value = self
            .meta
            .pool
            .run(&source, inputs, Arc::new(SelectHost))
            .await
            .map_err(|e| e.to_string())?;
        let items = value
            .as_array()
            .ok_or_else(|| format!("the selection script returned {value}, not a list"))?;
        items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(|id| NodeId(id.to_string()))
                    .ok_or_else(|| format!("the selection script returned {item}, not a node id"))
            })
            .collect()
    }

    /// Which generations earlier invocations of this run began (`parents`
    /// recorded) and finished (`generation` recorded).
    fn recorded_generations(&self) -> Result<RecordedGenerations, EvolveError> {
        let mut recorded = RecordedGenerations::default();
        for event in self.store.events(&self.settings.run_id, 0)? {
            match event.event() {
                Ok(EvolutionEvent::Parents(p)) => {
                    recorded.begun.insert(p.generation);
                }
                Ok(EvolutionEvent::Generation(g)) => {
                    recorded.finished.insert(g.generation);
                }
                _ => {}
            }
        }
        Ok(recorded)
    }

    async fn generation(
        &self,
        generation: u64,
        history: &RecordedGenerations,
    ) -> Result<GenerationStats, EvolveError> {
        let run = &self.settings.run_id;
        let candidates = self.candidates(generation)?;
        let mut rng = StdRng::seed_from_u64(mix(self.episodes.run_seed, generation));
        let mut selector = None;
        let parents = match self.settings.mode {
            // Without self-improvement the seed is re-run on fresh seeds.
            RunMode::None => vec![NodeId(SEED_NODE.into()); self.settings.children],
            RunMode::Hyper if self.settings.program_selection => {
                let (parents, used) = self
                    .program_selected_parents(generation, &candidates, &mut rng)
                    .await?;
                selector = used;
                parents
            }
            _ => select_parents(
                &self.settings.selection,
                &candidates,
                self.settings.children,
                &mut rng,
            )?,
        };
        // A replayed generation draws the same parents; record them once.
        if !history.begun.contains(&generation) {
            self.store.append(
                run,
                &EvolutionEvent::Parents(ParentsChosen {
                    generation,
                    parents: parents.iter().map(|p| p.0.clone()).collect(),
                    selector: selector.clone(),
                }),
            )?;
        }
        // Collected first, so the run's future stays `Send` (a lazy map's
        // closure over borrowed parents defeats the compiler's proof).
        // Each attempt announces what it made, so a child identical to a
        // lower-numbered sibling is the duplicate whichever finishes first.
        let (made_senders, made_receivers): (Vec<_>, Vec<_>) = parents
            .iter()
            .map(|_| tokio::sync::watch::channel(None))
            .unzip();
        let made_receivers = &made_receivers;
        let attempts: Vec<_> = parents
            .iter()
            .zip(made_senders)
            .enumerate()
            .map(|(index, (parent, announce))| {
                let child = format!("g{generation}c{index}");
                let parent = parent.0.clone();
                let siblings = Siblings {
                    index,
                    announce,
                    earlier: &made_receivers[..index],
                };
                async move { self.attempt(generation, &parent, &child, siblings).await }
            })
            .collect();
        // Children run side by side: one child's meta step overlaps another's
        // evaluation; the model's own concurrency limit bounds the calls.
        let mut outcomes = futures::stream::iter(attempts)
            .buffer_unordered(self.settings.parallel_children.max(1));
        let mut valid = 0;
        let mut failed = 0;
        let mut first_error = None;
        while let Some(outcome) = outcomes.next().await {
            match outcome {
                Ok(NodeStatus::Valid) => valid += 1,
                Ok(_) => failed += 1,
                // The run must stop: attempts still in flight are abandoned
                // (redone on resume, as after a kill) rather than finished.
                Err(error) if error.interruption().is_some() => return Err(error),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        if let Some(error) = first_error {
            return Err(error);
        }
        let after = self.candidates(generation + 1)?;
        let scores: Vec<f64> = after.iter().filter(|c| c.valid).map(|c| c.score).collect();
        let best = scores.iter().copied().fold(0.0, f64::max);
        // Ties go to the earliest node (the archive's order), so the seed
        // stays "best" until a child beats it.
        let best_node = after
            .iter()
            .find(|c| c.valid && c.score >= best)
            .map(|c| c.node.0.clone())
            .unwrap_or_else(|| SEED_NODE.to_string());
        let mean = if scores.is_empty() {
            0.0
        } else {
            scores.iter().sum::<f64>() / scores.len() as f64
        };
        let seed_score = after
            .iter()
            .find(|c| c.node.0 == SEED_NODE)
            .map(|c| c.score)
            .unwrap_or(0.0);
        let stats = GenerationStats {
            generation,
            valid_children: valid,
            failed_attempts: failed,
            best,
            mean,
            improvement: best - seed_score,
            archive_size: scores.len(),
            best_node,
            best_test: None,
        };
        if history.finished.contains(&generation) {
            return Ok(stats);
        }
        self.store.append(
            run,
            &EvolutionEvent::Generation(GenerationDone {
                generation,
                valid_children: valid as u64,
                failed_attempts: failed as u64,
                best,
                mean,
                improvement: stats.improvement,
                archive_size: stats.archive_size as u64,
                best_node: stats.best_node.clone(),
            }),
        )?;
        Ok(stats)
    }

    /// One child of `parent`: meta step, validation, staged evaluation,
    /// insertion. Returns the child's status; an attempt already in the
    /// store is not repeated.
    async fn attempt(
        &self,
        generation: u64,
        parent: &str,
        child: &str,
        siblings: Siblings<'_>,
    ) -> Result<NodeStatus, EvolveError> {
        let run = &self.settings.run_id;
        if let Some(existing) = self.store.node(run, child)? {
            // Stored: later siblings find it in the archive.
            drop(siblings.announce);
            if existing.status == NodeStatus::Valid {
                self.evaluate_child(generation, parent, child).await?;
            }
            return Ok(existing.status);
        }
        self.check_run_limit()?;
        let mut made = self
            .make_child(generation, parent, child, None, &siblings)
            .await?;
        if made.errors.is_empty() && self.settings.smoke {
            made.errors = self.smoke(generation, child).await?;
        }
        if !made.errors.is_empty() && made.repairable && self.settings.repair {
            self.store.append(
                run,
                &EvolutionEvent::Repair(RepairRound {
                    node: child.to_string(),
                    parent: parent.to_string(),
                    errors: made.errors.clone(),
                }),
            )?;
            let rejected = self.dir.join("work").join(format!("{child}-rejected"));
            if rejected.exists() {
                remove_dir(&rejected)?;
            }
            create_parent(&rejected)?;
            let child_dir = self.node_dir(child);
            std::fs::rename(&child_dir, &rejected).map_err(|e| io(&child_dir, e))?;
            let repair = Repair {
                base: rejected,
                errors: made.errors.clone(),
                diff: made.diff.clone(),
            };
            let first_round_tokens = made.meta_tokens;
            let first_round_cost = made.meta_cost;
            made = self
                .make_child(generation, parent, child, Some(&repair), &siblings)
                .await?;
            made.meta_tokens += first_round_tokens;
            made.meta_cost += first_round_cost;
            if made.errors.is_empty() && self.settings.smoke {
                made.errors = self.smoke(generation, child).await?;
            }
            made.label = format!("{} (repaired)", made.label);
        }
        // The last safe point before the attempt is stored: a meta step or
        // smoke episode refused by a spent budget is not the child's fault.
        self.check_run_limit()?;
        let status = if made.errors.is_empty() {
            NodeStatus::Valid
        } else {
            NodeStatus::Invalid
        };
        // Final from here on: later siblings compare against it.
        let _ = siblings.announce.send(Some(
            (status == NodeStatus::Valid).then(|| made.program_hash.clone()),
        ));
        self.store.insert_node(&NewNode {
            run_id: run.clone(),
            node_id: child.into(),
            program_hash: made.program_hash,
            parent_id: Some(parent.into()),
            generation,
            label: made.label,
            diff: made.diff,
            diff_kinds: made.kinds,
            status,
            validation_errors: json!(made.errors),
            meta_tokens: made.meta_tokens,
        })?;
        self.store.append(
            run,
            &EvolutionEvent::Child(ChildMade {
                node: child.to_string(),
                parent: parent.to_string(),
                status: status.as_str().to_string(),
                errors: made.errors.clone(),
                meta_tokens: made.meta_tokens,
                meta_cost: Some(made.meta_cost),
            }),
        )?;
        if status == NodeStatus::Valid {
            self.evaluate_child(generation, parent, child).await?;
        }
        Ok(status)
    }

    /// Appends an event unless the run already holds the same one: a resumed
    /// run replays finished work from the store, and its record must read
    /// as if it had never stopped.
    fn record_once(&self, event: &EvolutionEvent) -> Result<(), EvolveError> {
        let run = &self.settings.run_id;
        let (kind, payload) = (event.kind(), event.payload());
        let recorded = self
            .store
            .events(run, 0)?
            .iter()
            .any(|e| e.kind == kind && e.payload == payload);
        if !recorded {
            self.store.append(run, event)?;
        }
        Ok(())
    }

    /// Stage 1, then the full stage when the child's stage-1 success rate
    /// is at least its parent's minus one standard error.
    async fn evaluate_child(
        &self,
        generation: u64,
        parent: &str,
        child: &str,
    ) -> Result<(), EvolveError> {
        let seeds = self.seeds_for(generation, child);
        let parent_stage1 = self
            .evaluate_stage(parent, STAGE1, &self.settings.seeds)
            .await?;
        let child_stage1 = self.evaluate_stage(child, STAGE1, &seeds).await?;
        let p = parent_stage1.success_rate().unwrap_or(0.0);
        let n = parent_stage1.episodes.max(1) as f64;
        let threshold = p - (p * (1.0 - p) / n).sqrt();
        let stage = if child_stage1.success_rate().unwrap_or(0.0) >= threshold {
            self.evaluate_stage(child, FULL, &seeds).await?;
            self.evaluate_stage(parent, FULL, &self.settings.seeds)
                .await?;
            FULL
        } else {
            STAGE1
        };
        let comparison = self.compare(parent, child, stage)?;
        self.record_once(&EvolutionEvent::Comparison(ChildComparison {
            node: child.to_string(),
            parent: parent.to_string(),
            stage: stage.to_string(),
            tasks: comparison.tasks as u64,
            mean_difference: comparison.mean,
            lower_95: comparison.lower,
            accepted: comparison.accepted(),
        }))?;
        Ok(())
    }

    /// What a meta agent is told of its situation (train results only).
    fn meta_context(
        &self,
        generation: u64,
        parent: &str,
    ) -> Result<serde_json::Value, EvolveError> {
        let run = &self.settings.run_id;
        let nodes = self.store.nodes(run)?;
        let candidates = self.candidates(generation)?;
        let mut archive: Vec<serde_json::Value> = Vec::new();
        for candidate in &candidates {
            if !candidate.valid {
                continue;
            }
            let node = nodes.iter().find(|n| n.node_id == candidate.node.0);
            archive.push(json!({
                "node": candidate.node.0,
                "parent": node.and_then(|n| n.parent_id.clone()),
                "score": candidate.score,
                "train_success_by_task": candidate.task_successes,
                "changed": node
                    .map(|n| n.diff_kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>())
                    .unwrap_or_default(),
            }));
        }
        archive.sort_by(|a, b| {
            b["score"]
                .as_f64()
                .partial_cmp(&a["score"].as_f64())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        archive.truncate(10);
        let edit_effects = self.edit_effects(&nodes, &candidates)?;
        let parent_tasks: BTreeMap<String, f64> = candidates
            .into_iter()
            .find(|c| c.node.0 == parent)
            .map(|c| c.task_successes)
            .unwrap_or_default();
        let spent = self.tokens_spent()?;
        Ok(json!({
            "generation": generation,
            "generations_left": self.settings.generations.saturating_sub(generation),
            "mode": self.settings.mode.as_str(),
            "parent": parent,
            "parent_train_success_by_task": parent_tasks,
            "best_of_archive": archive,
            "edit_effects": edit_effects,
            "meta_tokens_spent": spent.meta,
            "budget": {
                "tokens_spent": spent.total(),
                "token_budget": self.settings.token_budget,
                "tokens_left": self.settings.token_budget.map(|b| b.saturating_sub(spent.total())),
            },
            "quick_eval": {
                "calls": self.settings.quick_eval_calls,
                "tasks_per_call": self.settings.quick_eval_tasks,
                // The episode seed quick_eval runs: the parent's results on
                // it are the ones a child's are paired with.
                "seed": self.settings.seeds.first().copied().unwrap_or(0),
            },
            // What this run's mode lets an edit change; the engine refuses
            // anything else, so meta agents need not know the modes.
            "editable": {
                "meta": !matches!(self.settings.mode, RunMode::FixedMeta | RunMode::PromptOnly),
                "only_extensions": match self.settings.mode {
                    RunMode::PromptOnly => json!([".md", ".txt", ".jinja", ".j2"]),
                    _ => serde_json::Value::Null,
                },
                "select": self.settings.program_selection && self.settings.mode == RunMode::Hyper,
            },
        }))
    }

    /// What earlier edits of each kind did: for every diff kind, the valid
    /// children whose diff had it, their mean score change against their
    /// parent, and how many were accepted improvements.
    fn edit_effects(
        &self,
        nodes: &[NodeRecord],
        candidates: &[Candidate],
    ) -> Result<serde_json::Value, EvolveError> {
        let score = |id: &str| {
            candidates
                .iter()
                .find(|c| c.valid && c.node.0 == id)
                .map(|c| c.score)
        };
        let mut accepted = BTreeSet::new();
        for event in self.store.events(&self.settings.run_id, 0)? {
            if let Ok(EvolutionEvent::Comparison(c)) = event.event()
                && c.accepted
            {
                accepted.insert(c.node);
            }
        }
        let mut effects: BTreeMap<&str, (u64, f64, u64)> = BTreeMap::new();
        for node in nodes {
            let (Some(parent), Some(child_score)) = (&node.parent_id, score(&node.node_id)) else {
                continue;
            };
            let Some(parent_score) = score(parent) else {
                continue;
            };
            for kind in &node.diff_kinds {
                let entry = effects.entry(kind.as_str()).or_default();
                entry.0 += 1;
                entry.1 += child_score - parent_score;
                entry.2 += u64::from(accepted.contains(&node.node_id));
            }
        }
        Ok(serde_json::Value::Object(
            effects
                .into_iter()
                .map(|(kind, (children, delta, accepted))| {
                    (
                        kind.to_string(),
                        json!({
                            "children": children,
                            "mean_score_change": delta / children as f64,
                            "accepted": accepted,
                        }),
                    )
                })
                .collect(),
        ))
    }

    /// The child against its parent, paired by task: per-task success-rate
    /// differences, their mean and the lower bound of a 95% interval.
    fn compare(&self, parent: &str, child: &str, stage: &str) -> Result<Paired, EvolveError> {
        let run = &self.settings.run_id;
        let rates = |node: &str| -> Result<BTreeMap<String, f64>, EvolveError> {
            Ok(self
                .store
                .node_task_stats(run, node, stage)?
                .into_iter()
                .filter_map(|t| t.success_rate().map(|r| (t.task, r)))
                .collect())
        };
        let parent_rates = rates(parent)?;
        let differences: Vec<f64> = rates(child)?
            .into_iter()
            .filter_map(|(task, c)| parent_rates.get(&task).map(|p| c - p))
            .collect();
        Ok(Paired::of(&differences))
    }

    /// Episode seeds of a child: the run's seeds (children are compared
    /// with their parents on the same episodes), shifted in `none` mode so
    /// each re-run of the seed program meets fresh episodes.
    fn seeds_for(&self, generation: u64, child: &str) -> Vec<u64> {
        match self.settings.mode {
            RunMode::None => {
                let index = child_index(child);
                self.settings
                    .seeds
                    .iter()
                    .map(|s| s + 1_000_003 * (generation * 10_000 + index))
                    .collect()
            }
            _ => self.settings.seeds.clone(),
        }
    }

    async fn make_child(
        &self,
        generation: u64,
        parent: &str,
        child: &str,
        repair: Option<&Repair>,
        siblings: &Siblings<'_>,
    ) -> Result<MadeChild, EvolveError> {
        let parent_dir = self.node_dir(parent);
        let child_dir = self.node_dir(child);
        if child_dir.exists() {
            // A child left by an interrupted attempt: made again (the meta
            // model's calls replay from the response cache).
            remove_dir(&child_dir)?;
        }
        let _ = std::fs::remove_file(child_dir.with_extension("diff"));
        if self.settings.mode == RunMode::None {
            copy_program(&parent_dir, &child_dir).map_err(|e| io(&child_dir, e))?;
            let program = load(&child_dir).map_err(|message| EvolveError::Io {
                path: child_dir.clone(),
                message,
            })?;
            return Ok(MadeChild {
                program_hash: program.content_hash().to_hex(),
                label: format!("seed, episode seeds of generation {generation}"),
                diff: String::new(),
                kinds: Vec::new(),
                errors: Vec::new(),
                meta_tokens: 0,
                meta_cost: 0.0,
                repairable: false,
            });
        }
        // In fixed-meta mode every child is made by the seed's meta agent.
        let meta_source = if self.settings.mode == RunMode::FixedMeta {
            let work = self.dir.join("work").join(child);
            if work.exists() {
                remove_dir(&work)?;
            }
            create_parent(&work)?;
            copy_program(&parent_dir, &work).map_err(|e| io(&work, e))?;
            let meta = work.join("meta");
            remove_dir(&meta)?;
            copy_program(&self.node_dir(SEED_NODE).join("meta"), &meta)
                .map_err(|e| io(&meta, e))?;
            work
        } else {
            parent_dir.clone()
        };
        let failures = self.failures_dir(parent, child)?;
        let mut config = self.settings.improve.clone();
        let round = if repair.is_some() { "/repair" } else { "" };
        config.seed = mix(self.meta.run_seed, fnv(&format!("{child}{round}")));
        config.context = self.meta_context(generation, parent)?;
        if let Some(repair) = repair {
            config.base = Some(repair.base.clone());
            config.context["repair"] = json!({
                "errors": repair.errors,
                "rejected_diff": clip_chars(&repair.diff, 4000),
            });
        }
        if self.settings.quick_eval_calls > 0 {
            let quick = TrainQuickEval::new(
                self.episodes.clone(),
                self.store.clone(),
                self.domain.clone(),
                self.suite.clone(),
                self.settings.full_tasks.iter().cloned().collect(),
                self.seeds_for(generation, child)
                    .first()
                    .copied()
                    .unwrap_or(0),
                self.settings.concurrency,
                self.dir.join("traces").join(child),
                self.settings.quick_eval_tasks,
                self.settings.quick_eval_calls,
            )
            .recording(QuickEvalEvents {
                run_id: self.settings.run_id.clone(),
                node: child.to_string(),
            });
            config.quick_eval = Some(QuickEvalHandle(Arc::new(quick)));
        }
        // A stop request abandons the meta step at once; it is redone on resume.
        let improving = improve(&self.meta, &meta_source, &failures, &child_dir, &config);
        let stop = self.stop_requested();
        let outcome =
            match futures::future::select(std::pin::pin!(improving), std::pin::pin!(stop)).await {
                futures::future::Either::Left((outcome, _)) => outcome,
                futures::future::Either::Right((reason, _)) => {
                    return Err(EvolveError::Interrupted(Interruption::Stop(reason)));
                }
            }
            .map_err(|e| EvolveError::Io {
                path: child_dir.clone(),
                message: e.to_string(),
            })?;
        // A meta agent whose worker was killed by a signal from outside (a
        // Ctrl-C reaches the workers too) did not fail on its own.
        if let Some(script) = outcome
            .script_error
            .as_deref()
            .filter(|e| killed_from_outside(e))
        {
            return Err(EvolveError::Interrupted(Interruption::Host(
                script.to_string(),
            )));
        }
        // The meta step's span tree, for people and for tests of the loop; a
        // repair round's follows the first round's.
        let trace_path = self.dir.join("nodes").join(format!("{child}.meta.txt"));
        let trace = match repair {
            Some(_) => format!(
                "{}\n--- repair round ---\n{}",
                std::fs::read_to_string(&trace_path).unwrap_or_default(),
                outcome.trace
            ),
            None => outcome.trace.clone(),
        };
        std::fs::write(&trace_path, &trace).map_err(|e| io(&trace_path, e))?;
        let mut errors = outcome.errors.clone();
        if let Some(script) = &outcome.script_error {
            errors.push(format!("the meta agent failed: {script}"));
        }
        let kinds: Vec<DiffKind> = outcome.diff.kinds().into_iter().collect();
        if outcome.diff.is_empty() {
            errors.push("the meta agent changed nothing".into());
        }
        match self.settings.mode {
            RunMode::FixedMeta if kinds.contains(&DiffKind::Meta) => {
                errors.push("fixed-meta mode: the meta agent may not edit meta/".into());
            }
            // The meta agent's own notes (`remember`) are not an edit of
            // the program's behaviour.
            RunMode::PromptOnly
                if kinds
                    .iter()
                    .any(|k| !matches!(k, DiffKind::Prompt | DiffKind::Memory)) =>
            {
                errors.push("prompt-only mode: only prompt files may change".into());
            }
            _ => {}
        }
        let program_hash = match load(&child_dir) {
            Ok(program) => program.content_hash().to_hex(),
            Err(message) => {
                if errors.is_empty() {
                    errors.push(message);
                }
                String::new()
            }
        };
        let duplicate = !program_hash.is_empty()
            && self
                .duplicate_of(&program_hash, generation, siblings)
                .await?;
        if errors.is_empty() && duplicate {
            errors.push("identical to a program already in the archive".into());
        }
        let diff = std::fs::read_to_string(&outcome.diff_path).unwrap_or_default();
        Ok(MadeChild {
            repairable: !outcome.diff.is_empty() && !duplicate,
            program_hash,
            label: format!("child of {parent}"),
            diff,
            kinds: kinds
                .iter()
                .filter_map(|k| StoredDiffKind::parse(k.as_str()))
                .collect(),
            errors,
            meta_tokens: outcome.meta_tokens,
            meta_cost: outcome.meta_cost,
        })
    }

    /// Whether a valid node made before this child holds `program_hash`:
    /// one of an earlier generation, or a lower-numbered sibling (stored, or
    /// made in this process and awaited). Higher-numbered siblings never
    /// count, so which of two identical siblings is refused does not depend
    /// on which finished first, nor on a kill and resume in between.
    async fn duplicate_of(
        &self,
        program_hash: &str,
        generation: u64,
        siblings: &Siblings<'_>,
    ) -> Result<bool, EvolveError> {
        let sibling_prefix = format!("g{generation}c");
        let in_archive = self.store.nodes(&self.settings.run_id)?.iter().any(|n| {
            let made_before = n.generation < generation
                || n.node_id
                    .strip_prefix(&sibling_prefix)
                    .and_then(|index| index.parse::<usize>().ok())
                    .is_some_and(|index| index < siblings.index);
            made_before && n.status == NodeStatus::Valid && n.program_hash == program_hash
        });
        if in_archive {
            return Ok(true);
        }
        for earlier in siblings.earlier {
            let mut earlier = earlier.clone();
            // A sibling that stopped without announcing (stored already, or
            // cut short) made nothing to compare with here.
            let Ok(made) = earlier.wait_for(Option::is_some).await else {
                continue;
            };
            if made.as_ref().and_then(Option::as_deref) == Some(program_hash) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A folder holding the trajectories a parent's meta agent learns from:
    /// those of its full stage, else its stage 1. They are gathered from the
    /// store's records, because an evaluation reused from the store (a child
    /// that changed only `meta/`, say) wrote no trajectory of its own.
    fn failures_dir(&self, parent: &str, child: &str) -> Result<PathBuf, EvolveError> {
        let run = &self.settings.run_id;
        let eval_run = match self.store.node_eval_run(run, parent, FULL)? {
            Some(id) => Some(id),
            None => self.store.node_eval_run(run, parent, STAGE1)?,
        };
        let dir = self.dir.join("work").join(format!("{child}-failures"));
        if dir.exists() {
            remove_dir(&dir)?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let Some(eval_run) = eval_run else {
            return Ok(dir);
        };
        for record in self.store.run_evaluations(eval_run)? {
            let Some(trajectory) = &record.result.trajectory else {
                continue;
            };
            let Some(name) = trajectory.file_name() else {
                continue;
            };
            let summary = PathBuf::from(format!("{}.summary.json", trajectory.display()));
            let summary_name = format!("{}.summary.json", name.to_string_lossy());
            // A trajectory removed since is skipped: it is evidence, not state.
            if std::fs::copy(trajectory, dir.join(name)).is_ok() {
                let _ = std::fs::copy(&summary, dir.join(summary_name));
            }
        }
        Ok(dir)
    }
}

/// A paired comparison of two nodes over the same tasks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Paired {
    pub tasks: usize,
    pub mean: f64,
    /// Lower bound of the 95% interval of the mean difference (normal
    /// approximation); `None` with fewer than two tasks.
    pub lower: Option<f64>,
}

impl Paired {
    pub fn of(differences: &[f64]) -> Paired {
        let n = differences.len();
        if n == 0 {
            return Paired {
                tasks: 0,
                mean: 0.0,
                lower: None,
            };
        }
        let mean = differences.iter().sum::<f64>() / n as f64;
        let lower = (n >= 2).then(|| {
            let variance =
                differences.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            mean - 1.96 * (variance / n as f64).sqrt()
        });
        Paired {
            tasks: n,
            mean,
            lower,
        }
    }

    /// An improvement counts as accepted when the interval's lower bound is
    /// above zero.
    pub fn accepted(&self) -> bool {
        self.lower.is_some_and(|l| l > 0.0)
    }
}

/// Generations an earlier invocation of the run already began or finished.
#[derive(Debug, Default)]
struct RecordedGenerations {
    begun: BTreeSet<u64>,
    finished: BTreeSet<u64>,
}

/// One attempt's view of its generation's other attempts.
struct Siblings<'a> {
    index: usize,
    /// Sent once the attempt's node is final: its hash if valid.
    announce: tokio::sync::watch::Sender<Option<Option<String>>>,
    /// What the lower-numbered siblings made.
    earlier: &'a [tokio::sync::watch::Receiver<Option<Option<String>>>],
}

struct MadeChild {
    program_hash: String,
    label: String,
    diff: String,
    kinds: Vec<StoredDiffKind>,
    errors: Vec<String>,
    meta_tokens: u64,
    meta_cost: f64,
    /// Whether a repair round could help: the meta agent changed something
    /// that is not already archived.
    repairable: bool,
}

/// A rejected child handed back to its parent's meta agent.
struct Repair {
    /// The rejected child's files (the repair round starts from them).
    base: PathBuf,
    errors: Vec<String>,
    diff: String,
}

/// The host of a selection script: it may only log.
struct SelectHost;

#[async_trait]
impl HostFunctions for SelectHost {
    fn functions(&self) -> Vec<String> {
        vec!["log".into()]
    }

    async fn call(
        &self,
        function: &str,
        args: Vec<ScriptValue>,
        _kwargs: serde_json::Map<String, ScriptValue>,
    ) -> Result<ScriptValue, HostError> {
        if function == "log" {
            tracing::info!(message = %serde_json::Value::Array(args), "selection script");
            return Ok(ScriptValue::Null);
        }
        Err(HostError::Raise {
            exception: "NameError".into(),
            message: format!("name '{function}' is not defined"),
        })
    }
}

async fn run_plan(
    ctx: &RunContext,
    store: &ResultsStore,
    target: EvalTarget,
    plan: EvalPlan,
    eval_run: hyperagents_store::EvalRunId,
    traces: PathBuf,
) -> Result<EvalReport, EvolveError> {
    let mut ctx = ctx.clone();
    ctx.traces_dir = traces;
    Ok(evaluate(&ctx, &target, &plan, store, eval_run, &|_| {}).await?)
}

/// Why a smoke episode rejects its child, if it does.
fn smoke_errors(report: &EvalReport) -> Vec<String> {
    report.records.iter().filter_map(program_defect).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paired_comparisons_accept_only_clear_improvements() {
        let none = Paired::of(&[]);
        assert_eq!(none.tasks, 0);
        assert!(!none.accepted());
        assert!(!Paired::of(&[1.0]).accepted(), "one task proves nothing");
        let clear = Paired::of(&[1.0, 1.0, 1.0, 0.5]);
        assert!(clear.accepted(), "{clear:?}");
        let mixed = Paired::of(&[1.0, -1.0, 0.0, 0.0]);
        assert_eq!(mixed.mean, 0.0);
        assert!(!mixed.accepted(), "{mixed:?}");
        // mean 0.5, sd 0.5774, se 0.2887: lower = 0.5 - 1.96 * 0.2887
        let p = Paired::of(&[1.0, 0.0, 1.0, 0.0]);
        let lower = p.lower.unwrap_or(f64::NAN);
        assert!(
            (lower - (0.5 - 1.96 * (1.0f64 / 3.0 / 4.0).sqrt())).abs() < 1e-9,
            "{p:?}"
        );
    }
}
