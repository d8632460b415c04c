//! Binds role names (`task`, `meta`, `judge`, …) to metered models. A run's
//! configuration decides the binding; programs only ever name roles.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::accounting::{Budget, Ledger, MeteredModel, PriceTable};
use crate::{ChatModel, LlmError};

/// The models of a run, by role, all charged to one [`Ledger`].
#[derive(Clone, Default)]
pub struct ModelRouter {
    roles: BTreeMap<String, Arc<MeteredModel>>,
    ledger: Ledger,
    prices: Arc<PriceTable>,
}

impl ModelRouter {
    pub fn new(prices: PriceTable) -> Self {
        Self {
            roles: BTreeMap::new(),
            ledger: Ledger::new(),
            prices: Arc::new(prices),
        }
    }

    /// Binds `role` to `model` under `budget`, replacing any earlier binding.
    pub fn bind(&mut self, role: &str, model: Arc<dyn ChatModel>, budget: Budget) {
        let metered = MeteredModel::new(
            model,
            role,
            budget,
            self.prices.clone(),
            self.ledger.clone(),
        );
        self.roles.insert(role.to_string(), Arc::new(metered));
    }

    pub fn model(&self, role: &str) -> Result<Arc<MeteredModel>, LlmError> {
        self.roles
            .get(role)
            .cloned()
            .ok_or_else(|| LlmError::UnknownRole(role.to_string()))
    }

    pub fn roles(&self) -> impl Iterator<Item = &str> {
        self.roles.keys().map(String::as_str)
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The prices calls are charged at.
    pub fn prices(&self) -> &PriceTable {
        &self.prices
    }
}
