//! The `web_search` tool's provider interface. No provider ships with this crate (runs are
//! offline); a caller plugs one in through [`crate::GaiaConfig::web_search`]. Without one, the
//! tool answers [`NO_WEB_SEARCH_PROVIDER`].

use async_trait::async_trait;
use hyperagents_domain::DomainError;

/// What the tool says when no provider is configured.
pub const NO_WEB_SEARCH_PROVIDER: &str = "no web search provider configured: web search is not \
     available in this run; answer from the question, the attached file and the other tools";

/// One web search result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSearchHit {
    pub title: String,
    pub url: String,
    pub snippet: String,
}

/// A web search provider.
#[async_trait]
pub trait WebSearch: Send + Sync {
    /// A short name for logs (`searxng`, `fixture`).
    fn name(&self) -> &str;
    /// At most `limit` results for `query`, best first.
    async fn search(&self, query: &str, limit: usize) -> Result<Vec<WebSearchHit>, DomainError>;
}

/// Renders hits as a numbered list for a model.
pub(crate) fn render_hits(query: &str, hits: &[WebSearchHit]) -> String {
    if hits.is_empty() {
        return format!("no web results for `{query}`");
    }
    let mut out = String::new();
    for (i, hit) in hits.iter().enumerate() {
        out.push_str(&format!(
            "{}. {}\n   {}\n   {}\n",
            i + 1,
            hit.title.trim(),
            hit.url.trim(),
            hit.snippet.trim()
        ));
    }
    out
}
