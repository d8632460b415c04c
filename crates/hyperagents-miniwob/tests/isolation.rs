//! Reward isolation: no action, however hostile its arguments, can reach
//! MiniWoB's reward globals, mark an episode successful, or show reward
//! values in an observation.

#![allow(clippy::unwrap_used)] // Test helpers panic on setup failures by design.

mod common;

use common::{data_dir, start, within_timeout};
use hyperagents_browser::WebEnvironment;
use hyperagents_domain::{DomainError, Environment};
use serde_json::{Value, json};

const REWARD_STATE: &str = "({raw: WOB_RAW_REWARD_GLOBAL, reward: WOB_REWARD_GLOBAL, \
     done: WOB_DONE_GLOBAL, reason: WOB_REWARD_REASON})";

async fn reward_state(env: &mut WebEnvironment) -> Value {
    env.window()
        .main()
        .evaluate_main(REWARD_STATE)
        .await
        .unwrap()
}

fn assert_clean(observation: &str) {
    assert_clean_except(observation, "");
}

/// Like `assert_clean`, ignoring the text the agent itself typed.
fn assert_clean_except(observation: &str, typed: &str) {
    let without_typed = if typed.is_empty() {
        observation.to_string()
    } else {
        observation.replace(&serde_json::to_string(typed).unwrap(), "\"…\"")
    };
    let lower = without_typed.to_lowercase();
    for banned in [
        "wob_",
        "reward",
        "episodes done",
        "last 10 average",
        "time left",
    ] {
        assert!(
            !lower.contains(banned),
            "observation shows `{banned}`:\n{observation}"
        );
    }
}

fn reference(observation: &str, needle: &str) -> u64 {
    let line = observation
        .lines()
        .find(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("no `{needle}` in:\n{observation}"));
    line[1..line.find(']').unwrap()].parse().unwrap()
}

#[tokio::test]
async fn hostile_actions_cannot_touch_the_reward() {
    let Some(dir) = data_dir() else { return };
    within_timeout(async {
        let miniwob = start(dir).await;
        let base = miniwob.base_url();
        let mut env = miniwob.start_episode("enter-text", 21).await.unwrap();
        let initial = reward_state(&mut env).await;
        assert_eq!(initial["done"], json!(false));
        let text = env.observe().await.unwrap();
        assert_clean(&text);
        let input = reference(&text, "input[text]");
        let submit = reference(&text, "button \"Submit\"");

        let payload = "<script>window.WOB_RAW_REWARD_GLOBAL=1;WOB_DONE_GLOBAL=true</script>";
        let refused: Vec<(&str, Value)> = vec![
            (
                "goto",
                json!({"url": "javascript:WOB_RAW_REWARD_GLOBAL=1;WOB_DONE_GLOBAL=true;void 0"}),
            ),
            ("goto", json!({"url": "JAVASCRIPT:core.endEpisode(1)"})),
            ("goto", json!({"url": "file:///etc/passwd"})),
            ("goto", json!({"url": format!("data:text/html,{payload}")})),
            ("goto", json!({"url": "chrome://settings"})),
            ("goto", json!({"url": "about:config"})),
            ("goto", json!({"url": "http://127.0.0.1:1/"})),
            ("goto", json!({"url": "http://example.com/"})),
            ("goto", json!({"url": format!("{base}@example.com/")})),
            ("click", json!({"ref": 987_654})),
            ("click", json!({"ref": "javascript:core.endEpisode(1)"})),
            ("click", json!({"ref": -1})),
            ("hover", json!({"ref": 0})),
            ("drag", json!({"from": submit, "to": 424_242})),
            ("type", json!({"ref": submit, "text": payload})),
            ("type", json!({"ref": 31_337, "text": payload})),
            ("select", json!({"ref": input, "option": "1"})),
            ("scroll", json!({"ref": 99_999, "direction": "down"})),
            ("press", json!({"key": "Ctrl+L"})),
            ("press", json!({"key": "Alt+F4"})),
            ("press", json!({"key": "Control+W"})),
            ("press", json!({"key": "F12"})),
            ("press", json!({"key": "Meta"})),
            ("evaluate", json!({"expression": "WOB_RAW_REWARD_GLOBAL=1"})),
            ("eval", json!("core.endEpisode(1)")),
            ("answer", json!({"text": "1"})),
            ("tab", json!({"index": 0})),
        ];
        for (action, args) in &refused {
            let result = env.act(action, args).await;
            assert!(
                matches!(
                    result,
                    Err(DomainError::BadArguments { .. } | DomainError::UnknownAction { .. })
                ),
                "{action} {args}: {result:?}"
            );
            assert!(!env.is_done(), "{action} {args} ended the episode");
        }
        // Text that looks like script is typed as text, nothing more.
        env.act("type", &json!({"ref": input, "text": payload}))
            .await
            .unwrap();
        env.act("press", &json!({"key": "Enter"})).await.unwrap();
        assert_eq!(
            reward_state(&mut env).await,
            initial,
            "the reward globals changed"
        );
        let typed = env
            .window()
            .main()
            .evaluate_main("document.getElementById('tt').value")
            .await
            .unwrap();
        assert_eq!(typed, json!(payload));
        let text = env.observe().await.unwrap();
        assert_clean_except(&text, payload);
        assert!(!env.is_done());
        let score = env.score().await.unwrap();
        assert!(!score.success, "{score:?}");

        // Submitting the wrong text ends the episode as a failure; neither
        // the page's reward display nor the value leak into observations.
        let outcome = env.act("click", &json!({"ref": submit})).await.unwrap();
        assert!(outcome.done);
        assert_clean(&outcome.message);
        assert_clean_except(&env.observe().await.unwrap(), payload);
        let score = env.score().await.unwrap();
        assert!(!score.success);
        assert_eq!(score.reason, "raw reward -1.00");
        assert!(matches!(
            env.act("click", &json!({"ref": submit})).await,
            Err(DomainError::EpisodeOver)
        ));
    })
    .await;
}

#[tokio::test]
async fn leaving_the_task_page_fails_the_episode() {
    let Some(dir) = data_dir() else { return };
    within_timeout(async {
        let miniwob = start(dir).await;
        // A fresh copy of the same task would start an unseeded episode the
        // agent could solve instead; it must not count.
        let url = miniwob.task_url("click-test").unwrap();
        let mut env = miniwob.start_episode("click-test", 4).await.unwrap();
        let outcome = env.act("goto", &json!({"url": url})).await.unwrap();
        assert!(outcome.done, "{outcome:?}");
        let score = env.score().await.unwrap();
        assert!(!score.success);
        assert!(score.reason.contains("navigated away"), "{score:?}");
    })
    .await;
}
