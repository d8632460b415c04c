//! Helpers shared by the integration tests: a pool on the built worker and a scriptable host.
#![allow(dead_code, clippy::unwrap_used)]

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use hyperagents_sandbox::{
    HostError, HostFunctions, PoolConfig, ScriptError, ScriptLimits, ScriptPool, ScriptSource,
    ScriptValue,
};
use serde_json::{Map, Value, json};

/// The worker binary Cargo built for these tests.
pub fn worker_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hyperagents-worker"))
}

/// Limits small enough that bombs are contained quickly.
pub fn test_limits() -> ScriptLimits {
    ScriptLimits {
        vm_time_per_call: Duration::from_millis(1500),
        vm_time_total: Duration::from_secs(10),
        max_recursion_depth: 200,
        max_host_calls: 50,
        max_memory_bytes: 32 << 20,
    }
}

pub fn config(workers: usize, limits: ScriptLimits) -> PoolConfig {
    PoolConfig {
        workers,
        worker_exe: worker_exe(),
        memory_limit_bytes: limits.max_memory_bytes * 4 + (256 << 20),
        limits,
        compiled_script_bytes: hyperagents_sandbox::worker::COMPILED_SOURCE_BYTES,
    }
}

pub async fn pool(workers: usize) -> ScriptPool {
    ScriptPool::start(config(workers, test_limits()))
        .await
        .unwrap()
}

pub fn src(code: &str) -> ScriptSource {
    ScriptSource {
        file: "agent.py".into(),
        code: code.into(),
    }
}

/// Fails the test if `f` takes longer than `secs`.
pub async fn within<T>(secs: u64, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("test step timed out")
}

/// One recorded host call.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub function: String,
    pub args: Vec<Value>,
    pub kwargs: Map<String, Value>,
}

/// A host with `llm`, `delegate`, `log`, `fail` (raises ValueError), `stop` (aborts) and, when
/// given a pool, `child(code)` (runs a nested script on the same pool).
#[derive(Default)]
pub struct TestHost {
    pub tag: String,
    pub calls: Mutex<Vec<Call>>,
    pub printed: Mutex<String>,
    pub pool: Option<ScriptPool>,
    /// Extra names to advertise (to check forbidden ones are dropped).
    pub extra: Vec<String>,
}

impl TestHost {
    pub fn new(tag: &str) -> Arc<Self> {
        Arc::new(Self {
            tag: tag.into(),
            ..Self::default()
        })
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl HostFunctions for TestHost {
    fn functions(&self) -> Vec<String> {
        let mut f: Vec<String> = ["llm", "delegate", "log", "fail", "stop", "child"]
            .map(String::from)
            .to_vec();
        f.extend(self.extra.iter().cloned());
        f
    }

    async fn call(
        &self,
        function: &str,
        args: Vec<ScriptValue>,
        kwargs: Map<String, ScriptValue>,
    ) -> Result<ScriptValue, HostError> {
        self.calls.lock().unwrap().push(Call {
            function: function.into(),
            args: args.clone(),
            kwargs: kwargs.clone(),
        });
        match function {
            "llm" => Ok(json!(format!(
                "{}:{}",
                self.tag,
                args.first().and_then(Value::as_str).unwrap_or("")
            ))),
            "delegate" => Ok(json!({"ok": true, "agent": args.first(), "kwargs": kwargs})),
            "log" => Ok(Value::Null),
            "fail" => Err(HostError::raise("ValueError", "boom")),
            "stop" => Err(HostError::abort("budget spent")),
            "child" => {
                let pool = self
                    .pool
                    .as_ref()
                    .ok_or_else(|| HostError::abort("no pool"))?;
                let code = args.first().and_then(Value::as_str).unwrap_or("");
                let host = TestHost::new(&format!("{}/child", self.tag));
                pool.run(&src(code), Map::new(), host)
                    .await
                    .map_err(|e| HostError::raise("RuntimeError", e.to_string()))
            }
            other => Err(HostError::raise(
                "RuntimeError",
                format!("unexpected {other}"),
            )),
        }
    }

    fn print(&self, text: &str) {
        self.printed.lock().unwrap().push_str(text);
    }
}

/// Runs `code` with a fresh [`TestHost`].
pub async fn run(pool: &ScriptPool, code: &str) -> Result<Value, ScriptError> {
    within(30, pool.run(&src(code), Map::new(), TestHost::new("t"))).await
}
