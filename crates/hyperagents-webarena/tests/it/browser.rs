//! `program_html`, `url_match`, the `func:` helpers and the site hooks in
//! a real headless Chromium, against a small site served on loopback that
//! mimics the pages and REST endpoints WebArena's checks read.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
use chromiumoxide::{Browser, BrowserConfig, Page};
use futures::StreamExt;
use hyperagents_domain::DomainError;
use hyperagents_webarena::{
    ApiCredentials, ConfiguredSiteHooks, Dataset, EvalOptions, EvalPage, LoginForm, PageError,
    ResetAction, Site, SiteConfig, SiteHookConfig, SiteHooks, evaluate,
};
use serde_json::{Value, json};

use crate::common::{ScriptedJudge, suite_of};

/// Everything a test may take; a hung browser fails the test instead.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Default)]
struct SiteState {
    resets: AtomicUsize,
}

const POST_PAGE: &str = r#"<!doctype html><html><body>
<div class="submission__inner"><h1 class="submission__title">Adults reading to each other out loud</h1>
<div class="submission__body">Tom &amp; Jerry&#39;s reading club</div></div>
<div class="submission__vote"><form class="vote vote--user-upvoted"></form></div>
</body></html>"#;

const PRODUCT_PAGE: &str = r#"<!doctype html><html><body>
<input name="product[price]" value="25.00">
<input name="discount_amount" value="">
<div data-index="actions"><div class="admin__collapsible-title"
  onclick="document.querySelector('[name=&quot;discount_amount&quot;]').value = '20'">Actions</div></div>
<p>Price: 25 &euro;</p>
</body></html>"#;

const MEMBERS_PAGE: &str = r#"<!doctype html><html><body><table>
<tr><td data-label="Account"><span class="gl-avatar-labeled-sublabel">@byteblaze</span></td>
    <td class="col-max-role"><span>Owner</span></td></tr>
<tr><td data-label="Account"><span class="gl-avatar-labeled-sublabel">@yjlou</span></td>
    <td class="col-max-role"><span>Developer</span></td></tr>
</table></body></html>"#;

const LOGIN_PAGE: &str = r#"<!doctype html><html><body>
<form method="post" action="/gitlab/users/sign_in">
<input id="user_login" name="login"><input id="user_password" name="password" type="password">
<button type="submit" id="sign_in">Sign in</button></form></body></html>"#;

fn app(state: Arc<SiteState>) -> Router {
    Router::new()
        .route("/f/{forum}/{id}/", get(|| async { Html(POST_PAGE) }))
        .route("/f/{forum}/{id}/{*rest}", get(|| async { Html(POST_PAGE) }))
        .route(
            "/shopping_admin/catalog/product/edit/id/{id}/",
            get(|| async { Html(PRODUCT_PAGE) }),
        )
        .route(
            "/gitlab/byteblaze/dotfiles/-/project_members",
            get(|| async { Html(MEMBERS_PAGE) }),
        )
        .route(
            "/gitlab/users/sign_in",
            get(|| async { Html(LOGIN_PAGE) }).post(sign_in),
        )
        .route("/gitlab/dashboard", get(|| async { Html("<p>Welcome</p>") }))
        .route(
            "/shopping/sales/order/view/order_id/{id}/",
            get(|Path(id): Path<u32>| async move {
                Html(format!(
                    "<div class=\"order-details-items ordered\">Order #{id}: Sprite Yoga Strap</div>"
                ))
            }),
        )
        .route("/shopping/rest/default/V1/integration/admin/token", post(admin_token))
        .route("/shopping/rest/V1/orders", get(orders))
        .route("/shopping/rest/V1/products/{sku}/reviews", get(reviews))
        .route("/reset", post(reset))
        .route("/reset-broken", post(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .with_state(state)
}

async fn sign_in(Form(form): Form<std::collections::HashMap<String, String>>) -> Response {
    if form.get("login").map(String::as_str) == Some("byteblaze")
        && form.get("password").map(String::as_str) == Some("hunter2")
    {
        Redirect::to("/gitlab/dashboard").into_response()
    } else {
        Html(LOGIN_PAGE).into_response()
    }
}

async fn admin_token(Json(body): Json<Value>) -> Response {
    if body == json!({"username": "admin", "password": "admin1234"}) {
        Json("token-1").into_response()
    } else {
        (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "bad credentials"})),
        )
            .into_response()
    }
}

fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        == Some("Bearer token-1")
}

async fn orders(headers: HeaderMap, Query(query): Query<Vec<(String, String)>>) -> Response {
    let sorted_newest_first = query.contains(&(
        "searchCriteria[sortOrders][0][direction]".to_string(),
        "DESC".to_string(),
    ));
    if !authorized(&headers) || !sorted_newest_first {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    Json(json!({"items": [{"increment_id": "000000189"}]})).into_response()
}

async fn reviews(headers: HeaderMap, Path(sku): Path<String>) -> Response {
    if !authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let reviews = if sku == "B0EMPTY" {
        json!([])
    } else {
        json!([
            {"nickname": "Emma", "ratings": [{"rating_name": "Rating", "percent": 60}]},
            {"nickname": "Grace Nguyen", "ratings": [{"rating_name": "Rating", "percent": 80}]}
        ])
    };
    Json(reviews).into_response()
}

async fn reset(State(state): State<Arc<SiteState>>) -> StatusCode {
    state.resets.fetch_add(1, Ordering::SeqCst);
    StatusCode::OK
}

/// The site on 127.0.0.1:0; returns its base URL.
async fn serve(state: Arc<SiteState>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app(state)).await.unwrap() });
    format!("http://{address}")
}

/// [`EvalPage`] over a chromiumoxide page.
struct ChromiumPage {
    page: Page,
}

#[async_trait]
impl EvalPage for ChromiumPage {
    async fn current_url(&mut self) -> Result<String, PageError> {
        // Asked of the document itself: chromiumoxide's cached target URL
        // can lag behind a navigation.
        match self.eval_js("window.location.href").await? {
            Value::String(url) => Ok(url),
            other => Err(PageError::Browser(format!("location is {other}"))),
        }
    }

    async fn goto(&mut self, url: &str) -> Result<(), PageError> {
        self.page
            .goto(url)
            .await
            .map(|_| ())
            .map_err(|error| PageError::Browser(error.to_string()))
    }

    async fn eval_js(&mut self, expression: &str) -> Result<Value, PageError> {
        let params = EvaluateParams::builder()
            .expression(expression)
            .return_by_value(true)
            .await_promise(true)
            .build()
            .map_err(PageError::Browser)?;
        match self.page.evaluate_expression(params).await {
            Ok(result) => Ok(result.value().cloned().unwrap_or(Value::Null)),
            Err(chromiumoxide::error::CdpError::JavascriptException(exception)) => {
                Err(PageError::Script(exception.text.clone()))
            }
            Err(error) => Err(PageError::Browser(error.to_string())),
        }
    }
}

struct Chromium {
    browser: Browser,
    _profile: tempfile::TempDir,
}

impl Chromium {
    async fn launch() -> Self {
        let profile = tempfile::tempdir().unwrap();
        let config = BrowserConfig::builder()
            .chrome_executable("/usr/bin/chromium")
            .no_sandbox()
            .arg("disable-gpu")
            .user_data_dir(profile.path())
            .build()
            .unwrap();
        let (browser, mut handler) = Browser::launch(config).await.unwrap();
        tokio::spawn(async move { while handler.next().await.is_some() {} });
        Self {
            browser,
            _profile: profile,
        }
    }

    async fn page(&self, url: &str) -> ChromiumPage {
        ChromiumPage {
            page: self.browser.new_page(url).await.unwrap(),
        }
    }

    async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
    }
}

fn program_html_task(
    id: u32,
    sites: &[&str],
    eval_types: &[&str],
    reference_url: &str,
    checks: Value,
) -> Value {
    json!({
        "sites": sites,
        "task_id": id,
        "require_login": true,
        "storage_state": null,
        "start_url": format!("__{}__", sites[0].to_uppercase()),
        "geolocation": null,
        "intent_template": "Do it",
        "instantiation_dict": {},
        "intent": "Do it",
        "require_reset": false,
        "eval": {
            "eval_types": eval_types,
            "reference_answers": null,
            "reference_url": reference_url,
            "program_html": checks,
            "url_note": "GOLD in PRED"
        },
        "intent_template_id": 1
    })
}

/// Reddit at the server's root (its helper reads `/f/<forum>/<id>` from the
/// start of the path, as on WebArena's deployment); the others under
/// `/<site name>`.
fn sites_on(base: &str) -> SiteConfig {
    [Site::Gitlab, Site::Shopping, Site::ShoppingAdmin]
        .into_iter()
        .fold(
            SiteConfig::new().with(Site::Reddit, base),
            |config, site| config.with(site, format!("{base}/{}", site.name())),
        )
}

fn options() -> EvalOptions {
    EvalOptions {
        settle_after_goto: Duration::ZERO,
        shopping_admin_api: Some(ApiCredentials {
            username: "admin".into(),
            password: "admin1234".to_string().into(),
        }),
        http_timeout: Duration::from_secs(10),
    }
}

fn tasks() -> Vec<Value> {
    vec![
        // 1: the agent left a comment page; the check goes back to the post.
        program_html_task(
            1,
            &["reddit"],
            &["url_match", "program_html"],
            "__REDDIT__/f/books/59421",
            json!([
                {"url": "func:reddit_get_post_url('__last_url__')",
                 "locator": "document.querySelector('.submission__inner').outerText",
                 "required_contents": {"must_include": ["Adults reading |OR| Children", "Tom & Jerry's"]}},
                {"url": "last",
                 "locator": "document.querySelector('div.submission__vote').querySelector('form').getAttribute('class')",
                 "required_contents": {"must_include": ["vote vote--user-upvoted"]}},
                {"url": "last", "locator": "",
                 "required_contents": {"must_include": ["tom & jerry's reading club"]}}
            ]),
        ),
        // 2: values read after a preparation click; a missing element is empty text.
        program_html_task(
            2,
            &["shopping_admin"],
            &["program_html"],
            "",
            json!([
                {"url": "__SHOPPING_ADMIN__/catalog/product/edit/id/7/",
                 "locator": "document.querySelector('[name=\"product[price]\"').value",
                 "required_contents": {"exact_match": "25.00"}},
                {"url": "last",
                 "locator": "document.querySelector('[name=\"discount_amount\"').value",
                 "prep_actions": ["document.querySelector('[data-index=\"actions\"]').querySelector('.admin__collapsible-title').click()"],
                 "required_contents": {"exact_match": "20"}},
                {"url": "last",
                 "locator": "document.querySelector('#no-such-element').outerText",
                 "required_contents": {"exact_match": ""}},
                {"url": "last",
                 "locator": "document.querySelectorAll('input').length",
                 "required_contents": {"exact_match": "2"}}
            ]),
        ),
        // 3: the GitLab role helper.
        program_html_task(
            3,
            &["gitlab"],
            &["program_html"],
            "",
            json!([
                {"url": "__GITLAB__/byteblaze/dotfiles/-/project_members",
                 "locator": "func:gitlab_get_project_memeber_role(__page__, 'yjlou')",
                 "required_contents": {"must_include": ["Developer"]}},
                {"url": "last",
                 "locator": "func:gitlab_get_project_memeber_role(__page__, 'nobody')",
                 "required_contents": {"exact_match": ""}}
            ]),
        ),
        // 4: the shopping REST helpers.
        program_html_task(
            4,
            &["shopping"],
            &["program_html"],
            "",
            json!([
                {"url": "func:shopping_get_latest_order_url()",
                 "locator": "document.querySelector('.order-details-items.ordered').outerText",
                 "required_contents": {"must_include": ["Order #189", "Sprite Yoga Strap"]}},
                {"url": "last", "locator": "func:shopping_get_sku_latest_review_author('B07XYZ')",
                 "required_contents": {"must_include": ["Grace Nguyen"]}},
                {"url": "last", "locator": "func:shopping_get_sku_latest_review_rating('B07XYZ')",
                 "required_contents": {"exact_match": "80"}},
                {"url": "last", "locator": "func:shopping_get_sku_latest_review_author('B0EMPTY')",
                 "required_contents": {"exact_match": ""}}
            ]),
        ),
        // 5: a check that must fail.
        program_html_task(
            5,
            &["reddit"],
            &["program_html"],
            "",
            json!([
                {"url": "__REDDIT__/f/books/59421/",
                 "locator": "document.querySelector('.submission__title').outerText",
                 "required_contents": {"exact_match": "Children reading"}}
            ]),
        ),
    ]
}

#[tokio::test]
async fn program_html_and_url_match_in_chromium() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let base = serve(Arc::default()).await;
        let (_dir, suite) = suite_of(&tasks(), Dataset::Original, sites_on(&base));
        let chromium = Chromium::launch().await;
        let judge = ScriptedJudge::default();
        let options = options();

        let mut page = chromium
            .page(&format!("{base}/f/books/59421/adults-reading/-/comment/12"))
            .await;
        let score = evaluate(&suite.task(1).unwrap(), "", &mut page, &judge, &options)
            .await
            .unwrap();
        assert!(score.success, "{}", score.reason);
        // The helper navigated the page back to the post.
        assert_eq!(
            page.current_url().await.unwrap(),
            format!("{base}/f/books/59421/")
        );

        // url_match reads the page as the agent left it.
        let mut elsewhere = chromium.page(&format!("{base}/gitlab/dashboard")).await;
        let score = evaluate(
            &suite.task(1).unwrap(),
            "",
            &mut elsewhere,
            &judge,
            &options,
        )
        .await
        .unwrap();
        assert!(!score.success);
        assert!(score.reason.contains("url_match"), "{}", score.reason);

        for id in [2, 3, 4] {
            let score = evaluate(&suite.task(id).unwrap(), "", &mut page, &judge, &options)
                .await
                .unwrap();
            assert!(score.success, "task {id}: {}", score.reason);
        }
        assert_eq!(
            page.current_url().await.unwrap(),
            format!("{base}/shopping/sales/order/view/order_id/189/")
        );

        let score = evaluate(&suite.task(5).unwrap(), "", &mut page, &judge, &options)
            .await
            .unwrap();
        assert_eq!(score.value, 0.0);
        assert_eq!(score.reason, "program_html: check 1 failed");

        // Without the admin credentials the REST helpers are not guessed at.
        let error = evaluate(
            &suite.task(4).unwrap(),
            "",
            &mut page,
            &judge,
            &EvalOptions::default(),
        )
        .await
        .unwrap_err();
        assert!(matches!(error, DomainError::Unsupported(_)), "{error}");
        chromium.close().await;
    })
    .await
    .expect("the browser test hung");
}

#[tokio::test]
async fn site_hooks_log_in_and_reset() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let state = Arc::new(SiteState::default());
        let base = serve(state.clone()).await;
        let chromium = Chromium::launch().await;
        let form = |password: &str| LoginForm {
            url: format!("{base}/gitlab/users/sign_in"),
            username_selector: "#user_login".into(),
            password_selector: "#user_password".into(),
            submit_selector: "#sign_in".into(),
            username: "byteblaze".into(),
            password: password.to_string().into(),
            timeout: Duration::from_secs(10),
        };
        let hooks = ConfiguredSiteHooks::new()
            .with(
                Site::Gitlab,
                SiteHookConfig {
                    login: Some(form("hunter2")),
                    reset: Some(ResetAction::Http {
                        method: "POST".into(),
                        url: format!("{base}/reset"),
                    }),
                },
            )
            .with(
                Site::Reddit,
                SiteHookConfig {
                    login: Some(LoginForm {
                        timeout: Duration::from_millis(500),
                        ..form("wrong")
                    }),
                    reset: Some(ResetAction::Http {
                        method: "POST".into(),
                        url: format!("{base}/reset-broken"),
                    }),
                },
            )
            .with(
                Site::Shopping,
                SiteHookConfig {
                    login: None,
                    reset: Some(ResetAction::Command {
                        program: "sh".into(),
                        args: vec!["-c".into(), "exit 0".into()],
                    }),
                },
            )
            .with(
                Site::Map,
                SiteHookConfig {
                    login: None,
                    reset: Some(ResetAction::Command {
                        program: "sh".into(),
                        args: vec!["-c".into(), "echo broken >&2; exit 3".into()],
                    }),
                },
            );

        let mut page = chromium.page("about:blank").await;
        hooks.login(Site::Gitlab, &mut page).await.unwrap();
        assert_eq!(
            page.current_url().await.unwrap(),
            format!("{base}/gitlab/dashboard")
        );
        let error = hooks
            .login(Site::Reddit, &mut page)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("still on the login form"), "{error}");
        assert!(!error.contains("wrong"), "the password leaked: {error}");
        // No login configured: nothing to do.
        hooks.login(Site::Wikipedia, &mut page).await.unwrap();

        hooks.reset(Site::Gitlab).await.unwrap();
        assert_eq!(state.resets.load(Ordering::SeqCst), 1);
        let error = hooks.reset(Site::Reddit).await.unwrap_err().to_string();
        assert!(error.contains("500"), "{error}");
        hooks.reset(Site::Shopping).await.unwrap();
        let error = hooks.reset(Site::Map).await.unwrap_err().to_string();
        assert!(error.contains("broken"), "{error}");
        assert!(hooks.reset(Site::Homepage).await.is_err());
        chromium.close().await;
    })
    .await
    .expect("the browser test hung");
}
