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
//! meta step's span tree), `traces/<node>/<stage>/`
//! (trajectories; a parent's failures feed its meta step), `work/` (scratch).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyperagents_domain::Domain;
use hyperagents_eval::{EvalPlan, EvalTarget, SuiteIdentity, evaluate};
use hyperagents_program::{DiffKind, Program, copy_program};
use hyperagents_runtime::improve::{ImproveConfig, improve};
use hyperagents_runtime::{RunContext, SandboxChecker};
use hyperagents_store::{
    DiffKind as StoredDiffKind, NewEvalRun, NewEvolutionRun, NewNode, NodeRecord, NodeStatus,
    ResultsStore, RunMode, RunStatus, RunSummary,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::json;

use crate::select::{Candidate, NodeId, SelectionPolicy, select_parents};

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
            }),
            mode: s.mode,
            seed: self.episodes.run_seed,
        })?;
        self.ensure_seed(seed_program).await?;
        let mut stats = Vec::new();
        for generation in 1..=s.generations {
            if self.dir.join(STOP_FILE).exists() {
                self.store.append_event(
                    &s.run_id,
                    "stopped",
                    &json!({"before_generation": generation}),
                )?;
                self.store.set_run_state(
                    &s.run_id,
                    RunStatus::Stopped,
                    &json!({"generations_done": generation - 1}),
                )?;
                return Ok(stats);
            }
            stats.push(self.generation(generation).await?);
            self.store.set_run_state(
                &s.run_id,
                RunStatus::Running,
                &json!({"generations_done": generation}),
            )?;
        }
        self.score_on_test(&mut stats).await?;
        self.store.set_run_state(
            &s.run_id,
            RunStatus::Finished,
            &json!({"generations_done": s.generations}),
        )?;
        Ok(stats)
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
            self.store.append_event(
                &self.settings.run_id,
                "test",
                &json!({
                    "generation": entry.generation,
                    "node": entry.best_node,
                    "success_rate": entry.best_test,
                }),
            )?;
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
        let mut ctx = self.episodes.clone();
        ctx.traces_dir = self.dir.join("traces").join(node).join(stage);
        let target = EvalTarget {
            program,
            domain: self.domain.clone(),
            suite: self.suite.clone(),
        };
        let plan = EvalPlan {
            tasks,
            seeds: seeds.to_vec(),
            concurrency: self.settings.concurrency,
            reuse_cached: true,
        };
        let report = evaluate(&ctx, &target, &plan, &self.store, eval_run, &|_| {}).await?;
        self.store
            .link_node_evaluation(run, node, stage, eval_run)?;
        Ok(report.summary)
    }

    /// Candidates for parent selection: valid nodes of earlier generations,
    /// scored by their full stage (else stage 1).
    fn candidates(&self, before: u64) -> Result<Vec<Candidate>, EvolveError> {
        let run = &self.settings.run_id;
        let nodes: Vec<NodeRecord> = self
            .store
            .nodes(run)?
            .into_iter()
            .filter(|n| n.generation < before)
            .collect();
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

    async fn generation(&self, generation: u64) -> Result<GenerationStats, EvolveError> {
        let run = &self.settings.run_id;
        let candidates = self.candidates(generation)?;
        let mut rng = StdRng::seed_from_u64(mix(self.episodes.run_seed, generation));
        let parents = match self.settings.mode {
            // Without self-improvement the seed is re-run on fresh seeds.
            RunMode::None => vec![NodeId(SEED_NODE.into()); self.settings.children],
            _ => select_parents(
                &self.settings.selection,
                &candidates,
                self.settings.children,
                &mut rng,
            )?,
        };
        self.store.append_event(
            run,
            "parents",
            &json!({"generation": generation, "parents": parents}),
        )?;
        let attempts = parents.iter().enumerate().map(|(index, parent)| {
            let child = format!("g{generation}c{index}");
            async move { self.attempt(generation, &parent.0, &child).await }
        });
        let outcomes = futures::future::join_all(attempts).await;
        let mut valid = 0;
        let mut failed = 0;
        for outcome in outcomes {
            match outcome? {
                NodeStatus::Valid => valid += 1,
                _ => failed += 1,
            }
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
        self.store.append_event(
            run,
            "generation",
            &json!({
                "generation": generation,
                "valid_children": valid,
                "failed_attempts": failed,
                "best": best,
                "mean": mean,
                "improvement": stats.improvement,
                "archive_size": stats.archive_size,
                "best_node": stats.best_node,
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
    ) -> Result<NodeStatus, EvolveError> {
        let run = &self.settings.run_id;
        if let Some(existing) = self.store.node(run, child)? {
            if existing.status == NodeStatus::Valid {
                self.evaluate_child(generation, parent, child).await?;
            }
            return Ok(existing.status);
        }
        let made = self.make_child(generation, parent, child).await?;
        let status = if made.errors.is_empty() {
            NodeStatus::Valid
        } else {
            NodeStatus::Invalid
        };
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
        self.store.append_event(
            run,
            "child",
            &json!({"node": child, "parent": parent, "status": status.as_str(), "errors": made.errors}),
        )?;
        if status == NodeStatus::Valid {
            self.evaluate_child(generation, parent, child).await?;
        }
        Ok(status)
    }

    /// Stage 1, then the full stage when the child's stage-1 success rate
    /// is at least its parent's minus one standard error.
    async fn evaluate_child(
        &self,
        generation: u64,
        parent: &str,
        child: &str,
    ) -> Result<(), EvolveError> {
        let seeds = self.seeds_for(generation);
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
        self.store.append_event(
            &self.settings.run_id,
            "comparison",
            &json!({
                "node": child,
                "parent": parent,
                "stage": stage,
                "tasks": comparison.tasks,
                "mean_difference": comparison.mean,
                "lower_95": comparison.lower,
                "accepted": comparison.accepted(),
            }),
        )?;
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
        let parent_tasks: BTreeMap<String, f64> = candidates
            .into_iter()
            .find(|c| c.node.0 == parent)
            .map(|c| c.task_successes)
            .unwrap_or_default();
        Ok(json!({
            "generation": generation,
            "generations_left": self.settings.generations.saturating_sub(generation),
            "mode": self.settings.mode.as_str(),
            "parent": parent,
            "parent_train_success_by_task": parent_tasks,
            "best_of_archive": archive,
            "meta_tokens_spent": nodes.iter().map(|n| n.meta_tokens).sum::<u64>(),
        }))
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

    /// Episode seeds for a generation's children: the run's seeds, shifted
    /// in `none` mode so the seed program meets fresh episodes each time.
    fn seeds_for(&self, generation: u64) -> Vec<u64> {
        match self.settings.mode {
            RunMode::None => self
                .settings
                .seeds
                .iter()
                .map(|s| s + generation * 1_000_003)
                .collect(),
            _ => self.settings.seeds.clone(),
        }
    }

    async fn make_child(
        &self,
        generation: u64,
        parent: &str,
        child: &str,
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
        config.seed = mix(self.meta.run_seed, fnv(child));
        config.context = self.meta_context(generation, parent)?;
        let outcome = improve(&self.meta, &meta_source, &failures, &child_dir, &config)
            .await
            .map_err(|e| EvolveError::Io {
                path: child_dir.clone(),
                message: e.to_string(),
            })?;
        // The meta step's span tree, for people and for tests of the loop.
        let trace_path = self.dir.join("nodes").join(format!("{child}.meta.txt"));
        std::fs::write(&trace_path, &outcome.trace).map_err(|e| io(&trace_path, e))?;
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
            RunMode::PromptOnly if kinds.iter().any(|k| *k != DiffKind::Prompt) => {
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
        if errors.is_empty() && self.duplicate_of(&program_hash)? {
            errors.push("identical to a program already in the archive".into());
        }
        let diff = std::fs::read_to_string(&outcome.diff_path).unwrap_or_default();
        Ok(MadeChild {
            program_hash,
            label: format!("child of {parent}"),
            diff,
            kinds: kinds
                .iter()
                .filter_map(|k| StoredDiffKind::parse(k.as_str()))
                .collect(),
            errors,
            meta_tokens: outcome.meta_tokens,
        })
    }

    fn duplicate_of(&self, program_hash: &str) -> Result<bool, EvolveError> {
        Ok(self
            .store
            .nodes(&self.settings.run_id)?
            .iter()
            .any(|n| n.status == NodeStatus::Valid && n.program_hash == program_hash))
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

struct MadeChild {
    program_hash: String,
    label: String,
    diff: String,
    kinds: Vec<StoredDiffKind>,
    errors: Vec<String>,
    meta_tokens: u64,
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
