//! The retry policy: what happens to an export after a failed write.
//!
//! The only place that turns a failed delivery (a sink error, or a batch file
//! that cannot be handed to the sink: [`Failure`]) into a ledger outcome;
//! workers never decide it themselves. A retriable failure is retried with exponential backoff and
//! full jitter (a random delay between zero and `base * 2^(attempt-1)`, capped
//! at `max`), so that many exports failing together do not retry together;
//! after `max_attempts` attempts, or at once for a batch Glean will never
//! accept, the export is dead, with the reason. When the sink itself is down
//! (`SinkError::is_outage`) the batch is not at fault: the export is postponed
//! without counting the attempt, so a long outage never kills exports, and
//! the exporter's gate pauses deliveries until the sink answers.
//!
//! Backoff lives in the ledger (`next_attempt_at`), not in a sleeping task:
//! a retry schedule survives restarts, and a shutdown never waits for one.

use crate::ledger::Outcome;
use crate::sink::SinkError;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// Why one export's delivery failed.
#[derive(Debug, Clone)]
pub enum Failure {
    /// The sink failed (its error says whether trying again can help).
    Sink(SinkError),
    /// The batch file is missing or damaged: no retry can bring it back.
    BadFile(String),
    /// The batch cannot be made available here for now (the shared ledger is unreachable,
    /// the export dir cannot take the copy): not the batch's fault, so not counted.
    Unavailable(String),
}

impl Failure {
    /// Whether the same delivery could succeed later.
    fn is_retriable(&self) -> bool {
        match self {
            Failure::Sink(e) => e.is_retriable(),
            Failure::BadFile(_) => false,
            Failure::Unavailable(_) => true,
        }
    }

    /// Whether something other than the batch is down: postpone, do not count the attempt.
    fn is_outage(&self) -> bool {
        match self {
            Failure::Sink(e) => e.is_outage(),
            Failure::BadFile(_) => false,
            Failure::Unavailable(_) => true,
        }
    }

    /// A short, stable name of the cause, for stats and metric labels.
    pub fn cause(&self) -> &'static str {
        match self {
            Failure::Sink(e) => e.cause(),
            Failure::BadFile(_) => "batch_file",
            Failure::Unavailable(_) => "unavailable",
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Sink(e) => e.fmt(f),
            Failure::BadFile(reason) | Failure::Unavailable(reason) => f.write_str(reason),
        }
    }
}

/// Backoff and give-up settings (`GLEAN_RETRY_BASE_MS`, `GLEAN_RETRY_MAX_MS`, `GLEAN_MAX_ATTEMPTS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Backoff before the second attempt (before jitter).
    pub base: Duration,
    /// Longest backoff.
    pub max: Duration,
    /// Attempts before an export is dead.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { base: Duration::from_millis(1000), max: Duration::from_millis(60_000), max_attempts: 10 }
    }
}

impl RetryPolicy {
    /// The outcome of attempt number `attempt` (1-based) failing with `failure`.
    pub fn decide(&self, failure: &Failure, attempt: u32, now: DateTime<Utc>) -> Outcome {
        let reason = failure.to_string();
        if !failure.is_retriable() {
            return Outcome::Dead { error: reason };
        }
        if failure.is_outage() {
            return Outcome::Postponed { error: reason };
        }
        if attempt >= self.max_attempts {
            return Outcome::Dead { error: format!("gave up after {attempt} attempts: {reason}") };
        }
        let delay = self.backoff(attempt, rand::random_range(0.0..=1.0));
        let retry_at = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        Outcome::Retry { error: reason, retry_at }
    }

    /// The delay after attempt `attempt` fails, for a jitter factor in [0, 1].
    pub fn backoff(&self, attempt: u32, jitter: f64) -> Duration {
        let exp = 2u32.checked_pow(attempt.saturating_sub(1)).unwrap_or(u32::MAX);
        let cap = self.base.checked_mul(exp).unwrap_or(self.max).min(self.max);
        cap.mul_f64(jitter.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy { base: Duration::from_millis(100), max: Duration::from_millis(1000), max_attempts: 4 }
    }

    fn timeout() -> Failure {
        Failure::Sink(SinkError::Timeout { after: Duration::from_secs(1), stderr: String::new() })
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = policy();
        let caps: Vec<u128> = (1..=6).map(|a| p.backoff(a, 1.0).as_millis()).collect();
        assert_eq!(caps, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.backoff(3, 0.0), Duration::ZERO);
        assert_eq!(p.backoff(3, 0.5), Duration::from_millis(200));
        assert_eq!(p.backoff(200, 1.0), Duration::from_millis(1000), "no overflow on huge attempt counts");
    }

    #[test]
    fn full_jitter_stays_within_the_cap() {
        let p = policy();
        let now = Utc::now();
        for attempt in 1..4 {
            for _ in 0..200 {
                match p.decide(&timeout(), attempt, now) {
                    Outcome::Retry { retry_at, .. } => {
                        let delay = (retry_at - now).to_std().expect("not in the past");
                        assert!(delay <= p.backoff(attempt, 1.0), "attempt {attempt}: {delay:?}");
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
    }

    #[test]
    fn rejected_batches_die_at_once_with_the_reason() {
        let e = Failure::Sink(SinkError::Rejected { file: None, reason: "fact #3 .kind: expected string".into() });
        match policy().decide(&e, 1, Utc::now()) {
            Outcome::Dead { error } => assert!(error.contains("expected string")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_outage_postpones_without_counting_however_many_attempts() {
        let e = Failure::Sink(SinkError::Unreachable("connection refused".into()));
        for attempt in [1, 4, 100] {
            assert!(matches!(policy().decide(&e, attempt, Utc::now()), Outcome::Postponed { .. }));
        }
    }

    #[test]
    fn retriable_errors_die_after_max_attempts() {
        let e = Failure::Sink(SinkError::Crashed { status: "signal 9".into(), stderr: String::new() });
        assert!(matches!(policy().decide(&e, 3, Utc::now()), Outcome::Retry { .. }));
        match policy().decide(&e, 4, Utc::now()) {
            Outcome::Dead { error } => assert!(error.starts_with("gave up after 4 attempts: glean exited with signal 9"), "{error}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bad_file_dies_at_once_and_an_unavailable_one_waits_uncounted() {
        match policy().decide(&Failure::BadFile("batch file x is missing".into()), 1, Utc::now()) {
            Outcome::Dead { error } => assert_eq!(error, "batch file x is missing"),
            other => panic!("{other:?}"),
        }
        let unavailable = Failure::Unavailable("cannot fetch the batch from the shared ledger".into());
        assert!(matches!(policy().decide(&unavailable, 100, Utc::now()), Outcome::Postponed { .. }));
    }

    #[test]
    fn a_timeout_keeps_what_glean_said_before_it_was_killed() {
        let e = Failure::Sink(SinkError::Timeout { after: Duration::from_secs(3), stderr: "waiting for lock\n".into() });
        match policy().decide(&e, 1, Utc::now()) {
            Outcome::Retry { error, .. } => assert_eq!(error, "glean write timed out after 3s and was killed: waiting for lock"),
            other => panic!("{other:?}"),
        }
    }
}
