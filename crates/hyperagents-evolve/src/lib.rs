//! The evolution engine: the DGM-H loop that grows an open-ended archive of programs.
//!
//! Each generation chooses parents from the archive, lets each parent's own meta agent edit a
//! copy of it, validates the child, evaluates it in stages and inserts it into the archive.
//! The engine works on plain data and traits; it knows nothing about SQLite, NATS, HTTP or the
//! script runtime, which the binary plugs in.
//!
//! Modules:
//! - [`select`] — parent selection policies (DGM-H's sigmoid, novelty, Pareto front, ...) and
//!   the [`select::ParentSelector`] hook for a program's own `meta/select.py`.
//!
//! - [`engine`] — the generation loop: parents from the archive (or the best node's own
//!   selection script), the parent's own meta agent on a copy with archive context and
//!   `quick_eval`, validation (including the mode's limits and a smoke episode), one repair
//!   round, staged evaluation, insertion, token budgets, and resume from the store.
//! - [`quick`] — `quick_eval(tasks)` for meta agents on train tasks, and how a program's own
//!   defect is told from a failed task.

pub mod engine;
pub mod origin;
pub mod quick;
pub mod select;

pub use engine::{Evolution, EvolveError, EvolveSettings, GenerationStats, TokensSpent};
pub use select::{
    Candidate, ChildPenalty, FallbackSelector, NodeId, ParentSelector, SelectError,
    SelectionPolicy, select_parents, weights,
};
