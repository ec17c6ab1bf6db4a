//! The writer thread: final rows in, the results file and the running counts out. The
//! first record that cannot be written stops the sending (no request without its record).

use std::sync::Arc;

use indicatif::ProgressBar;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::shared::{Shared, StopReason};

use crate::model::{RowOutcome, Status};
use crate::records::{Final, ResultsWriter};
use crate::report::Tally;
use crate::report::progress;
use crate::report::signals;
use crate::report::terminal::for_terminal;

/// What goes to the writer.
pub enum ToWrite {
    /// A row's final record, with the concurrency slot of its request, if it was sent.
    Final(Final, Option<tokio::sync::OwnedSemaphorePermit>),
    /// A row about to be sent for the first time, recorded first: a process killed while
    /// its request is in flight leaves a record that a rerun (and a rollback) reads as a
    /// lost answer. The answer says whether it was written; no request goes out without.
    Sending(Box<Final>, tokio::sync::oneshot::Sender<bool>),
}

/// What the writer thread leaves.
pub struct Written {
    /// The writer, to finish the file.
    pub writer: ResultsWriter,
    /// The rows written, counted.
    pub tally: Tally,
    /// Why writing stopped, if it did.
    pub failure: Option<String>,
    /// Rows sent whose outcome came after writing stopped.
    pub unrecorded: u64,
}

/// Why writing failed, and what became of the rows written so far.
fn failure_text(writer: &ResultsWriter, error: &std::io::Error, rerun: &str) -> String {
    match writer.rescue(rerun) {
        rescued if rescued.is_empty() => error.to_string(),
        rescued => format!("{error}; {rescued}"),
    }
}

/// Starts the writer thread: it stops the job's sending at the first row it cannot write.
pub(super) fn spawn(
    writer: ResultsWriter,
    outcomes_rx: mpsc::Receiver<ToWrite>,
    shared: &Arc<Shared>,
    bar: &ProgressBar,
) -> JoinHandle<Written> {
    let (shared, bar) = (shared.clone(), bar.clone());
    tokio::task::spawn_blocking(move || {
        let stop_sending = || {
            shared.stop(StopReason::OutputFailed);
        };
        write_results(writer, outcomes_rx, stop_sending, &bar, shared.rerun)
    })
}

/// Writes every final row as it comes. The first write that fails stops the job at once
/// (no request goes out without its record); the rows still coming are only counted.
/// `rerun` is what settles the rows a failure leaves unrecorded, for its message.
pub fn write_results(
    mut writer: ResultsWriter,
    mut outcomes_rx: mpsc::Receiver<ToWrite>,
    stop_sending: impl Fn(),
    bar: &ProgressBar,
    rerun: &str,
) -> Written {
    let mut tally = Tally::default();
    let mut failure = None;
    let mut unrecorded = 0;
    // A sent row's slot is given back only once its record is written (when `_slot` is
    // dropped), so no more requests than --concurrency are ever without a record.
    while let Some(to_write) = outcomes_rx.blocking_recv() {
        let (row, _slot) = match to_write {
            ToWrite::Final(row, slot) => (row, slot),
            ToWrite::Sending(pending, written_tx) => {
                let written = failure.is_none() && {
                    match writer.write_pending(&pending) {
                        Ok(()) => true,
                        Err(error) => {
                            stop_sending();
                            failure = Some(failure_text(&writer, &error, rerun));
                            false
                        }
                    }
                };
                let _ = written_tx.send(written);
                continue;
            }
        };
        let sent = match &row {
            Final::Outcome(outcome) => outcome.attempts > 0,
            Final::Kept(kept) => kept.sent.as_ref().is_some_and(|o| o.attempts > 0),
        };
        if sent {
            signals::recorded();
        }
        if failure.is_some() {
            unrecorded += u64::from(sent);
            continue;
        }
        match writer.write_final(&row) {
            Ok(status) => {
                match &row {
                    Final::Outcome(outcome) => {
                        log_outcome(outcome);
                        tally.add(outcome);
                    }
                    Final::Kept(kept) => {
                        if let Some(sent) = &kept.sent {
                            log_kept(sent, kept.note.as_deref());
                        }
                        tally.add_kept(status, kept.changed, kept.sent.as_deref(), kept.unsettled);
                    }
                }
                progress::show_progress(bar, &tally);
            }
            Err(error) => {
                stop_sending();
                // NotFound comes from the check after the row was written: the file is
                // gone, and is written back with this row in it.
                let written = error.kind() == std::io::ErrorKind::NotFound;
                unrecorded += u64::from(sent && !written);
                failure = Some(failure_text(&writer, &error, rerun));
            }
        }
    }
    if failure.is_none()
        && let Err(error) = writer.check()
    {
        failure = Some(failure_text(&writer, &error, rerun));
    }
    Written {
        writer,
        tally,
        failure,
        unrecorded,
    }
}

/// Per-row failures at warn, with row, workspace name and code; the rest at debug. The
/// name's key is `workspace`, as in the span of the row's requests.
fn log_outcome(outcome: &RowOutcome) {
    let workspace = outcome.name.as_deref().unwrap_or("");
    match outcome.status {
        Status::Failed | Status::Invalid => tracing::warn!(
            row = outcome.row,
            workspace,
            status = %outcome.status,
            code = outcome.error_code,
            "{}",
            for_terminal(&outcome.error_message)
        ),
        _ => tracing::debug!(
            row = outcome.row,
            workspace,
            status = %outcome.status,
            attempts = outcome.attempts
        ),
    }
}

/// A row sent again whose earlier record stands: at warn when this run's outcome settled
/// nothing, with why the record stands.
fn log_kept(sent: &RowOutcome, note: Option<&str>) {
    let workspace = sent.name.as_deref().unwrap_or("");
    match sent.status.is_done() {
        true => tracing::debug!(row = sent.row, workspace, "{}", note.unwrap_or("")),
        false => tracing::warn!(
            row = sent.row,
            workspace,
            status = %sent.status,
            code = sent.error_code,
            "{}; the earlier record stands",
            for_terminal(&sent.error_message)
        ),
    }
}
