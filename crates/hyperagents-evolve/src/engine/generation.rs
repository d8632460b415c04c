//! One generation: parents drawn and recorded, attempts run side by side,
//! each attempt's node stored, and the generation's statistics.

use super::child::Repair;
use super::*;

impl Evolution {
    /// Which generations earlier invocations of this run began (`parents`
    /// recorded) and finished (`generation` recorded).
    pub(super) fn recorded_generations(&self) -> Result<RecordedGenerations, EvolveError> {
        let mut recorded = RecordedGenerations::default();
        for event in self.archive.events(&self.settings.run_id, 0)? {
            match event.event() {
                Ok(EvolutionEvent::Parents(p)) => {
                    recorded.begun.insert(p.generation);
                    recorded.parents.insert(p.generation, p.parents);
                }
                Ok(EvolutionEvent::Generation(g)) => {
                    recorded.finished.insert(g.generation);
                }
                _ => {}
            }
        }
        Ok(recorded)
    }

    pub(super) async fn generation(
        &self,
        generation: u64,
        history: &RecordedGenerations,
    ) -> Result<GenerationStats, EvolveError> {
        let run = &self.settings.run_id;
        let automated = self.candidates(generation)?;
        let (candidates, fitness) = self.with_fitness(&automated)?;
        let mut rng = StdRng::seed_from_u64(mix(self.episodes.run_seed, generation));
        let mut selector = None;
        let parents = match (self.settings.mode, history.parents.get(&generation)) {
            (_, Some(recorded)) => recorded.iter().map(|p| NodeId(p.clone())).collect(),
            // Without self-improvement the seed is re-run on fresh seeds.
            (RunMode::None, None) => vec![NodeId(SEED_NODE.into()); self.settings.children],
            (RunMode::Hyper, None) if self.settings.program_selection => {
                let (parents, used) = self
                    .program_selected_parents(generation, &candidates, &mut rng)
                    .await?;
                selector = used;
                parents
            }
            (_, None) => select_parents(
                &self.settings.selection,
                &candidates,
                self.settings.children,
                &mut rng,
            )?,
        };
        // A replayed generation uses the parents it recorded; record them once.
        if !history.begun.contains(&generation) {
            self.archive.append(
                run,
                &EvolutionEvent::Parents(ParentsChosen {
                    generation,
                    parents: parents.iter().map(|p| p.0.clone()).collect(),
                    selector: selector.clone(),
                    fitness,
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
                    same_parent_before: parents[..index].iter().filter(|p| p.0 == parent).count(),
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
        // Among nodes scored on every train task only: a stage-1 score is
        // over a subset that may be easier.
        let (best, best_node) = match crate::select::best_candidate(&after) {
            Some(c) => (c.score, c.node.0.clone()),
            None => (0.0, SEED_NODE.to_string()),
        };
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
        self.archive.append(
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
    pub(super) async fn attempt(
        &self,
        generation: u64,
        parent: &str,
        child: &str,
        siblings: Siblings<'_>,
    ) -> Result<NodeStatus, EvolveError> {
        let run = &self.settings.run_id;
        if let Some(existing) = self.archive.node(run, child)? {
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
            self.archive.append(
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
            let first_round = (
                made.meta_tokens,
                made.meta_cost,
                made.meta_prompt_tokens,
                made.meta_prompt_reused,
            );
            made = self
                .make_child(generation, parent, child, Some(&repair), &siblings)
                .await?;
            made.meta_tokens += first_round.0;
            made.meta_cost += first_round.1;
            made.meta_prompt_tokens += first_round.2;
            made.meta_prompt_reused += first_round.3;
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
        self.archive.insert_node(&NewNode {
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
        self.archive.append(
            run,
            &EvolutionEvent::Child(ChildMade {
                node: child.to_string(),
                parent: parent.to_string(),
                status: status.as_str().to_string(),
                errors: made.errors.clone(),
                meta_tokens: made.meta_tokens,
                meta_cost: Some(made.meta_cost),
                meta_prompt_tokens: made.meta_prompt_tokens,
                meta_prompt_reused: made.meta_prompt_reused,
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
    pub(super) fn record_once(&self, event: &EvolutionEvent) -> Result<(), EvolveError> {
        let run = &self.settings.run_id;
        let (kind, payload) = (event.kind(), event.payload());
        let recorded = self
            .archive
            .events(run, 0)?
            .iter()
            .any(|e| e.kind == kind && e.payload == payload);
        if !recorded {
            self.archive.append(run, event)?;
        }
        Ok(())
    }
}

/// Generations an earlier invocation of the run already began or finished.
#[derive(Debug, Default)]
pub(super) struct RecordedGenerations {
    pub(super) begun: BTreeSet<u64>,
    pub(super) finished: BTreeSet<u64>,
    /// The parents each begun generation drew: a replay uses them, since
    /// people's judgements (and so fitness) may have changed since.
    pub(super) parents: BTreeMap<u64, Vec<String>>,
}

/// One attempt's view of its generation's other attempts.
pub(super) struct Siblings<'a> {
    pub(super) index: usize,
    /// Lower-numbered siblings drawn from the same parent.
    pub(super) same_parent_before: usize,
    /// Sent once the attempt's node is final: its hash if valid.
    pub(super) announce: tokio::sync::watch::Sender<Option<Option<String>>>,
    /// What the lower-numbered siblings made.
    pub(super) earlier: &'a [tokio::sync::watch::Receiver<Option<Option<String>>>],
}
