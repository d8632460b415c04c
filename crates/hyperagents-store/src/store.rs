//! The SQLite file behind the results store: schema and migrations,
//! evaluation runs, and evaluations with their cache lookup.
//!
//! The database runs in WAL mode with a busy timeout, so several processes
//! (the workers of one run, a dashboard reading) can share the file. Every
//! evaluation is written in its own `IMMEDIATE` transaction, together with
//! its link to the run that used it, so a crash never leaves a result
//! without its membership or half a row. The methods here block: async
//! callers run them on tokio's blocking pool.
//!
//! `eval_runs` is a batch of evaluations of one program on one split;
//! migration 2 adds the evolution archive (`runs`, `nodes`,
//! `node_evaluations`, `events`) beside them, written by
//! [`crate::evolution`]; migration 3 adds run ledgers (`ledgers`,
//! `ledger_roles`), written by [`crate::ledger`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};

use crate::{EvalKey, EvalKeyHash, StoreError};

/// The schema version this build writes: the number of migration steps.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Identifies the file as a results store (`PRAGMA application_id`), so
/// another SQLite file opened by mistake is refused, not migrated.
pub const APPLICATION_ID: i64 = 0x4841_5253; // "HARS"

/// How long a writer waits for another connection's transaction to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Schema steps; step `n` takes the schema from version `n` to `n + 1`.
/// Append only: a released step is never edited.
const MIGRATIONS: &[&str] = &[
    // 1: evaluation runs, evaluations (the cache), run membership.
    "CREATE TABLE eval_runs (
         id            INTEGER PRIMARY KEY AUTOINCREMENT,
         created_at_ms INTEGER NOT NULL,
         program_hash  TEXT NOT NULL,
         suite         TEXT NOT NULL,
         split         TEXT NOT NULL,
         config_json   TEXT NOT NULL
     );
     CREATE TABLE evaluations (
         key_hash         TEXT PRIMARY KEY NOT NULL,
         program_hash     TEXT NOT NULL,
         suite            TEXT NOT NULL,
         suite_version    TEXT NOT NULL,
         task             TEXT NOT NULL,
         seed             INTEGER NOT NULL,
         models_json      TEXT NOT NULL,
         sampling_hash    TEXT NOT NULL,
         host_api_version INTEGER NOT NULL,
         status           TEXT NOT NULL CHECK (status IN ('ok', 'unsupported', 'error')),
         success          INTEGER NOT NULL CHECK (success IN (0, 1)),
         score            REAL NOT NULL,
         reason           TEXT NOT NULL,
         tokens_in        INTEGER NOT NULL,
         tokens_out       INTEGER NOT NULL,
         cost             REAL NOT NULL,
         duration_ms      INTEGER NOT NULL,
         trajectory       TEXT,
         finished_at_ms   INTEGER NOT NULL
     );
     CREATE INDEX evaluations_by_program ON evaluations (program_hash, suite, task);
     CREATE TABLE eval_run_members (
         run_id      INTEGER NOT NULL REFERENCES eval_runs (id) ON DELETE CASCADE,
         key_hash    TEXT NOT NULL REFERENCES evaluations (key_hash),
         computed    INTEGER NOT NULL CHECK (computed IN (0, 1)),
         added_at_ms INTEGER NOT NULL,
         PRIMARY KEY (run_id, key_hash)
     ) WITHOUT ROWID;",
    // 2: the evolution archive: runs, their nodes, the evaluation runs that
    // scored each node per stage, and an event log for live status views.
    "CREATE TABLE runs (
         id            TEXT PRIMARY KEY NOT NULL,
         created_at_ms INTEGER NOT NULL,
         config_json   TEXT NOT NULL,
         mode          TEXT NOT NULL
                       CHECK (mode IN ('hyper', 'fixed-meta', 'prompt-only', 'none')),
         seed          INTEGER NOT NULL,
         status        TEXT NOT NULL CHECK (status IN ('running', 'stopped', 'finished')),
         state_json    TEXT NOT NULL
     );
     CREATE TABLE nodes (
         run_id                 TEXT NOT NULL REFERENCES runs (id),
         node_id                TEXT NOT NULL,
         program_hash           TEXT NOT NULL,
         parent_id              TEXT,
         generation             INTEGER NOT NULL,
         label                  TEXT NOT NULL,
         diff                   TEXT NOT NULL,
         diff_kinds             TEXT NOT NULL,
         status                 TEXT NOT NULL CHECK (status IN ('valid', 'invalid', 'failed')),
         validation_errors_json TEXT NOT NULL,
         meta_tokens            INTEGER NOT NULL,
         created_at_ms          INTEGER NOT NULL,
         PRIMARY KEY (run_id, node_id),
         FOREIGN KEY (run_id, parent_id) REFERENCES nodes (run_id, node_id)
     );
     CREATE INDEX nodes_by_parent ON nodes (run_id, parent_id);
     CREATE INDEX nodes_by_generation ON nodes (run_id, generation, created_at_ms);
     CREATE TABLE node_evaluations (
         run_id      TEXT NOT NULL,
         node_id     TEXT NOT NULL,
         stage       TEXT NOT NULL,
         eval_run_id INTEGER NOT NULL REFERENCES eval_runs (id),
         PRIMARY KEY (run_id, node_id, stage),
         FOREIGN KEY (run_id, node_id) REFERENCES nodes (run_id, node_id)
     ) WITHOUT ROWID;
     CREATE TABLE events (
         seq          INTEGER PRIMARY KEY AUTOINCREMENT,
         run_id       TEXT NOT NULL REFERENCES runs (id),
         at_ms        INTEGER NOT NULL,
         kind         TEXT NOT NULL,
         payload_json TEXT NOT NULL
     );
     CREATE INDEX events_by_run ON events (run_id, seq);",
    // 3: run ledgers: what a run's models spent per role and how long the
    // run has been going, so budgets hold across sessions of a resumed run.
    "CREATE TABLE ledgers (
         scope         TEXT PRIMARY KEY NOT NULL,
         wall_secs     REAL NOT NULL CHECK (wall_secs >= 0),
         updated_at_ms INTEGER NOT NULL
     );
     CREATE TABLE ledger_roles (
         scope               TEXT NOT NULL REFERENCES ledgers (scope),
         role                TEXT NOT NULL,
         calls               INTEGER NOT NULL,
         cache_hits          INTEGER NOT NULL,
         input_tokens        INTEGER NOT NULL,
         output_tokens       INTEGER NOT NULL,
         cached_input_tokens INTEGER NOT NULL,
         dollars             REAL NOT NULL,
         latency_secs        REAL NOT NULL,
         PRIMARY KEY (scope, role)
     ) WITHOUT ROWID;",
];

/// The id of an evaluation run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EvalRunId(pub i64);

impl std::fmt::Display for EvalRunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A batch of evaluations to be created.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvalRun {
    pub program_hash: String,
    pub suite: String,
    /// `train`, `test`, a named subset.
    pub split: String,
    /// The settings the run was made with, for reports and reproduction.
    pub config: serde_json::Value,
}

/// A stored evaluation run.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalRun {
    pub id: EvalRunId,
    pub created_at_ms: i64,
    pub program_hash: String,
    pub suite: String,
    pub split: String,
    pub config: serde_json::Value,
}

/// Whether an evaluation produced a score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EvalStatus {
    /// Scored; `success` and `score` mean something.
    Ok,
    /// The task needs something this build or setup lacks; never a score.
    Unsupported,
    /// The evaluation itself failed (not the agent); may be retried.
    Error,
}

impl EvalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EvalStatus::Ok => "ok",
            EvalStatus::Unsupported => "unsupported",
            EvalStatus::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ok" => Some(EvalStatus::Ok),
            "unsupported" => Some(EvalStatus::Unsupported),
            "error" => Some(EvalStatus::Error),
            _ => None,
        }
    }

    /// Whether the result is settled: `ok` and `unsupported` are; an
    /// `error` is worth computing again, and a later result replaces it.
    pub fn is_final(self) -> bool {
        self != EvalStatus::Error
    }
}

/// The result of one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalResult {
    pub status: EvalStatus,
    /// Only ever true when `status` is `Ok`.
    pub success: bool,
    pub score: f64,
    /// The scorer's reason, or the error or what is unsupported.
    pub reason: String,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cost: f64,
    pub duration_ms: u64,
    /// Where the trajectory was written, if it was.
    pub trajectory: Option<PathBuf>,
    /// When the evaluation finished, in milliseconds since the Unix epoch.
    pub finished_at_ms: i64,
}

/// A stored evaluation: its key and its result.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalRecord {
    pub key: EvalKey,
    pub key_hash: EvalKeyHash,
    pub result: EvalResult,
}

/// What storing an evaluation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// It was new.
    Inserted,
    /// It replaced an `error` result under the same key.
    ReplacedError,
    /// A final result was already stored under the key; it was kept.
    AlreadyPresent,
}

/// The results store in one SQLite file. Cheap to clone; clones share one
/// connection. Open it again (another `open`) for another connection.
#[derive(Clone)]
pub struct ResultsStore {
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for ResultsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultsStore")
            .field("path", &self.shared.path)
            .finish()
    }
}

impl ResultsStore {
    /// Opens the store at `path`, creating the file and its directory as
    /// needed and bringing the schema up to [`SCHEMA_VERSION`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            fs_err::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let mut conn = Connection::open(&path).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        configure(&mut conn).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        let store = Self {
            shared: Arc::new(Shared {
                path,
                conn: Mutex::new(conn),
            }),
        };
        store.migrate()?;
        Ok(store)
    }

    /// Opens an existing store for reading only, beside processes that
    /// write it (WAL): nothing is created or migrated, and a write through
    /// it fails. The schema must be this build's.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let open_error = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        let conn = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(open_error)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_error)?;
        let read = |name: &str| -> Result<i64, StoreError> {
            conn.pragma_query_value(None, name, |row| row.get(0))
                .map_err(|source| StoreError::Open {
                    path: path.clone(),
                    source,
                })
        };
        let application_id = read("application_id")?;
        if application_id != APPLICATION_ID {
            return Err(StoreError::NotAStore {
                path,
                found: application_id,
            });
        }
        let version = read("user_version")?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                path,
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version < SCHEMA_VERSION {
            return Err(StoreError::SchemaTooOld {
                path,
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        Ok(Self {
            shared: Arc::new(Shared {
                path,
                conn: Mutex::new(conn),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.conn()
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|source| self.sqlite_error("reading the schema version", source))
    }

    /// Creates an evaluation run.
    pub fn create_run(&self, run: &NewEvalRun) -> Result<EvalRunId, StoreError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO eval_runs (created_at_ms, program_hash, suite, split, config_json) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                now_ms(),
                run.program_hash,
                run.suite,
                run.split,
                crate::canonical_json(&run.config),
            ],
        )
        .map_err(|source| self.sqlite_error("creating an evaluation run", source))?;
        Ok(EvalRunId(conn.last_insert_rowid()))
    }

    /// The run `id`, if it exists.
    pub fn run(&self, id: EvalRunId) -> Result<Option<EvalRun>, StoreError> {
        let row = self
            .conn()
            .query_row(
                "SELECT id, created_at_ms, program_hash, suite, split, config_json \
                 FROM eval_runs WHERE id = ?1",
                params![id.0],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, String>(4)?,
                        row.get::<_, String>(5)?,
                    ))
                },
            )
            .optional()
            .map_err(|source| self.sqlite_error("reading an evaluation run", source))?;
        let Some((id, created_at_ms, program_hash, suite, split, config_json)) = row else {
            return Ok(None);
        };
        let config = serde_json::from_str(&config_json).map_err(|e| StoreError::CorruptRecord {
            path: self.shared.path.clone(),
            key: format!("run {id}"),
            reason: format!("config is not JSON: {e}"),
        })?;
        Ok(Some(EvalRun {
            id: EvalRunId(id),
            created_at_ms,
            program_hash,
            suite,
            split,
            config,
        }))
    }

    /// All runs, oldest first.
    pub fn run_ids(&self) -> Result<Vec<EvalRunId>, StoreError> {
        let conn = self.conn();
        let mut statement = conn
            .prepare_cached("SELECT id FROM eval_runs ORDER BY id")
            .map_err(|source| self.sqlite_error("listing evaluation runs", source))?;
        let ids = statement
            .query_map([], |row| row.get::<_, i64>(0).map(EvalRunId))
            .and_then(Iterator::collect)
            .map_err(|source| self.sqlite_error("listing evaluation runs", source))?;
        Ok(ids)
    }

    /// The stored evaluation under `key`, if any (of any status: check
    /// [`EvalStatus::is_final`] before reusing it).
    pub fn lookup(&self, key: &EvalKey) -> Result<Option<EvalRecord>, StoreError> {
        self.get(&key.hash())
    }

    /// The stored evaluation with hash `key_hash`, if any.
    pub fn get(&self, key_hash: &EvalKeyHash) -> Result<Option<EvalRecord>, StoreError> {
        let conn = self.conn();
        let raw = conn
            .query_row(
                &format!("SELECT {EVAL_COLUMNS} FROM evaluations e WHERE e.key_hash = ?1"),
                params![key_hash.as_str()],
                RawRecord::read,
            )
            .optional()
            .map_err(|source| self.sqlite_error("reading an evaluation", source))?;
        drop(conn);
        raw.map(|raw| raw.into_record(&self.shared.path))
            .transpose()
    }

    /// Stores an evaluation that belongs to no run.
    pub fn record(&self, key: &EvalKey, result: &EvalResult) -> Result<Recorded, StoreError> {
        self.write_evaluation(None, key, result)
    }

    /// Stores an evaluation computed for `run` and links it to the run, in
    /// one transaction. Repeating it is harmless: a final result already
    /// stored is kept (and [`Recorded::AlreadyPresent`] says so), an `error`
    /// result is replaced.
    pub fn record_in_run(
        &self,
        run: EvalRunId,
        key: &EvalKey,
        result: &EvalResult,
    ) -> Result<Recorded, StoreError> {
        self.write_evaluation(Some(run), key, result)
    }

    /// Links an evaluation found in the cache to `run`, which reuses it.
    pub fn link_cached(&self, run: EvalRunId, key_hash: &EvalKeyHash) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = self.begin(&mut conn)?;
        self.check_run(&tx, run)?;
        let exists = tx
            .query_row(
                "SELECT 1 FROM evaluations WHERE key_hash = ?1",
                params![key_hash.as_str()],
                |_| Ok(()),
            )
            .optional()
            .map_err(|source| self.sqlite_error("finding an evaluation", source))?
            .is_some();
        if !exists {
            return Err(StoreError::UnknownEvaluation {
                path: self.shared.path.clone(),
                run: run.0,
                key: key_hash.to_string(),
            });
        }
        self.add_member(&tx, run, key_hash, false)?;
        tx.commit()
            .map_err(|source| self.sqlite_error("committing a run link", source))
    }

    /// The evaluations `run` used, ordered by task, seed and key hash.
    pub fn run_evaluations(&self, run: EvalRunId) -> Result<Vec<EvalRecord>, StoreError> {
        Ok(self
            .run_members(run)?
            .into_iter()
            .map(|(record, _)| record)
            .collect())
    }

    fn write_evaluation(
        &self,
        run: Option<EvalRunId>,
        key: &EvalKey,
        result: &EvalResult,
    ) -> Result<Recorded, StoreError> {
        self.validate(result)?;
        let key_hash = key.hash();
        let trajectory = match &result.trajectory {
            None => None,
            Some(path) => Some(path.to_str().ok_or_else(|| StoreError::InvalidInput {
                path: self.shared.path.clone(),
                what: "the trajectory path",
                reason: format!("{} is not UTF-8", path.display()),
            })?),
        };
        let mut conn = self.conn();
        let tx = self.begin(&mut conn)?;
        if let Some(run) = run {
            self.check_run(&tx, run)?;
        }
        let stored: Option<String> = tx
            .query_row(
                "SELECT status FROM evaluations WHERE key_hash = ?1",
                params![key_hash.as_str()],
                |row| row.get(0),
            )
            .optional()
            .map_err(|source| self.sqlite_error("finding an evaluation", source))?;
        let outcome = match stored.as_deref().map(EvalStatus::parse) {
            None => Recorded::Inserted,
            Some(Some(EvalStatus::Error)) => Recorded::ReplacedError,
            Some(Some(_)) => Recorded::AlreadyPresent,
            Some(None) => {
                return Err(StoreError::CorruptRecord {
                    path: self.shared.path.clone(),
                    key: key_hash.to_string(),
                    reason: format!("unknown status {:?}", stored.unwrap_or_default()),
                });
            }
        };
        if outcome != Recorded::AlreadyPresent {
            tx.execute(
                "INSERT OR REPLACE INTO evaluations (
                     key_hash, program_hash, suite, suite_version, task, seed, models_json,
                     sampling_hash, host_api_version, status, success, score, reason,
                     tokens_in, tokens_out, cost, duration_ms, trajectory, finished_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                         ?16, ?17, ?18, ?19)",
                params![
                    key_hash.as_str(),
                    key.program_hash,
                    key.suite,
                    key.suite_version,
                    key.task,
                    seed_to_sql(key.seed),
                    crate::canonical_json(&serde_json::json!(key.models)),
                    key.sampling_hash,
                    i64::from(key.host_api_version),
                    result.status.as_str(),
                    result.success,
                    result.score,
                    result.reason,
                    count_to_sql(result.tokens_in),
                    count_to_sql(result.tokens_out),
                    result.cost,
                    count_to_sql(result.duration_ms),
                    trajectory,
                    result.finished_at_ms,
                ],
            )
            .map_err(|source| self.sqlite_error("storing an evaluation", source))?;
        }
        if let Some(run) = run {
            self.add_member(&tx, run, &key_hash, outcome != Recorded::AlreadyPresent)?;
        }
        tx.commit()
            .map_err(|source| self.sqlite_error("committing an evaluation", source))?;
        Ok(outcome)
    }

    fn validate(&self, result: &EvalResult) -> Result<(), StoreError> {
        let invalid = |reason: String| StoreError::InvalidInput {
            path: self.shared.path.clone(),
            what: "the evaluation result",
            reason,
        };
        if !result.score.is_finite() {
            return Err(invalid(format!("score {} is not finite", result.score)));
        }
        if !result.cost.is_finite() || result.cost < 0.0 {
            return Err(invalid(format!(
                "cost {} is not a finite number ≥ 0",
                result.cost
            )));
        }
        if result.success && result.status != EvalStatus::Ok {
            return Err(invalid(format!(
                "a `{}` evaluation cannot be a success",
                result.status.as_str()
            )));
        }
        Ok(())
    }

    /// The evaluations of `run`, each with whether the run computed it
    /// (false: reused from the cache).
    pub(crate) fn run_members(
        &self,
        run: EvalRunId,
    ) -> Result<Vec<(EvalRecord, bool)>, StoreError> {
        let conn = self.conn();
        let exists = conn
            .query_row(
                "SELECT 1 FROM eval_runs WHERE id = ?1",
                params![run.0],
                |_| Ok(()),
            )
            .optional()
            .map_err(|source| self.sqlite_error("finding an evaluation run", source))?
            .is_some();
        if !exists {
            return Err(self.unknown_run(run));
        }
        let mut statement = conn
            .prepare_cached(&format!(
                "SELECT {EVAL_COLUMNS}, m.computed FROM eval_run_members m \
                 JOIN evaluations e ON e.key_hash = m.key_hash \
                 WHERE m.run_id = ?1 ORDER BY e.task, e.seed, e.key_hash"
            ))
            .map_err(|source| self.sqlite_error("listing a run's evaluations", source))?;
        let raws = statement
            .query_map(params![run.0], |row| {
                Ok((RawRecord::read(row)?, row.get::<_, bool>(RAW_COLUMNS)?))
            })
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|source| self.sqlite_error("listing a run's evaluations", source))?;
        drop(statement);
        drop(conn);
        raws.into_iter()
            .map(|(raw, computed)| Ok((raw.into_record(&self.shared.path)?, computed)))
            .collect()
    }

    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent:
        // an unfinished transaction rolls back when it is dropped.
        self.shared
            .conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn sqlite_error(
        &self,
        operation: &'static str,
        source: rusqlite::Error,
    ) -> StoreError {
        if source.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
            return StoreError::Full {
                path: self.shared.path.clone(),
                operation,
            };
        }
        StoreError::Sqlite {
            path: self.shared.path.clone(),
            operation,
            source,
        }
    }

    /// Caps the file at `pages` pages for this connection (SQLite's
    /// `max_page_count`); writes past it fail as [`StoreError::Full`], as on
    /// a full disk. Returns the cap in force (never below the pages in use).
    pub fn limit_pages(&self, pages: u64) -> Result<u64, StoreError> {
        let conn = self.conn();
        conn.pragma_update(None, "max_page_count", count_to_sql(pages))
            .map_err(|source| self.sqlite_error("limiting its size", source))?;
        let cap: i64 = conn
            .pragma_query_value(None, "max_page_count", |row| row.get(0))
            .map_err(|source| self.sqlite_error("reading its size limit", source))?;
        Ok(u64::try_from(cap).unwrap_or(0))
    }

    /// Pages the file holds now.
    pub fn page_count(&self) -> Result<u64, StoreError> {
        let count: i64 = self
            .conn()
            .pragma_query_value(None, "page_count", |row| row.get(0))
            .map_err(|source| self.sqlite_error("counting its pages", source))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    pub(crate) fn unknown_run(&self, run: EvalRunId) -> StoreError {
        StoreError::UnknownRun {
            path: self.shared.path.clone(),
            run: run.0,
        }
    }

    pub(crate) fn begin<'c>(
        &self,
        conn: &'c mut Connection,
    ) -> Result<Transaction<'c>, StoreError> {
        conn.transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|source| self.sqlite_error("starting a transaction", source))
    }

    pub(crate) fn check_run(&self, tx: &Transaction<'_>, run: EvalRunId) -> Result<(), StoreError> {
        let exists = tx
            .query_row(
                "SELECT 1 FROM eval_runs WHERE id = ?1",
                params![run.0],
                |_| Ok(()),
            )
            .optional()
            .map_err(|source| self.sqlite_error("finding an evaluation run", source))?
            .is_some();
        if exists {
            Ok(())
        } else {
            Err(self.unknown_run(run))
        }
    }

    fn add_member(
        &self,
        tx: &Transaction<'_>,
        run: EvalRunId,
        key_hash: &EvalKeyHash,
        computed: bool,
    ) -> Result<(), StoreError> {
        tx.execute(
            "INSERT OR IGNORE INTO eval_run_members (run_id, key_hash, computed, added_at_ms) \
             VALUES (?1, ?2, ?3, ?4)",
            params![run.0, key_hash.as_str(), computed, now_ms()],
        )
        .map_err(|source| self.sqlite_error("linking an evaluation to its run", source))?;
        Ok(())
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = self.begin(&mut conn)?;
        let read = |tx: &Transaction<'_>, name: &str| -> rusqlite::Result<i64> {
            tx.pragma_query_value(None, name, |row| row.get(0))
        };
        let application_id = read(&tx, "application_id")
            .map_err(|source| self.sqlite_error("reading the application id", source))?;
        let version = read(&tx, "user_version")
            .map_err(|source| self.sqlite_error("reading the schema version", source))?;
        if application_id != APPLICATION_ID {
            let tables: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'",
                    [],
                    |row| row.get(0),
                )
                .map_err(|source| self.sqlite_error("inspecting the database", source))?;
            // Only a brand-new, empty file becomes a store.
            if application_id != 0 || tables > 0 {
                return Err(StoreError::NotAStore {
                    path: self.shared.path.clone(),
                    found: application_id,
                });
            }
            tx.pragma_update(None, "application_id", APPLICATION_ID)
                .map_err(|source| self.sqlite_error("writing the application id", source))?;
        }
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                path: self.shared.path.clone(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        let first_step = usize::try_from(version).unwrap_or(0);
        for (step, sql) in MIGRATIONS.iter().enumerate().skip(first_step) {
            tx.execute_batch(sql)
                .map_err(|source| self.sqlite_error("migrating the schema", source))?;
            tracing::debug!(path = %self.shared.path.display(), to = step + 1, "migrated the results store");
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(|source| self.sqlite_error("writing the schema version", source))?;
        tx.commit()
            .map_err(|source| self.sqlite_error("committing the schema", source))
    }
}

/// The columns [`RawRecord::read`] reads, in order, from `evaluations e`.
const EVAL_COLUMNS: &str = "e.key_hash, e.program_hash, e.suite, e.suite_version, e.task, \
     e.seed, e.models_json, e.sampling_hash, e.host_api_version, e.status, e.success, e.score, \
     e.reason, e.tokens_in, e.tokens_out, e.cost, e.duration_ms, e.trajectory, e.finished_at_ms";
const RAW_COLUMNS: usize = 19;

/// A row of `evaluations` as stored, before it is checked.
struct RawRecord {
    key_hash: String,
    program_hash: String,
    suite: String,
    suite_version: String,
    task: String,
    seed: i64,
    models_json: String,
    sampling_hash: String,
    host_api_version: i64,
    status: String,
    success: bool,
    score: f64,
    reason: String,
    tokens_in: i64,
    tokens_out: i64,
    cost: f64,
    duration_ms: i64,
    trajectory: Option<String>,
    finished_at_ms: i64,
}

impl RawRecord {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            key_hash: row.get(0)?,
            program_hash: row.get(1)?,
            suite: row.get(2)?,
            suite_version: row.get(3)?,
            task: row.get(4)?,
            seed: row.get(5)?,
            models_json: row.get(6)?,
            sampling_hash: row.get(7)?,
            host_api_version: row.get(8)?,
            status: row.get(9)?,
            success: row.get(10)?,
            score: row.get(11)?,
            reason: row.get(12)?,
            tokens_in: row.get(13)?,
            tokens_out: row.get(14)?,
            cost: row.get(15)?,
            duration_ms: row.get(16)?,
            trajectory: row.get(17)?,
            finished_at_ms: row.get(18)?,
        })
    }

    /// Checks the row: its fields must parse and hash back to its key.
    fn into_record(self, path: &Path) -> Result<EvalRecord, StoreError> {
        let corrupt = |reason: String| StoreError::CorruptRecord {
            path: path.to_path_buf(),
            key: self.key_hash.clone(),
            reason,
        };
        let models = serde_json::from_str(&self.models_json)
            .map_err(|e| corrupt(format!("models are not a JSON object of strings: {e}")))?;
        let host_api_version = u32::try_from(self.host_api_version)
            .map_err(|_| corrupt(format!("host API version {}", self.host_api_version)))?;
        let status = EvalStatus::parse(&self.status)
            .ok_or_else(|| corrupt(format!("unknown status {:?}", self.status)))?;
        let key = EvalKey {
            program_hash: self.program_hash,
            suite: self.suite,
            suite_version: self.suite_version,
            task: self.task,
            seed: seed_from_sql(self.seed),
            models,
            sampling_hash: self.sampling_hash,
            host_api_version,
        };
        let key_hash = key.hash();
        if key_hash.as_str() != self.key_hash {
            return Err(corrupt(format!(
                "its fields hash to {key_hash}, not to its key"
            )));
        }
        Ok(EvalRecord {
            key,
            key_hash,
            result: EvalResult {
                status,
                success: self.success,
                score: self.score,
                reason: self.reason,
                tokens_in: count_from_sql(self.tokens_in),
                tokens_out: count_from_sql(self.tokens_out),
                cost: self.cost,
                duration_ms: count_from_sql(self.duration_ms),
                trajectory: self.trajectory.map(PathBuf::from),
                finished_at_ms: self.finished_at_ms,
            },
        })
    }
}

fn configure(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    enter_wal(conn)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// Puts the database in WAL mode. Two processes opening a new file at once
/// can get `SQLITE_BUSY` here at once, busy timeout or not (the switch takes
/// an exclusive lock without waiting), so it is tried again for as long as
/// the busy timeout allows.
pub(crate) fn enter_wal(conn: &Connection) -> rusqlite::Result<()> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        // `journal_mode` answers with the mode now in force.
        match conn.query_row("PRAGMA journal_mode = WAL", [], |row| {
            row.get::<_, String>(0)
        }) {
            Ok(_) => return Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Seeds are any `u64`; SQLite integers are `i64`: stored bit for bit.
pub(crate) fn seed_to_sql(seed: u64) -> i64 {
    i64::from_ne_bytes(seed.to_ne_bytes())
}

pub(crate) fn seed_from_sql(stored: i64) -> u64 {
    u64::from_ne_bytes(stored.to_ne_bytes())
}

/// Counts beyond `i64::MAX` cannot happen in practice; they saturate.
pub(crate) fn count_to_sql(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

pub(crate) fn count_from_sql(stored: i64) -> u64 {
    u64::try_from(stored).unwrap_or(0)
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_round_trip_through_sqlite_integers() {
        for seed in [0, 1, u64::MAX, 1 << 63, (1 << 53) - 1] {
            assert_eq!(seed_from_sql(seed_to_sql(seed)), seed);
        }
    }

    #[test]
    fn statuses_round_trip() {
        for status in [EvalStatus::Ok, EvalStatus::Unsupported, EvalStatus::Error] {
            assert_eq!(EvalStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(EvalStatus::parse("fine"), None);
        assert!(!EvalStatus::Error.is_final());
        assert!(EvalStatus::Unsupported.is_final());
    }

    #[test]
    fn refuses_other_sqlite_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("other.sqlite");
        let conn = Connection::open(&path).expect("raw open");
        conn.execute_batch("CREATE TABLE responses (key TEXT PRIMARY KEY);")
            .expect("create");
        drop(conn);
        let err = ResultsStore::open(&path).expect_err("not a store");
        assert!(
            matches!(err, StoreError::NotAStore { found: 0, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("other.sqlite"), "{err}");
    }

    #[test]
    fn refuses_newer_schemas() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("results.sqlite");
        drop(ResultsStore::open(&path).expect("create"));
        let conn = Connection::open(&path).expect("raw open");
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("bump");
        drop(conn);
        let err = ResultsStore::open(&path).expect_err("newer schema");
        assert!(
            matches!(err, StoreError::SchemaTooNew { found, .. } if found == SCHEMA_VERSION + 1)
        );
        assert!(err.to_string().contains("results.sqlite"), "{err}");
    }
}
