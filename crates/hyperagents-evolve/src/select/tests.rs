//! Unit tests for parent selection; expected weights are computed by hand.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;

fn candidate(node: &str, score: f64, children: u32) -> Candidate {
    Candidate {
        node: node.into(),
        score,
        children,
        task_successes: BTreeMap::new(),
        valid: true,
        full_stage: true,
    }
}

fn with_tasks(node: &str, score: f64, tasks: &[(&str, f64)]) -> Candidate {
    Candidate {
        task_successes: tasks
            .iter()
            .map(|(task, success)| ((*task).to_owned(), *success))
            .collect(),
        ..candidate(node, score, 0)
    }
}

fn weight_map(policy: &SelectionPolicy, candidates: &[Candidate]) -> BTreeMap<String, f64> {
    weights(policy, candidates)
        .into_iter()
        .map(|(node, weight)| (node.0, weight))
        .collect()
}

fn assert_close(actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() < 1e-12,
        "expected {expected}, got {actual}"
    );
}

fn dgm(penalty: ChildPenalty) -> SelectionPolicy {
    SelectionPolicy::DgmSigmoid {
        penalty,
        lambda: 10.0,
    }
}

/// Top-3 mean is (0.5 + 0.4 + 0.3) / 3 = 0.4; d (0.1) is outside the top 3.
fn four_candidates() -> Vec<Candidate> {
    vec![
        candidate("a", 0.5, 0),
        candidate("b", 0.4, 8),
        candidate("c", 0.3, 1),
        candidate("d", 0.1, 0),
    ]
}

#[test]
fn dgm_sigmoid_with_code_penalty_matches_hand_computed_weights() {
    let w = weight_map(&dgm(ChildPenalty::Code), &four_candidates());
    assert_close(w["a"], 0.731_058_578_630_004_9); // sigmoid(1) · exp(0)
    assert_close(w["b"], 0.183_939_720_585_721_17); // sigmoid(0) · exp(-1)
    assert_close(w["c"], 0.268_416_657_787_635_57); // sigmoid(-1) · exp(-(1/8)^3)
    assert_close(w["d"], 0.047_425_873_177_566_78); // sigmoid(-3)
}

#[test]
fn dgm_sigmoid_with_paper_penalty_matches_hand_computed_weights() {
    let w = weight_map(&dgm(ChildPenalty::Paper), &four_candidates());
    assert_close(w["a"], 0.731_058_578_630_004_9); // sigmoid(1) / 1
    assert_close(w["b"], 0.055_555_555_555_555_55); // sigmoid(0) / 9
    assert_close(w["c"], 0.134_470_710_684_997_55); // sigmoid(-1) / 2
}

#[test]
fn penalty_factors() {
    assert_close(ChildPenalty::Code.factor(0), 1.0);
    assert_close(ChildPenalty::Code.factor(16), (-8.0_f64).exp());
    assert_close(ChildPenalty::Paper.factor(3), 0.25);
}

#[test]
fn top3_mean_uses_all_candidates_when_fewer_than_three() {
    // Mean of 0.6 and 0.2 is 0.4, so the weights are sigmoid(±2).
    let w = weight_map(
        &dgm(ChildPenalty::Code),
        &[candidate("a", 0.6, 0), candidate("b", 0.2, 0)],
    );
    assert_close(w["a"], 0.880_797_077_977_882_3);
    assert_close(w["b"], 0.119_202_922_022_117_55);
}

#[test]
fn lambda_changes_the_steepness() {
    let policy = SelectionPolicy::DgmSigmoid {
        penalty: ChildPenalty::Code,
        lambda: 0.0,
    };
    let w = weight_map(&policy, &four_candidates());
    assert_close(w["a"], 0.5);
    assert_close(w["d"], 0.5);
}

#[test]
fn novelty_ranks_an_outlier_above_a_cluster() {
    let candidates = vec![
        with_tasks("c1", 0.5, &[("t1", 1.0), ("t2", 1.0)]),
        with_tasks("c2", 0.5, &[("t1", 1.0), ("t2", 0.9)]),
        with_tasks("c3", 0.5, &[("t1", 0.9), ("t2", 1.0)]),
        // Solves only a task the others were never evaluated on (missing counts as 0).
        with_tasks("outlier", 0.5, &[("t3", 1.0)]),
    ];
    let policy = SelectionPolicy::Novelty { k: 2, weight: 1.0 };
    let w = weight_map(&policy, &candidates);
    for member in ["c1", "c2", "c3"] {
        assert!(w["outlier"] > w[member], "{w:?}");
    }
    // c1's two nearest neighbours are c2 and c3, each at RMS distance sqrt(0.01 / 3).
    assert_close(w["c1"], (0.01_f64 / 3.0).sqrt());
}

#[test]
fn novelty_blends_with_score() {
    let candidates = vec![
        with_tasks("a", 0.8, &[("t1", 1.0)]),
        with_tasks("b", 0.2, &[("t1", 1.0)]),
    ];
    // Identical vectors: novelty 0, so the weights are half the scores.
    let w = weight_map(&SelectionPolicy::Novelty { k: 3, weight: 0.5 }, &candidates);
    assert_close(w["a"], 0.4);
    assert_close(w["b"], 0.1);
}

#[test]
fn pareto_front_holds_the_per_task_winners() {
    let candidates = vec![
        with_tasks("a", 0.5, &[("t1", 1.0), ("t2", 0.2), ("t4", 0.0)]),
        with_tasks("b", 0.6, &[("t1", 0.5), ("t2", 0.9), ("t3", 0.7)]),
        // Dominated: never best anywhere.
        with_tasks("c", 0.4, &[("t1", 0.5), ("t2", 0.5), ("t3", 0.6)]),
        // Ties a on t1.
        with_tasks("d", 0.3, &[("t1", 1.0)]),
    ];
    let w = weight_map(&SelectionPolicy::Pareto, &candidates);
    // t4 is solved by nobody and counts for no one.
    assert_eq!(
        w,
        BTreeMap::from([
            ("a".to_owned(), 1.0),
            ("b".to_owned(), 2.0),
            ("c".to_owned(), 0.0),
            ("d".to_owned(), 1.0),
        ])
    );
    let mut rng = StdRng::seed_from_u64(7);
    let parents = select_parents(&SelectionPolicy::Pareto, &candidates, 500, &mut rng).unwrap();
    assert!(!parents.contains(&NodeId::from("c")));
}

#[test]
fn best_breaks_ties_by_smallest_node_id() {
    let candidates = vec![
        candidate("b", 0.9, 0),
        candidate("a", 0.9, 0),
        candidate("c", 0.1, 0),
    ];
    let mut rng = StdRng::seed_from_u64(1);
    let parents = select_parents(&SelectionPolicy::Best, &candidates, 5, &mut rng).unwrap();
    assert_eq!(parents, vec![NodeId::from("a"); 5]);
}

#[test]
fn invalid_candidates_are_never_drawn() {
    let mut broken = candidate("broken", 1.0, 0);
    broken.valid = false;
    let candidates = vec![broken, candidate("x", 0.2, 0), candidate("y", 0.1, 0)];

    let w = weight_map(&SelectionPolicy::Random, &candidates);
    assert_eq!(w["broken"], 0.0);

    let mut rng = StdRng::seed_from_u64(3);
    let best = select_parents(&SelectionPolicy::Best, &candidates, 1, &mut rng).unwrap();
    assert_eq!(best, vec![NodeId::from("x")]);
    let drawn = select_parents(&SelectionPolicy::Random, &candidates, 1000, &mut rng).unwrap();
    assert!(!drawn.contains(&NodeId::from("broken")));
}

#[test]
fn no_valid_candidate_is_an_error() {
    let mut rng = StdRng::seed_from_u64(0);
    assert_eq!(
        select_parents(&SelectionPolicy::dgm_default(), &[], 1, &mut rng),
        Err(SelectError::NoValidCandidate { total: 0 })
    );
    let mut invalid = candidate("a", 0.5, 0);
    invalid.valid = false;
    assert_eq!(
        select_parents(&SelectionPolicy::Random, &[invalid], 1, &mut rng),
        Err(SelectError::NoValidCandidate { total: 1 })
    );
}

#[test]
fn all_zero_weights_fall_back_to_uniform() {
    let candidates = vec![candidate("a", 0.0, 0), candidate("b", 0.0, 0)];
    let w = weight_map(&SelectionPolicy::ScoreProportional, &candidates);
    assert_eq!(w["a"], 1.0);
    assert_eq!(w["b"], 1.0);
    let mut rng = StdRng::seed_from_u64(11);
    let parents = select_parents(
        &SelectionPolicy::ScoreProportional,
        &candidates,
        1000,
        &mut rng,
    )
    .unwrap();
    let a_count = parents.iter().filter(|p| p.0 == "a").count();
    assert!((350..=650).contains(&a_count), "a drawn {a_count} times");
}

#[test]
fn same_seed_gives_same_parents() {
    let candidates = four_candidates();
    let policy = SelectionPolicy::dgm_default();
    let draw = |seed| {
        let mut rng = StdRng::seed_from_u64(seed);
        select_parents(&policy, &candidates, 32, &mut rng).unwrap()
    };
    assert_eq!(draw(42), draw(42));
    assert_ne!(draw(42), draw(43));
}

#[test]
fn higher_weight_is_drawn_more_often() {
    // Weights 0.75 : 0.25, so about 7 500 of 10 000 draws go to "strong".
    let candidates = vec![candidate("strong", 0.75, 0), candidate("weak", 0.25, 0)];
    let mut rng = StdRng::seed_from_u64(2024);
    let parents = select_parents(
        &SelectionPolicy::ScoreProportional,
        &candidates,
        10_000,
        &mut rng,
    )
    .unwrap();
    let strong = parents.iter().filter(|p| p.0 == "strong").count();
    assert!(
        (7_000..=8_000).contains(&strong),
        "strong drawn {strong} times"
    );
}

#[test]
fn zero_count_selects_nothing() {
    let mut rng = StdRng::seed_from_u64(0);
    let parents = select_parents(&SelectionPolicy::Random, &four_candidates(), 0, &mut rng);
    assert_eq!(parents, Ok(vec![]));
}

#[test]
fn invalid_policy_parameters_are_rejected() {
    let mut rng = StdRng::seed_from_u64(0);
    for policy in [
        SelectionPolicy::Novelty { k: 0, weight: 0.5 },
        SelectionPolicy::Novelty { k: 2, weight: 1.5 },
        SelectionPolicy::DgmSigmoid {
            penalty: ChildPenalty::Code,
            lambda: f64::NAN,
        },
    ] {
        let result = select_parents(&policy, &four_candidates(), 1, &mut rng);
        assert!(
            matches!(result, Err(SelectError::InvalidPolicy(_))),
            "{policy:?}"
        );
    }
}

#[test]
fn policies_deserialise_with_defaults() {
    let policy: SelectionPolicy = serde_json::from_str(r#"{"kind":"dgm-sigmoid"}"#).unwrap();
    assert_eq!(policy, SelectionPolicy::dgm_default());
    let policy: SelectionPolicy =
        serde_json::from_str(r#"{"kind":"dgm-sigmoid","penalty":"paper","lambda":5.0}"#).unwrap();
    assert_eq!(
        policy,
        SelectionPolicy::DgmSigmoid {
            penalty: ChildPenalty::Paper,
            lambda: 5.0
        }
    );
    let policy: SelectionPolicy = serde_json::from_str(r#"{"kind":"score-proportional"}"#).unwrap();
    assert_eq!(policy, SelectionPolicy::ScoreProportional);
    let json = serde_json::to_string(&SelectionPolicy::Novelty { k: 4, weight: 0.3 }).unwrap();
    assert_eq!(json, r#"{"kind":"novelty","k":4,"weight":0.3}"#);
}

/// A stand-in for a program's own `meta/select.py`.
struct Scripted(Result<Vec<NodeId>, SelectError>);

impl ParentSelector for Scripted {
    fn select(
        &self,
        _candidates: &[Candidate],
        _count: usize,
        _rng: &mut dyn RngCore,
    ) -> Result<Vec<NodeId>, SelectError> {
        self.0.clone()
    }
}

fn fallback_to_best(primary: Scripted) -> FallbackSelector {
    FallbackSelector {
        primary: Box::new(primary),
        fallback: SelectionPolicy::Best,
    }
}

#[test]
fn fallback_selector_covers_a_failing_primary() {
    let mut invalid = candidate("broken", 0.9, 0);
    invalid.valid = false;
    let mut candidates = four_candidates();
    candidates.push(invalid);
    let best = vec![NodeId::from("a"); 2];
    let mut rng = StdRng::seed_from_u64(5);

    let failing = Scripted(Err(SelectError::Selector("select.py raised".to_owned())));
    let wrong_count = Scripted(Ok(vec![NodeId::from("d")]));
    let unknown = Scripted(Ok(vec![NodeId::from("d"), NodeId::from("nope")]));
    let names_invalid = Scripted(Ok(vec![NodeId::from("d"), NodeId::from("broken")]));
    for primary in [failing, wrong_count, unknown, names_invalid] {
        let selector = fallback_to_best(primary);
        assert_eq!(selector.select(&candidates, 2, &mut rng), Ok(best.clone()));
    }

    let sound = vec![NodeId::from("d"), NodeId::from("c")];
    let selector = fallback_to_best(Scripted(Ok(sound.clone())));
    assert_eq!(selector.select(&candidates, 2, &mut rng), Ok(sound));
}

#[test]
fn policies_work_as_boxed_selectors() {
    let selector: Box<dyn ParentSelector> = Box::new(SelectionPolicy::Best);
    let mut rng = StdRng::seed_from_u64(9);
    assert_eq!(
        selector.select(&four_candidates(), 1, &mut rng),
        Ok(vec![NodeId::from("a")])
    );
}
