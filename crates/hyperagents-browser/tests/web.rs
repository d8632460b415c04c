//! End-to-end tests of the web environment against real Chromium and pages
//! served on loopback.

#![allow(clippy::unwrap_used)] // Test helpers panic on setup failures by design.

mod common;

use common::{TEST_TIMEOUT, environment, pool, serve};
use hyperagents_domain::Environment;
use serde_json::json;

const CLICK_PAGE: &str = r#"<!DOCTYPE html><html><head><title>Clicks</title></head><body>
<div id="log"></div>
<button id="b" onclick="document.getElementById('log').textContent = 'clicked trusted=' + event.isTrusted">Press me</button>
</body></html>"#;

#[tokio::test]
async fn observe_and_click_end_to_end() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let base = serve(&[("/click.html", CLICK_PAGE)]).await;
        let pool = pool(1).await;
        let mut env = environment(&pool, &base, &format!("{base}/click.html")).await;
        let text = env.observe().await.unwrap();
        println!("{text}");
        let observation = env.observation().await.unwrap();
        let button = observation
            .elements
            .iter()
            .find(|e| e.tag == "button")
            .unwrap();
        assert_eq!(button.text.as_deref(), Some("Press me"));
        let outcome = env
            .act("click", &json!({"ref": button.reference}))
            .await
            .unwrap();
        assert!(!outcome.done);
        let text = env.observe().await.unwrap();
        assert!(text.contains("clicked trusted=true"), "{text}");
    })
    .await
    .expect("test timed out");
}

const KITCHEN_SINK: &str = r#"<!DOCTYPE html><html><head><title>Sink</title>
<script>
function log(text) { document.getElementById('log').textContent += text + ';'; }
</script></head><body>
<input id="name" value="old">
<input type="checkbox" id="agree"><label for="agree">Agree</label>
<select id="colour" onchange="log('colour=' + this.value)"><option value="r">Red</option><option value="g">Green</option></select>
<select id="many" multiple><option>A</option><option>B</option><option>C</option></select>
<input type="date" id="when" onchange="log('date=' + this.value)">
<textarea id="notes">line</textarea>
<div id="scroller" style="height:40px;overflow:auto"><div style="height:400px">tall content</div></div>
<div id="hoverme" onmouseover="log('hovered')">Hover target</div>
<svg width="100" height="50"><circle cx="25" cy="25" r="20" fill="red"></circle><rect x="60" y="10" width="30" height="30" style="fill: blue"></rect></svg>
<div style="background-color: rgb(0, 128, 0); width: 20px; height: 20px"></div>
<div style="display:none">hidden text</div>
<div style="visibility:hidden">invisible text</div>
<div style="width:0;height:0;overflow:hidden">zero size text</div>
<span class="fake-link" style="cursor:pointer;color:blue" onclick="log('fake link')">pseudo link <b>bold</b></span>
<form onsubmit="log('submitted ' + document.getElementById('q').value); return false"><input id="q"><button>Go</button></form>
<div id="source" style="width:40px;height:20px;background-color:orange">drag me</div>
<div id="target" style="width:80px;height:40px;background-color:gray">drop here</div>
<a href="/second.html">Second page</a>
<button id="popup" onclick="window.open('/second.html')">Open popup</button>
<button id="alerting" onclick="alert('hello'); log(confirm('sure?') ? 'confirmed' : 'cancelled')">Alert me</button>
<div id="log"></div>
<script>
let dragging = false, moves = 0;
document.getElementById('source').addEventListener('mousedown', () => { dragging = true; });
document.addEventListener('mousemove', (e) => { if (dragging && e.buttons === 1) moves++; });
document.addEventListener('mouseup', (e) => {
  if (dragging) { log('dropped on ' + e.target.id + ' after ' + (moves > 0 ? 'moves' : 'no moves')); dragging = false; }
});
document.getElementById('name').addEventListener('keydown', (e) => { window.keydowns = (window.keydowns || 0) + 1; });
</script>
</body></html>"#;

const SECOND: &str = r#"<!DOCTYPE html><html><head><title>Second</title></head><body><p>second page text</p></body></html>"#;

fn sink_pages() -> [(&'static str, &'static str); 2] {
    [("/sink.html", KITCHEN_SINK), ("/second.html", SECOND)]
}

/// The ref of the first element whose line contains `needle`.
fn reference(observation: &str, needle: &str) -> u64 {
    let line = observation
        .lines()
        .find(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("no `{needle}` in:\n{observation}"));
    line[1..line.find(']').unwrap()].parse().unwrap()
}

#[tokio::test]
async fn observation_lists_what_matters_and_skips_what_is_hidden() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let base = serve(&sink_pages()).await;
        let pool = pool(1).await;
        let mut env = environment(&pool, &base, &format!("{base}/sink.html")).await;
        let text = env.observe().await.unwrap();
        println!("{text}");
        for expected in [
            "title: \"Sink\"",
            "input[text] value=\"old\" id=\"name\"",
            "input[checkbox] label=\"Agree\" unchecked",
            "select value=\"Red\" id=\"colour\" options=[\"Red\", \"Green\"]",
            "select value=\"\" id=\"many\" options=[\"A\", \"B\", \"C\"] multiple",
            "input[date] value=\"\"",
            "textarea value=\"line\"",
            "scroll=top",
            "div \"Hover target\"",
            "circle fill=red",
            "rect fill=blue",
            "div bg=rgb(0,128,0)",
            "span \"pseudo link bold\" clickable color=blue",
            "a \"Second page\"",
            "button \"Open popup\"",
        ] {
            assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
        }
        for hidden in ["hidden text", "invisible text", "zero size text"] {
            assert!(!text.contains(hidden), "`{hidden}` shown:\n{text}");
        }
        // The bold text is part of its clickable span, not a line of its own.
        assert!(!text.contains("b \"bold\""), "{text}");
        let observation = env.observation().await.unwrap();
        let mut refs: Vec<u64> = observation.elements.iter().map(|e| e.reference).collect();
        let count = refs.len();
        refs.sort();
        refs.dedup();
        assert_eq!(refs.len(), count, "refs are unique");
        // Refs are stable across observations of the same page.
        assert_eq!(env.observe().await.unwrap(), text);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn the_observer_is_invisible_to_the_page_and_immune_to_its_scripts() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let base = serve(&sink_pages()).await;
        let pool = pool(1).await;
        let mut env = environment(&pool, &base, &format!("{base}/sink.html")).await;
        let html = "document.documentElement.outerHTML";
        let before = env.window().main().evaluate_main(html).await.unwrap();
        let first = env.observe().await.unwrap();
        env.act("hover", &json!({"ref": reference(&first, "Hover target")}))
            .await
            .unwrap();
        // The page's own handler wrote to #log; compare everything else.
        let after = env
            .window()
            .main()
            .evaluate_main("document.getElementById('log').textContent = ''; document.documentElement.outerHTML")
            .await
            .unwrap();
        assert_eq!(before, after, "observing changed the page DOM");
        let seen = env
            .window()
            .main()
            .evaluate_main("typeof globalThis.__hyperagents")
            .await
            .unwrap();
        assert_eq!(seen, json!("undefined"));
        // A hostile page breaks the builtins the helper uses; it must not care.
        env.window()
            .main()
            .evaluate_main(
                "Element.prototype.getBoundingClientRect = () => { throw new Error('tampered'); };
                 window.getComputedStyle = () => { throw new Error('tampered'); };
                 Array.from = null; JSON.stringify = () => 'tampered'; Map = null; WeakMap = null;
                 Object.defineProperty(window, '__hyperagents', {value: {call: () => ({ok: 'tampered'})}});
                 true",
            )
            .await
            .unwrap();
        let again = env.observe().await.unwrap();
        assert_eq!(again, first);
        assert!(!again.contains("tampered"));
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn typing_uses_real_keys_and_replaces_or_appends() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let base = serve(&sink_pages()).await;
        let pool = pool(1).await;
        let mut env = environment(&pool, &base, &format!("{base}/sink.html")).await;
        let text = env.observe().await.unwrap();
        let name = reference(&text, "input[text] value=\"old\"");
        env.act("type", &json!({"ref": name, "text": "Zoë 1"}))
            .await
            .unwrap();
        env.act("type", &json!({"ref": name, "text": "!", "append": true}))
            .await
            .unwrap();
        let page = env.window().main();
        assert_eq!(
            page.evaluate_main("document.getElementById('name').value")
                .await
                .unwrap(),
            json!("Zoë 1!")
        );
        // Five ASCII keys (Z, o, space, 1, !) went through keydown; ë was IME text.
        assert_eq!(
            page.evaluate_main("window.keydowns").await.unwrap(),
            json!(5)
        );
        let date = reference(&text, "input[date]");
        env.act("type", &json!({"ref": date, "text": "2016-11-08"}))
            .await
            .unwrap();
        let bad_date = env
            .act("type", &json!({"ref": date, "text": "tomorrow"}))
            .await;
        assert!(
            bad_date
                .unwrap_err()
                .to_string()
                .contains("not a valid value"),
            "a bad date must be refused"
        );
        let button = reference(&text, "button \"Open popup\"");
        let refused = env
            .act("type", &json!({"ref": button, "text": "x"}))
            .await
            .unwrap_err();
        assert!(
            refused.to_string().contains("does not take text input"),
            "{refused}"
        );
        let log = env.observe().await.unwrap();
        assert!(log.contains("date=2016-11-08;"), "{log}");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn select_checkbox_and_named_keys() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let base = serve(&sink_pages()).await;
        let pool = pool(1).await;
        let mut env = environment(&pool, &base, &format!("{base}/sink.html")).await;
        let text = env.observe().await.unwrap();
        let colour = reference(&text, "options=[\"Red\"");
        env.act("select", &json!({"ref": colour, "option": "Green"}))
            .await
            .unwrap();
        env.act("select", &json!({"ref": colour, "option": "r"}))
            .await
            .unwrap();
        let many = reference(&text, "multiple");
        env.act("select", &json!({"ref": many, "options": ["A", "C"]}))
            .await
            .unwrap();
        let missing = env
            .act("select", &json!({"ref": colour, "option": "Blue"}))
            .await
            .unwrap_err();
        assert!(
            missing.to_string().contains("\"Red\", \"Green\""),
            "{missing}"
        );
        let not_select = env
            .act(
                "select",
                &json!({"ref": reference(&text, "Hover target"), "option": "x"}),
            )
            .await
            .unwrap_err();
        assert!(
            not_select.to_string().contains("is not a <select>"),
            "{not_select}"
        );
        env.act(
            "click",
            &json!({"ref": reference(&text, "label=\"Agree\"")}),
        )
        .await
        .unwrap();
        let query = reference(&text, "button \"Go\"") - 1;
        env.act("type", &json!({"ref": query, "text": "needle"}))
            .await
            .unwrap();
        env.act("press", &json!({"key": "Enter"})).await.unwrap();
        for chord in ["Ctrl+L", "Alt+F4", "Meta"] {
            let error = env.act("press", &json!({"key": chord})).await.unwrap_err();
            assert!(
                error.to_string().contains("not allowed"),
                "{chord}: {error}"
            );
        }
        let after = env.observe().await.unwrap();
        assert!(
            after.contains("colour=g;colour=r;submitted needle;"),
            "{after}"
        );
        assert!(after.contains("select value=\"A, C\""), "{after}");
        assert!(after.contains("label=\"Agree\" checked"), "{after}");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn scroll_hover_and_drag() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let base = serve(&sink_pages()).await;
        let pool = pool(1).await;
        let mut env = environment(&pool, &base, &format!("{base}/sink.html")).await;
        let text = env.observe().await.unwrap();
        let inner = reference(&text, "\"tall content\"");
        let outcome = env
            .act("scroll", &json!({"ref": inner, "direction": "down"}))
            .await
            .unwrap();
        assert!(outcome.message.contains("scrolled down"), "{outcome:?}");
        let scrolled = env
            .window()
            .main()
            .evaluate_main("document.getElementById('scroller').scrollTop > 0")
            .await
            .unwrap();
        assert_eq!(scrolled, json!(true));
        let page = env.act("scroll", &json!({"direction": "down"})).await.unwrap();
        assert!(!page.message.is_empty());
        env.act("hover", &json!({"ref": reference(&text, "Hover target")})).await.unwrap();
        env.act(
            "drag",
            &json!({"from": reference(&text, "\"drag me\""), "to": reference(&text, "\"drop here\"")}),
        )
        .await
        .unwrap();
        let after = env.observe().await.unwrap();
        assert!(after.contains("scroll=middle") || after.contains("scroll=bottom"), "{after}");
        assert!(after.contains("hovered;"), "{after}");
        assert!(after.contains("dropped on target after moves;"), "{after}");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn navigation_is_limited_to_allowed_origins() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let base = serve(&sink_pages()).await;
        let other = serve(&sink_pages()).await;
        let pool = pool(1).await;
        let mut env = environment(&pool, &base, &format!("{base}/sink.html")).await;
        for url in [
            "javascript:document.title='pwned'".to_string(),
            "file:///etc/passwd".to_string(),
            "data:text/html,<p>x</p>".to_string(),
            "chrome://version".to_string(),
            "about:version".to_string(),
            format!("{other}/sink.html"),
        ] {
            let error = env.act("goto", &json!({"url": url})).await.unwrap_err();
            assert!(
                matches!(error, hyperagents_domain::DomainError::BadArguments { .. }),
                "{url}: {error}"
            );
        }
        assert_eq!(
            env.window()
                .main()
                .evaluate_main("document.title")
                .await
                .unwrap(),
            json!("Sink")
        );
        let text = env.observe().await.unwrap();
        let old_link = reference(&text, "a \"Second page\"");
        env.act("click", &json!({"ref": old_link})).await.unwrap();
        let second = env.observe().await.unwrap();
        assert!(second.contains("second page text"), "{second}");
        // Refs continue across documents: an old page's ref names nothing.
        assert!(reference(&second, "second page text") > old_link);
        let stale = env
            .act("click", &json!({"ref": old_link}))
            .await
            .unwrap_err();
        assert!(
            stale
                .to_string()
                .contains(&format!("unknown ref {old_link}")),
            "{stale}"
        );
        env.act("back", &json!({})).await.unwrap();
        assert!(env.observe().await.unwrap().contains("Hover target"));
        env.act("goto", &json!({"url": "second.html"}))
            .await
            .unwrap();
        assert!(env.observe().await.unwrap().contains("second page text"));
        let stale = env.act("click", &json!({"ref": 999})).await.unwrap_err();
        assert!(stale.to_string().contains("unknown ref 999"), "{stale}");
        env.act("goto", &json!({"url": "about:blank"}))
            .await
            .unwrap();
        assert!(
            env.observe()
                .await
                .unwrap()
                .contains("(no visible elements)")
        );
        let nowhere = env.act("back", &json!({})).await;
        assert!(
            nowhere.is_ok(),
            "back from about:blank to an allowed page works"
        );
    })
    .await
    .expect("test timed out");
}

const NAVIGATING_CLICKS: &str = r##"<!DOCTYPE html><html><head><title>Start</title></head><body>
<a href="/slow/arrived.html">By link</a>
<form action="/slow/arrived.html"><button>By form</button></form>
<button onclick="location.href = '/slow/arrived.html'">By script</button>
<button onclick="setTimeout(() => { location.href = '/slow/arrived.html'; }, 0)">By timer</button>
<a href="#below" id="anchor">Same document</a>
<button onclick="history.pushState({}, '', '/pushed.html')">Pushed</button>
<button onclick="document.title = 'Stayed'">Stay</button>
<p id="below">start page text</p>
</body></html>"##;

const ARRIVED: &str = r#"<!DOCTYPE html><html><head><title>Arrived</title></head><body><p>arrived page text</p></body></html>"#;

/// Every way a click can start a navigation of its tab (a link, a form, a
/// script, a script on a zero-delay timer) is followed to the new document,
/// even one that arrives late; same-document navigations and clicks that
/// navigate nowhere leave the page as it is.
#[tokio::test]
async fn a_click_that_navigates_is_followed_to_the_new_document() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let base = serve(&[
            ("/start.html", NAVIGATING_CLICKS),
            ("/slow/arrived.html", ARRIVED),
        ])
        .await;
        let pool = pool(1).await;
        let start = format!("{base}/start.html");
        let mut env = environment(&pool, &base, &start).await;
        for label in ["By link", "By form", "By script", "By timer"] {
            env.act("goto", &json!({"url": start})).await.unwrap();
            let text = env.observe().await.unwrap();
            let target = reference(&text, &format!("\"{label}\""));
            env.act("click", &json!({"ref": target})).await.unwrap();
            // The browser's own record of the document, read at once (a
            // script evaluation would be held back until the new one commits).
            let url = env.window().main().url().await.unwrap();
            assert!(
                url.contains("/slow/arrived.html"),
                "{label}: still at {url}"
            );
            let after = env.observe().await.unwrap();
            assert!(after.contains("arrived page text"), "{label}: {after}");
        }
        env.act("goto", &json!({"url": start})).await.unwrap();
        for label in ["Same document", "Pushed", "Stay"] {
            let text = env.observe().await.unwrap();
            let target = reference(&text, &format!("\"{label}\""));
            env.act("click", &json!({"ref": target})).await.unwrap();
            let after = env.observe().await.unwrap();
            assert!(after.contains("start page text"), "{label}: {after}");
        }
        let title = env
            .window()
            .main()
            .evaluate_main("document.title")
            .await
            .unwrap();
        assert_eq!(title, json!("Stayed"));
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn tabs_opened_by_the_page_can_be_switched_to() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let base = serve(&sink_pages()).await;
        let pool = pool(1).await;
        let mut env = environment(&pool, &base, &format!("{base}/sink.html")).await;
        let text = env.observe().await.unwrap();
        env.act("click", &json!({"ref": reference(&text, "Open popup")}))
            .await
            .unwrap();
        let mut listed = String::new();
        for _ in 0..100 {
            listed = env.observe().await.unwrap();
            if listed.contains("[1] http") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(listed.contains("[1] "), "no popup tab in:\n{listed}");
        let missing = env.act("tab", &json!({"index": 5})).await.unwrap_err();
        assert!(missing.to_string().contains("no tab 5"), "{missing}");
        env.act("tab", &json!({"index": 1})).await.unwrap();
        let mut popup = String::new();
        for _ in 0..100 {
            popup = env.observe().await.unwrap();
            if popup.contains("second page text") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(popup.contains("second page text"), "{popup}");
        env.act("tab", &json!({"index": 0})).await.unwrap();
        assert!(env.observe().await.unwrap().contains("Hover target"));
        // A returned window comes back without the tabs its episode opened.
        drop(env);
        let mut window = pool.checkout().await.unwrap();
        assert_eq!(window.tabs().await.unwrap().len(), 1);
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn answer_ends_the_episode() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let base = serve(&sink_pages()).await;
        let pool = pool(1).await;
        let mut env = environment(&pool, &base, &format!("{base}/sink.html")).await;
        let outcome = env.act("answer", &json!({"text": "ok"})).await.unwrap();
        assert!(outcome.done);
        assert!(env.is_done());
        assert!(matches!(
            env.act("click", &json!({"ref": 1})).await,
            Err(hyperagents_domain::DomainError::EpisodeOver)
        ));
        let score = env.score().await.unwrap();
        assert!(score.success, "{score:?}");
        let shot = env.screenshot().await.unwrap().unwrap();
        assert_eq!(&shot[..8], b"\x89PNG\r\n\x1a\n");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn long_pages_are_capped_with_a_note() {
    let many: String = (0..2000)
        .map(|i| format!("<div>row number {i} of a long table</div>"))
        .collect();
    let page = format!("<!DOCTYPE html><html><body>{many}</body></html>");
    tokio::time::timeout(TEST_TIMEOUT, async {
        let base = serve(&[("/long.html", page.as_str())]).await;
        let pool = pool(1).await;
        let mut env = environment(&pool, &base, &format!("{base}/long.html")).await;
        let rendered = env.render_observation().await.unwrap();
        assert!(rendered.omitted > 1000, "{}", rendered.omitted);
        assert!(hyperagents_browser::observe::approx_tokens(&rendered.text) <= 1500);
        assert!(
            rendered
                .text
                .contains(&format!("… {} more elements omitted", rendered.omitted))
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn chromium_runs_with_an_empty_environment() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let pool = pool(1).await;
        let pid = pool.chromium().pid().unwrap();
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let names: Vec<String> = environ
            .split(|b| *b == 0)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                let entry = String::from_utf8_lossy(entry);
                entry.split('=').next().unwrap_or_default().to_string()
            })
            .collect();
        assert!(names.contains(&"HOME".to_string()), "{names:?}");
        for name in &names {
            assert!(
                name == "HOME" || name == "PATH" || name.starts_with("XDG_"),
                "unexpected variable {name} in Chromium's environment: {names:?}"
            );
        }
        let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
        assert!(cmdline.contains("--remote-debugging-address=127.0.0.1"));
        assert!(cmdline.contains("--user-data-dir="));
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn the_pool_lends_each_window_once() {
    use futures::FutureExt;
    tokio::time::timeout(TEST_TIMEOUT, async {
        let base = serve(&sink_pages()).await;
        let pool = pool(2).await;
        assert_eq!(pool.windows(), 2);
        let mut first = environment(&pool, &base, &format!("{base}/sink.html")).await;
        let mut second = environment(&pool, &base, &format!("{base}/second.html")).await;
        assert!(
            pool.checkout().now_or_never().is_none(),
            "a third window was lent"
        );
        let (a, b) = tokio::join!(first.observe(), second.observe());
        assert!(a.unwrap().contains("Hover target"));
        assert!(b.unwrap().contains("second page text"));
        drop(second);
        let window = pool.checkout().await;
        assert!(window.is_ok());
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn screenshots_can_be_kept_for_every_step() {
    use hyperagents_browser::{AllowedOrigins, WebConfig, WebEnvironment};
    tokio::time::timeout(TEST_TIMEOUT, async {
        let base = serve(&[("/click.html", CLICK_PAGE)]).await;
        let pool = pool(1).await;
        let mut window = pool.checkout().await.unwrap();
        window
            .main()
            .navigate(&format!("{base}/click.html"))
            .await
            .unwrap();
        let config = WebConfig {
            allowed: AllowedOrigins::new([base.as_str()]).unwrap(),
            screenshot_each_step: true,
            ..WebConfig::default()
        };
        let mut env = WebEnvironment::start(
            window,
            "press it".into(),
            Box::new(common::AnswerTask),
            std::sync::Arc::new(config),
        )
        .await
        .unwrap();
        assert!(env.last_screenshot().is_none());
        let text = env.observe().await.unwrap();
        env.act("click", &json!({"ref": reference(&text, "Press me")}))
            .await
            .unwrap();
        let shot = env.last_screenshot().expect("a screenshot after the step");
        assert_eq!(&shot[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(env.instruction(), "press it");
        assert_eq!(
            env.actions()
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>(),
            [
                "click", "type", "press", "select", "scroll", "hover", "drag", "goto", "back",
                "tab", "answer"
            ]
        );
    })
    .await
    .expect("test timed out");
}
