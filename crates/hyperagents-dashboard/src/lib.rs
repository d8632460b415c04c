//! The web dashboard (`hyperagents serve`): the evolution runs of a results
//! store, each with its curves, lineage and nodes; each node with its diff,
//! stage scores, episodes and the meta step that made it; each episode with
//! its span tree (model calls' inputs and outputs, actions, errors).
//!
//! Pages are rendered on the server from the store (opened read-only, beside
//! the processes writing it) and the runs' directories; nothing is fetched
//! from elsewhere and no script runs in them (the `Content-Security-Policy`
//! allows none), so text from models and web pages, escaped everywhere, stays
//! inert even if an escape were missed. A running run's page reloads itself.
//! JSON under `/api/` carries the same data as typed payloads.
//!
//! Access: bound to loopback, anyone on the machine may read; any other
//! address needs a token ([`check_bind`]), sent as `Authorization: Bearer`,
//! a `token` query parameter (which also sets a cookie) or that cookie.
//!
//! Modules: `runs` (runs list, run page, comparison, JSON), `episodes` (node
//! and episode pages, screenshots), `feedback` (rating and preference forms
//! and posts), `markup` (page frame, escaping, shared responses); this file
//! holds the state, the router and access control.
//!
//! Runs ticked on the runs page are compared side by side (`/compare`).
//! People rate episodes and state preferences in forms (see
//! [`DashboardState::feedback`]); the run page shows the fitness those give
//! and each node's chance in the next generation's parent draw.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Form;
use axum::Router;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyperagents_report::{
    RunReport, compare_summary, comparison_chart_svgs, run_chart_svgs, run_lineage_svg, run_summary,
};
use hyperagents_store::{
    EpisodePreference, EpisodeRating, EvolutionEvent, Feedback, FeedbackStore, ResultsStore,
    RunStatus,
};
use serde::{Deserialize, Serialize};

mod episodes;
mod feedback;
mod markup;
mod runs;

use episodes::*;
use feedback::*;
pub use markup::html;
use markup::*;
use runs::*;

/// The cookie a token given in the query is kept in.
const TOKEN_COOKIE: &str = "hyperagents_token";

/// What the pages read.
#[derive(Clone)]
pub struct DashboardState {
    pub store: ResultsStore,
    /// Where runs keep their directories when their launch record names
    /// none (`<cache>/runs`).
    pub runs_dir: PathBuf,
    /// Required of every request when set.
    pub token: Option<String>,
    /// Where ratings and preferences go; without it pages show no forms.
    pub feedback: Option<FeedbackStore>,
    /// The secret every form carries back (cross-site requests cannot
    /// read it); [`new_form_secret`] makes one per server.
    pub form_secret: String,
}

/// A fresh secret for [`DashboardState::form_secret`].
pub fn new_form_secret() -> String {
    use rand::Rng as _;
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error(
        "serving on {addr} would let other machines read every run: give a token (--token or \
         HYPERAGENTS_DASHBOARD_TOKEN), or bind to 127.0.0.1"
    )]
    TokenRequired { addr: SocketAddr },
}

/// Refuses to serve on a non-loopback address without a token.
pub fn check_bind(addr: &SocketAddr, token: Option<&str>) -> Result<(), DashboardError> {
    if addr.ip().is_loopback() || token.is_some_and(|t| !t.is_empty()) {
        Ok(())
    } else {
        Err(DashboardError::TokenRequired { addr: *addr })
    }
}

/// One evolution run in the runs list (`/api/runs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunListItem {
    pub id: String,
    pub mode: String,
    pub status: String,
    pub created_at_ms: i64,
    pub generations_done: u64,
    pub seed_train: Option<f64>,
    pub best_train: Option<f64>,
    pub best_node: String,
}

/// One generation of a run (`/api/runs/{run}/generations`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationRow {
    pub generation: u64,
    pub best_train: f64,
    pub mean_train: f64,
    pub best_so_far_train: f64,
    pub best_node: String,
    pub improvement: Option<f64>,
    pub test_of_best: Option<f64>,
    pub total_tokens: u64,
    pub valid_children: u64,
    pub failed_attempts: u64,
}

/// Every route, over `state`: what `serve` runs and tests call directly.
pub fn router(state: DashboardState) -> Router {
    let state = Arc::new(state);
    Router::new()
        .route("/", get(runs_page))
        .route("/runs/{run}", get(run_page))
        .route("/runs/{run}/nodes/{node}", get(node_page))
        .route(
            "/runs/{run}/nodes/{node}/{stage}/{index}",
            get(episode_page).post(rate_episode),
        )
        .route(
            "/runs/{run}/nodes/{node}/{stage}/{index}/screenshots/{n}",
            get(screenshot),
        )
        .route(
            "/runs/{run}/nodes/{node}/{stage}/{index}/versus/{other}",
            get(versus_page).post(prefer_episode),
        )
        .route("/compare", get(compare_page))
        .route("/api/runs", get(runs_api))
        .route("/api/runs/{run}/generations", get(generations_api))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state)
}

/// Serves `router(state)` on `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: DashboardState,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).await
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

async fn require_token(
    State(state): State<Arc<DashboardState>>,
    Query(query): Query<TokenQuery>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = state.token.as_deref().filter(|t| !t.is_empty()) else {
        return next.run(request).await;
    };
    let headers = request.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let cookie = cookie_value(headers, TOKEN_COOKIE);
    let from_query = query.token.as_deref();
    let presented = [bearer, cookie.as_deref(), from_query];
    if !presented
        .iter()
        .flatten()
        .any(|t| constant_time_eq(t, expected))
    {
        return (StatusCode::UNAUTHORIZED, "a token is required").into_response();
    }
    let mut response = next.run(request).await;
    if from_query.is_some_and(|t| constant_time_eq(t, expected))
        && let Ok(value) = HeaderValue::from_str(&format!(
            "{TOKEN_COOKIE}={expected}; Path=/; HttpOnly; SameSite=Strict"
        ))
    {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_string())
}

/// Compares without stopping at the first difference (no timing oracle).
fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_encoding() {
        assert_eq!(
            html("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&apos;x&apos;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        assert_eq!(segment("g1c0"), "g1c0");
        assert_eq!(segment("a/../b c"), "a%2F..%2Fb%20c");
        assert!(safe_id("e17-hyper-s1") && !safe_id("../x") && !safe_id(".hidden"));
        assert_eq!(base64(b"hyperagents"), "aHlwZXJhZ2VudHM=");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b""), "");
    }

    #[test]
    fn only_loopback_serves_without_a_token() {
        let loopback: SocketAddr = "127.0.0.1:8765".parse().unwrap_or_else(|_| unreachable!());
        let any: SocketAddr = "0.0.0.0:8765".parse().unwrap_or_else(|_| unreachable!());
        assert!(check_bind(&loopback, None).is_ok());
        assert!(check_bind(&any, None).is_err());
        assert!(check_bind(&any, Some("")).is_err());
        assert!(check_bind(&any, Some("s3cret")).is_ok());
    }
}
