//! One settings layer: built-in defaults, then a TOML file, then
//! `HYPERAGENTS_*` environment variables (nested keys joined by `__`, e.g.
//! `HYPERAGENTS_EMBEDDED__THREADS=2`; a name without `__` is not a setting,
//! except `HYPERAGENTS_CACHE_DIR`), then the provider variables users
//! already have (`OPENAI_BASE_URL`, `OPENAI_API_KEY`, `ANTHROPIC_API_KEY`),
//! then command-line flags — later layers win.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use hyperagents_llm::accounting::{Budget, PriceTable};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// Everything a command may need to know about models and where things live.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Named model definitions; roles and `--model` refer to these names.
    pub models: BTreeMap<String, ModelSettings>,
    /// Role name → model name.
    pub roles: BTreeMap<String, String>,
    /// Role name → budget.
    #[serde(default)]
    pub budgets: BTreeMap<String, Budget>,
    /// `provider/model` (or `provider/*`) → dollars per million tokens.
    #[serde(default)]
    pub prices: PriceTable,
    pub cache: CacheSettings,
    pub embedded: EmbeddedSettings,
    pub http: HttpSettings,
    pub openai: OpenAiSettings,
    pub anthropic: AnthropicSettings,
    pub sandbox: SandboxSettings,
    pub run: RunSettings,
    /// Where benchmark data lives and how benchmark environments run.
    #[serde(default)]
    pub benchmarks: BenchmarkSettings,
    /// The NATS server for `worker` and `eval --nats` (URL, credentials, TLS).
    #[serde(default)]
    pub nats: hyperagents_distributed::NatsSettings,
    /// MCP servers whose tools programs may call (`[mcp.servers.NAME]`:
    /// `command` or `url`, `grant`, `env`, timeouts).
    #[serde(default)]
    pub mcp: hyperagents_mcp::McpSettings,
    /// Where models, the response cache and runs are kept.
    pub cache_dir: Option<PathBuf>,
}

/// One named model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "lowercase", deny_unknown_fields)]
pub enum ModelSettings {
    /// A model run in-process: a catalog model by `name` (`hyperagents models list`), or any
    /// local GGUF file by `path` (optionally pinned by `sha256`; it must carry a chat template).
    Embedded {
        #[serde(default, skip_serializing_if = "String::is_empty")]
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<PathBuf>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sha256: Option<String>,
    },
    /// Any OpenAI-compatible Chat Completions server.
    Openai {
        model: String,
        #[serde(default)]
        base_url: Option<String>,
    },
    Anthropic {
        model: String,
        #[serde(default)]
        base_url: Option<String>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSettings {
    /// `off`, `read-write` or `replay-only`.
    pub mode: String,
    /// The SQLite file; defaults to `<cache_dir>/llm-cache.sqlite`.
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedSettings {
    /// Threads shared by every embedded model.
    pub threads: usize,
    /// Context length of each sequence.
    pub n_ctx: u32,
    /// Requests decoded together in one batch.
    pub n_seq: u32,
    /// Tokens per decode step.
    pub n_batch: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub timeout_secs: f64,
    pub connect_timeout_secs: f64,
    pub max_retries: u32,
    pub max_concurrency: usize,
    pub stream: bool,
}

/// Limits of the script sandbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxSettings {
    /// Worker processes that run agent scripts.
    pub workers: usize,
    /// Memory per script run, MiB (the worker's OS cap is a few times this).
    pub memory_mb: u64,
    /// VM seconds a script may run between two host calls.
    pub vm_secs_per_call: f64,
    /// VM seconds for a whole script run.
    pub vm_secs_total: f64,
    pub max_recursion_depth: usize,
    /// Host calls one script run may make.
    pub max_host_calls: usize,
    /// Source KiB of compiled scripts each worker keeps between runs, so
    /// the scripts an episode runs again are not parsed again (0: none).
    #[serde(default = "default_compiled_scripts_kib")]
    pub compiled_scripts_kib: usize,
}

fn default_compiled_scripts_kib() -> usize {
    hyperagents_sandbox::worker::COMPILED_SOURCE_BYTES / 1024
}

/// Per-episode caps no program can raise, and the run's seed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSettings {
    pub seed: u64,
    /// Environment actions per episode (what benchmarks call steps).
    pub max_steps: u32,
    /// `skill`, `delegate` and `llm` calls per episode.
    #[serde(default = "default_max_calls")]
    pub max_calls: u32,
    pub max_tokens: u64,
    pub max_wall_secs: f64,
    /// Keep a PNG after every action of environments that can take one
    /// (web pages), beside each trajectory.
    #[serde(default)]
    pub screenshots: bool,
}

/// Benchmark data and environments. Directories default to what
/// `hyperagents data pull` unpacks into the cache dir.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BenchmarkSettings {
    pub browser: BrowserSettings,
    pub miniwob: MiniwobSettings,
    pub webarena: WebarenaSettings,
    pub gaia: GaiaSettings,
}

/// The headless Chromium web benchmarks run in.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrowserSettings {
    /// Browser windows, one per concurrent episode.
    pub windows: usize,
    /// The Chromium executable (default: found on PATH).
    pub chromium: Option<PathBuf>,
    /// Approximate token cap of one observation.
    pub observation_tokens: usize,
}

impl Default for BrowserSettings {
    fn default() -> Self {
        Self {
            windows: 2,
            chromium: None,
            observation_tokens: 1000,
        }
    }
}

/// MiniWoB++ in headless Chromium.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MiniwobSettings {
    /// The unpacked `miniwob` wheel (holding `miniwob/html`).
    pub dir: Option<PathBuf>,
    /// A split file replacing the built-in train/test split.
    pub split_file: Option<PathBuf>,
    /// MiniWoB's own episode clock, generous for LLM agents.
    pub episode_max_ms: u64,
}

impl Default for MiniwobSettings {
    fn default() -> Self {
        Self {
            dir: None,
            split_file: None,
            episode_max_ms: 1_000_000,
        }
    }
}

/// WebArena: task configs from `webarena-verified`, sites hosted by the user.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebarenaSettings {
    /// The unpacked `webarena-verified` wheel.
    pub dir: Option<PathBuf>,
    /// `original` (`test.raw.json`, WebArena's evaluators) or `verified`
    /// (`webarena-verified.json`).
    pub dataset: String,
    /// Site name (`shopping`, `shopping_admin`, `reddit`, `gitlab`,
    /// `wikipedia`, `map`, `homepage`) → base URL.
    pub sites: BTreeMap<String, String>,
    /// Site name → how to log in to it and how to reset it
    /// (`[benchmarks.webarena.hooks.shopping]`). Without a reset, tasks that
    /// need one are unsupported; without a login, logging in is skipped.
    pub hooks: BTreeMap<String, WebarenaSiteHooks>,
    /// The shopping site's administrator account, for the evaluators'
    /// `func:shopping_*` helpers (Magento's REST API).
    pub shopping_admin: Option<WebarenaAccount>,
}

impl Default for WebarenaSettings {
    fn default() -> Self {
        Self {
            dir: None,
            dataset: "original".into(),
            sites: BTreeMap::new(),
            hooks: BTreeMap::new(),
            shopping_admin: None,
        }
    }
}

/// One WebArena site's login form and reset.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebarenaSiteHooks {
    pub login: Option<WebarenaLogin>,
    /// A program and its arguments (no shell unless named) that resets the
    /// site and exits 0, e.g. `["docker", "restart", "shopping"]`.
    pub reset_command: Vec<String>,
    /// Or an HTTP request that resets it and answers 2xx.
    pub reset_http: Option<WebarenaResetHttp>,
}

/// A login form the host fills before a task that needs the site logged in.
/// The password never reaches agents, logs, trajectories or `config show`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebarenaLogin {
    pub url: String,
    pub username_selector: String,
    pub password_selector: String,
    pub submit_selector: String,
    pub username: String,
    #[serde(skip_serializing)]
    pub password: Option<SecretString>,
    #[serde(default = "default_login_secs")]
    pub timeout_secs: f64,
}

fn default_login_secs() -> f64 {
    30.0
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebarenaResetHttp {
    #[serde(default = "default_reset_method")]
    pub method: String,
    pub url: String,
}

fn default_reset_method() -> String {
    "POST".into()
}

/// A username and password; the password is never serialised back out.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebarenaAccount {
    pub username: String,
    #[serde(skip_serializing)]
    pub password: Option<SecretString>,
}

/// GAIA-style tasks from directories the user supplies.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GaiaSettings {
    /// GAIA's layout: `<dir>/2023/validation` is the train split and
    /// `<dir>/2023/test` the test split, unless `train`/`test` are given.
    pub dir: Option<PathBuf>,
    /// A `metadata.jsonl` (or the folder holding one) for the train split.
    pub train: Option<PathBuf>,
    /// A `metadata.jsonl` (or the folder holding one) for the test split.
    pub test: Option<PathBuf>,
    /// A folder the `search_documents` tool searches.
    pub documents: Option<PathBuf>,
}

/// OpenAI-compatible defaults; the key is never serialised back out.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiSettings {
    pub base_url: String,
    #[serde(skip_serializing, default)]
    pub api_key: Option<SecretString>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnthropicSettings {
    pub base_url: String,
    #[serde(skip_serializing, default)]
    pub api_key: Option<SecretString>,
}

impl Default for Settings {
    fn default() -> Self {
        let models = BTreeMap::from([
            (
                "smollm2-135m".to_string(),
                ModelSettings::Embedded {
                    name: "smollm2-135m".into(),
                    path: None,
                    sha256: None,
                },
            ),
            (
                "qwen2.5-coder-1.5b".to_string(),
                ModelSettings::Embedded {
                    name: "qwen2.5-coder-1.5b".into(),
                    path: None,
                    sha256: None,
                },
            ),
            (
                "qwen2.5-coder-0.5b".to_string(),
                ModelSettings::Embedded {
                    name: "qwen2.5-coder-0.5b".into(),
                    path: None,
                    sha256: None,
                },
            ),
        ]);
        let roles = BTreeMap::from([
            ("task".to_string(), "smollm2-135m".to_string()),
            ("meta".to_string(), "qwen2.5-coder-1.5b".to_string()),
            ("judge".to_string(), "smollm2-135m".to_string()),
        ]);
        Self {
            models,
            roles,
            budgets: BTreeMap::new(),
            prices: PriceTable::default(),
            cache: CacheSettings {
                mode: "read-write".into(),
                path: None,
            },
            embedded: {
                let engine = hyperagents_llm_embedded::EngineConfig::default();
                EmbeddedSettings {
                    threads: std::thread::available_parallelism()
                        .map(|n| n.get())
                        .unwrap_or(2),
                    n_ctx: engine.n_ctx,
                    n_seq: engine.n_seq,
                    n_batch: engine.n_batch,
                }
            },
            http: HttpSettings {
                timeout_secs: 300.0,
                connect_timeout_secs: 10.0,
                max_retries: 4,
                max_concurrency: 8,
                stream: false,
            },
            openai: OpenAiSettings {
                base_url: "https://api.openai.com/v1".into(),
                api_key: None,
            },
            anthropic: AnthropicSettings {
                base_url: "https://api.anthropic.com".into(),
                api_key: None,
            },
            sandbox: SandboxSettings {
                workers: 2,
                memory_mb: 256,
                vm_secs_per_call: 5.0,
                vm_secs_total: 120.0,
                max_recursion_depth: 200,
                max_host_calls: 2000,
                compiled_scripts_kib: default_compiled_scripts_kib(),
            },
            run: RunSettings {
                seed: 0,
                max_steps: 60,
                max_calls: default_max_calls(),
                max_tokens: 200_000,
                max_wall_secs: 900.0,
                screenshots: false,
            },
            benchmarks: BenchmarkSettings::default(),
            nats: hyperagents_distributed::NatsSettings::default(),
            mcp: hyperagents_mcp::McpSettings::default(),
            cache_dir: None,
        }
    }
}

fn default_max_calls() -> u32 {
    240
}

/// Where the settings file is looked for when `--config` is not given.
pub fn default_config_paths() -> Vec<PathBuf> {
    let mut paths = vec![PathBuf::from("hyperagents.toml")];
    if let Some(dir) = dirs::config_dir() {
        paths.push(dir.join("hyperagents/config.toml"));
    }
    paths
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid settings: {0}")]
    Invalid(#[from] Box<figment::Error>),
    #[error("invalid settings: {0}")]
    Inconsistent(String),
}

/// The providers a `PROVIDER:MODEL` name may start with (`--model`, `[roles]`
/// and `HYPERAGENTS_ROLES__*` all accept the form).
pub const PROVIDERS: [&str; 3] = ["embedded", "openai", "anthropic"];

impl ModelSettings {
    /// `PROVIDER:MODEL` as model settings (`embedded:/models/x.gguf`, a path, names a local
    /// file); `None` when `spec` names no provider, an error naming the providers when it
    /// names an unknown one or no model.
    pub fn from_provider_spec(spec: &str) -> Option<Result<Self, String>> {
        let (provider, model) = spec.split_once(':')?;
        if model.is_empty() {
            return Some(Err(format!("`{spec}` names no model after `{provider}:`")));
        }
        let model = model.to_string();
        Some(match provider {
            "embedded" if model.ends_with(".gguf") || model.contains('/') => {
                Ok(ModelSettings::Embedded {
                    name: String::new(),
                    path: Some(PathBuf::from(model)),
                    sha256: None,
                })
            }
            "embedded" => Ok(ModelSettings::Embedded {
                name: model,
                path: None,
                sha256: None,
            }),
            "openai" => Ok(ModelSettings::Openai {
                model,
                base_url: None,
            }),
            "anthropic" => Ok(ModelSettings::Anthropic {
                model,
                base_url: None,
            }),
            other => Err(format!(
                "unknown provider `{other}` in `{spec}` (expected {})",
                PROVIDERS.join(", ")
            )),
        })
    }
}

impl Settings {
    /// Merges the layers. `explicit_file` must exist when given; otherwise
    /// the first of [`default_config_paths`] that exists is used. `env` is
    /// the process environment (passed in so tests need not mutate it), and
    /// `overrides` are the command-line flags as a partial settings tree.
    pub fn load(
        explicit_file: Option<&Path>,
        env: &BTreeMap<String, String>,
        overrides: Figment,
    ) -> Result<Self, SettingsError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        match explicit_file {
            Some(path) if !path.is_file() => return Err(SettingsError::MissingFile(path.into())),
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None => {
                if let Some(path) = default_config_paths().into_iter().find(|p| p.is_file()) {
                    figment = figment.merge(Toml::file_exact(path));
                }
            }
        }
        let prefixed: Vec<(String, String)> = env
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("HYPERAGENTS_")
                    .map(|rest| (rest.to_string(), v.clone()))
            })
            // Settings are sections: `SECTION__KEY`. A name without `__`
            // belongs to someone else (the sandbox worker's path, the
            // dashboard's token, a scorer's task id, test data folders) and
            // is left alone; `CACHE_DIR` is read below.
            .filter(|(k, _)| k.contains("__"))
            .collect();
        figment = figment.merge(env_provider(prefixed));
        if let Some(dir) = env.get("HYPERAGENTS_CACHE_DIR") {
            figment = figment.merge(Serialized::default("cache_dir", dir));
        }
        for (var, key) in [
            ("OPENAI_BASE_URL", "openai.base_url"),
            ("OPENAI_API_KEY", "openai.api_key"),
            ("ANTHROPIC_BASE_URL", "anthropic.base_url"),
            ("ANTHROPIC_API_KEY", "anthropic.api_key"),
        ] {
            if let Some(value) = env.get(var).filter(|v| !v.is_empty()) {
                figment = figment.merge(Serialized::default(key, value));
            }
        }
        let settings: Settings = figment.merge(overrides).extract().map_err(Box::new)?;
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), SettingsError> {
        for (key, model) in &self.models {
            if let ModelSettings::Embedded { name, path, .. } = model
                && name.is_empty() == path.is_none()
            {
                return Err(SettingsError::Inconsistent(format!(
                    "[models.{key}]: an embedded model needs either `name` (a catalog model) or \
                     `path` (a GGUF file), not both"
                )));
            }
        }
        for (role, model) in &self.roles {
            if self.models.contains_key(model) {
                continue;
            }
            match ModelSettings::from_provider_spec(model) {
                Some(Ok(_)) => {}
                Some(Err(why)) => {
                    return Err(SettingsError::Inconsistent(format!(
                        "role `{role}` is bound to `{model}`: {why}"
                    )));
                }
                None => {
                    return Err(SettingsError::Inconsistent(format!(
                        "role `{role}` is bound to model `{model}`, which is not defined under \
                         [models] (or name one as PROVIDER:MODEL, e.g. `openai:gpt-4o-mini`)"
                    )));
                }
            }
        }
        if self.embedded.threads == 0 {
            return Err(SettingsError::Inconsistent(
                "embedded.threads must be at least 1".into(),
            ));
        }
        self.mcp
            .check()
            .map_err(|e| SettingsError::Inconsistent(e.to_string()))?;
        Ok(())
    }

    /// The cache directory: settings, else `$XDG_CACHE_HOME/hyperagents`.
    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(|| {
            dirs::cache_dir()
                .unwrap_or_else(std::env::temp_dir)
                .join("hyperagents")
        })
    }

    pub fn llm_cache_path(&self) -> PathBuf {
        self.cache
            .path
            .clone()
            .unwrap_or_else(|| self.cache_dir().join("llm-cache.sqlite"))
    }
}

/// `HYPERAGENTS_EMBEDDED__THREADS=2` → `embedded.threads = 2`.
fn env_provider(
    vars: Vec<(String, String)>,
) -> figment::providers::Serialized<figment::value::Dict> {
    let mut root = figment::value::Dict::new();
    for (key, value) in vars {
        let path: Vec<String> = key
            .to_ascii_lowercase()
            .split("__")
            .map(str::to_string)
            .collect();
        insert_path(&mut root, &path, parse_env_value(&value));
    }
    Serialized::defaults(root)
}

/// Numbers and booleans in variables become numbers and booleans, as with
/// figment's own `Env` provider.
fn parse_env_value(value: &str) -> figment::value::Value {
    value
        .parse()
        .unwrap_or_else(|_| figment::value::Value::from(value.to_string()))
}

fn insert_path(dict: &mut figment::value::Dict, path: &[String], value: figment::value::Value) {
    match path {
        [] => {}
        [last] => {
            dict.insert(last.clone(), value);
        }
        [head, rest @ ..] => {
            let entry = dict
                .entry(head.clone())
                .or_insert_with(|| figment::value::Value::from(figment::value::Dict::new()));
            if let figment::value::Value::Dict(_, inner) = entry {
                insert_path(inner, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("hyperagents.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn layers_merge_in_order_file_env_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            &dir,
            r#"
            [embedded]
            threads = 3
            n_seq = 2
            [cache]
            mode = "off"
            [models.gpt]
            provider = "openai"
            model = "gpt-4o-mini"
            [roles]
            judge = "gpt"
            [budgets.judge]
            max_tokens = 1000
            "#,
        );
        let env = env(&[
            ("HYPERAGENTS_EMBEDDED__N_SEQ", "6"),
            ("HYPERAGENTS_CACHE__MODE", "replay-only"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"),
            ("OPENAI_API_KEY", "sk-test-secret"),
        ]);
        let flags = Figment::new().merge(Serialized::default("cache.mode", "read-write"));
        let s = Settings::load(Some(&file), &env, flags).unwrap();
        assert_eq!(s.embedded.threads, 3, "file beats defaults");
        assert_eq!(s.embedded.n_seq, 6, "env beats file");
        assert_eq!(s.cache.mode, "read-write", "flags beat env");
        assert_eq!(s.openai.base_url, "http://127.0.0.1:9/v1");
        assert_eq!(
            s.openai.api_key.as_ref().unwrap().expose_secret(),
            "sk-test-secret"
        );
        assert_eq!(s.roles["judge"], "gpt");
        assert_eq!(
            s.roles["task"], "smollm2-135m",
            "defaults survive a partial [roles]"
        );
        assert_eq!(s.budgets["judge"].max_tokens, Some(1000));
    }

    #[test]
    fn other_programs_variables_are_not_settings_but_misspelt_settings_are_errors() {
        let others = env(&[
            ("HYPERAGENTS_WORKER", "/opt/hyperagents-worker"),
            ("HYPERAGENTS_DASHBOARD_TOKEN", "token"),
            ("HYPERAGENTS_TASK_ID", "t1"),
            ("HYPERAGENTS_EMBEDDED__THREADS", "1"),
        ]);
        let s = Settings::load(None, &others, Figment::new()).unwrap();
        assert_eq!(s.embedded.threads, 1);
        let misspelt = env(&[("HYPERAGENTS_EMBEDED__THREADS", "1")]);
        let err = Settings::load(None, &misspelt, Figment::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("embeded"), "{err}");
    }

    #[test]
    fn a_role_may_name_a_model_as_provider_and_model() {
        let env = env(&[("HYPERAGENTS_ROLES__TASK", "openai:gpt-4o-mini")]);
        let s = Settings::load(None, &env, Figment::new()).unwrap();
        assert_eq!(s.roles["task"], "openai:gpt-4o-mini");
    }

    #[test]
    fn the_api_key_is_never_serialised() {
        let env = env(&[
            ("OPENAI_API_KEY", "sk-never-shown"),
            ("ANTHROPIC_API_KEY", "ak-never-shown"),
        ]);
        let s = Settings::load(None, &env, Figment::new()).unwrap();
        let shown = toml::to_string(&s).unwrap();
        assert!(!shown.contains("never-shown"), "{shown}");
        assert!(!format!("{s:?}").contains("never-shown"));
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(&dir, "[embedded]\nthreds = 2\n");
        let err = Settings::load(Some(&file), &BTreeMap::new(), Figment::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("threds"), "{err}");
        assert!(err.contains("hyperagents.toml"), "{err}");

        let file = write(&dir, "[roles]\ntask = \"nope\"\n");
        let err = Settings::load(Some(&file), &BTreeMap::new(), Figment::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("`nope`"), "{err}");
        let file = write(&dir, "[roles]\ntask = \"gemini:x\"\n");
        let err = Settings::load(Some(&file), &BTreeMap::new(), Figment::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown provider `gemini`"), "{err}");

        let missing = dir.path().join("absent.toml");
        let err = Settings::load(Some(&missing), &BTreeMap::new(), Figment::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("absent.toml"), "{err}");
    }
}
