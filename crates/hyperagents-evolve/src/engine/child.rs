//! Making a child: the parent's meta agent on a copy (or the seed's in
//! fixed-meta mode), the mode's limits, duplicates, and the failures it
//! learns from.

use super::generation::Siblings;
use super::*;

impl Evolution {
    pub(super) async fn make_child(
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
                meta_prompt_tokens: 0,
                meta_prompt_reused: 0,
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
        config.context = self.meta_context(generation, parent, siblings.same_parent_before)?;
        if let Some(repair) = repair {
            config.base = Some(repair.base.clone());
            config.context["repair"] = json!({
                "errors": repair.errors,
                "rejected_diff": clip_chars(&repair.diff, 4000),
            });
        }
        if self.settings.quick_eval_calls > 0 {
            let quick = TrainQuickEval::new(
                self.evaluator.clone(),
                self.archive.clone(),
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
        let improving = self
            .meta_steps
            .step(&meta_source, &failures, &child_dir, &config);
        let stop = self.stop_requested();
        let outcome =
            match futures::future::select(std::pin::pin!(improving), std::pin::pin!(stop)).await {
                futures::future::Either::Left((outcome, _)) => outcome,
                futures::future::Either::Right((reason, _)) => {
                    return Err(EvolveError::Interrupted(Interruption::Stop(reason)));
                }
            };
        let outcome = match outcome {
            Ok(outcome) => outcome,
            // A step elsewhere that came back without a child (its worker
            // failed, it ran out of deliveries) fails this attempt only.
            Err(error @ ImproveError::Remote { .. }) => {
                return Ok(MadeChild {
                    program_hash: String::new(),
                    label: format!("child of {parent}"),
                    diff: String::new(),
                    kinds: Vec::new(),
                    errors: vec![error.to_string()],
                    meta_tokens: 0,
                    meta_cost: 0.0,
                    meta_prompt_tokens: 0,
                    meta_prompt_reused: 0,
                    repairable: false,
                });
            }
            Err(error) => {
                return Err(EvolveError::Io {
                    path: child_dir.clone(),
                    message: error.to_string(),
                });
            }
        };
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
            meta_prompt_tokens: outcome.meta_prompt_tokens,
            meta_prompt_reused: outcome.meta_prompt_cached,
        })
    }

    /// Whether a valid node made before this child holds `program_hash`:
    /// one of an earlier generation, or a lower-numbered sibling (stored, or
    /// made in this process and awaited). Higher-numbered siblings never
    /// count, so which of two identical siblings is refused does not depend
    /// on which finished first, nor on a kill and resume in between.
    pub(super) async fn duplicate_of(
        &self,
        program_hash: &str,
        generation: u64,
        siblings: &Siblings<'_>,
    ) -> Result<bool, EvolveError> {
        let sibling_prefix = format!("g{generation}c");
        let in_archive = self.archive.nodes(&self.settings.run_id)?.iter().any(|n| {
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
    pub(super) fn failures_dir(&self, parent: &str, child: &str) -> Result<PathBuf, EvolveError> {
        let run = &self.settings.run_id;
        let eval_run = match self.archive.node_eval_run(run, parent, FULL)? {
            Some(id) => Some(id),
            None => self.archive.node_eval_run(run, parent, STAGE1)?,
        };
        let dir = self.dir.join("work").join(format!("{child}-failures"));
        if dir.exists() {
            remove_dir(&dir)?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let Some(eval_run) = eval_run else {
            return Ok(dir);
        };
        for record in self.archive.run_evaluations(eval_run)? {
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

pub(super) struct MadeChild {
    pub(super) program_hash: String,
    pub(super) label: String,
    pub(super) diff: String,
    pub(super) kinds: Vec<StoredDiffKind>,
    pub(super) errors: Vec<String>,
    pub(super) meta_tokens: u64,
    pub(super) meta_cost: f64,
    pub(super) meta_prompt_tokens: u64,
    pub(super) meta_prompt_reused: u64,
    /// Whether a repair round could help: the meta agent changed something
    /// that is not already archived.
    pub(super) repairable: bool,
}

/// A rejected child handed back to its parent's meta agent.
pub(super) struct Repair {
    /// The rejected child's files (the repair round starts from them).
    pub(super) base: PathBuf,
    pub(super) errors: Vec<String>,
    pub(super) diff: String,
}
