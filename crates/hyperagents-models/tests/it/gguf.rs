//! The GGUF header reader on synthetic files: every value type, skipped
//! arrays, and every way a header can be broken.

use std::path::Path;

use hyperagents_models::gguf::MAX_KEPT_ARRAY_LEN;
use hyperagents_models::{GgufErrorKind, GgufHeader, MetaValue, ValueType};

use crate::support::{Gguf, V, filler, write_str};

fn read(bytes: &[u8]) -> Result<GgufHeader, hyperagents_models::GgufError> {
    GgufHeader::read_from(bytes, Path::new("/models/x.gguf"))
}

fn every_type() -> Gguf {
    Gguf::new()
        .kv("t.u8", V::U8(200))
        .kv("t.i8", V::I8(-100))
        .kv("t.u16", V::U16(60_000))
        .kv("t.i16", V::I16(-30_000))
        .kv("t.u32", V::U32(4_000_000_000))
        .kv("t.i32", V::I32(-2_000_000_000))
        .kv("t.f32", V::F32(0.5))
        .kv("t.bool", V::Bool(true))
        .kv("t.string", V::str("héllo"))
        .kv("t.u64", V::U64(u64::MAX))
        .kv("t.i64", V::I64(i64::MIN))
        .kv("t.f64", V::F64(-1.25))
        .kv("a.u8", V::Arr(0, vec![V::U8(1), V::U8(2)]))
        .kv("a.i32", V::Arr(5, vec![V::I32(-1), V::I32(7)]))
        .kv("a.f64", V::Arr(12, vec![V::F64(1.5)]))
        .kv("a.bool", V::Arr(7, vec![V::Bool(false), V::Bool(true)]))
        .kv("a.string", V::Arr(8, vec![V::str("a"), V::str("")]))
        .kv("a.empty", V::Arr(4, vec![]))
        .kv(
            "a.nested",
            V::Arr(
                9,
                vec![V::Arr(2, vec![V::U16(3)]), V::Arr(8, vec![V::str("x")])],
            ),
        )
}

#[test]
fn reads_every_value_type() {
    let file = every_type().with_body(filler(100, 1));
    let header = read(&file.bytes()).expect("valid header");
    assert_eq!(header.version, 3);
    assert_eq!(header.tensor_count, 2);
    assert_eq!(header.kv_count, 19);
    assert_eq!(header.metadata.len(), 19);
    assert_eq!(header.metadata_end, file.header_bytes().len() as u64);

    assert_eq!(header.get("t.u8"), Some(&MetaValue::U8(200)));
    assert_eq!(header.get("t.i8"), Some(&MetaValue::I8(-100)));
    assert_eq!(header.get("t.u16"), Some(&MetaValue::U16(60_000)));
    assert_eq!(header.get("t.i16"), Some(&MetaValue::I16(-30_000)));
    assert_eq!(header.get_u64("t.u32"), Some(4_000_000_000));
    assert_eq!(header.get_i64("t.i32"), Some(-2_000_000_000));
    assert_eq!(header.get_f64("t.f32"), Some(0.5));
    assert_eq!(header.get_bool("t.bool"), Some(true));
    assert_eq!(header.get_str("t.string"), Some("héllo"));
    assert_eq!(header.get_u64("t.u64"), Some(u64::MAX));
    assert_eq!(header.get_i64("t.u64"), None, "does not fit an i64");
    assert_eq!(header.get_i64("t.i64"), Some(i64::MIN));
    assert_eq!(header.get_u64("t.i8"), None, "negative");
    assert_eq!(header.get_f64("t.f64"), Some(-1.25));
    assert_eq!(header.get_str("t.u8"), None, "typed getters do not convert");

    let bools = header.get_array("a.bool").expect("array");
    assert_eq!(bools.element_type, ValueType::Bool);
    assert_eq!(
        bools.values,
        Some(vec![MetaValue::Bool(false), MetaValue::Bool(true)])
    );
    let strings = header.get_array("a.string").expect("array");
    assert_eq!(strings.len, 2);
    assert_eq!(
        strings.values,
        Some(vec![
            MetaValue::String("a".into()),
            MetaValue::String(String::new())
        ])
    );
    assert_eq!(header.get_array("a.empty").map(|a| a.len), Some(0));
    let nested = header.get_array("a.nested").expect("array");
    assert_eq!(nested.element_type, ValueType::Array);
    let inner = nested.values.as_ref().expect("kept")[1]
        .as_array()
        .expect("inner array");
    assert_eq!(inner.values, Some(vec![MetaValue::String("x".into())]));
    assert_eq!(
        header.get("a.u8").map(MetaValue::value_type),
        Some(ValueType::Array)
    );
}

#[test]
fn version_2_is_accepted() {
    let mut file = every_type();
    file.version = 2;
    assert_eq!(read(&file.bytes()).expect("v2").version, 2);
}

#[test]
fn long_arrays_keep_only_their_length() {
    let tokens: Vec<V> = (0..5000).map(|i| V::Str(format!("token-{i}"))).collect();
    let scores: Vec<V> = (0..5000).map(|i| V::F32(i as f32)).collect();
    let file = Gguf::chat_model("llama", Some("{{ messages }}"))
        .kv("tokenizer.ggml.merges", V::Arr(8, tokens))
        .kv("tokenizer.ggml.scores", V::Arr(6, scores))
        .kv("tokenizer.ggml.bos_token_id", V::U32(1))
        .kv(
            "big.nested",
            V::Arr(
                9,
                (0..MAX_KEPT_ARRAY_LEN + 1)
                    .map(|_| V::Arr(0, vec![V::U8(1)]))
                    .collect(),
            ),
        );
    let header = read(&file.bytes()).expect("valid");
    for key in ["tokenizer.ggml.merges", "tokenizer.ggml.scores"] {
        let array = header.get_array(key).expect("array");
        assert_eq!(array.len, 5000);
        assert_eq!(array.values, None, "{key} is not kept");
    }
    assert_eq!(
        header
            .get_array("big.nested")
            .map(|a| (a.len, a.values.is_none())),
        Some((1025, true))
    );
    assert_eq!(header.vocab_len(), Some(3000));
    // Values after the skipped arrays are still read.
    assert_eq!(header.get_u64("tokenizer.ggml.bos_token_id"), Some(1));
    assert_eq!(header.architecture(), Some("llama"));
    assert_eq!(header.name(), Some("Synthetic"));
    assert_eq!(header.context_length(), Some(2048));
    assert_eq!(header.chat_template(), Some("{{ messages }}"));
    assert_eq!(header.metadata_end, file.header_bytes().len() as u64);
}

#[test]
fn every_truncation_is_reported_with_its_offset() {
    let bytes = every_type().header_bytes();
    for cut in 0..bytes.len() {
        let err = read(&bytes[..cut]).expect_err("truncated");
        match &err.kind {
            GgufErrorKind::Truncated { offset, .. } => {
                assert_eq!(*offset, cut as u64, "cut at {cut}: {err}");
            }
            other => panic!("cut at {cut}: expected truncation, got {other}"),
        }
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("/models/x.gguf: truncated header at byte {cut} (")),
            "{message}"
        );
    }
}

#[test]
fn truncation_names_the_key_being_read() {
    let file = Gguf::new().kv("general.architecture", V::str("llama"));
    let bytes = file.header_bytes();
    let err = read(&bytes[..bytes.len() - 2]).expect_err("truncated");
    assert_eq!(
        err.to_string(),
        format!(
            "/models/x.gguf: truncated header at byte {} (reading a string value of \
             `general.architecture`)",
            bytes.len() - 2
        )
    );
    // Inside a skipped array too.
    let file = Gguf::chat_model("llama", None);
    let bytes = file.header_bytes();
    let err = read(&bytes[..bytes.len() - 3]).expect_err("truncated");
    assert!(
        err.to_string().contains("of `tokenizer.ggml.tokens`"),
        "{err}"
    );
}

#[test]
fn truncated_file_on_disk_names_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cut.gguf");
    let bytes = Gguf::chat_model("llama", Some("t")).bytes();
    std::fs::write(&path, &bytes[..1234]).expect("write");
    let err = GgufHeader::read_path(&path).expect_err("truncated");
    assert!(
        err.to_string().starts_with(&format!(
            "{}: truncated header at byte 1234",
            path.display()
        )),
        "{err}"
    );
    let missing = GgufHeader::read_path(&dir.path().join("absent.gguf")).expect_err("missing");
    assert!(matches!(missing.kind, GgufErrorKind::Io(_)), "{missing}");
    assert!(missing.to_string().contains("absent.gguf"), "{missing}");
}

#[test]
fn rejects_other_files_and_versions() {
    let err = read(b"GGML\x03\0\0\0").expect_err("bad magic");
    assert_eq!(
        err.to_string(),
        "/models/x.gguf: not a GGUF file (starts with \"GGML\", expected \"GGUF\")"
    );
    let err = read(b"\x7fELF\x02\x01\x01\0").expect_err("bad magic");
    assert!(matches!(err.kind, GgufErrorKind::BadMagic { .. }), "{err}");

    for version in [1u32, 4, 0x0300_0000] {
        let mut file = Gguf::new();
        file.version = version;
        let err = read(&file.bytes()).expect_err("version");
        assert!(
            matches!(err.kind, GgufErrorKind::UnsupportedVersion(v) if v == version),
            "{err}"
        );
    }
}

/// A header of one key whose value is written by `value` (type code first).
fn one_key(key: &[u8], value: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = b"GGUF".to_vec();
    out.extend(3u32.to_le_bytes());
    out.extend(0u64.to_le_bytes());
    out.extend(1u64.to_le_bytes());
    write_str(&mut out, key);
    value(&mut out);
    out
}

#[test]
fn rejects_corrupt_values_without_allocating_them() {
    let unknown = one_key(b"k", |out| out.extend(13u32.to_le_bytes()));
    let err = read(&unknown).expect_err("unknown type");
    assert!(
        matches!(
            err.kind,
            GgufErrorKind::UnknownValueType {
                code: 13,
                offset: 33,
                ..
            }
        ),
        "{err}"
    );

    let huge_string = one_key(b"k", |out| {
        out.extend(8u32.to_le_bytes());
        out.extend((1u64 << 40).to_le_bytes());
    });
    let err = read(&huge_string).expect_err("huge string");
    assert!(
        matches!(err.kind, GgufErrorKind::TooLong { len, .. } if len == 1 << 40),
        "{err}"
    );

    // A plausible length but no bytes: truncated, and nothing preallocated.
    let short_string = one_key(b"k", |out| {
        out.extend(8u32.to_le_bytes());
        out.extend((32u64 << 20).to_le_bytes());
        out.extend(b"abc");
    });
    let err = read(&short_string).expect_err("short string");
    assert!(
        matches!(err.kind, GgufErrorKind::Truncated { offset: 48, .. }),
        "{err}"
    );

    let huge_array = one_key(b"k", |out| {
        out.extend(9u32.to_le_bytes());
        out.extend(0u32.to_le_bytes());
        out.extend((1u64 << 62).to_le_bytes());
    });
    assert!(matches!(
        read(&huge_array).expect_err("huge").kind,
        GgufErrorKind::Truncated { .. }
    ));

    let overflowing = one_key(b"k", |out| {
        out.extend(9u32.to_le_bytes());
        out.extend(10u32.to_le_bytes());
        out.extend((1u64 << 62).to_le_bytes());
    });
    assert!(matches!(
        read(&overflowing).expect_err("overflow").kind,
        GgufErrorKind::TooLong { .. }
    ));

    let bad_key = one_key(b"\xff\xfe", |out| out.extend(0u32.to_le_bytes()));
    let err = read(&bad_key).expect_err("bad utf-8");
    assert!(
        matches!(err.kind, GgufErrorKind::InvalidUtf8 { offset: 32, .. }),
        "{err}"
    );

    let deep = one_key(b"k", |out| {
        out.extend(9u32.to_le_bytes());
        for _ in 0..6 {
            out.extend(9u32.to_le_bytes());
            out.extend(1u64.to_le_bytes());
        }
    });
    let err = read(&deep).expect_err("too deep");
    assert!(matches!(err.kind, GgufErrorKind::TooDeep { .. }), "{err}");
}
