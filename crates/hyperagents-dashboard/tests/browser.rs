//! The dashboard as a person uses it, in real Chromium (the project's
//! browser crate) against the server on loopback: open the run, follow the
//! lineage to a node, read its diff, open an episode, rate it, prefer it
//! against its parent's — and the next generation's parent-draw chances
//! move as documented. No script runs in any page.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use hyperagents_browser::{BrowserPool, PageHandle, PoolConfig};
use hyperagents_dashboard::serve;
use hyperagents_store::Feedback;
use support::fixture;

const TEST_TIMEOUT: Duration = Duration::from_secs(120);
const PAGE_TIMEOUT: Duration = Duration::from_secs(20);

/// Clicks the first element matching `selector`, then waits until the page
/// that follows shows `text`.
async fn click_and_see(page: &PageHandle, selector: &str, text: &str) {
    let selector = serde_json::to_string(selector).unwrap();
    page.evaluate_main(&format!("document.querySelector({selector}).click(); true"))
        .await
        .unwrap();
    see(page, text).await;
}

async fn see(page: &PageHandle, text: &str) {
    let text = serde_json::to_string(text).unwrap();
    page.wait_for_main(
        &format!(
            "document.readyState === 'complete' && document.body && \
             document.body.innerText.includes({text})"
        ),
        PAGE_TIMEOUT,
    )
    .await
    .unwrap_or_else(|e| panic!("never saw {text}: {e}"));
}

async fn body_text(page: &PageHandle) -> String {
    page.evaluate_main("document.body.innerText")
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

/// The "next draw" cell of `node`'s row on the run page.
async fn next_draw(page: &PageHandle, node: &str) -> f64 {
    let selector = serde_json::to_string(&format!("a[href=\"/runs/r1/nodes/{node}\"]")).unwrap();
    let value = page
        .evaluate_main(&format!(
            "Array.from(document.querySelectorAll({selector}))\
             .map(a => a.closest('tr')).filter(r => r)[0].cells[8].innerText"
        ))
        .await
        .unwrap();
    value.as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_follows_the_lineage_rates_prefers_and_moves_the_next_draw() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let dir = tempfile::tempdir().unwrap();
        let state = fixture(dir.path());
        let feedback = state.feedback.clone().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(serve(listener, state));

        let pool = BrowserPool::launch(PoolConfig::default()).await.unwrap();
        let mut window = pool.checkout().await.unwrap();
        let page = window.main();
        page.navigate(&format!("{base}/")).await.unwrap();
        see(page, "Evolution runs").await;
        click_and_see(page, "a[href=\"/runs/r1\"]", "Lineage tree").await;
        let before = next_draw(page, "g1c0").await;

        // The lineage tree to a node, its diff with the hostile line as text.
        click_and_see(
            page,
            "ul.tree a[href=\"/runs/r1/nodes/g1c0\"]",
            "Diff against its parent",
        )
        .await;
        let text = body_text(page).await;
        assert!(text.contains("-old line"), "{text}");
        assert!(
            text.contains("<script>alert(1)</script>"),
            "shown as text: {text}"
        );

        // An episode, rated bad through its form.
        click_and_see(
            page,
            "a[href=\"/runs/r1/nodes/g1c0/stage1/0\"]",
            "Span tree",
        )
        .await;
        page.evaluate_main(
            "const f = document.querySelector('form'); f.rater.value = 'ana'; \
             f.querySelector('input[value=bad]').checked = true; \
             f.comment.value = 'answered without reading the page'; \
             f.querySelector('button').click(); true",
        )
        .await
        .unwrap();
        see(page, "bad by ana: answered without reading the page").await;

        // Side by side with its parent's episode, the parent preferred.
        click_and_see(
            page,
            "a[href=\"/runs/r1/nodes/g1c0/stage1/0/versus/seed\"]",
            "g1c0 against seed",
        )
        .await;
        page.evaluate_main(
            "const f = document.querySelector('form'); f.rater.value = 'ben'; \
             f.querySelector('input[value=seed]').checked = true; \
             f.querySelector('button').click(); true",
        )
        .await
        .unwrap();
        see(page, "bad by ana").await;
        let stored = feedback.list(Some("r1")).unwrap();
        assert_eq!(stored.len(), 2, "{stored:?}");
        assert!(matches!(&stored[1].feedback, Feedback::Preference(p) if p.preferred == "seed"));

        // The run page: g1c0's chance in the next generation's draw fell.
        page.navigate(&format!("{base}/runs/r1")).await.unwrap();
        see(page, "Lineage tree").await;
        let after = next_draw(page, "g1c0").await;
        assert!(after < before, "{before} → {after}");
        // No page ran a script: none is there, and none was let in.
        let scripts = page
            .evaluate_main("document.querySelectorAll('script').length")
            .await
            .unwrap();
        assert_eq!(scripts, serde_json::json!(0));
        drop(window);
        pool.close().await;
    })
    .await
    .expect("test timed out");
}
