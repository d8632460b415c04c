//! The numbers of one evolution run, read from the results store: success
//! per generation on train and test, improvement rates, what each kind of
//! diff did, tokens per role, and one row per node.
//!
//! Sources and the rules applied to them:
//! - Generation 0 is the seed's own train score (its `full` stage, else
//!   `stage1`); generations ≥ 1 come from `generation` events.
//! - A resumed run repeats `parents`, `generation`, `comparison` and `test`
//!   events; the last event for a generation (or node) wins, so nothing is
//!   counted twice.
//! - Episode tokens (the task role, judge calls included) come from the
//!   evaluations linked to the run's nodes. The same evaluation is linked
//!   again whenever a stage reuses it (a child that changed only `meta/`, a
//!   full stage containing stage 1's episodes), so each evaluation key is
//!   counted once, at the first evaluation run (by id) that used it.
//! - Evaluation runs that events name (`"eval_run"` in the payload: smoke
//!   tests, the meta agents' quick evaluations) are episodes the search ran
//!   too; they are counted the same way, with the train split.
//! - Meta tokens are the nodes' `meta_tokens`, invalid children included:
//!   their tokens were spent all the same.
//! - The test curve is the test score of each generation's best node as
//!   chosen on train, never a maximum over test scores (that would select on
//!   the held-out split).
//! - The held-out gain pairs the last generation's best node with the seed
//!   on the test split, episode by episode (same task, same episode seed).

use std::collections::{BTreeMap, HashMap, HashSet};

use hyperagents_store::{
    DiffKind, EvalRunId, EventRecord, EvolutionEvent, NodeRecord, NodeStatus, ResultsStore,
    RunMode, RunStatus, StoreError,
};
use serde_json::Value;

use crate::ReportError;

/// The stage scored on a subset of the train tasks.
pub const STAGE1: &str = "stage1";
/// The stage scored on every train task.
pub const FULL: &str = "full";
/// The held-out stage, scored after the last generation.
pub const TEST: &str = "test";

/// Every diff kind, in the order reports list them.
pub const ALL_KINDS: [DiffKind; 6] = [
    DiffKind::Prompt,
    DiffKind::Code,
    DiffKind::Hierarchy,
    DiffKind::Meta,
    DiffKind::Memory,
    DiffKind::Other,
];

/// Everything a report says about one run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    pub run_id: String,
    pub mode: RunMode,
    /// The run's seed (of its RNG and episode seeds), not the seed program.
    pub run_seed: u64,
    pub status: RunStatus,
    pub created_at_ms: i64,
    /// The seed program's train success rate (`full`, else `stage1`).
    pub seed_train: Option<f64>,
    /// The seed program's test success rate, when it was scored.
    pub seed_test: Option<f64>,
    /// Generation 0 (the seed, when it has a train score), then one point
    /// per generation that finished, in order.
    pub generations: Vec<GenerationPoint>,
    /// Every node, in the store's order (by generation, then creation).
    pub nodes: Vec<NodeSummary>,
    /// The best node so far on train (the seed until a generation finished).
    pub best_node: String,
    /// One entry per [`DiffKind`], in [`ALL_KINDS`] order.
    pub kind_effects: Vec<KindEffect>,
    /// Comparisons of children with their parents (one per child).
    pub comparisons: u64,
    /// Of those, accepted improvements (95% lower bound above zero).
    pub accepted_improvements: u64,
    pub tokens: TokenUsage,
    /// Train-stage tokens (meta + task) per accepted improvement.
    pub tokens_per_accepted_improvement: Option<f64>,
    /// Meta tokens per accepted improvement.
    pub meta_tokens_per_accepted_improvement: Option<f64>,
    /// Time the run was at work: from its creation to the last thing it
    /// recorded, less pauses longer than [`IDLE_GAP_MS`] (a run stopped in
    /// one session and resumed in another).
    pub wall_ms: u64,
    /// Known events whose payload could not be read, described.
    pub unreadable_events: Vec<String>,
    /// Per generation whose parents were drawn by a fitness people's
    /// judgements changed: that fitness, for the nodes it changed.
    pub fitness_draws: BTreeMap<u64, BTreeMap<String, f64>>,
    /// The last generation's best node against the seed on the test split,
    /// when both were scored there and the best is not the seed.
    pub test_against_seed: Option<PairedTest>,
}

/// Success per held-out episode, by (task, episode seed).
pub type EpisodeOutcomes = BTreeMap<(String, u64), bool>;

/// One node against the seed on the same held-out episodes.
#[derive(Debug, Clone, PartialEq)]
pub struct PairedTest {
    pub node: String,
    /// Episodes both played: same task, same episode seed.
    pub pairs: usize,
    pub node_successes: usize,
    pub seed_successes: usize,
    /// Mean success difference (node − seed) and its 95% interval (normal
    /// approximation); the interval is a point when every pair agrees.
    pub mean: f64,
    pub lower: f64,
    pub upper: f64,
}

impl PairedTest {
    /// Pairs `node`'s outcomes with `seed`'s by (task, episode seed);
    /// `None` with fewer than two pairs.
    pub fn of(
        node: &str,
        node_outcomes: &EpisodeOutcomes,
        seed_outcomes: &EpisodeOutcomes,
    ) -> Option<PairedTest> {
        let pairs: Vec<(bool, bool)> = node_outcomes
            .iter()
            .filter_map(|(key, &n)| seed_outcomes.get(key).map(|&s| (n, s)))
            .collect();
        let n = pairs.len();
        if n < 2 {
            return None;
        }
        let differences: Vec<f64> = pairs
            .iter()
            .map(|&(a, b)| f64::from(u8::from(a)) - f64::from(u8::from(b)))
            .collect();
        let mean = differences.iter().sum::<f64>() / n as f64;
        let variance = differences.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let half = 1.96 * (variance / n as f64).sqrt();
        Some(PairedTest {
            node: node.to_owned(),
            pairs: n,
            node_successes: pairs.iter().filter(|p| p.0).count(),
            seed_successes: pairs.iter().filter(|p| p.1).count(),
            mean,
            lower: mean - half,
            upper: mean + half,
        })
    }
}

/// The run after one generation (generation 0: the seed alone).
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationPoint {
    pub generation: u64,
    /// Best and mean train success over the valid archive.
    pub best_train: f64,
    pub mean_train: f64,
    /// The best train success up to this generation.
    pub best_so_far_train: f64,
    pub best_node: String,
    /// imp@k: best so far minus the seed's train success.
    pub improvement: Option<f64>,
    /// Meta tokens of the nodes of generations up to this one.
    pub meta_tokens: u64,
    /// imp@k per million of those meta tokens (`None` while none were spent).
    pub improvement_per_million_meta_tokens: Option<f64>,
    /// Meta tokens plus train-stage episode tokens spent up to this
    /// generation (the equal-budget axis).
    pub total_tokens: u64,
    /// Test success of the best node as chosen on train, when scored.
    pub test_of_best: Option<f64>,
    pub valid_children: u64,
    pub failed_attempts: u64,
    pub archive_size: u64,
}

/// One node of the archive.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSummary {
    pub node_id: String,
    pub parent_id: Option<String>,
    pub generation: u64,
    pub diff_kinds: Vec<DiffKind>,
    pub status: NodeStatus,
    /// Validation errors as text.
    pub errors: Vec<String>,
    /// Success rates per stage, when the stage was scored.
    pub stage1: Option<f64>,
    pub full: Option<f64>,
    pub test: Option<f64>,
    pub meta_tokens: u64,
    /// The paired comparison with its parent, for evaluated children.
    pub comparison: Option<Comparison>,
}

impl NodeSummary {
    /// The node's train score: its full stage, else stage 1 (as the engine
    /// ranks nodes).
    pub fn train_score(&self) -> Option<f64> {
        self.full.or(self.stage1)
    }
}

/// A child compared with its parent, paired by task.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub stage: String,
    pub tasks: u64,
    pub mean_difference: f64,
    pub lower_95: Option<f64>,
    pub accepted: bool,
}

/// What children whose diff had one kind of change did.
#[derive(Debug, Clone, PartialEq)]
pub struct KindEffect {
    pub kind: DiffKind,
    /// Valid children whose diff had this kind.
    pub valid_children: u64,
    /// Of those, the ones scored on a stage their parent was scored on too.
    pub scored_children: u64,
    /// Mean of child − parent success on that stage (full when the child
    /// reached it, else stage 1).
    pub mean_delta: Option<f64>,
    /// Accepted comparisons among those children.
    pub accepted: u64,
}

/// Tokens and cost per role.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenUsage {
    /// The meta role: tokens the meta agents spent making nodes (in and out
    /// are not recorded separately).
    pub meta_tokens: u64,
    /// What those tokens cost, summed over the attempts whose `child` event
    /// records it; `None` when none does (runs made before it was recorded).
    pub meta_cost: Option<f64>,
    /// The task role (judge calls included) on the train split: the stages,
    /// smoke tests and the meta agents' quick evaluations.
    pub task_tokens_in: u64,
    pub task_tokens_out: u64,
    pub task_cost: f64,
    /// The task role on the test stage.
    pub test_tokens_in: u64,
    pub test_tokens_out: u64,
    pub test_cost: f64,
    /// Distinct evaluations (episodes) across all stages.
    pub evaluations: u64,
    /// Evaluations as linked by the stages, reuses included.
    pub evaluation_links: u64,
    /// Episode durations summed over distinct evaluations.
    pub episode_ms: u64,
    /// Meta steps whose `child` event records the prompt tokens their model
    /// calls read (runs stored before it was recorded have none), those
    /// tokens, and of them the ones reused from the model's cache.
    pub meta_steps_with_prompts: u64,
    pub meta_prompt_tokens: u64,
    pub meta_prompt_reused: u64,
}

impl TokenUsage {
    pub fn task_tokens(&self) -> u64 {
        self.task_tokens_in + self.task_tokens_out
    }

    pub fn test_tokens(&self) -> u64 {
        self.test_tokens_in + self.test_tokens_out
    }

    /// Meta and train-stage task tokens: what the search itself spent.
    pub fn search_tokens(&self) -> u64 {
        self.meta_tokens + self.task_tokens()
    }
}

impl RunReport {
    /// The best node's own train score (its full stage, else stage 1), known
    /// as soon as the node is scored, before any generation has finished.
    pub fn best_node_train(&self) -> Option<f64> {
        self.nodes
            .iter()
            .find(|n| n.node_id == self.best_node)
            .and_then(NodeSummary::train_score)
    }

    /// Generations that finished (generation 0 not counted).
    pub fn generations_done(&self) -> u64 {
        self.generations
            .iter()
            .filter(|point| point.generation > 0)
            .count() as u64
    }

    /// The last point (after the last finished generation).
    pub fn last(&self) -> Option<&GenerationPoint> {
        self.generations.last()
    }

    /// The best train success so far.
    pub fn best_train(&self) -> Option<f64> {
        self.last().map(|point| point.best_so_far_train)
    }

    /// Test success of the final best node, when scored.
    pub fn final_test(&self) -> Option<f64> {
        self.last().and_then(|point| point.test_of_best)
    }

    /// imp@k at the last generation.
    pub fn final_improvement(&self) -> Option<f64> {
        self.last().and_then(|point| point.improvement)
    }

    pub fn node(&self, id: &str) -> Option<&NodeSummary> {
        self.nodes.iter().find(|node| node.node_id == id)
    }

    /// The seed node: the first node without a parent.
    pub fn seed_node(&self) -> Option<&NodeSummary> {
        self.nodes.iter().find(|node| node.parent_id.is_none())
    }
}

/// Reads run `run_id` and computes its report's numbers.
pub fn run_summary(store: &ResultsStore, run_id: &str) -> Result<RunReport, ReportError> {
    let store_error = |source: StoreError| ReportError::Store {
        run: run_id.to_owned(),
        source: Box::new(source),
    };
    let run = store
        .evolution_run(run_id)
        .map_err(store_error)?
        .ok_or_else(|| ReportError::UnknownRun {
            store: store.path().to_path_buf(),
            run: run_id.to_owned(),
        })?;
    let records = store.nodes(run_id).map_err(store_error)?;
    let events = store.events(run_id, 0).map_err(store_error)?;
    let log = EventLog::read(&events);

    let mut nodes = Vec::with_capacity(records.len());
    // Each linked evaluation run, with the earliest generation of a node
    // that used it and whether it was a test stage.
    let mut linked: BTreeMap<EvalRunId, Link> = BTreeMap::new();
    for record in &records {
        let mut rates = [None, None, None];
        for (slot, stage) in [STAGE1, FULL, TEST].into_iter().enumerate() {
            let Some(eval_run) = store
                .node_eval_run(run_id, &record.node_id, stage)
                .map_err(store_error)?
            else {
                continue;
            };
            rates[slot] = store
                .run_summary(eval_run)
                .map_err(store_error)?
                .success_rate();
            let link = linked.entry(eval_run).or_insert(Link {
                generation: record.generation,
                test: true,
            });
            link.generation = link.generation.min(record.generation);
            link.test &= stage == TEST;
        }
        nodes.push(node_summary(record, rates, &log));
    }
    let mut unreadable_events = log.unreadable.clone();
    for (eval_run, node, seq) in &log.eval_runs {
        if linked.contains_key(eval_run) {
            continue;
        }
        if store.run(*eval_run).map_err(store_error)?.is_none() {
            unreadable_events.push(format!(
                "event {seq} (evaluation run {eval_run} is not stored)"
            ));
            continue;
        }
        let generation = node
            .as_deref()
            .and_then(|id| records.iter().find(|r| r.node_id == id))
            .map_or(0, |r| r.generation);
        linked.insert(
            *eval_run,
            Link {
                generation,
                test: false,
            },
        );
    }

    let mut tokens = TokenUsage {
        meta_tokens: records.iter().map(|node| node.meta_tokens).sum(),
        meta_cost: (!log.meta_costs.is_empty()).then(|| log.meta_costs.values().sum()),
        meta_steps_with_prompts: log.meta_prompts.len() as u64,
        meta_prompt_tokens: log.meta_prompts.values().map(|p| p.0).sum(),
        meta_prompt_reused: log.meta_prompts.values().map(|p| p.1).sum(),
        ..TokenUsage::default()
    };
    let mut activity_ms: Vec<i64> = vec![run.created_at_ms];
    activity_ms.extend(events.iter().map(|e| e.at_ms));
    activity_ms.extend(records.iter().map(|r| r.created_at_ms));
    // Train-stage episode tokens by the generation in which they were spent.
    let mut task_tokens_by_generation: BTreeMap<u64, u64> = BTreeMap::new();
    let mut seen_keys: HashSet<String> = HashSet::new();
    for (&eval_run, link) in &linked {
        let created_at_ms = store
            .run(eval_run)
            .map_err(store_error)?
            .map_or(run.created_at_ms, |stored| stored.created_at_ms);
        let spent_in = link.generation.max(log.generation_at(created_at_ms));
        let evaluations = store.run_evaluations(eval_run).map_err(store_error)?;
        tokens.evaluation_links += evaluations.len() as u64;
        for evaluation in evaluations {
            if !seen_keys.insert(evaluation.key_hash.as_str().to_owned()) {
                continue;
            }
            let result = &evaluation.result;
            tokens.evaluations += 1;
            tokens.episode_ms += result.duration_ms;
            // An episode reused from the store (run earlier, for another
            // run) is not time this run spent.
            if result.finished_at_ms >= created_at_ms {
                let took = i64::try_from(result.duration_ms).unwrap_or(i64::MAX);
                activity_ms.push(result.finished_at_ms);
                activity_ms.push(result.finished_at_ms.saturating_sub(took));
            }
            if link.test {
                tokens.test_tokens_in += result.tokens_in;
                tokens.test_tokens_out += result.tokens_out;
                tokens.test_cost += result.cost;
            } else {
                tokens.task_tokens_in += result.tokens_in;
                tokens.task_tokens_out += result.tokens_out;
                tokens.task_cost += result.cost;
                *task_tokens_by_generation.entry(spent_in).or_default() +=
                    result.tokens_in + result.tokens_out;
            }
        }
    }

    let seed = nodes.iter().find(|node| node.parent_id.is_none());
    let seed_train = seed.and_then(NodeSummary::train_score);
    let seed_test = seed.and_then(|node| node.test);
    let seed_id = seed.map_or_else(|| "seed".to_owned(), |node| node.node_id.clone());
    let mut meta_by_generation: BTreeMap<u64, u64> = BTreeMap::new();
    for record in &records {
        *meta_by_generation.entry(record.generation).or_default() += record.meta_tokens;
    }
    let cumulative = |by_generation: &BTreeMap<u64, u64>, generation: u64| -> u64 {
        by_generation.range(..=generation).map(|(_, v)| v).sum()
    };

    let mut generations = Vec::new();
    let mut best_so_far: Option<(f64, String)> = seed_train.map(|score| (score, seed_id.clone()));
    if let Some(score) = seed_train {
        generations.push(GenerationPoint {
            generation: 0,
            best_train: score,
            mean_train: score,
            best_so_far_train: score,
            best_node: seed_id.clone(),
            improvement: Some(0.0),
            meta_tokens: cumulative(&meta_by_generation, 0),
            improvement_per_million_meta_tokens: None,
            total_tokens: cumulative(&meta_by_generation, 0)
                + cumulative(&task_tokens_by_generation, 0),
            test_of_best: log.tests.get(&0).and_then(|t| t.success_rate).or(seed_test),
            valid_children: 0,
            failed_attempts: 0,
            archive_size: 1,
        });
    }
    for (&generation, event) in log.generations.range(1..) {
        let (best, best_node) = match &best_so_far {
            Some((best, node)) if *best > event.best => (*best, node.clone()),
            _ => (event.best, event.best_node.clone()),
        };
        best_so_far = Some((best, best_node.clone()));
        let improvement = seed_train.map(|seed| best - seed);
        let meta_tokens = cumulative(&meta_by_generation, generation);
        generations.push(GenerationPoint {
            generation,
            best_train: event.best,
            mean_train: event.mean,
            best_so_far_train: best,
            best_node,
            improvement,
            meta_tokens,
            improvement_per_million_meta_tokens: improvement
                .filter(|_| meta_tokens > 0)
                .map(|imp| imp / (meta_tokens as f64 / 1e6)),
            total_tokens: meta_tokens + cumulative(&task_tokens_by_generation, generation),
            test_of_best: log.tests.get(&generation).and_then(|t| t.success_rate),
            valid_children: event.valid_children,
            failed_attempts: event.failed_attempts,
            archive_size: event.archive_size,
        });
    }
    let test_against_seed = test_against_seed(store, run_id, &seed_id, &log)?;
    let best_node = best_so_far.map_or(seed_id, |(_, node)| node);

    let comparisons = log.comparisons.len() as u64;
    let accepted_improvements = log.comparisons.values().filter(|c| c.accepted).count() as u64;
    let per_accepted = |total: u64| {
        (accepted_improvements > 0).then(|| total as f64 / accepted_improvements as f64)
    };
    let kind_effects = ALL_KINDS
        .iter()
        .map(|&kind| kind_effect(kind, &nodes))
        .collect();
    Ok(RunReport {
        run_id: run.id,
        mode: run.mode,
        run_seed: run.seed,
        status: run.status,
        created_at_ms: run.created_at_ms,
        seed_train,
        seed_test,
        generations,
        nodes,
        best_node,
        kind_effects,
        comparisons,
        accepted_improvements,
        tokens_per_accepted_improvement: per_accepted(tokens.search_tokens()),
        meta_tokens_per_accepted_improvement: per_accepted(tokens.meta_tokens),
        tokens,
        wall_ms: active_ms(&mut activity_ms, IDLE_GAP_MS),
        unreadable_events,
        fitness_draws: log.fitness.clone(),
        test_against_seed,
    })
}

/// The last generation's best node against the seed on the test split.
fn test_against_seed(
    store: &ResultsStore,
    run_id: &str,
    seed_id: &str,
    log: &EventLog,
) -> Result<Option<PairedTest>, ReportError> {
    let Some(best) = log
        .tests
        .range(1..)
        .next_back()
        .map(|(_, test)| test.node.as_str())
        .filter(|node| !node.is_empty() && *node != seed_id)
    else {
        return Ok(None);
    };
    let outcomes = |node: &str| -> Result<Option<EpisodeOutcomes>, ReportError> {
        let store_error = |source: StoreError| ReportError::Store {
            run: run_id.to_owned(),
            source: Box::new(source),
        };
        let Some(eval_run) = store
            .node_eval_run(run_id, node, TEST)
            .map_err(store_error)?
        else {
            return Ok(None);
        };
        Ok(Some(
            store
                .run_evaluations(eval_run)
                .map_err(store_error)?
                .into_iter()
                .map(|e| ((e.key.task, e.key.seed), e.result.success))
                .collect(),
        ))
    };
    let (Some(node), Some(seed)) = (outcomes(best)?, outcomes(seed_id)?) else {
        return Ok(None);
    };
    Ok(PairedTest::of(best, &node, &seed))
}

/// A pause between two consecutive things a run recorded longer than this
/// is time the run was not running. The longest step that records nothing
/// (a meta agent's turn: a few calls to a slow local model) takes minutes.
pub const IDLE_GAP_MS: i64 = 30 * 60 * 1000;

/// The span covered by `stamps`, less every gap between consecutive stamps
/// longer than `idle_gap`.
fn active_ms(stamps: &mut [i64], idle_gap: i64) -> u64 {
    stamps.sort_unstable();
    let active: i64 = stamps
        .windows(2)
        .map(|pair| pair[1].saturating_sub(pair[0]))
        .filter(|&gap| gap <= idle_gap)
        .sum();
    u64::try_from(active).unwrap_or(0)
}

/// How an evaluation run is linked to the run's nodes.
struct Link {
    /// The earliest generation of a node that used it.
    generation: u64,
    /// Whether every link is a test stage.
    test: bool,
}

fn node_summary(record: &NodeRecord, rates: [Option<f64>; 3], log: &EventLog) -> NodeSummary {
    let [stage1, full, test] = rates;
    NodeSummary {
        node_id: record.node_id.clone(),
        parent_id: record.parent_id.clone(),
        generation: record.generation,
        diff_kinds: record.diff_kinds.clone(),
        status: record.status,
        errors: error_texts(&record.validation_errors),
        stage1,
        full,
        test,
        meta_tokens: record.meta_tokens,
        comparison: log.comparisons.get(&record.node_id).cloned(),
    }
}

fn kind_effect(kind: DiffKind, nodes: &[NodeSummary]) -> KindEffect {
    let rates: HashMap<&str, &NodeSummary> = nodes
        .iter()
        .map(|node| (node.node_id.as_str(), node))
        .collect();
    let children: Vec<&NodeSummary> = nodes
        .iter()
        .filter(|node| {
            node.parent_id.is_some()
                && node.status == NodeStatus::Valid
                && node.diff_kinds.contains(&kind)
        })
        .collect();
    let deltas: Vec<f64> = children
        .iter()
        .filter_map(|child| {
            let parent = rates.get(child.parent_id.as_deref()?)?;
            match (child.full, parent.full, child.stage1, parent.stage1) {
                (Some(c), Some(p), _, _) => Some(c - p),
                (None, _, Some(c), Some(p)) => Some(c - p),
                _ => None,
            }
        })
        .collect();
    KindEffect {
        kind,
        valid_children: children.len() as u64,
        scored_children: deltas.len() as u64,
        mean_delta: (!deltas.is_empty()).then(|| deltas.iter().sum::<f64>() / deltas.len() as f64),
        accepted: children
            .iter()
            .filter(|child| child.comparison.as_ref().is_some_and(|c| c.accepted))
            .count() as u64,
    }
}

/// Validation errors as stored (a JSON array of strings, usually) as text.
fn error_texts(errors: &Value) -> Vec<String> {
    match errors {
        Value::Null => Vec::new(),
        Value::String(text) => vec![text.clone()],
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            })
            .collect(),
        other => vec![other.to_string()],
    }
}

/// The events a report uses, with repeats (from resumes) collapsed.
#[derive(Debug, Default)]
struct EventLog {
    /// `parents` events as (seq, at_ms, generation), in log order: when
    /// each generation (re)started.
    starts: Vec<(i64, i64, u64)>,
    /// Fitness recorded with each generation's parents, where it differed.
    fitness: BTreeMap<u64, BTreeMap<String, f64>>,
    generations: BTreeMap<u64, GenerationEvent>,
    comparisons: HashMap<String, Comparison>,
    tests: BTreeMap<u64, TestEvent>,
    /// Evaluation runs named by events, with the node they were for and
    /// the event's seq.
    eval_runs: Vec<(EvalRunId, Option<String>, i64)>,
    /// The meta cost of each attempt, from `child` events that record it
    /// (the last per node wins).
    meta_costs: HashMap<String, f64>,
    /// Prompt tokens each attempt's meta step read and reused, from
    /// `child` events that record them (the last per node wins).
    meta_prompts: HashMap<String, (u64, u64)>,
    unreadable: Vec<String>,
}

#[derive(Debug)]
struct GenerationEvent {
    best: f64,
    mean: f64,
    best_node: String,
    valid_children: u64,
    failed_attempts: u64,
    archive_size: u64,
}

#[derive(Debug)]
struct TestEvent {
    /// The node scored (empty in events from before it was recorded).
    node: String,
    success_rate: Option<f64>,
}

impl EventLog {
    fn read(events: &[EventRecord]) -> Self {
        let mut log = EventLog::default();
        for record in events {
            let event = match record.event() {
                Ok(event) => event,
                // Kinds a newer build may add carry nothing this report needs.
                Err(_) if !EvolutionEvent::KINDS.contains(&record.kind.as_str()) => continue,
                Err(error) => {
                    tracing::warn!(%error, "unreadable event payload");
                    log.unreadable
                        .push(format!("event {} ({})", record.seq, record.kind));
                    continue;
                }
            };
            if let Some((Some(eval_run), node, _)) = event.episodes_run() {
                log.eval_runs
                    .push((EvalRunId(eval_run), Some(node.to_owned()), record.seq));
            }
            match event {
                EvolutionEvent::Parents(p) => {
                    log.starts.push((record.seq, record.at_ms, p.generation));
                    if !p.fitness.is_empty() {
                        log.fitness.insert(p.generation, p.fitness);
                    }
                }
                EvolutionEvent::Generation(g) => {
                    log.generations.insert(
                        g.generation,
                        GenerationEvent {
                            best: g.best,
                            mean: g.mean,
                            best_node: g.best_node,
                            valid_children: g.valid_children,
                            failed_attempts: g.failed_attempts,
                            archive_size: g.archive_size,
                        },
                    );
                }
                EvolutionEvent::Comparison(c) => {
                    log.comparisons.insert(
                        c.node,
                        Comparison {
                            stage: c.stage,
                            tasks: c.tasks,
                            mean_difference: c.mean_difference,
                            lower_95: c.lower_95,
                            accepted: c.accepted,
                        },
                    );
                }
                EvolutionEvent::Test(t) => {
                    log.tests.insert(
                        t.generation,
                        TestEvent {
                            node: t.node,
                            success_rate: t.success_rate,
                        },
                    );
                }
                EvolutionEvent::Child(c) => {
                    if c.meta_prompt_tokens > 0 {
                        log.meta_prompts
                            .insert(c.node.clone(), (c.meta_prompt_tokens, c.meta_prompt_reused));
                    }
                    if let Some(cost) = c.meta_cost {
                        log.meta_costs.insert(c.node, cost);
                    }
                }
                // `launch`, `stopped`, `budget`, `smoke`, `quick_eval` and
                // `repair` carry nothing more the report needs.
                _ => {}
            }
        }
        log
    }

    /// The generation running at `at_ms`: that of the last `parents` event
    /// strictly before it (0 before the first). A resumed generation's
    /// second `parents` event takes over from the first.
    fn generation_at(&self, at_ms: i64) -> u64 {
        self.starts
            .iter()
            .filter(|(_, started, _)| *started < at_ms)
            .max_by_key(|(seq, _, _)| *seq)
            .map_or(0, |(_, _, generation)| *generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcomes(list: &[(&str, u64, bool)]) -> EpisodeOutcomes {
        list.iter()
            .map(|&(task, seed, success)| ((task.to_owned(), seed), success))
            .collect()
    }

    #[test]
    fn a_node_is_paired_with_the_seed_episode_by_episode() {
        let node = outcomes(&[
            ("a", 0, true),
            ("a", 1, true),
            ("b", 0, false),
            ("b", 1, true),
            // The seed never played this episode: it pairs with nothing.
            ("c", 0, true),
        ]);
        let seed = outcomes(&[
            ("a", 0, false),
            ("a", 1, false),
            ("b", 0, false),
            ("b", 1, true),
            ("d", 0, true),
        ]);
        let paired = PairedTest::of("g2c1", &node, &seed).unwrap();
        assert_eq!(
            (paired.pairs, paired.node_successes, paired.seed_successes),
            (4, 3, 1)
        );
        // Differences +1, +1, 0, 0: mean 0.5, sample variance 1/3.
        let half = 1.96 * (1.0_f64 / 3.0 / 4.0).sqrt();
        assert!((paired.mean - 0.5).abs() < 1e-12);
        assert!((paired.lower - (0.5 - half)).abs() < 1e-12);
        assert!((paired.upper - (0.5 + half)).abs() < 1e-12);
        assert!(PairedTest::of("g2c1", &outcomes(&[("a", 0, true)]), &seed).is_none());
    }

    fn event(seq: i64, at_ms: i64, kind: &str, payload: Value) -> EventRecord {
        EventRecord {
            seq,
            run_id: "r".into(),
            at_ms,
            kind: kind.into(),
            payload,
        }
    }

    #[test]
    fn wall_time_leaves_out_pauses_between_sessions() {
        let minute = 60_000;
        // Two sessions of 10 and 5 minutes, a day apart, stamps out of order.
        let day = 24 * 60 * minute;
        let mut stamps = vec![
            day + 5 * minute,
            0,
            4 * minute,
            10 * minute,
            day,
            day + 2 * minute,
        ];
        assert_eq!(active_ms(&mut stamps, IDLE_GAP_MS), 15 * minute as u64);
        // A slow step inside a session still counts.
        let mut slow = vec![0, 29 * minute, 31 * minute];
        assert_eq!(active_ms(&mut slow, IDLE_GAP_MS), 31 * minute as u64);
        assert_eq!(active_ms(&mut [], IDLE_GAP_MS), 0);
        assert_eq!(active_ms(&mut [7], IDLE_GAP_MS), 0);
    }

    #[test]
    fn spending_is_placed_in_the_generation_running_at_the_time() {
        let parents =
            |generation: u64| serde_json::json!({"generation": generation, "parents": []});
        let log = EventLog::read(&[
            event(1, 100, "parents", parents(1)),
            event(2, 200, "parents", parents(2)),
            // A resume restarts generation 2, then goes on to 3.
            event(3, 300, "parents", parents(2)),
            event(4, 400, "parents", parents(3)),
        ]);
        assert_eq!(log.generation_at(50), 0, "before the first generation");
        assert_eq!(log.generation_at(100), 0, "the same millisecond: not yet");
        assert_eq!(log.generation_at(150), 1);
        assert_eq!(log.generation_at(350), 2, "the resumed generation");
        assert_eq!(log.generation_at(10_000), 3);
    }

    #[test]
    fn repeated_events_collapse_and_malformed_ones_are_reported() {
        let log = EventLog::read(&[
            event(
                1,
                0,
                "test",
                serde_json::json!({"generation": 1, "success_rate": 0.25}),
            ),
            event(
                2,
                0,
                "test",
                serde_json::json!({"generation": 1, "success_rate": 0.5}),
            ),
            event(
                3,
                0,
                "test",
                serde_json::json!({"generation": 2, "success_rate": null}),
            ),
            event(
                4,
                0,
                "test",
                serde_json::json!({"generation": 3, "success_rate": "high"}),
            ),
            event(5, 0, "generation", serde_json::json!({"generation": 1})),
            event(6, 0, "stopped", serde_json::json!({"before_generation": 2})),
        ]);
        assert_eq!(log.tests.len(), 2);
        assert_eq!(log.tests[&1].success_rate, Some(0.5), "the last event wins");
        assert_eq!(log.tests[&2].success_rate, None);
        assert_eq!(log.unreadable, ["event 4 (test)", "event 5 (generation)"]);
    }

    #[test]
    fn validation_errors_become_text_whatever_their_shape() {
        assert!(error_texts(&Value::Null).is_empty());
        assert_eq!(error_texts(&serde_json::json!("one")), ["one"]);
        assert_eq!(
            error_texts(&serde_json::json!(["a", {"file": "x.py"}])),
            ["a", r#"{"file":"x.py"}"#]
        );
    }
}
