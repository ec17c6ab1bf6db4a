//! Each row's fate before any request, decided in one place: kept from an earlier run,
//! invalid, settled by the preflight list, planned, or sent (and with which verb).

use std::time::SystemTime;

use crate::cli::OnExists;
use crate::client::Verb;
use crate::input::{Earlier, InputRow};
use crate::job::{Mode, Shared};
use crate::operation::{Operation, RowRequest};
use crate::preflight::Before;
use crate::record::{DUPLICATE_IN_INPUT, NOT_LISTED, Prior, Status};
use crate::results::{Final, RowOutcome};

/// What becomes of one input row before any request.
pub(crate) enum Triage {
    /// Final already: kept from an earlier run, invalid, settled by the preflight list, or
    /// planned.
    Done(Final),
    /// To be sent, beginning with `verb`.
    Send {
        row: Carried,
        request: RowRequest,
        verb: Verb,
    },
}

pub(crate) fn triage(shared: &Shared, input_row: InputRow) -> Triage {
    let InputRow {
        row,
        name,
        cells,
        request,
        earlier,
        ..
    } = input_row;
    let duplicate = matches!(&request, Err(e) if e.code == DUPLICATE_IN_INPUT);
    let logged = shared
        .output_log
        .as_ref()
        .and_then(|log| log.get(name.as_deref(), row));
    let before = shared.before(name.as_deref());
    // A run's success whose workspace the list does not show any more (a rollback, a
    // delete, someone's cleanup) is no success now: the tenant is new again.
    let vanished = shared.operation == Operation::Create && before == Before::NotListed;
    // A success of an earlier run is kept as it is, even if the row has changed since:
    // the workspace exists. Only a second row of the same name is not a success.
    match (logged, &earlier) {
        _ if duplicate => {}
        (Some(Prior { success: true, .. }), _)
        | (
            _,
            Some(Earlier {
                prior: Prior { success: true, .. },
                ..
            }),
        ) if vanished => {
            tracing::debug!(
                row,
                workspace = name.as_deref(),
                "recorded done by an earlier run, but not listed now: sent again"
            );
        }
        (Some(prior), _) if prior.success => {
            return Triage::Done(Final::KeptAt {
                row,
                offset: prior.offset,
                cells,
            });
        }
        (_, Some(earlier)) if earlier.prior.success => {
            return Triage::Done(Final::Kept {
                row,
                results: earlier.results.clone(),
                cells,
            });
        }
        _ => {}
    }
    // A second row of a name was never sent: what the first row's attempts left is not
    // its own; nor is what came before a workspace that has vanished since.
    let priors = [logged, earlier.as_ref().map(|e| e.prior)];
    let earlier_priors = if duplicate || vanished {
        [None, None]
    } else {
        priors
    };
    let maybe_created = earlier_priors.iter().flatten().any(|p| p.maybe_created);
    // What an earlier run recorded of a workspace the list no longer shows: if its POST
    // finds it in place after all (a list that lags, or misses names), that record stands.
    let recorded_done = priors
        .into_iter()
        .flatten()
        .find(|p| vanished && !duplicate && p.success)
        .map(|p| {
            if p.created {
                Status::Created
            } else {
                Status::Exists
            }
        });
    let mut row = Carried {
        row,
        name,
        cells,
        maybe_created,
        // One the record says was there (exists, updated) was there before: never ours.
        absent_before: recorded_done != Some(Status::Exists)
            && (before == Before::NotListed
                || earlier_priors.iter().flatten().any(|p| p.absent_before)),
        recorded_done,
    };
    let request = match request {
        Err(error) => {
            return Triage::Done(Final::Outcome(unsent(
                row,
                Status::Invalid,
                error.code,
                &error.message,
            )));
        }
        Ok(request) => request,
    };
    let on_exists = shared.mode.sender().map_or(OnExists::Skip, |s| s.on_exists);
    let mut verb = shared.operation.first_verb();
    if shared.operation == Operation::Create && before == Before::Listed {
        // Listed now, though not before an earlier attempt of ours: that attempt made it.
        let ours = row.maybe_created && row.absent_before;
        let outcome = match (on_exists, ours, row.maybe_created) {
            (OnExists::Update, ..) => {
                verb = Verb::Put;
                None
            }
            (_, true, _) => Some((
                Status::Created,
                "",
                format!("an earlier attempt, whose answer was lost, created it ({NOT_LISTED})"),
            )),
            (_, false, true) => Some((
                Status::Exists,
                "",
                "listed before this run; an earlier attempt got no clear answer, and may have created it".to_owned(),
            )),
            (OnExists::Skip, false, false) => Some((
                Status::Exists,
                "",
                "listed before the run: not sent".to_owned(),
            )),
            (OnExists::Fail, false, false) => Some((
                Status::Failed,
                "WORKSPACE_NAME_ALREADY_EXISTS",
                "listed before the run, and --on-exists fail: not sent".to_owned(),
            )),
        };
        if let Some((status, code, message)) = outcome {
            if status == Status::Failed && matches!(shared.mode, Mode::Send(_)) {
                shared.count_failure();
            }
            // Whatever an earlier attempt left unknown is settled now.
            row.maybe_created = false;
            return Triage::Done(Final::Outcome(unsent(row, status, code, &message)));
        }
    }
    match &shared.mode {
        Mode::Send(_) => Triage::Send { row, request, verb },
        // A plan whose list was refused (a 401, a rate limit beyond its bound) says so on
        // every row, rather than plan rows it knows nothing about.
        Mode::Plan(_) if let Some(reason) = shared.stopped() => Triage::Done(Final::Outcome(
            unsent(row, Status::Skipped, reason.code(), reason.message()),
        )),
        Mode::Plan(_) | Mode::DryRun => {
            if let Some(settings) = request.settings() {
                tracing::debug!(row = row.row, body = %serde_json::to_string(settings).unwrap_or_default(), "planned");
            }
            let message = match (&shared.mode, shared.operation, verb, before) {
                (Mode::DryRun, Operation::Create, ..) => "",
                (Mode::DryRun, Operation::Update, ..) => "would update (PUT)",
                (Mode::DryRun, Operation::Delete, ..) => "would delete",
                (_, _, Verb::Put, Before::Listed) => "would update (PUT): listed before the run",
                (.., Before::Unknown) => "would be sent; whether it exists is unknown",
                _ => "would create (POST)",
            };
            Triage::Done(Final::Outcome(unsent(row, Status::Planned, "", message)))
        }
    }
}

/// What a row's results line needs besides its outcome.
pub(crate) struct Carried {
    pub(crate) row: u64,
    pub(crate) name: Option<String>,
    pub(crate) cells: csv::ByteRecord,
    /// An earlier attempt, of this run or one before, may have created the workspace
    /// without learning it (a timeout, a lost connection, a 5xx); for a delete, may have
    /// deleted it.
    pub(crate) maybe_created: bool,
    /// A preflight list, of this run or of the one that first sent the row, did not show
    /// the name: if it exists now, a run of ours created it.
    pub(crate) absent_before: bool,
    /// An earlier run recorded the row done (`created`, or in place), but the list does
    /// not show it now: sent again, and if it is there after all, that record stands.
    pub(crate) recorded_done: Option<Status>,
}

/// The outcome of a row that was never sent.
pub(crate) fn unsent(row: Carried, status: Status, code: &str, message: &str) -> RowOutcome {
    RowOutcome {
        row: row.row,
        name: row.name,
        status,
        error_code: code.to_owned(),
        error_message: message.to_owned(),
        http_status: None,
        attempts: 0,
        retries: 0,
        put_after_taken: false,
        latency_ms: None,
        finished_at: SystemTime::now(),
        cells: row.cells,
        maybe_created: row.maybe_created,
        absent_before: row.absent_before,
    }
}
