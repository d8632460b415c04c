//! The shared test doubles and fixtures.

#![allow(unused_imports)]

pub use hyperagents_testkit::*;
