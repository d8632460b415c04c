//! Evaluation across machines on NATS JetStream (DESIGN.md): the layout of
//! streams and buckets coordinator and workers share ([`jetstream`]) and
//! programs as content-addressed bundles ([`bundle`]), verified by hash
//! before a worker runs them.
//!
//! Knows nothing of models, domains or the evolution loop. Workers taking
//! episode and meta-step jobs, and the coordinator's evaluator that hands
//! them out, are still to be built on this (issue 16).

pub mod bundle;
pub mod jetstream;

pub use bundle::{BundleError, ProgramBundle, pack, unpack};
pub use jetstream::{Jets, NatsError, NatsSettings};
