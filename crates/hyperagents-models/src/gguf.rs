//! A reader for the header of a GGUF file: magic, version, counts and the
//! metadata key/value pairs. Tensor descriptions and data are never read.
//!
//! Layout (little-endian): `"GGUF"`, version `u32` (2 or 3), tensor count
//! `u64`, metadata count `u64`, then each pair as a key (`u64` length + UTF-8
//! bytes), a value type `u32` and the value. Strings are a `u64` length and
//! UTF-8 bytes; arrays are an element type `u32`, a count `u64` and the
//! elements. Arrays longer than [`MAX_KEPT_ARRAY_LEN`] (a tokenizer's
//! vocabulary, merges and scores) are skipped, keeping only their type and
//! length, so reading the header of a 150k-token model stays cheap.
//!
//! The reader never trusts a length: it reads in bounded steps, so a corrupt
//! or truncated file fails with the byte offset rather than a huge
//! allocation.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Arrays up to this many elements are kept in full; longer ones only by
/// type and length.
pub const MAX_KEPT_ARRAY_LEN: u64 = 1024;

/// Strings longer than this are refused as corrupt.
const MAX_STRING_LEN: u64 = 64 << 20;

/// Arrays of arrays deeper than this are refused as corrupt.
const MAX_ARRAY_DEPTH: u32 = 4;

/// The type tag of a metadata value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    String,
    Array,
    U64,
    I64,
    F64,
}

impl ValueType {
    /// The type with GGUF tag `code`.
    pub fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            0 => Self::U8,
            1 => Self::I8,
            2 => Self::U16,
            3 => Self::I16,
            4 => Self::U32,
            5 => Self::I32,
            6 => Self::F32,
            7 => Self::Bool,
            8 => Self::String,
            9 => Self::Array,
            10 => Self::U64,
            11 => Self::I64,
            12 => Self::F64,
            _ => return None,
        })
    }

    /// The GGUF tag of this type.
    pub fn code(self) -> u32 {
        match self {
            Self::U8 => 0,
            Self::I8 => 1,
            Self::U16 => 2,
            Self::I16 => 3,
            Self::U32 => 4,
            Self::I32 => 5,
            Self::F32 => 6,
            Self::Bool => 7,
            Self::String => 8,
            Self::Array => 9,
            Self::U64 => 10,
            Self::I64 => 11,
            Self::F64 => 12,
        }
    }

    /// The encoded size of one value of a fixed-size type.
    fn fixed_size(self) -> Option<u64> {
        match self {
            Self::U8 | Self::I8 | Self::Bool => Some(1),
            Self::U16 | Self::I16 => Some(2),
            Self::U32 | Self::I32 | Self::F32 => Some(4),
            Self::U64 | Self::I64 | Self::F64 => Some(8),
            Self::String | Self::Array => None,
        }
    }
}

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(MetaArray),
}

/// An array value: its element type and length always, its elements only
/// when it has at most [`MAX_KEPT_ARRAY_LEN`] of them.
#[derive(Debug, Clone, PartialEq)]
pub struct MetaArray {
    pub element_type: ValueType,
    pub len: u64,
    pub values: Option<Vec<MetaValue>>,
}

impl MetaValue {
    pub fn value_type(&self) -> ValueType {
        match self {
            Self::U8(_) => ValueType::U8,
            Self::I8(_) => ValueType::I8,
            Self::U16(_) => ValueType::U16,
            Self::I16(_) => ValueType::I16,
            Self::U32(_) => ValueType::U32,
            Self::I32(_) => ValueType::I32,
            Self::U64(_) => ValueType::U64,
            Self::I64(_) => ValueType::I64,
            Self::F32(_) => ValueType::F32,
            Self::F64(_) => ValueType::F64,
            Self::Bool(_) => ValueType::Bool,
            Self::String(_) => ValueType::String,
            Self::Array(_) => ValueType::Array,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    /// Any integer that fits a `u64`.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::U8(v) => Some(v.into()),
            Self::U16(v) => Some(v.into()),
            Self::U32(v) => Some(v.into()),
            Self::U64(v) => Some(v),
            Self::I8(v) => u64::try_from(v).ok(),
            Self::I16(v) => u64::try_from(v).ok(),
            Self::I32(v) => u64::try_from(v).ok(),
            Self::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any integer that fits an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Self::I8(v) => Some(v.into()),
            Self::I16(v) => Some(v.into()),
            Self::I32(v) => Some(v.into()),
            Self::I64(v) => Some(v),
            Self::U8(v) => Some(v.into()),
            Self::U16(v) => Some(v.into()),
            Self::U32(v) => Some(v.into()),
            Self::U64(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any float.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::F32(v) => Some(v.into()),
            Self::F64(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Self::Bool(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&MetaArray> {
        match self {
            Self::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// A GGUF file's header.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufHeader {
    pub version: u32,
    pub tensor_count: u64,
    /// The metadata count the file declares.
    pub kv_count: u64,
    pub metadata: BTreeMap<String, MetaValue>,
    /// The offset where the tensor descriptions begin.
    pub metadata_end: u64,
}

impl GgufHeader {
    /// Reads the header of the file at `path`.
    pub fn read_path(path: &Path) -> Result<Self, GgufError> {
        let fail = |kind| GgufError {
            path: path.to_path_buf(),
            kind,
        };
        let file = std::fs::File::open(path).map_err(|e| fail(GgufErrorKind::Io(e)))?;
        Self::read_from(BufReader::with_capacity(256 << 10, file), path)
    }

    /// Reads a header from `reader`, which must be at the file's start;
    /// errors name `path`.
    pub fn read_from(reader: impl BufRead, path: &Path) -> Result<Self, GgufError> {
        Parser {
            reader,
            pos: 0,
            key: String::new(),
        }
        .header()
        .map_err(|kind| GgufError {
            path: path.to_path_buf(),
            kind,
        })
    }

    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.get(key)
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key)?.as_str()
    }

    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key)?.as_u64()
    }

    pub fn get_i64(&self, key: &str) -> Option<i64> {
        self.get(key)?.as_i64()
    }

    pub fn get_f64(&self, key: &str) -> Option<f64> {
        self.get(key)?.as_f64()
    }

    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.get(key)?.as_bool()
    }

    pub fn get_array(&self, key: &str) -> Option<&MetaArray> {
        self.get(key)?.as_array()
    }

    /// `general.architecture`: `llama`, `qwen2`, …
    pub fn architecture(&self) -> Option<&str> {
        self.get_str("general.architecture")
    }

    /// `general.name`, the model's display name.
    pub fn name(&self) -> Option<&str> {
        self.get_str("general.name")
    }

    /// `tokenizer.chat_template`, the Jinja template for chat prompts.
    pub fn chat_template(&self) -> Option<&str> {
        self.get_str("tokenizer.chat_template")
    }

    /// `<architecture>.context_length`, the trained context size.
    pub fn context_length(&self) -> Option<u64> {
        self.get_u64(&format!("{}.context_length", self.architecture()?))
    }

    /// How many tokens the vocabulary has (`tokenizer.ggml.tokens`' length).
    pub fn vocab_len(&self) -> Option<u64> {
        Some(self.get_array("tokenizer.ggml.tokens")?.len)
    }
}

/// A header that could not be read, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {kind}", path.display())]
pub struct GgufError {
    pub path: PathBuf,
    pub kind: GgufErrorKind,
}

/// What is wrong with a GGUF header.
#[derive(Debug, thiserror::Error)]
pub enum GgufErrorKind {
    #[error("cannot read: {0}")]
    Io(io::Error),
    #[error("not a GGUF file (starts with {}, expected \"GGUF\")", ByteString(.found))]
    BadMagic { found: [u8; 4] },
    #[error("unsupported GGUF version {0} (this reader knows versions 2 and 3)")]
    UnsupportedVersion(u32),
    #[error("truncated header at byte {offset} (reading {what})")]
    Truncated { offset: u64, what: String },
    #[error("invalid UTF-8 in {what} at byte {offset}")]
    InvalidUtf8 { offset: u64, what: String },
    #[error("unknown value type {code} at byte {offset} ({what})")]
    UnknownValueType {
        code: u32,
        offset: u64,
        what: String,
    },
    #[error("implausible length {len} at byte {offset} ({what})")]
    TooLong { len: u64, offset: u64, what: String },
    #[error("arrays nested more than {MAX_ARRAY_DEPTH} deep at byte {offset} ({what})")]
    TooDeep { offset: u64, what: String },
}

/// Shows bytes as a quoted string with escapes: `"GGML"`, `"\x00\x01.."`.
struct ByteString<'a>(&'a [u8]);

impl fmt::Display for ByteString<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}

/// Reads the header in bounded steps, tracking the offset for errors.
struct Parser<R> {
    reader: R,
    pos: u64,
    /// The key whose value is being read, for error messages.
    key: String,
}

impl<R: BufRead> Parser<R> {
    fn header(mut self) -> Result<GgufHeader, GgufErrorKind> {
        let mut magic = [0u8; 4];
        self.fill(&mut magic, "the magic number")?;
        if &magic != b"GGUF" {
            return Err(GgufErrorKind::BadMagic { found: magic });
        }
        let version = self.u32("the version")?;
        if !(2..=3).contains(&version) {
            return Err(GgufErrorKind::UnsupportedVersion(version));
        }
        let tensor_count = self.u64("the tensor count")?;
        let kv_count = self.u64("the metadata count")?;
        let mut metadata = BTreeMap::new();
        for _ in 0..kv_count {
            self.key.clear();
            let key = self.string("a metadata key")?;
            self.key = key;
            let code = self.u32("a value type")?;
            let value = self.value(code, 0)?;
            metadata.insert(std::mem::take(&mut self.key), value);
        }
        Ok(GgufHeader {
            version,
            tensor_count,
            kv_count,
            metadata,
            metadata_end: self.pos,
        })
    }

    fn value(&mut self, code: u32, depth: u32) -> Result<MetaValue, GgufErrorKind> {
        let what = "a value";
        Ok(match self.value_type(code)? {
            ValueType::U8 => MetaValue::U8(u8::from_le_bytes(self.array(what)?)),
            ValueType::I8 => MetaValue::I8(i8::from_le_bytes(self.array(what)?)),
            ValueType::U16 => MetaValue::U16(u16::from_le_bytes(self.array(what)?)),
            ValueType::I16 => MetaValue::I16(i16::from_le_bytes(self.array(what)?)),
            ValueType::U32 => MetaValue::U32(self.u32(what)?),
            ValueType::I32 => MetaValue::I32(i32::from_le_bytes(self.array(what)?)),
            ValueType::U64 => MetaValue::U64(self.u64(what)?),
            ValueType::I64 => MetaValue::I64(i64::from_le_bytes(self.array(what)?)),
            ValueType::F32 => MetaValue::F32(f32::from_le_bytes(self.array(what)?)),
            ValueType::F64 => MetaValue::F64(f64::from_le_bytes(self.array(what)?)),
            ValueType::Bool => {
                let [b] = self.array::<1>(what)?;
                MetaValue::Bool(b != 0)
            }
            ValueType::String => MetaValue::String(self.string("a string value")?),
            ValueType::Array => MetaValue::Array(self.meta_array(depth)?),
        })
    }

    fn meta_array(&mut self, depth: u32) -> Result<MetaArray, GgufErrorKind> {
        if depth >= MAX_ARRAY_DEPTH {
            return Err(GgufErrorKind::TooDeep {
                offset: self.pos,
                what: self.context("an array"),
            });
        }
        let code = self.u32("an array's element type")?;
        let element_type = self.value_type(code)?;
        let len = self.u64("an array's length")?;
        if len > MAX_KEPT_ARRAY_LEN {
            self.skip_elements(element_type, len, depth)?;
            return Ok(MetaArray {
                element_type,
                len,
                values: None,
            });
        }
        let mut values = Vec::new();
        for _ in 0..len {
            values.push(self.value(code, depth + 1)?);
        }
        Ok(MetaArray {
            element_type,
            len,
            values: Some(values),
        })
    }

    fn skip_elements(&mut self, ty: ValueType, len: u64, depth: u32) -> Result<(), GgufErrorKind> {
        if let Some(size) = ty.fixed_size() {
            let bytes = len
                .checked_mul(size)
                .ok_or_else(|| GgufErrorKind::TooLong {
                    len,
                    offset: self.pos,
                    what: self.context("an array"),
                })?;
            return self.skip(bytes, "an array's elements");
        }
        for _ in 0..len {
            match ty {
                ValueType::String => {
                    let n = self.string_len("a string in an array")?;
                    self.skip(n, "a string in an array")?;
                }
                _ => {
                    let code = self.u32("a nested array's element type")?;
                    let inner = self.value_type(code)?;
                    let inner_len = self.u64("a nested array's length")?;
                    if depth + 1 >= MAX_ARRAY_DEPTH {
                        return Err(GgufErrorKind::TooDeep {
                            offset: self.pos,
                            what: self.context("an array"),
                        });
                    }
                    self.skip_elements(inner, inner_len, depth + 1)?;
                }
            }
        }
        Ok(())
    }

    fn value_type(&self, code: u32) -> Result<ValueType, GgufErrorKind> {
        ValueType::from_code(code).ok_or_else(|| GgufErrorKind::UnknownValueType {
            code,
            offset: self.pos.saturating_sub(4),
            what: self.context("a value type"),
        })
    }

    fn string(&mut self, what: &'static str) -> Result<String, GgufErrorKind> {
        let len = self.string_len(what)?;
        let start = self.pos;
        let mut bytes = Vec::new();
        // `take` + `read_to_end` grows the buffer as bytes arrive, so a bogus
        // length costs at most the bytes the file really has.
        let got = (&mut self.reader)
            .take(len)
            .read_to_end(&mut bytes)
            .map_err(GgufErrorKind::Io)? as u64;
        self.pos += got;
        if got < len {
            return Err(GgufErrorKind::Truncated {
                offset: self.pos,
                what: self.context(what),
            });
        }
        String::from_utf8(bytes).map_err(|_| GgufErrorKind::InvalidUtf8 {
            offset: start,
            what: self.context(what),
        })
    }

    fn string_len(&mut self, what: &'static str) -> Result<u64, GgufErrorKind> {
        let len = self.u64(what)?;
        if len > MAX_STRING_LEN {
            return Err(GgufErrorKind::TooLong {
                len,
                offset: self.pos - 8,
                what: self.context(what),
            });
        }
        Ok(len)
    }

    fn skip(&mut self, n: u64, what: &'static str) -> Result<(), GgufErrorKind> {
        let got = io::copy(&mut (&mut self.reader).take(n), &mut io::sink())
            .map_err(GgufErrorKind::Io)?;
        self.pos += got;
        if got < n {
            return Err(GgufErrorKind::Truncated {
                offset: self.pos,
                what: self.context(what),
            });
        }
        Ok(())
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, GgufErrorKind> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, GgufErrorKind> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], GgufErrorKind> {
        let mut buf = [0u8; N];
        self.fill(&mut buf, what)?;
        Ok(buf)
    }

    /// Fills `buf`, reporting where the data ran out if the file ends first.
    fn fill(&mut self, buf: &mut [u8], what: &'static str) -> Result<(), GgufErrorKind> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.reader.read(&mut buf[filled..]) {
                Ok(0) => {
                    return Err(GgufErrorKind::Truncated {
                        offset: self.pos,
                        what: self.context(what),
                    });
                }
                Ok(n) => {
                    filled += n;
                    self.pos += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(GgufErrorKind::Io(e)),
            }
        }
        Ok(())
    }

    /// `what`, plus the key it belongs to when inside a value.
    fn context(&self, what: &str) -> String {
        if self.key.is_empty() {
            what.to_owned()
        } else {
            format!("{what} of `{}`", self.key)
        }
    }
}
