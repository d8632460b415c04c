//! [`WebArenaDomain`] end to end in real Chromium: a small shop served on
//! loopback stands in for WebArena's shopping site, a task file in
//! `test.raw.json`'s format points at it through `__SHOPPING__`, and
//! scripted policies drive the environments through `Environment::act`
//! with refs read from `observe()`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::State;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use hyperagents_browser::{BrowserPool, PoolConfig};
use hyperagents_domain::judge::{Judge, Verdict};
use hyperagents_domain::{Domain, DomainError, Environment};
use hyperagents_webarena::{
    BrowserSource, ConfiguredSiteHooks, Dataset, EvalOptions, EvalPage, LoginForm, PageError,
    ResetAction, Site, SiteConfig, SiteHookConfig, SiteHooks, WebArenaDomain, WebArenaDomainConfig,
    WebArenaSuite,
};
use serde_json::{Value, json};

use crate::common::suite_of;

/// Everything a test may take; a hung browser fails the test instead.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

const STRING_TASK: &str = "101";
const URL_TASK: &str = "102";
const PROGRAM_TASK: &str = "103";
const GITLAB_TASK: &str = "104";
const UNKNOWN_REFERENCE_TASK: &str = "105";

const HOME_PAGE: &str = r#"<!doctype html><html><head><title>One Stop Market</title></head><body>
<h1>One Stop Market</h1><p id="hours">Open from 9am to 5pm</p>
<a href="/shopping/orders?page=1">My orders</a> <a href="/shopping/contact">Contact us</a>
</body></html>"#;

const LOGIN_PAGE: &str = r#"<!doctype html><html><body>
<form method="post" action="/shopping/login">
<input id="username" name="username"><input id="password" name="password" type="password">
<button id="sign-in" type="submit">Sign in</button></form></body></html>"#;

const NEW_NOTE_PAGE: &str = r#"<!doctype html><html><body>
<form method="post" action="/shopping/notes">
<input name="text" placeholder="Note"><button type="submit">Save note</button>
</form></body></html>"#;

/// The shop's state, as the tests inspect it.
#[derive(Default)]
struct Shop {
    notes: Mutex<Vec<String>>,
    logins: AtomicUsize,
    resets: AtomicUsize,
    refused_notes: AtomicUsize,
}

impl Shop {
    fn logins(&self) -> usize {
        self.logins.load(Ordering::SeqCst)
    }
    fn resets(&self) -> usize {
        self.resets.load(Ordering::SeqCst)
    }
}

fn shop_app(shop: Arc<Shop>) -> Router {
    Router::new()
        .route("/shopping/", get(|| async { Html(HOME_PAGE) }))
        .route(
            "/shopping/orders",
            get(|| async { Html("<h1>Order history</h1><p>No orders yet.</p>") }),
        )
        .route(
            "/shopping/contact",
            get(|| async { Html("<title>Contact</title><h1>Contact</h1><p>Write to us.</p>") }),
        )
        .route(
            "/shopping/login",
            get(|| async { Html(LOGIN_PAGE) }).post(login),
        )
        .route("/shopping/notes/new", get(|| async { Html(NEW_NOTE_PAGE) }))
        .route("/shopping/notes", get(notes).post(add_note))
        .route("/shopping/reset", post(reset))
        .with_state(shop)
}

async fn login(
    State(shop): State<Arc<Shop>>,
    Form(form): Form<std::collections::HashMap<String, String>>,
) -> Response {
    if form.get("username").map(String::as_str) == Some("alice")
        && form.get("password").map(String::as_str) == Some("secret")
    {
        shop.logins.fetch_add(1, Ordering::SeqCst);
        (
            [(SET_COOKIE, "session=alice; Path=/")],
            Redirect::to("/shopping/"),
        )
            .into_response()
    } else {
        Html(LOGIN_PAGE).into_response()
    }
}

async fn notes(State(shop): State<Arc<Shop>>) -> Html<String> {
    let items: String = shop
        .notes
        .lock()
        .unwrap()
        .iter()
        .map(|note| {
            let escaped = note
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            format!("<li>{escaped}</li>")
        })
        .collect();
    Html(format!(
        "<title>Notes</title><h1>Notes</h1><ul id=\"notes\">{items}</ul>"
    ))
}

/// Saving a note needs the session the login hook creates.
async fn add_note(
    State(shop): State<Arc<Shop>>,
    headers: HeaderMap,
    Form(form): Form<std::collections::HashMap<String, String>>,
) -> Response {
    let signed_in = headers
        .get(COOKIE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|cookies| cookies.split(';').any(|c| c.trim() == "session=alice"));
    if !signed_in {
        shop.refused_notes.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::FORBIDDEN, Html("<p>Sign in first.</p>")).into_response();
    }
    let text = form.get("text").cloned().unwrap_or_default();
    shop.notes.lock().unwrap().push(text);
    Redirect::to("/shopping/notes").into_response()
}

async fn reset(State(shop): State<Arc<Shop>>) -> StatusCode {
    shop.notes.lock().unwrap().clear();
    shop.resets.fetch_add(1, Ordering::SeqCst);
    StatusCode::OK
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

/// The shop, plus a second server on another origin standing for the
/// shop's admin panel: configured, but not a site of the shop's tasks.
struct Sites {
    shop: Arc<Shop>,
    shop_base: String,
    admin_base: String,
}

async fn serve_sites() -> Sites {
    let shop = Arc::new(Shop::default());
    let shop_base = serve(shop_app(Arc::clone(&shop))).await;
    let admin_base =
        serve(Router::new().route("/admin/", get(|| async { Html("<h1>Admin panel</h1>") }))).await;
    Sites {
        shop,
        shop_base,
        admin_base,
    }
}

fn task(
    id: u32,
    sites: &[&str],
    start_url: &str,
    intent: &str,
    require_login: bool,
    require_reset: bool,
    eval: Value,
) -> Value {
    json!({
        "sites": sites,
        "task_id": id,
        "require_login": require_login,
        "storage_state": null,
        "start_url": start_url,
        "geolocation": null,
        "intent_template": intent,
        "instantiation_dict": {},
        "intent": intent,
        "require_reset": require_reset,
        "eval": eval,
        "intent_template_id": id
    })
}

/// The task file: one task per evaluator, and two the domain must refuse.
fn suite(sites: &Sites) -> (tempfile::TempDir, WebArenaSuite) {
    let tasks = [
        task(
            101,
            &["shopping"],
            "__SHOPPING__/",
            "When is the store open?",
            false,
            false,
            json!({
                "eval_types": ["string_match"],
                "reference_answers": {"must_include": ["9am"], "fuzzy_match": ["from 9am to 5pm"]},
                "reference_url": "",
                "program_html": []
            }),
        ),
        task(
            102,
            &["shopping"],
            "__SHOPPING__/ |AND| __SHOPPING__/contact",
            "Show me my order history",
            false,
            false,
            json!({
                "eval_types": ["url_match"],
                "reference_answers": null,
                "reference_url": "__SHOPPING__/orders",
                "program_html": [],
                "url_note": "GOLD in PRED"
            }),
        ),
        task(
            103,
            &["shopping"],
            "__SHOPPING__/notes/new",
            "Leave a note saying 'hello world'",
            true,
            true,
            json!({
                "eval_types": ["program_html"],
                "reference_answers": null,
                "reference_url": "",
                "program_html": [{
                    "url": "__SHOPPING__/notes",
                    "locator": "document.querySelector('#notes').outerText",
                    "required_contents": {"must_include": ["hello world"]}
                }]
            }),
        ),
        task(
            104,
            &["gitlab"],
            "__GITLAB__/explore",
            "Star the repository",
            true,
            false,
            json!({
                "eval_types": ["url_match"],
                "reference_answers": null,
                "reference_url": "__GITLAB__/starred",
                "program_html": []
            }),
        ),
        task(
            105,
            &["shopping"],
            "__SHOPPING__/",
            "Describe the store",
            true,
            true,
            json!({
                "eval_types": ["string_match"],
                "reference_answers": {"semantic_match": "a store"},
                "reference_url": "",
                "program_html": []
            }),
        ),
    ];
    let config = SiteConfig::new()
        .with(Site::Shopping, format!("{}/shopping", sites.shop_base))
        .with(Site::ShoppingAdmin, format!("{}/admin", sites.admin_base));
    suite_of(&tasks, Dataset::Original, config)
}

fn hooks(sites: &Sites) -> Arc<dyn SiteHooks> {
    let shop = &sites.shop_base;
    Arc::new(ConfiguredSiteHooks::new().with(
        Site::Shopping,
        SiteHookConfig {
            login: Some(LoginForm {
                url: format!("{shop}/shopping/login"),
                username_selector: "#username".into(),
                password_selector: "#password".into(),
                submit_selector: "#sign-in".into(),
                username: "alice".into(),
                password: "secret".to_string().into(),
                timeout: Duration::from_secs(20),
            }),
            reset: Some(ResetAction::Http {
                method: "POST".into(),
                url: format!("{shop}/shopping/reset"),
            }),
        },
    ))
}

/// A `fuzzy_match` judge double: an answer is equivalent when it names
/// the closing time. Records what it was asked.
#[derive(Default)]
struct ClosingTimeJudge {
    calls: Mutex<Vec<(String, String, String)>>,
}

#[async_trait]
impl Judge for ClosingTimeJudge {
    async fn judge(
        &self,
        question: &str,
        reference: &str,
        answer: &str,
    ) -> Result<Verdict, DomainError> {
        self.calls
            .lock()
            .unwrap()
            .push((question.into(), reference.into(), answer.into()));
        Ok(Verdict {
            correct: answer.contains("5pm"),
            reason: "scripted".into(),
        })
    }
}

async fn start_domain(
    suite: WebArenaSuite,
    judge: Arc<dyn Judge>,
    hooks: Option<Arc<dyn SiteHooks>>,
    browser: BrowserSource,
) -> WebArenaDomain {
    let mut config = WebArenaDomainConfig::new(judge);
    config.browser = browser;
    config.hooks = hooks;
    config.eval = EvalOptions {
        settle_after_goto: Duration::ZERO,
        ..EvalOptions::default()
    };
    WebArenaDomain::start(suite, config)
        .await
        .expect("the domain must start (setup installs Debian's chromium)")
}

fn own_pool() -> BrowserSource {
    BrowserSource::Launch(PoolConfig::default())
}

/// The ref of the first element whose observation line contains `needle`.
fn reference(observation: &str, needle: &str) -> u64 {
    let line = observation
        .lines()
        .find(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("no element with {needle:?} in:\n{observation}"));
    line[1..line.find(']').unwrap()].parse().unwrap()
}

/// Observes until the observation contains `needle` (a page still loading).
async fn observe_until(env: &mut dyn Environment, needle: &str) -> String {
    let mut observation = String::new();
    for _ in 0..250 {
        observation = env.observe().await.unwrap();
        if observation.contains(needle) {
            return observation;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never saw {needle:?}; last observation:\n{observation}");
}

async fn answer(env: &mut dyn Environment, text: &str) {
    let outcome = env.act("answer", &json!({"text": text})).await.unwrap();
    assert!(outcome.done, "{outcome:?}");
}

#[tokio::test]
async fn string_match_task_scores_the_answer() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let sites = serve_sites().await;
        let (_dir, suite) = suite(&sites);
        let judge = Arc::new(ClosingTimeJudge::default());
        let domain = start_domain(suite, judge.clone(), None, own_pool()).await;
        assert_eq!(domain.name(), "webarena");
        assert_eq!(domain.task_ids(), ["101", "102", "103", "104", "105"]);

        let mut env = domain.reset(STRING_TASK, 0).await.unwrap();
        assert_eq!(env.instruction(), "When is the store open?");
        let actions: Vec<String> = env.actions().into_iter().map(|a| a.name).collect();
        for name in ["click", "type", "goto", "back", "tab", "answer"] {
            assert!(
                actions.iter().any(|a| a == name),
                "{name} missing: {actions:?}"
            );
        }
        let observation = env.observe().await.unwrap();
        assert!(
            observation.contains("Open from 9am to 5pm"),
            "{observation}"
        );
        answer(env.as_mut(), "The store is open from 9am to 5pm.").await;
        let score = env.score().await.unwrap();
        assert!(score.success, "{score:?}");
        assert_eq!(score.value, 1.0);
        // Scoring twice gives the first verdict without asking again.
        assert_eq!(env.score().await.unwrap(), score);
        assert_eq!(
            judge.calls.lock().unwrap().clone(),
            [(
                "When is the store open?".to_string(),
                "from 9am to 5pm".to_string(),
                "the store is open from 9am to 5pm.".to_string()
            )]
        );
        let refused = env.act("goto", &json!({"url": sites.shop_base})).await;
        assert!(
            matches!(refused, Err(DomainError::EpisodeOver)),
            "{refused:?}"
        );
        drop(env);

        let mut env = domain.reset(STRING_TASK, 1).await.unwrap();
        answer(env.as_mut(), "From 8am to 4pm").await;
        let score = env.score().await.unwrap();
        assert!(!score.success, "{score:?}");
        assert_eq!(score.value, 0.0);
        assert!(score.reason.contains("must_include"), "{score:?}");
        domain.close().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn url_match_task_opens_two_tabs_and_scores_the_current_one() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let sites = serve_sites().await;
        let (_dir, suite) = suite(&sites);
        let domain = start_domain(
            suite,
            Arc::new(ClosingTimeJudge::default()),
            None,
            own_pool(),
        )
        .await;
        let shop = &sites.shop_base;

        let mut env = domain.reset(URL_TASK, 0).await.unwrap();
        let observation = env.observe().await.unwrap();
        assert!(
            observation.contains(&format!("url: {shop}/shopping/\n")),
            "the first tab must be current:\n{observation}"
        );
        assert!(
            observation.contains(&format!("[1] {shop}/shopping/contact")),
            "{observation}"
        );
        let link = reference(&observation, "\"My orders\"");
        env.act("click", &json!({"ref": link})).await.unwrap();
        observe_until(env.as_mut(), "Order history").await;
        answer(env.as_mut(), "done").await;
        let score = env.score().await.unwrap();
        assert!(score.success, "{score:?}");
        drop(env);

        // The orders page is open in the first tab, but the agent ends on
        // the second: url_match reads the tab the agent left current.
        let mut env = domain.reset(URL_TASK, 0).await.unwrap();
        let observation = env.observe().await.unwrap();
        assert!(!observation.contains("Order history"), "{observation}");
        let link = reference(&observation, "\"My orders\"");
        env.act("click", &json!({"ref": link})).await.unwrap();
        observe_until(env.as_mut(), "Order history").await;
        env.act("tab", &json!({"index": 1})).await.unwrap();
        observe_until(env.as_mut(), "Write to us").await;
        answer(env.as_mut(), "done").await;
        let score = env.score().await.unwrap();
        assert!(!score.success, "{score:?}");
        assert!(score.reason.contains("url_match"), "{score:?}");
        domain.close().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn program_html_task_checks_what_the_agent_typed() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let sites = serve_sites().await;
        let (_dir, suite) = suite(&sites);
        let domain = start_domain(
            suite,
            Arc::new(ClosingTimeJudge::default()),
            Some(hooks(&sites)),
            own_pool(),
        )
        .await;

        for (typed, expect_success) in [("hello world", true), ("goodbye", false)] {
            let mut env = domain.reset(PROGRAM_TASK, 0).await.unwrap();
            let observation = env.observe().await.unwrap();
            let field = reference(&observation, "placeholder=\"Note\"");
            env.act("type", &json!({"ref": field, "text": typed}))
                .await
                .unwrap();
            let save = reference(&observation, "\"Save note\"");
            env.act("click", &json!({"ref": save})).await.unwrap();
            // Saved (which needs the login hook's session), and listed.
            let notes = observe_until(env.as_mut(), "title: \"Notes\"").await;
            assert!(notes.contains(typed), "{notes}");
            answer(env.as_mut(), "done").await;
            let score = env.score().await.unwrap();
            assert_eq!(score.success, expect_success, "{typed}: {score:?}");
            if !expect_success {
                assert!(score.reason.contains("program_html"), "{score:?}");
            }
        }
        // Each episode reset the shop (so "hello world" was gone for the
        // second) and logged in before the agent started.
        assert_eq!(sites.shop.resets(), 2);
        assert_eq!(sites.shop.logins(), 2);
        assert_eq!(sites.shop.refused_notes.load(Ordering::SeqCst), 0);
        assert_eq!(
            sites.shop.notes.lock().unwrap().clone(),
            ["goodbye".to_string()]
        );
        domain.close().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn navigation_is_limited_to_the_tasks_sites() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let sites = serve_sites().await;
        let (_dir, suite) = suite(&sites);
        let domain = start_domain(
            suite,
            Arc::new(ClosingTimeJudge::default()),
            None,
            own_pool(),
        )
        .await;
        let shop = &sites.shop_base;
        let mut env = domain.reset(STRING_TASK, 0).await.unwrap();

        let admin = format!("{}/admin/", sites.admin_base);
        for (url, expected) in [
            // Configured, reachable, but not one of this task's sites.
            (admin.as_str(), "not an allowed site"),
            (
                "javascript:document.title='owned'",
                "`javascript:` URLs are not allowed",
            ),
            ("file:///etc/passwd", "`file:` URLs are not allowed"),
        ] {
            match env.act("goto", &json!({"url": url})).await {
                Err(DomainError::BadArguments { action, message }) => {
                    assert_eq!(action, "goto");
                    assert!(message.contains(expected), "{url}: {message}");
                }
                other => panic!("{url}: expected a refusal, got {other:?}"),
            }
        }
        let observation = env.observe().await.unwrap();
        assert!(
            observation.contains(&format!("url: {shop}/shopping/\n")),
            "{observation}"
        );
        assert!(!observation.contains("owned"), "{observation}");

        // Pages of the task's own site open.
        env.act("goto", &json!({"url": format!("{shop}/shopping/contact")}))
            .await
            .unwrap();
        observe_until(env.as_mut(), "Write to us").await;
        domain.close().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn unsupported_tasks_fail_before_touching_browser_or_sites() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let sites = serve_sites().await;
        let pool = BrowserPool::launch(PoolConfig::default()).await.unwrap();
        // The test holds the pool's only window: a reset that tried to
        // lease one would wait forever.
        let held = pool.checkout().await.unwrap();
        let (_dir, with_hooks) = suite(&sites);
        let domain = start_domain(
            with_hooks,
            Arc::new(ClosingTimeJudge::default()),
            Some(hooks(&sites)),
            BrowserSource::Shared(pool.clone()),
        )
        .await;
        let (_dir, without_hooks) = suite(&sites);
        let domain_without_hooks = start_domain(
            without_hooks,
            Arc::new(ClosingTimeJudge::default()),
            None,
            BrowserSource::Shared(pool.clone()),
        )
        .await;

        let cases: [(&WebArenaDomain, &str, &str); 3] = [
            (&domain, GITLAB_TASK, "`gitlab` is not configured"),
            (&domain, UNKNOWN_REFERENCE_TASK, "semantic_match"),
            (&domain_without_hooks, PROGRAM_TASK, "requires a site reset"),
        ];
        for (domain, task, expected) in cases {
            let result = tokio::time::timeout(Duration::from_secs(20), domain.reset(task, 0))
                .await
                .unwrap_or_else(|_| panic!("task {task}: reset waited for a window"));
            match result {
                Err(DomainError::Unsupported(message)) => {
                    assert!(message.contains(expected), "task {task}: {message}");
                }
                Err(other) => panic!("task {task}: expected Unsupported, got {other}"),
                Ok(_) => panic!("task {task}: expected Unsupported, got an environment"),
            }
        }
        for unknown in ["999", "shopping-1"] {
            assert!(matches!(
                domain.reset(unknown, 0).await,
                Err(DomainError::UnknownTask(ref id)) if id == unknown
            ));
        }
        // Task 105 asks for a reset and a login: neither ran.
        assert_eq!(sites.shop.resets(), 0);
        assert_eq!(sites.shop.logins(), 0);
        drop(held);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn host_page_reads_the_document_and_maps_script_errors() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let sites = serve_sites().await;
        let shop = &sites.shop_base;
        let pool = BrowserPool::launch(PoolConfig::default()).await.unwrap();
        let mut window = pool.checkout().await.unwrap();
        let page = window.main();
        page.goto(&format!("{shop}/shopping/")).await.unwrap();
        assert_eq!(
            page.current_url().await.unwrap(),
            format!("{shop}/shopping/")
        );
        // A same-document navigation, which only the document itself sees
        // at once.
        page.eval_js("history.pushState({}, '', '/shopping/orders?page=2')")
            .await
            .unwrap();
        assert_eq!(
            page.current_url().await.unwrap(),
            format!("{shop}/shopping/orders?page=2")
        );
        assert_eq!(
            page.eval_js("Promise.resolve(6 * 7)").await.unwrap(),
            json!(42)
        );
        assert_eq!(
            page.eval_js("document.querySelector('#hours').textContent")
                .await
                .unwrap(),
            json!("Open from 9am to 5pm")
        );
        assert!(matches!(
            page.eval_js("document.querySelector('#missing').textContent")
                .await,
            Err(PageError::Script(_))
        ));
        let content = page.content().await.unwrap();
        assert!(content.starts_with("<!DOCTYPE html><html>"), "{content}");
    })
    .await
    .expect("test timed out");
}
