//! Helpers shared by the integration tests.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;
use hyperagents_domain::DomainError;
use hyperagents_domain::judge::{Judge, Verdict};
use hyperagents_testkit::inputs;
use hyperagents_webarena::{Dataset, EvalPage, PageError, SiteConfig, WebArenaSuite};
use serde_json::Value;

/// The unpacked webarena-verified package: `HYPERAGENTS_WEBARENA_DIR`, else
/// `benchmarks/webarena-verified-1.2.3` in the cache dir. Missing, the test
/// fails (or skips, see [`inputs::require`]).
pub fn package_root() -> Option<PathBuf> {
    let dir = std::env::var_os("HYPERAGENTS_WEBARENA_DIR").map_or_else(
        || inputs::cache_dir().join("benchmarks/webarena-verified-1.2.3"),
        PathBuf::from,
    );
    let present = dir.join("webarena_verified/assets/dataset").is_dir();
    inputs::require(
        present.then(|| dir.clone()),
        format_args!("the webarena-verified package at {}", dir.display()),
        "`hyperagents data pull` (run by scripts/test.sh)",
    )
}

/// A configuration with every site on `base` (paths keep them apart).
pub fn all_sites(base: &str) -> SiteConfig {
    hyperagents_webarena::Site::ALL
        .into_iter()
        .fold(SiteConfig::new(), |config, site| {
            config.with(site, format!("{base}/{}", site.name()))
        })
}

/// Writes `tasks` as a task file and loads it.
pub fn suite_of(
    tasks: &[Value],
    dataset: Dataset,
    sites: SiteConfig,
) -> (tempfile::TempDir, WebArenaSuite) {
    suite_from_text(
        &serde_json::to_string_pretty(tasks).unwrap(),
        dataset,
        sites,
    )
}

/// Writes `text` as a task file and loads it (for key orders that
/// `serde_json::Value`, which sorts keys, cannot express).
pub fn suite_from_text(
    text: &str,
    dataset: Dataset,
    sites: SiteConfig,
) -> (tempfile::TempDir, WebArenaSuite) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(dataset.file_name());
    std::fs::write(&path, text).unwrap();
    let suite = WebArenaSuite::from_file(&path, dataset, sites).unwrap();
    (dir, suite)
}

/// A `test.raw.json` record on the shopping site with this `eval`.
pub fn original_task(id: u32, intent: &str, eval: Value) -> Value {
    serde_json::json!({
        "sites": ["shopping"],
        "task_id": id,
        "require_login": true,
        "storage_state": "./.auth/shopping_state.json",
        "start_url": "__SHOPPING__",
        "geolocation": null,
        "intent_template": intent,
        "instantiation_dict": {},
        "intent": intent,
        "require_reset": false,
        "eval": eval,
        "intent_template_id": 1
    })
}

/// A page for evaluators that must not touch one: every call fails.
pub struct NoPage;

#[async_trait]
impl EvalPage for NoPage {
    async fn current_url(&mut self) -> Result<String, PageError> {
        Err(PageError::Browser("this test has no page".into()))
    }
    async fn goto(&mut self, _url: &str) -> Result<(), PageError> {
        Err(PageError::Browser("this test has no page".into()))
    }
    async fn eval_js(&mut self, _expression: &str) -> Result<Value, PageError> {
        Err(PageError::Browser("this test has no page".into()))
    }
}

/// A judge answering from a script, recording what it was asked.
#[derive(Default)]
pub struct ScriptedJudge {
    verdicts: Mutex<VecDeque<bool>>,
    pub calls: Mutex<Vec<(String, String, String)>>,
}

impl ScriptedJudge {
    pub fn answering(verdicts: &[bool]) -> Self {
        Self {
            verdicts: Mutex::new(verdicts.iter().copied().collect()),
            calls: Mutex::default(),
        }
    }

    pub fn calls(&self) -> Vec<(String, String, String)> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl Judge for ScriptedJudge {
    async fn judge(
        &self,
        question: &str,
        reference: &str,
        answer: &str,
    ) -> Result<Verdict, DomainError> {
        self.calls
            .lock()
            .unwrap()
            .push((question.into(), reference.into(), answer.into()));
        let correct = self
            .verdicts
            .lock()
            .unwrap()
            .pop_front()
            .expect("the judge was asked more often than scripted");
        Ok(Verdict {
            correct,
            reason: "scripted".into(),
        })
    }
}
