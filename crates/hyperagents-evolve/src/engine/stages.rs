//! Evaluating nodes: staged evaluation, the smoke episode, paired
//! comparison of a child with its parent, and the tokens a run has spent.

use super::*;

impl Evolution {
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
        for node in self.archive.nodes(run)? {
            spent.meta += node.meta_tokens;
            for stage in [STAGE1, FULL] {
                eval_runs.extend(self.archive.node_eval_run(run, &node.node_id, stage)?);
            }
        }
        for event in self.archive.events(run, 0)? {
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
            for record in self.archive.run_evaluations(eval_run)? {
                if counted.insert(record.key_hash.as_str().to_owned()) {
                    spent.episodes += record.result.tokens_in + record.result.tokens_out;
                }
            }
        }
        Ok(spent)
    }

    /// The stage's summary for `node`, evaluating it unless the store holds it.
    pub(super) async fn evaluate_stage(
        &self,
        node: &str,
        stage: &'static str,
        seeds: &[u64],
    ) -> Result<RunSummary, EvolveError> {
        let run = &self.settings.run_id;
        if let Some(summary) = self.archive.node_stage_summary(run, node, stage)? {
            return Ok(summary);
        }
        let dir = self.node_dir(node);
        let program = Arc::new(load(&dir).map_err(|errors| EvolveError::Io {
            path: dir.clone(),
            message: errors,
        })?);
        // A node's directory must still hold the program its row names: an
        // edited or damaged directory is never scored under the node's name.
        if let Some(record) = self.archive.node(run, node)? {
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
        let eval_run = self.archive.create_eval_run(&NewEvalRun {
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
        self.archive
            .link_node_evaluation(run, node, stage, eval_run)?;
        Ok(report.summary)
    }

    pub(super) async fn run_plan(
        &self,
        program: Arc<Program>,
        tasks: Vec<String>,
        seeds: Vec<u64>,
        eval_run: EvalRunId,
        traces: PathBuf,
    ) -> Result<EvalReport, EvolveError> {
        let target = EvalTarget {
            program,
            domain: self.domain.clone(),
            suite: self.suite.clone(),
        };
        let plan = EvalPlan {
            tasks,
            seeds,
            concurrency: self.settings.concurrency,
            reuse_cached: true,
        };
        Ok(self
            .evaluator
            .evaluate(&target, &plan, eval_run, &traces)
            .await?)
    }

    /// One episode of the first stage-1 task, before any staged evaluation:
    /// the child's errors if the episode failed to run or ended in a code
    /// defect (see [`crate::quick::CODE_DEFECTS`]); an agent that merely fails the task
    /// passes. The result is stored like any evaluation, so stage 1 reuses it.
    pub(super) async fn smoke(
        &self,
        generation: u64,
        child: &str,
    ) -> Result<Vec<String>, EvolveError> {
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
        let eval_run = self.archive.create_eval_run(&NewEvalRun {
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
        self.archive.append(
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

    /// Stage 1, then the full stage when the child's stage-1 success rate
    /// is at least its parent's minus one standard error.
    pub(super) async fn evaluate_child(
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

    /// The child against its parent, paired by task: per-task success-rate
    /// differences, their mean and the lower bound of a 95% interval.
    pub(super) fn compare(
        &self,
        parent: &str,
        child: &str,
        stage: &str,
    ) -> Result<Paired, EvolveError> {
        let run = &self.settings.run_id;
        let rates = |node: &str| -> Result<BTreeMap<String, f64>, EvolveError> {
            Ok(self
                .archive
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
    pub(super) fn seeds_for(&self, generation: u64, child: &str) -> Vec<u64> {
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

/// Why a smoke episode rejects its child, if it does.
fn smoke_errors(report: &EvalReport) -> Vec<String> {
    report.records.iter().filter_map(program_defect).collect()
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
