//! Choosing parents: the archive as candidates, and a program's own
//! selection script run in the sandbox.

use super::*;

impl Evolution {
    /// The candidates parents of generation `before` are drawn from, each
    /// scored by its fitness (the automated score when nobody judged).
    pub fn parent_candidates(&self, before: u64) -> Result<Vec<Candidate>, EvolveError> {
        let automated = self.candidates(before)?;
        Ok(self.with_fitness(&automated)?.0)
    }

    /// People's judgements of this run's episodes (none without a source).
    pub(super) fn judgements(&self) -> Result<crate::fitness::Judgements, EvolveError> {
        let Some(source) = &self.feedback else {
            return Ok(crate::fitness::Judgements::default());
        };
        Ok(crate::fitness::Judgements::new(
            &source.judgements(&self.settings.run_id)?,
        ))
    }

    /// The candidates with their fitness as score, and the fitness of those
    /// where it differs from the automated score (for the `parents` event).
    pub(super) fn with_fitness(
        &self,
        automated: &[Candidate],
    ) -> Result<(Vec<Candidate>, BTreeMap<String, f64>), EvolveError> {
        Ok(crate::fitness::with_fitness(
            self.archive.as_ref(),
            &self.judgements()?,
            &self.settings.run_id,
            self.settings.feedback_weight,
            automated,
        )?)
    }

    /// Candidates for parent selection: valid nodes of earlier generations,
    /// scored by their full stage (else stage 1).
    pub(super) fn candidates(&self, before: u64) -> Result<Vec<Candidate>, EvolveError> {
        Ok(crate::fitness::automated_candidates(
            self.archive.as_ref(),
            &self.settings.run_id,
            before,
        )?)
    }

    /// A node's mean score per train task on its latest stage (the full
    /// stage if it reached it).
    pub(super) fn task_scores(&self, node: &str) -> Result<BTreeMap<String, f64>, EvolveError> {
        let run = &self.settings.run_id;
        let stage = if self.archive.node_eval_run(run, node, FULL)?.is_some() {
            FULL
        } else {
            STAGE1
        };
        Ok(self
            .archive
            .node_task_stats(run, node, stage)?
            .into_iter()
            .filter_map(|t| t.mean_score.map(|score| (t.task, score)))
            .collect())
    }

    /// Parents chosen by the best node's own selection script
    /// (`meta.select`), or by the configured policy when it has none or the
    /// script fails or answers nonsense. Also returns what was used, for the
    /// `parents` event.
    pub(super) async fn program_selected_parents(
        &self,
        generation: u64,
        candidates: &[Candidate],
        rng: &mut StdRng,
    ) -> Result<(Vec<NodeId>, Option<SelectorUsed>), EvolveError> {
        let count = self.settings.children;
        let Some(best) = crate::select::best_candidate(candidates) else {
            // No node scored on the full stage yet (the seed always is, so
            // only a store missing its evaluation): the configured policy.
            let parents = select_parents(&self.settings.selection, candidates, count, rng)?;
            return Ok((parents, None));
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
    pub(super) async fn run_select_script(
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
        let settings = selection_settings(&program, script.as_str())
            .map_err(|error| format!("{node}: {error}"))?;
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
        inputs.insert("settings".into(), settings);
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
}

/// The selection script's settings: the JSON file beside it with the same
/// name (`meta/select.py` → `meta/select.json`), which a meta agent can
/// rewrite whole where it could not edit the script; `null` when there is
/// none. A file that is not JSON is an error (the run falls back to its
/// configured policy, and says why).
fn selection_settings(program: &Program, script: &str) -> Result<serde_json::Value, String> {
    let path = match script.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() && !stem.ends_with('/') => format!("{stem}.json"),
        _ => format!("{script}.json"),
    };
    let Some(text) = program.source(&path) else {
        return Ok(serde_json::Value::Null);
    };
    serde_json::from_str(text).map_err(|error| format!("{path} is not JSON: {error}"))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The engine draws the selection script's seed from all 64 bits; half
    /// of them lie past `i64`. e18's first run found the seed's own script
    /// failing on such a seed (it arrived as a float) and every generation
    /// falling back to the configured policy.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_seeds_selection_script_draws_with_any_64_bit_seed() {
        let pool = hyperagents_testkit::pool(1).await;
        let path = hyperagents_testkit::seed_dir().join("meta/select.py");
        let source = ScriptSource {
            file: "meta/select.py".into(),
            code: std::fs::read_to_string(path).unwrap(),
        };
        for seed in [0, 1 << 63, u64::MAX] {
            let mut inputs = serde_json::Map::new();
            inputs.insert(
                "candidates".into(),
                json!([
                    {"node": "seed", "score": 0.25, "children": 2, "task_successes": {"a": 0.5}, "task_scores": {"a": 0.5}},
                    {"node": "g1c0", "score": 0.5, "children": 0, "task_successes": {"a": 1.0}, "task_scores": {"a": 1.0}},
                ]),
            );
            inputs.insert("count".into(), json!(3));
            inputs.insert("seed".into(), json!(seed));
            inputs.insert("generation".into(), json!(1));
            inputs.insert("settings".into(), serde_json::Value::Null);
            let value = pool
                .run(&source, inputs, Arc::new(SelectHost))
                .await
                .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            let parents = value.as_array().unwrap();
            assert_eq!(parents.len(), 3, "seed {seed}: {value}");
            assert!(
                parents.iter().all(|p| p == "seed" || p == "g1c0"),
                "seed {seed}: {value}"
            );
        }
    }
}
