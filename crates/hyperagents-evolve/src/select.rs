//! Parent selection: which archive nodes get a child this generation.
//!
//! Selection works on plain [`Candidate`] records (a node's mean train score, its number of
//! children, its per-task success rates and whether it is still a valid parent), so it depends
//! on neither the store nor the runtime. Parents are drawn *with replacement* in proportion to a
//! policy's weight, as DGM-H does: a strong node may get several children in one generation.
//! Invalid candidates never get drawn; when every valid candidate weighs zero the draw falls
//! back to uniform so that a flat archive (e.g. the seed scored 0) still evolves.
//!
//! Everything is deterministic given the RNG: the same seed, candidates and policy give the same
//! parents, which makes runs reproducible and resumable.
//!
//! A program may later choose its own parents through `meta/select.py`; that arrives as a
//! [`ParentSelector`], wrapped in a [`FallbackSelector`] so a broken script costs a warning,
//! never a generation.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};

/// The id of a node in the archive (the content hash of its program, or any stable name).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub String);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for NodeId {
    fn from(id: &str) -> Self {
        Self(id.to_owned())
    }
}

/// One archive node as parent selection sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub node: NodeId,
    /// Mean success over the train tasks it was evaluated on, in `[0, 1]`.
    pub score: f64,
    /// How many children it already has (the exploration penalty's input).
    pub children: u32,
    /// Success rate per train task, in `[0, 1]`; feeds the novelty and Pareto policies.
    pub task_successes: BTreeMap<String, f64>,
    /// False once the node may no longer be a parent (e.g. its meta agent broke).
    pub valid: bool,
    /// Whether `score` is over every train task (the full stage). A score on
    /// stage 1's subset is not comparable with full scores, so only such
    /// nodes can be a run's best (`best_candidate`).
    pub full_stage: bool,
}

/// The run's best node: the valid candidate with the highest score among those
/// scored on the full stage, ties to the earliest (the archive's order), so
/// the seed stays best until a child beats it on the same tasks. A child that
/// lost its stage-1 comparison never ran the full stage; its stage-1 score
/// may be higher only because stage 1's tasks are easier.
pub fn best_candidate(candidates: &[Candidate]) -> Option<&Candidate> {
    let mut best: Option<&Candidate> = None;
    for candidate in candidates.iter().filter(|c| c.valid && c.full_stage) {
        if best.is_none_or(|b| candidate.score > b.score) {
            best = Some(candidate);
        }
    }
    best
}

/// How parents are weighted. Serialised as `{"kind": "dgm-sigmoid", ...}` in run configs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SelectionPolicy {
    /// DGM-H's rule: `sigmoid(lambda · (score − mean of the top-3 scores)) × penalty(children)`.
    /// With fewer than three valid candidates the mean is over all of them.
    DgmSigmoid {
        #[serde(default)]
        penalty: ChildPenalty,
        /// Steepness of the sigmoid; DGM-H uses 10.
        #[serde(default = "default_lambda")]
        lambda: f64,
    },
    /// `(1 − weight) · score + weight · novelty`, where novelty is the mean distance of the
    /// candidate's per-task success vector to its `k` nearest valid neighbours (all of them
    /// when there are fewer than `k`; 0 when it is alone).
    ///
    /// Vectors range over the union of the valid candidates' tasks; a task a candidate was not
    /// evaluated on counts as success 0. The distance is the root-mean-square difference over
    /// that union (Euclidean distance / √tasks), so novelty lies in `[0, 1]` like the score.
    Novelty {
        #[serde(default = "default_novelty_k")]
        k: usize,
        /// Share of novelty in the blend, in `[0, 1]`.
        #[serde(default = "default_novelty_weight")]
        weight: f64,
    },
    /// Weight = score (negative scores count as 0).
    ScoreProportional,
    /// GEPA-style: the front is every candidate that is best (ties included) on at least one
    /// task that someone solves at all; weight = the number of tasks it is best on.
    Pareto,
    /// Every valid candidate weighs the same.
    Random,
    /// Always the highest score; ties go to the smallest node id so the choice is stable.
    Best,
}

/// DGM-H's exploration penalty on nodes that already have children.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChildPenalty {
    /// `exp(−(children / 8)³)`, as DGM-H's code does: almost no penalty for the first few.
    #[default]
    Code,
    /// `1 / (1 + children)`, as the DGM-H paper writes it.
    Paper,
}

/// Why no parents could be chosen.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SelectError {
    #[error("no valid candidate to select a parent from ({total} candidates, none valid)")]
    NoValidCandidate { total: usize },
    #[error("invalid selection policy: {0}")]
    InvalidPolicy(String),
    /// A custom selector (e.g. a program's `meta/select.py`) failed.
    #[error("parent selector failed: {0}")]
    Selector(String),
}

/// Something that chooses `count` parents from the candidates. Object safe, so a program's own
/// selection script can be plugged in beside the built-in policies.
pub trait ParentSelector {
    fn select(
        &self,
        candidates: &[Candidate],
        count: usize,
        rng: &mut dyn RngCore,
    ) -> Result<Vec<NodeId>, SelectError>;
}

impl ParentSelector for SelectionPolicy {
    fn select(
        &self,
        candidates: &[Candidate],
        count: usize,
        rng: &mut dyn RngCore,
    ) -> Result<Vec<NodeId>, SelectError> {
        select_parents(self, candidates, count, rng)
    }
}

/// Tries `primary` and falls back to a built-in policy when it errs or answers nonsense
/// (a node that is unknown or invalid, or the wrong number of parents). The primary is
/// untrusted program code: its failure must not stop the run.
pub struct FallbackSelector {
    pub primary: Box<dyn ParentSelector>,
    pub fallback: SelectionPolicy,
}

impl fmt::Debug for FallbackSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackSelector")
            .field("fallback", &self.fallback)
            .finish_non_exhaustive()
    }
}

impl ParentSelector for FallbackSelector {
    fn select(
        &self,
        candidates: &[Candidate],
        count: usize,
        rng: &mut dyn RngCore,
    ) -> Result<Vec<NodeId>, SelectError> {
        match self.primary.select(candidates, count, rng) {
            Ok(parents) => match check_answer(candidates, count, &parents) {
                Ok(()) => Ok(parents),
                Err(problem) => {
                    tracing::warn!(%problem, fallback = ?self.fallback, "parent selector answered nonsense; using the fallback policy");
                    select_parents(&self.fallback, candidates, count, rng)
                }
            },
            Err(error) => {
                tracing::warn!(%error, fallback = ?self.fallback, "parent selector failed; using the fallback policy");
                select_parents(&self.fallback, candidates, count, rng)
            }
        }
    }
}

/// Draws `count` parents with replacement, in proportion to [`weights`]. Invalid candidates are
/// never drawn; if all valid candidates weigh zero the draw is uniform over them.
pub fn select_parents<R: Rng + ?Sized>(
    policy: &SelectionPolicy,
    candidates: &[Candidate],
    count: usize,
    rng: &mut R,
) -> Result<Vec<NodeId>, SelectError> {
    policy.validate()?;
    if !candidates.iter().any(|candidate| candidate.valid) {
        return Err(SelectError::NoValidCandidate {
            total: candidates.len(),
        });
    }
    let weighted = weights(policy, candidates);
    let total: f64 = weighted.iter().map(|(_, weight)| weight).sum();
    (0..count)
        .map(|_| {
            draw(&weighted, total, rng.random::<f64>()).ok_or(SelectError::NoValidCandidate {
                total: candidates.len(),
            })
        })
        .collect()
}

/// The sampling weight of every candidate, in input order: invalid candidates weigh 0,
/// non-finite or negative policy weights count as 0, and when all valid candidates weigh 0
/// each valid one gets 1 (the uniform fallback). Weights are not normalised.
pub fn weights(policy: &SelectionPolicy, candidates: &[Candidate]) -> Vec<(NodeId, f64)> {
    let valid: Vec<&Candidate> = candidates.iter().filter(|c| c.valid).collect();
    let raw = policy_weights(policy, &valid);
    let all_zero = raw.iter().all(|weight| *weight == 0.0);
    let mut valid_weights = raw.into_iter();
    candidates
        .iter()
        .map(|candidate| {
            let weight = if !candidate.valid {
                0.0
            } else {
                let weight = valid_weights.next().unwrap_or(0.0);
                if all_zero { 1.0 } else { weight }
            };
            (candidate.node.clone(), weight)
        })
        .collect()
}

impl SelectionPolicy {
    /// DGM-H's published configuration.
    pub fn dgm_default() -> Self {
        Self::DgmSigmoid {
            penalty: ChildPenalty::Code,
            lambda: default_lambda(),
        }
    }

    /// Rejects parameters that would make weights meaningless.
    pub fn validate(&self) -> Result<(), SelectError> {
        match self {
            Self::DgmSigmoid { lambda, .. } if !lambda.is_finite() => {
                Err(SelectError::InvalidPolicy(format!(
                    "dgm-sigmoid lambda must be finite, got {lambda}"
                )))
            }
            Self::Novelty { k: 0, .. } => Err(SelectError::InvalidPolicy(
                "novelty k must be at least 1".to_owned(),
            )),
            Self::Novelty { weight, .. } if !(0.0..=1.0).contains(weight) => {
                Err(SelectError::InvalidPolicy(format!(
                    "novelty weight must lie in [0, 1], got {weight}"
                )))
            }
            _ => Ok(()),
        }
    }
}

impl ChildPenalty {
    /// The multiplier for a node with `children` children, in `(0, 1]`.
    pub fn factor(self, children: u32) -> f64 {
        let children = f64::from(children);
        match self {
            Self::Code => (-(children / 8.0).powi(3)).exp(),
            Self::Paper => 1.0 / (1.0 + children),
        }
    }
}

fn default_lambda() -> f64 {
    10.0
}

fn default_novelty_k() -> usize {
    3
}

fn default_novelty_weight() -> f64 {
    0.5
}

/// Raw weights of the valid candidates, same order, sanitised to finite non-negative values.
fn policy_weights(policy: &SelectionPolicy, valid: &[&Candidate]) -> Vec<f64> {
    let raw: Vec<f64> = match policy {
        SelectionPolicy::DgmSigmoid { penalty, lambda } => {
            let top = top3_mean(valid);
            valid
                .iter()
                .map(|c| sigmoid(lambda * (c.score - top)) * penalty.factor(c.children))
                .collect()
        }
        SelectionPolicy::Novelty { k, weight } => {
            let novelty = novelty(valid, *k);
            valid
                .iter()
                .zip(novelty)
                .map(|(c, novelty)| (1.0 - weight) * c.score.max(0.0) + weight * novelty)
                .collect()
        }
        SelectionPolicy::ScoreProportional => valid.iter().map(|c| c.score).collect(),
        SelectionPolicy::Pareto => pareto_wins(valid),
        SelectionPolicy::Random => vec![1.0; valid.len()],
        SelectionPolicy::Best => {
            let best = valid
                .iter()
                .enumerate()
                .filter(|(_, c)| !c.score.is_nan())
                // Highest score first; among equal scores the smallest id wins.
                .max_by(|(_, a), (_, b)| a.score.total_cmp(&b.score).then(b.node.cmp(&a.node)))
                .map(|(index, _)| index);
            (0..valid.len())
                .map(|index| if Some(index) == best { 1.0 } else { 0.0 })
                .collect()
        }
    };
    raw.into_iter()
        .map(|weight| {
            if weight.is_finite() && weight > 0.0 {
                weight
            } else {
                0.0
            }
        })
        .collect()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Mean of the three highest scores (of all of them when there are fewer than three).
fn top3_mean(valid: &[&Candidate]) -> f64 {
    let mut scores: Vec<f64> = valid
        .iter()
        .map(|c| c.score)
        .filter(|s| s.is_finite())
        .collect();
    scores.sort_by(|a, b| b.total_cmp(a));
    scores.truncate(3);
    if scores.is_empty() {
        0.0
    } else {
        scores.iter().sum::<f64>() / scores.len() as f64
    }
}

/// Per-task success vectors over the union of tasks (missing = 0).
fn success_vectors(valid: &[&Candidate]) -> Vec<Vec<f64>> {
    let tasks: BTreeSet<&String> = valid.iter().flat_map(|c| c.task_successes.keys()).collect();
    valid
        .iter()
        .map(|c| {
            tasks
                .iter()
                .map(|task| c.task_successes.get(*task).copied().unwrap_or(0.0))
                .collect()
        })
        .collect()
}

fn novelty(valid: &[&Candidate], k: usize) -> Vec<f64> {
    let vectors = success_vectors(valid);
    let rms_distance = |a: &[f64], b: &[f64]| {
        if a.is_empty() {
            return 0.0;
        }
        let squares: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum();
        (squares / a.len() as f64).sqrt()
    };
    vectors
        .iter()
        .enumerate()
        .map(|(i, own)| {
            let mut distances: Vec<f64> = vectors
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, other)| rms_distance(own, other))
                .collect();
            distances.sort_by(f64::total_cmp);
            distances.truncate(k);
            if distances.is_empty() {
                0.0
            } else {
                distances.iter().sum::<f64>() / distances.len() as f64
            }
        })
        .collect()
}

/// For each candidate, the number of tasks on which it is best (ties all count). Tasks nobody
/// solves at all are skipped: being "best" at failing earns nothing.
fn pareto_wins(valid: &[&Candidate]) -> Vec<f64> {
    let vectors = success_vectors(valid);
    let task_count = vectors.first().map_or(0, Vec::len);
    let mut wins = vec![0.0; valid.len()];
    for task in 0..task_count {
        let best = vectors
            .iter()
            .map(|v| v[task])
            .filter(|s| s.is_finite())
            .fold(0.0_f64, f64::max);
        if best <= 0.0 {
            continue;
        }
        for (candidate, vector) in vectors.iter().enumerate() {
            if vector[task] >= best {
                wins[candidate] += 1.0;
            }
        }
    }
    wins
}

/// Picks the entry whose cumulative-weight interval contains `unit · total`.
fn draw(weighted: &[(NodeId, f64)], total: f64, unit: f64) -> Option<NodeId> {
    let target = unit * total;
    let mut cumulative = 0.0;
    let mut last_positive = None;
    for (node, weight) in weighted {
        if *weight <= 0.0 {
            continue;
        }
        cumulative += weight;
        last_positive = Some(node);
        if target < cumulative {
            return Some(node.clone());
        }
    }
    // Rounding can leave `target` a hair above the final sum; the last positive entry owns it.
    // `weights` guarantees a positive entry whenever a valid candidate exists.
    last_positive.cloned()
}

/// Why a custom selector's answer cannot be used, if it cannot.
pub(crate) fn check_answer(
    candidates: &[Candidate],
    count: usize,
    parents: &[NodeId],
) -> Result<(), String> {
    if parents.len() != count {
        return Err(format!("asked for {count} parents, got {}", parents.len()));
    }
    let valid: HashSet<&NodeId> = candidates
        .iter()
        .filter(|c| c.valid)
        .map(|c| &c.node)
        .collect();
    match parents.iter().find(|parent| !valid.contains(parent)) {
        Some(unknown) => Err(format!("{unknown} is not a valid candidate")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
