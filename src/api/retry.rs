//! The retry policy: which outcomes are worth another attempt, and how long to wait first.

use std::time::Duration;

/// Whether an answer that is not a success is worth another attempt: server errors,
/// gateway troubles, timeouts, rate limits, and a 2xx that is not the success envelope
/// (its outcome is unknown). Every other status is final (400 codes are deterministic for
/// the same body; a redirect is not followed).
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 200..=299 | 500 | 502 | 503 | 504 | 408 | 429)
}

/// Whether an answer with this status that is not a success may hide a write the server
/// did apply: any server or gateway error, a timeout, or a 2xx without the success
/// envelope. A 429 is a refusal at the door.
pub fn may_have_applied(status: u16) -> bool {
    status >= 500 || status == 408 || (200..300).contains(&status)
}

/// How many times to try a row and how long to wait between tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per row, the first included; at least 1.
    pub max_attempts: u32,
    /// Backoff ceiling after the first failed attempt.
    pub backoff_base: Duration,
    /// Largest backoff ceiling.
    pub backoff_max: Duration,
}

impl RetryPolicy {
    /// The ceiling of the wait after `failed_attempt` (1-based):
    /// `min(max, base * 2^(failed_attempt - 1))`.
    pub fn ceiling(&self, failed_attempt: u32) -> Duration {
        let doublings = failed_attempt.saturating_sub(1).min(31);
        self.backoff_base
            .saturating_mul(1 << doublings)
            .min(self.backoff_max)
    }

    /// The wait after `failed_attempt`: full jitter, `random(0, ceiling)`, but at least what
    /// the server asked for in `Retry-After`.
    pub fn backoff(&self, failed_attempt: u32, retry_after: Option<Duration>) -> Duration {
        let ceiling = self.ceiling(failed_attempt);
        let jittered = ceiling.mul_f64(rand::random::<f64>());
        jittered.max(retry_after.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 5,
        backoff_base: Duration::from_millis(500),
        backoff_max: Duration::from_secs(30),
    };

    #[test]
    fn the_ceiling_doubles_up_to_the_maximum() {
        let ceilings: Vec<_> = (1..=8).map(|a| POLICY.ceiling(a).as_millis()).collect();
        assert_eq!(ceilings, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
        assert_eq!(POLICY.ceiling(1000), Duration::from_secs(30));
    }

    #[test]
    fn backoff_stays_within_the_ceiling_and_honours_retry_after() {
        for attempt in 1..6 {
            for _ in 0..200 {
                assert!(POLICY.backoff(attempt, None) <= POLICY.ceiling(attempt));
            }
        }
        let asked = Duration::from_secs(40);
        assert!(POLICY.backoff(1, Some(asked)) >= asked);
    }

    #[test]
    fn backoff_is_jittered() {
        let waits: std::collections::HashSet<_> =
            (0..50).map(|_| POLICY.backoff(3, None)).collect();
        assert!(waits.len() > 40);
    }

    #[test]
    fn retryable_statuses_are_exactly_the_transient_ones() {
        let retryable: Vec<u16> = (300..600).filter(|s| is_retryable_status(*s)).collect();
        assert_eq!(retryable, [408, 429, 500, 502, 503, 504]);
        assert!(is_retryable_status(200), "a 200 without the envelope");
        assert!(!may_have_applied(429));
        assert!(!may_have_applied(302));
        assert!(may_have_applied(502));
        assert!(may_have_applied(200));
    }
}
