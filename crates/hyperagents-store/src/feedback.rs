//! Human feedback, in a SQLite file of its own beside the results store
//! (`feedback.sqlite`): a person's judgements have another life than
//! computed results — they are exported, merged from other raters and
//! imported — and keeping them apart lets the results store's schema and a
//! pinned experiment's build move independently of them.
//!
//! Two kinds ([`Feedback`]): a rating of one episode (good or bad, with a
//! comment) and a preference between two nodes' episodes of the same task
//! and seed. Each is stored with its rater and time; storing the same
//! judgement again (an import of an export) is harmless.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// `PRAGMA application_id` of a feedback file ("HAFB").
pub const FEEDBACK_APPLICATION_ID: i64 = 0x4841_4642;
/// The feedback file's schema version.
pub const FEEDBACK_SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "CREATE TABLE feedback (
     id         INTEGER PRIMARY KEY AUTOINCREMENT,
     at_ms      INTEGER NOT NULL,
     rater      TEXT NOT NULL,
     kind       TEXT NOT NULL CHECK (kind IN ('rating', 'preference')),
     run_id     TEXT NOT NULL,
     task       TEXT NOT NULL,
     seed       INTEGER NOT NULL,
     stage      TEXT NOT NULL,
     node       TEXT NOT NULL,
     other_node TEXT NOT NULL,
     verdict    TEXT NOT NULL,
     comment    TEXT NOT NULL,
     UNIQUE (kind, run_id, task, seed, stage, node, other_node, rater, at_ms)
 );
 CREATE INDEX feedback_by_run ON feedback (run_id, node);";

/// A person's judgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Feedback {
    Rating(EpisodeRating),
    Preference(EpisodePreference),
}

/// One episode rated good or bad.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpisodeRating {
    pub run: String,
    pub node: String,
    /// The stage the episode belongs to (`stage1`, `full`, …).
    pub stage: String,
    pub task: String,
    pub seed: u64,
    pub good: bool,
    pub comment: String,
    pub rater: String,
    pub at_ms: i64,
}

/// Two nodes' episodes of one task and seed, one preferred.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpisodePreference {
    pub run: String,
    pub stage: String,
    pub task: String,
    pub seed: u64,
    /// The two nodes shown, and the one preferred (`a` or `b`'s id).
    pub a: String,
    pub b: String,
    pub preferred: String,
    pub comment: String,
    pub rater: String,
    pub at_ms: i64,
}

impl Feedback {
    pub fn run(&self) -> &str {
        match self {
            Feedback::Rating(r) => &r.run,
            Feedback::Preference(p) => &p.run,
        }
    }

    /// Why it cannot be stored, if it cannot.
    pub fn problem(&self) -> Option<String> {
        let (run, task, rater) = match self {
            Feedback::Rating(r) => (&r.run, &r.task, &r.rater),
            Feedback::Preference(p) => {
                if p.a == p.b {
                    return Some("a preference needs two different nodes".into());
                }
                if p.preferred != p.a && p.preferred != p.b {
                    return Some(format!(
                        "the preferred node `{}` is neither `{}` nor `{}`",
                        p.preferred, p.a, p.b
                    ));
                }
                (&p.run, &p.task, &p.rater)
            }
        };
        if run.is_empty() || task.is_empty() {
            return Some("a run and a task are required".into());
        }
        if rater.trim().is_empty() {
            return Some("a rater's name is required".into());
        }
        None
    }
}

/// A stored judgement with its row id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackRecord {
    pub id: i64,
    pub feedback: Feedback,
}

/// The feedback file; cheap to clone.
#[derive(Clone)]
pub struct FeedbackStore {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

impl FeedbackStore {
    /// Opens (creating if needed) the feedback file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs_err::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let open = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        let mut conn = Connection::open(&path).map_err(open)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(open)?;
        crate::store::enter_wal(&conn).map_err(open)?;
        // Read and create in one write transaction: two processes opening a
        // new file at once must not both create its table.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(open)?;
        let application_id: i64 = tx
            .pragma_query_value(None, "application_id", |row| row.get(0))
            .map_err(open)?;
        let version: i64 = tx
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(open)?;
        if application_id == 0 && version == 0 {
            let tables: i64 = tx
                .query_row("SELECT COUNT(*) FROM sqlite_master", [], |row| row.get(0))
                .map_err(open)?;
            if tables > 0 {
                return Err(StoreError::NotAStore {
                    path,
                    found: application_id,
                });
            }
            tx.execute_batch(&format!(
                "{SCHEMA}; PRAGMA application_id = {FEEDBACK_APPLICATION_ID}; \
                 PRAGMA user_version = {FEEDBACK_SCHEMA_VERSION};"
            ))
            .map_err(open)?;
        } else if application_id != FEEDBACK_APPLICATION_ID {
            return Err(StoreError::NotAStore {
                path,
                found: application_id,
            });
        } else if version > FEEDBACK_SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                path,
                found: version,
                supported: FEEDBACK_SCHEMA_VERSION,
            });
        }
        tx.commit().map_err(open)?;
        Ok(Self {
            path,
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, operation: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
        let path = self.path.clone();
        move |source| StoreError::Sqlite {
            path,
            operation,
            source,
        }
    }

    /// Stores `feedback`; returns whether it was new (the same judgement
    /// stored before is kept once).
    pub fn add(&self, feedback: &Feedback) -> Result<bool, StoreError> {
        if let Some(problem) = feedback.problem() {
            return Err(StoreError::InvalidInput {
                path: self.path.clone(),
                what: "feedback",
                reason: problem,
            });
        }
        let row = Row::of(feedback);
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let inserted = conn
            .execute(
                "INSERT OR IGNORE INTO feedback (at_ms, rater, kind, run_id, task, seed, stage, \
                 node, other_node, verdict, comment) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    row.at_ms,
                    row.rater,
                    row.kind,
                    row.run,
                    row.task,
                    crate::store::seed_to_sql(row.seed),
                    row.stage,
                    row.node,
                    row.other_node,
                    row.verdict,
                    row.comment
                ],
            )
            .map_err(self.error("storing feedback"))?;
        Ok(inserted == 1)
    }

    /// Every judgement, of one run or of all, oldest first.
    pub fn list(&self, run: Option<&str>) -> Result<Vec<FeedbackRecord>, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let mut statement = conn
            .prepare_cached(
                "SELECT id, at_ms, rater, kind, run_id, task, seed, stage, node, other_node, \
                 verdict, comment FROM feedback WHERE ?1 IS NULL OR run_id = ?1 ORDER BY at_ms, id",
            )
            .map_err(self.error("reading feedback"))?;
        let rows = statement
            .query_map(params![run], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    Row {
                        at_ms: r.get(1)?,
                        rater: r.get(2)?,
                        kind: r.get(3)?,
                        run: r.get(4)?,
                        task: r.get(5)?,
                        seed: crate::store::seed_from_sql(r.get(6)?),
                        stage: r.get(7)?,
                        node: r.get(8)?,
                        other_node: r.get(9)?,
                        verdict: r.get(10)?,
                        comment: r.get(11)?,
                    },
                ))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(self.error("reading feedback"))?;
        rows.into_iter()
            .map(|(id, row)| {
                let feedback = row
                    .into_feedback()
                    .ok_or_else(|| StoreError::CorruptArchive {
                        path: self.path.clone(),
                        what: format!("feedback row {id}"),
                        reason: "unknown kind or verdict".into(),
                    })?;
                Ok(FeedbackRecord { id, feedback })
            })
            .collect()
    }
}

/// A feedback row as stored.
struct Row {
    at_ms: i64,
    rater: String,
    kind: String,
    run: String,
    task: String,
    seed: u64,
    stage: String,
    node: String,
    other_node: String,
    verdict: String,
    comment: String,
}

impl Row {
    fn of(feedback: &Feedback) -> Row {
        match feedback {
            Feedback::Rating(r) => Row {
                at_ms: r.at_ms,
                rater: r.rater.clone(),
                kind: "rating".into(),
                run: r.run.clone(),
                task: r.task.clone(),
                seed: r.seed,
                stage: r.stage.clone(),
                node: r.node.clone(),
                other_node: String::new(),
                verdict: if r.good { "good" } else { "bad" }.into(),
                comment: r.comment.clone(),
            },
            Feedback::Preference(p) => Row {
                at_ms: p.at_ms,
                rater: p.rater.clone(),
                kind: "preference".into(),
                run: p.run.clone(),
                task: p.task.clone(),
                seed: p.seed,
                stage: p.stage.clone(),
                node: p.a.clone(),
                other_node: p.b.clone(),
                verdict: if p.preferred == p.a { "a" } else { "b" }.into(),
                comment: p.comment.clone(),
            },
        }
    }

    fn into_feedback(self) -> Option<Feedback> {
        match (self.kind.as_str(), self.verdict.as_str()) {
            ("rating", "good" | "bad") => Some(Feedback::Rating(EpisodeRating {
                good: self.verdict == "good",
                run: self.run,
                node: self.node,
                stage: self.stage,
                task: self.task,
                seed: self.seed,
                comment: self.comment,
                rater: self.rater,
                at_ms: self.at_ms,
            })),
            ("preference", "a" | "b") => Some(Feedback::Preference(EpisodePreference {
                preferred: if self.verdict == "a" {
                    self.node.clone()
                } else {
                    self.other_node.clone()
                },
                run: self.run,
                stage: self.stage,
                task: self.task,
                seed: self.seed,
                a: self.node,
                b: self.other_node,
                comment: self.comment,
                rater: self.rater,
                at_ms: self.at_ms,
            })),
            _ => None,
        }
    }
}

/// Where the evolution engine reads a run's judgements from (the feedback
/// file, or anything else that holds them).
pub trait FeedbackSource: Send + Sync {
    fn judgements(&self, run: &str) -> Result<Vec<Feedback>, StoreError>;
}

impl FeedbackSource for FeedbackStore {
    fn judgements(&self, run: &str) -> Result<Vec<Feedback>, StoreError> {
        Ok(self
            .list(Some(run))?
            .into_iter()
            .map(|record| record.feedback)
            .collect())
    }
}
