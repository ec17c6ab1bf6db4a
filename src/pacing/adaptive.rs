//! Adapting the pace to an API that refuses with 429 but does not say its limit: CUBIC, as
//! the AWS SDKs' "adaptive" retry mode does it. A refusal cuts the rate to 70 % of what was
//! sent; successes then bring it back along a cubic curve, quickly to where it was refused
//! and slowly beyond. Time here is *active* time: pauses do not count, or a long
//! `Retry-After` would read as a slow sender and as a long success.

use std::collections::VecDeque;
use std::time::Duration;

/// The share of the rate kept after a refusal.
const BETA: f64 = 0.7;
/// How fast the rate grows back (requests per second per second cubed).
const SCALE: f64 = 0.4;
/// The slowest pace: one request every two seconds.
const SLOWEST: f64 = 0.5;
/// Sends kept to measure the rate actually sent.
const MEASURED_SENDS: usize = 32;

/// The adaptive rate; inactive until the first refusal.
#[derive(Debug)]
pub struct Adaptive {
    /// Requests per second allowed; `None` until a 429 was met.
    rate: Option<f64>,
    /// `--rate`, the ceiling.
    ceiling: Option<f64>,
    /// The rate when last refused.
    last_max: f64,
    /// Active seconds at the last refusal.
    refused_at: f64,
    /// Active seconds of the latest sends.
    sends: VecDeque<f64>,
    /// Sends in all, and the active seconds of the first.
    sent: u64,
    first_send: Option<f64>,
}

impl Adaptive {
    /// No adaptation yet; never above `ceiling` requests per second.
    pub fn new(ceiling: Option<f64>) -> Adaptive {
        Adaptive {
            rate: None,
            ceiling,
            last_max: 0.0,
            refused_at: 0.0,
            sends: VecDeque::with_capacity(MEASURED_SENDS),
            sent: 0,
            first_send: None,
        }
    }

    /// The pace allowed now, if a refusal made one.
    pub fn rate(&self) -> Option<f64> {
        self.rate
    }

    /// The gap between two requests at the current pace.
    pub fn interval(&self) -> Option<Duration> {
        self.rate.map(|r| Duration::from_secs_f64(1.0 / r))
    }

    /// A request went out at `active` seconds.
    pub fn sent(&mut self, active: f64) {
        if self.sends.len() == MEASURED_SENDS {
            self.sends.pop_front();
        }
        self.sends.push_back(active);
        self.sent += 1;
        self.first_send.get_or_insert(active);
    }

    /// The API refused a request (429) at `active` seconds: cut the pace.
    pub fn refused(&mut self, active: f64) {
        let sending = self.measured().or_else(|| {
            let span = active - self.first_send?;
            (span > 0.0).then(|| self.sent as f64 / span)
        });
        let rate = [self.rate, sending, self.ceiling]
            .into_iter()
            .flatten()
            .fold(f64::INFINITY, f64::min);
        // Nothing measured and nothing set: a modest guess, corrected by the next 429s.
        let rate = if rate.is_finite() { rate } else { 10.0 };
        self.last_max = rate;
        self.refused_at = active;
        self.rate = Some((rate * BETA).max(SLOWEST));
    }

    /// A request was answered at `active` seconds: grow the pace back.
    pub fn succeeded(&mut self, active: f64) {
        if self.rate.is_none() {
            return;
        }
        let k = (self.last_max * (1.0 - BETA) / SCALE).cbrt();
        let t = active - self.refused_at - k;
        let mut rate = SCALE * t.powi(3) + self.last_max;
        // Never far beyond what is really sent: a pace nobody uses proves nothing.
        if let Some(sending) = self.measured() {
            rate = rate.min(2.0 * sending);
        }
        if let Some(ceiling) = self.ceiling {
            rate = rate.min(ceiling);
        }
        self.rate = Some(rate.max(SLOWEST));
    }

    /// The rate of the latest sends, in active time.
    fn measured(&self) -> Option<f64> {
        let (first, last) = (self.sends.front()?, self.sends.back()?);
        let span = last - first;
        (self.sends.len() >= 4 && span > 0.0).then(|| (self.sends.len() - 1) as f64 / span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sending(adaptive: &mut Adaptive, per_second: f64, from: f64, to: f64) {
        let mut t = from;
        while t < to {
            adaptive.sent(t);
            t += 1.0 / per_second;
        }
    }

    #[test]
    fn inactive_until_refused() {
        let mut adaptive = Adaptive::new(Some(100.0));
        sending(&mut adaptive, 50.0, 0.0, 1.0);
        adaptive.succeeded(1.0);
        assert_eq!(adaptive.rate(), None);
    }

    #[test]
    fn a_refusal_cuts_to_seventy_percent_of_what_was_sent() {
        let mut adaptive = Adaptive::new(Some(100.0));
        sending(&mut adaptive, 20.0, 0.0, 2.0);
        adaptive.refused(2.0);
        let rate = adaptive.rate().unwrap();
        assert!((rate - 14.0).abs() < 0.5, "{rate}");
    }

    #[test]
    fn successes_bring_it_back_then_beyond_never_above_the_ceiling() {
        let mut adaptive = Adaptive::new(Some(30.0));
        sending(&mut adaptive, 20.0, 0.0, 2.0);
        adaptive.refused(2.0);
        let cut = adaptive.rate().unwrap();
        // K = cbrt(20 * 0.3 / 0.4) ≈ 2.47 s to be back at 20.
        sending(&mut adaptive, 20.0, 2.0, 4.5);
        adaptive.succeeded(4.47);
        let back = adaptive.rate().unwrap();
        assert!(back > cut && (back - 20.0).abs() < 0.5, "{cut} → {back}");
        sending(&mut adaptive, 30.0, 4.5, 20.0);
        adaptive.succeeded(20.0);
        assert_eq!(adaptive.rate(), Some(30.0));
    }

    #[test]
    fn repeated_refusals_keep_cutting_but_not_below_the_slowest() {
        let mut adaptive = Adaptive::new(None);
        for i in 0..40 {
            adaptive.refused(f64::from(i));
        }
        assert_eq!(adaptive.rate(), Some(SLOWEST));
    }

    #[test]
    fn growth_is_capped_by_what_is_really_sent() {
        let mut adaptive = Adaptive::new(None);
        sending(&mut adaptive, 10.0, 0.0, 2.0);
        adaptive.refused(2.0);
        // Only 5/s go out (the concurrency binds, say): the pace stays near 10.
        sending(&mut adaptive, 5.0, 2.0, 60.0);
        adaptive.succeeded(60.0);
        assert!(adaptive.rate().unwrap() <= 10.0 + 1e-6);
    }
}
