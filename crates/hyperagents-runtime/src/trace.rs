//! Trajectories: every episode is a tree of spans (episode → hyper → task →
//! skill → llm/action/tool calls) with inputs, outputs, errors, tokens, cost
//! and timings.
//!
//! On disk a trajectory is gzip-compressed JSONL, one file per episode: a
//! header line (`"type": "episode"`), one line per span in start order
//! (`"type": "span"`), and a summary line (`"type": "summary"`). The summary
//! is also written beside it as plain JSON (`<file>.summary.json`) so a meta
//! agent can read where an episode failed without decompressing anything.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

/// A span's place in its trajectory.
pub type SpanId = u64;

/// What a span stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpanKind {
    Episode,
    Hyper,
    Task,
    Skill,
    Llm,
    Action,
    Observe,
    Tool,
    Log,
    Memory,
    /// A PNG kept after an action; `output` is the file's path.
    Screenshot,
}

/// One span as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanRecord {
    pub id: SpanId,
    pub parent: Option<SpanId>,
    pub kind: SpanKind,
    pub name: String,
    pub input: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub tokens_in: u64,
    #[serde(default)]
    pub tokens_out: u64,
    /// Of `tokens_in`, those the provider reused from a cached prefix.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tokens_cached: u64,
    #[serde(default)]
    pub cost: f64,
    /// Milliseconds since the episode started.
    pub start_ms: u64,
    pub end_ms: Option<u64>,
}

/// The first line of a trajectory file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpisodeHeader {
    pub domain: String,
    pub task: String,
    pub seed: u64,
    /// Content hash of the program that ran.
    pub program: String,
    pub started_at_unix_ms: u64,
}

/// Where an episode went wrong, for people and meta agents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailurePoint {
    /// Names from the root to the failing span: `hyper/web/click`.
    pub path: String,
    pub kind: SpanKind,
    pub error: String,
}

/// The outcome of an episode, readable without the span tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpisodeSummary {
    pub domain: String,
    pub task: String,
    pub seed: u64,
    pub program: String,
    pub success: bool,
    pub score: f64,
    /// The scorer's reason (never the expected answer).
    pub reason: String,
    /// The first error, if any span failed.
    pub failure: Option<FailurePoint>,
    /// Why the episode stopped early (budget, crash), if it did.
    pub stopped: Option<String>,
    /// Environment actions taken.
    pub steps: u64,
    /// `skill`, `delegate` and `llm` calls made (absent in trajectories
    /// written before steps meant actions).
    #[serde(default)]
    pub calls: u64,
    pub llm_calls: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cost: f64,
    pub duration_ms: u64,
    /// The program files the episode ran through, in order of first use:
    /// every script that ran and every prompt that was rendered. A meta
    /// agent reads it to tell the files behind a failure from files the
    /// episode never touched.
    #[serde(default)]
    pub files_used: Vec<String>,
    /// Where the episode's wall time went (absent in older trajectories).
    #[serde(default)]
    pub timing: EpisodeTiming,
}

/// Where an episode's time went, host-side. What `duration_ms` leaves after
/// these is the framework's: the sandbox (script VM and its IPC), prompt
/// rendering and recording spans.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EpisodeTiming {
    /// Resetting the environment for the task (a web page loads).
    pub reset_ms: f64,
    /// `observe()` calls.
    pub observe_ms: f64,
    /// `act()`, `answer()` and `tool()` calls.
    pub act_ms: f64,
    /// `llm()` calls, as the scripts waited for them.
    pub llm_ms: f64,
    /// Scoring after the agent stopped.
    pub score_ms: f64,
    /// Prompt tokens the model computed, and those it reused from a cached
    /// prefix (providers that report it).
    pub prompt_tokens_computed: u64,
    pub prompt_tokens_reused: u64,
    /// Inside a local model engine, summed over the episode's calls:
    /// waiting for a sequence slot, decode steps over the prompt and over
    /// generated tokens, and waiting for the compute lock that all loaded
    /// models share. Batched decode steps count for each request they
    /// advanced, so with concurrent episodes these overlap.
    pub model_queued_ms: f64,
    pub model_prompt_ms: f64,
    pub model_generate_ms: f64,
    pub model_lock_wait_ms: f64,
}

impl EpisodeTiming {
    /// Adds one model call: its wall time as waited for, its usage and
    /// what the provider reported of its compute.
    pub fn add_llm(
        &mut self,
        waited: std::time::Duration,
        usage: hyperagents_llm::Usage,
        compute: Option<hyperagents_llm::ComputeTiming>,
    ) {
        self.llm_ms += ms(waited);
        let reused = usage.cached_input_tokens.min(usage.input_tokens);
        self.prompt_tokens_reused += reused;
        self.prompt_tokens_computed += usage.input_tokens - reused;
        if let Some(c) = compute {
            self.model_queued_ms += ms(c.queued);
            self.model_prompt_ms += ms(c.prompt);
            self.model_generate_ms += ms(c.generate);
            self.model_lock_wait_ms += ms(c.lock_wait);
        }
    }

    /// Host-side time accounted for: environment, model and scoring.
    pub fn accounted_ms(&self) -> f64 {
        self.reset_ms + self.observe_ms + self.act_ms + self.llm_ms + self.score_ms
    }
}

/// A duration in milliseconds with fractions.
pub fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A whole trajectory, as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Trajectory {
    pub header: EpisodeHeader,
    pub spans: Vec<SpanRecord>,
    pub summary: Option<EpisodeSummary>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line {
    Episode(EpisodeHeader),
    Span(SpanRecord),
    Summary(EpisodeSummary),
}

/// Why a trajectory could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Format {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// Collects the spans of one episode; cheap to clone and share between the
/// host functions of concurrently running scripts.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Mutex<RecorderState>>,
}

struct RecorderState {
    started: Instant,
    spans: Vec<SpanRecord>,
    /// Bytes `log()` and `remember()` have written so far.
    note_bytes: usize,
}

/// What a script's `log()` and `remember()` calls may write into one
/// trajectory (an episode's or a meta step's), all together: a script
/// logging in a loop would otherwise grow the host's memory and the
/// trajectory without bound until its time limit.
pub const MAX_NOTE_BYTES: usize = 1 << 20;

/// A `log()` or `remember()` past [`MAX_NOTE_BYTES`].
#[derive(Debug, thiserror::Error)]
#[error(
    "{call}() refused: this run's log() and remember() calls would pass {limit} bytes \
     ({written} written so far); log less"
)]
pub struct NoteLimit {
    pub call: String,
    pub limit: usize,
    pub written: usize,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Mutex::new(RecorderState {
                started: Instant::now(),
                spans: Vec::new(),
                note_bytes: 0,
            })),
        }
    }

    /// Records a script's note (`log`, `remember`) as an event, within
    /// [`MAX_NOTE_BYTES`] for the whole recording.
    pub fn note(
        &self,
        parent: Option<SpanId>,
        kind: SpanKind,
        call: &str,
        text: String,
    ) -> Result<(), NoteLimit> {
        {
            let mut state = self.lock();
            if state.note_bytes + text.len() > MAX_NOTE_BYTES {
                return Err(NoteLimit {
                    call: call.to_string(),
                    limit: MAX_NOTE_BYTES,
                    written: state.note_bytes,
                });
            }
            state.note_bytes += text.len();
        }
        self.event(parent, kind, call, serde_json::Value::String(text));
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RecorderState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens a span; close it with [`Recorder::finish`].
    pub fn start(
        &self,
        parent: Option<SpanId>,
        kind: SpanKind,
        name: &str,
        input: serde_json::Value,
    ) -> SpanId {
        let mut state = self.lock();
        let id = state.spans.len() as SpanId;
        let start_ms = elapsed_ms(state.started);
        state.spans.push(SpanRecord {
            id,
            parent,
            kind,
            name: name.to_string(),
            input,
            output: None,
            error: None,
            tokens_in: 0,
            tokens_out: 0,
            tokens_cached: 0,
            cost: 0.0,
            start_ms,
            end_ms: None,
        });
        id
    }

    /// Closes a span with its result.
    pub fn finish(&self, id: SpanId, result: Result<serde_json::Value, String>) {
        let mut state = self.lock();
        let end = elapsed_ms(state.started);
        if let Some(span) = state.spans.get_mut(id as usize) {
            match result {
                // `null` and "no output" read back the same; store one form.
                Ok(serde_json::Value::Null) => span.output = None,
                Ok(output) => span.output = Some(output),
                Err(error) => span.error = Some(error),
            }
            span.end_ms = Some(end);
        }
    }

    /// Adds token usage and cost to a span.
    pub fn charge(&self, id: SpanId, usage: hyperagents_llm::Usage, cost: f64) {
        let mut state = self.lock();
        if let Some(span) = state.spans.get_mut(id as usize) {
            span.tokens_in += usage.input_tokens;
            span.tokens_out += usage.output_tokens;
            span.tokens_cached += usage.cached_input_tokens;
            span.cost += cost;
        }
    }

    /// Records an instant event (a log line, a memory note).
    pub fn event(
        &self,
        parent: Option<SpanId>,
        kind: SpanKind,
        name: &str,
        input: serde_json::Value,
    ) {
        let id = self.start(parent, kind, name, input);
        self.finish(id, Ok(serde_json::Value::Null));
    }

    /// Names from the root down to `id`.
    pub fn path(&self, id: SpanId) -> String {
        path_of(&self.lock().spans, id)
    }

    pub fn spans(&self) -> Vec<SpanRecord> {
        self.lock().spans.clone()
    }

    pub fn elapsed_ms(&self) -> u64 {
        elapsed_ms(self.lock().started)
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn path_of(spans: &[SpanRecord], id: SpanId) -> String {
    let mut names = Vec::new();
    let mut cursor = spans.get(id as usize);
    while let Some(span) = cursor {
        if span.kind != SpanKind::Episode {
            names.push(span.name.clone());
        }
        cursor = span.parent.and_then(|p| spans.get(p as usize));
    }
    names.reverse();
    names.join("/")
}

/// The deepest span of the first failing branch: the place to look.
pub fn first_failure(spans: &[SpanRecord]) -> Option<FailurePoint> {
    let failed: Vec<&SpanRecord> = spans.iter().filter(|s| s.error.is_some()).collect();
    // A failing child usually makes its parents fail too; the earliest
    // failure that has no failing child is the cause.
    let root_cause = failed
        .iter()
        .find(|span| !failed.iter().any(|other| other.parent == Some(span.id)))
        .or_else(|| failed.first())?;
    Some(FailurePoint {
        path: path_of(spans, root_cause.id),
        kind: root_cause.kind,
        error: root_cause.error.clone().unwrap_or_default(),
    })
}

/// Writes a trajectory and its summary sidecar; returns the trajectory path.
pub fn write_trajectory(
    path: &Path,
    header: &EpisodeHeader,
    spans: &[SpanRecord],
    summary: &EpisodeSummary,
) -> Result<PathBuf, TraceError> {
    let io = |source| TraceError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        fs_err::create_dir_all(dir).map_err(io)?;
    }
    // Write to a temporary name and rename, so a crash never leaves a
    // half-written trajectory under the final name.
    let partial = path.with_extension("partial");
    {
        let file = fs_err::File::create(&partial).map_err(io)?;
        let mut out = GzEncoder::new(std::io::BufWriter::new(file), Compression::fast());
        let mut write_line = |line: &Line| -> std::io::Result<()> {
            serde_json::to_writer(&mut out, line)?;
            out.write_all(b"\n")
        };
        write_line(&Line::Episode(header.clone())).map_err(io)?;
        for span in spans {
            write_line(&Line::Span(span.clone())).map_err(io)?;
        }
        write_line(&Line::Summary(summary.clone())).map_err(io)?;
        out.finish().and_then(|mut w| w.flush()).map_err(io)?;
    }
    fs_err::rename(&partial, path).map_err(io)?;
    let summary_path = summary_path(path);
    let text = serde_json::to_string_pretty(summary).map_err(|e| io(std::io::Error::other(e)))?;
    fs_err::write(&summary_path, text).map_err(|source| TraceError::Io {
        path: summary_path.clone(),
        source,
    })?;
    Ok(path.to_path_buf())
}

/// `x.jsonl.gz` → `x.jsonl.gz.summary.json`.
pub fn summary_path(trajectory: &Path) -> PathBuf {
    let mut name = trajectory.as_os_str().to_owned();
    name.push(".summary.json");
    PathBuf::from(name)
}

/// The longest line [`read_trajectory`] reads, newline included: far above
/// any span written (observations are capped in tokens, screenshots are
/// separate files).
pub const MAX_LINE_BYTES: u64 = 64 << 20;

/// Reads a trajectory file back. Errors name the file, and the line for
/// anything wrong inside it.
pub fn read_trajectory(path: &Path) -> Result<Trajectory, TraceError> {
    let file = fs_err::File::open(path).map_err(|source| TraceError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut reader = BufReader::new(GzDecoder::new(file));
    let mut header = None;
    let mut spans = Vec::new();
    let mut summary = None;
    let mut bytes = Vec::new();
    for index in 0.. {
        let format = |message: String| TraceError::Format {
            path: path.to_path_buf(),
            line: index + 1,
            message,
        };
        bytes.clear();
        // At most one byte past the limit, so a line without end (a corrupt
        // or hostile stream) is refused rather than read whole.
        let read = (&mut reader)
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut bytes)
            .map_err(|e| format(format!("not a gzip JSONL trajectory: {e}")))?;
        if read == 0 {
            break;
        }
        if bytes.len() as u64 > MAX_LINE_BYTES {
            return Err(format(format!(
                "line longer than {} MiB",
                MAX_LINE_BYTES >> 20
            )));
        }
        let line =
            std::str::from_utf8(&bytes).map_err(|e| format(format!("not UTF-8 text: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Line>(line).map_err(|e| format(e.to_string()))? {
            Line::Episode(h) => header = Some(h),
            Line::Span(s) => spans.push(s),
            Line::Summary(s) => summary = Some(s),
        }
    }
    let header = header.ok_or_else(|| TraceError::Format {
        path: path.to_path_buf(),
        line: 1,
        message: "no episode header line".into(),
    })?;
    Ok(Trajectory {
        header,
        spans,
        summary,
    })
}

/// The trajectory as an indented tree, one span per line.
pub fn render_tree(trajectory: &Trajectory, max_text: usize) -> String {
    let mut out = String::new();
    let h = &trajectory.header;
    out.push_str(&format!(
        "episode {} / task {} / seed {} / program {}\n",
        h.domain,
        h.task,
        h.seed,
        short(&h.program, 12)
    ));
    let spans = &trajectory.spans;
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    let mut roots = Vec::new();
    for (i, span) in spans.iter().enumerate() {
        match span
            .parent
            .and_then(|p| usize::try_from(p).ok())
            .filter(|&p| p < spans.len())
        {
            Some(p) => children[p].push(i),
            None => roots.push(i),
        }
    }
    let mut stack: Vec<(usize, usize)> = roots.into_iter().rev().map(|i| (i, 0)).collect();
    while let Some((i, depth)) = stack.pop() {
        let span = &spans[i];
        let took = span
            .end_ms
            .map(|e| format!("{}ms", e.saturating_sub(span.start_ms)))
            .unwrap_or_else(|| "unfinished".into());
        let tokens = if span.tokens_cached > 0 {
            format!(
                " [{}+{} tok, {} reused]",
                span.tokens_in, span.tokens_out, span.tokens_cached
            )
        } else if span.tokens_in + span.tokens_out > 0 {
            format!(" [{}+{} tok]", span.tokens_in, span.tokens_out)
        } else {
            String::new()
        };
        let result = match (&span.error, &span.output) {
            (Some(e), _) => format!(" ✗ {}", short(e, max_text)),
            (None, Some(serde_json::Value::Null)) | (None, None) => String::new(),
            (None, Some(o)) => format!(" → {}", short(&compact(o), max_text)),
        };
        out.push_str(&format!(
            "{}{:?} {} {}{} ({took}){result}\n",
            "  ".repeat(depth + 1),
            span.kind,
            span.name,
            short(&compact(&span.input), max_text),
            tokens,
        ));
        for &child in children[i].iter().rev() {
            stack.push((child, depth + 1));
        }
    }
    if let Some(s) = &trajectory.summary {
        out.push_str(&format!(
            "outcome: {} (score {:.2}: {}); {} steps (actions), {} calls, {} llm calls, {}+{} tokens, ${:.4}, {}ms\n",
            if s.success { "success" } else { "failure" },
            s.score,
            s.reason,
            s.steps,
            s.calls,
            s.llm_calls,
            s.tokens_in,
            s.tokens_out,
            s.cost,
            s.duration_ms
        ));
        if let Some(f) = &s.failure {
            out.push_str(&format!(
                "first failure at {} ({:?}): {}\n",
                f.path,
                f.kind,
                short(&f.error, max_text * 2)
            ));
        }
        if let Some(stopped) = &s.stopped {
            out.push_str(&format!("stopped early: {stopped}\n"));
        }
    }
    out
}

fn compact(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// At most `max` characters, on one line.
fn short(text: &str, max: usize) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c == '\n' { '⏎' } else { c })
        .collect();
    if one_line.chars().count() <= max {
        one_line
    } else {
        let cut: String = one_line.chars().take(max).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Recorder, EpisodeHeader) {
        let rec = Recorder::new();
        let root = rec.start(
            None,
            SpanKind::Episode,
            "episode",
            serde_json::json!({"task": "t1"}),
        );
        let hyper = rec.start(
            Some(root),
            SpanKind::Hyper,
            "hyper",
            serde_json::json!("goal"),
        );
        let task = rec.start(
            Some(hyper),
            SpanKind::Task,
            "web",
            serde_json::json!({"goal": "g"}),
        );
        let llm = rec.start(
            Some(task),
            SpanKind::Llm,
            "llm",
            serde_json::json!("prompt"),
        );
        rec.charge(
            llm,
            hyperagents_llm::Usage {
                input_tokens: 10,
                output_tokens: 5,
                cached_input_tokens: 4,
            },
            0.001,
        );
        rec.finish(llm, Ok(serde_json::json!("click 3")));
        let skill = rec.start(
            Some(task),
            SpanKind::Skill,
            "click",
            serde_json::json!({"ref": 3}),
        );
        rec.finish(skill, Err("no element with ref 3".into()));
        rec.finish(task, Err("skill click failed".into()));
        rec.finish(hyper, Err("task web failed".into()));
        rec.finish(root, Ok(serde_json::Value::Null));
        let header = EpisodeHeader {
            domain: "jsonl:s".into(),
            task: "t1".into(),
            seed: 3,
            program: "abc123".into(),
            started_at_unix_ms: 0,
        };
        (rec, header)
    }

    #[test]
    fn the_first_failure_is_the_deepest_cause() {
        let (rec, _) = sample();
        let failure = first_failure(&rec.spans()).unwrap();
        assert_eq!(failure.path, "hyper/web/click");
        assert_eq!(failure.kind, SpanKind::Skill);
        assert_eq!(failure.error, "no element with ref 3");
    }

    #[test]
    fn round_trips_through_gzip_jsonl_and_renders() {
        let (rec, header) = sample();
        let spans = rec.spans();
        let summary = EpisodeSummary {
            domain: header.domain.clone(),
            task: "t1".into(),
            seed: 3,
            program: "abc123".into(),
            success: false,
            score: 0.0,
            reason: "no answer".into(),
            failure: first_failure(&spans),
            stopped: None,
            steps: 1,
            calls: 2,
            llm_calls: 1,
            tokens_in: 10,
            tokens_out: 5,
            cost: 0.001,
            duration_ms: 12,
            files_used: vec!["hyper/main.py".into(), "skills/click/prompt.md".into()],
            timing: EpisodeTiming {
                reset_ms: 1.5,
                llm_ms: 7.25,
                prompt_tokens_computed: 8,
                prompt_tokens_reused: 2,
                ..EpisodeTiming::default()
            },
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t1/3.jsonl.gz");
        write_trajectory(&path, &header, &spans, &summary).unwrap();
        let back = read_trajectory(&path).unwrap();
        assert_eq!(back.header, header);
        assert_eq!(back.spans, spans);
        assert_eq!(back.summary.as_ref(), Some(&summary));
        let sidecar: EpisodeSummary =
            serde_json::from_str(&std::fs::read_to_string(summary_path(&path)).unwrap()).unwrap();
        assert_eq!(sidecar, summary);
        let tree = render_tree(&back, 60);
        assert!(tree.contains("    Task web"), "{tree}");
        assert!(
            tree.contains("      Skill click") && tree.contains("✗ no element with ref 3"),
            "{tree}"
        );
        assert!(tree.contains("first failure at hyper/web/click"), "{tree}");
        assert!(!dir.path().join("t1/3.partial").exists());
    }

    #[test]
    fn unreadable_files_name_path_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.jsonl.gz");
        std::fs::write(&path, b"not gzip").unwrap();
        let err = read_trajectory(&path).unwrap_err().to_string();
        assert!(err.contains("bad.jsonl.gz:1"), "{err}");
    }
}
