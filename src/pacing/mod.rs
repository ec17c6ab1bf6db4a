//! Pacing: when the next request may go. The job asks [`Pacer::permit`] before every
//! attempt and tells [`Pacer::observe`] what came of it. Four things decide together:
//!
//! - `--rate`, the ceiling the operator sets (a governor limiter);
//! - a pause for everyone after a 429, until its `Retry-After`;
//! - the API's announced window ([`budget`]), when its answers carry rate-limit headers,
//!   or else a pace that adapts to 429s ([`adaptive`]);
//! - the outage breaker ([`breaker`]): one probe at a time while the API cannot be reached.

pub mod adaptive;
pub mod announced;
pub mod breaker;
pub mod budget;

use std::num::NonZeroU32;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::Notify;

use crate::retry::RetryPolicy;
use crate::settings::Rate;
use adaptive::Adaptive;
pub use announced::Announced;
use breaker::{Allows, Breaker};
use budget::Budget;

/// How a job is paced.
#[derive(Debug, Clone, Copy)]
pub struct PacingSettings {
    /// `--rate`: never more than this; `None` for no ceiling.
    pub ceiling: Option<Rate>,
    /// `--burst`: requests that may go out back to back under the ceiling.
    pub burst: NonZeroU32,
    /// `--max-retry-after`: the longest the job waits on the API's rate limit.
    pub max_retry_after: Duration,
    /// `--max-outage`: how long an API that answered before may be unreachable.
    pub max_outage: Duration,
    /// The backoff of 429s that say nothing of when to come back.
    pub backoff: RetryPolicy,
}

/// Leave to send one request; hand it back to [`Pacer::observe`] with what came of it.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    /// Requests issued before this one.
    seq: u64,
    /// Whether this request probes an API that could not be reached.
    probe: bool,
}

/// What an attempt met.
#[derive(Debug, Clone, Copy)]
pub enum Seen<'a> {
    /// An HTTP answer.
    Answer {
        /// Its status.
        status: u16,
        /// The rate limit its headers announced.
        announced: Option<Announced>,
        /// Its `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// No connection could be made (refused, no route, DNS, connect timeout): nothing was
    /// sent. Only these open the outage breaker.
    NotConnected(&'a str),
    /// No answer: a timeout, or the connection broke after the request went out.
    NoAnswer(&'a str),
}

/// What the attempt's row should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Go on as the retry policy says.
    Proceed,
    /// Send it again when the pacer allows, without spending an attempt: the API said
    /// "not now" (429), or could not be reached.
    Again,
    /// Stop the job.
    Halt(Halt),
}

/// Why pacing stops the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Halt {
    /// The API asked for a longer wait than `--max-retry-after`.
    RateLimited(String),
    /// The API could not be reached, from the start or for longer than `--max-outage`.
    Unreachable(String),
}

/// The pacer: shared by every worker of a job.
pub struct Pacer {
    settings: PacingSettings,
    ceiling: Option<DefaultDirectRateLimiter>,
    /// One task at a time waits for leave: FIFO, and no herd of wake-ups.
    queue: tokio::sync::Mutex<()>,
    /// Rings when what is allowed may have changed (a probe answered, a window learned).
    changed: Notify,
    state: Mutex<State>,
}

/// A pause of every request after a 429.
#[derive(Debug, Clone, Copy)]
struct Pause {
    since: Instant,
    until: Instant,
}

struct State {
    started: Instant,
    /// Requests issued so far.
    issued: u64,
    last_sent: Option<Instant>,
    pause: Option<Pause>,
    /// Time paused by pauses that ended.
    paused_before: Duration,
    /// A 429 of a request issued before this does not cut the pace again: it was in
    /// flight when the last one was met.
    refusal_round_from: u64,
    /// 429 rounds since the last success, for 429s that say nothing of when to return.
    refusal_rounds: u32,
    /// Since when every answer was a 429.
    limited_since: Option<Instant>,
    responses_429: u64,
    /// Whether the API's answers announce its window.
    announces: bool,
    latest_announced: Option<Announced>,
    budget: Budget,
    adaptive: Adaptive,
    breaker: Breaker,
}

/// The pacing figures of a finished job, for its summary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PacingReport {
    /// 429 answers met.
    pub responses_429: u64,
    /// Time every request was paused by the rate limit.
    pub paused_rate_limited: Duration,
    /// Time the API could not be reached.
    pub paused_unreachable: Duration,
    /// The limit the API announced last, if it did.
    pub announced: Option<Announced>,
}

impl Pacer {
    /// A pacer for one job.
    pub fn new(settings: PacingSettings) -> Pacer {
        let ceiling = settings
            .ceiling
            .map(|rate| RateLimiter::direct(quota(rate, settings.burst)));
        let now = Instant::now();
        Pacer {
            settings,
            ceiling,
            queue: tokio::sync::Mutex::new(()),
            changed: Notify::new(),
            state: Mutex::new(State {
                started: now,
                issued: 0,
                last_sent: None,
                pause: None,
                paused_before: Duration::ZERO,
                refusal_round_from: 0,
                refusal_rounds: 0,
                limited_since: None,
                responses_429: 0,
                announces: false,
                latest_announced: None,
                budget: Budget::default(),
                adaptive: Adaptive::new(settings.ceiling.map(|r| r.per_second)),
                breaker: Breaker::default(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every change is a few assignments: a panic cannot leave it half-made.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until one more request may go. Cancel-safe: dropping the future gives up
    /// the turn without issuing anything.
    pub async fn permit(&self) -> Ticket {
        let _turn = self.queue.lock().await;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.gate() {
                Gate::Open => {}
                Gate::Until(at) => {
                    let wait = at.saturating_duration_since(Instant::now());
                    tokio::select! {
                        () = futures_timer::Delay::new(wait) => {}
                        () = changed => {}
                    }
                    continue;
                }
                Gate::Changed => {
                    changed.await;
                    continue;
                }
            }
            if let Some(ceiling) = &self.ceiling {
                until_ready(ceiling).await;
            }
            // A pause may have begun while the ceiling held this request back.
            if matches!(self.gate(), Gate::Open) {
                return self.state().issue(Instant::now());
            }
        }
    }

    fn gate(&self) -> Gate {
        self.state().gate(Instant::now(), &self.settings)
    }

    /// Takes what came of the request `ticket` let out, and says what its row does next.
    pub fn observe(&self, ticket: Ticket, seen: Seen<'_>) -> Next {
        let next = self.state().observe(ticket, seen, &self.settings);
        self.changed.notify_waiters();
        next
    }

    /// A few words on the pace for the progress line: a pause and why, or what paces.
    pub fn describe(&self) -> Option<String> {
        self.state().describe(Instant::now())
    }

    /// The figures for the summary.
    pub fn report(&self) -> PacingReport {
        let state = self.state();
        let now = Instant::now();
        PacingReport {
            responses_429: state.responses_429,
            paused_rate_limited: state.paused_until(now),
            paused_unreachable: state.breaker.unreachable_for(now),
            announced: state.latest_announced,
        }
    }
}

/// What the pacer allows now.
enum Gate {
    /// A request may go.
    Open,
    /// Nothing before then (or a change).
    Until(Instant),
    /// Nothing until something changes.
    Changed,
}

impl State {
    fn gate(&mut self, now: Instant, settings: &PacingSettings) -> Gate {
        let mut until = now;
        if let Some(pause) = self.pause {
            if now < pause.until {
                until = pause.until;
            } else {
                self.paused_before += pause.until - pause.since;
                self.pause = None;
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
                .earliest(now, self.issued, self.last_sent)
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

    fn issue(&mut self, now: Instant) -> Ticket {
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

    fn observe(&mut self, ticket: Ticket, seen: Seen<'_>, settings: &PacingSettings) -> Next {
        let now = Instant::now();
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
                } else {
                    // Only a request sent after the last refusal shows the limit has eased.
                    if ticket.seq >= self.refusal_round_from {
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
            // A timeout or a broken connection reached the API: the retry policy decides.
            Seen::NoAnswer(_) => Next::Proceed,
            Seen::NotConnected(error) => {
                match self.breaker.failed(now, ticket.probe, settings.max_outage) {
                    Ok(true) if self.breaker.answered_once() => tracing::warn!(
                        "the API cannot be reached ({error}): sending paused; one request at a time probes it, for up to --max-outage {}",
                        humantime::format_duration(settings.max_outage)
                    ),
                    Ok(true) => tracing::warn!(
                        "the API cannot be reached ({error}): probing it a few times before the job stops"
                    ),
                    Ok(false) => {}
                    Err(given_up) => {
                        let message = if given_up.answered_once {
                            format!(
                                "the API could not be reached for {} (more than --max-outage {}): {error}",
                                seconds(given_up.for_how_long),
                                humantime::format_duration(settings.max_outage)
                            )
                        } else {
                            format!(
                                "the API cannot be reached: {error}. Check --base-url and the network"
                            )
                        };
                        return Next::Halt(Halt::Unreachable(message));
                    }
                }
                // Nothing was sent: the attempt is not spent.
                Next::Again
            }
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
        let limited_since = *self.limited_since.get_or_insert(now);
        let limited_for = (now + wait).duration_since(limited_since);
        if limited_for > settings.max_retry_after {
            let max = humantime::format_duration(settings.max_retry_after);
            let message = if told.is_some_and(|t| t > settings.max_retry_after) {
                format!(
                    "the API's rate limit asks to wait {}, more than --max-retry-after {max}",
                    humantime::format_duration(Duration::from_secs(wait.as_secs()))
                )
            } else {
                format!(
                    "the API has refused every request (429) for {}, more than --max-retry-after {max}",
                    seconds(limited_for)
                )
            };
            return Next::Halt(Halt::RateLimited(message));
        }
        let until = now + wait;
        match &mut self.pause {
            Some(pause) if now < pause.until => pause.until = pause.until.max(until),
            _ => {
                if let Some(ended) = self.pause.take() {
                    self.paused_before += ended.until - ended.since;
                }
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

    fn describe(&self, now: Instant) -> Option<String> {
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
            .map(|rate| format!("pace {rate:.1}/s (adapting to 429s)"))
    }
}

/// A duration for a message: `41.2 s`.
fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// A duration for the progress line: `41 s`.
fn whole_seconds(d: Duration) -> String {
    format!("{} s", d.as_secs_f64().round() as u64)
}

/// GCRA quota: one request per `1/rate`, `burst` of them back to back.
fn quota(rate: Rate, burst: NonZeroU32) -> Quota {
    let period = Duration::from_secs_f64(1.0 / rate.per_second).max(Duration::from_nanos(1));
    Quota::with_period(period)
        .expect("the period is above zero")
        .allow_burst(burst)
}

/// How long before its permit is due a waiter stops sleeping and starts polling.
const PERMIT_SPIN: Duration = Duration::from_micros(200);

/// Resolves when the limiter grants a permit, within microseconds of the moment it is due.
///
/// governor's own `until_ready` sleeps the whole wait, and a timer wakes 100 µs or more
/// late on a busy machine. With `--burst 1` a late permit is lost for good (the next one is
/// due a full period after it), so at 500/s the job would reach only ~94 % of the rate.
/// Sleeping until shortly before the permit is due and then polling, yielding to the
/// runtime between polls, holds the rate at 99 % for a few percent of one core.
async fn until_ready(limiter: &DefaultDirectRateLimiter) {
    while let Err(not_until) = limiter.check() {
        let wait = not_until.wait_time_from(limiter.clock().now());
        if wait > PERMIT_SPIN {
            futures_timer::Delay::new(wait - PERMIT_SPIN).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
}
