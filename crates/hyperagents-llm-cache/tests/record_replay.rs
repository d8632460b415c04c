//! Record/replay through a real SQLite file: a counting stand-in model shows
//! exactly when the cache answers and when the model is called.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use hyperagents_llm::{
    Capabilities, ChatModel, ChatRequest, ChatResponse, FinishReason, LlmError, Message,
    ModelDescriptor, Usage,
};
use hyperagents_llm_cache::{CacheError, CacheKey, CacheMode, CachedModel, ResponseCache};

/// Answers `echo <seed>: <last message>` and counts its calls; fails when the
/// last message is `fail`.
struct Counting {
    descriptor: ModelDescriptor,
    calls: AtomicU64,
}

impl Counting {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            descriptor: ModelDescriptor {
                provider: "test".into(),
                model: "counting".into(),
                fingerprint: Some("0123abcd".into()),
                capabilities: Capabilities::default(),
            },
            calls: AtomicU64::new(0),
        })
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl ChatModel for Counting {
    fn descriptor(&self) -> &ModelDescriptor {
        &self.descriptor
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let last = request
            .messages
            .last()
            .map(|m| m.content.as_str())
            .unwrap_or_default();
        if last == "fail" {
            return Err(LlmError::Engine {
                provider: "test".into(),
                model: "counting".into(),
                message: "asked to fail".into(),
            });
        }
        Ok(ChatResponse {
            text: format!("echo {}: {last}", request.sampling.seed),
            tool_calls: vec![],
            usage: Usage {
                input_tokens: 5,
                output_tokens: 7,
                cached_input_tokens: 0,
            },
            finish_reason: FinishReason::Stop,
            latency: Duration::from_millis(40),
            cache_hit: false,
            timing: None,
        })
    }
}

fn ask(text: &str, seed: u64) -> ChatRequest {
    ChatRequest::new(vec![Message::system("You are terse."), Message::user(text)]).with_seed(seed)
}

fn cached(inner: &Arc<Counting>, cache: &ResponseCache, mode: CacheMode) -> CachedModel {
    CachedModel::new(inner.clone(), cache.clone(), mode)
}

#[tokio::test]
async fn read_write_records_then_hits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = ResponseCache::open(dir.path().join("llm-cache.sqlite")).expect("open");
    let inner = Counting::new();
    let model = cached(&inner, &cache, CacheMode::ReadWrite);

    let first = model.chat(&ask("hello", 1)).await.expect("first call");
    assert!(!first.cache_hit);
    assert_eq!(inner.calls(), 1);

    let second = model.chat(&ask("hello", 1)).await.expect("second call");
    assert!(second.cache_hit);
    assert_eq!(inner.calls(), 1, "a hit must not call the model");
    assert_eq!(second.text, first.text);
    assert_eq!(second.usage, first.usage);
    assert_eq!(second.latency, first.latency);

    // A different seed is a different call.
    let other = model.chat(&ask("hello", 2)).await.expect("other seed");
    assert!(!other.cache_hit);
    assert_eq!(other.text, "echo 2: hello");
    assert_eq!(inner.calls(), 2);
    assert_eq!(cache.len().expect("count"), 2);

    // Streaming hits report the whole text once.
    let mut deltas = Vec::new();
    let streamed = model
        .chat_streaming(&ask("hello", 2), &mut |d: &str| deltas.push(d.to_owned()))
        .await
        .expect("streamed hit");
    assert!(streamed.cache_hit);
    assert_eq!(deltas, vec!["echo 2: hello".to_owned()]);
    assert_eq!(inner.calls(), 2);
}

#[tokio::test]
async fn errors_are_not_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = ResponseCache::open(dir.path().join("llm-cache.sqlite")).expect("open");
    let inner = Counting::new();
    let model = cached(&inner, &cache, CacheMode::ReadWrite);
    for _ in 0..2 {
        let err = model.chat(&ask("fail", 1)).await.expect_err("inner fails");
        assert!(matches!(err, LlmError::Engine { .. }), "{err}");
    }
    assert_eq!(inner.calls(), 2);
    assert!(cache.is_empty().expect("count"));
}

#[tokio::test]
async fn off_never_touches_the_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = ResponseCache::open(dir.path().join("llm-cache.sqlite")).expect("open");
    let inner = Counting::new();
    cached(&inner, &cache, CacheMode::ReadWrite)
        .chat(&ask("hi", 1))
        .await
        .expect("record");
    let model = cached(&inner, &cache, CacheMode::Off);
    let answer = model.chat(&ask("hi", 1)).await.expect("passthrough");
    assert!(!answer.cache_hit);
    assert_eq!(inner.calls(), 2);
    model.chat(&ask("new", 1)).await.expect("passthrough");
    assert_eq!(cache.len().expect("count"), 1, "off mode records nothing");
}

#[tokio::test]
async fn replay_only_miss_is_an_error_and_never_calls_the_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = ResponseCache::open(dir.path().join("llm-cache.sqlite")).expect("open");
    let inner = Counting::new();
    let model = cached(&inner, &cache, CacheMode::ReplayOnly);
    let request = ask("never recorded", 9);
    let err = model.chat(&request).await.expect_err("miss");
    let expected_key = CacheKey::for_request(inner.descriptor(), &request).expect("key");
    match &err {
        LlmError::CacheMiss {
            provider,
            model,
            key,
        } => {
            assert_eq!(provider, "test");
            assert_eq!(model, "counting");
            assert_eq!(key, expected_key.as_str());
        }
        other => panic!("expected a cache miss, got {other}"),
    }
    assert!(err.to_string().contains(expected_key.as_str()), "{err}");
    let err = model
        .chat_streaming(&request, &mut |_: &str| panic!("no text on a miss"))
        .await
        .expect_err("streaming miss");
    assert!(matches!(err, LlmError::CacheMiss { .. }));
    assert_eq!(inner.calls(), 0);
    assert!(cache.is_empty().expect("count"), "replay-only never writes");
}

#[tokio::test]
async fn records_replay_after_reopening_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("runs/llm-cache.sqlite");
    let requests: Vec<ChatRequest> = (0..5).map(|seed| ask("count", seed)).collect();

    let recorded = {
        let cache = ResponseCache::open(&path).expect("open for recording");
        let inner = Counting::new();
        let model = cached(&inner, &cache, CacheMode::ReadWrite);
        let mut answers = Vec::new();
        for request in &requests {
            answers.push(model.chat(request).await.expect("record"));
        }
        assert_eq!(inner.calls(), 5);
        answers
    };

    // A fresh handle, as a later process would open it.
    let cache = ResponseCache::open(&path).expect("reopen");
    let inner = Counting::new();
    let model = cached(&inner, &cache, CacheMode::ReplayOnly);
    for (request, original) in requests.iter().zip(&recorded) {
        let replayed = model.chat(request).await.expect("replay");
        assert!(replayed.cache_hit);
        assert_eq!(replayed.text, original.text);
    }
    assert_eq!(inner.calls(), 0);
}

#[tokio::test]
async fn concurrent_handles_share_one_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("llm-cache.sqlite");
    let inner = Counting::new();
    let mut tasks = Vec::new();
    for seed in 0..16u64 {
        // Separate connections, as separate worker processes would have.
        let cache = ResponseCache::open(&path).expect("open");
        let model = cached(&inner, &cache, CacheMode::ReadWrite);
        tasks.push(tokio::spawn(async move {
            model.chat(&ask("par", seed % 4)).await
        }));
    }
    for task in tasks {
        task.await.expect("task").expect("call");
    }
    let cache = ResponseCache::open(&path).expect("open");
    assert_eq!(cache.len().expect("count"), 4);
    assert!(inner.calls() >= 4 && inner.calls() <= 16);
}

#[tokio::test]
async fn a_corrupt_row_is_an_error_naming_its_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("llm-cache.sqlite");
    let cache = ResponseCache::open(&path).expect("open");
    let inner = Counting::new();
    let model = cached(&inner, &cache, CacheMode::ReadWrite);
    let request = ask("fragile", 3);
    model.chat(&request).await.expect("record");
    let key = CacheKey::for_request(inner.descriptor(), &request).expect("key");

    let raw = rusqlite::Connection::open(&path).expect("raw open");
    let changed = raw
        .execute(
            "UPDATE responses SET response_json = '{\"text\": 42' WHERE key = ?1",
            [key.as_str()],
        )
        .expect("corrupt");
    assert_eq!(changed, 1);
    drop(raw);

    let err = cache.get(&key).expect_err("corrupt entry");
    assert!(
        matches!(&err, CacheError::CorruptEntry { key: k, .. } if k == key.as_str()),
        "{err}"
    );

    for mode in [CacheMode::ReadWrite, CacheMode::ReplayOnly] {
        let err = cached(&inner, &cache, mode)
            .chat(&request)
            .await
            .expect_err("corrupt");
        let LlmError::Cache(message) = &err else {
            panic!("expected a cache error, got {err}")
        };
        assert!(message.contains(key.as_str()), "{message}");
        assert!(message.contains("corrupt"), "{message}");
    }
    assert_eq!(inner.calls(), 1);
}
