//! Integration tests of the GAIA domain, as one test binary: loading, tools, isolation.
#![allow(clippy::unwrap_used)]

mod common;
mod fuzz;
mod isolation;
mod loader;
mod tools;
