//! Runs agent programs.

pub mod trace;
