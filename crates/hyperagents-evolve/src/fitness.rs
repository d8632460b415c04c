//! Fitness: the automated score a parent is chosen by, shaped by people's
//! judgements of episodes. Without judgements it is the automated score.
//!
//! - A successful episode rated **bad** (its latest rating; a person
//!   catching a reward hack) counts as a failure. A rating is of a node's
//!   episode of one task and seed, whichever stage showed it: the stages of
//!   a node share episodes.
//! - **Preferences** between two nodes' episodes of one task and seed give
//!   each node that took part a Bradley–Terry strength, fitted with the
//!   minorise–maximise iteration and one virtual win and one virtual loss
//!   against an average opponent (so a node preferred every time keeps a
//!   finite strength); its score is the chance of beating that opponent,
//!   `bt = p / (p + 1)` (½ for an even record), and it moves the automated
//!   score by its distance from even: `clamp(automated + weight · (bt − ½),
//!   0, 1)`. (Blending `bt` in as a second score would pull every node
//!   towards ½: a node at 25% that lost a comparison would gain.)
//! - Comments reach the meta agents of the rated node's descendants (see
//!   [`comments_for`]).

use std::collections::{BTreeMap, BTreeSet};

use hyperagents_store::{
    Archive, EpisodePreference, EpisodeRating, Feedback, NodeRecord, NodeStatus, StoreError,
};

use crate::engine::{FULL, STAGE1};
use crate::select::{Candidate, NodeId};

/// Minorise–maximise iterations of the Bradley–Terry fit.
const BT_ITERATIONS: usize = 200;

/// One episode of a node, as scored automatically.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    pub task: String,
    pub seed: u64,
    pub success: bool,
}

/// The run's judgements, sorted for use.
#[derive(Debug, Default)]
pub struct Judgements {
    /// (node, task, seed) → rated good? (the latest rating).
    ratings: BTreeMap<(String, String, u64), bool>,
    /// Bradley–Terry score per node that took part in a preference.
    bt: BTreeMap<String, f64>,
    comments: Vec<EpisodeRating>,
}

impl Judgements {
    pub fn new(feedback: &[Feedback]) -> Judgements {
        let mut latest: BTreeMap<(String, String, u64), (i64, bool)> = BTreeMap::new();
        let mut preferences = Vec::new();
        let mut comments = Vec::new();
        for item in feedback {
            match item {
                // Held-out episodes are never judged; a judgement of one
                // (made by hand in a file) is ignored.
                Feedback::Rating(r) if r.stage == "test" => {}
                Feedback::Preference(p) if p.stage == "test" => {}
                Feedback::Rating(r) => {
                    let key = (r.node.clone(), r.task.clone(), r.seed);
                    if latest.get(&key).is_none_or(|(at, _)| *at <= r.at_ms) {
                        latest.insert(key, (r.at_ms, r.good));
                    }
                    if !r.comment.trim().is_empty() {
                        comments.push(r.clone());
                    }
                }
                Feedback::Preference(p) => preferences.push(p.clone()),
            }
        }
        Judgements {
            ratings: latest.into_iter().map(|(k, (_, good))| (k, good)).collect(),
            bt: bradley_terry(&preferences),
            comments,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ratings.is_empty() && self.bt.is_empty()
    }

    /// The success rate of `node`'s `episodes` with successes rated bad
    /// counted as failures; `None` without episodes.
    pub fn rated_success_rate(&self, node: &str, episodes: &[Episode]) -> Option<f64> {
        if episodes.is_empty() {
            return None;
        }
        let successes = episodes
            .iter()
            .filter(|e| {
                e.success
                    && self
                        .ratings
                        .get(&(node.to_string(), e.task.clone(), e.seed))
                        .is_none_or(|good| *good)
            })
            .count();
        Some(successes as f64 / episodes.len() as f64)
    }

    /// `automated` moved by `node`'s Bradley–Terry score, if it has one.
    pub fn blend(&self, node: &str, automated: f64, weight: f64) -> f64 {
        let weight = weight.clamp(0.0, 1.0);
        match self.bt.get(node) {
            Some(bt) => (automated + weight * (bt - 0.5)).clamp(0.0, 1.0),
            None => automated,
        }
    }

    /// The Bradley–Terry scores, by node.
    pub fn bt_scores(&self) -> &BTreeMap<String, f64> {
        &self.bt
    }

    /// The comments on episodes of `lineage` (a node and its ancestors),
    /// newest first, at most `limit`.
    pub fn comments_for(&self, lineage: &[String], limit: usize) -> Vec<&EpisodeRating> {
        let mut found: Vec<&EpisodeRating> = self
            .comments
            .iter()
            .filter(|c| lineage.contains(&c.node))
            .collect();
        found.sort_by_key(|c| std::cmp::Reverse(c.at_ms));
        found.truncate(limit);
        found
    }
}

/// The candidates for parents of generation `before` of `run`: its valid
/// nodes of earlier generations, scored by their full stage (else stage 1,
/// marked as such), in an order that does not depend on when siblings finished.
pub fn automated_candidates(
    archive: &dyn Archive,
    run: &str,
    before: u64,
) -> Result<Vec<Candidate>, StoreError> {
    let mut nodes: Vec<NodeRecord> = archive
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
    // Counted once: a scan per node is quadratic in the archive's size.
    let mut children_of: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for parent in nodes.iter().filter_map(|n| n.parent_id.as_deref()) {
        *children_of.entry(parent).or_default() += 1;
    }
    // Every stage's per-task results in one read: three queries per node
    // cost 25 s per generation at 100,000 nodes (`--bench archive`).
    let stats = archive.archive_task_stats(run)?;
    let no_tasks = Vec::new();
    let mut candidates = Vec::new();
    for node in &nodes {
        let linked = |stage: &str| stats.get(&(node.node_id.clone(), stage.to_string()));
        let full = linked(FULL);
        let tasks = full.or_else(|| linked(STAGE1)).unwrap_or(&no_tasks);
        // The stage's success rate: its successes over its scored episodes.
        let (successes, episodes) = tasks
            .iter()
            .fold((0, 0), |(s, e), t| (s + t.successes, e + t.episodes));
        let score = (episodes > 0).then(|| successes as f64 / episodes as f64);
        let task_successes: BTreeMap<String, f64> = tasks
            .iter()
            .filter_map(|t| t.success_rate().map(|r| (t.task.clone(), r)))
            .collect();
        let children = children_of.get(node.node_id.as_str()).copied().unwrap_or(0);
        candidates.push(Candidate {
            node: NodeId(node.node_id.clone()),
            score: score.unwrap_or(0.0),
            children: u32::try_from(children).unwrap_or(u32::MAX),
            task_successes,
            valid: node.status == NodeStatus::Valid && score.is_some(),
            full_stage: full.is_some(),
        });
    }
    Ok(candidates)
}

/// `automated` with each valid node's fitness as its score, and the
/// fitness of those where it differs from the automated score.
pub fn with_fitness(
    archive: &dyn Archive,
    judgements: &Judgements,
    run: &str,
    weight: f64,
    automated: &[Candidate],
) -> Result<(Vec<Candidate>, BTreeMap<String, f64>), StoreError> {
    if judgements.is_empty() {
        return Ok((automated.to_vec(), BTreeMap::new()));
    }
    let mut changed = BTreeMap::new();
    let mut out = Vec::with_capacity(automated.len());
    for candidate in automated {
        let mut candidate = candidate.clone();
        if candidate.valid {
            let node = candidate.node.0.clone();
            let eval_run = match archive.node_eval_run(run, &node, FULL)? {
                Some(id) => Some(id),
                None => archive.node_eval_run(run, &node, STAGE1)?,
            };
            let episodes: Vec<Episode> = match eval_run {
                Some(id) => archive
                    .run_evaluations(id)?
                    .into_iter()
                    .map(|r| Episode {
                        task: r.key.task,
                        seed: r.key.seed,
                        success: r.result.success,
                    })
                    .collect(),
                None => Vec::new(),
            };
            let rated = judgements
                .rated_success_rate(&node, &episodes)
                .unwrap_or(candidate.score);
            let fitness = judgements.blend(&node, rated, weight);
            if (fitness - candidate.score).abs() > 1e-12 {
                changed.insert(node, fitness);
            }
            candidate.score = fitness;
        }
        out.push(candidate);
    }
    Ok((out, changed))
}

/// Bradley–Terry scores `p / (p + 1)` of every node in `preferences`.
pub fn bradley_terry(preferences: &[EpisodePreference]) -> BTreeMap<String, f64> {
    let mut nodes: BTreeSet<&str> = BTreeSet::new();
    for p in preferences {
        nodes.insert(&p.a);
        nodes.insert(&p.b);
    }
    let nodes: Vec<&str> = nodes.into_iter().collect();
    let index: BTreeMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let n = nodes.len();
    // wins[i]: real wins plus the virtual one; games[i][j]: comparisons.
    let mut wins = vec![1.0f64; n];
    let mut games = vec![vec![0.0f64; n]; n];
    for p in preferences {
        let (Some(&a), Some(&b)) = (index.get(p.a.as_str()), index.get(p.b.as_str())) else {
            continue;
        };
        let winner = if p.preferred == p.a { a } else { b };
        wins[winner] += 1.0;
        games[a][b] += 1.0;
        games[b][a] += 1.0;
    }
    let mut strength = vec![1.0f64; n];
    for _ in 0..BT_ITERATIONS {
        let mut next = vec![0.0f64; n];
        for i in 0..n {
            // Two virtual games against the average opponent (strength 1).
            let mut denominator = 2.0 / (strength[i] + 1.0);
            for j in 0..n {
                if games[i][j] > 0.0 {
                    denominator += games[i][j] / (strength[i] + strength[j]);
                }
            }
            next[i] = wins[i] / denominator;
        }
        strength = next;
    }
    nodes
        .into_iter()
        .zip(strength)
        .map(|(node, p)| (node.to_string(), p / (p + 1.0)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rating(node: &str, task: &str, good: bool, at_ms: i64, comment: &str) -> Feedback {
        Feedback::Rating(EpisodeRating {
            run: "r".into(),
            node: node.into(),
            stage: "full".into(),
            task: task.into(),
            seed: 0,
            good,
            comment: comment.into(),
            rater: "ana".into(),
            at_ms,
        })
    }

    fn prefer(a: &str, b: &str, preferred: &str) -> EpisodePreference {
        EpisodePreference {
            run: "r".into(),
            stage: "full".into(),
            task: "t".into(),
            seed: 0,
            a: a.into(),
            b: b.into(),
            preferred: preferred.into(),
            comment: String::new(),
            rater: "ana".into(),
            at_ms: 0,
        }
    }

    fn episodes(successes: &[bool]) -> Vec<Episode> {
        successes
            .iter()
            .enumerate()
            .map(|(i, s)| Episode {
                task: format!("t{i}"),
                seed: 0,
                success: *s,
            })
            .collect()
    }

    #[test]
    fn a_success_rated_bad_counts_as_a_failure_and_the_latest_rating_wins() {
        let none = Judgements::new(&[]);
        assert!(none.is_empty());
        assert_eq!(
            none.rated_success_rate("n", &episodes(&[true, true, false, false])),
            Some(0.5)
        );
        let hack = Judgements::new(&[rating("n", "t0", false, 1, "clicked everything")]);
        assert_eq!(
            hack.rated_success_rate("n", &episodes(&[true, true, false, false])),
            Some(0.25)
        );
        // Another node's episode of the same task is its own.
        assert_eq!(
            hack.rated_success_rate("m", &episodes(&[true, true, false, false])),
            Some(0.5)
        );
        let changed = Judgements::new(&[
            rating("n", "t0", false, 1, ""),
            rating("n", "t0", true, 2, ""),
        ]);
        assert_eq!(
            changed.rated_success_rate("n", &episodes(&[true, false])),
            Some(0.5)
        );
        assert_eq!(none.rated_success_rate("n", &[]), None);
    }

    #[test]
    fn preferences_order_nodes_and_blend_with_the_automated_score() {
        let scores = bradley_terry(&[
            prefer("a", "b", "a"),
            prefer("a", "b", "a"),
            prefer("b", "c", "b"),
            prefer("a", "c", "a"),
        ]);
        assert!(
            scores["a"] > scores["b"] && scores["b"] > scores["c"],
            "{scores:?}"
        );
        assert!(
            scores.values().all(|s| *s > 0.0 && *s < 1.0),
            "finite: {scores:?}"
        );
        // Even preferences leave everyone at the average.
        let even = bradley_terry(&[prefer("a", "b", "a"), prefer("a", "b", "b")]);
        assert!(
            (even["a"] - 0.5).abs() < 1e-9 && (even["b"] - 0.5).abs() < 1e-9,
            "{even:?}"
        );
        let judgements = Judgements::new(&[Feedback::Preference(prefer("a", "b", "a"))]);
        let bt = judgements.bt_scores()["a"];
        assert!((judgements.blend("a", 0.2, 0.5) - (0.2 + 0.5 * (bt - 0.5))).abs() < 1e-12);
        // The preferred node gains, the other loses, whatever their scores.
        assert!(judgements.blend("a", 0.2, 0.5) > 0.2 && judgements.blend("b", 0.2, 0.5) < 0.2);
        assert!(judgements.blend("b", 0.9, 0.5) < 0.9);
        assert_eq!(judgements.blend("b", 0.0, 1.0), 0.0, "clamped");
        assert_eq!(
            judgements.blend("z", 0.2, 0.5),
            0.2,
            "no preference, no change"
        );
        assert_eq!(judgements.blend("a", 0.2, 0.0), 0.2);
    }

    #[test]
    fn comments_reach_descendants_newest_first_and_test_judgements_are_ignored() {
        let mut test_rating = rating("p", "t9", false, 9, "held out");
        if let Feedback::Rating(r) = &mut test_rating {
            r.stage = "test".into();
        }
        let judgements = Judgements::new(&[
            rating("p", "t1", false, 1, "typed into the wrong field"),
            rating("gp", "t2", true, 2, "good recovery after a wrong click"),
            rating("other", "t3", false, 3, "not an ancestor"),
            test_rating,
        ]);
        let lineage = vec!["p".to_string(), "gp".to_string()];
        let found: Vec<&str> = judgements
            .comments_for(&lineage, 10)
            .iter()
            .map(|c| c.comment.as_str())
            .collect();
        assert_eq!(
            found,
            [
                "good recovery after a wrong click",
                "typed into the wrong field"
            ]
        );
        assert_eq!(judgements.comments_for(&lineage, 1).len(), 1);
        assert_eq!(
            judgements.rated_success_rate(
                "p",
                &[Episode {
                    task: "t9".into(),
                    seed: 0,
                    success: true
                }]
            ),
            Some(1.0)
        );
    }

    fn valid_node(store: &hyperagents_store::ResultsStore, node: &str, generation: u64) {
        store
            .insert_node(&hyperagents_store::NewNode {
                run_id: "r".into(),
                node_id: node.into(),
                program_hash: format!("{node:0>64}"),
                parent_id: (node != "seed").then(|| "seed".to_string()),
                generation,
                label: "test".into(),
                diff: String::new(),
                diff_kinds: Vec::new(),
                status: NodeStatus::Valid,
                validation_errors: serde_json::json!([]),
                meta_tokens: 0,
            })
            .unwrap();
    }

    /// Links `stage` of `node` to one episode per `(task, success)`.
    fn scored(
        store: &hyperagents_store::ResultsStore,
        node: &str,
        stage: &str,
        episodes: &[(&str, bool)],
    ) {
        use hyperagents_store::{EvalKey, EvalResult, EvalStatus, NewEvalRun};
        let program_hash = format!("{node:0>64}");
        let eval_run = store
            .create_run(&NewEvalRun {
                program_hash: program_hash.clone(),
                suite: "jsonl:t".into(),
                split: "train".into(),
                config: serde_json::json!({}),
            })
            .unwrap();
        store
            .link_node_evaluation("r", node, stage, eval_run)
            .unwrap();
        for (task, success) in episodes {
            let key = EvalKey {
                program_hash: program_hash.clone(),
                suite: "jsonl:t".into(),
                suite_version: "v1".into(),
                task: (*task).into(),
                seed: 0,
                models: BTreeMap::from([("task".into(), "double/fixed@-".into())]),
                sampling_hash: String::new(),
                host_api_version: 1,
            };
            let result = EvalResult {
                status: EvalStatus::Ok,
                success: *success,
                score: if *success { 1.0 } else { 0.0 },
                reason: String::new(),
                tokens_in: 1,
                tokens_out: 1,
                cost: 0.0,
                duration_ms: 1,
                trajectory: None,
                finished_at_ms: 0,
            };
            store.record_in_run(eval_run, &key, &result).unwrap();
        }
    }

    #[test]
    fn a_child_scored_only_on_stage_one_is_never_the_best_however_high_its_score() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            hyperagents_store::ResultsStore::open(dir.path().join("results.sqlite")).unwrap();
        store
            .create_evolution_run(&hyperagents_store::NewEvolutionRun {
                id: "r".into(),
                config: serde_json::json!({}),
                mode: hyperagents_store::RunMode::Hyper,
                seed: 1,
            })
            .unwrap();
        // Stage 1 is the easy task t0; the full stage adds two hard ones.
        valid_node(&store, "seed", 0);
        scored(&store, "seed", STAGE1, &[("t0", true)]);
        scored(
            &store,
            "seed",
            FULL,
            &[("t0", true), ("t1", false), ("t2", false)],
        );
        // Lost its stage-1 comparison (so never ran the full stage), yet its
        // stage-1 score, 1/2, is above the seed's full 1/3: e19-hyper-s2's g6c1.
        valid_node(&store, "g1c0", 1);
        scored(&store, "g1c0", STAGE1, &[("t0", true), ("t0b", false)]);
        let candidates = automated_candidates(&store, "r", 2).unwrap();
        let child = candidates.iter().find(|c| c.node.0 == "g1c0").unwrap();
        assert!(child.valid && !child.full_stage && child.score > 0.4);
        let best = crate::select::best_candidate(&candidates).unwrap();
        assert_eq!(best.node.0, "seed");
        assert!(best.full_stage);

        // A child that beats the seed on the full stage is the best.
        valid_node(&store, "g1c1", 1);
        scored(
            &store,
            "g1c1",
            FULL,
            &[("t0", true), ("t1", true), ("t2", false)],
        );
        let candidates = automated_candidates(&store, "r", 2).unwrap();
        assert_eq!(
            crate::select::best_candidate(&candidates).map(|c| c.node.0.as_str()),
            Some("g1c1")
        );
    }
}
