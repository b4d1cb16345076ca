//! The delivery gate: pauses deliveries while the sink keeps failing.
//!
//! After `THRESHOLD` retriable write failures in a row the gate closes for a
//! backoff (the retry policy's, growing with the streak, with jitter), then
//! lets one round of writes through to probe the sink; a success opens it for
//! good. While it is closed, workers claim nothing, so an outage neither
//! spins on a dead sink nor spends exports' attempts, and saves simply pile up
//! in the ledger to be delivered oldest first when the sink answers again.

use super::RetryPolicy;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tracing::{info, warn};

/// Failures in a row before deliveries pause.
const THRESHOLD: u32 = 3;

/// Tracks the sink's health and how long deliveries wait.
#[derive(Default)]
pub(crate) struct Gate {
    /// Retriable write failures since the last success.
    streak: AtomicU32,
    /// Deliveries wait until then.
    closed_until: Mutex<Option<Instant>>,
}

impl Gate {
    fn closed_until(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.closed_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A write succeeded: deliveries go on freely.
    pub fn success(&self) {
        let streak = self.streak.swap(0, Ordering::Relaxed);
        *self.closed_until() = None;
        if streak >= THRESHOLD {
            info!(failures = streak, "the sink answers again: deliveries resume");
        }
    }

    /// A write failed in a way worth retrying: maybe pause deliveries.
    pub fn failure(&self, policy: &RetryPolicy, cause: &str) {
        let streak = self.streak.fetch_add(1, Ordering::Relaxed) + 1;
        if streak < THRESHOLD {
            return;
        }
        let pause = policy.backoff(streak - THRESHOLD + 1, rand::random_range(0.5..=1.0));
        *self.closed_until() = Some(Instant::now() + pause);
        warn!(failures = streak, cause, pause_ms = pause.as_millis() as u64, "the sink keeps failing: deliveries pause");
    }

    /// How long deliveries must still wait, if at all.
    pub fn wait(&self) -> Option<Duration> {
        let until = (*self.closed_until())?;
        let now = Instant::now();
        (until > now).then(|| until - now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy { base: Duration::from_secs(1), max: Duration::from_secs(8), max_attempts: 10 }
    }

    #[tokio::test(start_paused = true)]
    async fn closes_after_three_failures_and_opens_when_the_pause_ends() {
        let gate = Gate::default();
        gate.failure(&policy(), "crash");
        gate.failure(&policy(), "crash");
        assert_eq!(gate.wait(), None, "two failures do not pause");
        gate.failure(&policy(), "crash");
        let pause = gate.wait().expect("closed");
        assert!(pause >= Duration::from_millis(500) && pause <= Duration::from_secs(1), "{pause:?}");
        tokio::time::advance(pause).await;
        assert_eq!(gate.wait(), None, "the probe may go");
    }

    #[tokio::test(start_paused = true)]
    async fn pauses_grow_with_the_streak_up_to_the_cap_and_a_success_resets() {
        let gate = Gate::default();
        let mut pauses = Vec::new();
        for _ in 0..8 {
            gate.failure(&policy(), "unreachable");
            pauses.push(gate.wait().unwrap_or_default());
        }
        assert!(pauses[2] <= Duration::from_secs(1) && pauses[5] >= Duration::from_secs(4), "{pauses:?}");
        assert!(pauses.iter().all(|p| *p <= Duration::from_secs(8)), "{pauses:?}");
        gate.success();
        assert_eq!(gate.wait(), None);
        gate.failure(&policy(), "unreachable");
        assert_eq!(gate.wait(), None, "the streak starts over");
    }
}
