//! The SQLite file behind the cache.
//!
//! One table of entries keyed by [`CacheKey`]. The database runs in WAL mode
//! with a busy timeout so several processes (workers of one run) can share a
//! file; every write is a single `INSERT OR REPLACE`, so a crash never leaves
//! a half-written entry. The methods here block: async callers run them on
//! tokio's blocking pool, as [`crate::CachedModel`] does.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyperagents_llm::{ChatResponse, ModelDescriptor};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::{CacheError, CacheKey};

/// The layout of the database this build reads and writes. A file with any
/// other version is refused rather than misread.
pub const SCHEMA_VERSION: i64 = 1;

/// How long a writer waits for another process's transaction to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A response cache in one SQLite file. Cheap to clone; clones share one
/// connection.
#[derive(Clone)]
pub struct ResponseCache {
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    conn: Mutex<Connection>,
}

/// One stored answer.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheEntry {
    pub key: CacheKey,
    pub provider: String,
    pub model: String,
    pub fingerprint: Option<String>,
    /// The answer as recorded (`cache_hit` is false in the record).
    pub response: ChatResponse,
    /// When it was recorded, in milliseconds since the Unix epoch.
    pub created_at_ms: i64,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("path", &self.shared.path)
            .finish()
    }
}

impl ResponseCache {
    /// Opens the cache at `path`, creating the file, its directory and the
    /// schema as needed.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CacheError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            fs_err::create_dir_all(dir).map_err(|source| CacheError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let mut conn = Connection::open(&path).map_err(|source| CacheError::Open {
            path: path.clone(),
            source,
        })?;
        configure(&mut conn).map_err(|source| CacheError::Open {
            path: path.clone(),
            source,
        })?;
        let cache = Self {
            shared: Arc::new(Shared {
                path,
                conn: Mutex::new(conn),
            }),
        };
        cache.ensure_schema()?;
        Ok(cache)
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The entry stored under `key`, if any. A row that no longer parses as a
    /// [`ChatResponse`] is an error naming the key, never a silent miss.
    pub fn get(&self, key: &CacheKey) -> Result<Option<CacheEntry>, CacheError> {
        type Row = (String, String, Option<String>, String, i64);
        let row: Option<Row> = self
            .conn()
            .query_row(
                "SELECT provider, model, fingerprint, response_json, created_at_ms \
                 FROM responses WHERE key = ?1",
                params![key.as_str()],
                |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                    ))
                },
            )
            .optional()
            .map_err(|source| self.sqlite_error("reading an entry", source))?;
        let Some((provider, model, fingerprint, response_json, created_at_ms)) = row else {
            return Ok(None);
        };
        let response = serde_json::from_str::<ChatResponse>(&response_json).map_err(|err| {
            CacheError::CorruptEntry {
                path: self.shared.path.clone(),
                key: key.to_string(),
                reason: format!("stored response is not a valid chat response: {err}"),
            }
        })?;
        Ok(Some(CacheEntry {
            key: key.clone(),
            provider,
            model,
            fingerprint,
            response,
            created_at_ms,
        }))
    }

    /// Records `response` to `normalized_request` (see
    /// [`crate::normalized_request`]) under `key`, replacing any earlier
    /// entry. The stored response always has `cache_hit = false`.
    pub fn put(
        &self,
        key: &CacheKey,
        descriptor: &ModelDescriptor,
        normalized_request: &str,
        response: &ChatResponse,
    ) -> Result<(), CacheError> {
        let mut record = response.clone();
        record.cache_hit = false;
        record.timing = None;
        let response_json =
            serde_json::to_string(&record).map_err(|source| CacheError::Serialize {
                what: "response",
                source,
            })?;
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO responses \
                 (key, provider, model, fingerprint, request_json, response_json, created_at_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    key.as_str(),
                    descriptor.provider,
                    descriptor.model,
                    descriptor.fingerprint,
                    normalized_request,
                    response_json,
                    now_ms(),
                ],
            )
            .map_err(|source| self.sqlite_error("storing an entry", source))?;
        Ok(())
    }

    /// How many entries the cache holds.
    pub fn len(&self) -> Result<u64, CacheError> {
        self.conn()
            .query_row("SELECT COUNT(*) FROM responses", [], |row| {
                row.get::<_, i64>(0)
            })
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(|source| self.sqlite_error("counting entries", source))
    }

    pub fn is_empty(&self) -> Result<bool, CacheError> {
        Ok(self.len()? == 0)
    }

    fn ensure_schema(&self) -> Result<(), CacheError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|source| self.sqlite_error("starting the schema transaction", source))?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS cache_meta (
                 name  TEXT PRIMARY KEY NOT NULL,
                 value TEXT NOT NULL
             );",
        )
        .map_err(|source| self.sqlite_error("creating the metadata table", source))?;
        let found: Option<String> = tx
            .query_row(
                "SELECT value FROM cache_meta WHERE name = 'schema_version'",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(|source| self.sqlite_error("reading the schema version", source))?;
        match found {
            Some(version) if version == SCHEMA_VERSION.to_string() => {}
            Some(version) => {
                return Err(CacheError::SchemaVersion {
                    path: self.shared.path.clone(),
                    found: version,
                    expected: SCHEMA_VERSION,
                });
            }
            None => {
                tx.execute_batch(
                    "CREATE TABLE responses (
                         key           TEXT PRIMARY KEY NOT NULL,
                         provider      TEXT NOT NULL,
                         model         TEXT NOT NULL,
                         fingerprint   TEXT,
                         request_json  TEXT NOT NULL,
                         response_json TEXT NOT NULL,
                         created_at_ms INTEGER NOT NULL
                     );",
                )
                .map_err(|source| self.sqlite_error("creating the entries table", source))?;
                tx.execute(
                    "INSERT INTO cache_meta (name, value) VALUES ('schema_version', ?1)",
                    params![SCHEMA_VERSION.to_string()],
                )
                .map_err(|source| self.sqlite_error("writing the schema version", source))?;
            }
        }
        tx.commit()
            .map_err(|source| self.sqlite_error("committing the schema", source))
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent:
        // an unfinished transaction rolls back when it is dropped.
        self.shared
            .conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn sqlite_error(&self, operation: &'static str, source: rusqlite::Error) -> CacheError {
        CacheError::Sqlite {
            path: self.shared.path.clone(),
            operation,
            source,
        }
    }
}

fn configure(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // `journal_mode` answers with the mode now in force.
    let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use hyperagents_llm::{Capabilities, ChatRequest, FinishReason, Message, Usage};

    use super::*;
    use crate::normalized_request;

    fn descriptor() -> ModelDescriptor {
        ModelDescriptor {
            provider: "embedded".into(),
            model: "smollm2-135m".into(),
            fingerprint: Some("f00d".into()),
            capabilities: Capabilities::default(),
        }
    }

    fn response(text: &str) -> ChatResponse {
        ChatResponse {
            text: text.into(),
            tool_calls: vec![],
            usage: Usage {
                input_tokens: 3,
                output_tokens: 4,
                cached_input_tokens: 0,
            },
            finish_reason: FinishReason::Stop,
            latency: Duration::from_millis(12),
            cache_hit: true,
            timing: None,
        }
    }

    #[test]
    fn stores_and_reads_back_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = ResponseCache::open(dir.path().join("nested/cache.sqlite")).expect("open");
        assert!(cache.is_empty().expect("count"));
        let request = ChatRequest::new(vec![Message::user("hi")]);
        let normalized = normalized_request(&request).expect("normalize");
        let key = CacheKey::from_normalized(&descriptor(), &normalized);
        assert_eq!(cache.get(&key).expect("get"), None);

        cache
            .put(&key, &descriptor(), &normalized, &response("hello"))
            .expect("put");
        let entry = cache.get(&key).expect("get").expect("present");
        assert_eq!(entry.provider, "embedded");
        assert_eq!(entry.model, "smollm2-135m");
        assert_eq!(entry.fingerprint.as_deref(), Some("f00d"));
        assert_eq!(entry.response.text, "hello");
        assert!(!entry.response.cache_hit, "records never claim to be hits");
        assert!(entry.created_at_ms > 0);

        cache
            .put(&key, &descriptor(), &normalized, &response("again"))
            .expect("replace");
        assert_eq!(cache.len().expect("count"), 1);
        let entry = cache.get(&key).expect("get").expect("present");
        assert_eq!(entry.response.text, "again");
    }

    #[test]
    fn uses_wal_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cache.sqlite");
        let cache = ResponseCache::open(&path).expect("open");
        let mode: String = cache
            .conn()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("pragma");
        assert_eq!(mode, "wal");
    }

    #[test]
    fn refuses_other_schema_versions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cache.sqlite");
        drop(ResponseCache::open(&path).expect("create"));
        let conn = Connection::open(&path).expect("raw open");
        conn.execute(
            "UPDATE cache_meta SET value = '99' WHERE name = 'schema_version'",
            [],
        )
        .expect("update");
        drop(conn);
        let err = ResponseCache::open(&path).expect_err("newer schema");
        assert!(matches!(err, CacheError::SchemaVersion { ref found, .. } if found == "99"));
        assert!(err.to_string().contains("schema version 99"), "{err}");
    }
}
