//! Per-episode budgets — actions (steps), other host calls, tokens, wall
//! time — checked at every host call of every level, so a runaway task agent
//! cannot outspend the episode.
//!
//! A *step* is one environment action (`act`, `answer`, `tool`); the host
//! calls that do work without acting (`skill`, `delegate`, `llm`) count as
//! *calls* against their own cap, so how a program divides its work between
//! skills does not change how many actions it gets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyperagents_program::EffectiveBudget;

/// The episode's counters against its effective (capped) budget.
pub struct EpisodeBudget {
    limits: EffectiveBudget,
    started: Instant,
    steps: AtomicU64,
    calls: AtomicU64,
    tokens: AtomicU64,
}

impl EpisodeBudget {
    pub fn new(limits: EffectiveBudget) -> Self {
        Self {
            limits,
            started: Instant::now(),
            steps: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
        }
    }

    pub fn limits(&self) -> &EffectiveBudget {
        &self.limits
    }

    /// Fails once tokens or wall time are spent; the message says which.
    /// Steps and calls are checked when one is taken, so an episode whose
    /// last action used the final step can still be observed and scored.
    pub fn check(&self) -> Result<(), String> {
        let tokens = self.tokens.load(Ordering::Relaxed);
        if tokens >= self.limits.max_tokens {
            return Err(format!(
                "token budget spent ({tokens} of {})",
                self.limits.max_tokens
            ));
        }
        let elapsed = self.started.elapsed();
        if elapsed >= self.limits.max_wall {
            return Err(format!(
                "wall-time budget spent ({:.1}s of {:.1}s)",
                elapsed.as_secs_f64(),
                self.limits.max_wall.as_secs_f64()
            ));
        }
        Ok(())
    }

    /// Counts one environment action after checking the budget.
    pub fn take_step(&self) -> Result<u64, String> {
        self.check()?;
        let steps = self.steps.load(Ordering::Relaxed);
        if steps >= u64::from(self.limits.max_steps) {
            return Err(format!(
                "step budget spent ({steps} of {} actions)",
                self.limits.max_steps
            ));
        }
        Ok(self.steps.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Counts one `skill`, `delegate` or `llm` call after checking the budget.
    pub fn take_call(&self) -> Result<u64, String> {
        self.check()?;
        let calls = self.calls.load(Ordering::Relaxed);
        if calls >= u64::from(self.limits.max_calls) {
            return Err(format!(
                "call budget spent ({calls} of {} skill, delegate and llm calls)",
                self.limits.max_calls
            ));
        }
        Ok(self.calls.fetch_add(1, Ordering::Relaxed) + 1)
    }

    pub fn add_tokens(&self, tokens: u64) {
        self.tokens.fetch_add(tokens, Ordering::Relaxed);
    }

    /// Environment actions taken.
    pub fn steps_used(&self) -> u64 {
        self.steps.load(Ordering::Relaxed)
    }

    /// `skill`, `delegate` and `llm` calls made.
    pub fn calls_used(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    pub fn tokens_used(&self) -> u64 {
        self.tokens.load(Ordering::Relaxed)
    }

    /// What is left, for scripts that plan around it.
    pub fn remaining(&self) -> Remaining {
        Remaining {
            steps: u64::from(self.limits.max_steps).saturating_sub(self.steps_used()),
            calls: u64::from(self.limits.max_calls).saturating_sub(self.calls_used()),
            tokens: self.limits.max_tokens.saturating_sub(self.tokens_used()),
            wall: self.limits.max_wall.saturating_sub(self.started.elapsed()),
        }
    }

    /// Output tokens a call may still ask for.
    pub fn token_allowance(&self) -> u64 {
        self.limits.max_tokens.saturating_sub(self.tokens_used())
    }
}

/// What an episode has left of each limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Remaining {
    pub steps: u64,
    pub calls: u64,
    pub tokens: u64,
    pub wall: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(steps: u32, tokens: u64, wall: Duration) -> EpisodeBudget {
        EpisodeBudget::new(EffectiveBudget {
            max_steps: steps,
            max_calls: 3,
            max_tokens: tokens,
            max_wall: wall,
        })
    }

    #[test]
    fn steps_run_out() {
        let b = budget(2, 100, Duration::from_secs(60));
        assert_eq!(b.take_step(), Ok(1));
        assert_eq!(b.take_step(), Ok(2));
        assert!(
            b.take_step()
                .unwrap_err()
                .contains("step budget spent (2 of 2 actions)")
        );
        // Spent steps refuse actions only: other calls go on.
        assert!(b.check().is_ok());
        assert_eq!(b.take_call(), Ok(1));
    }

    #[test]
    fn calls_run_out_without_touching_steps() {
        let b = budget(2, 100, Duration::from_secs(60));
        for expected in 1..=3 {
            assert_eq!(b.take_call(), Ok(expected));
        }
        let err = b.take_call().unwrap_err();
        assert!(err.contains("call budget spent (3 of 3"), "{err}");
        assert_eq!(b.take_step(), Ok(1));
        assert_eq!(b.remaining().steps, 1);
        assert_eq!(b.remaining().calls, 0);
    }

    #[test]
    fn tokens_and_wall_time_run_out() {
        let b = budget(10, 100, Duration::from_secs(60));
        b.add_tokens(100);
        assert!(b.check().unwrap_err().contains("token budget"));
        let b = budget(10, 100, Duration::ZERO);
        assert!(b.check().unwrap_err().contains("wall-time budget"));
    }
}
