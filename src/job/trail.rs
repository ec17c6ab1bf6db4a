//! What the attempts of one row left behind, for its record: how many went out, whether
//! one may have created the workspace unseen, when the first one went out.

use std::time::Instant;

use super::triage::Carried;
use crate::api::retry::may_have_applied;
use crate::api::{Answer, NoAnswer, Verb};
use crate::report::signals;

/// What the attempts of one row left behind.
#[derive(Default)]
pub(super) struct Trail {
    /// Requests sent (429s and refused connections included).
    pub(super) attempts: u32,
    /// Attempts that sent the one before them again ([`NextAttempt::Again`]).
    pub(super) retries: u32,
    /// A PUT went out after the POST met a taken name ([`NextAttempt::PutAfterTaken`]).
    pub(super) put_after_taken: bool,
    /// The verb of the last request that went out.
    pub(super) last_verb: Option<Verb>,
    /// Status of the last attempt; `None` if it got no answer.
    pub(super) http_status: Option<u16>,
    /// The last attempt could not connect: it sent nothing.
    pub(super) not_connected: bool,
    /// When the first attempt went out (latency is not counted from the pacer's queue).
    pub(super) started: Option<Instant>,
}

/// What the next attempt of a row sends, for the counts: only a request sent again is a
/// retry.
#[derive(Clone, Copy)]
pub(super) enum NextAttempt {
    /// The row's first request.
    First,
    /// The request before it, again: after a retryable outcome, a 429 or a connection
    /// not made.
    Again,
    /// A PUT after the POST met a taken name (`--on-exists update`): a new request.
    PutAfterTaken,
}

impl Trail {
    /// An attempt goes out: counted once it does, so a job that stops first sent no
    /// retry, and no PUT.
    pub(super) fn going_out(&mut self, next: NextAttempt) {
        if self.attempts == 0 {
            self.started = Some(Instant::now());
            signals::sending();
        }
        self.attempts += 1;
        match next {
            NextAttempt::First => {}
            NextAttempt::Again => self.retries += 1,
            NextAttempt::PutAfterTaken => self.put_after_taken = true,
        }
    }

    /// The attempt just counted never went out.
    pub(super) fn not_sent(&mut self) {
        self.attempts -= 1;
        if self.attempts == 0 {
            self.started = None;
            signals::recorded();
        }
    }

    /// What came back of the attempt. Whatever comes next (a retry, a pause, the job
    /// stopping), this attempt may have created (or deleted) the workspace unseen: no
    /// answer after it went out, or an error that hides the outcome (a 5xx). A PUT
    /// creates nothing: a lost one leaves the question where it was.
    pub(super) fn came_back(
        &mut self,
        sent: &Result<Answer, NoAnswer>,
        verb: Verb,
        row: &mut Carried,
    ) {
        self.http_status = sent.as_ref().ok().map(|answer| answer.status);
        self.not_connected = matches!(sent, Err(NoAnswer::ConnectFailed(_)));
        row.maybe_created |= verb != Verb::Put
            && match sent {
                Err(NoAnswer::Timeout | NoAnswer::Lost(_)) => true,
                Err(_) => false, // never sent
                Ok(answer) => answer.code.is_some() && may_have_applied(answer.status),
            };
    }
}
