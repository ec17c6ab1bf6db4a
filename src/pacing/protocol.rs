//! What passes between the job and the pacer: the settings, the leave to send one request
//! ([`Ticket`]), what that request met ([`Seen`]), and what its row does next ([`Next`]).

use std::num::NonZeroU32;
use std::time::Duration;

use crate::api::{Announced, RetryPolicy};
use crate::model::{Rate, Shard};

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
    /// `--shard`: shards of one job behind one address split each window's last few
    /// requests between them by their index, not by chance.
    pub shard: Shard,
}

/// Leave to send one request; hand it back to [`Pacer::observe`] with what came of it.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    /// Requests issued before this one.
    pub(super) seq: u64,
    /// Whether this request probes an API that could not be reached.
    pub(super) probe: bool,
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
