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

/// The cookie a token given in the query is kept in.
const TOKEN_COOKIE: &str = "hyperagents_token";
/// How often a running run's page reloads itself, in seconds.
const RELOAD_SECS: u32 = 15;

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

/// `text` escaped for HTML text and quoted attribute values (the report
/// crate's markup escape: `&`, `<`, `>`, both quotes, and characters no
/// markup may carry).
pub fn html(text: &str) -> String {
    hyperagents_report::escape_markup(text)
}

/// A path segment for a link: ids are checked before they are used, but a
/// link is still percent-encoded.
fn segment(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// An id that may name a file under a run directory: letters, digits,
/// `-`, `_`, `.`, not starting with a dot.
fn safe_id(id: &str) -> bool {
    !id.is_empty()
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn page(title: &str, body: &str, reload: bool) -> Response {
    let refresh = if reload {
        format!("<meta http-equiv=\"refresh\" content=\"{RELOAD_SECS}\">")
    } else {
        String::new()
    };
    let text = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">{refresh}\
         <title>{} · hyperagents</title><style>{STYLE}</style></head><body>\
         <nav><a href=\"/\">runs</a></nav>{body}</body></html>",
        html(title)
    );
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], text).into_response();
    secure(response.headers_mut());
    response
}

fn secure(headers: &mut HeaderMap) {
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
             form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        // `no-referrer` makes Chromium send `Origin: null` with a form post,
        // which the same-origin check must refuse (found by the browser test).
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;max-width:75em}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .5em;\
text-align:left}pre{background:#f6f6f6;padding:.5em;overflow:auto;max-height:40em}\
table.versus td{vertical-align:top;width:50%}.add{color:#060}.del{color:#a00}.svg svg{max-width:100%;height:auto}nav{margin-bottom:1em}\
ul.tree,ul.tree ul{list-style:none;padding-left:1.2em}summary{cursor:pointer}";

fn not_found(what: &str) -> Response {
    let mut response = page(
        "not found",
        &format!("<h1>Not found</h1><p>{}</p>", html(what)),
        false,
    );
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

fn failure(error: impl std::fmt::Display) -> Response {
    tracing::warn!(%error, "dashboard request failed");
    let mut response = page(
        "error",
        &format!("<h1>Error</h1><p>{}</p>", html(&error.to_string())),
        false,
    );
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "–".to_string(), |r| format!("{:.1}%", r * 100.0))
}

fn run_items(store: &ResultsStore) -> Result<Vec<RunListItem>, String> {
    let mut items = Vec::new();
    for id in store.evolution_run_ids().map_err(|e| e.to_string())? {
        let report = run_summary(store, &id).map_err(|e| e.to_string())?;
        let best_train = report
            .nodes
            .iter()
            .find(|n| n.node_id == report.best_node)
            .and_then(|n| n.train_score());
        items.push(RunListItem {
            generations_done: report.generations_done(),
            mode: report.mode.as_str().to_string(),
            status: report.status.as_str().to_string(),
            created_at_ms: report.created_at_ms,
            seed_train: report.seed_train,
            best_train,
            best_node: report.best_node.clone(),
            id,
        });
    }
    Ok(items)
}

async fn runs_api(State(state): State<Arc<DashboardState>>) -> Response {
    match run_items(&state.store) {
        Ok(items) => {
            let mut response = axum::Json(items).into_response();
            secure(response.headers_mut());
            response
        }
        Err(error) => failure(error),
    }
}

async fn runs_page(State(state): State<Arc<DashboardState>>) -> Response {
    let items = match run_items(&state.store) {
        Ok(items) => items,
        Err(error) => return failure(error),
    };
    let mut body = String::from("<h1>Evolution runs</h1>");
    if items.is_empty() {
        body.push_str("<p>No evolution run in this store yet.</p>");
    } else {
        body.push_str(
            "<form method=\"get\" action=\"/compare\"><table><tr><th>compare</th><th>run</th>\
             <th>mode</th><th>status</th><th>generations</th><th>seed (train)</th>\
             <th>best (train)</th><th>best node</th></tr>",
        );
        for item in &items {
            let _ = write!(
                body,
                "<tr><td><input type=\"checkbox\" name=\"run\" value=\"{}\"></td>\
                 <td><a href=\"/runs/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td></tr>",
                html(&item.id),
                segment(&item.id),
                html(&item.id),
                html(&item.mode),
                html(&item.status),
                item.generations_done,
                percent(item.seed_train),
                percent(item.best_train),
                html(&item.best_node),
            );
        }
        body.push_str("</table><button>compare the runs ticked</button></form>");
    }
    page("runs", &body, false)
}

fn spread(s: Option<hyperagents_report::Spread>, as_percent: bool) -> String {
    match s {
        None => "–".into(),
        Some(s) if as_percent => format!(
            "{:.1}% ({:.1}–{:.1}, n={})",
            s.mean * 100.0,
            s.min * 100.0,
            s.max * 100.0,
            s.count
        ),
        Some(s) => format!("{:.0} ({:.0}–{:.0}, n={})", s.mean, s.min, s.max, s.count),
    }
}

/// Runs side by side (`/compare?run=a&run=b`): the per-mode table and the
/// overlays `hyperagents compare` writes as files.
async fn compare_page(
    State(state): State<Arc<DashboardState>>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let mut runs: Vec<String> = Vec::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        // A run named twice is compared once.
        if key == "run" && !runs.iter().any(|r| *r == value) {
            runs.push(value.into_owned());
        }
    }
    if runs.is_empty() {
        return page(
            "compare",
            "<h1>Compare runs</h1><p>Tick runs on the <a href=\"/\">runs page</a>.</p>",
            false,
        );
    }
    for run in &runs {
        if let Err(response) = report_of(&state, run) {
            return *response;
        }
    }
    let comparison = match compare_summary(&state.store, &runs) {
        Ok(comparison) => comparison,
        Err(error) => return failure(error),
    };
    let mut body = String::from(
        "<h1>Runs compared</h1><h2>Runs</h2><table><tr><th>run</th>\
        <th>mode</th><th>generations</th><th>seed (train)</th><th>best (train)</th>\
        <th>accepted improvements</th><th>search tokens</th></tr>",
    );
    for run in &comparison.runs {
        let best = run
            .nodes
            .iter()
            .find(|n| n.node_id == run.best_node)
            .and_then(|n| n.train_score());
        let _ = write!(
            body,
            "<tr><td><a href=\"/runs/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{} of {}</td><td>{}</td></tr>",
            segment(&run.run_id),
            html(&run.run_id),
            html(run.mode.as_str()),
            run.generations_done(),
            percent(run.seed_train),
            percent(best),
            run.accepted_improvements,
            run.comparisons,
            run.tokens.search_tokens(),
        );
    }
    body.push_str(
        "</table><h2>By mode</h2><table><tr><th>mode</th><th>runs</th><th>seed (train)</th>\
         <th>best (train)</th><th>final test</th><th>final improvement</th>\
         <th>search tokens</th></tr>",
    );
    for mode in &comparison.modes {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            html(mode.mode.as_str()),
            mode.runs,
            spread(mode.seed_train, true),
            spread(mode.best_train, true),
            spread(mode.final_test, true),
            spread(mode.final_improvement, true),
            spread(mode.search_tokens, false),
        );
    }
    body.push_str("</table>");
    body.push_str(&charts_html(comparison_chart_svgs(&comparison)));
    page("compare", &body, false)
}

fn generation_rows(report: &RunReport) -> Vec<GenerationRow> {
    report
        .generations
        .iter()
        .map(|g| GenerationRow {
            generation: g.generation,
            best_train: g.best_train,
            mean_train: g.mean_train,
            best_so_far_train: g.best_so_far_train,
            best_node: g.best_node.clone(),
            improvement: g.improvement,
            test_of_best: g.test_of_best,
            total_tokens: g.total_tokens,
            valid_children: g.valid_children,
            failed_attempts: g.failed_attempts,
        })
        .collect()
}

/// The run's report, or the response saying why there is none.
fn report_of(state: &DashboardState, run: &str) -> Result<RunReport, Box<Response>> {
    match state.store.evolution_run(run) {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Err(Box::new(not_found(&format!(
                "no evolution run `{run}` in this store"
            ))));
        }
        Err(error) => return Err(Box::new(failure(error))),
    }
    run_summary(&state.store, run).map_err(|error| Box::new(failure(error)))
}

async fn generations_api(
    State(state): State<Arc<DashboardState>>,
    UrlPath(run): UrlPath<String>,
) -> Response {
    match report_of(&state, &run) {
        Ok(report) => {
            let mut response = axum::Json(generation_rows(&report)).into_response();
            secure(response.headers_mut());
            response
        }
        Err(response) => *response,
    }
}

type NodeValues = std::collections::BTreeMap<String, f64>;

/// Fitness from the judgements as they stand now (nodes where it differs
/// from the automated score), and each node's chance of being drawn in one
/// parent draw of the run's next generation: the engine's own candidates
/// and selection weights, with the run's policy and feedback weight from
/// its config and launch record.
fn next_generation(
    state: &DashboardState,
    run: &str,
    report: &RunReport,
) -> (NodeValues, NodeValues) {
    let Ok(Some(record)) = state.store.evolution_run(run) else {
        return Default::default();
    };
    let run_config = record;
    let policy: hyperagents_evolve::SelectionPolicy = run_config
        .config
        .get("selection")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_else(hyperagents_evolve::SelectionPolicy::dgm_default);
    let weight = state
        .store
        .last_event(run, "launch")
        .ok()
        .flatten()
        .and_then(|e| match e.event() {
            Ok(EvolutionEvent::Launch(launch)) => Some(launch.feedback_weight),
            _ => None,
        })
        .unwrap_or(0.25);
    let before = report.generations_done() + 1;
    let Ok(automated) =
        hyperagents_evolve::fitness::automated_candidates(&state.store, run, before)
    else {
        return Default::default();
    };
    let judgements = match &state.feedback {
        Some(feedback) => hyperagents_evolve::fitness::Judgements::new(
            &feedback
                .list(Some(run))
                .unwrap_or_default()
                .into_iter()
                .map(|r| r.feedback)
                .collect::<Vec<_>>(),
        ),
        None => Default::default(),
    };
    let Ok((candidates, fitness)) = hyperagents_evolve::fitness::with_fitness(
        &state.store,
        &judgements,
        run,
        weight,
        &automated,
    ) else {
        return Default::default();
    };
    let weights = hyperagents_evolve::weights(&policy, &candidates);
    let total: f64 = weights.iter().map(|(_, w)| w).sum();
    if total <= 0.0 {
        return (fitness, Default::default());
    }
    let chances = weights
        .into_iter()
        .map(|(node, w)| (node.0, w / total))
        .collect();
    (fitness, chances)
}

/// The run page's node list: a search (node ids containing `q`) and a page.
#[derive(Deserialize, Default)]
struct NodeListQuery {
    q: Option<String>,
    page: Option<usize>,
}

/// Nodes per page of a run page's node table.
const NODES_PER_PAGE: usize = 200;
/// Lineage levels shown open; deeper subtrees start collapsed.
const OPEN_DEPTH: usize = 2;

/// The lineage as nested lists whose subtrees collapse (`<details>`, no
/// script): each node links to its page with its train score and how it
/// compared with its parent.
fn lineage_html(run: &str, report: &RunReport) -> String {
    let mut children: std::collections::BTreeMap<&str, Vec<&hyperagents_report::NodeSummary>> =
        std::collections::BTreeMap::new();
    let mut roots = Vec::new();
    for node in &report.nodes {
        match node.parent_id.as_deref() {
            Some(parent) if report.nodes.iter().any(|n| n.node_id == parent) => {
                children.entry(parent).or_default().push(node);
            }
            _ => roots.push(node),
        }
    }
    let mut out = String::from("<ul class=\"tree\">");
    // (node, depth) to open, or None to close a subtree: iterative, so a
    // deep lineage cannot overflow the stack.
    let mut stack: Vec<Option<(&hyperagents_report::NodeSummary, usize)>> =
        roots.into_iter().rev().map(|n| Some((n, 0))).collect();
    while let Some(item) = stack.pop() {
        let Some((node, depth)) = item else {
            out.push_str("</ul></details></li>");
            continue;
        };
        let label = format!(
            "<a href=\"/runs/{}/nodes/{}\">{}</a> {}{}{}",
            segment(run),
            segment(&node.node_id),
            html(&node.node_id),
            percent(node.train_score()),
            if node.status.as_str() == "valid" {
                ""
            } else {
                " (invalid)"
            },
            match &node.comparison {
                Some(c) if c.accepted => " ✓ accepted",
                _ => "",
            }
        );
        match children.get(node.node_id.as_str()) {
            None => {
                let _ = write!(out, "<li>{label}</li>");
            }
            Some(kids) => {
                let open = if depth < OPEN_DEPTH { " open" } else { "" };
                let _ = write!(
                    out,
                    "<li><details{open}><summary>{label} — {} children</summary><ul>",
                    kids.len()
                );
                stack.push(None);
                for kid in kids.iter().rev() {
                    stack.push(Some((kid, depth + 1)));
                }
            }
        }
    }
    out.push_str("</ul>");
    out
}

async fn run_page(
    State(state): State<Arc<DashboardState>>,
    UrlPath(run): UrlPath<String>,
    Query(list): Query<NodeListQuery>,
) -> Response {
    let report = match report_of(&state, &run) {
        Ok(report) => report,
        Err(response) => return *response,
    };
    let mut body = format!(
        "<h1>Run {}</h1><p>{} mode, run seed {}, {}; seed program {} on train; best node \
         <a href=\"/runs/{}/nodes/{}\">{}</a>; {} of {} children accepted as improvements; \
         {} meta + {} task tokens.</p>",
        html(&run),
        html(report.mode.as_str()),
        report.run_seed,
        html(report.status.as_str()),
        percent(report.seed_train),
        segment(&run),
        segment(&report.best_node),
        html(&report.best_node),
        report.accepted_improvements,
        report.comparisons,
        report.tokens.meta_tokens,
        report.tokens.task_tokens(),
    );
    let t = &report.tokens;
    let _ = write!(
        body,
        "<h2>Tokens and cost per role</h2><table><tr><th>role</th><th>tokens</th><th>cost</th></tr>\
         <tr><td>meta (making nodes)</td><td>{}</td><td>{}</td></tr>\
         <tr><td>task, train split</td><td>{}</td><td>${:.4}</td></tr>\
         <tr><td>task, test split</td><td>{}</td><td>${:.4}</td></tr></table>",
        t.meta_tokens,
        t.meta_cost
            .map_or_else(|| "–".to_string(), |c| format!("${c:.4}")),
        t.task_tokens(),
        t.task_cost,
        t.test_tokens(),
        t.test_cost,
    );
    body.push_str(
        "<h2>Generations</h2><table><tr><th>generation</th><th>best train</th><th>mean train</th>\
         <th>best so far</th><th>improvement</th><th>test of best</th><th>tokens</th>\
         <th>valid</th><th>failed</th></tr>",
    );
    for g in generation_rows(&report) {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td></tr>",
            g.generation,
            percent(Some(g.best_train)),
            percent(Some(g.mean_train)),
            percent(Some(g.best_so_far_train)),
            g.improvement
                .map_or_else(|| "–".into(), |i| format!("{:+.1} pp", i * 100.0)),
            percent(g.test_of_best),
            g.total_tokens,
            g.valid_children,
            g.failed_attempts,
        );
    }
    body.push_str("</table>");
    body.push_str(&charts_html(run_chart_svgs(&report)));
    let _ = write!(
        body,
        "<h2>Lineage</h2><p class=\"svg\"><img alt=\"lineage\" src=\"data:image/svg+xml;base64,{}\"></p>",
        base64(run_lineage_svg(&report).as_bytes())
    );
    let _ = write!(body, "<h2>Lineage tree</h2>{}", lineage_html(&run, &report));
    let query = list.q.as_deref().unwrap_or("").trim().to_string();
    let matching: Vec<&hyperagents_report::NodeSummary> = report
        .nodes
        .iter()
        .filter(|n| query.is_empty() || n.node_id.contains(query.as_str()))
        .collect();
    let pages = matching.len().div_ceil(NODES_PER_PAGE).max(1);
    let page_index = list.page.unwrap_or(1).clamp(1, pages);
    let _ = write!(
        body,
        "<h2>Nodes</h2><form method=\"get\" action=\"/runs/{}\"><input name=\"q\" value=\"{}\" \
         placeholder=\"node id contains\"> <button>search</button></form><p>{} of {} nodes; page {} of {}",
        segment(&run),
        html(&query),
        matching.len(),
        report.nodes.len(),
        page_index,
        pages,
    );
    for (label, target) in [
        ("previous", page_index.saturating_sub(1)),
        ("next", page_index + 1),
    ] {
        if target >= 1 && target <= pages && target != page_index {
            let _ = write!(
                body,
                " · <a href=\"/runs/{}?q={}&amp;page={target}\">{label}</a>",
                segment(&run),
                segment(&query),
            );
        }
    }
    // Fitness as judged now, where people's judgements make it differ
    // from the automated score, and each node's chance in one parent draw
    // of the next generation.
    let (fitness, next_weights) = next_generation(&state, &run, &report);
    body.push_str(
        "</p><table><tr><th>node</th><th>parent</th><th>generation</th><th>status</th>\
         <th>changed</th><th>stage 1</th><th>full</th><th>fitness</th><th>next draw</th>\
         <th>test</th><th>vs parent</th></tr>",
    );
    for node in matching
        .into_iter()
        .skip((page_index - 1) * NODES_PER_PAGE)
        .take(NODES_PER_PAGE)
    {
        let parent = node.parent_id.as_deref().unwrap_or("–");
        let versus = node.comparison.as_ref().map_or_else(
            || "–".to_string(),
            |c| {
                format!(
                    "{:+.1} pp{}",
                    c.mean_difference * 100.0,
                    if c.accepted { ", accepted" } else { "" }
                )
            },
        );
        let kinds: Vec<&str> = node.diff_kinds.iter().map(|k| k.as_str()).collect();
        let _ = write!(
            body,
            "<tr><td><a href=\"/runs/{}/nodes/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            segment(&run),
            segment(&node.node_id),
            html(&node.node_id),
            html(parent),
            node.generation,
            html(node.status.as_str()),
            html(&kinds.join(", ")),
            percent(node.stage1),
            percent(node.full),
            fitness
                .get(&node.node_id)
                .map_or_else(|| "as scored".to_string(), |f| percent(Some(*f))),
            next_weights
                .get(&node.node_id)
                .map_or_else(|| "–".to_string(), |w| format!("{w:.3}")),
            percent(node.test),
            html(&versus),
        );
    }
    body.push_str("</table>");
    page(
        &format!("run {run}"),
        &body,
        report.status == RunStatus::Running,
    )
}

async fn node_page(
    State(state): State<Arc<DashboardState>>,
    UrlPath((run, node)): UrlPath<(String, String)>,
) -> Response {
    let report = match report_of(&state, &run) {
        Ok(report) => report,
        Err(response) => return *response,
    };
    let Some(summary) = report.nodes.iter().find(|n| n.node_id == node) else {
        return not_found(&format!("no node `{node}` in run `{run}`"));
    };
    let mut body = format!(
        "<h1>Node {} of run <a href=\"/runs/{}\">{}</a></h1><p>generation {}, {}, parent {}; \
         stage 1 {}, full {}, test {}; {} meta tokens.</p>",
        html(&node),
        segment(&run),
        html(&run),
        summary.generation,
        html(summary.status.as_str()),
        summary.parent_id.as_deref().map_or_else(
            || "none (the seed)".to_string(),
            |p| format!(
                "<a href=\"/runs/{}/nodes/{}\">{}</a>",
                segment(&run),
                segment(p),
                html(p)
            )
        ),
        percent(summary.stage1),
        percent(summary.full),
        percent(summary.test),
        summary.meta_tokens,
    );
    if !summary.errors.is_empty() {
        body.push_str("<h2>Validation errors</h2><ul>");
        for error in &summary.errors {
            let _ = write!(body, "<li>{}</li>", html(error));
        }
        body.push_str("</ul>");
    }
    for stage in STAGES {
        let records = match stage_records(&state, &run, &node, stage) {
            Ok(records) => records,
            Err(response) => return *response,
        };
        if records.is_empty() {
            continue;
        }
        let _ = write!(
            body,
            "<h2>Episodes: {stage}</h2><table><tr><th>task</th><th>seed</th><th>success</th>\
             <th>reason</th><th>tokens</th><th>ms</th></tr>"
        );
        for (index, record) in records.iter().enumerate() {
            let task = &record.key.task;
            let link = if record.result.trajectory.is_some() {
                format!(
                    "<a href=\"/runs/{}/nodes/{}/{stage}/{index}\">{}</a>",
                    segment(&run),
                    segment(&node),
                    html(task)
                )
            } else {
                html(task)
            };
            let _ = write!(
                body,
                "<tr><td>{link}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                record.key.seed,
                if record.result.success { "yes" } else { "no" },
                html(&clip(&record.result.reason, 200)),
                record.result.tokens_in + record.result.tokens_out,
                record.result.duration_ms,
            );
        }
        body.push_str("</table>");
    }
    match run_dir(&state, &run) {
        Some(dir) if safe_id(&node) => {
            let nodes = dir.join("nodes");
            match std::fs::read_to_string(nodes.join(format!("{node}.diff"))) {
                Ok(diff) if !diff.is_empty() => {
                    let _ = write!(
                        body,
                        "<h2>Diff against its parent</h2><pre>{}</pre>",
                        diff_lines(&diff)
                    );
                }
                Ok(_) => body.push_str("<p>No diff (the seed, or an unchanged copy).</p>"),
                Err(_) => body.push_str("<p>No diff file in the run directory.</p>"),
            }
            // Against the seed: what its whole lineage changed.
            if node != "seed" && nodes.join("seed").is_dir() && nodes.join(&node).is_dir() {
                match hyperagents_program::diff_dirs(&nodes.join("seed"), &nodes.join(&node)) {
                    Ok(diff) if !diff.is_empty() => {
                        let _ = write!(
                            body,
                            "<details><summary>Diff against the seed</summary><pre>{}</pre></details>",
                            diff_lines(&diff.unified())
                        );
                    }
                    Ok(_) => body.push_str("<p>The same program as the seed.</p>"),
                    Err(error) => {
                        let _ = write!(
                            body,
                            "<p>No diff against the seed: {}</p>",
                            html(&error.to_string())
                        );
                    }
                }
            }
            if let Ok(trace) = std::fs::read_to_string(nodes.join(format!("{node}.meta.txt"))) {
                let _ = write!(
                    body,
                    "<h2>The meta step that made it</h2><pre>{}</pre>",
                    html(&trace)
                );
            }
        }
        _ => body.push_str("<p>The run's directory is not available here.</p>"),
    }
    page(&format!("{node} of {run}"), &body, false)
}

/// The stages whose episodes a node page lists, in order. The held-out
/// split's are listed too (a person may look at them; no agent does).
const STAGES: [&str; 4] = ["smoke", "stage1", "full", "test"];

/// Longest span text shown on an episode page before it is cut.
const SPAN_TEXT_CHARS: usize = 4000;

fn clip(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// The stored episodes of a node's stage, in (task, seed) order.
fn stage_records(
    state: &DashboardState,
    run: &str,
    node: &str,
    stage: &str,
) -> Result<Vec<hyperagents_store::EvalRecord>, Box<Response>> {
    let eval_run = state
        .store
        .node_eval_run(run, node, stage)
        .map_err(|error| Box::new(failure(error)))?;
    let Some(eval_run) = eval_run else {
        return Ok(Vec::new());
    };
    let mut records = state
        .store
        .run_evaluations(eval_run)
        .map_err(|error| Box::new(failure(error)))?;
    records.sort_by(|a, b| (&a.key.task, a.key.seed).cmp(&(&b.key.task, b.key.seed)));
    Ok(records)
}

async fn episode_page(
    State(state): State<Arc<DashboardState>>,
    UrlPath((run, node, stage, index)): UrlPath<(String, String, String, usize)>,
) -> Response {
    if !STAGES.contains(&stage.as_str()) {
        return not_found(&format!("no stage `{stage}`"));
    }
    let records = match stage_records(&state, &run, &node, &stage) {
        Ok(records) => records,
        Err(response) => return *response,
    };
    let Some(record) = records.get(index) else {
        return not_found(&format!("no episode {index} in stage {stage} of {node}"));
    };
    let mut body = format!(
        "<h1>Episode: {} (seed {})</h1><p>stage {} of node <a href=\"/runs/{}/nodes/{}\">{}</a>; \
         {}; {}; {} + {} tokens; {} ms.</p>",
        html(&record.key.task),
        record.key.seed,
        html(&stage),
        segment(&run),
        segment(&node),
        html(&node),
        if record.result.success {
            "succeeded"
        } else {
            "failed"
        },
        html(&record.result.reason),
        record.result.tokens_in,
        record.result.tokens_out,
        record.result.duration_ms,
    );
    match &record.result.trajectory {
        None => body.push_str("<p>No trajectory was kept for this episode.</p>"),
        Some(path) => match hyperagents_runtime::trace::read_trajectory(path) {
            Ok(trajectory) => {
                let shots = screenshot_paths(&trajectory);
                if !shots.is_empty() {
                    body.push_str("<h2>Screenshots</h2><p>After each action, in order.</p>");
                    for n in 0..shots.len() {
                        let _ = write!(
                            body,
                            "<p><img alt=\"screenshot {}\" style=\"max-width:100%\" \
                             src=\"/runs/{}/nodes/{}/{}/{index}/screenshots/{n}\"></p>",
                            n + 1,
                            segment(&run),
                            segment(&node),
                            segment(&stage),
                        );
                    }
                }
                let _ = write!(
                    body,
                    "<h2>Span tree</h2><p>Every model call with its input and output, every \
                     action, observation and error, in order.</p><pre>{}</pre>",
                    html(&hyperagents_runtime::trace::render_tree(
                        &trajectory,
                        SPAN_TEXT_CHARS
                    ))
                );
            }
            Err(error) => {
                let _ = write!(
                    body,
                    "<p>The trajectory cannot be read: {}</p>",
                    html(&error.to_string())
                );
            }
        },
    }
    body.push_str(&feedback_section(
        &state,
        &run,
        &node,
        &stage,
        &record.key.task,
        record.key.seed,
        &episode_path(&run, &node, &stage, index),
    ));
    if let Some(parent) = parent_of(&state, &run, &node) {
        let _ = write!(
            body,
            "<p><a href=\"/runs/{}/nodes/{}/{}/{index}/versus/{}\">Side by side with its parent \
             {} on this task and seed</a></p>",
            segment(&run),
            segment(&node),
            segment(&stage),
            segment(&parent),
            html(&parent)
        );
    }
    page(&format!("{} of {node}", record.key.task), &body, false)
}

/// The PNG files a trajectory's screenshot spans name, in order.
fn screenshot_paths(trajectory: &hyperagents_runtime::trace::Trajectory) -> Vec<PathBuf> {
    trajectory
        .spans
        .iter()
        .filter(|s| s.kind == hyperagents_runtime::trace::SpanKind::Screenshot)
        .filter_map(|s| s.output.as_ref()?.as_str().map(PathBuf::from))
        .collect()
}

/// A screenshot of an episode: only a `.png` file its own trajectory
/// names, so no other file can be read through this route.
async fn screenshot(
    State(state): State<Arc<DashboardState>>,
    UrlPath((run, node, stage, index, n)): UrlPath<(String, String, String, usize, usize)>,
) -> Response {
    let records = match stage_records(&state, &run, &node, &stage) {
        Ok(records) => records,
        Err(response) => return *response,
    };
    let Some(trajectory) = records
        .get(index)
        .and_then(|r| r.result.trajectory.as_ref())
        .and_then(|p| hyperagents_runtime::trace::read_trajectory(p).ok())
    else {
        return not_found("no such episode or trajectory");
    };
    let Some(path) = screenshot_paths(&trajectory).into_iter().nth(n) else {
        return not_found(&format!("no screenshot {n}"));
    };
    if path.extension().and_then(|e| e.to_str()) != Some("png") {
        return not_found("not a screenshot");
    }
    match std::fs::read(&path) {
        Ok(bytes) => {
            let mut response = ([(header::CONTENT_TYPE, "image/png")], bytes).into_response();
            secure(response.headers_mut());
            response
        }
        Err(_) => not_found("the screenshot file is gone"),
    }
}

fn parent_of(state: &DashboardState, run: &str, node: &str) -> Option<String> {
    state.store.node(run, node).ok().flatten()?.parent_id
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The ratings of one episode, and the form to add one (not for the
/// held-out split: people may look at its episodes, not judge them, so no
/// judgement of them can reach selection).
fn feedback_section(
    state: &DashboardState,
    run: &str,
    node: &str,
    stage: &str,
    task: &str,
    seed: u64,
    action: &str,
) -> String {
    let Some(feedback) = &state.feedback else {
        return String::new();
    };
    let mut out = String::from("<h2>Ratings</h2>");
    let ratings: Vec<EpisodeRating> = feedback
        .list(Some(run))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| match r.feedback {
            Feedback::Rating(r)
                if r.node == node && r.stage == stage && r.task == task && r.seed == seed =>
            {
                Some(r)
            }
            _ => None,
        })
        .collect();
    if ratings.is_empty() {
        out.push_str("<p>Not rated yet.</p>");
    } else {
        out.push_str("<ul>");
        for r in &ratings {
            let _ = write!(
                out,
                "<li>{} by {}: {}</li>",
                if r.good { "good" } else { "bad" },
                html(&r.rater),
                html(&r.comment)
            );
        }
        out.push_str("</ul>");
    }
    if stage == "test" {
        out.push_str("<p>Episodes of the held-out split are not rated.</p>");
        return out;
    }
    let _ = write!(
        out,
        "<form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"secret\" \
         value=\"{}\"><label>your name <input name=\"rater\" required></label> \
         <label><input type=\"radio\" name=\"verdict\" value=\"good\" required> good</label> \
         <label><input type=\"radio\" name=\"verdict\" value=\"bad\"> bad</label> \
         <label>comment <input name=\"comment\" size=\"60\"></label> <button>rate</button></form>",
        html(&state.form_secret)
    );
    out
}

#[derive(Deserialize)]
struct RatingForm {
    secret: String,
    rater: String,
    verdict: String,
    #[serde(default)]
    comment: String,
}

/// Whether a form post came from one of this server's pages: its secret,
/// and, where the browser names it, the same origin.
fn form_allowed(state: &DashboardState, headers: &HeaderMap, secret: &str) -> bool {
    let same_origin = match (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest == host),
        (Some(_), None) => false,
        (None, _) => true,
    };
    same_origin && constant_time_eq(secret, &state.form_secret)
}

/// The feedback file a form post may write to, or the refusal: the post
/// must come from this dashboard's page, the dashboard must take feedback,
/// and the episode must not be of the held-out split.
fn judgement_allowed<'s>(
    state: &'s DashboardState,
    headers: &HeaderMap,
    secret: &str,
    stage: &str,
) -> Result<&'s FeedbackStore, Box<Response>> {
    if !form_allowed(state, headers, secret) {
        return Err(Box::new(refused(
            "this form did not come from this dashboard",
        )));
    }
    let Some(feedback) = &state.feedback else {
        return Err(Box::new(refused("this dashboard takes no feedback")));
    };
    if stage == "test" {
        return Err(Box::new(refused(
            "episodes of the held-out split are not judged",
        )));
    }
    Ok(feedback)
}

fn refused(why: &str) -> Response {
    let mut response = page(
        "refused",
        &format!("<h1>Refused</h1><p>{}</p>", html(why)),
        false,
    );
    *response.status_mut() = StatusCode::FORBIDDEN;
    response
}

fn see_other(to: &str) -> Response {
    let mut response = (StatusCode::SEE_OTHER, "").into_response();
    if let Ok(value) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    secure(response.headers_mut());
    response
}

async fn rate_episode(
    State(state): State<Arc<DashboardState>>,
    UrlPath((run, node, stage, index)): UrlPath<(String, String, String, usize)>,
    headers: HeaderMap,
    Form(form): Form<RatingForm>,
) -> Response {
    let feedback = match judgement_allowed(&state, &headers, &form.secret, &stage) {
        Ok(feedback) => feedback,
        Err(response) => return *response,
    };
    let records = match stage_records(&state, &run, &node, &stage) {
        Ok(records) => records,
        Err(response) => return *response,
    };
    let Some(record) = records.get(index) else {
        return not_found(&format!("no episode {index} in stage {stage} of {node}"));
    };
    let good = match form.verdict.as_str() {
        "good" => true,
        "bad" => false,
        other => return refused(&format!("unknown verdict `{other}`")),
    };
    let rating = Feedback::Rating(EpisodeRating {
        run: run.clone(),
        node: node.clone(),
        stage: stage.clone(),
        task: record.key.task.clone(),
        seed: record.key.seed,
        good,
        comment: form.comment.trim().to_string(),
        rater: form.rater.trim().to_string(),
        at_ms: now_ms(),
    });
    store_then_show(feedback, &rating, &episode_path(&run, &node, &stage, index))
}

/// The episode of `other` on the same task and seed as `node`'s episode
/// `index` of `stage`, with both nodes' records.
fn paired_records(
    state: &DashboardState,
    run: &str,
    node: &str,
    stage: &str,
    index: usize,
    other: &str,
) -> Result<(hyperagents_store::EvalRecord, hyperagents_store::EvalRecord), Box<Response>> {
    let mine = stage_records(state, run, node, stage)?;
    let Some(record) = mine.into_iter().nth(index) else {
        return Err(Box::new(not_found(&format!(
            "no episode {index} in stage {stage} of {node}"
        ))));
    };
    let theirs = stage_records(state, run, other, stage)?;
    let Some(other_record) = theirs
        .into_iter()
        .find(|r| r.key.task == record.key.task && r.key.seed == record.key.seed)
    else {
        return Err(Box::new(not_found(&format!(
            "{other} has no episode of {} (seed {}) in stage {stage}",
            record.key.task, record.key.seed
        ))));
    };
    Ok((record, other_record))
}

fn span_tree(record: &hyperagents_store::EvalRecord) -> String {
    match &record.result.trajectory {
        None => "(no trajectory kept)".into(),
        Some(path) => match hyperagents_runtime::trace::read_trajectory(path) {
            Ok(t) => hyperagents_runtime::trace::render_tree(&t, SPAN_TEXT_CHARS),
            Err(error) => format!("(unreadable: {error})"),
        },
    }
}

async fn versus_page(
    State(state): State<Arc<DashboardState>>,
    UrlPath((run, node, stage, index, other)): UrlPath<(String, String, String, usize, String)>,
) -> Response {
    let (a, b) = match paired_records(&state, &run, &node, &stage, index, &other) {
        Ok(pair) => pair,
        Err(response) => return *response,
    };
    let mut body = format!(
        "<h1>{} (seed {}): {} against {}</h1><table class=\"versus\"><tr><th>{} — {}</th>\
         <th>{} — {}</th></tr><tr><td><pre>{}</pre></td><td><pre>{}</pre></td></tr></table>",
        html(&a.key.task),
        a.key.seed,
        html(&node),
        html(&other),
        html(&node),
        if a.result.success {
            "succeeded"
        } else {
            "failed"
        },
        html(&other),
        if b.result.success {
            "succeeded"
        } else {
            "failed"
        },
        html(&span_tree(&a)),
        html(&span_tree(&b)),
    );
    if state.feedback.is_some() && stage != "test" {
        let _ = write!(
            body,
            "<form method=\"post\"><input type=\"hidden\" name=\"secret\" value=\"{}\">\
             <label>your name <input name=\"rater\" required></label> \
             <label><input type=\"radio\" name=\"preferred\" value=\"{}\" required> {}</label> \
             <label><input type=\"radio\" name=\"preferred\" value=\"{}\"> {}</label> \
             <label>comment <input name=\"comment\" size=\"60\"></label> \
             <button>prefer</button></form>",
            html(&state.form_secret),
            html(&node),
            html(&node),
            html(&other),
            html(&other),
        );
    }
    page(&format!("{node} against {other}"), &body, false)
}

#[derive(Deserialize)]
struct PreferenceForm {
    secret: String,
    rater: String,
    preferred: String,
    #[serde(default)]
    comment: String,
}

async fn prefer_episode(
    State(state): State<Arc<DashboardState>>,
    UrlPath((run, node, stage, index, other)): UrlPath<(String, String, String, usize, String)>,
    headers: HeaderMap,
    Form(form): Form<PreferenceForm>,
) -> Response {
    let feedback = match judgement_allowed(&state, &headers, &form.secret, &stage) {
        Ok(feedback) => feedback,
        Err(response) => return *response,
    };
    let (a, _) = match paired_records(&state, &run, &node, &stage, index, &other) {
        Ok(pair) => pair,
        Err(response) => return *response,
    };
    let preference = Feedback::Preference(EpisodePreference {
        run: run.clone(),
        stage: stage.clone(),
        task: a.key.task.clone(),
        seed: a.key.seed,
        a: node.clone(),
        b: other.clone(),
        preferred: form.preferred,
        comment: form.comment.trim().to_string(),
        rater: form.rater.trim().to_string(),
        at_ms: now_ms(),
    });
    store_then_show(
        feedback,
        &preference,
        &episode_path(&run, &node, &stage, index),
    )
}

/// The page of `node`'s episode `index` of `stage`.
fn episode_path(run: &str, node: &str, stage: &str, index: usize) -> String {
    format!(
        "/runs/{}/nodes/{}/{}/{index}",
        segment(run),
        segment(node),
        segment(stage)
    )
}

/// Stores a judgement, then sends the browser to `page` (or says why not).
fn store_then_show(feedback: &FeedbackStore, judgement: &Feedback, page: &str) -> Response {
    match feedback.add(judgement) {
        Ok(_) => see_other(page),
        Err(error) => refused(&error.to_string()),
    }
}

/// A unified diff as escaped lines, additions and removals marked.
fn diff_lines(diff: &str) -> String {
    let mut out = String::new();
    for line in diff.lines() {
        let class = if line.starts_with('+') && !line.starts_with("+++") {
            " class=\"add\""
        } else if line.starts_with('-') && !line.starts_with("---") {
            " class=\"del\""
        } else {
            ""
        };
        let _ = writeln!(out, "<span{class}>{}</span>", html(line));
    }
    out
}

/// The run's directory: the one its last launch record names, else
/// `<runs_dir>/<run>` (only for ids that can name a folder).
fn run_dir(state: &DashboardState, run: &str) -> Option<PathBuf> {
    let launched = state
        .store
        .last_event(run, "launch")
        .ok()
        .flatten()
        .and_then(|record| match record.event() {
            Ok(EvolutionEvent::Launch(launch)) => launch.dir.clone(),
            _ => None,
        });
    let dir = match launched {
        Some(dir) => dir,
        None if safe_id(run) => state.runs_dir.join(run),
        None => return None,
    };
    Path::new(&dir).is_dir().then_some(dir)
}

/// Charts as images, each under its name. The charts escape every text
/// they hold (the report crate's own guarantee), and as images they are not
/// markup in the page.
fn charts_html(charts: Result<Vec<(String, String)>, hyperagents_report::ReportError>) -> String {
    let mut out = String::new();
    match charts {
        Ok(charts) => {
            for (name, svg) in charts {
                let _ = write!(
                    out,
                    "<h3>{}</h3><p class=\"svg\"><img alt=\"{}\" src=\"data:image/svg+xml;base64,{}\"></p>",
                    html(name.trim_end_matches(".svg")),
                    html(&name),
                    base64(svg.as_bytes()),
                );
            }
        }
        Err(error) => {
            let _ = write!(
                out,
                "<p>charts unavailable: {}</p>",
                html(&error.to_string())
            );
        }
    }
    out
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
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
