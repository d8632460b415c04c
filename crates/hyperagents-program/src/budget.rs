//! Episode budgets: what a program asks for, and what it gets.
//!
//! A program's `[budgets]` are requests. The run owns the caps, and the effective budget is the
//! per-field minimum, so an evolved program can shrink its budget (to be cheaper) but never
//! raise it past what the run allows.

use std::time::Duration;

/// The per-episode budget a program requests; `None` asks for the run's cap.
///
/// A *step* is one environment action (`act`, `answer`, `tool`): what users of
/// web and assistant benchmarks call a step. The other host calls that do
/// work (`skill`, `delegate`, `llm`) count as *calls* under their own cap, so a
/// program that splits its work into more skills does not lose actions.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BudgetRequest {
    /// Environment actions in one episode.
    pub max_steps: Option<u32>,
    /// `skill`, `delegate` and `llm` calls in one episode.
    pub max_calls: Option<u32>,
    /// Model tokens (prompt + completion) in one episode.
    pub max_tokens: Option<u64>,
    /// Wall-clock time of one episode.
    pub max_wall: Option<Duration>,
}

/// The run's hard per-episode limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunCaps {
    /// Most environment actions an episode may take.
    pub max_steps: u32,
    /// Most `skill`, `delegate` and `llm` calls an episode may make.
    pub max_calls: u32,
    /// Most tokens an episode may spend.
    pub max_tokens: u64,
    /// Longest an episode may run.
    pub max_wall: Duration,
}

/// The budget an episode actually runs under: never above the run's caps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EffectiveBudget {
    /// Environment actions allowed.
    pub max_steps: u32,
    /// `skill`, `delegate` and `llm` calls allowed.
    pub max_calls: u32,
    /// Tokens allowed.
    pub max_tokens: u64,
    /// Wall-clock time allowed.
    pub max_wall: Duration,
}

impl BudgetRequest {
    /// Takes the minimum of request and cap per field; an absent request gets the cap.
    pub fn cap(&self, caps: &RunCaps) -> EffectiveBudget {
        EffectiveBudget {
            max_steps: self
                .max_steps
                .map_or(caps.max_steps, |s| s.min(caps.max_steps)),
            max_calls: self
                .max_calls
                .map_or(caps.max_calls, |c| c.min(caps.max_calls)),
            max_tokens: self
                .max_tokens
                .map_or(caps.max_tokens, |t| t.min(caps.max_tokens)),
            max_wall: self
                .max_wall
                .map_or(caps.max_wall, |w| w.min(caps.max_wall)),
        }
    }
}

impl EffectiveBudget {
    /// Actions for one task agent (its own and its skills'): its own `max_steps` (if any) can
    /// only lower the episode's.
    pub fn steps_for_agent(&self, agent_max_steps: Option<u32>) -> u32 {
        agent_max_steps.map_or(self.max_steps, |s| s.min(self.max_steps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: RunCaps = RunCaps {
        max_steps: 30,
        max_calls: 90,
        max_tokens: 10_000,
        max_wall: Duration::from_secs(60),
    };

    #[test]
    fn a_program_asking_for_more_gets_the_cap() {
        let greedy = BudgetRequest {
            max_steps: Some(1_000),
            max_calls: Some(10_000),
            max_tokens: Some(u64::MAX),
            max_wall: Some(Duration::from_secs(3_600)),
        };
        let got = greedy.cap(&CAPS);
        assert_eq!(got.max_steps, 30);
        assert_eq!(got.max_calls, 90);
        assert_eq!(got.max_tokens, 10_000);
        assert_eq!(got.max_wall, Duration::from_secs(60));
    }

    #[test]
    fn a_program_asking_for_less_gets_what_it_asked() {
        let frugal = BudgetRequest {
            max_steps: Some(5),
            max_calls: Some(12),
            max_tokens: None,
            max_wall: Some(Duration::from_millis(1_500)),
        };
        let got = frugal.cap(&CAPS);
        assert_eq!(got.max_steps, 5);
        assert_eq!(got.max_calls, 12);
        assert_eq!(got.max_tokens, 10_000);
        assert_eq!(got.max_wall, Duration::from_millis(1_500));
    }

    #[test]
    fn agent_caps_only_lower_the_episode_budget() {
        let budget = BudgetRequest::default().cap(&CAPS);
        assert_eq!(budget.steps_for_agent(Some(10)), 10);
        assert_eq!(budget.steps_for_agent(Some(100)), 30);
        assert_eq!(budget.steps_for_agent(None), 30);
    }
}
