//! The pacer's state and its decisions, without any waiting: what may go when, and what
//! an answer means for the pace, the pauses and the breaker.

use std::time::{Duration, Instant};

use super::adaptive::Adaptive;
use super::breaker::{Allows, Breaker};
use super::budget::Budget;
use super::protocol::{Halt, Next, PacingReport, PacingSettings, Seen, Ticket};
use crate::api::Announced;
use crate::api::retry::is_retryable_status;

/// A pause of every request after a 429.
#[derive(Debug, Clone, Copy)]
struct Pause {
    since: Instant,
    until: Instant,
}

/// Everything the pacer knows: what went out, pauses, the API's window, the adaptive
/// pace, the breaker, and the figures for the summary.
pub(super) struct State {
    started: Instant,
    /// Requests issued so far.
    issued: u64,
    /// Requests whose outcome came back.
    observed: u64,
    last_sent: Option<Instant>,
    pause: Option<Pause>,
    /// Time paused by pauses that ended.
    paused_before: Duration,
    /// A 429 of a request issued before this does not cut the pace again: it was in
    /// flight when the last one was met.
    refusal_round_from: u64,
    /// 429 rounds since the last success, for 429s that say nothing of when to return.
    refusal_rounds: u32,
    /// Since when every answer was a 429, and the first request issued after the first
    /// of those 429s: only its success, or a later one's, shows the limit has eased.
    /// Not the latest 429's: a 429 often comes back before the successes of requests sent
    /// just before it (a limit is checked before the work is done), and those successes
    /// say the API is taking requests all the same.
    limited_since: Option<Instant>,
    limited_after: u64,
    responses_429: u64,
    /// Whether the API's answers announce its window.
    announces: bool,
    latest_announced: Option<Announced>,
    budget: Budget,
    adaptive: Adaptive,
    breaker: Breaker,
}

/// What the pacer allows now.
pub(super) enum Gate {
    /// A request may go.
    Open,
    /// Nothing before then (or a change).
    Until(Instant),
    /// Nothing until something changes.
    Changed,
}

impl State {
    /// Nothing sent yet, nothing known of the API.
    pub(super) fn new(settings: &PacingSettings, now: Instant) -> State {
        State {
            started: now,
            issued: 0,
            observed: 0,
            last_sent: None,
            pause: None,
            paused_before: Duration::ZERO,
            refusal_round_from: 0,
            refusal_rounds: 0,
            limited_since: None,
            limited_after: 0,
            responses_429: 0,
            announces: false,
            latest_announced: None,
            budget: Budget::for_shard(settings.shard),
            adaptive: Adaptive::new(settings.ceiling.map(|r| r.per_second)),
            breaker: Breaker::default(),
        }
    }

    /// Requests issued so far.
    pub(super) fn issued(&self) -> u64 {
        self.issued
    }

    /// The figures for the summary, up to `now`.
    pub(super) fn report(&self, now: Instant) -> PacingReport {
        PacingReport {
            responses_429: self.responses_429,
            paused_rate_limited: self.paused_until(now),
            paused_unreachable: self.breaker.unreachable_for(now),
            announced: self.latest_announced,
        }
    }

    pub(super) fn gate(&mut self, now: Instant, settings: &PacingSettings) -> Gate {
        let mut until = now;
        if let Some(pause) = self.pause {
            if now < pause.until {
                until = pause.until;
            } else {
                self.end_pause();
            }
        }
        match self.breaker.allows(now) {
            Allows::Any | Allows::Probe => {}
            Allows::Until(at) => until = until.max(at),
            Allows::ProbeInFlight => return Gate::Changed,
        }
        let paced = if self.announces {
            // A window that resets later than the job would wait is the server's to
            // refuse: its 429 then says how long, and --max-retry-after decides.
            self.budget
                .earliest(now, self.issued)
                .filter(|at| at.saturating_duration_since(now) <= settings.max_retry_after)
        } else {
            self.adaptive
                .interval()
                .zip(self.last_sent)
                .map(|(gap, last)| last + gap)
        };
        if let Some(at) = paced {
            until = until.max(at);
        }
        if until > now {
            Gate::Until(until)
        } else {
            Gate::Open
        }
    }

    /// Issues a request if the gate is open at `now`.
    pub(super) fn try_issue(&mut self, now: Instant, settings: &PacingSettings) -> Option<Ticket> {
        matches!(self.gate(now, settings), Gate::Open).then(|| self.issue(now))
    }

    pub(super) fn issue(&mut self, now: Instant) -> Ticket {
        let ticket = Ticket {
            seq: self.issued,
            probe: self.breaker.issued(),
        };
        self.issued += 1;
        self.last_sent = Some(now);
        let active = self.active(now);
        self.adaptive.sent(active);
        ticket
    }

    /// A request whose outcome says nothing of the API's health or limit (a long list that
    /// gave no answer in time): it is no longer in flight, and that is all.
    pub(super) fn release(&mut self, _ticket: Ticket) {
        self.observed += 1;
    }

    pub(super) fn observe(
        &mut self,
        ticket: Ticket,
        seen: Seen<'_>,
        settings: &PacingSettings,
        now: Instant,
    ) -> Next {
        self.observed += 1;
        match seen {
            Seen::Answer {
                status,
                announced,
                retry_after,
            } => {
                if let Some(lasted) = self.breaker.answered(now) {
                    tracing::info!(
                        "the API answers again after {}: sending resumes",
                        seconds(lasted)
                    );
                }
                if let Some(announced) = announced {
                    self.announces = true;
                    self.latest_announced = Some(announced);
                    self.budget.update(ticket.seq + 1, announced, now);
                }
                if status == 429 {
                    self.refused(ticket, announced, retry_after, now, settings)
                } else if let Some(wait) = retry_after
                    .filter(|w| *w > settings.max_retry_after)
                    .filter(|_| status >= 300 && is_retryable_status(status))
                {
                    // A 503 that says "come back in an hour" is bounded the same way.
                    Next::Halt(Halt::RateLimited(format!(
                        "the API answered {status} and asks to wait {} (Retry-After), more than --max-retry-after {}",
                        whole(wait),
                        humantime::format_duration(settings.max_retry_after)
                    )))
                } else {
                    // Only a request sent after the refusals began shows the limit has eased.
                    if ticket.seq >= self.limited_after {
                        self.limited_since = None;
                        self.refusal_rounds = 0;
                    }
                    if !self.announces {
                        let active = self.active(now);
                        self.adaptive.succeeded(active);
                    }
                    Next::Proceed
                }
            }
            Seen::NoAnswer(error) => self.unanswered(ticket, error, true, now, settings),
            Seen::NotConnected(error) => self.unanswered(ticket, error, false, now, settings),
        }
    }

    /// An attempt without an answer: `connected` if it reached the API (a timeout, a
    /// dropped connection), not if it could not connect. A few in a row are an outage.
    fn unanswered(
        &mut self,
        ticket: Ticket,
        error: &str,
        connected: bool,
        now: Instant,
        settings: &PacingSettings,
    ) -> Next {
        let max = humantime::format_duration(settings.max_outage);
        match self
            .breaker
            .failed(now, ticket.probe, connected, settings.max_outage)
        {
            Err(given_up) => {
                let message = if given_up.refused_from_start {
                    format!("the API cannot be reached: {error}. Check --base-url and the network")
                } else {
                    format!(
                        "the API has not answered for {} (more than --max-outage {max}): {error}",
                        seconds(given_up.for_how_long)
                    )
                };
                return Next::Halt(Halt::Unreachable(message));
            }
            Ok(false) => {}
            Ok(true) if !connected && !self.breaker.answered_once() => tracing::warn!(
                "the API cannot be reached ({error}): probing it a few times before the job stops"
            ),
            Ok(true) => tracing::warn!(
                "the API {} ({error}): sending paused; one request at a time probes it, for up to --max-outage {max}",
                if connected {
                    "does not answer"
                } else {
                    "cannot be reached"
                }
            ),
        }
        // A request never sent spends no attempt. One that went out and got no answer is
        // the retry policy's, outage or not: else a single row that always times out would
        // probe for ever and hold every other row until --max-outage.
        if connected {
            Next::Proceed
        } else {
            Next::Again
        }
    }

    /// A 429: pause everyone until the API's time, cut the pace once per round, and stop
    /// if the wait is longer than `--max-retry-after`.
    fn refused(
        &mut self,
        ticket: Ticket,
        announced: Option<Announced>,
        retry_after: Option<Duration>,
        now: Instant,
        settings: &PacingSettings,
    ) -> Next {
        self.responses_429 += 1;
        let new_round = ticket.seq >= self.refusal_round_from;
        if new_round {
            self.refusal_rounds = self.refusal_rounds.saturating_add(1);
            self.refusal_round_from = self.issued;
            if !self.announces {
                let active = self.active(now);
                self.adaptive.refused(active);
            }
        }
        let told = retry_after
            .or(announced
                .filter(|a| a.remaining == 0)
                .map(|a| a.reset_after))
            .filter(|wait| !wait.is_zero());
        let wait = told.unwrap_or_else(|| settings.backoff.ceiling(self.refusal_rounds));
        if self.limited_since.is_none() {
            self.limited_after = self.issued;
        }
        let limited_since = *self.limited_since.get_or_insert(now);
        // Waiting is pointless once it would end beyond the bound: stop now, not later.
        let limited_for = now.duration_since(limited_since);
        if limited_for + wait > settings.max_retry_after {
            let max = humantime::format_duration(settings.max_retry_after);
            let message = if wait > settings.max_retry_after {
                format!(
                    "the API's rate limit asks to wait {}, more than --max-retry-after {max}",
                    whole(wait)
                )
            } else {
                format!(
                    "the API has refused every request (429) for {}, and the next wait of {} would pass --max-retry-after {max}",
                    seconds(limited_for),
                    seconds(wait)
                )
            };
            return Next::Halt(Halt::RateLimited(message));
        }
        let until = now + wait;
        match &mut self.pause {
            Some(pause) if now < pause.until => pause.until = pause.until.max(until),
            _ => {
                self.end_pause();
                self.pause = Some(Pause { since: now, until });
                let text = format!(
                    "rate limited (429): every request paused for {}{}",
                    seconds(wait),
                    if told.is_some() {
                        ""
                    } else {
                        " (the API did not say how long)"
                    }
                );
                // A nightly log should show a long pause, not every one-second window.
                if wait >= Duration::from_secs(10) {
                    tracing::info!("{text}");
                } else {
                    tracing::debug!("{text}");
                }
            }
        }
        Next::Again
    }

    /// Ends the pause, if any, and counts it in the time paused.
    fn end_pause(&mut self) {
        if let Some(ended) = self.pause.take() {
            self.paused_before += ended.until - ended.since;
        }
    }

    /// Time since the job began, pauses not counted.
    fn active(&self, now: Instant) -> f64 {
        let paused = self.paused_until(now) + self.breaker.unreachable_for(now);
        now.duration_since(self.started)
            .saturating_sub(paused)
            .as_secs_f64()
    }

    /// Time paused by 429s, up to `now`.
    fn paused_until(&self, now: Instant) -> Duration {
        self.paused_before
            + self.pause.map_or(Duration::ZERO, |p| {
                now.min(p.until).saturating_duration_since(p.since)
            })
    }

    pub(super) fn describe(&self, now: Instant) -> Option<String> {
        if let Some(pause) = self.pause.filter(|p| now < p.until) {
            let resets = if self.announces {
                "window resets"
            } else {
                "again"
            };
            return Some(format!(
                "paused {}: rate limit, {resets} in {}",
                whole_seconds(now - pause.since),
                whole_seconds(pause.until - now)
            ));
        }
        if let Some(since) = self.breaker.outage_since() {
            let next = match self.breaker.next_probe() {
                Some(at) => format!("next probe in {}", whole_seconds(at - now.min(at))),
                None => "probing".to_owned(),
            };
            return Some(format!(
                "paused {}: API unreachable, {next}",
                whole_seconds(now - since)
            ));
        }
        if self.announces
            && let Some((left, reset)) = self.budget.left(now, self.issued)
        {
            return Some(format!(
                "API window: {left} left, resets in {}",
                whole_seconds(reset)
            ));
        }
        self.adaptive
            .rate()
            .map(|rate| format!("allowed up to {rate:.1}/s (adapting to 429s)"))
    }
}

/// A duration for a message: `41.2 s`.
fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// A long duration in words, to the second: `1h 30m`; a year or more is said so (a
/// `Retry-After` is taken as a year at most).
fn whole(d: Duration) -> String {
    if d >= Duration::from_secs(365 * 86_400) {
        return "a year or more".to_owned();
    }
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// A duration for the progress line: `41 s`.
fn whole_seconds(d: Duration) -> String {
    format!("{} s", d.as_secs_f64().round() as u64)
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;
    use crate::api::RetryPolicy;

    const S: Duration = Duration::from_secs(1);
    const MS: Duration = Duration::from_millis(1);

    fn settings() -> PacingSettings {
        PacingSettings {
            ceiling: None,
            burst: NonZeroU32::MIN,
            max_retry_after: 60 * S,
            max_outage: 30 * S,
            backoff: RetryPolicy {
                max_attempts: 5,
                backoff_base: 500 * MS,
                backoff_max: 30 * S,
            },
            shard: crate::model::Shard::ALL,
        }
    }

    fn answer(status: u16, retry_after: Option<Duration>) -> Seen<'static> {
        Seen::Answer {
            status,
            announced: None,
            retry_after,
        }
    }

    /// Issues a request at `at` (the gate must be open then).
    fn issue(state: &mut State, at: Instant) -> Ticket {
        assert!(
            matches!(state.gate(at, &settings()), Gate::Open),
            "the gate is open"
        );
        state.issue(at)
    }

    #[test]
    fn a_429_pauses_every_request_until_its_retry_after_and_spends_nothing() {
        let t0 = Instant::now();
        let mut state = State::new(&settings(), t0);
        let first = issue(&mut state, t0);
        let second = issue(&mut state, t0);
        let next = state.observe(first, answer(429, Some(5 * S)), &settings(), t0 + MS);
        assert_eq!(next, Next::Again);
        assert!(
            matches!(state.gate(t0 + S, &settings()), Gate::Until(at) if at == t0 + MS + 5 * S)
        );
        // The second was in flight: its 429 neither cuts the pace again nor moves the pause.
        state.observe(second, answer(429, Some(5 * S)), &settings(), t0 + 2 * MS);
        assert_eq!(state.refusal_rounds, 1);
        assert_eq!(state.responses_429, 2);
        let report = state.report(t0 + 10 * S);
        assert_eq!(report.paused_rate_limited, 5 * S + MS);
    }

    #[test]
    fn a_retry_after_beyond_the_bound_halts() {
        let t0 = Instant::now();
        let mut state = State::new(&settings(), t0);
        let ticket = issue(&mut state, t0);
        let next = state.observe(ticket, answer(429, Some(3600 * S)), &settings(), t0);
        let Next::Halt(Halt::RateLimited(why)) = next else {
            panic!("{next:?}")
        };
        assert!(
            why.contains("1h") && why.contains("--max-retry-after 1m"),
            "{why}"
        );
    }

    #[test]
    fn refusals_that_never_end_halt_once_the_bound_is_spent() {
        let t0 = Instant::now();
        let mut state = State::new(&settings(), t0);
        let mut now = t0;
        for round in 0.. {
            let ticket = issue(&mut state, now);
            match state.observe(ticket, answer(429, None), &settings(), now) {
                Next::Again => {}
                Next::Halt(Halt::RateLimited(why)) => {
                    assert!(why.contains("refused every request"), "{why}");
                    assert!(now - t0 <= 60 * S, "within the bound");
                    assert!(round >= 3, "after a few rounds: {round}");
                    return;
                }
                other => panic!("{other:?}"),
            }
            // Without a Retry-After, the pause grows: 0.5 s, 1 s, 2 s, ...
            let Gate::Until(at) = state.gate(now, &settings()) else {
                panic!("paused")
            };
            now = at;
        }
    }

    #[test]
    fn only_a_request_sent_after_the_refusal_shows_the_limit_eased() {
        let t0 = Instant::now();
        let mut state = State::new(&settings(), t0);
        let before = issue(&mut state, t0);
        let refused = issue(&mut state, t0);
        state.observe(refused, answer(429, Some(2 * S)), &settings(), t0);
        // A success of a request sent before the 429 says nothing of the limit now.
        state.observe(before, answer(200, None), &settings(), t0 + MS);
        assert_eq!(state.limited_since, Some(t0));
        let after = issue(&mut state, t0 + 2 * S);
        state.observe(after, answer(200, None), &settings(), t0 + 2 * S + MS);
        assert_eq!(state.limited_since, None);
    }

    #[test]
    fn a_success_that_comes_back_after_a_later_429_still_shows_the_limit_eased() {
        // Each window, the last request of a burst is refused at once, before the
        // successes of the requests sent just before it come back.
        let t0 = Instant::now();
        let mut state = State::new(&settings(), t0);
        let first = issue(&mut state, t0);
        state.observe(first, answer(429, Some(2 * S)), &settings(), t0);
        let mut now = t0;
        for _ in 0..30 {
            now += 3 * S;
            let accepted = state.issue(now);
            let refused = state.issue(now);
            let next = state.observe(refused, answer(429, Some(2 * S)), &settings(), now + MS);
            assert_eq!(next, Next::Again, "the API takes requests all along");
            let next = state.observe(accepted, answer(200, None), &settings(), now + 5 * MS);
            assert_eq!(next, Next::Proceed);
        }
        assert!(
            30 * 3 * S > settings().max_retry_after,
            "long enough to have stopped before"
        );
    }

    #[test]
    fn the_announced_window_paces_and_is_reported() {
        let t0 = Instant::now();
        let mut state = State::new(&settings(), t0);
        let ticket = issue(&mut state, t0);
        let announced = Announced {
            limit: 10,
            remaining: 0,
            reset_after: 4 * S,
            window: Some(10 * S),
        };
        let seen = Seen::Answer {
            status: 200,
            announced: Some(announced),
            retry_after: None,
        };
        assert_eq!(state.observe(ticket, seen, &settings(), t0), Next::Proceed);
        assert!(matches!(state.gate(t0, &settings()), Gate::Until(at) if at == t0 + 4 * S));
        assert_eq!(
            state.describe(t0 + S).as_deref(),
            Some("API window: 0 left, resets in 3 s")
        );
        assert_eq!(state.report(t0).announced, Some(announced));
    }

    #[test]
    fn a_window_reset_beyond_the_bound_is_left_to_the_server_to_refuse() {
        let t0 = Instant::now();
        let mut state = State::new(&settings(), t0);
        let ticket = issue(&mut state, t0);
        let seen = Seen::Answer {
            status: 200,
            announced: Some(Announced {
                limit: 10,
                remaining: 0,
                reset_after: 3600 * S,
                window: None,
            }),
            retry_after: None,
        };
        state.observe(ticket, seen, &settings(), t0);
        // Not a silent wait of an hour: the next request goes, and its 429 decides.
        assert!(matches!(state.gate(t0, &settings()), Gate::Open));
    }

    #[test]
    fn a_connection_never_made_is_sent_again_and_an_outage_is_described() {
        let t0 = Instant::now();
        let mut state = State::new(&settings(), t0);
        let ok = issue(&mut state, t0);
        state.observe(ok, answer(200, None), &settings(), t0);
        for _ in 0..3 {
            let ticket = issue(&mut state, t0);
            let next = state.observe(ticket, Seen::NotConnected("refused"), &settings(), t0);
            assert_eq!(next, Next::Again);
        }
        assert_eq!(
            state.describe(t0 + 100 * MS).as_deref(),
            Some("paused 0 s: API unreachable, next probe in 0 s")
        );
        // A probe that connects but gets no answer (a timeout, a dropped connection) is a
        // failed probe: the next one waits, and the row's retry policy decides about it.
        let probe = issue(&mut state, t0 + S);
        assert!(matches!(state.gate(t0 + S, &settings()), Gate::Changed));
        let next = state.observe(probe, Seen::NoAnswer("timeout"), &settings(), t0 + S);
        assert_eq!(next, Next::Proceed);
        assert!(matches!(state.gate(t0 + S, &settings()), Gate::Until(_)));
        // An answer ends the outage.
        let Gate::Until(at) = state.gate(t0 + S, &settings()) else {
            unreachable!()
        };
        let probe = issue(&mut state, at);
        state.observe(probe, answer(200, None), &settings(), at);
        assert!(matches!(state.gate(at, &settings()), Gate::Open));
        assert_eq!(state.report(at + S).paused_unreachable, at - t0);
    }

    #[test]
    fn timeouts_in_a_row_are_an_outage_too() {
        let t0 = Instant::now();
        let mut state = State::new(&settings(), t0);
        let first = issue(&mut state, t0);
        state.observe(first, answer(200, None), &settings(), t0);
        let nexts: Vec<Next> = (0..3)
            .map(|_| {
                let ticket = issue(&mut state, t0);
                state.observe(ticket, Seen::NoAnswer("timeout"), &settings(), t0)
            })
            .collect();
        // Each is the retry policy's; the third opens the breaker too.
        assert_eq!(nexts, [Next::Proceed, Next::Proceed, Next::Proceed]);
        assert!(state.describe(t0).unwrap().contains("API unreachable"));
    }

    #[test]
    fn a_503_asking_for_more_than_the_bound_halts() {
        let t0 = Instant::now();
        let mut state = State::new(&settings(), t0);
        let ticket = issue(&mut state, t0);
        let next = state.observe(ticket, answer(503, Some(3600 * S)), &settings(), t0);
        assert!(matches!(next, Next::Halt(Halt::RateLimited(_))), "{next:?}");
        let ticket = issue(&mut state, t0);
        let next = state.observe(ticket, answer(503, Some(30 * S)), &settings(), t0);
        assert_eq!(
            next,
            Next::Proceed,
            "within the bound: the retry policy waits"
        );
        // A final answer is final, whatever it asks: a success, a 400.
        for status in [200, 400] {
            let ticket = issue(&mut state, t0);
            let next = state.observe(ticket, answer(status, Some(3600 * S)), &settings(), t0);
            assert_eq!(next, Next::Proceed, "{status}");
        }
    }
}
