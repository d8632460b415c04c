//! The evolution archive in the results store: runs of the evolution
//! engine, the nodes (programs) each run produced, the evaluation runs that
//! scored each node per stage, and an append-only event log.
//!
//! Every write is its own `IMMEDIATE` transaction and every repeat of a
//! write is harmless, so an engine that crashed and resumed can replay its
//! last steps; a repeat that disagrees with what is stored is a
//! [`StoreError::Conflict`], never a silent overwrite. A node's scores are
//! not copied here: [`ResultsStore::link_node_evaluation`] points a node's
//! stage at an existing evaluation run, and the summaries come from the
//! same aggregates as any run's report.

use rusqlite::{OptionalExtension, Row, Transaction, params};

use crate::store::{count_from_sql, count_to_sql, now_ms, seed_from_sql, seed_to_sql};
use crate::{EvalRunId, Recorded, ResultsStore, RunSummary, StoreError, TaskStats};

/// Which parts of the agent a run lets the meta agent change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunMode {
    /// The meta agent may edit everything, itself included (`hyper`).
    Hyper,
    /// The task agent evolves; the meta agent stays fixed (`fixed-meta`).
    FixedMeta,
    /// Only prompts change (`prompt-only`).
    PromptOnly,
    /// Nothing is modified: a baseline (`none`).
    None,
}

impl RunMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RunMode::Hyper => "hyper",
            RunMode::FixedMeta => "fixed-meta",
            RunMode::PromptOnly => "prompt-only",
            RunMode::None => "none",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "hyper" => Some(RunMode::Hyper),
            "fixed-meta" => Some(RunMode::FixedMeta),
            "prompt-only" => Some(RunMode::PromptOnly),
            "none" => Some(RunMode::None),
            _ => None,
        }
    }
}

/// Where an evolution run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunStatus {
    /// Started and not yet stopped (or crashed: the engine may resume it).
    Running,
    /// Stopped before its budget was spent; resumable.
    Stopped,
    /// Done.
    Finished,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Stopped => "stopped",
            RunStatus::Finished => "finished",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "running" => Some(RunStatus::Running),
            "stopped" => Some(RunStatus::Stopped),
            "finished" => Some(RunStatus::Finished),
            _ => None,
        }
    }
}

/// An evolution run to be created.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvolutionRun {
    /// Chosen by the caller (a run name or a UUID).
    pub id: String,
    /// The settings the run was made with; a resume must bring the same.
    pub config: serde_json::Value,
    pub mode: RunMode,
    pub seed: u64,
}

/// A stored evolution run.
#[derive(Debug, Clone, PartialEq)]
pub struct EvolutionRun {
    pub id: String,
    pub created_at_ms: i64,
    pub config: serde_json::Value,
    pub mode: RunMode,
    pub seed: u64,
    pub status: RunStatus,
    /// What the engine needs to resume (RNG state, budget spent,
    /// generation); opaque to the store, `null` until first set.
    pub state: serde_json::Value,
}

/// What kind of change a node's diff makes to its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DiffKind {
    Prompt,
    Code,
    Hierarchy,
    Meta,
    Memory,
    Other,
}

impl DiffKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DiffKind::Prompt => "prompt",
            DiffKind::Code => "code",
            DiffKind::Hierarchy => "hierarchy",
            DiffKind::Meta => "meta",
            DiffKind::Memory => "memory",
            DiffKind::Other => "other",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "prompt" => Some(DiffKind::Prompt),
            "code" => Some(DiffKind::Code),
            "hierarchy" => Some(DiffKind::Hierarchy),
            "meta" => Some(DiffKind::Meta),
            "memory" => Some(DiffKind::Memory),
            "other" => Some(DiffKind::Other),
            _ => None,
        }
    }
}

/// Whether a node's program passed validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeStatus {
    /// Passed validation; may be evaluated and chosen as a parent.
    Valid,
    /// Failed validation (see its validation errors).
    Invalid,
    /// The step that should have produced it failed.
    Failed,
}

impl NodeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Valid => "valid",
            NodeStatus::Invalid => "invalid",
            NodeStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "valid" => Some(NodeStatus::Valid),
            "invalid" => Some(NodeStatus::Invalid),
            "failed" => Some(NodeStatus::Failed),
            _ => None,
        }
    }
}

/// A node to be stored in an evolution run.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNode {
    pub run_id: String,
    pub node_id: String,
    /// Content hash of the node's program directory.
    pub program_hash: String,
    /// `None` for the seed program; otherwise a node already stored.
    pub parent_id: Option<String>,
    pub generation: u64,
    pub label: String,
    /// Unified diff from the parent (empty for the seed).
    pub diff: String,
    pub diff_kinds: Vec<DiffKind>,
    pub status: NodeStatus,
    /// What validation reported; `[]` or `null` when there is nothing.
    pub validation_errors: serde_json::Value,
    /// Tokens the meta agent spent producing the node.
    pub meta_tokens: u64,
}

/// A stored node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRecord {
    pub run_id: String,
    pub node_id: String,
    pub program_hash: String,
    pub parent_id: Option<String>,
    pub generation: u64,
    pub label: String,
    pub diff: String,
    pub diff_kinds: Vec<DiffKind>,
    pub status: NodeStatus,
    pub validation_errors: serde_json::Value,
    pub meta_tokens: u64,
    pub created_at_ms: i64,
}

/// One entry of a run's event log.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    /// Increases with every event in the store (across runs), so a reader
    /// asks for what came after the last `seq` it saw.
    pub seq: i64,
    pub run_id: String,
    pub at_ms: i64,
    pub kind: String,
    pub payload: serde_json::Value,
}

impl ResultsStore {
    /// Creates the evolution run `run` (status `running`, state `null`).
    /// Creating it again with the same config, mode and seed is harmless
    /// (a resume); with anything different it is a [`StoreError::Conflict`].
    pub fn create_evolution_run(&self, run: &NewEvolutionRun) -> Result<(), StoreError> {
        let config_json = crate::canonical_json(&run.config);
        let mut conn = self.conn();
        let tx = self.begin(&mut conn)?;
        let stored = tx
            .query_row(
                "SELECT config_json, mode, seed FROM runs WHERE id = ?1",
                params![run.id],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                },
            )
            .optional()
            .map_err(|source| self.sqlite_error("finding an evolution run", source))?;
        if let Some((stored_config, stored_mode, stored_seed)) = stored {
            let mut differences = Vec::new();
            if stored_config != config_json {
                differences.push(format!("config {stored_config} ≠ {config_json}"));
            }
            if stored_mode != run.mode.as_str() {
                differences.push(format!("mode {stored_mode} ≠ {}", run.mode.as_str()));
            }
            if stored_seed != seed_to_sql(run.seed) {
                differences.push(format!(
                    "seed {} ≠ {}",
                    seed_from_sql(stored_seed),
                    run.seed
                ));
            }
            if differences.is_empty() {
                return Ok(());
            }
            return Err(self.conflict(format!("evolution run {:?}", run.id), differences));
        }
        tx.execute(
            "INSERT INTO runs (id, created_at_ms, config_json, mode, seed, status, state_json) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'null')",
            params![
                run.id,
                now_ms(),
                config_json,
                run.mode.as_str(),
                seed_to_sql(run.seed),
                RunStatus::Running.as_str(),
            ],
        )
        .map_err(|source| self.sqlite_error("creating an evolution run", source))?;
        tx.commit()
            .map_err(|source| self.sqlite_error("committing an evolution run", source))
    }

    /// Every evolution run's id, newest first.
    pub fn evolution_run_ids(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.conn();
        let mut statement = conn
            .prepare_cached("SELECT id FROM runs ORDER BY created_at_ms DESC, id")
            .map_err(|source| self.sqlite_error("listing evolution runs", source))?;
        let ids = statement
            .query_map([], |row| row.get::<_, String>(0))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|source| self.sqlite_error("listing evolution runs", source))?;
        Ok(ids)
    }

    /// The evolution run `id`, if it exists.
    pub fn evolution_run(&self, id: &str) -> Result<Option<EvolutionRun>, StoreError> {
        let row = self
            .conn()
            .query_row(
                "SELECT id, created_at_ms, config_json, mode, seed, status, state_json \
                 FROM runs WHERE id = ?1",
                params![id],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, i64>(4)?,
                        row.get::<_, String>(5)?,
                        row.get::<_, String>(6)?,
                    ))
                },
            )
            .optional()
            .map_err(|source| self.sqlite_error("reading an evolution run", source))?;
        let Some((id, created_at_ms, config_json, mode, seed, status, state_json)) = row else {
            return Ok(None);
        };
        let corrupt = |reason: String| self.corrupt(format!("evolution run {id:?}"), reason);
        Ok(Some(EvolutionRun {
            config: serde_json::from_str(&config_json)
                .map_err(|e| corrupt(format!("config is not JSON: {e}")))?,
            mode: RunMode::parse(&mode).ok_or_else(|| corrupt(format!("unknown mode {mode:?}")))?,
            status: RunStatus::parse(&status)
                .ok_or_else(|| corrupt(format!("unknown status {status:?}")))?,
            state: serde_json::from_str(&state_json)
                .map_err(|e| corrupt(format!("state is not JSON: {e}")))?,
            seed: seed_from_sql(seed),
            created_at_ms,
            id,
        }))
    }

    /// Records where run `id` stands: its status and the state the engine
    /// restores on resume (replacing the previous state).
    pub fn set_run_state(
        &self,
        id: &str,
        status: RunStatus,
        state: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = self.begin(&mut conn)?;
        let changed = tx
            .execute(
                "UPDATE runs SET status = ?2, state_json = ?3 WHERE id = ?1",
                params![id, status.as_str(), crate::canonical_json(state)],
            )
            .map_err(|source| self.sqlite_error("updating an evolution run", source))?;
        if changed == 0 {
            return Err(self.unknown_evolution_run(id));
        }
        tx.commit()
            .map_err(|source| self.sqlite_error("committing an evolution run", source))
    }

    /// Stores a node. Its run and its parent must be stored already.
    /// Storing the same node again is harmless ([`Recorded::AlreadyPresent`]);
    /// a different node under the same id is a [`StoreError::Conflict`].
    pub fn insert_node(&self, node: &NewNode) -> Result<Recorded, StoreError> {
        let fields = NodeFields::of(node);
        let mut conn = self.conn();
        let tx = self.begin(&mut conn)?;
        self.check_evolution_run(&tx, &node.run_id)?;
        let stored = tx
            .query_row(
                &format!("SELECT {NODE_FIELDS} FROM nodes WHERE run_id = ?1 AND node_id = ?2"),
                params![node.run_id, node.node_id],
                NodeFields::read,
            )
            .optional()
            .map_err(|source| self.sqlite_error("finding a node", source))?;
        if let Some(stored) = stored {
            let differences = stored.differences(&fields);
            if differences.is_empty() {
                return Ok(Recorded::AlreadyPresent);
            }
            return Err(self.conflict(
                format!("node {:?} of evolution run {:?}", node.node_id, node.run_id),
                differences,
            ));
        }
        if let Some(parent) = &node.parent_id {
            self.check_node(&tx, &node.run_id, parent)?;
        }
        tx.execute(
            &format!(
                "INSERT INTO nodes (run_id, node_id, created_at_ms, {NODE_FIELDS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
            ),
            params![
                node.run_id,
                node.node_id,
                now_ms(),
                fields.program_hash,
                fields.parent_id,
                fields.generation,
                fields.label,
                fields.diff,
                fields.diff_kinds,
                fields.status,
                fields.validation_errors,
                fields.meta_tokens,
            ],
        )
        .map_err(|source| self.sqlite_error("storing a node", source))?;
        tx.commit()
            .map_err(|source| self.sqlite_error("committing a node", source))?;
        Ok(Recorded::Inserted)
    }

    /// The node `node` of evolution run `run`, if it exists.
    pub fn node(&self, run: &str, node: &str) -> Result<Option<NodeRecord>, StoreError> {
        let row = self
            .conn()
            .query_row(
                &format!(
                    "SELECT run_id, node_id, created_at_ms, {NODE_FIELDS} FROM nodes \
                     WHERE run_id = ?1 AND node_id = ?2"
                ),
                params![run, node],
                read_node_row,
            )
            .optional()
            .map_err(|source| self.sqlite_error("reading a node", source))?;
        row.map(|row| self.node_record(row)).transpose()
    }

    /// The nodes of evolution run `run`, by generation, then in the order
    /// they were stored.
    pub fn nodes(&self, run: &str) -> Result<Vec<NodeRecord>, StoreError> {
        let conn = self.conn();
        let mut statement = conn
            .prepare_cached(&format!(
                "SELECT run_id, node_id, created_at_ms, {NODE_FIELDS} FROM nodes \
                 WHERE run_id = ?1 ORDER BY generation, created_at_ms, rowid"
            ))
            .map_err(|source| self.sqlite_error("listing nodes", source))?;
        let rows = statement
            .query_map(params![run], read_node_row)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|source| self.sqlite_error("listing nodes", source))?;
        drop(statement);
        drop(conn);
        rows.into_iter().map(|row| self.node_record(row)).collect()
    }

    /// How many stored nodes of `run` have `node` as their parent.
    pub fn children_count(&self, run: &str, node: &str) -> Result<u64, StoreError> {
        let count: i64 = self
            .conn()
            .query_row(
                "SELECT COUNT(*) FROM nodes WHERE run_id = ?1 AND parent_id = ?2",
                params![run, node],
                |row| row.get(0),
            )
            .map_err(|source| self.sqlite_error("counting children", source))?;
        Ok(count_from_sql(count))
    }

    /// Records that evaluation run `eval_run` scored `node` at `stage`
    /// (`stage1`, `full`, `test`). The evaluation run must be of the node's
    /// program. Linking the same run again is harmless; another evaluation
    /// run for the same node and stage is a [`StoreError::Conflict`].
    pub fn link_node_evaluation(
        &self,
        run: &str,
        node: &str,
        stage: &str,
        eval_run: EvalRunId,
    ) -> Result<Recorded, StoreError> {
        let mut conn = self.conn();
        let tx = self.begin(&mut conn)?;
        let node_program = self.check_node(&tx, run, node)?;
        self.check_run(&tx, eval_run)?;
        let eval_program: String = tx
            .query_row(
                "SELECT program_hash FROM eval_runs WHERE id = ?1",
                params![eval_run.0],
                |row| row.get(0),
            )
            .map_err(|source| self.sqlite_error("reading an evaluation run", source))?;
        if eval_program != node_program {
            return Err(StoreError::InvalidInput {
                path: self.path().to_path_buf(),
                what: "the node evaluation link",
                reason: format!(
                    "evaluation run {eval_run} is of program {eval_program}, \
                     node {node:?} is program {node_program}"
                ),
            });
        }
        let linked: Option<i64> = tx
            .query_row(
                "SELECT eval_run_id FROM node_evaluations \
                 WHERE run_id = ?1 AND node_id = ?2 AND stage = ?3",
                params![run, node, stage],
                |row| row.get(0),
            )
            .optional()
            .map_err(|source| self.sqlite_error("finding a node evaluation", source))?;
        match linked {
            Some(id) if id == eval_run.0 => return Ok(Recorded::AlreadyPresent),
            Some(id) => {
                return Err(self.conflict(
                    format!("stage {stage:?} of node {node:?} of evolution run {run:?}"),
                    vec![format!("evaluation run {id} ≠ {eval_run}")],
                ));
            }
            None => {}
        }
        tx.execute(
            "INSERT INTO node_evaluations (run_id, node_id, stage, eval_run_id) \
             VALUES (?1, ?2, ?3, ?4)",
            params![run, node, stage, eval_run.0],
        )
        .map_err(|source| self.sqlite_error("linking a node evaluation", source))?;
        tx.commit()
            .map_err(|source| self.sqlite_error("committing a node evaluation", source))?;
        Ok(Recorded::Inserted)
    }

    /// The evaluation run linked to `node`'s `stage`, if any.
    pub fn node_eval_run(
        &self,
        run: &str,
        node: &str,
        stage: &str,
    ) -> Result<Option<EvalRunId>, StoreError> {
        self.conn()
            .query_row(
                "SELECT eval_run_id FROM node_evaluations \
                 WHERE run_id = ?1 AND node_id = ?2 AND stage = ?3",
                params![run, node, stage],
                |row| row.get::<_, i64>(0).map(EvalRunId),
            )
            .optional()
            .map_err(|source| self.sqlite_error("finding a node evaluation", source))
    }

    /// The summary of the evaluation run linked to `node`'s `stage`;
    /// `None` when the stage has not been linked.
    pub fn node_stage_summary(
        &self,
        run: &str,
        node: &str,
        stage: &str,
    ) -> Result<Option<RunSummary>, StoreError> {
        self.node_eval_run(run, node, stage)?
            .map(|eval_run| self.run_summary(eval_run))
            .transpose()
    }

    /// Per-task results of the evaluation run linked to `node`'s `stage`;
    /// empty when the stage has not been linked.
    pub fn node_task_stats(
        &self,
        run: &str,
        node: &str,
        stage: &str,
    ) -> Result<Vec<TaskStats>, StoreError> {
        match self.node_eval_run(run, node, stage)? {
            Some(eval_run) => self.task_stats(eval_run),
            None => Ok(Vec::new()),
        }
    }

    /// Appends `event` to `run`'s log; returns its sequence number.
    pub fn append(&self, run: &str, event: &crate::EvolutionEvent) -> Result<i64, StoreError> {
        self.append_event(run, event.kind(), &event.payload())
    }

    /// Appends an event of any kind to `run`'s log; returns its sequence
    /// number. Writers use [`ResultsStore::append`]; this stays for stores'
    /// own tests and for kinds a newer build may add.
    pub fn append_event(
        &self,
        run: &str,
        kind: &str,
        payload: &serde_json::Value,
    ) -> Result<i64, StoreError> {
        let mut conn = self.conn();
        let tx = self.begin(&mut conn)?;
        self.check_evolution_run(&tx, run)?;
        tx.execute(
            "INSERT INTO events (run_id, at_ms, kind, payload_json) VALUES (?1, ?2, ?3, ?4)",
            params![run, now_ms(), kind, crate::canonical_json(payload)],
        )
        .map_err(|source| self.sqlite_error("appending an event", source))?;
        let seq = tx.last_insert_rowid();
        tx.commit()
            .map_err(|source| self.sqlite_error("committing an event", source))?;
        Ok(seq)
    }

    /// `run`'s events with a sequence number above `after_seq` (0 for
    /// all), oldest first.
    pub fn events(&self, run: &str, after_seq: i64) -> Result<Vec<EventRecord>, StoreError> {
        let conn = self.conn();
        let mut statement = conn
            .prepare_cached(
                "SELECT seq, run_id, at_ms, kind, payload_json FROM events \
                 WHERE run_id = ?1 AND seq > ?2 ORDER BY seq",
            )
            .map_err(|source| self.sqlite_error("listing events", source))?;
        let rows = statement
            .query_map(params![run, after_seq], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, String>(4)?,
                ))
            })
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|source| self.sqlite_error("listing events", source))?;
        drop(statement);
        drop(conn);
        rows.into_iter()
            .map(|(seq, run_id, at_ms, kind, payload_json)| {
                let payload = serde_json::from_str(&payload_json).map_err(|e| {
                    self.corrupt(format!("event {seq}"), format!("payload is not JSON: {e}"))
                })?;
                Ok(EventRecord {
                    seq,
                    run_id,
                    at_ms,
                    kind,
                    payload,
                })
            })
            .collect()
    }

    /// The latest event of `kind` in `run`'s log, if any (e.g. the last
    /// `launch`, which says how to resume the run).
    pub fn last_event(&self, run: &str, kind: &str) -> Result<Option<EventRecord>, StoreError> {
        let found = self
            .conn()
            .query_row(
                "SELECT seq, at_ms, payload_json FROM events \
                 WHERE run_id = ?1 AND kind = ?2 ORDER BY seq DESC LIMIT 1",
                params![run, kind],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, String>(2)?,
                    ))
                },
            )
            .optional()
            .map_err(|source| self.sqlite_error("finding an event", source))?;
        found
            .map(|(seq, at_ms, payload_json)| {
                let payload = serde_json::from_str(&payload_json).map_err(|e| {
                    self.corrupt(format!("event {seq}"), format!("payload is not JSON: {e}"))
                })?;
                Ok(EventRecord {
                    seq,
                    run_id: run.to_owned(),
                    at_ms,
                    kind: kind.to_owned(),
                    payload,
                })
            })
            .transpose()
    }

    fn check_evolution_run(&self, tx: &Transaction<'_>, run: &str) -> Result<(), StoreError> {
        let exists = tx
            .query_row("SELECT 1 FROM runs WHERE id = ?1", params![run], |_| Ok(()))
            .optional()
            .map_err(|source| self.sqlite_error("finding an evolution run", source))?
            .is_some();
        if exists {
            Ok(())
        } else {
            Err(self.unknown_evolution_run(run))
        }
    }

    /// Fails unless `node` of `run` is stored; returns its program hash.
    fn check_node(
        &self,
        tx: &Transaction<'_>,
        run: &str,
        node: &str,
    ) -> Result<String, StoreError> {
        tx.query_row(
            "SELECT program_hash FROM nodes WHERE run_id = ?1 AND node_id = ?2",
            params![run, node],
            |row| row.get(0),
        )
        .optional()
        .map_err(|source| self.sqlite_error("finding a node", source))?
        .ok_or_else(|| StoreError::UnknownNode {
            path: self.path().to_path_buf(),
            run: run.to_owned(),
            node: node.to_owned(),
        })
    }

    fn node_record(
        &self,
        (run_id, node_id, created_at_ms, fields): NodeRow,
    ) -> Result<NodeRecord, StoreError> {
        let corrupt = |reason: String| {
            self.corrupt(
                format!("node {node_id:?} of evolution run {run_id:?}"),
                reason,
            )
        };
        let kinds: Vec<String> = serde_json::from_str(&fields.diff_kinds)
            .map_err(|e| corrupt(format!("diff kinds are not a JSON array of strings: {e}")))?;
        let diff_kinds = kinds
            .iter()
            .map(|kind| {
                DiffKind::parse(kind).ok_or_else(|| corrupt(format!("unknown diff kind {kind:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let status = NodeStatus::parse(&fields.status)
            .ok_or_else(|| corrupt(format!("unknown status {:?}", fields.status)))?;
        let validation_errors = serde_json::from_str(&fields.validation_errors)
            .map_err(|e| corrupt(format!("validation errors are not JSON: {e}")))?;
        Ok(NodeRecord {
            program_hash: fields.program_hash,
            parent_id: fields.parent_id,
            generation: count_from_sql(fields.generation),
            label: fields.label,
            diff: fields.diff,
            diff_kinds,
            status,
            validation_errors,
            meta_tokens: count_from_sql(fields.meta_tokens),
            created_at_ms,
            run_id,
            node_id,
        })
    }

    fn unknown_evolution_run(&self, run: &str) -> StoreError {
        StoreError::UnknownEvolutionRun {
            path: self.path().to_path_buf(),
            run: run.to_owned(),
        }
    }

    fn conflict(&self, what: String, differences: Vec<String>) -> StoreError {
        StoreError::Conflict {
            path: self.path().to_path_buf(),
            what,
            reason: differences.join("; "),
        }
    }

    fn corrupt(&self, what: String, reason: String) -> StoreError {
        StoreError::CorruptArchive {
            path: self.path().to_path_buf(),
            what,
            reason,
        }
    }
}

/// The columns of `nodes` that [`NodeFields::read`] reads, in order: the
/// node as the caller gave it, which a repeated insert must match.
const NODE_FIELDS: &str = "program_hash, parent_id, generation, label, diff, diff_kinds, \
     status, validation_errors_json, meta_tokens";

/// A node's columns as stored (JSON as canonical text), so a repeated
/// insert is compared with what is stored column by column.
#[derive(Debug, PartialEq)]
struct NodeFields {
    program_hash: String,
    parent_id: Option<String>,
    generation: i64,
    label: String,
    diff: String,
    diff_kinds: String,
    status: String,
    validation_errors: String,
    meta_tokens: i64,
}

type NodeRow = (String, String, i64, NodeFields);

fn read_node_row(row: &Row<'_>) -> rusqlite::Result<NodeRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        NodeFields::read_at(row, 3)?,
    ))
}

impl NodeFields {
    fn of(node: &NewNode) -> Self {
        let kinds: Vec<&str> = node.diff_kinds.iter().map(|kind| kind.as_str()).collect();
        Self {
            program_hash: node.program_hash.clone(),
            parent_id: node.parent_id.clone(),
            generation: count_to_sql(node.generation),
            label: node.label.clone(),
            diff: node.diff.clone(),
            diff_kinds: crate::canonical_json(&serde_json::json!(kinds)),
            status: node.status.as_str().to_owned(),
            validation_errors: crate::canonical_json(&node.validation_errors),
            meta_tokens: count_to_sql(node.meta_tokens),
        }
    }

    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Self::read_at(row, 0)
    }

    fn read_at(row: &Row<'_>, first: usize) -> rusqlite::Result<Self> {
        Ok(Self {
            program_hash: row.get(first)?,
            parent_id: row.get(first + 1)?,
            generation: row.get(first + 2)?,
            label: row.get(first + 3)?,
            diff: row.get(first + 4)?,
            diff_kinds: row.get(first + 5)?,
            status: row.get(first + 6)?,
            validation_errors: row.get(first + 7)?,
            meta_tokens: row.get(first + 8)?,
        })
    }

    /// The fields where `self` (stored) and `new` differ, described.
    fn differences(&self, new: &Self) -> Vec<String> {
        let pairs = [
            (
                "program hash",
                self.program_hash.clone(),
                new.program_hash.clone(),
            ),
            (
                "parent",
                format!("{:?}", self.parent_id),
                format!("{:?}", new.parent_id),
            ),
            (
                "generation",
                self.generation.to_string(),
                new.generation.to_string(),
            ),
            (
                "label",
                format!("{:?}", self.label),
                format!("{:?}", new.label),
            ),
            (
                "diff kinds",
                self.diff_kinds.clone(),
                new.diff_kinds.clone(),
            ),
            ("status", self.status.clone(), new.status.clone()),
            (
                "validation errors",
                self.validation_errors.clone(),
                new.validation_errors.clone(),
            ),
            (
                "meta tokens",
                self.meta_tokens.to_string(),
                new.meta_tokens.to_string(),
            ),
        ];
        let mut differences: Vec<String> = pairs
            .into_iter()
            .filter(|(_, stored, new)| stored != new)
            .map(|(name, stored, new)| format!("{name} {stored} ≠ {new}"))
            .collect();
        if self.diff != new.diff {
            // Diffs are long: say that they differ, not how.
            differences.push("diff differs".to_owned());
        }
        differences
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_through_their_text() {
        for mode in [
            RunMode::Hyper,
            RunMode::FixedMeta,
            RunMode::PromptOnly,
            RunMode::None,
        ] {
            assert_eq!(RunMode::parse(mode.as_str()), Some(mode));
        }
        for status in [RunStatus::Running, RunStatus::Stopped, RunStatus::Finished] {
            assert_eq!(RunStatus::parse(status.as_str()), Some(status));
        }
        for status in [NodeStatus::Valid, NodeStatus::Invalid, NodeStatus::Failed] {
            assert_eq!(NodeStatus::parse(status.as_str()), Some(status));
        }
        for kind in [
            DiffKind::Prompt,
            DiffKind::Code,
            DiffKind::Hierarchy,
            DiffKind::Meta,
            DiffKind::Memory,
            DiffKind::Other,
        ] {
            assert_eq!(DiffKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(RunMode::parse("fixed_meta"), None);
        assert_eq!(DiffKind::parse("Prompt"), None);
    }
}
