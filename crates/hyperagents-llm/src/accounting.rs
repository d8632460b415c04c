//! Token, cost and latency accounting, and per-role budgets that stop work
//! gracefully: once a role's budget is spent, its next call fails with
//! [`LlmError::BudgetExhausted`] before anything is sent, and callers wind
//! down instead of crashing.
//!
//! A [`Ledger`] is the account of one run: spend per role, the run's wall
//! clock (earlier sessions of a resumed run included, see
//! [`Ledger::restore_wall_secs`]) and whether someone asked the run to stop
//! (a signal). Callers persist it between sessions; this crate knows no
//! storage.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// Wall-clock seconds the run has been going, counting every earlier
    /// session of a resumed run ([`Ledger::wall_secs`]): the role's calls
    /// are refused once the run is this old, whatever the role itself did.
    pub max_wall_secs: Option<f64>,
}

/// What one role has spent so far.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Spend {
    pub calls: u64,
    pub cache_hits: u64,
    pub usage: Usage,
    pub dollars: f64,
    /// Seconds this role's calls took (summed latency; concurrent calls
    /// overlap, so this is not the run's wall time).
    pub latency_secs: f64,
}

impl Spend {
    /// The first limit of `budget` this spend, in a run `wall_secs` old, has
    /// reached, if any.
    fn exhausted(&self, role: &str, budget: &Budget, wall_secs: f64) -> Option<LlmError> {
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
        if let Some(limit) = budget.max_wall_secs.filter(|&l| wall_secs >= l) {
            return Some(over(
                "wall time",
                format!("{wall_secs:.1}s"),
                format!("{limit:.1}s"),
            ));
        }
        None
    }
}

/// The account of one run, shared by every metered model of it: spend per
/// role, the run's wall clock, and a stop request.
#[derive(Debug, Clone)]
pub struct Ledger {
    inner: Arc<Mutex<LedgerState>>,
    /// When this session of the run began (the ledger was made).
    session_started: Instant,
    /// `Some(reason)` once the run was asked to stop.
    stop: Arc<tokio::sync::watch::Sender<Option<String>>>,
}

#[derive(Debug, Default)]
struct LedgerState {
    roles: BTreeMap<String, Spend>,
    /// Wall-clock seconds earlier sessions of the run took.
    earlier_wall_secs: f64,
}

impl Default for Ledger {
    fn default() -> Self {
        Self {
            inner: Arc::default(),
            session_started: Instant::now(),
            stop: Arc::new(tokio::sync::watch::Sender::new(None)),
        }
    }
}

impl Ledger {
    pub fn new() -> Self {
        Self::default()
    }

    /// A snapshot of every role's spend.
    pub fn snapshot(&self) -> BTreeMap<String, Spend> {
        self.lock().roles.clone()
    }

    pub fn spend(&self, role: &str) -> Spend {
        self.lock().roles.get(role).copied().unwrap_or_default()
    }

    /// Restores spend recorded earlier (resuming a run).
    pub fn restore(&self, role: &str, spend: Spend) {
        self.lock().roles.insert(role.to_string(), spend);
    }

    /// The run's wall-clock age in seconds: earlier sessions (restored with
    /// [`Ledger::restore_wall_secs`]) plus this one, which began when the
    /// ledger was made.
    pub fn wall_secs(&self) -> f64 {
        self.lock().earlier_wall_secs + self.session_started.elapsed().as_secs_f64()
    }

    /// Restores the wall-clock seconds earlier sessions of the run took, as
    /// [`Ledger::wall_secs`] reported when they last saved it.
    pub fn restore_wall_secs(&self, earlier: f64) {
        // A negative or non-finite value can only come from a damaged record.
        self.lock().earlier_wall_secs = if earlier.is_finite() {
            earlier.max(0.0)
        } else {
            0.0
        };
    }

    /// Asks the run to stop at its next safe point (a signal arrived). The
    /// first reason given is kept.
    pub fn request_stop(&self, reason: impl Into<String>) {
        let reason = reason.into();
        self.stop.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(reason);
            true
        });
    }

    /// Why the run was asked to stop, once it was.
    pub fn stop_requested(&self) -> Option<String> {
        self.stop.borrow().clone()
    }

    /// Completes, with the reason, once the run is asked to stop
    /// (immediately if it already was).
    pub async fn stopped(&self) -> String {
        let mut requests = self.stop.subscribe();
        // Owned at once: the channel's read guard must not live across an await.
        let reason = requests
            .wait_for(Option::is_some)
            .await
            .map(|reason| reason.clone().unwrap_or_default());
        match reason {
            Ok(reason) => reason,
            // The sender lives in this ledger, so it cannot close while we
            // wait; if it somehow did, no stop can come any more.
            Err(_) => std::future::pending().await,
        }
    }

    fn record(&self, role: &str, response: &ChatResponse, dollars: f64) {
        let mut state = self.lock();
        let spend = state.roles.entry(role.to_string()).or_default();
        spend.calls += 1;
        if response.cache_hit {
            // A replayed answer costs nothing and took no provider time.
            spend.cache_hits += 1;
            return;
        }
        spend.usage += response.usage;
        spend.dollars += dollars;
        spend.latency_secs += response.latency.as_secs_f64();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LedgerState> {
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

    /// The run-level budget error this role's next call would fail with,
    /// if its budget is spent: callers check it at their safe points.
    pub fn budget_spent(&self) -> Option<LlmError> {
        self.ledger
            .spend(&self.role)
            .exhausted(&self.role, &self.budget, self.ledger.wall_secs())
    }

    fn check_budget(&self) -> Result<(), LlmError> {
        match self.budget_spent() {
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

        // Wall time is the run's age, not the calls' summed latency: three
        // calls of 250 ms each stay within half a second of run time…
        let budget = Budget {
            max_wall_secs: Some(30.0),
            ..Budget::default()
        };
        let model = MeteredModel::new(fixed(), "judge", budget, Arc::default(), ledger.clone());
        for _ in 0..3 {
            model
                .chat(&request)
                .await
                .expect("within the run's wall time");
        }
        assert!((ledger.spend("judge").latency_secs - 0.75).abs() < 1e-9);
        assert!(model.budget_spent().is_none());
        // …and earlier sessions of a resumed run count.
        ledger.restore_wall_secs(31.0);
        assert!(ledger.wall_secs() >= 31.0);
        let err = model.chat(&request).await.expect_err("wall time spent");
        assert!(matches!(
            err,
            LlmError::BudgetExhausted {
                resource: "wall time",
                ..
            }
        ));
        assert!(model.budget_spent().is_some());
    }

    #[tokio::test]
    async fn a_stop_request_is_kept_and_wakes_waiters() {
        let ledger = Ledger::new();
        assert_eq!(ledger.stop_requested(), None);
        let waiter = tokio::spawn({
            let ledger = ledger.clone();
            async move { ledger.stopped().await }
        });
        tokio::task::yield_now().await;
        ledger.request_stop("SIGINT");
        ledger.request_stop("SIGTERM");
        assert_eq!(waiter.await.expect("joins"), "SIGINT");
        assert_eq!(ledger.stop_requested().as_deref(), Some("SIGINT"));
        // Already stopped: completes at once.
        assert_eq!(ledger.stopped().await, "SIGINT");
    }
}
