//! Logging in to sites and resetting them, around episodes.
//!
//! WebArena logs in ahead of time (saved browser storage states) and
//! resets a site by restarting its container. Here both are per-site hooks
//! the environment calls: [`SiteHooks::login`] before a task that requires
//! login, on a fresh host-controlled page; [`SiteHooks::reset`] before a
//! task that requires a reset. [`ConfiguredSiteHooks`] is the default:
//!
//! - login fills a form: it opens [`LoginForm::url`], sets the username and
//!   password fields found by CSS selector (with `input`/`change` events so
//!   that script-driven forms notice), clicks the submit selector, and
//!   succeeds once the password field is gone, failing after
//!   [`LoginForm::timeout`].
//! - reset runs a command (program and arguments, no shell unless you name
//!   one: `ResetAction::Command { program: "sh", args: ["-c", "…"] }`) that
//!   must exit 0, or sends an HTTP request that must answer 2xx.
//!
//! A site with no hook configured is a no-op for login and an error for
//! reset (a task asking for a reset must not run on a dirty site).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use hyperagents_domain::DomainError;
use secrecy::{ExposeSecret, SecretString};

use crate::page::EvalPage;
use crate::site::Site;

const LOGIN_POLL: Duration = Duration::from_millis(100);

/// Per-site login and reset.
#[async_trait]
pub trait SiteHooks: Send + Sync {
    /// Logs `page`'s browser in to `site`.
    async fn login(&self, site: Site, page: &mut dyn EvalPage) -> Result<(), DomainError>;
    /// Restores `site` to its initial state.
    async fn reset(&self, site: Site) -> Result<(), DomainError>;
}

/// A login form to fill.
#[derive(Debug, Clone)]
pub struct LoginForm {
    /// The page holding the form.
    pub url: String,
    pub username_selector: String,
    pub password_selector: String,
    pub submit_selector: String,
    pub username: String,
    pub password: SecretString,
    /// How long the password field may stay on the page after submitting
    /// before the login counts as failed.
    pub timeout: Duration,
}

/// How to reset a site.
#[derive(Debug, Clone)]
pub enum ResetAction {
    /// Runs `program` with `args`; it must exit with status 0.
    Command { program: String, args: Vec<String> },
    /// Sends `method` to `url`; the answer must be 2xx.
    Http { method: String, url: String },
}

/// The hooks of one site.
#[derive(Debug, Clone, Default)]
pub struct SiteHookConfig {
    pub login: Option<LoginForm>,
    pub reset: Option<ResetAction>,
}

/// [`SiteHooks`] from configuration: a login form and a reset action per
/// site.
#[derive(Debug, Clone)]
pub struct ConfiguredSiteHooks {
    sites: BTreeMap<Site, SiteHookConfig>,
    /// Time limit of a reset command or request.
    pub reset_timeout: Duration,
}

impl Default for ConfiguredSiteHooks {
    fn default() -> Self {
        Self {
            sites: BTreeMap::new(),
            reset_timeout: Duration::from_secs(600),
        }
    }
}

impl ConfiguredSiteHooks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `site`'s hooks.
    pub fn with(mut self, site: Site, hooks: SiteHookConfig) -> Self {
        self.sites.insert(site, hooks);
        self
    }
}

#[async_trait]
impl SiteHooks for ConfiguredSiteHooks {
    async fn login(&self, site: Site, page: &mut dyn EvalPage) -> Result<(), DomainError> {
        let Some(form) = self.sites.get(&site).and_then(|hooks| hooks.login.as_ref()) else {
            return Ok(());
        };
        let failed = |what: String| DomainError::Environment(format!("login to {site}: {what}"));
        page.goto(&form.url)
            .await
            .map_err(|error| failed(error.to_string()))?;
        let literal = |text: &str| serde_json::to_string(text).unwrap_or_default();
        let fill = format!(
            "(() => {{ \
               const fill = (selector, value) => {{ \
                 const field = document.querySelector(selector); \
                 if (!field) {{ throw new Error('no field ' + selector); }} \
                 field.focus(); field.value = value; \
                 field.dispatchEvent(new Event('input', {{ bubbles: true }})); \
                 field.dispatchEvent(new Event('change', {{ bubbles: true }})); \
               }}; \
               fill({user_selector}, {user}); fill({password_selector}, {password}); \
               const submit = document.querySelector({submit_selector}); \
               if (!submit) {{ throw new Error('no submit ' + {submit_selector}); }} \
               setTimeout(() => submit.click(), 0); \
               return true; }})()",
            user_selector = literal(&form.username_selector),
            user = literal(&form.username),
            password_selector = literal(&form.password_selector),
            password = literal(form.password.expose_secret()),
            submit_selector = literal(&form.submit_selector),
        );
        // The script holds the password: report its failure without it.
        page.eval_js(&fill).await.map_err(|error| match error {
            crate::PageError::Script(_) => failed("the login form's fields were not found".into()),
            crate::PageError::Browser(message) => failed(message),
        })?;
        // Success is the form gone from a fully loaded page, seen on two
        // polls in a row: mid-navigation the next document can be empty for
        // a moment (the form "gone") before a failed login shows the form
        // again. A check that errors while the page loads means "not yet".
        let form_gone = format!(
            "document.readyState === 'complete' && document.querySelector({}) === null",
            literal(&form.password_selector)
        );
        let deadline = tokio::time::Instant::now() + form.timeout;
        let mut gone_before = false;
        loop {
            tokio::time::sleep(LOGIN_POLL).await;
            let gone = matches!(
                page.eval_js(&form_gone).await,
                Ok(serde_json::Value::Bool(true))
            );
            if gone && gone_before {
                tracing::debug!(%site, "logged in");
                return Ok(());
            }
            gone_before = gone;
            if tokio::time::Instant::now() >= deadline {
                return Err(failed("still on the login form after submitting".into()));
            }
        }
    }

    async fn reset(&self, site: Site) -> Result<(), DomainError> {
        let Some(action) = self.sites.get(&site).and_then(|hooks| hooks.reset.as_ref()) else {
            return Err(DomainError::Environment(format!(
                "no reset configured for site {site}"
            )));
        };
        let failed = |what: String| DomainError::Environment(format!("reset of {site}: {what}"));
        match action {
            ResetAction::Command { program, args } => {
                let run = tokio::process::Command::new(program)
                    .args(args)
                    .kill_on_drop(true)
                    .output();
                let output = tokio::time::timeout(self.reset_timeout, run)
                    .await
                    .map_err(|_| failed(format!("`{program}` timed out")))?
                    .map_err(|error| failed(format!("cannot run `{program}`: {error}")))?;
                if !output.status.success() {
                    let stderr = String::from_utf8_lossy(&output.stderr);
                    return Err(failed(format!(
                        "`{program}` exited with {}: {}",
                        output.status,
                        stderr.trim()
                    )));
                }
            }
            ResetAction::Http { method, url } => {
                let method = reqwest::Method::from_bytes(method.as_bytes())
                    .map_err(|_| failed(format!("bad HTTP method `{method}`")))?;
                let client = reqwest::Client::builder()
                    .timeout(self.reset_timeout)
                    .build()
                    .map_err(|error| failed(error.to_string()))?;
                let response = client
                    .request(method, url)
                    .send()
                    .await
                    .map_err(|error| failed(format!("{url}: {error}")))?;
                if !response.status().is_success() {
                    return Err(failed(format!("{url} answered {}", response.status())));
                }
            }
        }
        tracing::info!(%site, "site reset");
        Ok(())
    }
}
