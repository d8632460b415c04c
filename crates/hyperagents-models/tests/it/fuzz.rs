//! Generated GGUF headers (issue 14): arbitrary bytes, and valid headers truncated, bit-flipped
//! and given huge lengths, counts and type codes. Reading never panics or hangs, allocates in
//! proportion to the bytes really there whatever a length declares, and every error names the
//! file.
//!
//! A few hundred cases per property by default; `scripts/fuzz.sh` (or `PROPTEST_CASES=N`) runs
//! many more.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;

use hyperagents_models::gguf::MAX_KEPT_ARRAY_LEN;
use hyperagents_models::{GgufError, GgufHeader};
use hyperagents_testkit::fuzz::check;
use proptest::prelude::*;

use crate::support::{Gguf, V};

const PATH: &str = "fuzz/model.gguf";

// ---------------------------------------------------------------------------
// Allocation accounting: the bytes the current thread has live, and its peak. Per thread, so
// the other tests of this binary (running beside these under `cargo test`) do not count.

struct CountingAlloc;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    // `try_with`: a thread being torn down has no counters left, and must still allocate.
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is forwarded to `System` unchanged; the counters only observe sizes.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed through.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            track(layout.size() as isize);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed through.
        unsafe { System.dealloc(ptr, layout) };
        track(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract is passed through.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            track(new_size as isize - layout.size() as isize);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

/// Reads `bytes` as a header, with the most memory the read had live at once beyond what was
/// live before it.
fn read_measured(bytes: &[u8]) -> (Result<GgufHeader, GgufError>, usize) {
    let before = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(before));
    let result = GgufHeader::read_from(bytes, Path::new(PATH));
    let peak = PEAK.with(Cell::get);
    (result, (peak - before).max(0) as usize)
}

/// Reading is bounded in memory by the input's size and fails naming the file.
fn check_header(bytes: &[u8]) -> Result<Option<GgufHeader>, TestCaseError> {
    let (result, peak) = read_measured(bytes);
    // A kept value costs a few dozen bytes per encoded byte at worst (a 1-byte bool becomes
    // an enum in a Vec that grows by doubling); a length believed would cost megabytes.
    let bound = 64 * 1024 + 256 * bytes.len();
    prop_assert!(
        peak <= bound,
        "reading {} bytes allocated {peak} bytes at once",
        bytes.len()
    );
    match result {
        Ok(header) => {
            prop_assert!(header.metadata_end <= bytes.len() as u64);
            Ok(Some(header))
        }
        Err(error) => {
            let shown = error.to_string();
            prop_assert!(shown.starts_with(&format!("{PATH}: ")), "{shown}");
            Ok(None)
        }
    }
}

// ---------------------------------------------------------------------------
// Generators

fn scalar() -> impl Strategy<Value = V> {
    prop_oneof![
        any::<u8>().prop_map(V::U8),
        any::<i8>().prop_map(V::I8),
        any::<u16>().prop_map(V::U16),
        any::<i16>().prop_map(V::I16),
        any::<u32>().prop_map(V::U32),
        any::<i32>().prop_map(V::I32),
        any::<f32>().prop_map(V::F32),
        any::<bool>().prop_map(V::Bool),
        "\\PC{0,12}".prop_map(V::Str),
        any::<u64>().prop_map(V::U64),
        any::<i64>().prop_map(V::I64),
        any::<f64>().prop_map(V::F64),
    ]
}

/// An array of `len` copies of `first`, with `first`'s type code as its element type.
fn array_of(first: V, len: usize) -> V {
    let items = vec![first; len];
    let code = match &items[0] {
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
    };
    V::Arr(code, items)
}

/// Scalars, short arrays (kept), arrays longer than [`MAX_KEPT_ARRAY_LEN`] (skipped), and
/// arrays of arrays.
fn value() -> impl Strategy<Value = V> {
    let long = MAX_KEPT_ARRAY_LEN as usize;
    scalar().prop_recursive(3, 64, 8, move |inner| {
        prop_oneof![
            (inner.clone(), 1usize..8).prop_map(|(v, n)| array_of(v, n)),
            (scalar(), long + 1..long + 40).prop_map(|(v, n)| array_of(v, n)),
            Just(V::Arr(4, Vec::new())),
        ]
    })
}

fn header() -> impl Strategy<Value = Gguf> {
    (
        2u32..=3,
        any::<u64>(),
        prop::collection::vec(("[a-z._]{0,16}", value()), 0..6),
    )
        .prop_map(|(version, tensor_count, kvs)| {
            let mut gguf = Gguf::new();
            gguf.version = version;
            gguf.tensor_count = tensor_count;
            gguf.kvs = kvs;
            gguf
        })
}

/// Lengths, counts and type codes a corrupt file may declare.
fn huge() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(u64::MAX),
        Just(1 << 63),
        Just(1 << 40),
        Just(u64::from(u32::MAX) + 1),
        Just((64 << 20) + 1),
        Just(64 << 20),
        Just(MAX_KEPT_ARRAY_LEN + 1),
        any::<u64>(),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Cut the file at this fraction of its length.
    Truncate(f64),
    /// XOR one byte.
    Flip(usize, u8),
    /// Overwrite 8 bytes with a little-endian `u64` (a length or count).
    Length(usize, u64),
    /// Overwrite 4 bytes with a little-endian `u32` (a type code or version).
    Code(usize, u32),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (0.0..1.0f64).prop_map(Mutation::Truncate),
        (any::<usize>(), 1..=255u8).prop_map(|(at, mask)| Mutation::Flip(at, mask)),
        (any::<usize>(), huge()).prop_map(|(at, n)| Mutation::Length(at, n)),
        (any::<usize>(), prop_oneof![0u32..16, Just(u32::MAX)])
            .prop_map(|(at, code)| Mutation::Code(at, code)),
    ]
}

fn apply(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len();
        match *m {
            Mutation::Truncate(fraction) => bytes.truncate((len as f64 * fraction) as usize),
            Mutation::Flip(at, mask) if len > 0 => bytes[at % len] ^= mask,
            Mutation::Length(at, n) if len >= 8 => {
                let at = at % (len - 7);
                bytes[at..at + 8].copy_from_slice(&n.to_le_bytes());
            }
            Mutation::Code(at, code) if len >= 4 => {
                let at = at % (len - 3);
                bytes[at..at + 4].copy_from_slice(&code.to_le_bytes());
            }
            _ => {}
        }
    }
    bytes
}

// ---------------------------------------------------------------------------
// Properties

#[test]
fn valid_headers_read_back_whole() {
    check(128, header(), |gguf| {
        let bytes = gguf.header_bytes();
        let header = check_header(&bytes)?;
        let Some(header) = header else {
            return Err(TestCaseError::fail("a valid header was refused"));
        };
        prop_assert_eq!(header.metadata_end, bytes.len() as u64);
        prop_assert_eq!(header.kv_count, gguf.kvs.len() as u64);
        Ok(())
    });
}

#[test]
fn corrupted_headers_fail_naming_the_file() {
    let input = (header(), prop::collection::vec(mutation(), 1..4));
    check(512, input, |(gguf, mutations)| {
        check_header(&apply(gguf.header_bytes(), &mutations)).map(drop)
    });
}

#[test]
fn arbitrary_bytes_fail_naming_the_file() {
    // Half of them start like a GGUF file, so the reader gets past the magic and version.
    let input = (
        any::<bool>(),
        2u32..=3,
        prop::collection::vec(any::<u8>(), 0..512),
    );
    check(256, input, |(magic, version, tail)| {
        let mut bytes = Vec::new();
        if magic {
            bytes.extend(b"GGUF");
            bytes.extend(version.to_le_bytes());
        }
        bytes.extend(tail);
        check_header(&bytes).map(drop)
    });
}

/// Every length and count declared huge over a tiny file, one field at a time: the read stops
/// at the end of the data, and allocates nothing near the declared size.
#[test]
fn declared_lengths_are_never_trusted() {
    let input = (
        prop::sample::select(vec![
            // The metadata count.
            16usize,
            // The first key's length.
            24,
            // The first value's string length.
            24 + 8 + 1 + 4,
            // The array's element count: after key "c", its value type and element type.
            37 + 8 + 1 + 8 + 1 + 4 + 4,
        ]),
        huge(),
    );
    check(64, input, |(offset, declared)| {
        let gguf = Gguf::new()
            .kv("a", V::str("b"))
            .kv("c", V::Arr(8, vec![V::str("d")]));
        let bytes = apply(gguf.header_bytes(), &[Mutation::Length(offset, declared)]);
        check_header(&bytes).map(drop)
    });
}
