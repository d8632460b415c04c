//! Evaluation across machines on NATS JetStream (DESIGN.md): the layout of
//! streams and buckets coordinator and workers share ([`jetstream`]) and
//! programs as content-addressed bundles ([`bundle`]), verified by hash
//! before a worker runs them.
//!
//! Two job kinds share the work queue's mechanics ([`queue`]):
//! - [`episodes`]: an evaluation's episodes on workers; the coordinator's
//!   [`episodes::NatsRunner`] plugs into `hyperagents_eval::evaluate_with`,
//!   workers run [`episodes::serve_episode_jobs`].
//! - [`meta`]: meta steps on workers, which may hold another meta model;
//!   the coordinator's [`meta::NatsMetaSteps`] is a
//!   `hyperagents_runtime::improve::MetaStepper`, workers run
//!   [`meta::serve_meta_jobs`].
//!
//! Knows nothing of the evolution loop: the engine sees an evaluator and a
//! meta stepper.

pub mod bundle;
pub mod episodes;
pub mod jetstream;
pub mod meta;
pub mod queue;

pub use bundle::{BundleError, ProgramBundle, pack, unpack};
pub use jetstream::{Jets, NatsError, NatsSettings};
