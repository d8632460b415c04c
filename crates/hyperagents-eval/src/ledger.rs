//! A run's ledger kept in the results store: what earlier sessions of the
//! run spent (per role) and how long they took is restored before the run's
//! first call, so run-level budgets — tokens, dollars, wall time — hold
//! across `resume`; the ledger is saved as the run goes.

use hyperagents_llm::Usage;
use hyperagents_llm::accounting::{Ledger, Spend};
use hyperagents_store::{EvalRunId, ResultsStore, RoleSpend, StoreError, StoredLedger};

/// The ledger scope of evolution run `run`.
pub fn evolution_scope(run: &str) -> String {
    format!("evolution:{run}")
}

/// The ledger scope of evaluation run `run`.
pub fn eval_scope(run: EvalRunId) -> String {
    format!("eval:{run}")
}

/// Saves a run's [`Ledger`] under its scope in the results store.
#[derive(Clone)]
pub struct LedgerKeeper {
    store: ResultsStore,
    scope: String,
    ledger: Ledger,
}

impl LedgerKeeper {
    /// Restores into `ledger` what earlier sessions stored under `scope` —
    /// each role's spend and the run's wall time — and returns the keeper
    /// that saves it. Call it before the run's first model call: restored
    /// spend replaces what the ledger holds.
    pub fn resume(
        store: ResultsStore,
        scope: impl Into<String>,
        ledger: Ledger,
    ) -> Result<Self, StoreError> {
        let scope = scope.into();
        if let Some(stored) = store.ledger(&scope)? {
            for (role, spend) in &stored.roles {
                ledger.restore(role, spend_from_stored(spend));
            }
            ledger.restore_wall_secs(stored.wall_secs);
        }
        Ok(Self {
            store,
            scope,
            ledger,
        })
    }

    pub fn scope(&self) -> &str {
        &self.scope
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Stores the ledger as it stands now.
    pub fn save(&self) -> Result<(), StoreError> {
        let stored = StoredLedger {
            wall_secs: self.ledger.wall_secs(),
            roles: self
                .ledger
                .snapshot()
                .into_iter()
                .map(|(role, spend)| (role, stored_from_spend(&spend)))
                .collect(),
        };
        self.store.save_ledger(&self.scope, &stored)
    }
}

fn stored_from_spend(spend: &Spend) -> RoleSpend {
    RoleSpend {
        calls: spend.calls,
        cache_hits: spend.cache_hits,
        input_tokens: spend.usage.input_tokens,
        output_tokens: spend.usage.output_tokens,
        cached_input_tokens: spend.usage.cached_input_tokens,
        dollars: spend.dollars,
        latency_secs: spend.latency_secs,
    }
}

fn spend_from_stored(stored: &RoleSpend) -> Spend {
    Spend {
        calls: stored.calls,
        cache_hits: stored.cache_hits,
        usage: Usage {
            input_tokens: stored.input_tokens,
            output_tokens: stored.output_tokens,
            cached_input_tokens: stored.cached_input_tokens,
        },
        dollars: stored.dollars,
        latency_secs: stored.latency_secs,
    }
}
