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
mod state;

use std::num::NonZeroU32;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::Notify;

use crate::retry::RetryPolicy;
use crate::settings::Rate;
pub use announced::Announced;
use state::{Gate, State};

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
    /// sent.
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
    /// How many rows the job has still to finish, when it knows.
    rows_left: Box<dyn Fn() -> Option<u64> + Send + Sync>,
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
        Pacer {
            settings,
            ceiling,
            queue: tokio::sync::Mutex::new(()),
            changed: Notify::new(),
            state: Mutex::new(State::new(&settings, Instant::now())),
            rows_left: Box::new(|| None),
        }
    }

    /// Tells the pacer how to learn how many rows the job has still to finish: while they
    /// fit in what the API's window has left, nothing needs spreading.
    pub fn with_rows_left(
        mut self,
        rows_left: impl Fn() -> Option<u64> + Send + Sync + 'static,
    ) -> Pacer {
        self.rows_left = Box::new(rows_left);
        self
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every change is a few assignments: a panic cannot leave it half-made.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state, told the rows left as they are now, to decide what may go.
    fn deciding(&self) -> MutexGuard<'_, State> {
        let rows_left = (self.rows_left)();
        let mut state = self.state();
        state.rows_left = rows_left;
        state
    }

    /// Waits until one more request may go. Cancel-safe: dropping the future gives up
    /// the turn without issuing anything.
    pub async fn permit(&self) -> Ticket {
        let _turn = self.queue.lock().await;
        loop {
            if let Some(ceiling) = &self.ceiling
                && matches!(self.gate(), Gate::Open)
            {
                until_ready(ceiling).await;
            }
            // The gate is checked again as the request is issued: a pause may have begun
            // while the ceiling held it back.
            let now = Instant::now();
            if let Some(ticket) = self.deciding().try_issue(now, &self.settings) {
                return ticket;
            }
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
                }
                Gate::Changed => changed.await,
            }
        }
    }

    fn gate(&self) -> Gate {
        self.deciding().gate(Instant::now(), &self.settings)
    }

    /// Ends the request `ticket` let out without judging the API by it: a long list that
    /// gave no answer in time says nothing of whether writes are answered.
    pub fn release(&self, ticket: Ticket) {
        self.state().release(ticket);
        self.changed.notify_waiters();
    }

    /// Takes what came of the request `ticket` let out, and says what its row does next.
    pub fn observe(&self, ticket: Ticket, seen: Seen<'_>) -> Next {
        let next = self
            .state()
            .observe(ticket, seen, &self.settings, Instant::now());
        self.changed.notify_waiters();
        next
    }

    /// A few words on the pace for the progress line: a pause and why, or what paces.
    pub fn describe(&self) -> Option<String> {
        self.state().describe(Instant::now())
    }

    /// Requests issued so far.
    pub fn issued(&self) -> u64 {
        self.state().issued()
    }

    /// The figures for the summary.
    pub fn report(&self) -> PacingReport {
        self.state().report(Instant::now())
    }
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
