//! The dashboard's router, driven without a socket over a real results
//! store: the runs list, a run page with its curves and nodes, a node page
//! with its diff and meta trace, the typed JSON, hostile text rendered
//! inert, and the token.

#![allow(clippy::unwrap_used)]

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use hyperagents_dashboard::{DashboardState, GenerationRow, RunListItem, router};
use hyperagents_store::{Feedback, NewEvolutionRun, ResultsStore, RunMode, RunStatus};
use serde_json::json;
use tower::ServiceExt;

mod support;

use support::{fixture, node};

async fn get(
    state: &DashboardState,
    uri: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, axum::http::HeaderMap, String) {
    let mut request = Request::builder().uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = router(state.clone())
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 16 << 20)
        .await
        .unwrap();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

async fn post(
    state: &DashboardState,
    uri: &str,
    form: &str,
    origin: Option<&str>,
) -> (StatusCode, axum::http::HeaderMap) {
    let mut request = Request::builder()
        .method("POST")
        .uri(uri)
        .header("host", "127.0.0.1:8765")
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    let response = router(state.clone())
        .oneshot(request.body(Body::from(form.to_string())).unwrap())
        .await
        .unwrap();
    (response.status(), response.headers().clone())
}

/// The text of column `column` (from 0) of `node`'s row in a run page's
/// node table.
fn cell(page: &str, node: &str, column: usize) -> String {
    let row_start = page
        .find(&format!("<tr><td><a href=\"/runs/r1/nodes/{node}\">"))
        .unwrap();
    let row = &page[row_start..];
    let row = &row[..row.find("</tr>").unwrap()];
    row.split("<td>")
        .nth(column + 1)
        .unwrap()
        .split("</td>")
        .next()
        .unwrap()
        .to_string()
}

/// No markup from the store or the run directory comes through live.
fn inert(page: &str) {
    assert!(!page.contains("<script"), "{page}");
    assert!(!page.contains("href=\"javascript:"), "{page}");
}

#[tokio::test]
async fn runs_run_and_node_pages_show_the_archive_with_hostile_text_inert() {
    let dir = tempfile::tempdir().unwrap();
    let state = fixture(dir.path());

    let (status, headers, runs) = get(&state, "/", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none'")
    );
    assert!(runs.contains("<a href=\"/runs/r1\">r1</a>"), "{runs}");
    assert!(
        runs.contains("hyper") && runs.contains("finished"),
        "{runs}"
    );

    let (status, _, run) = get(&state, "/runs/r1", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        run.contains("<a href=\"/runs/r1/nodes/g1c0\">g1c0</a>"),
        "{run}"
    );
    assert!(run.contains("<td>invalid</td>"), "{run}");
    assert!(
        run.contains("<tr><td>meta (making nodes)</td><td>300</td>"),
        "{run}"
    );
    // Nobody judged yet: fitness is the automated score.
    assert_eq!(cell(&run, "g1c0", 7), "as scored");
    assert!(
        run.contains("alt=\"lineage\" src=\"data:image/svg+xml;base64,"),
        "{run}"
    );
    // A finished run does not reload itself.
    assert!(!run.contains("http-equiv=\"refresh\""));
    inert(&run);

    let (status, _, child) = get(&state, "/runs/r1/nodes/g1c0", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        child.contains("<span class=\"del\">-old line</span>"),
        "{child}"
    );
    assert!(
        child.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the diff's text is shown, escaped: {child}"
    );
    assert!(child.contains("The meta step that made it"), "{child}");
    assert!(
        child.contains("Diff against the seed")
            && child.contains("<span class=\"add\">+Answer briefly: {{ goal }}</span>"),
        "{child}"
    );
    inert(&child);
    // Its stage-1 episodes, and the one with a trajectory opens its span tree.
    assert!(child.contains("<h2>Episodes: stage1</h2>"), "{child}");
    assert!(
        child.contains("<a href=\"/runs/r1/nodes/g1c0/stage1/0\">t1</a>"),
        "{child}"
    );
    assert!(
        child.contains("<tr><td>t2</td>"),
        "no trajectory, no link: {child}"
    );
    let (status, _, episode) = get(&state, "/runs/r1/nodes/g1c0/stage1/0", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        episode.contains("Span tree") && episode.contains("What is on the page?"),
        "{episode}"
    );
    assert!(episode.contains("&lt;script&gt;alert(1)"), "{episode}");
    inert(&episode);
    // Its screenshots, from the files its trajectory names, and only .png ones.
    assert!(
        episode.contains("src=\"/runs/r1/nodes/g1c0/stage1/0/screenshots/0\""),
        "{episode}"
    );
    let (status, headers, _) = get(&state, "/runs/r1/nodes/g1c0/stage1/0/screenshots/0", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "image/png");
    for refused in [
        "/runs/r1/nodes/g1c0/stage1/0/screenshots/1",
        "/runs/r1/nodes/g1c0/stage1/0/screenshots/7",
    ] {
        assert_eq!(
            get(&state, refused, &[]).await.0,
            StatusCode::NOT_FOUND,
            "{refused}"
        );
    }
    for missing in [
        "/runs/r1/nodes/g1c0/stage1/5",
        "/runs/r1/nodes/g1c0/nostage/0",
        "/runs/r1/nodes/g1c0/full/0",
    ] {
        assert_eq!(
            get(&state, missing, &[]).await.0,
            StatusCode::NOT_FOUND,
            "{missing}"
        );
    }
    let (_, _, invalid) = get(&state, "/runs/r1/nodes/g1c1", &[]).await;
    assert!(invalid.contains("Validation errors"), "{invalid}");
    inert(&invalid);

    // Typed JSON.
    let (_, _, api) = get(&state, "/api/runs", &[]).await;
    let items: Vec<RunListItem> = serde_json::from_str(&api).unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].id, "r1");
    assert_eq!(items[0].generations_done, 1);
    let (_, _, api) = get(&state, "/api/runs/r1/generations", &[]).await;
    let rows: Vec<GenerationRow> = serde_json::from_str(&api).unwrap();
    assert_eq!(rows.last().unwrap().best_node, "g1c0");

    // Unknown runs and nodes, and ids that try to leave the run directory.
    assert_eq!(
        get(&state, "/runs/nope", &[]).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&state, "/runs/r1/nodes/nope", &[]).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&state, "/runs/r1/nodes/..%2F..%2Fsecret", &[]).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_running_run_reloads_and_a_token_guards_every_page() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = fixture(dir.path());
    ResultsStore::open(dir.path().join("results.sqlite"))
        .unwrap()
        .set_run_state("r1", RunStatus::Running, &json!({}))
        .unwrap();
    let (_, _, run) = get(&state, "/runs/r1", &[]).await;
    assert!(run.contains("http-equiv=\"refresh\""), "{run}");

    state.token = Some("s3cret".into());
    for uri in ["/", "/runs/r1", "/api/runs", "/runs/r1/nodes/g1c0"] {
        assert_eq!(
            get(&state, uri, &[]).await.0,
            StatusCode::UNAUTHORIZED,
            "{uri}"
        );
        assert_eq!(
            get(&state, uri, &[("authorization", "Bearer wrong")])
                .await
                .0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            get(&state, uri, &[("authorization", "Bearer s3cret")])
                .await
                .0,
            StatusCode::OK
        );
    }
    // A form post without the token is refused before it is read.
    assert_eq!(
        post(
            &state,
            "/runs/r1/nodes/g1c0/stage1/0",
            "secret=form-secret&rater=ana&verdict=bad",
            None
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );
    assert!(
        state
            .feedback
            .as_ref()
            .unwrap()
            .list(None)
            .unwrap()
            .is_empty()
    );
    // A token in the query opens the page and sets the cookie links then use.
    let (status, headers, _) = get(&state, "/?token=s3cret", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let cookie = headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with("hyperagents_token=s3cret;") && cookie.contains("HttpOnly"));
    assert_eq!(
        get(
            &state,
            "/runs/r1",
            &[("cookie", "hyperagents_token=s3cret")]
        )
        .await
        .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_run_of_ten_thousand_nodes_pages_searches_and_collapses() {
    let dir = tempfile::tempdir().unwrap();
    let store = ResultsStore::open(dir.path().join("results.sqlite")).unwrap();
    store
        .create_evolution_run(&NewEvolutionRun {
            id: "big".into(),
            config: json!({}),
            mode: RunMode::Hyper,
            seed: 1,
        })
        .unwrap();
    let mut seed = node("seed", None, 0, json!([]));
    seed.run_id = "big".into();
    store.insert_node(&seed).unwrap();
    // A chain of 100 generations, 100 children each, every child of the
    // previous generation's first child: deep and wide.
    for generation in 1..=100u64 {
        let parent = if generation == 1 {
            "seed".to_string()
        } else {
            format!("g{}c0", generation - 1)
        };
        for child in 0..100 {
            let mut n = node(
                &format!("g{generation}c{child}"),
                Some(&parent),
                generation,
                json!([]),
            );
            n.run_id = "big".into();
            store.insert_node(&n).unwrap();
        }
    }
    let state = DashboardState {
        store: ResultsStore::open_read_only(dir.path().join("results.sqlite")).unwrap(),
        runs_dir: dir.path().join("runs"),
        token: None,
        feedback: None,
        form_secret: "s".into(),
    };
    let (status, _, page) = get(&state, "/runs/big", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("10001 of 10001 nodes; page 1 of 51"), "paged");
    assert_eq!(
        page.matches("<tr><td><a href=\"/runs/big/nodes/").count(),
        200
    );
    // Deep subtrees start collapsed; every node is in the tree.
    assert!(page.contains("<details open><summary><a href=\"/runs/big/nodes/seed\">"));
    assert!(page.contains("<details><summary><a href=\"/runs/big/nodes/g3c0\">"));
    assert!(page.contains("/runs/big/nodes/g100c99\">g100c99</a>"));
    let (_, _, last) = get(&state, "/runs/big?page=51", &[]).await;
    assert!(
        last.contains("page 51 of 51") && last.contains("previous"),
        "last page"
    );
    let (_, _, found) = get(&state, "/runs/big?q=g77c4", &[]).await;
    // g77c4 and g77c40..g77c49.
    assert!(found.contains("11 of 10001 nodes"), "search");
}

#[tokio::test]
async fn ratings_and_preferences_are_stored_from_forms_of_this_dashboard_only() {
    let dir = tempfile::tempdir().unwrap();
    let state = fixture(dir.path());
    let feedback = state.feedback.clone().unwrap();
    let episode = "/runs/r1/nodes/g1c0/stage1/0";
    // Column 8: the chance of being drawn in one draw of the next generation.
    let (_, _, run) = get(&state, "/runs/r1", &[]).await;
    let before: f64 = cell(&run, "g1c0", 8).parse().unwrap();
    assert!(before > 0.4, "g1c0 and the seed near even: {before}");
    let (_, _, page) = get(&state, episode, &[]).await;
    assert!(
        page.contains("Not rated yet.") && page.contains("name=\"secret\" value=\"form-secret\"")
    );
    assert!(
        page.contains("/runs/r1/nodes/g1c0/stage1/0/versus/seed"),
        "{page}"
    );

    // A post without the page's secret, or from another origin, is refused.
    let form =
        "secret=form-secret&rater=ana&verdict=bad&comment=clicked+%3Cb%3Ethe%3C%2Fb%3E+wrong+one";
    let forged = "secret=guess&rater=ana&verdict=bad&comment=x";
    assert_eq!(
        post(&state, episode, forged, None).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(&state, episode, form, Some("http://evil.example"))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    // An origin the browser hides (`null`) cannot be checked: refused.
    assert_eq!(
        post(&state, episode, form, Some("null")).await.0,
        StatusCode::FORBIDDEN
    );
    assert!(feedback.list(None).unwrap().is_empty());
    let (status, headers) = post(&state, episode, form, Some("http://127.0.0.1:8765")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], episode);
    let stored = feedback.list(Some("r1")).unwrap();
    assert_eq!(stored.len(), 1);
    let Feedback::Rating(rating) = &stored[0].feedback else {
        panic!("{stored:?}")
    };
    assert!(
        !rating.good && rating.task == "t1" && rating.stage == "stage1" && rating.rater == "ana"
    );
    let (_, _, page) = get(&state, episode, &[]).await;
    assert!(
        page.contains("bad by ana: clicked &lt;b&gt;the&lt;/b&gt; wrong one"),
        "{page}"
    );
    // Its one success rated bad: fitness 0, and the next draw favours the seed.
    let (_, _, run) = get(&state, "/runs/r1", &[]).await;
    assert_eq!(cell(&run, "g1c0", 7), "0.0%");
    let after: f64 = cell(&run, "g1c0", 8).parse().unwrap();
    let seed: f64 = cell(&run, "seed", 8).parse().unwrap();
    assert!(after < before && seed > 0.9, "{after} {seed}");

    // The held-out split is viewed, never rated.
    let (_, _, test) = get(&state, "/runs/r1/nodes/seed/test/0", &[]).await;
    assert!(
        test.contains("not rated") && !test.contains("<form"),
        "{test}"
    );
    assert_eq!(
        post(&state, "/runs/r1/nodes/seed/test/0", form, None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );

    // Side by side with the parent, and a preference.
    let versus = "/runs/r1/nodes/g1c0/stage1/0/versus/seed";
    let (status, _, page) = get(&state, versus, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("g1c0 — succeeded") && page.contains("seed — succeeded"),
        "{page}"
    );
    inert(&page);
    let (status, _) = post(
        &state,
        versus,
        "secret=form-secret&rater=ben&preferred=seed&comment=",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _) = post(
        &state,
        versus,
        "secret=form-secret&rater=ben&preferred=g9c9&comment=",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a node not shown");
    let stored = feedback.list(Some("r1")).unwrap();
    assert_eq!(stored.len(), 2);
    assert!(
        matches!(&stored[1].feedback, Feedback::Preference(p) if p.preferred == "seed" && p.a == "g1c0" && p.b == "seed")
    );
}

#[tokio::test]
async fn runs_are_compared_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let state = fixture(dir.path());
    let writer = ResultsStore::open(dir.path().join("results.sqlite")).unwrap();
    writer
        .create_evolution_run(&NewEvolutionRun {
            id: "r2".into(),
            config: serde_json::json!({}),
            mode: RunMode::None,
            seed: 8,
        })
        .unwrap();
    let mut seed = node("seed", None, 0, serde_json::json!([]));
    seed.run_id = "r2".into();
    writer.insert_node(&seed).unwrap();

    let (_, _, runs) = get(&state, "/", &[]).await;
    assert!(
        runs.contains("<form method=\"get\" action=\"/compare\">")
            && runs.contains("name=\"run\" value=\"r2\""),
        "{runs}"
    );
    let (status, _, page) = get(&state, "/compare?run=r1&run=r2", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("<a href=\"/runs/r1\">r1</a>")
            && page.contains("<a href=\"/runs/r2\">r2</a>")
    );
    assert!(
        page.contains("<td>hyper</td>") && page.contains("<td>none</td>"),
        "by mode"
    );
    inert(&page);
    let (_, _, empty) = get(&state, "/compare", &[]).await;
    assert!(empty.contains("Tick runs"));
    assert_eq!(
        get(&state, "/compare?run=r1&run=nope", &[]).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, _, once) = get(&state, "/compare?run=r1&run=r1", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        once.matches("<a href=\"/runs/r1\">r1</a>").count(),
        1,
        "a run named twice, once"
    );
}
