//! MiniWoB++ against real Chromium: the reset protocol, scripted policies,
//! determinism, the split against the installed tasks, and the bench.

#![allow(clippy::unwrap_used)] // Test helpers panic on setup failures by design.

mod common;

use common::{data_dir, start, within_timeout};
use hyperagents_domain::{Domain, DomainError, Environment};
use hyperagents_miniwob::scripted::{SCRIPTED_TASKS, StepTimings, solve};
use hyperagents_miniwob::{Split, bench};
use serde_json::json;

#[tokio::test]
async fn click_test_end_to_end() {
    let Some(dir) = data_dir() else { return };
    within_timeout(async {
        let miniwob = start(dir).await;
        let mut env = miniwob.reset("click-test", 1).await.unwrap();
        assert_eq!(env.instruction(), "Click the button.");
        let text = env.observe().await.unwrap();
        println!("{text}");
        let line = text
            .lines()
            .find(|line| line.contains("button \"Click Me!\""))
            .unwrap_or_else(|| panic!("no button in:\n{text}"));
        let reference: u64 = line[1..line.find(']').unwrap()].parse().unwrap();
        let outcome = env.act("click", &json!({"ref": reference})).await.unwrap();
        assert!(outcome.done, "{outcome:?}");
        assert!(env.is_done());
        let score = env.score().await.unwrap();
        assert!(score.success, "{score:?}");
        assert_eq!(score.reason, "raw reward 1.00");
    })
    .await;
}

#[tokio::test]
async fn scripted_policies_reach_reward_on_several_seeds() {
    let Some(dir) = data_dir() else { return };
    within_timeout(async {
        let miniwob = start(dir).await;
        for task in SCRIPTED_TASKS {
            for seed in [0u64, 7, 1234, u64::MAX] {
                let mut env = miniwob.start_episode(task, seed).await.unwrap();
                let mut timings = StepTimings::default();
                solve(&mut env, task, &mut timings)
                    .await
                    .unwrap_or_else(|e| panic!("{task} seed {seed}: {e}"));
                assert!(env.is_done(), "{task} seed {seed} not done");
                let score = env.score().await.unwrap();
                assert!(score.success, "{task} seed {seed}: {score:?}");
                assert!(score.value > 0.0);
            }
        }
    })
    .await;
}

#[tokio::test]
async fn reset_is_deterministic_per_seed() {
    let Some(dir) = data_dir() else { return };
    within_timeout(async {
        let miniwob = start(dir).await;
        let mut seen = Vec::new();
        for seed in [5u64, 5, 6] {
            let mut env = miniwob.reset("click-button", seed).await.unwrap();
            let observation = env.observe().await.unwrap();
            seen.push((env.instruction(), observation));
        }
        assert_eq!(seen[0], seen[1], "same seed, different episode");
        assert_ne!(seen[0], seen[2], "different seeds gave the same episode");
    })
    .await;
}

#[tokio::test]
async fn reused_pages_are_deterministic_too() {
    let Some(dir) = data_dir() else { return };
    within_timeout(async {
        let mut config = common::config(dir);
        config.reload_each_episode = false;
        let miniwob = hyperagents_miniwob::MiniWob::start(config).await.unwrap();
        let mut first = miniwob.reset("enter-text", 11).await.unwrap();
        let first_view = (first.instruction(), first.observe().await.unwrap());
        drop(first);
        let _other = miniwob.reset("enter-text", 12).await.unwrap();
        drop(_other);
        let mut again = miniwob.reset("enter-text", 11).await.unwrap();
        assert_eq!(
            first_view,
            (again.instruction(), again.observe().await.unwrap())
        );
    })
    .await;
}

#[tokio::test]
async fn unknown_tasks_are_refused() {
    let Some(dir) = data_dir() else { return };
    within_timeout(async {
        let miniwob = start(dir).await;
        for task in ["no-such-task", "../core/core", "miniwob/click-test"] {
            match miniwob.reset(task, 0).await {
                Err(DomainError::UnknownTask(name)) => assert_eq!(name, task),
                Err(other) => panic!("{task}: {other}"),
                Ok(_) => panic!("{task}: accepted"),
            }
        }
    })
    .await;
}

#[tokio::test]
async fn every_installed_task_is_listed_and_the_default_split_covers_them() {
    let Some(dir) = data_dir() else { return };
    within_timeout(async {
        let miniwob = start(dir).await;
        let tasks = miniwob.task_ids();
        let page_tasks: std::collections::BTreeSet<String> = tasks
            .iter()
            .filter(|t| !t.starts_with("flight."))
            .cloned()
            .collect();
        assert_eq!(page_tasks.len(), 130);
        assert!(tasks.contains(&"flight.AA".to_string()));
        let split = Split::default_split().unwrap();
        assert_eq!(split.all_tasks(), page_tasks);
    })
    .await;
}

#[tokio::test]
async fn a_flight_task_starts_with_its_instruction() {
    let Some(dir) = data_dir() else { return };
    within_timeout(async {
        let miniwob = start(dir).await;
        let mut env = miniwob.reset("flight.AA", 3).await.unwrap();
        let instruction = env.instruction();
        assert!(!instruction.is_empty());
        let text = env.observe().await.unwrap();
        assert!(!text.to_lowercase().contains("reward"), "{text}");
    })
    .await;
}

#[tokio::test]
async fn the_benchmark_runs_scripted_episodes_on_several_windows() {
    let Some(dir) = data_dir() else { return };
    within_timeout(async {
        // One run of seeds for every scripted task.
        let episodes = bench::EPISODES_PER_TASK_RUN * SCRIPTED_TASKS.len();
        let report = bench::throughput(&common::config(dir), 2, episodes)
            .await
            .unwrap();
        println!("{report}");
        assert_eq!(report.windows, 2);
        assert_eq!(report.successes, episodes, "{:?}", report.failures);
        assert!(report.episodes_per_second > 0.0);
        assert!(report.click.count >= episodes);
        assert!(report.type_text.count >= 2);
    })
    .await;
}
