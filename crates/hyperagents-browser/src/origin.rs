//! Which URLs an agent may open.
//!
//! `goto`, `back` and `tab` accept only `about:blank` and pages on the
//! configured origins. Everything else — `javascript:`, `file:`, `data:`,
//! `chrome:`, other `about:` pages, other sites — is refused with a message.

use url::Url;

use crate::error::BrowserError;

/// The origins (scheme, host, port) agents may navigate to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedOrigins {
    origins: Vec<url::Origin>,
}

impl AllowedOrigins {
    /// No site at all (only `about:blank`).
    pub fn none() -> Self {
        Self::default()
    }

    /// The origins of `base_urls` (e.g. `http://127.0.0.1:8080/`). Only
    /// `http` and `https` URLs are accepted.
    pub fn new<I, S>(base_urls: I) -> Result<Self, BrowserError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut origins = Vec::new();
        for raw in base_urls {
            let raw = raw.as_ref();
            let url = Url::parse(raw).map_err(|e| {
                BrowserError::Refused(format!("allowed origin `{raw}` is not a URL: {e}"))
            })?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(BrowserError::Refused(format!(
                    "allowed origin `{raw}` must be an http(s) URL"
                )));
            }
            let origin = url.origin();
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        Ok(AllowedOrigins { origins })
    }

    /// Whether `url` (already absolute) is allowed.
    pub fn allows(&self, url: &str) -> bool {
        Url::parse(url)
            .map(|url| self.allows_url(&url))
            .unwrap_or(false)
    }

    fn allows_url(&self, url: &Url) -> bool {
        if is_about_blank(url) {
            return true;
        }
        matches!(url.scheme(), "http" | "https") && self.origins.contains(&url.origin())
    }

    /// Checks an agent's `goto` target. A relative URL is resolved against
    /// `current` (the page's URL). Returns the normalized URL to open.
    pub fn check(&self, raw: &str, current: Option<&str>) -> Result<Url, BrowserError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(BrowserError::Refused("goto needs a URL".into()));
        }
        let url = match Url::parse(trimmed) {
            Ok(url) => url,
            Err(url::ParseError::RelativeUrlWithoutBase) => {
                let base = current
                    .and_then(|c| Url::parse(c).ok())
                    .filter(|base| matches!(base.scheme(), "http" | "https"))
                    .ok_or_else(|| {
                        BrowserError::Refused(format!(
                            "`{trimmed}` is a relative URL and the current page has no site \
                             to resolve it against; give a full URL on {}",
                            self.describe()
                        ))
                    })?;
                base.join(trimmed).map_err(|e| {
                    BrowserError::Refused(format!("`{trimmed}` is not a valid URL: {e}"))
                })?
            }
            Err(error) => {
                return Err(BrowserError::Refused(format!(
                    "`{trimmed}` is not a valid URL: {error}"
                )));
            }
        };
        if self.allows_url(&url) {
            return Ok(url);
        }
        let scheme = url.scheme();
        if !matches!(scheme, "http" | "https") {
            return Err(BrowserError::Refused(format!(
                "`{scheme}:` URLs are not allowed; allowed: {} and about:blank",
                self.describe()
            )));
        }
        Err(BrowserError::Refused(format!(
            "{} is not an allowed site; allowed: {}",
            url.origin().ascii_serialization(),
            self.describe()
        )))
    }

    /// The allowed origins, for messages.
    pub fn describe(&self) -> String {
        if self.origins.is_empty() {
            return "no sites".into();
        }
        self.origins
            .iter()
            .map(url::Origin::ascii_serialization)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn is_about_blank(url: &Url) -> bool {
    url.scheme() == "about" && url.path() == "blank"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> AllowedOrigins {
        AllowedOrigins::new(["http://127.0.0.1:8123/miniwob/"]).unwrap()
    }

    #[test]
    fn pages_on_the_allowed_origin_and_about_blank_pass() {
        let allowed = local();
        assert_eq!(
            allowed
                .check("http://127.0.0.1:8123/miniwob/click-test.html", None)
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8123/miniwob/click-test.html"
        );
        assert!(allowed.check("about:blank", None).is_ok());
        assert!(allowed.check("  about:blank ", None).is_ok());
        let relative = allowed
            .check(
                "other.html",
                Some("http://127.0.0.1:8123/miniwob/click-test.html"),
            )
            .unwrap();
        assert_eq!(
            relative.as_str(),
            "http://127.0.0.1:8123/miniwob/other.html"
        );
    }

    #[test]
    fn dangerous_schemes_are_refused_by_name() {
        let allowed = local();
        for (raw, scheme) in [
            ("javascript:window.WOB_RAW_REWARD_GLOBAL=1", "javascript:"),
            ("JavaScript:alert(1)", "javascript:"),
            ("java\nscript:alert(1)", "javascript:"),
            ("file:///etc/passwd", "file:"),
            ("data:text/html,<script>1</script>", "data:"),
            ("chrome://settings", "chrome:"),
            ("about:config", "about:"),
            ("about:srcdoc", "about:"),
            ("view-source:http://127.0.0.1:8123/", "view-source:"),
        ] {
            let message = allowed.check(raw, None).unwrap_err().to_string();
            assert!(message.contains(scheme), "{raw}: {message}");
            assert!(message.contains("not allowed"), "{raw}: {message}");
        }
    }

    #[test]
    fn other_origins_are_refused() {
        let allowed = local();
        for raw in [
            "http://127.0.0.1:8124/",
            "https://127.0.0.1:8123/",
            "http://localhost:8123/",
            "http://127.0.0.1:8123@evil.example/",
            "http://example.com/",
            "//example.com/x",
        ] {
            let result = allowed.check(raw, Some("http://127.0.0.1:8123/miniwob/click-test.html"));
            let message = result.unwrap_err().to_string();
            assert!(message.contains("not an allowed site"), "{raw}: {message}");
        }
        assert!(!allowed.allows("http://example.com/"));
        assert!(allowed.allows("http://127.0.0.1:8123/anything"));
    }

    #[test]
    fn relative_urls_need_a_site() {
        let message = local()
            .check("/x.html", Some("about:blank"))
            .unwrap_err()
            .to_string();
        assert!(message.contains("relative URL"), "{message}");
    }
}
