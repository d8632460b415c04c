//! What a meta agent is told of its situation (train results only).

use super::*;

/// People's comments a meta agent is shown, newest first.
const HUMAN_COMMENTS: usize = 8;

impl Evolution {
    /// What a meta agent is told of its situation (train results only).
    pub(super) fn meta_context(
        &self,
        generation: u64,
        parent: &str,
        same_parent_siblings_before: usize,
    ) -> Result<serde_json::Value, EvolveError> {
        let run = &self.settings.run_id;
        let nodes = self.archive.nodes(run)?;
        // Children made from this parent before this one: in earlier
        // generations, whatever became of them, and lower-numbered siblings.
        let parent_attempts_before = nodes
            .iter()
            .filter(|n| n.generation < generation && n.parent_id.as_deref() == Some(parent))
            .count()
            + same_parent_siblings_before;
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
                // A stage-1 score is over a subset of the tasks, maybe easier.
                "scored_on": if candidate.full_stage { "all train tasks" } else { "stage 1's tasks only" },
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
        // People's comments on episodes of the parent and its ancestors.
        let mut lineage = vec![parent.to_string()];
        while let Some(up) = nodes
            .iter()
            .find(|n| Some(&n.node_id) == lineage.last())
            .and_then(|n| n.parent_id.clone())
            .filter(|up| !lineage.contains(up))
        {
            lineage.push(up);
        }
        let judgements = self.judgements()?;
        let human_feedback: Vec<serde_json::Value> = judgements
            .comments_for(&lineage, HUMAN_COMMENTS)
            .into_iter()
            .map(|c| {
                json!({
                    "node": c.node,
                    "task": c.task,
                    "rated": if c.good { "good" } else { "bad" },
                    "comment": clip_chars(&c.comment, 300),
                })
            })
            .collect();
        Ok(json!({
            "generation": generation,
            "generations_left": self.settings.generations.saturating_sub(generation),
            "mode": self.settings.mode.as_str(),
            "parent": parent,
            "parent_train_success_by_task": parent_tasks,
            // Children made from this parent before this one (earlier
            // generations, lower-numbered siblings): an edit mined by code
            // from the parent's episodes is the same for each of them, and
            // a second copy is refused as a duplicate.
            "parent_attempts_before": parent_attempts_before,
            "best_of_archive": archive,
            "edit_effects": edit_effects,
            "human_feedback": human_feedback,
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
    pub(super) fn edit_effects(
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
        for event in self.archive.events(&self.settings.run_id, 0)? {
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
}
