//! A WebArena task that needs a logged-in, freshly reset site, run through
//! the CLI against a loopback stand-in for the shopping site: the login and
//! reset hooks come from a settings file (the password from the
//! environment), the episode runs in real Chromium with the task model on a
//! loopback OpenAI-compatible server, and WebArena's evaluator scores it.
//! The site sees the reset, the login and a signed-in start page; the
//! password shows up in no output and no artifact.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use support::{bin, contents, fake_openai, files_under, read_request, repo, text};

const PASSWORD: &str = "pw-planted-61c0ffee";
const USERNAME: &str = "alice@example.com";

const LOGIN_PAGE: &str = r#"<!doctype html><html><head><title>Sign in</title></head><body>
<form method="post" action="/shopping/login">
<input id="email" name="email"><input id="pass" name="pass" type="password">
<button id="send2" type="submit">Sign in</button></form></body></html>"#;

/// What the stand-in site saw.
#[derive(Default)]
struct Seen {
    resets: AtomicUsize,
    logins: AtomicUsize,
    refused_logins: AtomicUsize,
    signed_in_views: AtomicUsize,
    anonymous_views: AtomicUsize,
}

fn respond(stream: &mut std::net::TcpStream, status: &str, headers: &str, body: &str) {
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/html\r\ncontent-length: {}\r\n{headers}connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}

/// The shop: its start page says who is signed in; signing in sets a
/// session cookie; `POST /shopping/reset` counts resets.
fn serve_shop() -> (String, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Seen::default());
    let counts = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let request = read_request(&mut stream);
            let first = request.lines().next().unwrap_or_default().to_string();
            let signed_in = request.lines().any(|l| {
                l.to_ascii_lowercase().starts_with("cookie:") && l.contains("session=alice")
            });
            let body = request.split("\r\n\r\n").nth(1).unwrap_or_default();
            if first.starts_with("POST /shopping/reset") {
                counts.resets.fetch_add(1, Ordering::SeqCst);
                respond(&mut stream, "200 OK", "", "reset");
            } else if first.starts_with("POST /shopping/login") {
                let encoded_user = USERNAME.replace('@', "%40");
                if body.contains(&format!("email={encoded_user}"))
                    && body.contains(&format!("pass={PASSWORD}"))
                {
                    counts.logins.fetch_add(1, Ordering::SeqCst);
                    respond(
                        &mut stream,
                        "303 See Other",
                        "location: /shopping/\r\nset-cookie: session=alice; Path=/\r\n",
                        "",
                    );
                } else {
                    counts.refused_logins.fetch_add(1, Ordering::SeqCst);
                    respond(&mut stream, "200 OK", "", LOGIN_PAGE);
                }
            } else if first.starts_with("GET /shopping/login") {
                respond(&mut stream, "200 OK", "", LOGIN_PAGE);
            } else if first.starts_with("GET /shopping/") {
                let who = if signed_in {
                    counts.signed_in_views.fetch_add(1, Ordering::SeqCst);
                    "Signed in as Alice."
                } else {
                    counts.anonymous_views.fetch_add(1, Ordering::SeqCst);
                    "Not signed in."
                };
                let page = format!(
                    "<!doctype html><html><head><title>One Stop Market</title></head><body>\
                     <h1>One Stop Market</h1><p id=\"who\">{who}</p>\
                     <p id=\"hours\">Open from 9am to 5pm</p></body></html>"
                );
                respond(&mut stream, "200 OK", "", &page);
            } else {
                respond(&mut stream, "404 Not Found", "", "not found");
            }
        }
    });
    (base, seen)
}

/// One task in `test.raw.json`'s format that needs a login and a reset.
fn task_file() -> String {
    serde_json::json!([{
        "sites": ["shopping"],
        "task_id": 7001,
        "require_login": true,
        "storage_state": "./.auth/shopping_state.json",
        "start_url": "__SHOPPING__/",
        "geolocation": null,
        "intent_template": "When is the store open?",
        "instantiation_dict": {},
        "intent": "When is the store open?",
        "require_reset": true,
        "eval": {
            "eval_types": ["string_match"],
            "reference_answers": {"must_include": ["9am"]},
            "reference_url": "",
            "program_html": []
        },
        "intent_template_id": 1
    }])
    .to_string()
}

#[test]
fn a_task_needing_login_and_reset_runs_with_hooks_from_the_settings_file() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let cache = dir.path().join("cache");
    let dataset = dir.path().join("webarena");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&dataset).unwrap();
    std::fs::write(dataset.join("test.raw.json"), task_file()).unwrap();
    let (shop, seen) = serve_shop();
    // The task model answers the question from the page at once.
    let (model_url, requests) =
        fake_openai(r#"{"action": "answer", "ref": 0, "text": "Open from 9am to 5pm"}"#);
    let settings = work.join("hyperagents.toml");
    std::fs::write(
        &settings,
        format!(
            "[openai]\nbase_url = \"{model_url}\"\napi_key = \"sk-test\"\n\
             [models.fake]\nprovider = \"openai\"\nmodel = \"fake-model\"\n\
             [roles]\ntask = \"fake\"\nmeta = \"fake\"\njudge = \"fake\"\n\
             [benchmarks.webarena]\ndir = \"{}\"\n\
             [benchmarks.webarena.sites]\nshopping = \"{shop}/shopping\"\n\
             [benchmarks.webarena.hooks.shopping]\n\
             reset_http = {{ url = \"{shop}/shopping/reset\" }}\n\
             [benchmarks.webarena.hooks.shopping.login]\n\
             url = \"{shop}/shopping/login\"\nusername_selector = \"#email\"\n\
             password_selector = \"#pass\"\nsubmit_selector = \"#send2\"\n\
             username = \"{USERNAME}\"\n",
            dataset.display()
        ),
    )
    .unwrap();
    let seed = repo().join("programs/seed");
    let jsonl = dir.path().join("cache/episodes.jsonl");
    let out = bin()
        .current_dir(&work)
        .env("HYPERAGENTS_CACHE_DIR", &cache)
        .env("HYPERAGENTS_CACHE__MODE", "off")
        .env(
            "HYPERAGENTS_BENCHMARKS__WEBARENA__HOOKS__SHOPPING__LOGIN__PASSWORD",
            PASSWORD,
        )
        .env("HYPERAGENTS_RUN__MAX_STEPS", "3")
        .args(["-vvv", "eval", "--program"])
        .arg(&seed)
        .args([
            "--suite",
            "webarena",
            "--split",
            "train",
            "--episodes",
            "1",
            "--jsonl",
        ])
        .arg(&jsonl)
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let tail: String = stderr.lines().rev().take(30).collect::<Vec<_>>().join("\n");
    assert!(out.status.success(), "{tail}");

    // The hooks ran against the site, and the episode started signed in.
    assert_eq!(seen.refused_logins.load(Ordering::SeqCst), 0, "{tail}");
    assert_eq!(seen.logins.load(Ordering::SeqCst), 1, "{tail}");
    assert!(seen.resets.load(Ordering::SeqCst) >= 1, "{tail}");
    assert!(seen.signed_in_views.load(Ordering::SeqCst) >= 1, "{tail}");
    assert!(!requests.lock().unwrap().is_empty());
    // Scored by WebArena's evaluator: the answer holds "9am".
    let episode = std::fs::read_to_string(&jsonl).unwrap();
    let record: serde_json::Value = serde_json::from_str(episode.lines().next().unwrap()).unwrap();
    assert_eq!(record["key"]["task"], "7001", "{episode}");
    assert_eq!(record["success"], true, "{episode}\n{stdout}");

    // The password is in no output and no artifact.
    for (name, printed) in [("stdout", &stdout), ("stderr", &stderr)] {
        let leaks: Vec<&str> = printed.lines().filter(|l| l.contains(PASSWORD)).collect();
        assert!(leaks.is_empty(), "{name} shows the password: {leaks:#?}");
    }
    let mut files = Vec::new();
    files_under(&cache, &mut files);
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().ends_with(".jsonl.gz")),
        "no trajectory among {files:#?}"
    );
    for file in &files {
        let bytes = contents(file);
        assert!(
            !bytes
                .windows(PASSWORD.len())
                .any(|w| w == PASSWORD.as_bytes()),
            "{} holds the password",
            file.display()
        );
    }
    // The model saw neither the password nor the login form's secret.
    for request in requests.lock().unwrap().iter() {
        assert!(
            !request.contains(PASSWORD),
            "a model request holds the password"
        );
    }
}
