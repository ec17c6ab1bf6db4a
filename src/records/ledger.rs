//! The ledger's rules: what a continued results file keeps, what may replace a record in
//! it, and what it refuses. `run --resume`, `retry`, `update`, `delete` and `rollback` all
//! go through these, so that no command can lose or weaken a record:
//!
//! - a file holds the records of one target and one shard: continuing it elsewhere is
//!   refused before any request ([`refuse_continuing`]);
//! - a record of what the API did to a workspace (`created`, `updated`, `deleted`) is
//!   replaced only by another outcome the API gave for it; an outcome that says nothing of
//!   the workspace (skipped, invalid, planned, a failure whose outcome is unknown, a
//!   preflight's `exists`) leaves it standing ([`settle`]);
//! - a kept record keeps the values it was sent with, not the input's now;
//! - records of names not in this run's input stay in the file (`writer::finish`).

use csv::ByteRecord;

use super::prior::PriorResults;
use crate::model::notes::{IN_FLIGHT, VALUES_UNKNOWN};
use crate::model::{Prior, RowOutcome, Shard, Status};

/// Where a record the file holds is: at an offset of the log this run continues, or
/// given whole (a results file read as input).
#[derive(Debug, Clone)]
pub enum Held {
    /// In the results log this run continues: the latest record of the row's name, as
    /// the log's reading gave it (its offset, its place in the ledger).
    At(Prior),
    /// These cells: the result columns, then the input's.
    Cells {
        /// The result cells, in `RESULT_COLUMNS` order.
        results: ByteRecord,
        /// The input's cells.
        cells: ByteRecord,
    },
}

/// Why a row whose record says the API did something to its workspace is sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Because {
    /// The preflight list does not show the workspace any more.
    Vanished,
    /// The row's values changed since they were sent, and the job PUTs the new ones.
    Changed,
}

impl Because {
    /// Said in the kept record's message when this run's attempt settled nothing.
    fn why(self) -> &'static str {
        match self {
            Because::Vanished => "not in the list before this run, so sent again",
            Because::Changed => "its values changed since, so PUT again",
        }
    }
}

/// A record that stands unless this run's outcome for the row says otherwise.
#[derive(Debug, Clone)]
pub struct Standing {
    /// Its status.
    pub status: Status,
    /// Where it is.
    pub held: Held,
    /// Why the row is sent again.
    pub because: Because,
}

/// A record the file holds already, written again as this run's record of the row.
#[derive(Debug, Clone)]
pub struct Kept {
    /// This run's row number.
    pub row: u64,
    /// The row's name, if it has one.
    pub name: Option<String>,
    /// The record.
    pub held: Held,
    /// The input's values differ from those the record was sent with: the record keeps
    /// the values the workspace has.
    pub changed: bool,
    /// What goes after the record's message: why it stands though this run sent the row.
    pub note: Option<String>,
    /// What this run sent for the row, if it sent it again (for the counts).
    pub sent: Option<Box<RowOutcome>>,
    /// This run sent the row again and its outcome settled nothing: the job did not do
    /// all it meant to (a rerun sends it again).
    pub unsettled: bool,
}

/// How the note of a record that stood over a re-send ends.
pub const STANDS: &str = ", so this record stands]";

/// Whether an outcome the API gave may replace a record of `created`, `updated` or
/// `deleted` that a row was sent again over: one that says what the API did or found of
/// the workspace, or, for a workspace the list no longer showed, the API's clear refusal
/// of the re-sent request (a 4xx about the request, not the key or the pace). A failure
/// whose outcome is unknown (5xx, timeouts), a stop, or a refusal of changed values says
/// nothing of the workspace, and the record stands.
pub fn settles(outcome: &RowOutcome, because: Because) -> bool {
    let clear_refusal = outcome.status == Status::Failed
        && outcome
            .http_status
            .is_some_and(|s| (400..500).contains(&s) && ![401, 403, 407, 408, 429].contains(&s));
    outcome.attempts > 0
        && (outcome.status.is_done() || (because == Because::Vanished && clear_refusal))
}

/// This run's final record of a row: its outcome, unless the row was sent again over a
/// record that stands and the outcome settles nothing, which then keeps that record.
pub fn settle(outcome: RowOutcome, standing: Option<Standing>) -> Final {
    match standing {
        Some(standing) if !settles(&outcome, standing.because) => {
            let met = match (outcome.error_code.as_str(), outcome.error_message.as_str()) {
                ("", "") => outcome.status.to_string(),
                ("", message) => format!("{}: {message}", outcome.status),
                (code, "") => format!("{} {code}", outcome.status),
                (code, message) => format!("{} {code}: {message}", outcome.status),
            };
            let why = standing.because.why();
            // A PUT that went out and settled nothing may have changed the values.
            let unknown = match standing.because == Because::Changed && outcome.attempts > 0 {
                true => format!(" ({VALUES_UNKNOWN})"),
                false => String::new(),
            };
            Final::Kept(Kept {
                row: outcome.row,
                name: outcome.name.clone(),
                held: standing.held,
                changed: standing.because == Because::Changed,
                note: Some(format!(
                    "[{why}; this run's outcome ({met}) says nothing of the workspace{unknown}{STANDS}"
                )),
                unsettled: outcome.status != Status::Planned,
                sent: Some(Box::new(outcome)),
            })
        }
        _ => Final::Outcome(outcome),
    }
}

/// The record a row sent again over a record that stands gets just before its request
/// goes out: that record, with a note that a request is in flight (and, for a PUT, that
/// the values may change), so that a process that dies meanwhile leaves the record
/// standing, not weakened.
pub fn in_flight(row: u64, name: Option<String>, standing: &Standing, put: bool) -> Final {
    let unknown = match put {
        true => format!(" ({VALUES_UNKNOWN})"),
        false => String::new(),
    };
    Final::Kept(Kept {
        row,
        name,
        held: standing.held.clone(),
        changed: false,
        note: Some(format!("[{IN_FLIGHT}{unknown}]")),
        sent: None,
        unsettled: false,
    })
}

/// A row sent again whose workspace turned out to be in place: the record stands, with
/// `note` after its message.
pub fn stands(outcome: RowOutcome, standing: Standing, note: &str) -> Final {
    Final::Kept(Kept {
        row: outcome.row,
        name: outcome.name.clone(),
        held: standing.held,
        changed: standing.because == Because::Changed,
        note: Some(note.to_owned()),
        unsettled: false,
        sent: Some(Box::new(outcome)),
    })
}

/// What the writer receives for each input row.
#[derive(Debug, Clone)]
pub enum Final {
    /// This run's outcome.
    Outcome(RowOutcome),
    /// A record the file holds already, which stands.
    Kept(Kept),
}

/// Why a results file is not continued by this run, with the way out; `None` when it may
/// be. `shown` is its path, `target` this run's `_target`.
pub fn refuse_continuing(prior: &PriorResults, shown: &str, target: &str) -> Option<String> {
    // A dry run sends nothing, and records no target.
    if let (rows @ 1.., other) = &prior.reached_elsewhere
        && !target.is_empty()
    {
        let (there, here) = (spelled(other), spelled(target));
        return Some(format!(
            "{shown} records the outcomes of {rows} rows obtained from {there}, and this run talks to {here}: a results file holds the records of one API, and continuing it here would mix the two (a rollback of it would then miss workspaces). Give a new -o for {here}, or run against {there} to continue it"
        ));
    }
    let shard = prior.shard;
    let outside: u64 = prior
        .per_shard
        .iter()
        .enumerate()
        .filter(|(i, _)| *i as u64 != shard.index)
        .map(|(_, n)| n)
        .sum();
    if outside == 0 {
        return None;
    }
    let of = |i: u64| Shard {
        index: i,
        count: shard.count,
    };
    let holders: Vec<u64> = (0..shard.count)
        .filter(|i| prior.per_shard[*i as usize] > 0)
        .collect();
    let way_out = match holders.as_slice() {
        [only] => format!("continue it with --shard {}", describe(of(*only))),
        _ => "it holds the rows of several shards (or of a run without --shard): continue it without --shard".to_owned(),
    };
    Some(format!(
        "{shown} holds {outside} records of rows outside shard {}: a results file is continued only by the shard that wrote it, and this run would drop the others' records. Give each shard its own -o, or {way_out}",
        describe(shard)
    ))
}

fn describe(shard: Shard) -> String {
    format!("{}/{}", shard.index, shard.count)
}

/// A target as an operator gives it: `--sandbox`, or the base URL.
fn spelled(target: &str) -> String {
    match target {
        "sandbox" => "an in-process sandbox (--sandbox)".to_owned(),
        url => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    fn outcome(status: Status, http_status: Option<u16>, attempts: u32) -> RowOutcome {
        RowOutcome {
            row: 1,
            name: Some("a".into()),
            status,
            error_code: String::new(),
            error_message: String::new(),
            http_status,
            attempts,
            retries: 0,
            put_after_taken: false,
            latency_ms: None,
            finished_at: SystemTime::now(),
            cells: ByteRecord::new(),
            maybe_created: false,
            absent_before: false,
            values_unknown: false,
        }
    }

    #[test]
    fn only_what_the_api_said_of_the_workspace_replaces_a_standing_record() {
        use Because::{Changed, Vanished};
        let cases = [
            (outcome(Status::Created, Some(200), 1), Vanished, true),
            (outcome(Status::Updated, Some(200), 1), Changed, true),
            (outcome(Status::Exists, None, 0), Vanished, false),
            (outcome(Status::Failed, Some(400), 1), Vanished, true),
            (outcome(Status::Failed, Some(400), 1), Changed, false),
            (outcome(Status::Failed, Some(500), 5), Vanished, false),
            (outcome(Status::Failed, None, 5), Vanished, false),
            (outcome(Status::Failed, Some(401), 1), Vanished, false),
            (outcome(Status::Skipped, None, 0), Vanished, false),
            (outcome(Status::Invalid, None, 0), Vanished, false),
        ];
        for (outcome, because, replaces) in cases {
            assert_eq!(
                settles(&outcome, because),
                replaces,
                "{outcome:?} {because:?}"
            );
            let standing = Standing {
                status: Status::Created,
                held: Held::At(Prior::unpack(7 << 9)),
                because,
            };
            let kept = matches!(settle(outcome, Some(standing)), Final::Kept(_));
            assert_eq!(kept, !replaces);
        }
    }

    #[test]
    fn a_standing_record_says_why_it_stands() {
        let mut failed = outcome(Status::Failed, Some(503), 5);
        failed.error_code = "HTTP_503".into();
        let standing = Standing {
            status: Status::Created,
            held: Held::At(Prior::unpack(7 << 9)),
            because: Because::Vanished,
        };
        let Final::Kept(kept) = settle(failed, Some(standing)) else {
            panic!("kept");
        };
        let note = kept.note.unwrap();
        assert!(
            note.starts_with("[not in the list before this run"),
            "{note}"
        );
        assert!(
            note.contains("failed HTTP_503") && note.ends_with(STANDS),
            "{note}"
        );
        assert!(kept.unsettled && !kept.changed);
    }
}
