//! The parent ↔ worker protocol over the worker's stdin/stdout.
//!
//! A frame is `[u32 LE header length][u32 LE blob length][header: JSON][blob: bytes]`. The header
//! is a [`Request`] (parent → worker) or a [`Reply`] (worker → parent); the blob is the run's monty
//! snapshot (`monty::dump` of the paused run, postcard inside) on `Resume` requests and `Call`
//! replies, and empty otherwise. One request, then exactly one reply.
//!
//! Workers are stateless: `Start` carries the source, `Resume` carries the snapshot and the host
//! function's answer, and every reply names the request's `run_id`. Worker output is untrusted:
//! the parent bounds both lengths before reading ([`FrameLimits`]), parses the header strictly and
//! checks the `run_id` and the blob's presence.

use std::io::{self, Read, Write};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Map;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::ScriptValue;

/// Limits applied to one slice of a run (from a start or resume to the next host call).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SliceLimits {
    /// VM time this slice may use.
    pub vm_time: Duration,
    /// Python call-stack limit (applied at `Start`; snapshots keep it).
    pub max_recursion_depth: usize,
}

/// Parent → worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum Request {
    /// Compile and start a script; the blob is empty.
    Start {
        /// Identifies the run; echoed in the reply.
        run_id: u64,
        /// Script path for tracebacks.
        file: String,
        /// Python source.
        code: String,
        /// Global variables set before the first line runs.
        inputs: Map<String, ScriptValue>,
        /// Host functions the script may call (others are `NameError`).
        functions: Vec<String>,
        /// This slice's limits.
        limits: SliceLimits,
    },
    /// Resume a run paused at a host call; the blob is the snapshot from the `Call` reply.
    Resume {
        /// Identifies the run; echoed in the reply.
        run_id: u64,
        /// Host functions the script may call.
        functions: Vec<String>,
        /// This slice's limits.
        limits: SliceLimits,
        /// The host function's answer.
        result: ResumeValue,
    },
}

/// A host function's answer, sent with `Resume`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum ResumeValue {
    /// The call returned this value.
    Return {
        /// The value.
        value: ScriptValue,
    },
    /// The call raised a catchable exception.
    Raise {
        /// Python exception type name.
        exception: String,
        /// Message.
        message: String,
    },
    /// End the run (uncatchable).
    Abort {
        /// Why.
        message: String,
    },
}

/// Where a worker's time on one slice went, as the worker measured it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SliceTiming {
    /// Parsing and compiling the source (`Start`; zero when the worker had it compiled already).
    pub compile: Duration,
    /// Restoring the paused run from its snapshot (`Resume`).
    pub load: Duration,
    /// Running the script: from the start or resumption to the host call, the end or the failure.
    pub run: Duration,
    /// Dumping the paused run into the snapshot sent back (`Call`).
    pub dump: Duration,
    /// The whole request in the worker, from its frame read to its reply ready to encode: the
    /// parts above, decoding the request, converting values and freeing the run's memory.
    pub handled: Duration,
}

/// Worker → parent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum Reply {
    /// The script called a host function; the blob is the snapshot to resume from.
    Call {
        /// The request's run.
        run_id: u64,
        /// Function name (one of the request's `functions`).
        function: String,
        /// Positional arguments.
        args: Vec<ScriptValue>,
        /// Keyword arguments.
        kwargs: Map<String, ScriptValue>,
        /// VM time this slice used.
        vm_time: Duration,
        /// What the script printed in this slice.
        print: String,
        /// Where the worker's time went.
        timing: SliceTiming,
    },
    /// The script finished; `value` is its last expression's value.
    Done {
        /// The request's run.
        run_id: u64,
        /// Result.
        value: ScriptValue,
        /// What the script printed in this slice.
        print: String,
        /// Where the worker's time went.
        timing: SliceTiming,
    },
    /// The script failed.
    Failed {
        /// The request's run.
        run_id: u64,
        /// What went wrong.
        error: Failure,
        /// What the script printed in this slice.
        print: String,
        /// Where the worker's time went.
        timing: SliceTiming,
    },
}

impl Reply {
    /// Where the worker's time on this slice went, to fill in.
    pub fn timing_mut(&mut self) -> &mut SliceTiming {
        match self {
            Self::Call { timing, .. } | Self::Done { timing, .. } | Self::Failed { timing, .. } => {
                timing
            }
        }
    }

    /// Where the worker's time on this slice went.
    pub fn timing(&self) -> SliceTiming {
        match self {
            Self::Call { timing, .. } | Self::Done { timing, .. } | Self::Failed { timing, .. } => {
                *timing
            }
        }
    }

    /// The run this reply belongs to.
    pub fn run_id(&self) -> u64 {
        match self {
            Self::Call { run_id, .. } | Self::Done { run_id, .. } | Self::Failed { run_id, .. } => {
                *run_id
            }
        }
    }
}

/// Classification of a failed slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailureKind {
    /// Compile error or unsupported syntax.
    Syntax,
    /// Uncaught exception.
    Exception,
    /// The interpreter's time limit.
    TimeLimit,
    /// The interpreter's memory limit.
    MemoryLimit,
    /// Uncaught `RecursionError`.
    RecursionLimit,
    /// The worker could not process the request (bad snapshot, serialization failure).
    Internal,
}

/// A failed slice, as the worker reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failure {
    /// Classification.
    pub kind: FailureKind,
    /// Python exception type name (empty for `Internal`).
    pub exception: String,
    /// Message.
    pub message: String,
    /// Innermost frame's line.
    pub line: Option<u32>,
    /// Innermost frame's column.
    pub column: Option<u32>,
    /// CPython-style traceback text.
    pub traceback: String,
}

/// Size bounds for reading frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// Largest header accepted.
    pub max_header: u32,
    /// Largest blob accepted.
    pub max_blob: u32,
}

impl FrameLimits {
    /// Bounds for frames from a worker whose allocator stops at `4 × max_memory`: nothing it
    /// produces can be larger than that, plus slack.
    pub fn for_memory(max_memory: u64) -> Self {
        let bound = max_memory
            .saturating_mul(4)
            .saturating_add(16 << 20)
            .min(u64::from(u32::MAX));
        let bound = u32::try_from(bound).unwrap_or(u32::MAX);
        Self {
            max_header: bound,
            max_blob: bound,
        }
    }
}

/// A frame that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The stream failed or ended inside a frame.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// A length prefix exceeded its bound.
    #[error("frame too large: {what} of {len} bytes (limit {limit})")]
    TooLarge {
        /// Which part.
        what: &'static str,
        /// Announced length.
        len: u32,
        /// Limit.
        limit: u32,
    },
}

fn check_lengths(prefix: [u8; 8], limits: FrameLimits) -> Result<(usize, usize), FrameError> {
    let header_len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    let blob_len = u32::from_le_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]);
    if header_len > limits.max_header {
        return Err(FrameError::TooLarge {
            what: "header",
            len: header_len,
            limit: limits.max_header,
        });
    }
    if blob_len > limits.max_blob {
        return Err(FrameError::TooLarge {
            what: "blob",
            len: blob_len,
            limit: limits.max_blob,
        });
    }
    Ok((header_len as usize, blob_len as usize))
}

fn prefix(header: &[u8], blob: &[u8]) -> io::Result<[u8; 8]> {
    let too_big = |_| io::Error::new(io::ErrorKind::InvalidInput, "frame part over 4 GiB");
    let h = u32::try_from(header.len()).map_err(too_big)?;
    let b = u32::try_from(blob.len()).map_err(too_big)?;
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&h.to_le_bytes());
    out[4..].copy_from_slice(&b.to_le_bytes());
    Ok(out)
}

/// A frame's two parts: the JSON header and the (possibly empty) snapshot blob.
pub type Frame = (Vec<u8>, Vec<u8>);

/// Writes one frame (blocking).
pub fn write_frame(w: &mut impl Write, header: &[u8], blob: &[u8]) -> io::Result<()> {
    w.write_all(&prefix(header, blob)?)?;
    w.write_all(header)?;
    w.write_all(blob)?;
    w.flush()
}

/// Reads one frame (blocking); `Ok(None)` on a clean end of stream before a frame.
pub fn read_frame(r: &mut impl Read, limits: FrameLimits) -> Result<Option<Frame>, FrameError> {
    let mut pre = [0u8; 8];
    let mut got = 0;
    while got < pre.len() {
        let n = r.read(&mut pre[got..])?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(FrameError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        got += n;
    }
    let (header_len, blob_len) = check_lengths(pre, limits)?;
    let mut header = vec![0u8; header_len];
    r.read_exact(&mut header)?;
    let mut blob = vec![0u8; blob_len];
    r.read_exact(&mut blob)?;
    Ok(Some((header, blob)))
}

/// Writes one frame (async).
pub async fn write_frame_async(
    w: &mut (impl AsyncWrite + Unpin),
    header: &[u8],
    blob: &[u8],
) -> io::Result<()> {
    w.write_all(&prefix(header, blob)?).await?;
    w.write_all(header).await?;
    w.write_all(blob).await?;
    w.flush().await
}

/// Reads one frame (async); an end of stream anywhere is an error.
pub async fn read_frame_async(
    r: &mut (impl AsyncRead + Unpin),
    limits: FrameLimits,
) -> Result<Frame, FrameError> {
    let mut pre = [0u8; 8];
    r.read_exact(&mut pre).await?;
    let (header_len, blob_len) = check_lengths(pre, limits)?;
    let mut header = vec![0u8; header_len];
    r.read_exact(&mut header).await?;
    let mut blob = vec![0u8; blob_len];
    r.read_exact(&mut blob).await?;
    Ok((header, blob))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const LIMITS: FrameLimits = FrameLimits {
        max_header: 64,
        max_blob: 64,
    };

    #[test]
    fn frames_round_trip_and_are_bounded() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"{\"a\":1}", b"\x00\x01").unwrap();
        write_frame(&mut buf, b"{}", b"").unwrap();
        let mut r = buf.as_slice();
        let (h, b) = read_frame(&mut r, LIMITS).unwrap().unwrap();
        assert_eq!(
            (h.as_slice(), b.as_slice()),
            (&b"{\"a\":1}"[..], &b"\x00\x01"[..])
        );
        let (h, b) = read_frame(&mut r, LIMITS).unwrap().unwrap();
        assert_eq!((h.as_slice(), b.len()), (&b"{}"[..], 0));
        assert!(read_frame(&mut r, LIMITS).unwrap().is_none());

        let mut big = Vec::new();
        write_frame(&mut big, &[b' '; 65], b"").unwrap();
        assert!(matches!(
            read_frame(&mut big.as_slice(), LIMITS),
            Err(FrameError::TooLarge { what: "header", .. })
        ));
        // A truncated frame is an error, not a clean end.
        assert!(read_frame(&mut &buf[..5], LIMITS).is_err());
    }

    #[test]
    fn messages_serialize_strictly() {
        let req = Request::Resume {
            run_id: 7,
            functions: vec!["llm".into()],
            limits: SliceLimits {
                vm_time: Duration::from_millis(5),
                max_recursion_depth: 10,
            },
            result: ResumeValue::Raise {
                exception: "ValueError".into(),
                message: "no".into(),
            },
        };
        let text = serde_json::to_string(&req).unwrap();
        assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), req);
        let timing = r#"{"compile":{"secs":0,"nanos":5},"load":{"secs":0,"nanos":0},"run":{"secs":0,"nanos":0},"dump":{"secs":0,"nanos":0},"handled":{"secs":0,"nanos":9}}"#;
        let good =
            format!(r#"{{"type":"Done","run_id":1,"value":null,"print":"","timing":{timing}}}"#);
        let reply = serde_json::from_str::<Reply>(&good).unwrap();
        assert_eq!(reply.timing().compile, Duration::from_nanos(5));
        let bad = format!(
            r#"{{"type":"Done","run_id":1,"value":null,"print":"","timing":{timing},"extra":1}}"#
        );
        assert!(serde_json::from_str::<Reply>(&bad).is_err());
    }
}
