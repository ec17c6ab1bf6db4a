//! Each row's fate before any request, decided in one place: kept from an earlier run,
//! invalid, settled by the preflight list, planned, or sent (and with which verb).

use std::time::SystemTime;

use csv::ByteRecord;

use super::shared::{Before, Mode, Shared};
use crate::api::{RowRequest, Verb};
use crate::input::{DUPLICATE_IN_INPUT, InputRow};
use crate::model::notes::NOT_LISTED;
use crate::model::{Earlier, OnExists, Operation, Prior, RowOutcome, Status};
use crate::records::ledger::{Because, Final, Held, Kept, Standing, settle};

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

/// Whether a row may need a request: it can be sent, and no earlier run recorded it done
/// (in the results file the job continues, or in the one it is read from). A row recorded
/// done is kept, or PUT, which needs no list.
pub(crate) fn needs_a_request(input_row: &InputRow) -> bool {
    let earlier = input_row.earlier.as_ref().map(|e| e.prior);
    let recorded = [input_row.logged, earlier];
    input_row.request.is_ok() && !recorded.iter().flatten().any(|p| p.success)
}

pub(crate) fn triage(shared: &Shared, input_row: InputRow) -> Triage {
    let InputRow {
        row,
        name,
        cells,
        request,
        values,
        earlier,
        logged,
        ..
    } = input_row;
    let duplicate = matches!(&request, Err(e) if e.code == DUPLICATE_IN_INPUT);
    let before = shared.before(name.as_deref());
    // A run's success whose workspace the list does not show any more (a rollback, a
    // delete, someone's cleanup) is no success now: the tenant is new again. Only when
    // the list came before every row: a list made at the first row that needed one (a
    // pipe, read once) checks no row before it, and so checks none.
    let vanished =
        shared.listed_first && shared.operation == Operation::Create && before == Before::NotListed;
    let history = History {
        logged,
        earlier: earlier.as_ref(),
        duplicate,
        vanished,
    };
    let on_exists = shared.mode.sender().map_or(OnExists::Skip, |s| s.on_exists);
    // An update PUTs a row's values; a run with --on-exists update PUTs a taken name's.
    let puts_changes = matches!(shared.mode, Mode::Send(_))
        && (shared.operation == Operation::Update
            || (shared.operation == Operation::Create && on_exists == OnExists::Update));
    let (standing, cells) = match history.fate(row, name.as_deref(), values, cells, puts_changes) {
        Fate::Keep(kept) => return Triage::Done(Final::Kept(kept)),
        Fate::Send(standing, cells) => (standing, cells),
    };
    let row = history.carried((row, name, values), cells, before, standing);
    let request = match request {
        Err(error) => return Triage::Done(done(row, Status::Invalid, error.code, &error.message)),
        Ok(request) => request,
    };
    let mut verb = Verb::first_of(shared.operation);
    if row
        .standing
        .as_ref()
        .is_some_and(|s| s.because == Because::Changed)
    {
        verb = Verb::Put;
    }
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
        Mode::Plan(_) if let Some(reason) = shared.stopped() => {
            Triage::Done(done(row, Status::Skipped, reason.code(), reason.message()))
        }
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

/// Whether a row is kept from an earlier run or sent.
enum Fate {
    /// Kept, as the record says.
    Keep(Kept),
    /// Sent; over a record that stands unless this run learns otherwise, if any.
    Send(Option<Standing>, ByteRecord),
}

impl History<'_> {
    /// A success of an earlier run is kept as its record says, with the values it was
    /// sent with, even if the row has changed since: the workspace has those. It is sent
    /// again when its workspace has vanished from the list, or when its values changed and
    /// the job PUTs them (`puts_changes`); its record then stands unless this run learns
    /// otherwise. A second row of a name is never a success.
    fn fate(
        &self,
        row: u64,
        name: Option<&str>,
        values: u64,
        cells: ByteRecord,
        puts_changes: bool,
    ) -> Fate {
        if self.duplicate {
            return Fate::Send(None, cells);
        }
        let (prior, held) = match (self.logged.filter(|p| p.success), self.earlier) {
            (Some(prior), _) => (prior, Held::At(prior)),
            (None, Some(earlier)) if earlier.prior.success => (
                earlier.prior,
                Held::Cells {
                    results: earlier.results.clone(),
                    cells: cells.clone(),
                },
            ),
            _ => return Fate::Send(None, cells),
        };
        let standing = |because| Standing {
            status: prior.status.unwrap_or(Status::Exists),
            held: held.clone(),
            because,
        };
        if self.vanished {
            tracing::debug!(
                row,
                workspace = name,
                "recorded done by an earlier run, but not listed now: sent again"
            );
            return Fate::Send(Some(standing(Because::Vanished)), cells);
        }
        // A name that was taken (`exists`) was sent nothing: its values are only the row's.
        let never_put = prior.status == Some(Status::Exists);
        let changed = !never_put && prior.values != 0 && values != 0 && prior.values != values;
        if puts_changes && (changed || never_put) {
            return Fate::Send(Some(standing(Because::Changed)), cells);
        }
        Fate::Keep(Kept {
            row,
            name: name.map(str::to_owned),
            held,
            changed,
            note: None,
            sent: None,
            unsettled: false,
        })
    }

    /// The row as it is carried to its outcome, with what earlier attempts left unknown.
    fn carried(
        &self,
        (row, name, values): (u64, Option<String>, u64),
        cells: ByteRecord,
        before: Before,
        standing: Option<Standing>,
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
        let lost_values = earlier_priors
            .iter()
            .flatten()
            .filter(|p| p.maybe_created)
            .map(|p| p.values)
            .find(|v| *v != 0)
            .unwrap_or(0);
        // One the record says was there before the job (exists, updated) is never ours.
        let there_before = standing
            .as_ref()
            .is_some_and(|s| s.status != Status::Created);
        Carried {
            row,
            name,
            cells,
            maybe_created,
            absent_before: !there_before
                && (before == Before::NotListed
                    || earlier_priors.iter().flatten().any(|p| p.absent_before)),
            standing,
            values,
            lost_values,
        }
    }
}

/// The final record of a row settled without a request: its outcome, unless it stands
/// over a record this outcome cannot replace.
pub(crate) fn done(mut row: Carried, status: Status, code: &str, message: &str) -> Final {
    let standing = row.standing.take();
    settle(unsent(row, status, code, message), standing)
}

/// A run's row whose name the list showed before the run: settled without a request
/// (`exists`, or ours after a lost answer), or given back to be `PUT` (`--on-exists
/// update`).
fn listed_before(shared: &Shared, mut row: Carried, on_exists: OnExists) -> Result<Final, Carried> {
    // Listed now, though not before an earlier attempt of ours: that attempt made it.
    let ours = row.maybe_created && row.absent_before;
    let (status, code, message) = match (on_exists, ours, row.maybe_created) {
        (OnExists::Update, ..) => return Err(row),
        // Ours, made by an earlier run's attempt whose values nobody knows: PUT the row's.
        (_, true, _) if row.lost_in_an_earlier_run() && matches!(shared.mode, Mode::Send(_)) => {
            return Err(row);
        }
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
    Ok(done(row, status, code, &message))
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
    Triage::Done(done(row, Status::Planned, "", message))
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
    /// An earlier run recorded what the API did to the workspace, and this run sends the
    /// row again (its workspace not listed now, or its values changed): that record stands
    /// unless this run learns otherwise.
    pub(crate) standing: Option<Standing>,
    /// The row's values now, and those an earlier run's attempt that may have created the
    /// workspace sent (0 where there was none, or they are unknown).
    pub(crate) values: u64,
    pub(crate) lost_values: u64,
}

impl Carried {
    /// Whether the workspace may have been made (or last changed) by an earlier run's
    /// attempt whose answer was lost, with other values than the row's (or values nobody
    /// knows: a PUT cut short): a workspace of ours is then PUT with the row's, to make
    /// the record true.
    pub(crate) fn lost_in_an_earlier_run(&self) -> bool {
        self.lost_values != 0 && self.values != 0 && self.lost_values != self.values
    }
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
        values_unknown: false,
        latency_ms: None,
        finished_at: SystemTime::now(),
        cells: row.cells,
        maybe_created: row.maybe_created,
        absent_before: row.absent_before,
    }
}
