//! Runs agent programs: an episode puts a program on one task of a
//! [`hyperagents_domain::Domain`]; the hyperagent's script runs in the
//! sandbox and delegates to task agents, which call skills; every host call
//! becomes a span of the episode's trajectory ([`trace`]), and the budget
//! ([`budget`]) is checked at each of them. [`improve`] runs a program's own
//! meta agent against a copy of it.

pub mod budget;
mod checker;
mod episode;
mod host;
pub mod improve;
pub mod recall;
pub mod steps;
pub mod trace;

pub use checker::SandboxChecker;
pub use episode::{
    EpisodeError, EpisodeOutcome, Interruption, RunContext, killed_from_outside, run_episode,
    trajectory_file_name,
};
