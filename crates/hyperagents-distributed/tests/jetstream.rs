//! The JetStream layout against a real nats-server (Debian's 2.9): created
//! idempotently, a job taken from the work queue once, and program bundles
//! stored, fetched and verified — all surviving a server restart.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, pull};
use futures::StreamExt;
use hyperagents_distributed::jetstream::{JOBS_STREAM, Jets, NatsSettings};
use hyperagents_testkit::nats::NatsServer;

fn settings(server: &NatsServer) -> NatsSettings {
    NatsSettings {
        url: server.url(),
        ..NatsSettings::default()
    }
}

fn program(dir: &std::path::Path, greeting: &str) {
    std::fs::create_dir_all(dir.join("skills/a")).unwrap();
    std::fs::write(dir.join("hyperagent.toml"), "name = \"p\"\n").unwrap();
    std::fs::write(dir.join("skills/a/prompt.md"), greeting).unwrap();
}

#[tokio::test]
async fn layout_jobs_and_bundles_on_a_real_server_survive_a_restart() {
    let Some(mut server) = NatsServer::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let jets = Jets::open(&settings(&server)).await.unwrap();
    // Opening again (a second process) finds the same layout.
    Jets::open(&settings(&server)).await.unwrap();

    // A bundle round trip, stored once.
    let src = dir.path().join("src");
    program(&src, "Hello {{ goal }}\n");
    let hash = jets.put_program(&src).await.unwrap();
    assert_eq!(jets.put_program(&src).await.unwrap(), hash);
    let out = dir.path().join("out");
    jets.get_program(&hash, &out).await.unwrap();
    assert_eq!(hyperagents_program::content_hash_dir(&out).unwrap(), hash);

    // A bundle stored under another program's name is refused on fetch.
    let other = dir.path().join("other");
    program(&other, "Bye\n");
    let (_, other_bytes) = hyperagents_distributed::pack(&other).unwrap();
    let forged = hyperagents_program::ContentHash::from_hex(&"ab".repeat(32)).unwrap();
    jets.bundles
        .put(forged.to_hex().as_str(), &mut other_bytes.as_slice())
        .await
        .unwrap();
    let refused = jets
        .get_program(&forged, &dir.path().join("forged"))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("refused"), "{refused}");
    assert!(!dir.path().join("forged").exists());

    // A job on the work queue, published before a restart, is taken once
    // after it and leaves the queue when acked.
    jets.context
        .publish("ha.jobs.episode", "job-1".into())
        .await
        .unwrap()
        .await
        .unwrap();
    drop(jets);
    server.restart();
    let jets = Jets::open(&settings(&server)).await.unwrap();
    let stream = jets.context.get_stream(JOBS_STREAM).await.unwrap();
    let consumer = stream
        .get_or_create_consumer(
            "workers",
            pull::Config {
                durable_name: Some("workers".into()),
                ack_policy: AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut batch = consumer.fetch().max_messages(10).messages().await.unwrap();
    let message = batch.next().await.unwrap().unwrap();
    assert_eq!(&message.payload[..], b"job-1");
    message.ack().await.unwrap();
    assert!(batch.next().await.is_none());
    let mut stream = jets.context.get_stream(JOBS_STREAM).await.unwrap();
    // Acked work leaves a work-queue stream.
    let mut left = u64::MAX;
    for _ in 0..50 {
        left = stream.info().await.unwrap().state.messages;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(left, 0);
    // The bundle stored before the restart is still there.
    jets.get_program(&hash, &dir.path().join("again"))
        .await
        .unwrap();
}
