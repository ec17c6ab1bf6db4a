//! The pacer, shared by every worker of a job: one queue of requests waiting for leave,
//! the `--rate` ceiling, and the state that the API's answers move.

use std::num::NonZeroU32;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::Notify;

use super::protocol::{Next, PacingReport, PacingSettings, Seen, Ticket};
use super::state::{Gate, State};
use crate::model::Rate;

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
            if let Some(ceiling) = &self.ceiling
                && matches!(self.gate(), Gate::Open)
            {
                until_ready(ceiling).await;
            }
            // The gate is checked again as the request is issued: a pause may have begun
            // while the ceiling held it back.
            let now = Instant::now();
            if let Some(ticket) = self.state().try_issue(now, &self.settings) {
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
        self.state().gate(Instant::now(), &self.settings)
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
