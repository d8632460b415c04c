//! Per-episode budgets — steps, tokens, wall time — checked at every host
//! call of every level, so a runaway task agent cannot outspend the
//! episode.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyperagents_program::EffectiveBudget;

/// The episode's counters against its effective (capped) budget.
pub struct EpisodeBudget {
    limits: EffectiveBudget,
    started: Instant,
    steps: AtomicU64,
    tokens: AtomicU64,
}

impl EpisodeBudget {
    pub fn new(limits: EffectiveBudget) -> Self {
        Self {
            limits,
            started: Instant::now(),
            steps: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
        }
    }

    pub fn limits(&self) -> &EffectiveBudget {
        &self.limits
    }

    /// Fails once any limit is reached; the message says which.
    pub fn check(&self) -> Result<(), String> {
        let steps = self.steps.load(Ordering::Relaxed);
        if steps >= u64::from(self.limits.max_steps) {
            return Err(format!(
                "step budget spent ({steps} of {})",
                self.limits.max_steps
            ));
        }
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

    /// Counts one step (an action or a skill call) after checking the budget.
    pub fn take_step(&self) -> Result<u64, String> {
        self.check()?;
        Ok(self.steps.fetch_add(1, Ordering::Relaxed) + 1)
    }

    pub fn add_tokens(&self, tokens: u64) {
        self.tokens.fetch_add(tokens, Ordering::Relaxed);
    }

    pub fn steps_used(&self) -> u64 {
        self.steps.load(Ordering::Relaxed)
    }

    pub fn tokens_used(&self) -> u64 {
        self.tokens.load(Ordering::Relaxed)
    }

    /// What is left, for scripts that plan around it.
    pub fn remaining(&self) -> (u64, u64, Duration) {
        (
            u64::from(self.limits.max_steps).saturating_sub(self.steps_used()),
            self.limits.max_tokens.saturating_sub(self.tokens_used()),
            self.limits.max_wall.saturating_sub(self.started.elapsed()),
        )
    }

    /// Output tokens a call may still ask for.
    pub fn token_allowance(&self) -> u64 {
        self.limits.max_tokens.saturating_sub(self.tokens_used())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(steps: u32, tokens: u64, wall: Duration) -> EpisodeBudget {
        EpisodeBudget::new(EffectiveBudget {
            max_steps: steps,
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
                .contains("step budget spent (2 of 2)")
        );
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
