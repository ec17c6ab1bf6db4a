//! One row's attempts, until its outcome is final: a success, a final refusal, its
//! attempts spent, or the job stopping. Each attempt waits for the pacer and tells it what
//! came back; the retry policy decides about the rest.

use std::time::SystemTime;

use tokio::sync::{mpsc, oneshot};

use super::shared::{Mode, Sender, Shared, StopReason};
use super::trail::{NextAttempt, Trail};
use super::triage::Carried;
use super::writer::ToWrite;
use crate::api::retry::is_retryable_status;
use crate::api::{Answer, NoAnswer, RowRequest, Verb, says_absent};
use crate::model::notes::{IN_FLIGHT, NOT_CONNECTED, NOT_LISTED};
use crate::model::{OnExists, Operation, RowOutcome, Status};
use crate::pacing::{Next, Seen};
use crate::records::ledger::{self, Because, Final, settle};

/// The message of a row an earlier run recorded done, whose name the list did not show,
/// and whose POST found it in place.
const FOUND_AFTER_ALL: &str =
    "recorded so by an earlier run; not in the list before this run, but in place";

/// The same after an attempt of this run got no clear answer. Whether that attempt made
/// it (the list was right) or it was there all along (the list missed it), nobody can
/// tell; the record stands, and a rollback never deletes what may not be the job's.
const FOUND_AFTER_A_LOST_ANSWER: &str = "recorded so by an earlier run; not in the list before this run; there after an attempt that got no clear answer, which may have made it";

/// The message of a row whose name was taken after an attempt of this run got no clear
/// answer, when no list from before the run says whether the name was free.
const TAKEN_AFTER_A_LOST_ANSWER: &str = "taken after an attempt that got no clear answer: this run may have created it, or it was there before; without a list of the workspaces from before the run nobody can tell, so it is not claimed (a rollback leaves it)";

/// Sends one row, beginning with `verb`, until it has a final outcome; its record.
pub(crate) async fn provision(
    shared: &Shared,
    mut row: Carried,
    request: RowRequest,
    verb: Verb,
    outcomes_tx: &mpsc::Sender<ToWrite>,
) -> Final {
    let mut trail = Trail::default();
    let verdict =
        attempt_until_final(shared, (&request, verb, outcomes_tx), &mut row, &mut trail).await;
    if verdict.status == Status::Failed {
        shared.count_failure();
    }
    let standing = row.standing.take();
    let stands = verdict.stands;
    let outcome = RowOutcome {
        row: row.row,
        name: row.name,
        status: verdict.status,
        error_code: verdict.code,
        error_message: verdict.message,
        http_status: trail.http_status,
        attempts: trail.attempts,
        retries: trail.retries,
        put_after_taken: trail.put_after_taken,
        values_unknown: trail.last_verb == Some(Verb::Put) && !verdict.status.is_done(),
        latency_ms: trail.started.map(|t| t.elapsed().as_millis() as u64),
        finished_at: SystemTime::now(),
        cells: row.cells,
        maybe_created: row.maybe_created,
        absent_before: row.absent_before,
    };
    match standing {
        Some(standing) if stands => {
            let note = outcome.error_message.clone();
            ledger::stands(outcome, standing, &note)
        }
        standing => settle(outcome, standing),
    }
}

/// The record a row gets just before its first request goes out (and before the PUT
/// that follows a taken name): what a rerun reads if the process dies before the row's
/// final record is written. A row sent again over a record that stands gets that record
/// again, with a note. Waits for it to be written; `Err` if it could not be: then the
/// request does not go out.
async fn record_sending(
    row: &Carried,
    verb: Verb,
    outcomes_tx: &mpsc::Sender<ToWrite>,
) -> Result<(), StopReason> {
    let pending = match &row.standing {
        Some(standing) => ledger::in_flight(row.row, row.name.clone(), standing, verb == Verb::Put),
        None => Final::Outcome(RowOutcome {
            row: row.row,
            name: row.name.clone(),
            status: Status::Skipped,
            error_code: StopReason::Interrupted.code().to_owned(),
            error_message: IN_FLIGHT.to_owned(),
            http_status: None,
            attempts: 1,
            retries: 0,
            put_after_taken: false,
            latency_ms: None,
            finished_at: SystemTime::now(),
            cells: row.cells.clone(),
            // A PUT creates nothing: it leaves the row's own question where it was.
            maybe_created: verb != Verb::Put || row.maybe_created,
            absent_before: row.absent_before,
            values_unknown: verb == Verb::Put,
        }),
    };
    let (written_tx, written_rx) = oneshot::channel();
    let sent = outcomes_tx
        .send(ToWrite::Sending(Box::new(pending), written_tx))
        .await;
    match (sent, written_rx.await) {
        (Ok(()), Ok(true)) => Ok(()),
        _ => Err(StopReason::OutputFailed),
    }
}

/// A row's final status with its code and message.
struct Verdict {
    status: Status,
    code: String,
    message: String,
    /// The workspace is in place as the record that stands says: that record is kept, with
    /// the message after it.
    stands: bool,
}

impl Verdict {
    fn new(status: Status, code: &str, message: impl Into<String>) -> Verdict {
        Verdict {
            status,
            code: code.to_owned(),
            message: message.into(),
            stands: false,
        }
    }

    /// The job stopped before this row's next attempt.
    fn stopped(reason: StopReason, trail: &Trail) -> Verdict {
        let message = match trail.attempts {
            0 => reason.message().to_owned(),
            // Said first, so that a later run reads that this row created nothing.
            n if trail.not_connected => format!(
                "{NOT_CONNECTED}: {} ({n} attempts)",
                reason.message().trim_start_matches("not sent: ")
            ),
            n => format!(
                "{}, after {n} attempt(s) whose outcome was not final",
                reason.message().replacen("not sent", "not finished", 1)
            ),
        };
        Verdict::new(Status::Skipped, reason.code(), message)
    }
}

/// What one attempt that was not a success left: its code and message, and the server's
/// `Retry-After`.
struct NotYet {
    code: String,
    message: String,
    retry_after: Option<std::time::Duration>,
}

/// What an answer (or its absence) means for the row.
enum Judged {
    /// The row's outcome.
    Final(Verdict),
    /// The POST met a taken name and `--on-exists update` asks for a PUT.
    PutInstead,
    /// Not final: worth another attempt, if the row has attempts left.
    NotYet(NotYet),
}

/// `row.maybe_created`: an earlier attempt may already have created (or deleted) the
/// workspace; set when one of these attempts may have.
async fn attempt_until_final(
    shared: &Shared,
    (request, mut verb, outcomes_tx): (&RowRequest, Verb, &mpsc::Sender<ToWrite>),
    row: &mut Carried,
    trail: &mut Trail,
) -> Verdict {
    let Mode::Send(sender) = &shared.mode else {
        unreachable!("only a sending job provisions");
    };
    // Attempts of the current verb that count against --max-attempts: switching to PUT
    // starts a fresh budget, and a 429 or a connection never made spends none.
    let mut tries = 0;
    let mut next = NextAttempt::First;
    let timed_out = format!(
        "no answer within {}",
        humantime::format_duration(sender.timeout)
    );
    loop {
        let ticket = match shared.permit().await {
            Ok(ticket) => ticket,
            Err(reason) => return Verdict::stopped(reason, trail),
        };
        // Before the row's first request, and before the PUT that follows a taken name.
        let first_of_its_verb = trail.attempts == 0 || matches!(next, NextAttempt::PutAfterTaken);
        if first_of_its_verb && let Err(reason) = record_sending(row, verb, outcomes_tx).await {
            shared.pacer().release(ticket);
            shared.stop(reason);
            return Verdict::stopped(shared.stopped().unwrap_or(reason), trail);
        }
        trail.going_out(next);
        trail.last_verb = Some(verb);
        next = NextAttempt::Again;
        let sent = sender
            .client
            .send(verb, request.body(verb), request.name())
            .await;
        if let Err(NoAnswer::Unbuildable(why) | NoAnswer::Untrusted(why)) = &sent {
            // No attempt: nothing went out. A request that cannot be built says nothing of
            // the API; a certificate the job does not trust, no retry mends.
            shared.pacer().release(ticket);
            trail.not_sent();
            if matches!(sent, Err(NoAnswer::Untrusted(_))) {
                return Verdict::stopped(shared.distrust(why), trail);
            }
            let message = format!("the request cannot be built ({why}): nothing was sent");
            return Verdict::new(Status::Invalid, "INVALID_NAME", message);
        }
        trail.came_back(&sent, verb, row);
        match shared.pacer().observe(ticket, seen(&sent, &timed_out)) {
            Next::Proceed => {}
            Next::Again => continue,
            Next::Halt(halt) => return Verdict::stopped(shared.halt(halt), trail),
        }
        tries += 1;
        let judged = match sent {
            Err(no_answer) => Judged::NotYet(not_answered(no_answer, &timed_out)),
            Ok(answer) => judge(shared, sender, verb, row, answer),
        };
        let not_yet = match judged {
            Judged::Final(verdict) => return verdict,
            Judged::PutInstead => {
                verb = Verb::Put;
                tries = 0;
                next = NextAttempt::PutAfterTaken;
                continue;
            }
            Judged::NotYet(not_yet) => not_yet,
        };
        if tries >= sender.retry.max_attempts {
            return Verdict::new(Status::Failed, &not_yet.code, not_yet.message);
        }
        if let Err(reason) = back_off(shared, sender, tries, &not_yet).await {
            return Verdict::stopped(reason, trail);
        }
    }
}

/// What the pacer is told of an attempt.
fn seen<'a>(sent: &'a Result<Answer, NoAnswer>, timed_out: &'a str) -> Seen<'a> {
    match sent {
        Ok(answer) => Seen::Answer {
            status: answer.status,
            announced: answer.announced,
            retry_after: answer.retry_after,
        },
        Err(
            NoAnswer::ConnectFailed(message)
            | NoAnswer::Unbuildable(message)
            | NoAnswer::Untrusted(message),
        ) => Seen::NotConnected(message),
        Err(NoAnswer::Lost(message)) => Seen::NoAnswer(message),
        Err(NoAnswer::Timeout) => Seen::NoAnswer(timed_out),
    }
}

/// An attempt that got no answer: worth another.
fn not_answered(no_answer: NoAnswer, timed_out: &str) -> NotYet {
    let (code, message) = match no_answer {
        NoAnswer::Timeout => ("TIMEOUT", timed_out.to_owned()),
        // The pacer sends these again (or stops the job): kept so that a change there
        // cannot leave such an attempt without its code.
        NoAnswer::ConnectFailed(message) => {
            ("CONNECTION_ERROR", format!("{NOT_CONNECTED}: {message}"))
        }
        NoAnswer::Lost(message) | NoAnswer::Unbuildable(message) | NoAnswer::Untrusted(message) => {
            ("CONNECTION_ERROR", message)
        }
    };
    NotYet {
        code: code.to_owned(),
        message,
        retry_after: None,
    }
}

/// What an answer means for the row.
fn judge(shared: &Shared, sender: &Sender, verb: Verb, row: &Carried, answer: Answer) -> Judged {
    // Before all else: a refused key's message may read like anything ("not found").
    if answer.refuses_key() {
        shared.stop(StopReason::Unauthorized);
        return Judged::Final(Verdict::new(
            Status::Failed,
            answer.code.as_deref().unwrap_or("HTTP_401"),
            answer.message,
        ));
    }
    if verb == Verb::Delete && says_absent(&answer) {
        // Gone, as asked: by an earlier attempt whose answer was lost, or before.
        return Judged::Final(if row.maybe_created {
            let message = "gone after an attempt that got no clear answer: that attempt deleted it, unless it was absent already";
            Verdict::new(Status::Deleted, "", message)
        } else {
            Verdict::new(Status::Absent, "", answer.message)
        });
    }
    let Some(code) = answer.code else {
        return Judged::Final(succeeded(shared, verb, row));
    };
    if code == "WORKSPACE_NAME_ALREADY_EXISTS" && verb == Verb::Post {
        return name_taken(sender.on_exists, row, &code, answer.message);
    }
    if !is_retryable_status(answer.status) {
        return Judged::Final(Verdict::new(Status::Failed, &code, answer.message));
    }
    Judged::NotYet(NotYet {
        code,
        message: answer.message,
        retry_after: answer.retry_after,
    })
}

/// A success: what it says of the row, after what earlier attempts and runs left.
fn succeeded(shared: &Shared, verb: Verb, row: &Carried) -> Verdict {
    let creating = shared.operation == Operation::Create;
    if let (Verb::Put, Some(standing)) = (verb, &row.standing) {
        // A workspace this job created stays the job's when it is PUT: a rollback of the
        // file still deletes it.
        let status = match standing.status {
            Status::Created => Status::Created,
            _ => Status::Updated,
        };
        let message = match standing.because {
            Because::Vanished => FOUND_AFTER_ALL,
            Because::Changed if standing.status == Status::Exists => {
                "the name was taken before; this run PUT the row's values"
            }
            Because::Changed if status == Status::Created => {
                "created by an earlier run; its values changed since, and this run PUT them"
            }
            Because::Changed => "its values changed since an earlier run, and this run PUT them",
        };
        return Verdict::new(status, "", message);
    }
    match (verb, creating && row.maybe_created, row.absent_before) {
        (Verb::Post, ..) => Verdict::new(Status::Created, "", ""),
        (Verb::Delete, ..) => Verdict::new(Status::Deleted, "", ""),
        // Not there before the run, there after a lost answer: ours.
        (Verb::Put, true, true) => Verdict::new(
            Status::Created,
            "",
            format!(
                "an earlier attempt, whose answer was lost, created it ({NOT_LISTED}); then its settings were PUT"
            ),
        ),
        // Taken after an answer was lost: ours, or there before the run; without a list
        // of the names before the run nobody can tell. The PUT made its settings true, and
        // `updated` claims no more than that: a rollback must never delete what the run
        // did not create.
        (Verb::Put, true, false) => Verdict::new(
            Status::Updated,
            "",
            "its settings were PUT; an earlier attempt, whose answer was lost, may have created it",
        ),
        (Verb::Put, false, _) => Verdict::new(Status::Updated, "", ""),
    }
}

/// A POST that met a taken name.
fn name_taken(on_exists: OnExists, row: &Carried, code: &str, message: String) -> Judged {
    // Recorded by an earlier run, not listed now, in place after all: the list missed it,
    // and the record stands (with its settings PUT if asked). A lost answer of this
    // re-send changes nothing: created stays ours, and what was there before stays not
    // ours.
    if let Some(standing) = &row.standing
        && on_exists != OnExists::Update
    {
        let message = if row.maybe_created && standing.status != Status::Created {
            FOUND_AFTER_A_LOST_ANSWER
        } else {
            FOUND_AFTER_ALL
        };
        return Judged::Final(Verdict {
            stands: true,
            ..Verdict::new(standing.status, "", message)
        });
    }
    Judged::Final(match (on_exists, row.maybe_created, row.absent_before) {
        // The PUT makes the row's settings true whoever created it.
        (OnExists::Update, ..) => return Judged::PutInstead,
        // Ours, made by an earlier run's attempt whose values nobody knows: PUT the row's,
        // so that the record says what the workspace has.
        (_, true, true) if row.lost_in_an_earlier_run() => return Judged::PutInstead,
        // The list before the run did not show it: the lost answer made it.
        (_, true, true) => {
            let message = "an earlier attempt, whose answer was lost, created it";
            Verdict::new(Status::Created, "", message)
        }
        // Without a list from before the run, nobody can tell: not claimed, so that a
        // rollback never deletes a workspace that was there before.
        (_, true, false) => Verdict::new(Status::Exists, "", TAKEN_AFTER_A_LOST_ANSWER),
        (OnExists::Skip, false, _) => Verdict::new(Status::Exists, "", ""),
        (OnExists::Fail, false, _) => Verdict::new(Status::Failed, code, message),
    })
}

/// Sleeps before the next attempt; `Err` if the job stops meanwhile.
async fn back_off(
    shared: &Shared,
    sender: &Sender,
    failed_tries: u32,
    not_yet: &NotYet,
) -> Result<(), StopReason> {
    let wait = sender.retry.backoff(failed_tries, not_yet.retry_after);
    tracing::debug!(
        attempt = failed_tries,
        code = not_yet.code,
        ?wait,
        "retrying after: {}",
        not_yet.message
    );
    tokio::select! {
        biased;
        reason = shared.until_stopped() => Err(reason),
        _ = tokio::time::sleep(wait) => Ok(()),
    }
}
