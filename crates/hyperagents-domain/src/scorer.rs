//! Answer scorers for question-answering tasks: exact, contains (with the
//! answer's length capped, so dumping every candidate cannot win), regex,
//! numeric tolerance — rules decided on the spot — and two that take
//! longer: a model `judge` ([`crate::judge::Judge`]) and an external
//! `command`.
//!
//! # The `command` scorer
//!
//! `{"type": "command", "command": ["python3", "check.py", "--strict"],
//! "timeout_secs": 10}` runs the program (no shell) with:
//!
//! - the answer on standard input (UTF-8, no trailing newline added);
//! - the expected answer in the environment variable `HYPERAGENTS_EXPECTED`,
//!   the task id in `HYPERAGENTS_TASK_ID` and the question in
//!   `HYPERAGENTS_QUESTION`; of the scorer's own environment only `PATH`,
//!   `HOME`, `TMPDIR`, `LANG`, `LC_ALL`, `LC_CTYPE` and `TZ` are passed on,
//!   so API keys never reach scoring programs;
//! - the suite file's directory as working directory; a program path with a
//!   `/` in it (`./check.sh`) is taken relative to that directory, a bare
//!   name is looked up in `PATH`.
//!
//! Exit status 0 means success and 1 failure; any other status, death by a
//! signal, or running past `timeout_secs` (the program and everything it
//! started are killed) is a scoring error, not a failed answer — the
//! convention of `diff` and `grep`, so a missing interpreter (127) is never
//! mistaken for a wrong answer. If the first line of standard output is a
//! number, it is the score (it must lie in [0, 1]); otherwise the score is 1
//! or 0.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::judge::{Judge, redact_reference};
use crate::{DomainError, Score};

/// How a task's answer is judged, as written in a suite file: either a bare
/// name (`"exact"`) or an object with options (`{"type": "numeric",
/// "tolerance": 0.01}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ScorerSpec {
    Name(String),
    Detailed(Scorer),
}

/// A scorer with its options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Scorer {
    /// Equal after trimming, collapsing whitespace and ignoring case.
    Exact,
    /// The answer contains the expected text (case-insensitive) and is at
    /// most `max_len` characters long.
    Contains {
        #[serde(default = "default_max_len")]
        max_len: usize,
    },
    /// The whole (trimmed) answer matches the expected regular expression.
    Regex,
    /// The last number in the answer (answers tend to end with the result:
    /// "2 + 2 = 4") is within `tolerance` of the expected number — absolute,
    /// or relative to it when `relative` is set.
    Numeric {
        #[serde(default)]
        tolerance: f64,
        #[serde(default)]
        relative: bool,
    },
    /// A model decides whether the answer means the same as the expected
    /// one; the judge is supplied by whoever runs the suite
    /// ([`crate::JsonlSuite::with_judge`]).
    Judge,
    /// An external program decides (see the module documentation).
    Command {
        command: Vec<String>,
        #[serde(default = "default_timeout_secs")]
        timeout_secs: u64,
    },
}

/// What scorers beyond string rules need to know.
#[derive(Clone, Copy, Default)]
pub struct ScoringContext<'a> {
    pub task_id: &'a str,
    /// The question as given to the agent (the judge reads it).
    pub question: &'a str,
    /// The judge for [`Scorer::Judge`]; scoring fails clearly without one.
    pub judge: Option<&'a dyn Judge>,
    /// Where [`Scorer::Command`] programs run; the current directory if
    /// `None`.
    pub working_dir: Option<&'a Path>,
}

impl std::fmt::Debug for ScoringContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScoringContext")
            .field("task_id", &self.task_id)
            .field("judge", &self.judge.is_some())
            .field("working_dir", &self.working_dir)
            .finish_non_exhaustive()
    }
}

/// The longest a scoring command may be given.
pub const MAX_COMMAND_TIMEOUT_SECS: u64 = 3600;

/// The environment variables a scoring command inherits.
pub const COMMAND_ENV_PASSED: [&str; 7] =
    ["PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "LC_CTYPE", "TZ"];

fn default_max_len() -> usize {
    200
}

fn default_timeout_secs() -> u64 {
    10
}

impl ScorerSpec {
    /// Resolves a bare name to a scorer with default options.
    pub fn resolve(&self) -> Result<Scorer, String> {
        match self {
            ScorerSpec::Detailed(s) => Ok(s.clone()),
            ScorerSpec::Name(name) => match name.as_str() {
                "exact" => Ok(Scorer::Exact),
                "contains" => Ok(Scorer::Contains {
                    max_len: default_max_len(),
                }),
                "regex" => Ok(Scorer::Regex),
                "numeric" => Ok(Scorer::Numeric {
                    tolerance: 0.0,
                    relative: false,
                }),
                "judge" => Ok(Scorer::Judge),
                "command" => Err(
                    "the `command` scorer needs options: {\"type\": \"command\", \"command\": [\"prog\", \"arg\"]}"
                        .into(),
                ),
                other => Err(format!(
                    "unknown scorer `{other}` (expected exact, contains, regex, numeric, judge or command)"
                )),
            },
        }
    }
}

impl Scorer {
    /// Checks options that can be checked before any answer exists
    /// (a regex compiles, a tolerance is not negative).
    pub fn validate(&self, expected: &str) -> Result<(), String> {
        match self {
            Scorer::Regex => regex::Regex::new(&anchored(expected))
                .map(|_| ())
                .map_err(|e| format!("expected is not a valid regex: {e}")),
            Scorer::Numeric { tolerance, .. } => {
                if *tolerance < 0.0 || !tolerance.is_finite() {
                    return Err(format!(
                        "tolerance must be a finite number ≥ 0, got {tolerance}"
                    ));
                }
                last_number(expected)
                    .map(|_| ())
                    .ok_or_else(|| format!("expected `{expected}` holds no number"))
            }
            Scorer::Command {
                command,
                timeout_secs,
            } => {
                match command.first() {
                    None => return Err("`command` must name a program".into()),
                    Some(program) if program.is_empty() => {
                        return Err("`command`'s program name is empty".into());
                    }
                    Some(_) => {}
                }
                if !(1..=MAX_COMMAND_TIMEOUT_SECS).contains(timeout_secs) {
                    return Err(format!(
                        "`timeout_secs` must be between 1 and {MAX_COMMAND_TIMEOUT_SECS}, got {timeout_secs}"
                    ));
                }
                Ok(())
            }
            Scorer::Exact | Scorer::Contains { .. } | Scorer::Judge => Ok(()),
        }
    }

    /// Whether scoring needs a [`Judge`].
    pub fn needs_judge(&self) -> bool {
        matches!(self, Scorer::Judge)
    }

    /// Judges `answer` against `expected` with any scorer: rules on the
    /// spot, the judge or the command as `context` provides. A wrong answer
    /// is an `Ok` score; an error means no verdict could be reached.
    pub async fn score(
        &self,
        answer: &str,
        expected: &str,
        context: &ScoringContext<'_>,
    ) -> Result<Score, DomainError> {
        match self {
            Scorer::Judge => {
                let judge = context.judge.ok_or_else(|| {
                    DomainError::Scoring(format!(
                        "task `{}` uses the `judge` scorer, but no judge was supplied \
                         (configure a judge model for the suite)",
                        context.task_id
                    ))
                })?;
                let verdict = judge.judge(context.question, expected, answer).await?;
                Ok(Score {
                    value: if verdict.correct { 1.0 } else { 0.0 },
                    success: verdict.correct,
                    reason: format!(
                        "the judge found the answer {}: {}",
                        if verdict.correct {
                            "correct"
                        } else {
                            "incorrect"
                        },
                        redact_reference(&verdict.reason, expected)
                    ),
                })
            }
            Scorer::Command {
                command,
                timeout_secs,
            } => {
                run_command(
                    command,
                    Duration::from_secs(*timeout_secs),
                    answer,
                    expected,
                    context,
                )
                .await
            }
            Scorer::Exact | Scorer::Contains { .. } | Scorer::Regex | Scorer::Numeric { .. } => {
                self.score_by_rule(answer, expected)
                    .ok_or_else(|| DomainError::Scoring(format!("scorer {self:?} decided nothing")))
            }
        }
    }

    /// Judges `answer` against `expected` by string rules; `None` for the
    /// scorers that need a judge or a program ([`Scorer::score`] runs those).
    pub fn score_by_rule(&self, answer: &str, expected: &str) -> Option<Score> {
        let (success, reason) = match self {
            Scorer::Judge | Scorer::Command { .. } => return None,
            Scorer::Exact => {
                let ok = normalize(answer) == normalize(expected);
                (
                    ok,
                    if ok {
                        "exact match".into()
                    } else {
                        "answer differs from the expected text".into()
                    },
                )
            }
            Scorer::Contains { max_len } => {
                let length = answer.chars().count();
                if length > *max_len {
                    (
                        false,
                        format!("answer is {length} characters; at most {max_len} are allowed"),
                    )
                } else {
                    let ok = answer.to_lowercase().contains(&expected.to_lowercase());
                    (
                        ok,
                        if ok {
                            "answer contains the expected text".into()
                        } else {
                            "expected text not found in the answer".into()
                        },
                    )
                }
            }
            Scorer::Regex => match regex::Regex::new(&anchored(expected)) {
                Ok(re) => {
                    let ok = re.is_match(answer.trim());
                    (
                        ok,
                        if ok {
                            "answer matches the pattern".into()
                        } else {
                            "answer does not match the pattern".into()
                        },
                    )
                }
                Err(e) => (false, format!("invalid expected pattern: {e}")),
            },
            Scorer::Numeric {
                tolerance,
                relative,
            } => match (last_number(answer), last_number(expected)) {
                (Some(got), Some(want)) => {
                    let allowed = if *relative {
                        tolerance * want.abs()
                    } else {
                        *tolerance
                    };
                    let ok = (got - want).abs() <= allowed + f64::EPSILON * want.abs().max(1.0);
                    (
                        ok,
                        if ok {
                            "number within tolerance".into()
                        } else {
                            format!("number {got} is outside the tolerance")
                        },
                    )
                }
                (None, _) => (false, "no number in the answer".into()),
                (_, None) => (false, "the expected value holds no number".into()),
            },
        };
        Some(Score {
            value: if success { 1.0 } else { 0.0 },
            success,
            reason,
        })
    }
}

/// How much of a scoring command's standard error an error quotes.
const STDERR_QUOTED_CHARS: usize = 500;

/// How much of a scoring command's output is kept; the rest is read and
/// dropped, so a chatty program neither blocks nor fills memory.
const OUTPUT_KEPT_BYTES: usize = 64 * 1024;

async fn run_command(
    command: &[String],
    timeout: Duration,
    answer: &str,
    expected: &str,
    context: &ScoringContext<'_>,
) -> Result<Score, DomainError> {
    use tokio::io::AsyncWriteExt;

    let (program, args) = command
        .split_first()
        .ok_or_else(|| DomainError::Scoring("the scoring command is empty".into()))?;
    let program_path = resolve_program(program, context.working_dir);
    let name = format!("scoring command `{program}`");
    let mut cmd = tokio::process::Command::new(&program_path);
    cmd.args(args)
        .env_clear()
        .envs(
            COMMAND_ENV_PASSED
                .iter()
                .filter_map(|var| std::env::var_os(var).map(|value| (var, value))),
        )
        .env("HYPERAGENTS_EXPECTED", expected)
        .env("HYPERAGENTS_TASK_ID", context.task_id)
        .env("HYPERAGENTS_QUESTION", context.question)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        // Its own process group, so a timeout kills whatever it started too.
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = context.working_dir {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().map_err(|e| {
        DomainError::Scoring(format!(
            "cannot start {name} ({}): {e}",
            program_path.display()
        ))
    })?;
    let pid = child.id();
    let mut stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let input = answer.as_bytes();
    let feed = async move {
        if let Some(stdin) = stdin.as_mut() {
            match stdin.write_all(input).await {
                // A program that decides without reading its input is fine.
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e),
                _ => {}
            }
        }
        drop(stdin);
        Ok(())
    };
    let run = async {
        tokio::join!(
            feed,
            read_capped(stdout, OUTPUT_KEPT_BYTES),
            read_capped(stderr, OUTPUT_KEPT_BYTES),
            child.wait()
        )
    };
    let (fed, stdout, stderr, status) = match tokio::time::timeout(timeout, run).await {
        Ok(done) => done,
        Err(_) => {
            // The group's id stays allocated while any member (the command
            // or something it started) lives, so this reaches only them.
            if let Some(pid) = pid {
                kill_process_group(pid);
            }
            if let Err(e) = child.kill().await {
                tracing::debug!(error = %e, "reaping a timed-out scoring command");
            }
            return Err(DomainError::Scoring(format!(
                "{name} ran past its {} s timeout and was killed",
                timeout.as_secs()
            )));
        }
    };
    let io_error =
        |what: &str, e: std::io::Error| DomainError::Scoring(format!("{name}: {what} failed: {e}"));
    let status = status.map_err(|e| io_error("waiting for it", e))?;
    fed.map_err(|e| io_error("writing the answer", e))?;
    let stdout = stdout.map_err(|e| io_error("reading its output", e))?;
    let stderr = stderr.map_err(|e| io_error("reading its error output", e))?;
    let stderr_tail = || {
        let text = String::from_utf8_lossy(&stderr);
        let text = text.trim();
        let skip = text.chars().count().saturating_sub(STDERR_QUOTED_CHARS);
        let tail: String = text.chars().skip(skip).collect();
        if tail.is_empty() {
            String::new()
        } else {
            format!("; stderr: {tail}")
        }
    };
    let success = match status.code() {
        Some(0) => true,
        Some(1) => false,
        Some(code) => {
            return Err(DomainError::Scoring(format!(
                "{name} exited with status {code} (0 means success, 1 failure, anything else an error){}",
                stderr_tail()
            )));
        }
        None => {
            return Err(DomainError::Scoring(format!(
                "{name} was killed by a signal ({status}){}",
                stderr_tail()
            )));
        }
    };
    let stdout = String::from_utf8_lossy(&stdout);
    let first_line = stdout.lines().next().unwrap_or("").trim();
    let printed = match first_line.parse::<f64>() {
        Ok(value) if value.is_finite() && (0.0..=1.0).contains(&value) => Some(value),
        Ok(value) => {
            return Err(DomainError::Scoring(format!(
                "{name} printed the score {value}, outside [0, 1]"
            )));
        }
        Err(_) => None,
    };
    let value = printed.unwrap_or(if success { 1.0 } else { 0.0 });
    Ok(Score {
        value,
        success,
        reason: format!(
            "{name} {} (score {value})",
            if success {
                "accepted the answer"
            } else {
                "rejected the answer"
            }
        ),
    })
}

/// Reads `reader` to its end, keeping the first `cap` bytes.
async fn read_capped(
    reader: Option<impl tokio::io::AsyncRead + Unpin>,
    cap: usize,
) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;

    let mut kept = Vec::new();
    let Some(mut reader) = reader else {
        return Ok(kept);
    };
    let mut chunk = [0u8; 8192];
    loop {
        let n = reader.read(&mut chunk).await?;
        if n == 0 {
            return Ok(kept);
        }
        let room = cap.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..n.min(room)]);
    }
}

/// A program path with a `/` is relative to the working directory; a bare
/// name is left for the `PATH` lookup.
fn resolve_program(program: &str, working_dir: Option<&Path>) -> PathBuf {
    let path = Path::new(program);
    match working_dir {
        Some(dir) if path.is_relative() && program.contains('/') => dir.join(path),
        _ => path.to_path_buf(),
    }
}

/// Kills the process group a timed-out scoring command leads (the command
/// itself is also killed when its handle drops).
fn kill_process_group(pid: u32) {
    let Ok(pgid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: killpg only sends a signal and touches no memory. The group
    // was created for this command by `process_group(0)`, so its id is the
    // command's pid; the kernel keeps that id allocated while the command
    // is unreaped or any member of its group lives.
    let result = unsafe { libc::killpg(pgid, libc::SIGKILL) };
    if result != 0 {
        tracing::debug!(pgid, error = %std::io::Error::last_os_error(), "killing a scoring command's group");
    }
}

fn anchored(pattern: &str) -> String {
    format!("^(?:{pattern})$")
}

fn normalize(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// The last number in `text`: an optional sign, digits with optional
/// thousands commas, an optional fraction and exponent.
fn last_number(text: &str) -> Option<f64> {
    static NUMBER: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = NUMBER.get_or_init(|| {
        regex::Regex::new(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?")
            .unwrap_or_else(|_| unreachable!("the pattern is a constant"))
    });
    re.find_iter(text)
        .map(|m| m.as_str())
        .filter(|s| s.chars().any(|c| c.is_ascii_digit()))
        .filter_map(|s| s.replace(',', "").parse::<f64>().ok())
        .last()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(scorer: &Scorer, answer: &str, expected: &str) -> bool {
        rule(scorer, answer, expected).success
    }

    fn rule(scorer: &Scorer, answer: &str, expected: &str) -> Score {
        scorer
            .score_by_rule(answer, expected)
            .expect("a rule scorer")
    }

    #[test]
    fn exact_ignores_case_and_spacing_only() {
        assert!(check(&Scorer::Exact, "  Paris ", "paris"));
        assert!(check(&Scorer::Exact, "New   York", "new york"));
        assert!(!check(&Scorer::Exact, "Paris, France", "Paris"));
    }

    #[test]
    fn contains_caps_the_answer_length() {
        let s = Scorer::Contains { max_len: 20 };
        assert!(check(&s, "It is Paris.", "paris"));
        assert!(!check(&s, "London", "paris"));
        let dump = "Paris London Berlin Rome Madrid Vienna";
        let score = rule(&s, dump, "paris");
        assert!(!score.success);
        assert!(score.reason.contains("at most 20"), "{}", score.reason);
    }

    #[test]
    fn regex_matches_the_whole_answer() {
        assert!(check(&Scorer::Regex, " 42 apples ", r"\d+ apples?"));
        assert!(!check(&Scorer::Regex, "I have 42 apples", r"\d+ apples?"));
        assert!(Scorer::Regex.validate("(").is_err());
    }

    #[test]
    fn numeric_tolerance_absolute_and_relative() {
        let abs = Scorer::Numeric {
            tolerance: 0.5,
            relative: false,
        };
        assert!(check(&abs, "about 3.4 km", "3"));
        assert!(
            check(&abs, "2 + 2 = 4", "4"),
            "the last number is the answer"
        );
        assert!(!check(&abs, "3.6", "3"));
        assert!(check(&abs, "The total is 1,234.", "1234"));
        assert!(!check(&abs, "no idea", "3"));
        let rel = Scorer::Numeric {
            tolerance: 0.01,
            relative: true,
        };
        assert!(check(&rel, "1005", "1000"));
        assert!(!check(&rel, "1020", "1000"));
        assert!(check(
            &Scorer::Numeric {
                tolerance: 0.0,
                relative: false
            },
            "-2.5e3",
            "-2500"
        ));
        assert!(
            Scorer::Numeric {
                tolerance: -1.0,
                relative: false
            }
            .validate("3")
            .is_err()
        );
    }

    #[test]
    fn names_resolve_and_unknown_names_are_errors() {
        assert_eq!(
            ScorerSpec::Name("exact".into()).resolve(),
            Ok(Scorer::Exact)
        );
        assert!(
            ScorerSpec::Name("fuzzy".into())
                .resolve()
                .unwrap_err()
                .contains("unknown scorer `fuzzy`")
        );
        let detailed: ScorerSpec =
            serde_json::from_str(r#"{"type":"contains","max_len":5}"#).unwrap();
        assert_eq!(detailed.resolve(), Ok(Scorer::Contains { max_len: 5 }));
    }
}
