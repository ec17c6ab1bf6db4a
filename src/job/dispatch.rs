//! The dispatcher: reads rows until the input ends, decides each one's fate before any
//! request, and hands the rows to send to workers under the concurrency bound.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::attempt;
use super::preflight;
use super::shared::{Mode, Shared, StopReason};
use super::triage::{Carried, Triage, done, needs_a_request, triage};
use super::writer::ToWrite;
use crate::api::{RowRequest, Verb};
use crate::input::InputRow;
use crate::model::Status;
use crate::records::Final;

/// How long, after the job stopped, the input may give no row before it is given up.
const STALLED_INPUT: Duration = Duration::from_secs(1);

/// Reads rows until the input ends, and sends each to its fate. Returns once every
/// worker has handed its outcome to the writer. With `list_on_demand`, the workspaces are
/// listed at the first row that needs a request, before it is sent.
///
/// Returns whether the input was read to its end. After a stop, an input that gives no row
/// for [`STALLED_INPUT`] (a pipe whose writer waits) is given up: the rows not yet read
/// cannot be recorded, and waiting for them would keep Ctrl-C from working.
pub(super) async fn dispatch(
    shared: &Arc<Shared>,
    rows_rx: &mut mpsc::Receiver<Vec<InputRow>>,
    outcomes_tx: mpsc::Sender<ToWrite>,
    mut list_on_demand: bool,
) -> bool {
    let concurrency = match &shared.mode {
        Mode::Send(sender) => sender.concurrency,
        Mode::Plan(_) | Mode::DryRun => 1,
    };
    let mut workers = Workers {
        shared: shared.clone(),
        slots: Arc::new(Semaphore::new(concurrency)),
        set: JoinSet::new(),
        outcomes_tx,
    };
    let mut reading = Reading {
        shared,
        read_before_stop: None,
        batch: Vec::new().into_iter(),
    };
    let mut ended = true;
    loop {
        let Some(input_row) = reading.next(rows_rx).await else {
            if shared.stopped().is_some() && !rows_rx.is_closed() {
                ended = false;
                tracing::warn!(
                    "the job stopped: rows of the input not read yet are not in the results"
                );
            }
            break;
        };
        if shared.stopped() == Some(StopReason::OutputFailed) {
            ended = false; // nothing more can be recorded
            break;
        }
        if list_on_demand && needs_a_request(&input_row) {
            list_on_demand = false;
            preflight::list_now(shared).await;
        }
        let handed = match triage(shared, input_row) {
            Triage::Done(final_row) => workers.record(final_row, None).await,
            Triage::Send { row, request, verb } => workers.send(row, request, verb).await,
        };
        if !handed {
            ended = false;
            break;
        }
    }
    workers.finish().await;
    ended
}

/// The rows of the input as the dispatcher takes them: after a stop, a piped input is
/// read no further than the rows it had already given.
struct Reading<'a> {
    shared: &'a Shared,
    /// Rows already read when a piped input is given up: they are recorded, the rest not.
    read_before_stop: Option<usize>,
    /// The rest of the batch of rows last taken (a pipe's come one by one).
    batch: std::vec::IntoIter<InputRow>,
}

impl Reading<'_> {
    /// The next row, or `None` when the input ends or is given up.
    async fn next(&mut self, rows_rx: &mut mpsc::Receiver<Vec<InputRow>>) -> Option<InputRow> {
        if let Some(row) = self.batch.next() {
            return Some(row);
        }
        let shared = self.shared;
        if shared.streamed_input && shared.stopped().is_some() {
            let left = self.read_before_stop.get_or_insert(rows_rx.len());
            if *left == 0 {
                return None;
            }
            *left -= 1;
        }
        // After a stop, a piped input is read no further: it may never end (a generator, or
        // a pipe fed back from this very results file). A file is read to its end, so that
        // every row is recorded; one that gives nothing for a while is given up too.
        let give_up = async || {
            shared.until_stopped().await;
            if !shared.streamed_input {
                tokio::time::sleep(STALLED_INPUT).await;
            }
        };
        let batch = tokio::select! {
            biased;
            batch = rows_rx.recv() => batch,
            () = give_up() => None,
        };
        self.batch = batch?.into_iter();
        self.batch.next()
    }
}

/// The workers of a job: one task per row in flight, each holding a concurrency slot
/// until its outcome is written.
struct Workers {
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    set: JoinSet<()>,
    outcomes_tx: mpsc::Sender<ToWrite>,
}

impl Workers {
    /// Hands a final row to the writer; `false` if the writer is gone.
    async fn record(&self, row: Final, slot: Option<OwnedSemaphorePermit>) -> bool {
        self.outcomes_tx
            .send(ToWrite::Final(row, slot))
            .await
            .is_ok()
    }

    /// Starts a worker for the row once a slot is free; a row the job stops before is
    /// recorded `skipped`. `false` if the writer is gone.
    async fn send(&mut self, row: Carried, request: RowRequest, verb: Verb) -> bool {
        let shared = &self.shared;
        let slot = tokio::select! {
            biased;
            _ = shared.until_stopped() => None,
            slot = self.slots.clone().acquire_owned() => slot.ok(),
        };
        let Some(slot) = slot else {
            let reason = shared.stopped().unwrap_or(StopReason::Interrupted);
            let skipped = done(row, Status::Skipped, reason.code(), reason.message());
            return self.record(skipped, None).await;
        };
        let (worker, outcomes_tx) = (shared.clone(), self.outcomes_tx.clone());
        // Retries and the HTTP stack's own logs carry the row they belong to. Not `name`:
        // as JSON the span's own name has that key.
        let span = tracing::debug_span!("row", row = row.row, workspace = row.name.as_deref());
        self.set.spawn(
            async move {
                let recorded = attempt::provision(&worker, row, request, verb, &outcomes_tx).await;
                let _ = outcomes_tx.send(ToWrite::Final(recorded, Some(slot))).await;
            }
            .instrument(span),
        );
        // Reap finished workers so the set stays as small as the concurrency.
        while let Some(done) = self.set.try_join_next() {
            count_lost(shared, done);
        }
        true
    }

    /// Waits for every worker to hand its outcome to the writer.
    async fn finish(mut self) {
        while let Some(done) = self.set.join_next().await {
            count_lost(&self.shared, done);
        }
    }
}

/// A worker that panicked took its row with it: a bug, but never a silent one. The row
/// has no record, so the job must not end as if it had.
fn count_lost(shared: &Shared, done: Result<(), tokio::task::JoinError>) {
    if done.is_err() {
        shared.lost_rows.fetch_add(1, Ordering::Relaxed);
        shared.stop(StopReason::OutputFailed);
    }
}
