//! The results store: every evaluation hyperagents computes, in one SQLite
//! file (WAL), keyed so that a repeated evaluation is found instead of
//! recomputed.
//!
//! - [`EvalKey`] names an evaluation by everything that decides it (program
//!   files, suite and version, task, seed, models, sampling, host API); its
//!   [`EvalKeyHash`] is the primary key of the `evaluations` table.
//! - [`ResultsStore`] opens and migrates the file, stores results
//!   ([`ResultsStore::record_in_run`], each in its own transaction, a
//!   repeat harmless), answers cache lookups ([`ResultsStore::lookup`]) and
//!   groups evaluations into runs (`eval_runs`, `eval_run_members`).
//! - [`evolution`] is the evolution archive: runs with their resumable
//!   state, nodes (programs with parent, diff and validation), the
//!   evaluation runs that scored each node per stage, and an event log;
//!   [`Archive`] is what the evolution engine uses of it, as a trait.
//! - [`report`] aggregates a run per task and overall, with Wilson score
//!   intervals, and exports it as JSONL.
//! - [`feedback`] keeps human judgements of episodes (ratings, preferences)
//!   in a file of their own beside the store.
//! - [`ledger`] keeps what a run's models spent per role and how long the
//!   run has been going, so run-level budgets hold across resumes.
//!
//! The crate is plain data over SQLite: it knows nothing of models, the
//! runtime or domains, which convert their own results into [`EvalResult`].

pub mod archive;
mod error;
pub mod events;
pub mod evolution;
pub mod feedback;
mod key;
pub mod ledger;
pub mod report;
mod store;

pub use archive::Archive;
pub use error::StoreError;
pub use events::{EventError, EvolutionEvent, LaunchRecord};
pub use evolution::{
    DiffKind, EventRecord, EvolutionRun, NewEvolutionRun, NewNode, NodeRecord, NodeStatus, RunMode,
    RunStatus,
};
pub use feedback::{
    EpisodePreference, EpisodeRating, Feedback, FeedbackRecord, FeedbackSource, FeedbackStore,
};
pub use key::{EvalKey, EvalKeyHash, canonical_json, canonical_sha256};
pub use ledger::{RoleSpend, StoredLedger};
pub use report::{Interval, RunSummary, TaskStats, wilson_95, wilson_interval};
pub use store::{
    APPLICATION_ID, EvalRecord, EvalResult, EvalRun, EvalRunId, EvalStatus, NewEvalRun, Recorded,
    ResultsStore, SCHEMA_VERSION,
};
