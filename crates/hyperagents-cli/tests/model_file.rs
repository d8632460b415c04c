//! An embedded model named by the path of a GGUF file (`embedded:PATH` or
//! `[models.x] path = …`): it answers; a wrong sha256 pin, a file that is not
//! GGUF, a GGUF without a chat template and one llama.cpp cannot load are
//! each refused with an error naming the file, never a crash of the CLI.

#![allow(clippy::unwrap_used)]

mod support;

use support::{run, text};

#[test]
fn a_gguf_file_by_path_answers_and_bad_files_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let model = hyperagents_testkit::smollm2_path();
    let spec = format!("embedded:{}", model.display());
    let out = run(dir.path(), &["chat", "--model", &spec, "What is 2+2?"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("[embedded/smollm2-135m.gguf]"),
        "{}",
        text(&out.stderr)
    );

    // A pin that does not match.
    std::fs::write(
        dir.path().join("hyperagents.toml"),
        format!(
            "[models.mine]\nprovider = \"embedded\"\npath = \"{}\"\nsha256 = \"{}\"\n",
            model.display(),
            "0".repeat(64)
        ),
    )
    .unwrap();
    let out = run(
        dir.path(),
        &[
            "--config",
            "hyperagents.toml",
            "chat",
            "--model",
            "mine",
            "hi",
        ],
    );
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(
        said.contains("sha256 mismatch") && said.contains("smollm2-135m.gguf"),
        "{said}"
    );

    // What the CLI says when asked to chat with the model file at `path`,
    // which it must refuse.
    let refused = |path: &std::path::Path| {
        let spec = format!("embedded:{}", path.display());
        let out = run(dir.path(), &["chat", "--model", &spec, "hi"]);
        assert!(!out.status.success(), "{} was accepted", path.display());
        text(&out.stderr)
    };

    // Not a GGUF file at all.
    let notes = dir.path().join("notes.gguf");
    std::fs::write(&notes, "hello, not a model").unwrap();
    let said = refused(&notes);
    assert!(said.contains("notes.gguf"), "{said}");

    // A GGUF whose chat template key is renamed (same length, offsets kept).
    let bytes = std::fs::read(&model).unwrap();
    let key = b"tokenizer.chat_template";
    let at = bytes.windows(key.len()).position(|w| w == key).unwrap();
    let mut renamed = bytes.clone();
    renamed[at + key.len() - 1] = b'X';
    let untemplated = dir.path().join("untemplated.gguf");
    std::fs::write(&untemplated, &renamed).unwrap();
    let said = refused(&untemplated);
    assert!(
        said.contains("untemplated.gguf") && said.contains("no tokenizer.chat_template"),
        "{said}"
    );

    // A header that reads but tensors cut off: llama.cpp fails in the probe
    // process, and the CLI says so.
    let truncated = dir.path().join("truncated.gguf");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let said = refused(&truncated);
    assert!(
        said.contains("truncated.gguf") && said.contains("cannot be loaded as a model"),
        "{said}"
    );
}
