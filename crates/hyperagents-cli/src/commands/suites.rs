//! Opening a suite by name (`miniwob`, `webarena`, `gaia`) or path (a JSONL
//! task file) in two steps: [`plan_suite`] reads the tasks and says which
//! model aliases the suite's scorers need; [`SuitePlan::open`] then builds
//! the domain once those models are bound.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hyperagents_browser::{LaunchConfig, PoolConfig as BrowserPoolConfig};
use hyperagents_domain::fnv1a64;
use hyperagents_domain::judge::{JudgeConfig, LlmJudge};
use hyperagents_domain::{Domain, JsonlSuite, Split};
use hyperagents_eval::SuiteIdentity;
use hyperagents_gaia::{GaiaConfig, GaiaDomain, GaiaSuite};
use hyperagents_miniwob::{MiniWob, MiniWobConfig, SplitPart};
use hyperagents_models::{MINIWOB, ModelStore, WEBARENA};
use hyperagents_runtime::RunContext;
use hyperagents_sandbox::{ScriptPool, locate_worker};
use hyperagents_webarena::{
    ApiCredentials, BrowserSource, ConfiguredSiteHooks, Dataset, LoginForm, ResetAction, Site,
    SiteConfig, SiteHookConfig, SiteHooks, WebArenaDomain, WebArenaDomainConfig, WebArenaSuite,
};
use sha2::{Digest, Sha256};

use crate::settings::{Settings, WebarenaSettings};

/// A suite whose tasks are known, not yet opened.
pub struct SuitePlan {
    pub identity: SuiteIdentity,
    /// The split's tasks, in the suite's order.
    pub split_tasks: Vec<String>,
    /// Model aliases the suite's scorers call (e.g. `judge`).
    pub aliases: BTreeSet<String>,
    source: Source,
}

enum Source {
    Jsonl(JsonlSuite),
    Miniwob(Box<MiniWobConfig>),
    Webarena {
        suite: Box<WebArenaSuite>,
        windows: usize,
        observation_tokens: usize,
        chromium: Option<PathBuf>,
        hooks: Option<ConfiguredSiteHooks>,
        shopping_admin: Option<ApiCredentials>,
    },
    Gaia {
        suite: GaiaSuite,
        documents: Option<PathBuf>,
    },
}

/// Which split a command asked for.
pub fn parse_split(split: &str) -> Result<Split> {
    match split {
        "train" => Ok(Split::Train),
        "test" => Ok(Split::Test),
        other => bail!("unknown split `{other}`: use `train` or `test`"),
    }
}

pub fn plan_suite(settings: &Settings, suite: &str, split: Split) -> Result<SuitePlan> {
    match suite {
        "gaia" => plan_gaia(settings, split),
        "miniwob" => plan_miniwob(settings, split),
        "webarena" => plan_webarena(settings, split),
        _ => plan_jsonl(Path::new(suite), split),
    }
}

impl SuitePlan {
    /// Builds the domain; `ctx` holds the models bound for [`Self::aliases`].
    pub async fn open(self, ctx: &RunContext) -> Result<Arc<dyn Domain>> {
        match self.source {
            Source::Jsonl(suite) => {
                if suite.needs_judge() {
                    let model = ctx.router.model("judge")?;
                    let judge = LlmJudge::new(model, JudgeConfig::default());
                    Ok(Arc::new(suite.with_judge(Arc::new(judge))))
                } else {
                    Ok(Arc::new(suite))
                }
            }
            Source::Miniwob(config) => {
                let miniwob = MiniWob::start(*config)
                    .await
                    .context("starting MiniWoB (page server and Chromium)")?;
                Ok(Arc::new(miniwob))
            }
            Source::Webarena {
                suite,
                windows,
                observation_tokens,
                chromium,
                hooks,
                shopping_admin,
            } => {
                let judge = LlmJudge::new(ctx.router.model("judge")?, JudgeConfig::default());
                let mut config = WebArenaDomainConfig::new(Arc::new(judge));
                config.hooks = hooks.map(|h| Arc::new(h) as Arc<dyn SiteHooks>);
                config.eval.shopping_admin_api = shopping_admin;
                let launch = LaunchConfig {
                    executable: chromium,
                    ..LaunchConfig::default()
                };
                config.browser = BrowserSource::Launch(BrowserPoolConfig { launch, windows });
                config.observer.max_tokens = observation_tokens;
                let domain = WebArenaDomain::start(*suite, config)
                    .await
                    .context("starting WebArena's browser")?;
                Ok(Arc::new(domain))
            }
            Source::Gaia { suite, documents } => {
                let worker = locate_worker().context("finding the sandbox worker")?;
                let python = ScriptPool::start(hyperagents_gaia::python_pool_config(worker, 1))
                    .await
                    .context("starting the python tool's sandbox")?;
                let config = GaiaConfig {
                    documents,
                    python: Some(python),
                    ..GaiaConfig::default()
                };
                Ok(Arc::new(GaiaDomain::new(suite, config)?))
            }
        }
    }
}

fn plan_jsonl(path: &Path, split: Split) -> Result<SuitePlan> {
    if !path.is_file() {
        bail!(
            "unknown suite `{}`: not miniwob, webarena or gaia, and no such file",
            path.display()
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let suite = JsonlSuite::load(path)?;
    let identity = SuiteIdentity {
        name: suite.name().to_string(),
        version: hex::encode(Sha256::digest(&bytes)),
    };
    let aliases = if suite.needs_judge() {
        BTreeSet::from(["judge".to_string()])
    } else {
        BTreeSet::new()
    };
    Ok(SuitePlan {
        identity,
        split_tasks: suite.split_ids(split),
        aliases,
        source: Source::Jsonl(suite),
    })
}

fn plan_gaia(settings: &Settings, split: Split) -> Result<SuitePlan> {
    let gaia = &settings.benchmarks.gaia;
    let chosen = match split {
        Split::Train => gaia.train.clone(),
        Split::Test => gaia.test.clone(),
    };
    let path = match (chosen, &gaia.dir) {
        (Some(path), _) => path,
        (None, Some(dir)) => dir.join("2023").join(match split {
            Split::Train => "validation",
            Split::Test => "test",
        }),
        (None, None) => bail!(
            "GAIA needs its data: set benchmarks.gaia.dir (GAIA's folder layout) or \
             benchmarks.gaia.train / benchmarks.gaia.test (a metadata.jsonl each), e.g. \
             HYPERAGENTS_BENCHMARKS__GAIA__DIR=/data/GAIA"
        ),
    };
    let suite = GaiaSuite::load(&path)?;
    let metadata = suite.metadata_path().to_path_buf();
    let bytes =
        std::fs::read(&metadata).with_context(|| format!("reading {}", metadata.display()))?;
    let identity = SuiteIdentity {
        name: "gaia".to_string(),
        version: hex::encode(Sha256::digest(&bytes)),
    };
    Ok(SuitePlan {
        identity,
        split_tasks: suite.tasks().iter().map(|t| t.task_id.clone()).collect(),
        aliases: BTreeSet::new(),
        source: Source::Gaia {
            suite,
            documents: gaia.documents.clone(),
        },
    })
}

fn plan_miniwob(settings: &Settings, split: Split) -> Result<SuitePlan> {
    let m = &settings.benchmarks.miniwob;
    let b = &settings.benchmarks.browser;
    let dir = match &m.dir {
        Some(dir) => dir.clone(),
        None => ModelStore::new(settings.cache_dir())
            .installed_dataset(&MINIWOB)
            .context("MiniWoB's pages are not installed: run `hyperagents data pull miniwob`")?,
    };
    let chosen = match &m.split_file {
        Some(path) => hyperagents_miniwob::Split::load(path)?,
        None => hyperagents_miniwob::Split::default_split()?,
    };
    let part = match split {
        Split::Train => SplitPart::Train,
        Split::Test => SplitPart::Test,
    };
    let mut config = MiniWobConfig::new(dir);
    config.windows = b.windows.max(1);
    config.launch.executable = b.chromium.clone();
    config.observer.max_tokens = b.observation_tokens;
    config.episode_max_time_ms = m.episode_max_ms;
    Ok(SuitePlan {
        identity: SuiteIdentity {
            name: "miniwob".into(),
            // The page package, the observation budget and the episode clock
            // all change what an agent faces.
            version: format!(
                "{}-{}+obs{}+max{}ms",
                MINIWOB.package, MINIWOB.version, b.observation_tokens, m.episode_max_ms
            ),
        },
        split_tasks: chosen.tasks(part).to_vec(),
        aliases: BTreeSet::new(),
        source: Source::Miniwob(Box::new(config)),
    })
}

/// WebArena's tasks are split by intent template, so no test task shares a
/// template with a train task: a task is in test iff FNV-1a-64 of
/// `"webarena-split-v1:<template id>"` mod 10 < 3.
pub fn webarena_in_test(template_id: u32) -> bool {
    fnv1a64(format!("webarena-split-v1:{template_id}").as_bytes()) % 10 < 3
}

fn plan_webarena(settings: &Settings, split: Split) -> Result<SuitePlan> {
    let w = &settings.benchmarks.webarena;
    let b = &settings.benchmarks.browser;
    let dir = match &w.dir {
        Some(dir) => dir.clone(),
        None => ModelStore::new(settings.cache_dir())
            .installed_dataset(&WEBARENA)
            .context(
                "WebArena's task configs are not installed: run `hyperagents data pull webarena`",
            )?,
    };
    let dataset = match w.dataset.as_str() {
        "original" => Dataset::Original,
        "verified" => Dataset::Verified,
        other => bail!("benchmarks.webarena.dataset is `{other}`: use `original` or `verified`"),
    };
    // Sites: WEBARENA_<SITE>_URL variables, overridden by the settings.
    let mut sites = SiteConfig::from_env();
    for (name, url) in &w.sites {
        let site: Site = name
            .parse()
            .map_err(|e| anyhow::anyhow!("benchmarks.webarena.sites.{name}: {e}"))?;
        sites.set(site, url.clone());
    }
    let suite = WebArenaSuite::load(&dir, dataset, sites)?;
    let split_tasks = suite
        .tasks()
        .iter()
        .filter(|t| webarena_in_test(t.intent_template_id) == (split == Split::Test))
        .map(|t| t.id.to_string())
        .collect();
    Ok(SuitePlan {
        identity: SuiteIdentity {
            name: "webarena".into(),
            // Site URLs are part of the version: a different deployment is a
            // different benchmark instance.
            version: format!(
                "{}-{}:{}:{}+obs{}",
                WEBARENA.package,
                WEBARENA.version,
                w.dataset,
                hex::encode(Sha256::digest(
                    serde_json::to_string(&w.sites)
                        .unwrap_or_default()
                        .as_bytes()
                )),
                b.observation_tokens
            ),
        },
        split_tasks,
        aliases: BTreeSet::from(["judge".to_string()]),
        source: Source::Webarena {
            suite: Box::new(suite),
            windows: b.windows.max(1),
            observation_tokens: b.observation_tokens,
            chromium: b.chromium.clone(),
            hooks: webarena_hooks(w)?,
            shopping_admin: shopping_admin(w)?,
        },
    })
}

/// The login and reset hooks `[benchmarks.webarena.hooks.<site>]` describe, if any.
fn webarena_hooks(w: &WebarenaSettings) -> Result<Option<ConfiguredSiteHooks>> {
    if w.hooks.is_empty() {
        return Ok(None);
    }
    let mut hooks = ConfiguredSiteHooks::new();
    for (name, h) in &w.hooks {
        let key = format!("benchmarks.webarena.hooks.{name}");
        let site: Site = name.parse().map_err(|e| anyhow::anyhow!("{key}: {e}"))?;
        let login = match &h.login {
            None => None,
            Some(l) => Some(LoginForm {
                url: l.url.clone(),
                username_selector: l.username_selector.clone(),
                password_selector: l.password_selector.clone(),
                submit_selector: l.submit_selector.clone(),
                username: l.username.clone(),
                password: l.password.clone().with_context(|| {
                    format!(
                        "{key}.login.password is not set (put it in the settings file or in \
                         HYPERAGENTS_BENCHMARKS__WEBARENA__HOOKS__{}__LOGIN__PASSWORD)",
                        name.to_uppercase()
                    )
                })?,
                timeout: Duration::from_secs_f64(l.timeout_secs.max(0.0)),
            }),
        };
        let reset = match (h.reset_command.split_first(), &h.reset_http) {
            (Some(_), Some(_)) => bail!("{key}: give reset_command or reset_http, not both"),
            (Some((program, args)), None) => Some(ResetAction::Command {
                program: program.clone(),
                args: args.to_vec(),
            }),
            (None, Some(http)) => Some(ResetAction::Http {
                method: http.method.clone(),
                url: http.url.clone(),
            }),
            (None, None) => None,
        };
        hooks = hooks.with(site, SiteHookConfig { login, reset });
    }
    Ok(Some(hooks))
}

/// The shopping administrator account, if the settings give one.
fn shopping_admin(w: &WebarenaSettings) -> Result<Option<ApiCredentials>> {
    let Some(account) = &w.shopping_admin else {
        return Ok(None);
    };
    Ok(Some(ApiCredentials {
        username: account.username.clone(),
        password: account.password.clone().context(
            "benchmarks.webarena.shopping_admin.password is not set (put it in the settings file \
             or in HYPERAGENTS_BENCHMARKS__WEBARENA__SHOPPING_ADMIN__PASSWORD)",
        )?,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use figment::Figment;

    use super::*;

    fn settings(toml: &str, env: &[(&str, &str)]) -> Settings {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hyperagents.toml");
        std::fs::write(&file, toml).unwrap();
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::load(Some(&file), &env, Figment::new()).unwrap()
    }

    const HOOKS: &str = r##"
[benchmarks.webarena.hooks.shopping]
reset_command = ["docker", "restart", "shopping"]
[benchmarks.webarena.hooks.shopping.login]
url = "http://127.0.0.1:7770/customer/account/login/"
username_selector = "#email"
password_selector = "#pass"
submit_selector = "#send2"
username = "emma.lopez@gmail.com"
[benchmarks.webarena.shopping_admin]
username = "admin"
"##;

    #[test]
    fn webarena_hooks_and_the_admin_account_come_from_settings_and_environment() {
        let s = settings(
            HOOKS,
            &[
                (
                    "HYPERAGENTS_BENCHMARKS__WEBARENA__HOOKS__SHOPPING__LOGIN__PASSWORD",
                    "pw-planted-4417",
                ),
                (
                    "HYPERAGENTS_BENCHMARKS__WEBARENA__SHOPPING_ADMIN__PASSWORD",
                    "admin-planted-9931",
                ),
            ],
        );
        let w = &s.benchmarks.webarena;
        let hooks = webarena_hooks(w).unwrap().unwrap();
        let shown = format!("{hooks:?}");
        assert!(
            shown.contains("#send2") && shown.contains("docker"),
            "{shown}"
        );
        assert!(!shown.contains("pw-planted"), "{shown}");
        let admin = shopping_admin(w).unwrap().unwrap();
        assert_eq!(admin.username, "admin");
        // Neither password is ever written back out (`config show`).
        let written = toml::to_string(&s).unwrap();
        assert!(
            !written.contains("planted") && written.contains("#send2"),
            "{written}"
        );
    }

    #[test]
    fn a_missing_password_or_two_resets_are_errors_naming_the_setting() {
        let s = settings(HOOKS, &[]);
        let error = webarena_hooks(&s.benchmarks.webarena)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("HYPERAGENTS_BENCHMARKS__WEBARENA__HOOKS__SHOPPING__LOGIN__PASSWORD"),
            "{error}"
        );
        let error = shopping_admin(&s.benchmarks.webarena)
            .unwrap_err()
            .to_string();
        assert!(error.contains("shopping_admin.password"), "{error}");
        let both = settings(
            "[benchmarks.webarena.hooks.reddit]\nreset_command = [\"true\"]\n\
             [benchmarks.webarena.hooks.reddit.reset_http]\nurl = \"http://127.0.0.1:9/reset\"\n",
            &[],
        );
        let error = webarena_hooks(&both.benchmarks.webarena)
            .unwrap_err()
            .to_string();
        assert!(error.contains("not both"), "{error}");
        let unknown = settings("[benchmarks.webarena.hooks.myspace]\n", &[]);
        assert!(webarena_hooks(&unknown.benchmarks.webarena).is_err());
    }
}
