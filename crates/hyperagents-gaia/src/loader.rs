//! Reading GAIA's layout: a `metadata.jsonl` with one task per line and the attachments beside
//! it, as in GAIA's split folders (`<dir>/2023/validation/metadata.jsonl`).
//!
//! A line holds `task_id`, `Question`, `Level` (1–3, a number or a string), `Final answer`
//! (`"?"`, empty or absent on the test split), `file_name` (`""` when there is no attachment),
//! and optionally `file_path` and `Annotator Metadata`. Any other field, a missing required one,
//! a duplicate id or an attachment that cannot be found is an error naming `file:line`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use hyperagents_domain::DomainError;
use serde::Deserialize;

/// The file name GAIA gives each split's task list.
pub const METADATA_FILE: &str = "metadata.jsonl";

/// How deep [`GaiaSuite::load`] looks below a folder for split folders to suggest.
const SPLIT_SEARCH_DEPTH: usize = 3;

/// One GAIA task. The final answer and the annotator's notes (which describe the solution) stay
/// private: nothing here hands them to an agent, and `Debug` leaves them out.
#[derive(Clone, PartialEq)]
pub struct GaiaTask {
    pub task_id: String,
    pub question: String,
    /// GAIA's difficulty level, 1 to 3.
    pub level: u8,
    /// The attachment's name as the agent sees it (`None` when the task has none).
    pub file_name: Option<String>,
    /// Where the attachment lies on the host; copied into each episode's own folder.
    attachment: Option<PathBuf>,
    final_answer: Option<String>,
    annotator_metadata: Option<serde_json::Value>,
}

impl GaiaTask {
    /// Whether the task has a public answer (false on GAIA's test split).
    pub fn has_answer(&self) -> bool {
        self.final_answer.is_some()
    }

    /// The attachment's path on the host.
    pub fn attachment_path(&self) -> Option<&Path> {
        self.attachment.as_deref()
    }

    /// The annotator's notes (steps, tools); host-side reports only, since they give the
    /// solution away.
    pub fn annotator_metadata(&self) -> Option<&serde_json::Value> {
        self.annotator_metadata.as_ref()
    }

    /// The expected answer, for the scorer (crate-internal so no caller can route it to an
    /// agent by accident).
    pub(crate) fn final_answer(&self) -> Option<&str> {
        self.final_answer.as_deref()
    }
}

impl std::fmt::Debug for GaiaTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GaiaTask")
            .field("task_id", &self.task_id)
            .field("level", &self.level)
            .field("file_name", &self.file_name)
            .field("attachment", &self.attachment)
            .field("has_answer", &self.has_answer())
            .finish_non_exhaustive()
    }
}

/// The tasks of one GAIA split.
#[derive(Debug, Clone)]
pub struct GaiaSuite {
    name: String,
    metadata: PathBuf,
    tasks: Vec<GaiaTask>,
}

impl GaiaSuite {
    /// Loads a split from a `metadata.jsonl` path or from the folder holding one. A folder
    /// without one (GAIA's top folder) is an error that lists the split folders found below it.
    pub fn load(path: &Path) -> Result<Self, DomainError> {
        let metadata = locate_metadata(path)?;
        let text = hyperagents_domain::read_task_file(&metadata)?;
        let dir = metadata.parent().unwrap_or(Path::new(".")).to_path_buf();
        let name = suite_name(&dir);
        Self::parse(&name, &metadata, &text)
    }

    /// Parses metadata text as if read from `metadata` (used for errors and to find the
    /// attachments beside it).
    pub fn parse(name: &str, metadata: &Path, text: &str) -> Result<Self, DomainError> {
        let file = metadata.display().to_string();
        let dir = metadata.parent().unwrap_or(Path::new("."));
        let canonical_metadata = std::fs::canonicalize(metadata).ok();
        let mut tasks: Vec<GaiaTask> = Vec::new();
        // A set, so a file of many tasks is not checked in quadratic time.
        let mut ids = HashSet::new();
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let error = |message: String| DomainError::Parse {
                file: file.clone(),
                line: line_no,
                message,
            };
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let line: MetadataLine =
                serde_json::from_str(trimmed).map_err(|e| error(e.to_string()))?;
            let task_id = line.task_id.trim().to_string();
            if task_id.is_empty() {
                return Err(error("`task_id` is empty".into()));
            }
            if !ids.insert(task_id.clone()) {
                return Err(error(format!("duplicate task_id `{task_id}`")));
            }
            let level = parse_level(&line.level).map_err(|m| error(format!("`Level`: {m}")))?;
            let final_answer = parse_answer(line.final_answer)
                .map_err(|m| error(format!("`Final answer`: {m}")))?;
            let (file_name, attachment) = resolve_attachment(
                dir,
                canonical_metadata.as_deref(),
                &line.file_name,
                line.file_path.as_deref(),
            )
            .map_err(|m| error(format!("task `{task_id}`: {m}")))?;
            tasks.push(GaiaTask {
                task_id,
                question: line.question,
                level,
                file_name,
                attachment,
                final_answer,
                annotator_metadata: line.annotator_metadata,
            });
        }
        if tasks.is_empty() {
            return Err(DomainError::Parse {
                file,
                line: 1,
                message: "the file holds no tasks".into(),
            });
        }
        Ok(Self {
            name: name.to_string(),
            metadata: metadata.to_path_buf(),
            tasks,
        })
    }

    /// A short name for reports: `gaia:<year>/<split>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The metadata file the tasks came from.
    pub fn metadata_path(&self) -> &Path {
        &self.metadata
    }

    pub fn tasks(&self) -> &[GaiaTask] {
        &self.tasks
    }

    pub fn task(&self, id: &str) -> Result<&GaiaTask, DomainError> {
        self.tasks
            .iter()
            .find(|t| t.task_id == id)
            .ok_or_else(|| DomainError::UnknownTask(id.to_string()))
    }

    /// Ids of the tasks that can be scored here (those with a public answer).
    pub fn scorable_task_ids(&self) -> Vec<String> {
        self.tasks
            .iter()
            .filter(|t| t.has_answer())
            .map(|t| t.task_id.clone())
            .collect()
    }
}

/// One line of `metadata.jsonl`, as GAIA writes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetadataLine {
    task_id: String,
    #[serde(rename = "Question")]
    question: String,
    #[serde(rename = "Level")]
    level: serde_json::Value,
    #[serde(rename = "Final answer", default)]
    final_answer: Option<serde_json::Value>,
    file_name: String,
    #[serde(default)]
    file_path: Option<String>,
    #[serde(rename = "Annotator Metadata", default)]
    annotator_metadata: Option<serde_json::Value>,
}

fn locate_metadata(path: &Path) -> Result<PathBuf, DomainError> {
    let io_error = |source: std::io::Error| DomainError::Io {
        path: path.display().to_string(),
        source,
    };
    let info = fs_err::metadata(path).map_err(io_error)?;
    if info.is_file() {
        return Ok(path.to_path_buf());
    }
    let direct = path.join(METADATA_FILE);
    if direct.is_file() {
        return Ok(direct);
    }
    let mut splits = Vec::new();
    find_splits(path, path, SPLIT_SEARCH_DEPTH, &mut splits);
    splits.sort();
    let message = if splits.is_empty() {
        format!("holds no {METADATA_FILE} (nor does any folder below it)")
    } else {
        format!(
            "holds no {METADATA_FILE}; pass one of the split folders below it: {}",
            splits.join(", ")
        )
    };
    Err(io_error(std::io::Error::new(
        std::io::ErrorKind::NotFound,
        message,
    )))
}

/// Collects the folders below `dir` (relative to `root`) that hold a metadata file.
fn find_splits(root: &Path, dir: &Path, depth: usize, found: &mut Vec<String>) {
    if depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if !kind.is_dir() {
            continue;
        }
        let sub = entry.path();
        if sub.join(METADATA_FILE).is_file() {
            let relative = sub.strip_prefix(root).unwrap_or(&sub);
            found.push(relative.display().to_string());
        }
        find_splits(root, &sub, depth - 1, found);
    }
}

/// `gaia:2023/validation` for `<anything>/2023/validation`.
fn suite_name(dir: &Path) -> String {
    let parts: Vec<String> = dir
        .components()
        .rev()
        .filter_map(|c| match c {
            std::path::Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .take(2)
        .collect();
    let joined: Vec<&str> = parts.iter().rev().map(String::as_str).collect();
    if joined.is_empty() {
        "gaia".into()
    } else {
        format!("gaia:{}", joined.join("/"))
    }
}

fn parse_level(value: &serde_json::Value) -> Result<u8, String> {
    let level = match value {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match level {
        Some(l @ 1..=3) => Ok(l as u8),
        _ => Err(format!("expected 1, 2 or 3, got {value}")),
    }
}

/// The expected answer; `None` for the test split's `"?"`, an empty string, null or absence.
fn parse_answer(value: Option<serde_json::Value>) -> Result<Option<String>, String> {
    let text = match value {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::String(s)) => s,
        Some(serde_json::Value::Number(n)) => n.to_string(),
        Some(other) => return Err(format!("expected a string, got {other}")),
    };
    let trimmed = text.trim();
    Ok(if trimmed.is_empty() || trimmed == "?" {
        None
    } else {
        Some(text)
    })
}

/// Finds a task's attachment: `file_name` beside the metadata file, else `file_path` (absolute,
/// or relative to the metadata's folder or any folder above it, as Hugging Face copies write
/// paths from the dataset's root).
fn resolve_attachment(
    dir: &Path,
    metadata: Option<&Path>,
    file_name: &str,
    file_path: Option<&str>,
) -> Result<(Option<String>, Option<PathBuf>), String> {
    let file_path = file_path.map(str::trim).filter(|p| !p.is_empty());
    let name = match (file_name.trim(), file_path) {
        ("", None) => return Ok((None, None)),
        ("", Some(p)) => Path::new(p)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| format!("`file_path` {p:?} names no file"))?,
        (name, _) => name.to_string(),
    };
    if !is_plain_file_name(&name) {
        return Err(format!(
            "`file_name` {name:?} must be a plain file name (no folders, no `..`)"
        ));
    }
    if name == METADATA_FILE {
        return Err(format!(
            "an attachment may not be named {METADATA_FILE}: it holds the answers"
        ));
    }
    let mut candidates = vec![dir.join(&name)];
    if let Some(p) = file_path {
        let p = Path::new(p);
        if p.is_absolute() {
            candidates.push(p.to_path_buf());
        } else {
            candidates.extend(dir.ancestors().map(|a| a.join(p)));
        }
    }
    let Some(found) = candidates.iter().find(|c| c.is_file()) else {
        let looked: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
        return Err(format!(
            "attachment `{name}` not found (looked at {})",
            looked.join(", ")
        ));
    };
    if let (Some(metadata), Ok(canonical)) = (metadata, std::fs::canonicalize(found))
        && canonical == metadata
    {
        return Err("the attachment is the metadata file itself, which holds the answers".into());
    }
    Ok((Some(name), Some(found.clone())))
}

fn is_plain_file_name(name: &str) -> bool {
    let mut components = Path::new(name).components();
    matches!(
        (components.next(), components.next()),
        (Some(std::path::Component::Normal(_)), None)
    ) && !name.contains(['/', '\\'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_numbers_or_digit_strings_from_one_to_three() {
        assert_eq!(parse_level(&serde_json::json!(1)), Ok(1));
        assert_eq!(parse_level(&serde_json::json!("3")), Ok(3));
        assert!(parse_level(&serde_json::json!(4)).is_err());
        assert!(parse_level(&serde_json::json!("hard")).is_err());
        assert!(parse_level(&serde_json::json!(null)).is_err());
    }

    #[test]
    fn placeholder_answers_mean_no_answer() {
        assert_eq!(parse_answer(None), Ok(None));
        assert_eq!(parse_answer(Some(serde_json::json!("?"))), Ok(None));
        assert_eq!(parse_answer(Some(serde_json::json!(" "))), Ok(None));
        assert_eq!(
            parse_answer(Some(serde_json::json!(42))),
            Ok(Some("42".into()))
        );
        assert!(parse_answer(Some(serde_json::json!(["a"]))).is_err());
    }

    #[test]
    fn suite_names_use_the_last_two_folders() {
        assert_eq!(
            suite_name(Path::new("/data/gaia/2023/validation")),
            "gaia:2023/validation"
        );
        assert_eq!(suite_name(Path::new("split")), "gaia:split");
    }

    #[test]
    fn file_names_must_be_plain() {
        assert!(is_plain_file_name("data.csv"));
        assert!(!is_plain_file_name("../data.csv"));
        assert!(!is_plain_file_name("sub/data.csv"));
        assert!(!is_plain_file_name("/etc/passwd"));
        assert!(!is_plain_file_name(".."));
        assert!(!is_plain_file_name("a\\b"));
    }
}
