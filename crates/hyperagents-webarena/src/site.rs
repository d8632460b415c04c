//! The WebArena sites and where the user hosts them.
//!
//! Task files name sites (`shopping_admin`) and write URLs with placeholders
//! (`__SHOPPING_ADMIN__/sales/order/`). A [`SiteConfig`] maps each site to
//! the base URL of the user's deployment, from code, a config file or
//! environment variables (`WEBARENA_SHOPPING_URL`, …; see
//! [`Site::env_var`]), and fills the placeholders.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use hyperagents_domain::DomainError;
use serde::Deserialize;

/// One of WebArena's self-hosted web applications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Site {
    Shopping,
    ShoppingAdmin,
    Reddit,
    Gitlab,
    Wikipedia,
    Map,
    Homepage,
}

impl Site {
    /// Every site, in a stable order.
    pub const ALL: [Site; 7] = [
        Site::Shopping,
        Site::ShoppingAdmin,
        Site::Reddit,
        Site::Gitlab,
        Site::Wikipedia,
        Site::Map,
        Site::Homepage,
    ];

    /// The name task files use in `sites` (`shopping_admin`).
    pub fn name(self) -> &'static str {
        match self {
            Site::Shopping => "shopping",
            Site::ShoppingAdmin => "shopping_admin",
            Site::Reddit => "reddit",
            Site::Gitlab => "gitlab",
            Site::Wikipedia => "wikipedia",
            Site::Map => "map",
            Site::Homepage => "homepage",
        }
    }

    /// The placeholder task files use in URLs (`__SHOPPING_ADMIN__`).
    pub fn placeholder(self) -> &'static str {
        match self {
            Site::Shopping => "__SHOPPING__",
            Site::ShoppingAdmin => "__SHOPPING_ADMIN__",
            Site::Reddit => "__REDDIT__",
            Site::Gitlab => "__GITLAB__",
            Site::Wikipedia => "__WIKIPEDIA__",
            Site::Map => "__MAP__",
            Site::Homepage => "__HOMEPAGE__",
        }
    }

    /// The environment variable [`SiteConfig::from_env`] reads for this
    /// site's base URL: `WEBARENA_SHOPPING_URL`, `WEBARENA_SHOPPING_ADMIN_URL`,
    /// `WEBARENA_REDDIT_URL`, `WEBARENA_GITLAB_URL`, `WEBARENA_WIKIPEDIA_URL`,
    /// `WEBARENA_MAP_URL`, `WEBARENA_HOMEPAGE_URL`.
    pub fn env_var(self) -> &'static str {
        match self {
            Site::Shopping => "WEBARENA_SHOPPING_URL",
            Site::ShoppingAdmin => "WEBARENA_SHOPPING_ADMIN_URL",
            Site::Reddit => "WEBARENA_REDDIT_URL",
            Site::Gitlab => "WEBARENA_GITLAB_URL",
            Site::Wikipedia => "WEBARENA_WIKIPEDIA_URL",
            Site::Map => "WEBARENA_MAP_URL",
            Site::Homepage => "WEBARENA_HOMEPAGE_URL",
        }
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Site {
    type Err = String;

    /// Accepts a site name (`shopping_admin`) or a placeholder
    /// (`__SHOPPING_ADMIN__`), in any case.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bare = text.trim().trim_matches('_').to_ascii_lowercase();
        Site::ALL
            .into_iter()
            .find(|site| site.name() == bare)
            .ok_or_else(|| format!("unknown WebArena site `{text}`"))
    }
}

impl<'de> Deserialize<'de> for Site {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Base URLs of the sites the user hosts. Sites left out make the tasks
/// that need them [`DomainError::Unsupported`].
///
/// Deserializes from a map whose keys are site names or placeholders:
/// `{ shopping = "http://localhost:7770", "__GITLAB__" = "http://localhost:8023" }`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteConfig {
    base_urls: BTreeMap<Site, String>,
}

impl SiteConfig {
    /// A configuration with no site.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `site`'s base URL (a trailing `/` is dropped, as WebArena's own
    /// URLs carry none).
    pub fn with(mut self, site: Site, base_url: impl Into<String>) -> Self {
        self.set(site, base_url);
        self
    }

    /// Sets `site`'s base URL.
    pub fn set(&mut self, site: Site, base_url: impl Into<String>) {
        let base_url = base_url.into();
        self.base_urls
            .insert(site, base_url.trim().trim_end_matches('/').to_string());
    }

    /// Reads every site's [`Site::env_var`] from the process environment;
    /// unset or empty variables leave the site unconfigured.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`SiteConfig::from_env`] with a custom lookup (for tests and
    /// layered settings).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let mut config = Self::new();
        for site in Site::ALL {
            if let Some(url) = lookup(site.env_var()).filter(|url| !url.trim().is_empty()) {
                config.set(site, url);
            }
        }
        config
    }

    /// The base URL of `site`, if configured.
    pub fn base_url(&self, site: Site) -> Option<&str> {
        self.base_urls.get(&site).map(String::as_str)
    }

    /// The configured sites.
    pub fn sites(&self) -> impl Iterator<Item = Site> + '_ {
        self.base_urls.keys().copied()
    }

    /// Replaces every site placeholder in `text` by its base URL. Fails
    /// with [`DomainError::Unsupported`] naming the first placeholder whose
    /// site is not configured.
    pub fn fill(&self, text: &str) -> Result<String, DomainError> {
        let mut filled = text.to_string();
        for site in Site::ALL {
            if !filled.contains(site.placeholder()) {
                continue;
            }
            let base = self.base_url(site).ok_or_else(|| missing_site(site))?;
            filled = filled.replace(site.placeholder(), base);
        }
        Ok(filled)
    }

    /// The placeholders' sites that `text` mentions.
    pub fn sites_mentioned(text: &str) -> impl Iterator<Item = Site> + '_ {
        Site::ALL
            .into_iter()
            .filter(move |site| text.contains(site.placeholder()))
    }

    /// webarena-verified's "derendering": in a string containing `http`,
    /// replaces the base URL of the first of `sites` (longest base URL
    /// first) that occurs in it by the site's placeholder. Returns the
    /// string unchanged when a site is unconfigured or none matches, as the
    /// package does.
    pub(crate) fn derender(&self, sites: &[Site], text: &str) -> String {
        let mut bases = Vec::new();
        for site in sites {
            match self.base_url(*site) {
                Some(base) => bases.push((*site, base)),
                None => return text.to_string(),
            }
        }
        // Python's sort is stable; so is this one.
        bases.sort_by_key(|(_, base)| std::cmp::Reverse(base.len()));
        for (site, base) in bases {
            if text.contains(base) {
                return text.replace(base, site.placeholder());
            }
        }
        text.to_string()
    }

    /// The origin (`scheme://host[:port]`) of `site`'s base URL.
    pub fn origin(&self, site: Site) -> Option<String> {
        self.base_url(site).map(origin_of)
    }
}

impl<'de> Deserialize<'de> for SiteConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = BTreeMap::<Site, String>::deserialize(deserializer)?;
        let mut config = SiteConfig::new();
        for (site, url) in raw {
            config.set(site, url);
        }
        Ok(config)
    }
}

/// The error for a task that needs a site the user has not configured.
pub(crate) fn missing_site(site: Site) -> DomainError {
    DomainError::Unsupported(format!(
        "WebArena site `{}` is not configured (set {} or add it to the site config)",
        site.name(),
        site.env_var()
    ))
}

/// `scheme://authority` of a URL; the whole text when it has no `//`.
pub(crate) fn origin_of(url: &str) -> String {
    match url.find("://") {
        Some(scheme_end) => {
            let authority_start = scheme_end + 3;
            let authority_end = url[authority_start..]
                .find(['/', '?', '#'])
                .map_or(url.len(), |offset| authority_start + offset);
            url[..authority_end].to_string()
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sites_parse_from_names_and_placeholders() {
        assert_eq!("shopping_admin".parse(), Ok(Site::ShoppingAdmin));
        assert_eq!("__SHOPPING_ADMIN__".parse(), Ok(Site::ShoppingAdmin));
        assert_eq!("__map__".parse(), Ok(Site::Map));
        assert!("shop".parse::<Site>().is_err());
    }

    #[test]
    fn fill_replaces_placeholders_and_names_missing_sites() {
        let config = SiteConfig::new()
            .with(Site::Shopping, "http://127.0.0.1:7770/")
            .with(Site::ShoppingAdmin, "http://127.0.0.1:7780/admin");
        assert_eq!(
            config
                .fill("__SHOPPING_ADMIN__/x |AND| __SHOPPING__/y")
                .unwrap(),
            "http://127.0.0.1:7780/admin/x |AND| http://127.0.0.1:7770/y"
        );
        let error = config.fill("__GITLAB__/a").unwrap_err().to_string();
        assert!(error.contains("`gitlab`") && error.contains("WEBARENA_GITLAB_URL"));
    }

    #[test]
    fn env_lookup_reads_documented_names() {
        let config = SiteConfig::from_lookup(|name| match name {
            "WEBARENA_REDDIT_URL" => Some("http://reddit.test:9999/".into()),
            "WEBARENA_MAP_URL" => Some("  ".into()),
            _ => None,
        });
        assert_eq!(
            config.base_url(Site::Reddit),
            Some("http://reddit.test:9999")
        );
        assert_eq!(config.base_url(Site::Map), None);
        assert_eq!(
            config.origin(Site::Reddit).unwrap(),
            "http://reddit.test:9999"
        );
    }

    #[test]
    fn deserializes_from_names_or_placeholders() {
        let config: SiteConfig =
            serde_json::from_str(r#"{"gitlab": "http://g:1/", "__MAP__": "http://m:2"}"#).unwrap();
        assert_eq!(config.base_url(Site::Gitlab), Some("http://g:1"));
        assert_eq!(config.base_url(Site::Map), Some("http://m:2"));
    }

    #[test]
    fn derender_prefers_the_longest_base_url() {
        let config = SiteConfig::new()
            .with(Site::Shopping, "http://h:7770")
            .with(Site::ShoppingAdmin, "http://h:7770/admin");
        assert_eq!(
            config.derender(
                &[Site::Shopping, Site::ShoppingAdmin],
                "see http://h:7770/admin/x"
            ),
            "see __SHOPPING_ADMIN__/x"
        );
        assert_eq!(
            config.derender(&[Site::Gitlab], "http://h:7770"),
            "http://h:7770"
        );
    }
}
