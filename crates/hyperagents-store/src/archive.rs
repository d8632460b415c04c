//! [`Archive`]: what the evolution engine reads and writes of a run — its
//! record, event log, nodes, and the evaluation runs that scored each node
//! per stage — as a trait, so the engine depends on this contract and not on
//! SQLite. [`ResultsStore`] is the implementation; a test or another backend
//! can supply its own.

use crate::{
    EvalRecord, EvalRunId, EventRecord, EvolutionEvent, NewEvalRun, NewEvolutionRun, NewNode,
    NodeRecord, Recorded, ResultsStore, RunStatus, RunSummary, StoreError, TaskStats,
};

/// The durable state of evolution runs. Every write is durable when it
/// returns, and a repeated write of the same record is harmless (resume
/// replays finished work); see [`ResultsStore`]'s methods of the same names
/// for each one's exact contract.
pub trait Archive: Send + Sync {
    /// Creates the run, or checks that an existing one has the same config,
    /// mode and seed.
    fn create_evolution_run(&self, run: &NewEvolutionRun) -> Result<(), StoreError>;
    fn set_run_state(
        &self,
        run: &str,
        status: RunStatus,
        state: &serde_json::Value,
    ) -> Result<(), StoreError>;
    /// Appends an event; returns its sequence number.
    fn append(&self, run: &str, event: &EvolutionEvent) -> Result<i64, StoreError>;
    /// Events after `after_seq`, in order.
    fn events(&self, run: &str, after_seq: i64) -> Result<Vec<EventRecord>, StoreError>;
    fn last_event(&self, run: &str, kind: &str) -> Result<Option<EventRecord>, StoreError>;
    fn insert_node(&self, node: &NewNode) -> Result<Recorded, StoreError>;
    fn node(&self, run: &str, node: &str) -> Result<Option<NodeRecord>, StoreError>;
    /// Every node of the run, by generation then insertion.
    fn nodes(&self, run: &str) -> Result<Vec<NodeRecord>, StoreError>;
    /// A new evaluation run, for one node's stage (or a quick evaluation).
    fn create_eval_run(&self, run: &NewEvalRun) -> Result<EvalRunId, StoreError>;
    fn link_node_evaluation(
        &self,
        run: &str,
        node: &str,
        stage: &str,
        eval_run: EvalRunId,
    ) -> Result<Recorded, StoreError>;
    fn node_eval_run(
        &self,
        run: &str,
        node: &str,
        stage: &str,
    ) -> Result<Option<EvalRunId>, StoreError>;
    fn node_stage_summary(
        &self,
        run: &str,
        node: &str,
        stage: &str,
    ) -> Result<Option<RunSummary>, StoreError>;
    fn node_task_stats(
        &self,
        run: &str,
        node: &str,
        stage: &str,
    ) -> Result<Vec<TaskStats>, StoreError>;
    /// [`Archive::node_task_stats`] of every linked (node, stage) of the
    /// run at once (an empty list for a stage with no results yet).
    fn archive_task_stats(
        &self,
        run: &str,
    ) -> Result<std::collections::BTreeMap<(String, String), Vec<TaskStats>>, StoreError>;
    /// The results an evaluation run holds (its trajectories' paths included).
    fn run_evaluations(&self, eval_run: EvalRunId) -> Result<Vec<EvalRecord>, StoreError>;
}

impl Archive for ResultsStore {
    fn create_evolution_run(&self, run: &NewEvolutionRun) -> Result<(), StoreError> {
        ResultsStore::create_evolution_run(self, run)
    }
    fn set_run_state(
        &self,
        run: &str,
        status: RunStatus,
        state: &serde_json::Value,
    ) -> Result<(), StoreError> {
        ResultsStore::set_run_state(self, run, status, state)
    }
    fn append(&self, run: &str, event: &EvolutionEvent) -> Result<i64, StoreError> {
        ResultsStore::append(self, run, event)
    }
    fn events(&self, run: &str, after_seq: i64) -> Result<Vec<EventRecord>, StoreError> {
        ResultsStore::events(self, run, after_seq)
    }
    fn last_event(&self, run: &str, kind: &str) -> Result<Option<EventRecord>, StoreError> {
        ResultsStore::last_event(self, run, kind)
    }
    fn insert_node(&self, node: &NewNode) -> Result<Recorded, StoreError> {
        ResultsStore::insert_node(self, node)
    }
    fn node(&self, run: &str, node: &str) -> Result<Option<NodeRecord>, StoreError> {
        ResultsStore::node(self, run, node)
    }
    fn nodes(&self, run: &str) -> Result<Vec<NodeRecord>, StoreError> {
        ResultsStore::nodes(self, run)
    }
    fn create_eval_run(&self, run: &NewEvalRun) -> Result<EvalRunId, StoreError> {
        ResultsStore::create_run(self, run)
    }
    fn link_node_evaluation(
        &self,
        run: &str,
        node: &str,
        stage: &str,
        eval_run: EvalRunId,
    ) -> Result<Recorded, StoreError> {
        ResultsStore::link_node_evaluation(self, run, node, stage, eval_run)
    }
    fn node_eval_run(
        &self,
        run: &str,
        node: &str,
        stage: &str,
    ) -> Result<Option<EvalRunId>, StoreError> {
        ResultsStore::node_eval_run(self, run, node, stage)
    }
    fn node_stage_summary(
        &self,
        run: &str,
        node: &str,
        stage: &str,
    ) -> Result<Option<RunSummary>, StoreError> {
        ResultsStore::node_stage_summary(self, run, node, stage)
    }
    fn node_task_stats(
        &self,
        run: &str,
        node: &str,
        stage: &str,
    ) -> Result<Vec<TaskStats>, StoreError> {
        ResultsStore::node_task_stats(self, run, node, stage)
    }
    fn archive_task_stats(
        &self,
        run: &str,
    ) -> Result<std::collections::BTreeMap<(String, String), Vec<TaskStats>>, StoreError> {
        ResultsStore::archive_task_stats(self, run)
    }
    fn run_evaluations(&self, eval_run: EvalRunId) -> Result<Vec<EvalRecord>, StoreError> {
        ResultsStore::run_evaluations(self, eval_run)
    }
}
