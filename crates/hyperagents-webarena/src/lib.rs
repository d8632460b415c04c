//! WebArena: its published task files and its evaluators.
//!
//! The sites (a shop, its admin panel, a Reddit clone, GitLab, Wikipedia,
//! a map, a homepage) are Docker images the user hosts; [`SiteConfig`]
//! says where. A suite is loaded from the webarena-verified package's
//! `assets/dataset` directory:
//!
//! ```no_run
//! # use hyperagents_webarena::*;
//! # fn demo(dir: &std::path::Path) -> Result<(), hyperagents_domain::DomainError> {
//! let suite = WebArenaSuite::load(dir, Dataset::Original, SiteConfig::from_env())?;
//! let task = suite.task(27)?; // Unsupported if its sites are not configured
//! println!("{} — start at {}", task.intent(), task.start_url());
//! # Ok(()) }
//! ```
//!
//! After the episode the host calls [`evaluate()`] with the agent's answer,
//! a page it controls (left where the agent finished) and a judge.
//! [`WebArenaDomain`] does all of it in real Chromium: a
//! [`hyperagents_domain::Domain`] whose episodes are web environments.
//!
//! Module map: [`site`] (sites, base URLs, placeholders), [`task`] (the
//! two file formats), [`suite`] (loading, resolving), [`mod@evaluate`] (the
//! combined evaluator), `original` (WebArena's `string_match`,
//! `url_match`, `program_html`), `verified` (webarena-verified's agent
//! response evaluator), [`helpers`] (the `func:` helpers), [`page`] (the
//! page the evaluator drives), [`hooks`] (login and reset), [`domain`]
//! (the suite as a domain over `hyperagents-browser`).

pub mod domain;
pub mod evaluate;
pub mod helpers;
pub mod hooks;
mod original;
pub mod page;
mod py;
pub mod site;
pub mod suite;
pub mod task;
mod tokenize;
mod verified;

pub use domain::{BrowserSource, WebArenaDomain, WebArenaDomainConfig};
pub use evaluate::{ApiCredentials, EvalOptions, ensure_evaluable, evaluate};
pub use hooks::{ConfiguredSiteHooks, LoginForm, ResetAction, SiteHookConfig, SiteHooks};
pub use original::{clean_answer, exact_match, must_include, must_include_any, url_match};
pub use page::{EvalPage, PageError};
pub use site::{Site, SiteConfig};
pub use suite::{ResolvedTask, WebArenaSuite};
pub use task::{
    AgentResponseCheck, Dataset, EvalType, ExpectedResponse, FuzzyReference, OriginalEval,
    ProgramHtmlCheck, ReferenceAnswer, RequiredContents, ResponseStatus, TaskEval, TaskType,
    VerifiedEvaluator, WebArenaTask,
};
pub use tokenize::word_tokenize;

/// The webarena-verified value types (`results_schema` types and formats)
/// this crate implements; tasks using others are unsupported.
pub fn verified_supported_types() -> &'static [&'static str] {
    verified::SUPPORTED_TYPES
}
