//! Integration tests of hyperagents-webarena, built as one binary.

#![allow(clippy::unwrap_used)] // Test helpers panic on setup failures by design.

mod browser;
mod common;
mod cross_check;
mod dataset;
mod domain;
mod evaluators;
mod fuzz;
