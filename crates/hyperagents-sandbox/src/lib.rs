//! Runs untrusted agent scripts — programs written by models in a Python subset — safely.
//!
//! The interpreter is [monty](https://github.com/pydantic/monty) (`=0.0.23`), which has no file,
//! environment or network access of its own: every such operation pauses the script and is refused
//! here. Scripts run in `hyperagents-worker` processes (this crate's binary), never in the caller's
//! process:
//!
//! - a worker's allocator is monty-alloc's limiting allocator (an interpreter memory limit `M`
//!   gives a clean `MemoryError`; the allocator kills the process past `4 × M`), and the parent
//!   caps it with `RLIMIT_AS`, `RLIMIT_CPU`, `RLIMIT_NOFILE`, `RLIMIT_FSIZE`, `RLIMIT_NPROC` and
//!   `RLIMIT_CORE`, starts it with an empty environment and kills it on drop;
//! - workers are **stateless**: each request carries the run's state (a monty snapshot) and each
//!   reply returns the next one, so a run paused at a host call holds no worker, many runs share a
//!   few workers, and a worker's death fails only the run it was executing ([`pool`]);
//! - host functions ([`HostFunctions`]) are called by name; values crossing the boundary are
//!   plain JSON ([`ScriptValue`], [`convert`]).
//!
//! [`check_syntax`] parses in-process (parsing executes nothing).
//!
//! What the language lacks, for the meta agent's prompt: [`LANGUAGE_GAPS`].

pub mod confine;
pub mod convert;
pub mod error;
pub mod host;
pub mod locate;
pub mod pool;
pub mod protocol;
pub mod syntax;
pub mod worker;

use std::path::PathBuf;
use std::time::Duration;

pub use error::{HostError, ScriptError};
pub use host::HostFunctions;
pub use locate::locate_worker;
pub use pool::{MAX_CALL_ARGUMENT_BYTES, PoolStats, PoolTimes, ScriptPool, WorkerInfo};
pub use syntax::check_syntax;

/// Values crossing the sandbox boundary are JSON values: `None`↔null, bool, int/float↔number,
/// str↔string, list/tuple↔array, dict↔object (non-string keys become their string form).
/// Anything else a script passes to a host function becomes its `repr` string.
pub type ScriptValue = serde_json::Value;

/// A script to run: `file` is its path inside the program (for tracebacks and errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptSource {
    /// Path of the script inside the program, as shown in tracebacks.
    pub file: String,
    /// The Python source.
    pub code: String,
}

/// Per-run limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptLimits {
    /// VM time between two host calls (time paused at a host call doesn't count).
    pub vm_time_per_call: Duration,
    /// Total VM time for the whole run.
    pub vm_time_total: Duration,
    /// Deepest Python call stack; deeper recursion is a `RecursionError`.
    pub max_recursion_depth: usize,
    /// Host calls one run may make; the next one aborts the run ([`ScriptError::Aborted`]).
    pub max_host_calls: usize,
    /// Interpreter heap limit per run (`MemoryError` past it). Workers are started with it: the
    /// worker's allocator kills the process at four times this (→ [`ScriptError::MemoryLimit`]).
    pub max_memory_bytes: u64,
}

impl Default for ScriptLimits {
    fn default() -> Self {
        Self {
            vm_time_per_call: Duration::from_secs(5),
            vm_time_total: Duration::from_secs(60),
            max_recursion_depth: 200,
            max_host_calls: 1000,
            max_memory_bytes: 128 << 20,
        }
    }
}

/// How a [`ScriptPool`] runs its workers.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Worker processes kept alive (at least 1; never more at once).
    pub workers: usize,
    /// The worker executable (this crate's `hyperagents-worker` binary; see [`locate_worker`]).
    pub worker_exe: PathBuf,
    /// OS address-space cap per worker (`RLIMIT_AS`), bytes. Must leave room above the
    /// allocator's kill point: at least `4 × limits.max_memory_bytes + 256 MiB`.
    pub memory_limit_bytes: u64,
    /// Limits applied to every run.
    pub limits: ScriptLimits,
    /// Source bytes of compiled scripts each worker keeps between runs (0: none; never more than
    /// a sixteenth of `limits.max_memory_bytes`). A cache: it changes no result.
    pub compiled_script_bytes: usize,
}

impl PoolConfig {
    /// A config with `workers` workers, the given executable, default limits and an address-space
    /// cap of `4 × max_memory + 512 MiB`. Change the limits with [`Self::with_limits`], which
    /// keeps the cap in step (setting `limits` directly does not).
    pub fn new(workers: usize, worker_exe: PathBuf) -> Self {
        let limits = ScriptLimits::default();
        Self {
            workers,
            worker_exe,
            memory_limit_bytes: address_space_for(&limits),
            limits,
            compiled_script_bytes: worker::COMPILED_SOURCE_BYTES,
        }
    }

    /// Replaces the limits and resizes `memory_limit_bytes` to fit them
    /// (`4 × max_memory_bytes + 512 MiB`).
    #[must_use]
    pub fn with_limits(mut self, limits: ScriptLimits) -> Self {
        self.memory_limit_bytes = address_space_for(&limits);
        self.limits = limits;
        self
    }
}

/// The address-space cap [`PoolConfig::new`] and [`PoolConfig::with_limits`] choose.
fn address_space_for(limits: &ScriptLimits) -> u64 {
    limits
        .max_memory_bytes
        .saturating_mul(4)
        .saturating_add(512 << 20)
}

/// What the language lacks or refuses (monty 0.0.23), phrased for the prompt of the agent that
/// writes scripts. Each claim is checked against the interpreter by the `language_gaps_are_real`
/// test.
pub const LANGUAGE_GAPS: &str = "\
Scripts run in a sandboxed Python 3 subset (monty), not CPython. Not supported:
- class inheritance (`class B(A):`) and metaclasses; plain classes, @dataclass and decorators work
- `yield` and generator functions (generator expressions and comprehensions work)
- `match` statements
- the `del` statement (use `d.pop(k)` / `lst.pop(i)`)
- `%` string formatting (use f-strings or str.format)
- the modules random, time, string, subprocess, socket and third-party packages
  (json, re, math, collections, itertools, dataclasses, typing, asyncio are available)
- eval, exec, compile, __import__, input
- file, environment, clock and network access: open(), os.environ, os.getenv, pathlib reads and
  datetime.now() raise errors
Host functions are called like ordinary functions (`answer = llm(prompt)`); errors come back
as CPython-style tracebacks.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_limits_keeps_the_address_space_cap_in_step() {
        let config = PoolConfig::new(2, PathBuf::from("w")).with_limits(ScriptLimits {
            max_memory_bytes: 1 << 30,
            ..ScriptLimits::default()
        });
        assert_eq!(config.memory_limit_bytes, (4 << 30) + (512 << 20));
        assert_eq!(config.limits.max_memory_bytes, 1 << 30);
    }
}
