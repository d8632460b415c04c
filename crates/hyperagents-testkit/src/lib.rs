//! Test doubles and fixtures shared by the workspace's tests: a scripted
//! chat model (a stand-in for loop mechanics only; the product never uses
//! it), a pool on the real sandbox worker, a copy of the seed program, and
//! [`inputs::require`] for inputs read from the machine (models, benchmark
//! data). Only `[dev-dependencies]` may name this crate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod inputs;
pub mod mcp;
pub mod nats;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use hyperagents_llm::accounting::{Budget, PriceTable};
use hyperagents_llm::router::ModelRouter;
use hyperagents_llm::{
    Capabilities, ChatModel, ChatRequest, ChatResponse, FinishReason, LlmError, ModelDescriptor,
    Usage,
};
use hyperagents_program::RunCaps;
use hyperagents_runtime::RunContext;
use hyperagents_sandbox::{PoolConfig, ScriptPool, locate_worker};

/// Answers each request with a function of the request; records requests.
pub struct ScriptedModel {
    descriptor: ModelDescriptor,
    respond: Box<dyn Fn(&ChatRequest) -> String + Send + Sync>,
    /// Requests whose messages hold more characters than this fail as a
    /// prompt longer than the model's context would.
    context_chars: Option<usize>,
    pub requests: Mutex<Vec<ChatRequest>>,
}

impl ScriptedModel {
    pub fn new(respond: impl Fn(&ChatRequest) -> String + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self::build(None, respond))
    }

    fn build(
        context_chars: Option<usize>,
        respond: impl Fn(&ChatRequest) -> String + Send + Sync + 'static,
    ) -> Self {
        Self {
            descriptor: ModelDescriptor {
                provider: "scripted".into(),
                model: "double".into(),
                fingerprint: None,
                capabilities: Capabilities {
                    tools: false,
                    json_schema: true,
                    streaming: false,
                },
            },
            respond: Box::new(respond),
            context_chars,
            requests: Mutex::new(Vec::new()),
        }
    }

    /// Like [`ScriptedModel::new`], but a request whose messages hold more
    /// than `chars` characters fails like a prompt longer than the context.
    pub fn with_context_chars(
        chars: usize,
        respond: impl Fn(&ChatRequest) -> String + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self::build(Some(chars), respond))
    }

    /// Replies from a queue, in order; the last reply repeats.
    pub fn queue(replies: Vec<String>) -> Arc<Self> {
        let queue = Mutex::new(VecDeque::from(replies));
        Self::new(move |_| {
            let mut q = queue.lock().unwrap();
            if q.len() > 1 {
                q.pop_front().unwrap()
            } else {
                q.front().cloned().unwrap_or_default()
            }
        })
    }

    pub fn request_count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

#[async_trait]
impl ChatModel for ScriptedModel {
    fn descriptor(&self) -> &ModelDescriptor {
        &self.descriptor
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        self.requests.lock().unwrap().push(request.clone());
        let chars: usize = request.messages.iter().map(|m| m.content.len()).sum();
        if let Some(limit) = self.context_chars.filter(|limit| chars > *limit) {
            return Err(LlmError::Engine {
                provider: self.descriptor.provider.clone(),
                model: self.descriptor.model.clone(),
                message: format!("the prompt has {chars} characters; the context holds {limit}"),
            });
        }
        let text = (self.respond)(request);
        Ok(ChatResponse {
            usage: Usage {
                input_tokens: 20,
                output_tokens: text.len() as u64 / 4 + 1,
                cached_input_tokens: 0,
            },
            text,
            tool_calls: vec![],
            finish_reason: FinishReason::Stop,
            latency: Duration::from_millis(1),
            cache_hit: false,
            timing: None,
        })
    }
}

pub async fn pool(workers: usize) -> Arc<ScriptPool> {
    let exe = locate_worker().expect("the sandbox worker is built (cargo build --workspace)");
    Arc::new(
        ScriptPool::start(PoolConfig::new(workers, exe))
            .await
            .unwrap(),
    )
}

pub fn caps(steps: u32) -> RunCaps {
    RunCaps {
        max_steps: steps,
        max_calls: 1_000,
        max_tokens: 100_000,
        max_wall: Duration::from_secs(120),
    }
}

/// A run context whose aliases (`task`, `meta`, `judge`) all use `model`.
pub fn context(
    model: Arc<dyn ChatModel>,
    pool: Arc<ScriptPool>,
    steps: u32,
    traces: &Path,
) -> RunContext {
    let mut router = ModelRouter::new(PriceTable::default());
    for alias in ["task", "meta", "judge"] {
        router.bind(alias, model.clone(), Budget::default());
    }
    RunContext {
        router,
        pool,
        caps: caps(steps),
        run_seed: 7,
        traces_dir: traces.to_path_buf(),
        screenshots: false,
        external_tools: None,
    }
}

/// The repository's seed program. The manifest directory is read at run
/// time first: checkouts at different paths share one target directory, and
/// a test binary built in one must find the files of the one running it.
pub fn seed_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("../../programs/seed")
}

/// The pulled SmolLM2-135M file for tests that run the real model:
/// `HYPERAGENTS_TEST_MODEL`, else `models/smollm2-135m.gguf` in the cache
/// directory (`HYPERAGENTS_CACHE_DIR`, else `~/.cache/hyperagents`). A
/// missing file fails the test with the command that fetches it.
pub fn smollm2_path() -> PathBuf {
    if let Some(path) = std::env::var_os("HYPERAGENTS_TEST_MODEL") {
        return PathBuf::from(path);
    }
    let cache = std::env::var_os("HYPERAGENTS_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/hyperagents")))
        .expect("HOME or HYPERAGENTS_CACHE_DIR must be set");
    let path = cache.join("models/smollm2-135m.gguf");
    assert!(
        path.is_file(),
        "{} is missing: run `hyperagents models pull smollm2-135m` (the README's test command does)",
        path.display()
    );
    path
}

/// A copy of the seed program in `dir`, to modify freely.
pub fn seed_copy(dir: &Path) -> PathBuf {
    let target = dir.join("program");
    hyperagents_program::copy_program(&seed_dir(), &target).unwrap();
    target
}

/// What tests of meta steps start from: a failed episode of the seed to
/// learn from, and a quick evaluation that judges a child by its prompt.
pub mod meta_fixtures {
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use hyperagents_domain::JsonlSuite;
    use hyperagents_llm::ResponseFormat;
    use hyperagents_program::Program;
    use hyperagents_runtime::improve::QuickEval;
    use hyperagents_runtime::{SandboxChecker, run_episode};

    use crate::{ScriptedModel, context, pool, seed_dir};

    /// One numeric task the seed fails when its model answers in words.
    pub const ADD_SUITE: &str =
        r#"{"id": "add", "input": "What is 2+2?", "expected": 4, "scorer": "numeric"}"#;

    /// A failed episode of the seed program (task `add`, its model saying
    /// "five"), its trajectory under `dir/traces`; returns that folder.
    pub async fn failed_seed_episode(dir: &Path) -> PathBuf {
        let traces = dir.join("traces");
        let wrong = ScriptedModel::new(|request| match request.response_format {
            ResponseFormat::JsonSchema { .. } => r#"{"answer": "five"}"#.into(),
            ResponseFormat::Text => "It is five.".into(),
        });
        let ctx = context(wrong, pool(1).await, 40, &traces);
        let suite = JsonlSuite::parse("jsonl:t", "t.jsonl", ADD_SUITE).expect("the suite parses");
        let program =
            Arc::new(Program::load(seed_dir(), &SandboxChecker).expect("the seed program loads"));
        let outcome = run_episode(&ctx, program, &suite, "add", 0)
            .await
            .expect("the episode runs");
        assert!(!outcome.summary.success, "the seed was meant to fail");
        traces
    }

    /// Scores a child by whether its reasoning prompt asks for a number:
    /// the failed task `add` succeeds with such a child. Counts its calls.
    #[derive(Default)]
    pub struct AsksForANumber {
        pub calls: AtomicU64,
    }

    impl AsksForANumber {
        pub fn calls(&self) -> u64 {
            self.calls.load(Ordering::Relaxed)
        }
    }

    #[async_trait::async_trait]
    impl QuickEval for AsksForANumber {
        async fn quick_eval(
            &self,
            program: Program,
            tasks: Vec<String>,
        ) -> Result<serde_json::Value, String> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let success = program
                .source("skills/reason/prompt.md")
                .unwrap_or_default()
                .contains("number");
            Ok(serde_json::Value::Array(
                tasks
                    .iter()
                    .map(|task| {
                        serde_json::json!({"task": task, "seed": 0, "success": success, "defect": null})
                    })
                    .collect(),
            ))
        }
    }
}

/// A page of elements for tests of agents that act on them: the goal quotes
/// one button's text; clicking it ends the episode in success, clicking
/// anything else changes nothing (the episode fails when its steps run out).
/// Task `first` lists that button first, `third` lists it third, after
/// elements a goal does not name.
pub mod pages {
    use std::sync::Arc;

    use async_trait::async_trait;
    use hyperagents_domain::{ActionOutcome, ActionSpec, Domain, DomainError, Environment, Score};
    use hyperagents_program::Program;
    use hyperagents_runtime::improve::QuickEval;
    use hyperagents_runtime::{RunContext, run_episode};

    /// The goal of every task of [`ButtonPages`].
    pub const GOAL: &str = "Click on the \"yes\" button.";

    /// The domain: tasks `first` and `third`.
    pub struct ButtonPages;

    #[async_trait]
    impl Domain for ButtonPages {
        fn name(&self) -> &str {
            "buttons"
        }

        fn task_ids(&self) -> Vec<String> {
            vec!["first".into(), "third".into()]
        }

        async fn reset(&self, task: &str, _seed: u64) -> Result<Box<dyn Environment>, DomainError> {
            let elements = match task {
                "first" => vec!["button \"yes\"", "div \"lorem ipsum\"", "button \"no\""],
                "third" => vec!["div \"dolor sit\"", "button \"no\"", "button \"yes\""],
                other => return Err(DomainError::UnknownTask(other.to_string())),
            };
            let target = elements
                .iter()
                .position(|e| *e == "button \"yes\"")
                .map(|i| i as u64 + 1);
            Ok(Box::new(ButtonPage {
                elements,
                target,
                clicked: None,
            }))
        }
    }

    struct ButtonPage {
        elements: Vec<&'static str>,
        target: Option<u64>,
        clicked: Option<u64>,
    }

    #[async_trait]
    impl Environment for ButtonPage {
        fn instruction(&self) -> String {
            GOAL.into()
        }

        async fn observe(&mut self) -> Result<String, DomainError> {
            let mut page = String::from(
                "url: http://page.test/\ntitle: \"Buttons\"\nelements ([ref] tag \"text\" attributes):\n",
            );
            for (i, element) in self.elements.iter().enumerate() {
                page.push_str(&format!("[{}] {element}\n", i + 1));
            }
            Ok(page)
        }

        fn actions(&self) -> Vec<ActionSpec> {
            vec![ActionSpec {
                name: "click".into(),
                description: "Click an element.".into(),
                parameters: serde_json::json!({
                    "type": "object",
                    "properties": {"ref": {"type": "integer"}},
                    "required": ["ref"]
                }),
            }]
        }

        async fn act(
            &mut self,
            name: &str,
            args: &serde_json::Value,
        ) -> Result<ActionOutcome, DomainError> {
            if name != "click" {
                return Err(DomainError::UnknownAction {
                    name: name.into(),
                    available: "click".into(),
                });
            }
            let reference = args.get("ref").and_then(|r| r.as_u64()).ok_or_else(|| {
                DomainError::BadArguments {
                    action: "click".into(),
                    message: "`ref` must be an element's number".into(),
                }
            })?;
            let done = Some(reference) == self.target;
            if done {
                self.clicked = Some(reference);
            }
            Ok(ActionOutcome {
                message: format!("clicked [{reference}]"),
                done,
            })
        }

        fn is_done(&self) -> bool {
            self.clicked.is_some()
        }

        async fn score(&mut self) -> Result<Score, DomainError> {
            let success = self.clicked.is_some();
            Ok(Score {
                value: if success { 1.0 } else { 0.0 },
                success,
                reason: if success {
                    "clicked the named button".into()
                } else {
                    "never clicked the named button".into()
                },
            })
        }
    }

    /// A task model that always picks the first element listed, as
    /// SmolLM2-135M does on MiniWoB++.
    pub fn picks_the_first_element() -> Arc<crate::ScriptedModel> {
        crate::ScriptedModel::new(|_| r#"{"action": "click", "ref": 1, "text": ""}"#.into())
    }

    /// A quick evaluation that plays each task's episode (seed 0) with the
    /// child program on [`ButtonPages`].
    pub struct PlaysButtonPages {
        pub ctx: RunContext,
    }

    #[async_trait]
    impl QuickEval for PlaysButtonPages {
        async fn quick_eval(
            &self,
            program: Program,
            tasks: Vec<String>,
        ) -> Result<serde_json::Value, String> {
            let program = Arc::new(program);
            let mut results = Vec::new();
            for task in tasks {
                let outcome = run_episode(&self.ctx, program.clone(), &ButtonPages, &task, 0)
                    .await
                    .map_err(|e| e.to_string())?;
                results.push(serde_json::json!({
                    "task": task,
                    "seed": 0,
                    "success": outcome.summary.success,
                    "defect": null,
                }));
            }
            Ok(serde_json::Value::Array(results))
        }
    }
}

/// Edits as a meta model writes them for the seed's meta agent, which reads
/// plain text (`hyperagents_program::parse_edits`), never JSON.
pub mod meta_reply {
    /// `content` as the whole new text of `path`, in a fenced block.
    pub fn whole_file(path: &str, content: &str) -> String {
        let body = content.strip_suffix('\n').unwrap_or(content);
        format!("Here is the new file.\n\n{path}\n```\n{body}\n```\n")
    }

    /// A SEARCH/REPLACE block swapping `old` for `new` in `path`.
    pub fn search_replace(path: &str, old: &str, new: &str) -> String {
        format!("{path}\n<<<<<<< SEARCH\n{old}\n=======\n{new}\n>>>>>>> REPLACE\n")
    }
}

/// The seed program with its meta agent's worked-example mining turned off
/// (`EXEMPLARS_MAX = 0`), for tests of the evolution loop's mechanics that
/// want every child to be the scripted meta model's edit. Made once per
/// version of the seed, under the temporary directory.
pub fn seed_without_exemplars() -> PathBuf {
    static MADE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    MADE.get_or_init(|| {
        let seed = seed_dir();
        let hash = hyperagents_program::content_hash_dir(&seed)
            .unwrap()
            .to_hex();
        let target =
            std::env::temp_dir().join(format!("hyperagents-seed-no-exemplars-{}", &hash[..16]));
        if !target.join("hyperagent.toml").exists() {
            let partial = target.with_extension(format!("partial-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&partial);
            hyperagents_program::copy_program(&seed, &partial).unwrap();
            let script = partial.join("meta/improve.py");
            let text = std::fs::read_to_string(&script).unwrap();
            assert!(
                text.contains("\nEXEMPLARS_MAX = "),
                "the seed's meta agent names its EXEMPLARS_MAX"
            );
            let off: String = text
                .lines()
                .map(|l| {
                    if l.starts_with("EXEMPLARS_MAX = ") {
                        "EXEMPLARS_MAX = 0"
                    } else {
                        l
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            std::fs::write(&script, off + "\n").unwrap();
            // Another test process may have made it first: either copy is the same.
            if std::fs::rename(&partial, &target).is_err() {
                let _ = std::fs::remove_dir_all(&partial);
            }
        }
        target
    })
    .clone()
}

/// Property tests over untrusted inputs (the `fuzz` tests of each crate).
pub mod fuzz {
    use proptest::strategy::Strategy;
    use proptest::test_runner::{Config, TestCaseError, TestRunner};

    /// Runs `test` on generated values: `PROPTEST_CASES` of them when set
    /// (`scripts/fuzz.sh` sets many), else `default_cases`. Fails with the
    /// smallest failing input proptest finds.
    pub fn check<S: Strategy>(
        default_cases: u32,
        strategy: S,
        test: impl Fn(S::Value) -> Result<(), TestCaseError>,
    ) {
        let cases = std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|cases| cases.parse().ok())
            .unwrap_or(default_cases);
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        if let Err(error) = runner.run(&strategy, test) {
            panic!("{error}");
        }
    }
}
