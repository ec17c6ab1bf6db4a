//! The outage breaker. A few attempts in a row without an answer (refused, no route, DNS, a
//! connect timeout, a timeout, a dropped connection) open it: sending pauses, and one request at a time probes the API, at
//! growing intervals, until one is answered. An API that never answered gives up after a
//! few probes (a wrong URL should not hold a job); one that did is waited for up to
//! `--max-outage`.

use std::time::{Duration, Instant};

/// Attempts in a row without an answer that open the breaker.
const OPENS_AFTER: u32 = 3;
/// The first probe's delay; it doubles up to [`PROBE_EVERY_AT_MOST`].
const FIRST_PROBE: Duration = Duration::from_millis(250);
/// The longest gap between two probes.
const PROBE_EVERY_AT_MOST: Duration = Duration::from_secs(10);
/// Probes that may fail before an API that never answered is given up.
const PROBES_BEFORE_ANY_ANSWER: u32 = 3;

/// Whether the API is reachable, as far as the attempts tell.
#[derive(Debug)]
pub struct Breaker {
    /// Attempts without an answer since the last answer.
    in_a_row: u32,
    /// Whether the API ever answered this job.
    answered_once: bool,
    /// When it last answered.
    last_answer: Option<Instant>,
    /// Whether every attempt without an answer so far could not even connect.
    only_refused: bool,
    outage: Option<Outage>,
    /// Time spent in outages that ended.
    past_outages: Duration,
}

impl Default for Breaker {
    fn default() -> Breaker {
        Breaker {
            in_a_row: 0,
            answered_once: false,
            last_answer: None,
            only_refused: true,
            outage: None,
            past_outages: Duration::ZERO,
        }
    }
}

/// An outage in progress.
#[derive(Debug)]
struct Outage {
    since: Instant,
    probes_failed: u32,
    next_probe: Instant,
    probing: bool,
}

/// What the breaker allows now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allows {
    /// Any request.
    Any,
    /// One probe, now.
    Probe,
    /// Nothing until then.
    Until(Instant),
    /// Nothing until the probe in flight is answered.
    ProbeInFlight,
}

/// The breaker gave up: the API cannot be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GiveUp {
    /// Whether the API answered earlier in the job.
    pub answered_once: bool,
    /// How long it has been unreachable.
    pub for_how_long: Duration,
    /// It never answered and refused every connection: a wrong address, or a network
    /// that does not lead there.
    pub refused_from_start: bool,
}

impl Breaker {
    /// What may go out at `now`.
    pub fn allows(&self, now: Instant) -> Allows {
        match &self.outage {
            None => Allows::Any,
            Some(outage) if outage.probing => Allows::ProbeInFlight,
            Some(outage) if now < outage.next_probe => Allows::Until(outage.next_probe),
            Some(_) => Allows::Probe,
        }
    }

    /// A request is issued; returns whether it is the probe.
    pub fn issued(&mut self) -> bool {
        match &mut self.outage {
            Some(outage) => {
                outage.probing = true;
                true
            }
            None => false,
        }
    }

    /// The API answered (anything at all). Returns how long the outage lasted, if one
    /// ended.
    pub fn answered(&mut self, now: Instant) -> Option<Duration> {
        self.in_a_row = 0;
        self.answered_once = true;
        self.last_answer = Some(now);
        let outage = self.outage.take()?;
        let lasted = now.duration_since(outage.since);
        self.past_outages += lasted;
        Some(lasted)
    }

    /// An attempt got no answer: `connected` tells whether it could connect at all (a
    /// timeout, a dropped connection) or not (refused, DNS); `probe` whether it was the
    /// probe. `Ok(true)` when this opened the breaker; `Err` when it is time to give up.
    pub fn failed(
        &mut self,
        now: Instant,
        probe: bool,
        connected: bool,
        max_outage: Duration,
    ) -> Result<bool, GiveUp> {
        self.in_a_row = self.in_a_row.saturating_add(1);
        self.only_refused &= !connected;
        let opened = match &mut self.outage {
            None if self.in_a_row >= OPENS_AFTER => {
                self.outage = Some(Outage {
                    since: now,
                    probes_failed: 0,
                    next_probe: now + FIRST_PROBE,
                    probing: false,
                });
                true
            }
            None => false,
            Some(outage) => {
                if probe {
                    outage.probes_failed += 1;
                    outage.probing = false;
                    let doublings = outage.probes_failed.min(16);
                    let gap = FIRST_PROBE.saturating_mul(1 << doublings);
                    outage.next_probe = now + gap.min(PROBE_EVERY_AT_MOST);
                }
                false
            }
        };
        if let Some(outage) = &self.outage {
            // --max-outage counts from the last answer, not from when the breaker opened
            // (three timeouts later, maybe).
            let lasted = now.duration_since(self.last_answer.unwrap_or(outage.since));
            // Only an API that refused every connection from the start is a wrong address
            // or a network that does not lead there: one that accepts and then says nothing
            // may be starting, and gets --max-outage like any outage.
            let give_up = if self.answered_once || !self.only_refused {
                lasted >= max_outage
            } else {
                outage.probes_failed >= PROBES_BEFORE_ANY_ANSWER
            };
            if give_up {
                return Err(GiveUp {
                    answered_once: self.answered_once,
                    for_how_long: lasted,
                    refused_from_start: !self.answered_once && self.only_refused,
                });
            }
        }
        Ok(opened)
    }

    /// Whether the API answered this job at least once.
    pub fn answered_once(&self) -> bool {
        self.answered_once
    }

    /// Whether an outage is in progress, and since when.
    pub fn outage_since(&self) -> Option<Instant> {
        self.outage.as_ref().map(|o| o.since)
    }

    /// When the next probe goes, if one is waiting.
    pub fn next_probe(&self) -> Option<Instant> {
        self.outage
            .as_ref()
            .filter(|o| !o.probing)
            .map(|o| o.next_probe)
    }

    /// Time spent unreachable, up to `now`.
    pub fn unreachable_for(&self, now: Instant) -> Duration {
        self.past_outages
            + self
                .outage
                .as_ref()
                .map_or(Duration::ZERO, |o| now.duration_since(o.since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_single_failure_does_not_open_it() {
        let mut breaker = Breaker::default();
        let t0 = Instant::now();
        assert_eq!(breaker.failed(t0, false, false, MS), Ok(false));
        breaker.answered(t0);
        assert_eq!(breaker.failed(t0, false, false, MS), Ok(false));
        assert_eq!(breaker.allows(t0), Allows::Any);
    }

    #[test]
    fn failures_in_a_row_open_it_and_one_probe_at_a_time_goes() {
        let mut breaker = Breaker::default();
        breaker.answered(Instant::now());
        let t0 = Instant::now();
        let max = Duration::from_secs(300);
        assert_eq!(breaker.failed(t0, false, false, max), Ok(false));
        assert_eq!(breaker.failed(t0, false, false, max), Ok(false));
        assert_eq!(breaker.failed(t0, false, false, max), Ok(true));
        assert_eq!(breaker.allows(t0), Allows::Until(t0 + FIRST_PROBE));
        let t1 = t0 + FIRST_PROBE;
        assert_eq!(breaker.allows(t1), Allows::Probe);
        assert!(breaker.issued());
        assert_eq!(breaker.allows(t1), Allows::ProbeInFlight);
        // A request sent before the outage failing late does not move the probes.
        assert_eq!(breaker.failed(t1, false, false, max), Ok(false));
        assert_eq!(breaker.allows(t1), Allows::ProbeInFlight);
        assert_eq!(breaker.failed(t1, true, false, max), Ok(false));
        assert_eq!(breaker.allows(t1), Allows::Until(t1 + 2 * FIRST_PROBE));
        assert_eq!(breaker.answered(t1 + 10 * MS), Some(FIRST_PROBE + 10 * MS));
        assert_eq!(breaker.allows(t1), Allows::Any);
        assert_eq!(
            breaker.unreachable_for(t1 + Duration::from_secs(5)),
            FIRST_PROBE + 10 * MS
        );
    }

    #[test]
    fn probes_slow_down_to_a_ceiling() {
        let mut breaker = Breaker::default();
        let mut now = Instant::now();
        breaker.answered(now);
        let max = Duration::from_secs(3600);
        for _ in 0..3 {
            breaker.failed(now, false, false, max).unwrap();
        }
        let mut gaps = Vec::new();
        for _ in 0..8 {
            let Allows::Until(at) = breaker.allows(now) else {
                panic!("waiting for the next probe")
            };
            gaps.push((at - now).as_millis());
            now = at;
            breaker.issued();
            breaker.failed(now, true, false, max).unwrap();
        }
        assert_eq!(gaps, [250, 500, 1000, 2000, 4000, 8000, 10000, 10000]);
    }

    #[test]
    fn an_api_that_never_answered_is_given_up_after_a_few_probes() {
        let mut breaker = Breaker::default();
        let mut now = Instant::now();
        let max = Duration::from_secs(300);
        for _ in 0..3 {
            breaker.failed(now, false, false, max).unwrap();
        }
        for probe in 1..=3 {
            now += Duration::from_secs(1);
            breaker.issued();
            let result = breaker.failed(now, true, false, max);
            assert_eq!(result.is_err(), probe == 3, "probe {probe}");
        }
    }

    #[test]
    fn an_api_that_answered_is_waited_for_up_to_max_outage() {
        let mut breaker = Breaker::default();
        let t0 = Instant::now();
        breaker.answered(t0);
        let max = Duration::from_secs(60);
        for _ in 0..3 {
            breaker.failed(t0, false, false, max).unwrap();
        }
        breaker.issued();
        assert!(
            breaker
                .failed(t0 + Duration::from_secs(59), true, false, max)
                .is_ok()
        );
        breaker.issued();
        let given_up = breaker.failed(t0 + Duration::from_secs(60), true, false, max);
        assert_eq!(
            given_up,
            Err(GiveUp {
                answered_once: true,
                for_how_long: Duration::from_secs(60),
                refused_from_start: false,
            })
        );
    }

    #[test]
    fn an_api_that_accepts_and_never_answers_gets_max_outage_even_from_the_start() {
        let mut breaker = Breaker::default();
        let t0 = Instant::now();
        let max = Duration::from_secs(60);
        for _ in 0..3 {
            breaker.failed(t0, false, true, max).unwrap();
        }
        for probe in 1..=5 {
            breaker.issued();
            let at = t0 + Duration::from_secs(probe);
            assert!(breaker.failed(at, true, true, max).is_ok(), "probe {probe}");
        }
        breaker.issued();
        assert!(breaker.failed(t0 + max, true, true, max).is_err());
    }
}
