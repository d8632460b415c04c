//! The evolution engine: the DGM-H loop that grows an open-ended archive of programs.
//!
//! Each generation chooses parents from the archive, lets each parent's own meta agent edit a
//! copy of it, validates the child, evaluates it in stages and inserts it into the archive.
//! The engine works on plain data and three traits the binary plugs in: it keeps runs, nodes,
//! events and results through [`hyperagents_store::Archive`] (SQLite is one implementation),
//! runs episodes through [`hyperagents_eval::Evaluator`] and meta steps through
//! [`hyperagents_runtime::improve::MetaStepper`] (each in this process, or on workers).
//! Selection scripts run in this process, in the runtime's sandbox workers.
//!
//! Modules:
//! - [`select`] — parent selection policies (DGM-H's sigmoid, novelty, Pareto front, ...) and
//!   the [`select::ParentSelector`] hook for a program's own `meta/select.py`.
//!
//! - [`engine`] — the generation loop, split by concern: the run and its safe points
//!   (`engine/mod.rs`), one generation's attempts and their nodes (`generation`), parents from
//!   the archive or the best node's own selection script (`parents`), making a child — the
//!   parent's own meta agent on a copy with `quick_eval`, the mode's limits, duplicates, one
//!   repair round (`child`) —, what a meta agent is told (`context`), and staged evaluation,
//!   smoke episodes, paired comparison and tokens spent (`stages`).
//! - [`fitness`] — the score parents are drawn by: the automated score, with successes people
//!   rated bad counted as failures and a Bradley–Terry score from their preferences blended in.
//! - [`quick`] — `quick_eval(tasks)` for meta agents on train tasks, and how a program's own
//!   defect is told from a failed task.

pub mod engine;
pub mod fitness;
pub mod origin;
pub mod quick;
pub mod select;

pub use engine::{
    Evolution, EvolveError, EvolveSettings, GenerationStats, LocalMetaSteps, TokensSpent,
};
pub use select::{
    Candidate, ChildPenalty, FallbackSelector, NodeId, ParentSelector, SelectError,
    SelectionPolicy, select_parents, weights,
};
