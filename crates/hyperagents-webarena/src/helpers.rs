//! WebArena's `func:` helpers: Python calls inside `program_html` urls and
//! locators (`func:reddit_get_post_url('__last_url__')`), reimplemented.
//!
//! Implemented, with WebArena's behaviour:
//! - `reddit_get_post_url(url)`: a post or comment URL cut back to the post.
//! - `gitlab_get_project_memeber_role(__page__, account)`: the role shown on
//!   a project's members page for `@account`, or empty text.
//! - `shopping_get_latest_order_url()`, `shopping_get_sku_latest_review_author(sku)`,
//!   `shopping_get_sku_latest_review_rating(sku)`: Magento REST calls on the
//!   shopping site with an admin token; they need
//!   [`crate::EvalOptions::shopping_admin_api`].
//!
//! Any other helper makes its task [`DomainError::Unsupported`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, LazyLock};

use hyperagents_domain::DomainError;
use regex::Regex;
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::evaluate::EvalOptions;
use crate::page::{EvalPage, PageError};
use crate::py;
use crate::site::{Site, SiteConfig, missing_site};
use crate::task::{TaskEval, WebArenaTask};

/// The helpers this crate implements.
pub const IMPLEMENTED: &[&str] = &[
    "reddit_get_post_url",
    "gitlab_get_project_memeber_role",
    "shopping_get_latest_order_url",
    "shopping_get_sku_latest_review_author",
    "shopping_get_sku_latest_review_rating",
];

/// Helpers that call the shopping site's REST API as its administrator.
const NEEDS_SHOPPING_API: &[&str] = &[
    "shopping_get_latest_order_url",
    "shopping_get_sku_latest_review_author",
    "shopping_get_sku_latest_review_rating",
];

static FUNC_NAME: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::unwrap_used)] // a constant pattern
    let regex = Regex::new(r"func:\s*([A-Za-z_][A-Za-z0-9_]*)").unwrap();
    regex
});

/// Tasks per helper name over `tasks`.
pub(crate) fn usage(tasks: &[Arc<WebArenaTask>]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for task in tasks {
        for name in task_helpers(task) {
            *counts.entry(name).or_insert(0) += 1;
        }
    }
    counts
}

/// The helper names a task's `program_html` items call.
pub(crate) fn task_helpers(task: &WebArenaTask) -> BTreeSet<String> {
    let TaskEval::Original(eval) = &task.eval else {
        return BTreeSet::new();
    };
    eval.program_html
        .iter()
        .flat_map(|check| [check.url.as_str(), check.locator.as_str()])
        .flat_map(|text| FUNC_NAME.captures_iter(text))
        .map(|captures| captures[1].to_string())
        .collect()
}

/// Why a helper cannot run with these options, if it cannot.
pub(crate) fn unsupported_reason(name: &str, options: &EvalOptions) -> Option<String> {
    if !IMPLEMENTED.contains(&name) {
        return Some(format!("WebArena helper `func:{name}` is not implemented"));
    }
    if NEEDS_SHOPPING_API.contains(&name) && options.shopping_admin_api.is_none() {
        return Some(format!(
            "WebArena helper `func:{name}` needs the shopping site's admin API credentials \
             (EvalOptions::shopping_admin_api)"
        ));
    }
    None
}

/// Runs the helper call in `expression` (the text after `func:`), Python
/// style: `name(arg, …)` with `__page__` and quoted strings as arguments.
pub(crate) async fn run(
    expression: &str,
    page: &mut dyn EvalPage,
    sites: &SiteConfig,
    options: &EvalOptions,
) -> Result<String, DomainError> {
    let call = parse_call(expression).map_err(|message| {
        DomainError::Unsupported(format!(
            "cannot read helper call `func:{expression}`: {message}"
        ))
    })?;
    if let Some(reason) = unsupported_reason(&call.name, options) {
        return Err(DomainError::Unsupported(reason));
    }
    let string_arg = |index: usize| -> Result<&str, DomainError> {
        match call.args.get(index) {
            Some(Argument::Text(text)) => Ok(text),
            _ => Err(DomainError::Unsupported(format!(
                "helper `{}` expects a string as argument {}",
                call.name,
                index + 1
            ))),
        }
    };
    match call.name.as_str() {
        "reddit_get_post_url" => Ok(reddit_get_post_url(string_arg(0)?)),
        "gitlab_get_project_memeber_role" => {
            if call.args.first() != Some(&Argument::Page) {
                return Err(DomainError::Unsupported(
                    "gitlab_get_project_memeber_role expects __page__ first".into(),
                ));
            }
            gitlab_get_project_member_role(page, string_arg(1)?).await
        }
        "shopping_get_latest_order_url" => shopping_latest_order_url(sites, options).await,
        "shopping_get_sku_latest_review_author" => {
            let reviews = shopping_reviews(sites, options, string_arg(0)?).await?;
            Ok(match reviews.last() {
                Some(review) => review.get("nickname").map(py::str_of).unwrap_or_default(),
                None => String::new(),
            })
        }
        "shopping_get_sku_latest_review_rating" => {
            let reviews = shopping_reviews(sites, options, string_arg(0)?).await?;
            let (Some(first), Some(last)) = (reviews.first(), reviews.last()) else {
                return Ok(String::new());
            };
            // WebArena asserts the first rating is the one named "Rating".
            if first.pointer("/ratings/0/rating_name") != Some(&Value::from("Rating")) {
                return Err(DomainError::Environment(
                    "shopping reviews: the first rating is not named \"Rating\"".into(),
                ));
            }
            Ok(last
                .pointer("/ratings/0/percent")
                .map(py::str_of)
                .unwrap_or_default())
        }
        other => Err(DomainError::Unsupported(format!(
            "WebArena helper `func:{other}` is not implemented"
        ))),
    }
}

#[derive(Debug, PartialEq)]
enum Argument {
    Page,
    Text(String),
}

#[derive(Debug)]
struct Call {
    name: String,
    args: Vec<Argument>,
}

/// Reads `name(arg, …)` where each argument is `__page__` or a Python
/// string literal in single or double quotes.
fn parse_call(expression: &str) -> Result<Call, String> {
    let expression = expression.trim();
    let open = expression.find('(').ok_or("no `(`")?;
    let name = expression[..open].trim().to_string();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("bad function name `{name}`"));
    }
    let inner = expression[open + 1..]
        .strip_suffix(')')
        .ok_or("no closing `)`")?;
    let mut args = Vec::new();
    let mut rest = inner.trim_start();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("__page__") {
            args.push(Argument::Page);
            rest = after;
        } else if let Some(quote) = rest.chars().next().filter(|c| *c == '\'' || *c == '"') {
            let mut text = String::new();
            let mut chars = rest[1..].char_indices();
            let mut end = None;
            while let Some((offset, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            text.push(escaped);
                        }
                    }
                    c if c == quote => {
                        end = Some(offset + 2);
                        break;
                    }
                    c => text.push(c),
                }
            }
            let end = end.ok_or("unterminated string")?;
            args.push(Argument::Text(text));
            rest = &rest[end..];
        } else {
            return Err(format!("unsupported argument at `{rest}`"));
        }
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix(',') {
            rest = after.trim_start();
        } else if !rest.is_empty() {
            return Err(format!("expected `,` at `{rest}`"));
        }
    }
    Ok(Call { name, args })
}

/// `http://host/f/sub/123/slug/-/comment/9` → `http://host/f/sub/123/`;
/// any URL that is not under `/f/<forum>/<id>` comes back unchanged.
pub(crate) fn reddit_get_post_url(url: &str) -> String {
    let parsed = py::urlparse(url);
    let segments: Vec<&str> = parsed.path.split('/').collect();
    if segments.len() < 4 || segments[1] != "f" {
        return url.to_string();
    }
    format!(
        "{}://{}/f/{}/{}/",
        parsed.scheme, parsed.netloc, segments[2], segments[3]
    )
}

/// The member-role lookup WebArena runs on a GitLab members page: the
/// index of `@account` among the account labels, then the role cell at
/// that index; empty text when either step throws.
async fn gitlab_get_project_member_role(
    page: &mut dyn EvalPage,
    account: &str,
) -> Result<String, DomainError> {
    let handle = serde_json::to_string(&format!("@{account}")).unwrap_or_default();
    let find_index = format!(
        "(() => {{ const elements = document.querySelectorAll(\"td[data-label='Account'] span.gl-avatar-labeled-sublabel\"); \
         for (let i = 0; i < elements.length; i++) {{ if (elements[i].outerText === {handle}) {{ return i; }} }} \
         return -1; }})()"
    );
    let index = match page.eval_js(&find_index).await {
        Ok(index) => index,
        Err(PageError::Script(_)) => return Ok(String::new()),
        Err(PageError::Browser(message)) => return Err(DomainError::Environment(message)),
    };
    let read_role = format!(
        "(() => document.querySelectorAll(\"td.col-max-role span\")[{}].outerText)()",
        py::str_of(&index)
    );
    match page.eval_js(&read_role).await {
        Ok(role) => Ok(py::str_of(&role)),
        Err(PageError::Script(_)) => Ok(String::new()),
        Err(PageError::Browser(message)) => Err(DomainError::Environment(message)),
    }
}

fn shopping_base(sites: &SiteConfig) -> Result<&str, DomainError> {
    sites
        .base_url(Site::Shopping)
        .ok_or_else(|| missing_site(Site::Shopping))
}

fn api_error(what: &str, error: impl std::fmt::Display) -> DomainError {
    DomainError::Environment(format!("shopping REST API ({what}): {error}"))
}

/// An admin bearer token from the shopping site's REST API.
async fn shopping_admin_token(
    client: &reqwest::Client,
    base: &str,
    options: &EvalOptions,
) -> Result<String, DomainError> {
    let credentials = options.shopping_admin_api.as_ref().ok_or_else(|| {
        DomainError::Unsupported("the shopping admin API credentials are not configured".into())
    })?;
    let response = client
        .post(format!("{base}/rest/default/V1/integration/admin/token"))
        .json(&serde_json::json!({
            "username": credentials.username,
            "password": credentials.password.expose_secret(),
        }))
        .send()
        .await
        .map_err(|error| api_error("admin token", error))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|error| api_error("admin token", error))?;
    match body {
        Value::String(token) if status.is_success() => Ok(token),
        _ => Err(api_error("admin token", format!("HTTP {status}, no token"))),
    }
}

async fn shopping_get_json(
    sites: &SiteConfig,
    options: &EvalOptions,
    path_and_query: &str,
    what: &str,
) -> Result<Value, DomainError> {
    let base = shopping_base(sites)?;
    let client = reqwest::Client::builder()
        .timeout(options.http_timeout)
        .build()
        .map_err(|error| api_error(what, error))?;
    let token = shopping_admin_token(&client, base, options).await?;
    let response = client
        .get(format!("{base}{path_and_query}"))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|error| api_error(what, error))?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(api_error(what, format!("HTTP {}", response.status())));
    }
    response
        .json()
        .await
        .map_err(|error| api_error(what, error))
}

async fn shopping_latest_order_url(
    sites: &SiteConfig,
    options: &EvalOptions,
) -> Result<String, DomainError> {
    let body = shopping_get_json(
        sites,
        options,
        "/rest/V1/orders?searchCriteria%5BsortOrders%5D%5B0%5D%5Bfield%5D=created_at\
         &searchCriteria%5BsortOrders%5D%5B0%5D%5Bdirection%5D=DESC\
         &searchCriteria%5BpageSize%5D=1",
        "latest order",
    )
    .await?;
    let increment_id = body
        .pointer("/items/0/increment_id")
        .ok_or_else(|| api_error("latest order", "no items[0].increment_id"))?;
    // Python's int() of the id ("000000189" → 189).
    let order_id: u64 = py::strip(&py::str_of(increment_id))
        .parse()
        .map_err(|_| api_error("latest order", "increment_id is not an integer"))?;
    Ok(format!(
        "{}/sales/order/view/order_id/{order_id}/",
        shopping_base(sites)?
    ))
}

async fn shopping_reviews(
    sites: &SiteConfig,
    options: &EvalOptions,
    sku: &str,
) -> Result<Vec<Value>, DomainError> {
    let sku: String = form_urlencoded::byte_serialize(sku.as_bytes()).collect();
    let body = shopping_get_json(
        sites,
        options,
        &format!("/rest/V1/products/{sku}/reviews"),
        "product reviews",
    )
    .await?;
    match body {
        Value::Array(reviews) => Ok(reviews),
        _ => Err(api_error("product reviews", "the answer is not a list")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_python_calls() {
        let call = parse_call("gitlab_get_project_memeber_role(__page__, 'yjlou')").unwrap();
        assert_eq!(call.name, "gitlab_get_project_memeber_role");
        assert_eq!(call.args, [Argument::Page, Argument::Text("yjlou".into())]);
        let call = parse_call("shopping_get_latest_order_url()").unwrap();
        assert!(call.args.is_empty());
        let call = parse_call(r#"reddit_get_post_url("http://h/f/a/1/x")"#).unwrap();
        assert_eq!(call.args, [Argument::Text("http://h/f/a/1/x".into())]);
        assert!(parse_call("os.system('x')").is_err());
        assert!(parse_call("f('unterminated)").is_err());
    }

    #[test]
    fn reddit_post_url_cuts_back_to_the_post() {
        assert_eq!(
            reddit_get_post_url("http://h:9999/f/books/59421/adults-reading/-/comment/123"),
            "http://h:9999/f/books/59421/"
        );
        assert_eq!(
            reddit_get_post_url("http://h:9999/f/books"),
            "http://h:9999/f/books"
        );
        assert_eq!(
            reddit_get_post_url("http://h:9999/user/x/y"),
            "http://h:9999/user/x/y"
        );
    }
}
