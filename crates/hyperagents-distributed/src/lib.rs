//! Evaluation across machines on NATS JetStream (DESIGN.md): the layout of
//! streams and buckets coordinator and workers share ([`jetstream`]) and
//! programs as content-addressed bundles ([`bundle`]), verified by hash
//! before a worker runs them.
//!
//! [`episodes`] runs an evaluation's episodes on workers: the coordinator's
//! [`episodes::NatsRunner`] plugs into `hyperagents_eval::evaluate_with`,
//! workers run [`episodes::serve_episode_jobs`]. Knows nothing of the
//! evolution loop. Meta-step jobs and the CLI's `worker` are still to come
//! (issue 16).

pub mod bundle;
pub mod episodes;
pub mod jetstream;

pub use bundle::{BundleError, ProgramBundle, pack, unpack};
pub use jetstream::{Jets, NatsError, NatsSettings};
