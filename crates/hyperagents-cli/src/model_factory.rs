//! Turns settings into ready models: resolves a role, a named model or a
//! `PROVIDER:MODEL` spec, builds the provider, wraps it in the response
//! cache, and charges it to a role in a [`ModelRouter`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use hyperagents_llm::ChatModel;
use hyperagents_llm::retry::RetryPolicy;
use hyperagents_llm::router::ModelRouter;
use hyperagents_llm_cache::{CacheMode, CachedModel, ResponseCache};
use hyperagents_llm_embedded::{EmbeddedModel, EngineConfig};
use hyperagents_llm_http::{AnthropicChat, AnthropicConfig, OpenAiChat, OpenAiConfig};
use hyperagents_models::check_local_gguf;
use hyperagents_models::{Catalog, ModelStore};
use secrecy::ExposeSecret;

use crate::settings::{ModelSettings, Settings};

/// Applies the `[http]` settings to either provider's config; both have the
/// same builder methods but no common trait.
macro_rules! with_http_settings {
    ($config:expr, $http:expr) => {{
        let h = $http;
        $config
            .with_request_timeout(Duration::from_secs_f64(h.timeout_secs))
            .with_connect_timeout(Duration::from_secs_f64(h.connect_timeout_secs))
            .with_retry(RetryPolicy {
                max_retries: h.max_retries,
                ..RetryPolicy::default()
            })
            .with_max_concurrency(h.max_concurrency)
            .with_stream(h.stream)
    }};
}

/// Builds models from settings; embedded models are loaded once and shared.
pub struct ModelFactory {
    settings: Settings,
    catalog: Catalog,
    store: ModelStore,
    cache: Option<ResponseCache>,
    cache_mode: CacheMode,
    embedded: HashMap<String, Arc<EmbeddedModel>>,
}

impl ModelFactory {
    pub fn new(settings: Settings) -> Result<Self> {
        let cache_mode: CacheMode = settings
            .cache
            .mode
            .parse()
            .with_context(|| format!("setting cache.mode = {:?}", settings.cache.mode))?;
        let cache =
            match cache_mode {
                CacheMode::Off => None,
                _ => {
                    let path = settings.llm_cache_path();
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent)
                            .with_context(|| format!("creating {}", parent.display()))?;
                    }
                    Some(ResponseCache::open(&path).with_context(|| {
                        format!("opening the response cache {}", path.display())
                    })?)
                }
            };
        hyperagents_llm_embedded::set_thread_budget(settings.embedded.threads);
        Ok(Self {
            store: ModelStore::new(settings.cache_dir()),
            catalog: Catalog::builtin(),
            settings,
            cache,
            cache_mode,
            embedded: HashMap::new(),
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// What `spec` names: a role, a model under `[models]`, or
    /// `PROVIDER:MODEL`.
    pub fn resolve(&self, spec: &str) -> Result<ModelSettings> {
        if let Some(model) = self.settings.roles.get(spec) {
            // A role names a model under [models] or PROVIDER:MODEL.
            if self.settings.models.contains_key(model) {
                return self.named(model);
            }
            if let Some(parsed) = provider_spec(model) {
                return parsed.with_context(|| format!("the model of role `{spec}`"));
            }
            return self.named(model);
        }
        if self.settings.models.contains_key(spec) {
            return self.named(spec);
        }
        if let Some(parsed) = provider_spec(spec) {
            return parsed;
        }
        let roles: Vec<&str> = self.settings.roles.keys().map(String::as_str).collect();
        let models: Vec<&str> = self.settings.models.keys().map(String::as_str).collect();
        bail!(
            "`{spec}` is neither a role ({}), a model in the settings ({}), nor PROVIDER:MODEL",
            roles.join(", "),
            models.join(", ")
        )
    }

    fn named(&self, name: &str) -> Result<ModelSettings> {
        self.settings
            .models
            .get(name)
            .cloned()
            .ok_or_else(|| anyhow!("model `{name}` is not defined under [models]"))
    }

    /// The provider for `spec`, wrapped in the response cache.
    pub async fn build(&mut self, spec: &str) -> Result<Arc<dyn ChatModel>> {
        let resolved = self.resolve(spec)?;
        let provider: Arc<dyn ChatModel> = match resolved {
            ModelSettings::Embedded { name, path, sha256 } => {
                self.embedded_model(&name, path.as_deref(), sha256.as_deref())
                    .await?
            }
            ModelSettings::Openai { model, base_url } => {
                let s = &self.settings;
                let mut config = OpenAiConfig::new(model)
                    .with_base_url(base_url.unwrap_or_else(|| s.openai.base_url.clone()));
                if let Some(key) = &s.openai.api_key {
                    config = config.with_api_key(key.expose_secret());
                }
                let config = with_http_settings!(config, &self.settings.http);
                Arc::new(
                    OpenAiChat::new(config)
                        .context("configuring the OpenAI-compatible provider")?,
                )
            }
            ModelSettings::Anthropic { model, base_url } => {
                let s = &self.settings;
                let mut config = AnthropicConfig::new(model)
                    .with_base_url(base_url.unwrap_or_else(|| s.anthropic.base_url.clone()));
                match &s.anthropic.api_key {
                    Some(key) => config = config.with_api_key(key.expose_secret()),
                    None => bail!(
                        "the Anthropic provider needs ANTHROPIC_API_KEY (or anthropic.api_key in the settings)"
                    ),
                }
                let config = with_http_settings!(config, &self.settings.http);
                Arc::new(AnthropicChat::new(config).context("configuring the Anthropic provider")?)
            }
        };
        Ok(match &self.cache {
            Some(cache) => Arc::new(CachedModel::new(provider, cache.clone(), self.cache_mode)),
            None => provider,
        })
    }

    /// Loads a pulled catalog model once per process.
    /// A catalog model by `name`, or the GGUF file at `path` (named `name`, else its file
    /// name): its header and pin checked, then loaded once in a child process (llama.cpp
    /// aborts the loading process on some malformed files) before it is loaded here.
    pub async fn embedded_model(
        &mut self,
        name: &str,
        path: Option<&Path>,
        sha256: Option<&str>,
    ) -> Result<Arc<EmbeddedModel>> {
        let Some(path) = path else {
            return self.embedded(name).await;
        };
        let label = if name.is_empty() {
            path.file_name().map_or_else(
                || path.display().to_string(),
                |f| f.to_string_lossy().into_owned(),
            )
        } else {
            name.to_string()
        };
        let key = format!("file:{}", path.display());
        if let Some(model) = self.embedded.get(&key) {
            return Ok(model.clone());
        }
        let checked = {
            let path = path.to_path_buf();
            let pin = sha256.map(str::to_owned);
            tokio::task::spawn_blocking(move || check_local_gguf(&path, pin.as_deref()))
                .await
                .context("checking the model file")??
        };
        probe_load(path).await?;
        let e = &self.settings.embedded;
        let config = EngineConfig {
            n_ctx: e.n_ctx,
            n_seq: e.n_seq,
            n_batch: e.n_batch,
        };
        let model = EmbeddedModel::load(&label, path, Some(checked.sha256), config)
            .await
            .with_context(|| format!("loading the embedded model {}", path.display()))?;
        let model = Arc::new(model);
        self.embedded.insert(key, model.clone());
        Ok(model)
    }

    pub async fn embedded(&mut self, name: &str) -> Result<Arc<EmbeddedModel>> {
        if let Some(model) = self.embedded.get(name) {
            return Ok(model.clone());
        }
        let spec = self
            .catalog
            .get(name)
            .with_context(|| "see `hyperagents models list`")?;
        let path: PathBuf = self.store.installed_path(spec).with_context(|| {
            format!("model `{name}` is not pulled: run `hyperagents models pull {name}`")
        })?;
        let e = &self.settings.embedded;
        let config = EngineConfig {
            n_ctx: e.n_ctx,
            n_seq: e.n_seq,
            n_batch: e.n_batch,
        };
        let model = EmbeddedModel::load(name, &path, Some(spec.sha256.to_string()), config)
            .await
            .with_context(|| format!("loading embedded model `{name}`"))?;
        let model = Arc::new(model);
        self.embedded.insert(name.to_string(), model.clone());
        Ok(model)
    }

    /// A router charged under the settings' prices, ready for [`Self::bind`].
    pub fn router(&self) -> ModelRouter {
        ModelRouter::new(self.settings.prices.clone())
    }

    /// Binds the model `spec` names to `role` in `router`, under the role's
    /// budget from the settings.
    pub async fn bind(&mut self, router: &mut ModelRouter, role: &str, spec: &str) -> Result<()> {
        let model = self
            .build(spec)
            .await
            .with_context(|| format!("binding role `{role}` to `{spec}`"))?;
        let budget = self.settings.budgets.get(role).copied().unwrap_or_default();
        router.bind(role, model, budget);
        Ok(())
    }
}

/// `PROVIDER:MODEL` as model settings; `None` when `spec` has no provider.
fn provider_spec(spec: &str) -> Option<Result<ModelSettings>> {
    ModelSettings::from_provider_spec(spec).map(|parsed| parsed.map_err(|why| anyhow!(why)))
}

/// Loads the GGUF file at `path` in a child process (`hyperagents models probe`), so a file
/// that makes llama.cpp abort fails with a message instead of taking this process down.
async fn probe_load(path: &Path) -> Result<()> {
    let exe = std::env::current_exe().context("finding this executable to probe the model")?;
    let mut command = tokio::process::Command::new(exe);
    command
        .args(["-q", "models", "probe"])
        .arg(path)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(std::time::Duration::from_secs(300), command.output())
        .await
        .map_err(|_| anyhow!("loading {} did not finish in 300 s", path.display()))?
        .with_context(|| format!("probing {}", path.display()))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(6).collect();
    let how = match output.status.code() {
        Some(code) => format!("exit code {code}"),
        None => "a crash (killed by a signal)".to_string(),
    };
    bail!(
        "{} cannot be loaded as a model: loading it ended in {how}: {}",
        path.display(),
        tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use figment::Figment;

    use super::*;

    #[test]
    fn a_role_bound_to_provider_and_model_resolves_like_the_flag() {
        let env: BTreeMap<String, String> = [(
            "HYPERAGENTS_ROLES__TASK".to_string(),
            "openai:gpt-4o-mini".to_string(),
        )]
        .into();
        let settings = Settings::load(None, &env, Figment::new()).unwrap();
        let factory = ModelFactory::new(settings).unwrap();
        let expected = ModelSettings::Openai {
            model: "gpt-4o-mini".into(),
            base_url: None,
        };
        assert_eq!(factory.resolve("task").unwrap(), expected);
        assert_eq!(factory.resolve("openai:gpt-4o-mini").unwrap(), expected);
        let error = format!("{:#}", factory.resolve("gemini:x").unwrap_err());
        assert!(error.contains("unknown provider `gemini`"), "{error}");
    }
}
