//! Each row's fate before any request, decided in one place: kept from an earlier run,
//! invalid, settled by the preflight list, planned, or sent (and with which verb).

use std::time::SystemTime;

use csv::ByteRecord;

use super::shared::{Before, Mode, Shared};
use crate::api::{RowRequest, Verb};
use crate::input::{DUPLICATE_IN_INPUT, InputRow};
use crate::model::notes::NOT_LISTED;
use crate::model::{Earlier, OnExists, Operation, Prior, RowOutcome, Status};
use crate::records::Final;

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
    let history = History {
        logged,
        earlier: earlier.as_ref(),
        duplicate,
        vanished,
    };
    let cells = match history.kept(row, name.as_deref(), cells) {
        Ok(kept) => return Triage::Done(kept),
        Err(cells) => cells,
    };
    let row = history.carried(row, name, cells, before);
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
    let mut verb = Verb::first_of(shared.operation);
    let row = match shared.operation == Operation::Create && before == Before::Listed {
        false => row,
        true => match listed_before(shared, row, on_exists) {
            Ok(settled) => return Triage::Done(settled),
            Err(row) => {
                verb = Verb::Put;
                row
            }
        },
    };
    match &shared.mode {
        Mode::Send(_) => Triage::Send { row, request, verb },
        // A plan whose list was refused (a 401, a rate limit beyond its bound) says so on
        // every row, rather than plan rows it knows nothing about.
        Mode::Plan(_) if let Some(reason) = shared.stopped() => Triage::Done(Final::Outcome(
            unsent(row, Status::Skipped, reason.code(), reason.message()),
        )),
        Mode::Plan(_) | Mode::DryRun => planned(shared, row, &request, verb, before),
    }
}

/// What earlier runs recorded of a row: in the results file this run continues
/// (`logged`), and in the results file it reads as input (`earlier`, for `retry`).
struct History<'a> {
    logged: Option<Prior>,
    earlier: Option<&'a Earlier>,
    /// The row is a second row of its name.
    duplicate: bool,
    /// The row's success is of a workspace the list does not show any more.
    vanished: bool,
}

impl History<'_> {
    /// A success of an earlier run, kept as it is, even if the row has changed since: the
    /// workspace exists. Only a second row of the same name is not a success, nor one
    /// whose workspace has vanished. `Err` gives the cells back for a row that is not kept.
    fn kept(&self, row: u64, name: Option<&str>, cells: ByteRecord) -> Result<Final, ByteRecord> {
        if self.duplicate {
            return Err(cells);
        }
        let logged_success = self.logged.filter(|p| p.success);
        let earlier_success = self.earlier.filter(|e| e.prior.success);
        if self.vanished && (logged_success.is_some() || earlier_success.is_some()) {
            tracing::debug!(
                row,
                workspace = name,
                "recorded done by an earlier run, but not listed now: sent again"
            );
            return Err(cells);
        }
        if let Some(prior) = logged_success {
            return Ok(Final::KeptAt {
                row,
                offset: prior.offset,
                cells,
            });
        }
        match earlier_success {
            Some(earlier) => Ok(Final::Kept {
                row,
                results: earlier.results.clone(),
                cells,
            }),
            None => Err(cells),
        }
    }

    /// The row as it is carried to its outcome, with what earlier attempts left unknown.
    fn carried(
        &self,
        row: u64,
        name: Option<String>,
        cells: ByteRecord,
        before: Before,
    ) -> Carried {
        // A second row of a name was never sent: what the first row's attempts left is not
        // its own; nor is what came before a workspace that has vanished since.
        let priors = [self.logged, self.earlier.map(|e| e.prior)];
        let earlier_priors = if self.duplicate || self.vanished {
            [None, None]
        } else {
            priors
        };
        let maybe_created = earlier_priors.iter().flatten().any(|p| p.maybe_created);
        // What an earlier run recorded of a workspace the list no longer shows: if its POST
        // finds it in place after all (a list that lags, or misses names), that record
        // stands.
        let recorded_done = priors
            .into_iter()
            .flatten()
            .find(|p| self.vanished && !self.duplicate && p.success)
            .map(|p| {
                if p.created {
                    Status::Created
                } else {
                    Status::Exists
                }
            });
        Carried {
            row,
            name,
            cells,
            maybe_created,
            // One the record says was there (exists, updated) was there before: never ours.
            absent_before: recorded_done != Some(Status::Exists)
                && (before == Before::NotListed
                    || earlier_priors.iter().flatten().any(|p| p.absent_before)),
            recorded_done,
        }
    }
}

/// A run's row whose name the list showed before the run: settled without a request
/// (`exists`, or ours after a lost answer), or given back to be `PUT` (`--on-exists
/// update`).
fn listed_before(shared: &Shared, mut row: Carried, on_exists: OnExists) -> Result<Final, Carried> {
    // Listed now, though not before an earlier attempt of ours: that attempt made it.
    let ours = row.maybe_created && row.absent_before;
    let (status, code, message) = match (on_exists, ours, row.maybe_created) {
        (OnExists::Update, ..) => return Err(row),
        (_, true, _) => (
            Status::Created,
            "",
            format!("an earlier attempt, whose answer was lost, created it ({NOT_LISTED})"),
        ),
        (_, false, true) => (
            Status::Exists,
            "",
            "listed before this run; an earlier attempt got no clear answer, and may have created it".to_owned(),
        ),
        (OnExists::Skip, false, false) => (
            Status::Exists,
            "",
            "listed before the run: not sent".to_owned(),
        ),
        (OnExists::Fail, false, false) => (
            Status::Failed,
            "WORKSPACE_NAME_ALREADY_EXISTS",
            "listed before the run, and --on-exists fail: not sent".to_owned(),
        ),
    };
    if status == Status::Failed && matches!(shared.mode, Mode::Send(_)) {
        shared.count_failure();
    }
    // Whatever an earlier attempt left unknown is settled now.
    row.maybe_created = false;
    Ok(Final::Outcome(unsent(row, status, code, &message)))
}

/// A row of a plan or a dry run: what it would do.
fn planned(
    shared: &Shared,
    row: Carried,
    request: &RowRequest,
    verb: Verb,
    before: Before,
) -> Triage {
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
