//! Run ledgers: what a run's models spent per role (calls, tokens, dollars,
//! summed latency) and the wall-clock seconds the run has been going, kept
//! so that run-level budgets hold across sessions of a resumed run.
//!
//! A ledger is named by a *scope*, free text the caller chooses (the binary
//! uses `evolution:<run id>` and `eval:<eval run id>`). Saving replaces the
//! scope's whole ledger in one transaction: a ledger only grows, so the
//! latest save is the truth, and a crash between saves loses only what was
//! spent since the last one.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, params};

use crate::store::{count_from_sql, count_to_sql, now_ms};
use crate::{ResultsStore, StoreError};

/// What one role's calls spent.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RoleSpend {
    pub calls: u64,
    pub cache_hits: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub dollars: f64,
    /// Seconds the role's calls took, summed (not wall time).
    pub latency_secs: f64,
}

/// A run's ledger as stored.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoredLedger {
    /// Wall-clock seconds the run has been going, over all its sessions.
    pub wall_secs: f64,
    pub roles: BTreeMap<String, RoleSpend>,
}

impl ResultsStore {
    /// Stores `ledger` as the whole ledger of `scope`, replacing what was
    /// stored before, in one transaction.
    pub fn save_ledger(&self, scope: &str, ledger: &StoredLedger) -> Result<(), StoreError> {
        self.validate_ledger(ledger)?;
        let mut conn = self.conn();
        let tx = self.begin(&mut conn)?;
        tx.execute(
            "INSERT INTO ledgers (scope, wall_secs, updated_at_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (scope) DO UPDATE SET
                 wall_secs = excluded.wall_secs, updated_at_ms = excluded.updated_at_ms",
            params![scope, ledger.wall_secs, now_ms()],
        )
        .map_err(|source| self.sqlite_error("storing a ledger", source))?;
        tx.execute("DELETE FROM ledger_roles WHERE scope = ?1", params![scope])
            .map_err(|source| self.sqlite_error("storing a ledger", source))?;
        for (role, spend) in &ledger.roles {
            tx.execute(
                "INSERT INTO ledger_roles (scope, role, calls, cache_hits, input_tokens,
                     output_tokens, cached_input_tokens, dollars, latency_secs)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    scope,
                    role,
                    count_to_sql(spend.calls),
                    count_to_sql(spend.cache_hits),
                    count_to_sql(spend.input_tokens),
                    count_to_sql(spend.output_tokens),
                    count_to_sql(spend.cached_input_tokens),
                    spend.dollars,
                    spend.latency_secs,
                ],
            )
            .map_err(|source| self.sqlite_error("storing a ledger's role", source))?;
        }
        tx.commit()
            .map_err(|source| self.sqlite_error("committing a ledger", source))
    }

    /// The ledger stored for `scope`, if any.
    pub fn ledger(&self, scope: &str) -> Result<Option<StoredLedger>, StoreError> {
        let conn = self.conn();
        let wall_secs: Option<f64> = conn
            .query_row(
                "SELECT wall_secs FROM ledgers WHERE scope = ?1",
                params![scope],
                |row| row.get(0),
            )
            .optional()
            .map_err(|source| self.sqlite_error("reading a ledger", source))?;
        let Some(wall_secs) = wall_secs else {
            return Ok(None);
        };
        let mut statement = conn
            .prepare_cached(
                "SELECT role, calls, cache_hits, input_tokens, output_tokens,
                     cached_input_tokens, dollars, latency_secs
                 FROM ledger_roles WHERE scope = ?1 ORDER BY role",
            )
            .map_err(|source| self.sqlite_error("reading a ledger", source))?;
        let roles = statement
            .query_map(params![scope], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    RoleSpend {
                        calls: count_from_sql(row.get(1)?),
                        cache_hits: count_from_sql(row.get(2)?),
                        input_tokens: count_from_sql(row.get(3)?),
                        output_tokens: count_from_sql(row.get(4)?),
                        cached_input_tokens: count_from_sql(row.get(5)?),
                        dollars: row.get(6)?,
                        latency_secs: row.get(7)?,
                    },
                ))
            })
            .and_then(Iterator::collect::<Result<BTreeMap<_, _>, _>>)
            .map_err(|source| self.sqlite_error("reading a ledger", source))?;
        Ok(Some(StoredLedger { wall_secs, roles }))
    }

    fn validate_ledger(&self, ledger: &StoredLedger) -> Result<(), StoreError> {
        let invalid = |reason: String| StoreError::InvalidInput {
            path: self.path().to_path_buf(),
            what: "the ledger",
            reason,
        };
        let amount = |x: f64| x.is_finite() && x >= 0.0;
        if !amount(ledger.wall_secs) {
            return Err(invalid(format!(
                "wall time {} is not a finite number ≥ 0",
                ledger.wall_secs
            )));
        }
        for (role, spend) in &ledger.roles {
            if !amount(spend.dollars) || !amount(spend.latency_secs) {
                return Err(invalid(format!(
                    "role `{role}`: dollars {} and latency {} must be finite numbers ≥ 0",
                    spend.dollars, spend.latency_secs
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spend(calls: u64, dollars: f64) -> RoleSpend {
        RoleSpend {
            calls,
            cache_hits: 1,
            input_tokens: 100 * calls,
            output_tokens: 10 * calls,
            cached_input_tokens: 5,
            dollars,
            latency_secs: 0.5 * calls as f64,
        }
    }

    #[test]
    fn a_saved_ledger_reads_back_and_a_later_save_replaces_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("results.sqlite");
        let store = ResultsStore::open(&path).expect("opens");
        assert_eq!(store.ledger("evolution:r1").expect("reads"), None);
        let first = StoredLedger {
            wall_secs: 12.5,
            roles: BTreeMap::from([("task".into(), spend(3, 0.25))]),
        };
        store.save_ledger("evolution:r1", &first).expect("saves");
        let later = StoredLedger {
            wall_secs: 40.0,
            roles: BTreeMap::from([
                ("meta".into(), spend(1, 1.0)),
                ("task".into(), spend(7, 0.75)),
            ]),
        };
        store
            .save_ledger("evolution:r1", &later)
            .expect("saves again");
        store
            .save_ledger("eval:3", &StoredLedger::default())
            .expect("another scope");
        drop(store);

        let store = ResultsStore::open(&path).expect("reopens");
        assert_eq!(store.ledger("evolution:r1").expect("reads"), Some(later));
        assert_eq!(
            store.ledger("eval:3").expect("reads"),
            Some(StoredLedger::default())
        );
    }

    #[test]
    fn refuses_amounts_that_are_not_finite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ResultsStore::open(dir.path().join("results.sqlite")).expect("opens");
        let bad = StoredLedger {
            wall_secs: f64::NAN,
            roles: BTreeMap::new(),
        };
        let err = store.save_ledger("s", &bad).expect_err("NaN wall time");
        assert!(matches!(err, StoreError::InvalidInput { .. }), "{err}");
        let bad = StoredLedger {
            wall_secs: 1.0,
            roles: BTreeMap::from([("task".into(), spend(1, -1.0))]),
        };
        assert!(store.save_ledger("s", &bad).is_err());
        assert_eq!(
            store.ledger("s").expect("reads"),
            None,
            "nothing half-saved"
        );
    }
}
