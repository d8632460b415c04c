//! Token, cost and latency accounting, and per-role budgets that stop work
//! gracefully: once a role's budget is spent, its next call fails with
//! [`LlmError::BudgetExhausted`] before anything is sent, and callers wind
//! down instead of crashing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{ChatModel, ChatRequest, ChatResponse, LlmError, ModelDescriptor, Usage};

/// Dollar prices per million tokens for one model.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Price {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

/// Prices keyed by `provider/model` or by `provider/*`; unknown models cost
/// nothing (local models, or a table the user has not filled in).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PriceTable {
    pub prices: BTreeMap<String, Price>,
}

impl PriceTable {
    pub fn price_for(&self, provider: &str, model: &str) -> Price {
        self.prices
            .get(&format!("{provider}/{model}"))
            .or_else(|| self.prices.get(&format!("{provider}/*")))
            .copied()
            .unwrap_or_default()
    }

    pub fn cost(&self, provider: &str, model: &str, usage: Usage) -> f64 {
        let price = self.price_for(provider, model);
        (usage.input_tokens as f64 * price.input_per_mtok
            + usage.output_tokens as f64 * price.output_per_mtok)
            / 1_000_000.0
    }
}

/// Limits for one role; `None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Budget {
    /// Input plus output tokens.
    pub max_tokens: Option<u64>,
    pub max_dollars: Option<f64>,
    /// Seconds spent waiting on this role's model calls (summed latency).
    pub max_wall_secs: Option<f64>,
}

/// What one role has spent so far.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Spend {
    pub calls: u64,
    pub cache_hits: u64,
    pub usage: Usage,
    pub dollars: f64,
    pub wall_secs: f64,
}

impl Spend {
    /// The first limit of `budget` this spend has reached, if any.
    fn exhausted(&self, role: &str, budget: &Budget) -> Option<LlmError> {
        let over =
            |resource: &'static str, used: String, limit: String| LlmError::BudgetExhausted {
                role: role.to_string(),
                resource,
                used,
                limit,
            };
        if let Some(limit) = budget.max_tokens.filter(|&l| self.usage.total() >= l) {
            return Some(over(
                "tokens",
                self.usage.total().to_string(),
                limit.to_string(),
            ));
        }
        if let Some(limit) = budget.max_dollars.filter(|&l| self.dollars >= l) {
            return Some(over(
                "dollars",
                format!("${:.4}", self.dollars),
                format!("${limit:.4}"),
            ));
        }
        if let Some(limit) = budget.max_wall_secs.filter(|&l| self.wall_secs >= l) {
            return Some(over(
                "wall time",
                format!("{:.1}s", self.wall_secs),
                format!("{limit:.1}s"),
            ));
        }
        None
    }
}

/// Spend per role, shared by every metered model of a run.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    inner: Arc<Mutex<BTreeMap<String, Spend>>>,
}

impl Ledger {
    pub fn new() -> Self {
        Self::default()
    }

    /// A snapshot of every role's spend.
    pub fn snapshot(&self) -> BTreeMap<String, Spend> {
        self.lock().clone()
    }

    pub fn spend(&self, role: &str) -> Spend {
        self.lock().get(role).copied().unwrap_or_default()
    }

    /// Restores spend recorded earlier (resuming a run).
    pub fn restore(&self, role: &str, spend: Spend) {
        self.lock().insert(role.to_string(), spend);
    }

    fn record(&self, role: &str, response: &ChatResponse, dollars: f64) {
        let mut map = self.lock();
        let spend = map.entry(role.to_string()).or_default();
        spend.calls += 1;
        if response.cache_hit {
            // A replayed answer costs nothing and took no provider time.
            spend.cache_hits += 1;
            return;
        }
        spend.usage += response.usage;
        spend.dollars += dollars;
        spend.wall_secs += response.latency.as_secs_f64();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Spend>> {
        // Poisoning only means another thread panicked mid-update of plain
        // counters; the data is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A model whose calls are charged to a role in a [`Ledger`] and refused once
/// the role's [`Budget`] is spent.
pub struct MeteredModel {
    inner: Arc<dyn ChatModel>,
    role: String,
    budget: Budget,
    prices: Arc<PriceTable>,
    ledger: Ledger,
}

impl MeteredModel {
    pub fn new(
        inner: Arc<dyn ChatModel>,
        role: impl Into<String>,
        budget: Budget,
        prices: Arc<PriceTable>,
        ledger: Ledger,
    ) -> Self {
        Self {
            inner,
            role: role.into(),
            budget,
            prices,
            ledger,
        }
    }

    pub fn role(&self) -> &str {
        &self.role
    }

    fn check_budget(&self) -> Result<(), LlmError> {
        match self
            .ledger
            .spend(&self.role)
            .exhausted(&self.role, &self.budget)
        {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    fn charge(&self, response: &ChatResponse) {
        let d = self.inner.descriptor();
        let dollars = self.prices.cost(&d.provider, &d.model, response.usage);
        self.ledger.record(&self.role, response, dollars);
    }
}

#[async_trait]
impl ChatModel for MeteredModel {
    fn descriptor(&self) -> &ModelDescriptor {
        self.inner.descriptor()
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        self.check_budget()?;
        let response = self.inner.chat(request).await?;
        self.charge(&response);
        Ok(response)
    }

    async fn chat_streaming(
        &self,
        request: &ChatRequest,
        on_delta: &mut (dyn for<'d> FnMut(&'d str) + Send),
    ) -> Result<ChatResponse, LlmError> {
        self.check_budget()?;
        let response = self.inner.chat_streaming(request, on_delta).await?;
        self.charge(&response);
        Ok(response)
    }
}

/// Formats a duration for people: `850ms`, `12.3s`, `4m05s`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 1.0 {
        format!("{}ms", d.as_millis())
    } else if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Capabilities, FinishReason, Message};

    struct Fixed {
        descriptor: ModelDescriptor,
    }

    #[async_trait]
    impl ChatModel for Fixed {
        fn descriptor(&self) -> &ModelDescriptor {
            &self.descriptor
        }
        async fn chat(&self, _: &ChatRequest) -> Result<ChatResponse, LlmError> {
            Ok(ChatResponse {
                text: "ok".into(),
                tool_calls: vec![],
                usage: Usage {
                    input_tokens: 60,
                    output_tokens: 40,
                    cached_input_tokens: 0,
                },
                finish_reason: FinishReason::Stop,
                latency: Duration::from_millis(250),
                cache_hit: false,
                timing: None,
            })
        }
    }

    fn fixed() -> Arc<dyn ChatModel> {
        Arc::new(Fixed {
            descriptor: ModelDescriptor {
                provider: "openai".into(),
                model: "gpt-x".into(),
                fingerprint: None,
                capabilities: Capabilities::default(),
            },
        })
    }

    #[test]
    fn prices_fall_back_to_provider_wildcard() {
        let mut table = PriceTable::default();
        table.prices.insert(
            "openai/*".into(),
            Price {
                input_per_mtok: 1.0,
                output_per_mtok: 2.0,
            },
        );
        table.prices.insert(
            "openai/big".into(),
            Price {
                input_per_mtok: 10.0,
                output_per_mtok: 20.0,
            },
        );
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 500_000,
            cached_input_tokens: 0,
        };
        assert_eq!(table.cost("openai", "small", usage), 2.0);
        assert_eq!(table.cost("openai", "big", usage), 20.0);
        assert_eq!(table.cost("embedded", "smollm2", usage), 0.0);
    }

    #[tokio::test]
    async fn token_budget_stops_calls_once_spent() {
        let ledger = Ledger::new();
        let budget = Budget {
            max_tokens: Some(250),
            ..Budget::default()
        };
        let model = MeteredModel::new(fixed(), "task", budget, Arc::default(), ledger.clone());
        let request = ChatRequest::new(vec![Message::user("hi")]);
        for _ in 0..3 {
            model.chat(&request).await.expect("within budget");
        }
        let err = model.chat(&request).await.expect_err("budget spent");
        assert!(
            matches!(
                err,
                LlmError::BudgetExhausted {
                    resource: "tokens",
                    ..
                }
            ),
            "{err}"
        );
        let spend = ledger.spend("task");
        assert_eq!(spend.calls, 3);
        assert_eq!(spend.usage.total(), 300);
        // Other roles are unaffected.
        let meta = MeteredModel::new(fixed(), "meta", budget, Arc::default(), ledger.clone());
        meta.chat(&request).await.expect("meta has its own budget");
    }

    #[tokio::test]
    async fn dollar_and_wall_budgets() {
        let mut table = PriceTable::default();
        table.prices.insert(
            "openai/gpt-x".into(),
            Price {
                input_per_mtok: 1000.0,
                output_per_mtok: 1000.0,
            },
        );
        let ledger = Ledger::new();
        let budget = Budget {
            max_dollars: Some(0.15),
            ..Budget::default()
        };
        let model = MeteredModel::new(fixed(), "task", budget, Arc::new(table), ledger.clone());
        let request = ChatRequest::new(vec![Message::user("hi")]);
        model.chat(&request).await.expect("first call");
        model.chat(&request).await.expect("second call");
        let err = model.chat(&request).await.expect_err("dollars spent");
        assert!(matches!(
            err,
            LlmError::BudgetExhausted {
                resource: "dollars",
                ..
            }
        ));
        assert!((ledger.spend("task").dollars - 0.2).abs() < 1e-9);

        let budget = Budget {
            max_wall_secs: Some(0.5),
            ..Budget::default()
        };
        let model = MeteredModel::new(fixed(), "judge", budget, Arc::default(), ledger.clone());
        model.chat(&request).await.expect("1");
        model.chat(&request).await.expect("2");
        let err = model.chat(&request).await.expect_err("wall time spent");
        assert!(matches!(
            err,
            LlmError::BudgetExhausted {
                resource: "wall time",
                ..
            }
        ));
    }
}
