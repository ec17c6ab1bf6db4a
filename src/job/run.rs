//! The job: a reader thread streams rows to one dispatcher, which hands valid rows to
//! workers under a concurrency bound; every attempt waits for the pacer; every row's final
//! outcome goes to one writer thread that owns the results file. All channels are bounded,
//! so memory stays flat however long the input is.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::dispatch::dispatch;
use super::preflight;
use super::progress;
use super::shared::{Mode, Shared, StopReason};
use super::writer::{self, ToWrite, Written};
use crate::input::{CsvFormat, InputError, InputReader, InputRow, Logbook};
use crate::model::{Input, Operation, Shard};
use crate::pacing::{Pacer, PacingReport};
use crate::records::as_input::read_log;
use crate::records::{Finished, Layout, PriorResults, ResultsWriter, ResumeError, Sink};
use crate::report::signals;
use crate::report::{Tally, error_line};

/// Rows in the reader → dispatcher and worker → writer channels at most.
const CHANNEL_ROWS: usize = 1024;

/// Rows of a file go from the reader to the dispatcher in batches of this many: a million
/// rows handed over one by one cost as many wake-ups of the other thread. Rows of a pipe
/// go one by one, as soon as they come.
const BATCH: usize = 64;

/// Everything a job needs, checked.
pub struct Job {
    /// The rows.
    pub source: Source,
    /// Where the results go.
    pub sink: Sink,
    /// The results file, for messages.
    pub output_name: String,
    /// The `_target` of this run's outcomes: the API's base URL, `sandbox`, or empty for a
    /// dry run.
    pub target: String,
    /// Earlier rows of the results file (`--resume`, or a `retry` going on into it): its
    /// successes are kept, not sent; this run appends to it and then compacts it.
    pub output_log: Option<Arc<PriorResults>>,
    /// Send, or only plan.
    pub mode: Mode,
    /// What each row's request does.
    pub operation: Operation,
    /// List every workspace before sending (`run`'s `--preflight`).
    pub preflight: bool,
    /// Some row is known beforehand to need a request: the list, if any, is made before
    /// the first row is read. Otherwise it waits for the first row that needs a request,
    /// so that a rerun with nothing to send sends nothing.
    pub to_send: bool,
    /// Only the rows of this shard.
    pub shard: Shard,
    /// Stop dispatching once more rows than this have failed.
    pub max_failures: Option<u64>,
    /// Counts rows as they become final (drawn or hidden).
    pub progress: ProgressBar,
    /// Without a drawn bar: how often to log the progress figures.
    pub progress_every: Option<Duration>,
    /// Write the results for a spreadsheet (`--excel`), or plainly (`--no-excel`);
    /// `None`: as the input was written (a spreadsheet's file gets a spreadsheet's).
    pub excel: Option<bool>,
}

/// When a job lists the workspaces that exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListWhen {
    /// Never: no preflight (`--no-preflight`, a dry run, an update, a delete).
    Never,
    /// Before the first row: a plan, and a run with rows known to need a request.
    First,
    /// At the first row that needs a request, if one does: a run whose rows are all
    /// recorded done (or cannot be known beforehand: stdin).
    OnDemand,
}

impl Job {
    /// When the workspaces are listed: a plan's before any row, a run's with
    /// `--preflight` before the first row that needs a request.
    fn list_when(&self) -> ListWhen {
        match &self.mode {
            Mode::Plan(_) => ListWhen::First,
            Mode::Send(_) if self.preflight && self.operation == Operation::Create => {
                match self.to_send {
                    true => ListWhen::First,
                    false => ListWhen::OnDemand,
                }
            }
            Mode::Send(_) | Mode::DryRun => ListWhen::Never,
        }
    }

    /// What settles the rows this job may leave unsent or unrecorded, in the words of the
    /// command running (`retry` has no --resume: it goes on with its file by itself), for
    /// the messages that say so.
    fn rerun(&self) -> &'static str {
        match (&self.mode, &self.sink, &self.source) {
            (Mode::Plan(_), ..) => "the same plan command",
            (_, Sink::Stdout, _) => "dbprov retry on the saved output",
            (_, _, Source::Results(_)) => "the same retry command",
            _ => "the same command with --resume",
        }
    }
}

/// Where the rows come from.
pub enum Source {
    /// A tenant CSV (`run`), and how it is written.
    Csv(Input, CsvFormat),
    /// A results file (`retry`): its successful rows are carried over unchanged.
    Results(Arc<PriorResults>),
    /// The rows a results file records as `created` on this run's target (`rollback`).
    Created(Arc<PriorResults>),
}

/// How a job ended.
#[derive(Debug)]
pub struct JobReport {
    /// Final rows by status and code, requests, latencies.
    pub tally: Tally,
    /// Why dispatching stopped early, if it did.
    pub stopped: Option<StopReason>,
    /// Wall time.
    pub elapsed: Duration,
    /// Why the results file could not be written, and what became of its rows.
    pub output_failure: Option<String>,
    /// Rows whose requests were sent but whose outcome could not be written.
    pub unrecorded: u64,
    /// 429s, pauses, the limit the API announced.
    pub pacing: PacingReport,
    /// What the preflight's list came to.
    pub listed: Listed,
}

/// What the preflight's list came to.
#[derive(Debug, Clone, Copy, Default)]
pub struct Listed {
    /// Workspaces listed; `None` without a list (not asked for, or failed).
    pub workspaces: Option<u64>,
    /// List requests sent (more than one after a failure or a 429).
    pub requests: u64,
}

/// Why a job could not run or finish.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The input cannot be read.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The earlier results cannot be used.
    #[error(transparent)]
    Resume(#[from] ResumeError),
    /// `--resume` into a results file written for other columns.
    #[error(
        "{output} was written for the columns {earlier}, but the input has {now}; give another -o to start a new results file"
    )]
    ColumnsChanged {
        /// The results file.
        output: String,
        /// Its input columns.
        earlier: String,
        /// The input's columns now.
        now: String,
    },
    /// The results file cannot be created or written.
    #[error("cannot write the results file {output}")]
    Output {
        /// The results file.
        output: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Runs a job to its end: every input row gets exactly one results row.
pub async fn run(job: Job) -> Result<JobReport, JobError> {
    let started = Instant::now();
    let rerun = job.rerun();
    signals::rerun_is(rerun);
    let streamed_input = job.source.is_streamed();
    let list_when = job.list_when();
    let logbook = job.output_log.clone().map(|log| log as Arc<dyn Logbook>);
    let reader = match open_reader(job.source, job.shard, job.operation, logbook).await {
        Ok(reader) => reader,
        Err(error) => {
            job.sink.discard_if_unused();
            return Err(error.into());
        }
    };
    let header = reader.header().clone();
    super::announce::announce(&header, job.operation, &job.mode);
    let excel = job.excel.unwrap_or_else(|| reader.from_a_spreadsheet());
    let layout = Layout::new(excel, reader.delimiter());
    let writer = open_writer(
        job.sink,
        job.output_log.as_ref(),
        header.carried_names(),
        &job.output_name,
        Target {
            name: &job.target,
            excel: job.excel == Some(true),
            layout,
        },
    )?
    .for_operation(job.operation);

    let (rows_tx, mut rows_rx) = mpsc::channel::<Vec<InputRow>>(CHANNEL_ROWS / BATCH);
    let reading = read_rows(reader, rows_tx, if streamed_input { 1 } else { BATCH });
    let pacer = job.mode.sender().map(|sender| Pacer::new(sender.pacing));
    let shared = Arc::new(Shared {
        mode: job.mode,
        operation: job.operation,
        listing: std::sync::Mutex::new(None),
        list_requests: AtomicU64::new(0),
        listed_first: list_when == ListWhen::First,
        pacer,
        stop_tx: watch::channel(None).0,
        max_failures: job.max_failures,
        failures: AtomicU64::new(0),
        lost_rows: AtomicU64::new(0),
        streamed_input,
        rerun,
    });
    let (outcomes_tx, outcomes_rx) = mpsc::channel::<ToWrite>(CHANNEL_ROWS);
    let writing = writer::spawn(writer, outcomes_rx, &shared, &job.progress);
    let shown = progress::show(&shared, &job.progress, job.progress_every);
    let ctrl_c = stop_on_interrupt(&shared);

    if list_when == ListWhen::First {
        preflight::list_now(&shared).await;
    }
    let on_demand = list_when == ListWhen::OnDemand;
    let input_ended = dispatch(&shared, &mut rows_rx, outcomes_tx, on_demand).await;
    // Every row is triaged: the list is needed no more.
    let listing = shared
        .listing
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    let listed = Listed {
        workspaces: listing.map(|l| l.len() as u64),
        requests: shared.list_requests.load(Ordering::Relaxed),
    };
    drop(rows_rx);
    ctrl_c.abort();
    progress::stop(shown).await;
    let pacing = shared.pacer.as_ref().map(Pacer::report).unwrap_or_default();
    let written = writing.await.expect("the results writer does not panic");
    let ended = Ended {
        started,
        pacing,
        listed,
        input_ended,
    };
    settle(&shared, written, reading, ended, &job.output_name).await
}

impl Source {
    /// Whether the rows come from a pipe or a stream, not a file: after a stop it is read
    /// no further.
    fn is_streamed(&self) -> bool {
        match self {
            Source::Csv(Input::Stdin, _) => true,
            Source::Csv(Input::File(path), _) => {
                !std::fs::metadata(path).is_ok_and(|m| m.is_file())
            }
            Source::Results(_) | Source::Created(_) => false,
        }
    }
}

/// Opens the rows of `source`: a tenant CSV, or a results file read as input.
async fn open_reader(
    source: Source,
    shard: Shard,
    operation: Operation,
    logbook: Option<Arc<dyn Logbook>>,
) -> Result<InputReader, InputError> {
    // An update or a delete names a workspace that exists, exactly; a rollback deletes
    // what a run created, under the name the run sent (trimmed), and records it so.
    let rollback = matches!(source, Source::Created(_));
    let exact_names = operation != Operation::Create && !rollback;
    tokio::task::spawn_blocking(move || {
        let reader = match source {
            Source::Csv(input, format) => InputReader::open(&input, format).and_then(|r| {
                if !operation.names_only() {
                    r.header().require_connection_type(&input.to_string())?;
                }
                Ok(r)
            }),
            Source::Results(log) => read_log(log, false),
            Source::Created(log) => read_log(log, true),
        };
        reader.map(|r| {
            r.with_shard(shard)
                .names_only(operation.names_only())
                .exact_names(exact_names)
                .names_as_sent(rollback)
                .with_logbook(logbook)
        })
    })
    .await
    .expect("the input reader does not panic")
}

/// The `_target` of this run's outcomes, and how a new results file is laid out.
struct Target<'a> {
    name: &'a str,
    excel: bool,
    layout: Layout,
}

/// The results writer: appending to the earlier results it continues (whose columns must
/// be the input's), or a new file.
fn open_writer(
    sink: Sink,
    output_log: Option<&Arc<PriorResults>>,
    carried_names: &csv::ByteRecord,
    output_name: &str,
    target: Target<'_>,
) -> Result<ResultsWriter, JobError> {
    let output_error = |source| JobError::Output {
        output: output_name.to_owned(),
        source,
    };
    match (output_log, sink) {
        (Some(log), Sink::File(file)) => {
            if &log.carried_names != carried_names {
                let names = |r: &csv::ByteRecord| {
                    let names: Vec<String> = r
                        .iter()
                        .map(|n| String::from_utf8_lossy(n).into_owned())
                        .collect();
                    names.join(",")
                };
                return Err(JobError::ColumnsChanged {
                    output: output_name.to_owned(),
                    earlier: names(&log.carried_names),
                    now: names(carried_names),
                });
            }
            let layout = Layout::continuing(target.excel, log.delimiter, log.crlf, log.bom);
            ResultsWriter::append(file, log, carried_names, target.name, layout)
        }
        (_, sink) => ResultsWriter::create(sink, carried_names, target.name, target.layout),
    }
    .map_err(output_error)
}

/// Reads the input on a thread of its own into `rows_tx`, in batches of up to `batch`
/// rows. The rows read before an error are sent before it is told.
fn read_rows(
    mut reader: InputReader,
    rows_tx: mpsc::Sender<Vec<InputRow>>,
    batch: usize,
) -> JoinHandle<Result<(), InputError>> {
    tokio::task::spawn_blocking(move || {
        let mut rows = Vec::with_capacity(batch);
        loop {
            let (row, ended) = match reader.next_row() {
                Ok(Some(row)) => (Some(row), None),
                Ok(None) => (None, Some(Ok(()))),
                Err(error) => (None, Some(Err(error))),
            };
            let more = row.is_some();
            rows.extend(row);
            if (rows.len() == batch || (!more && !rows.is_empty()))
                && rows_tx
                    .blocking_send(std::mem::replace(&mut rows, Vec::with_capacity(batch)))
                    .is_err()
            {
                return Ok(());
            }
            if let Some(ended) = ended {
                return ended;
            }
        }
    })
}

/// Stops the job on the first Ctrl-C (or SIGTERM), and says what happens next. A signal
/// before the job began (while the rows were counted) stops it before any request, not a
/// moment after the first few.
fn stop_on_interrupt(shared: &Arc<Shared>) -> JoinHandle<()> {
    let task = tokio::spawn({
        let shared = shared.clone();
        async move {
            signals::until_interrupted().await;
            shared.stop(StopReason::Interrupted);
            tracing::warn!(
                "interrupted: finishing the requests in flight, then writing the rest as skipped; Ctrl-C again (a second or more later) to exit at once"
            );
        }
    });
    if signals::interrupted_flag().load(Ordering::SeqCst) {
        shared.stop(StopReason::Interrupted);
    }
    task
}

/// What is known once the dispatcher has returned.
struct Ended {
    started: Instant,
    pacing: PacingReport,
    listed: Listed,
    /// The input was read to its end.
    input_ended: bool,
}

/// Ends the job: the rows lost or unrecorded are said, and the results file is rewritten
/// to one row per input row, unless that could only lose more.
async fn settle(
    shared: &Shared,
    mut written: Written,
    reading: JoinHandle<Result<(), InputError>>,
    ended: Ended,
    output_name: &str,
) -> Result<JobReport, JobError> {
    let rerun = shared.rerun;
    let lost = shared.lost_rows.load(Ordering::Relaxed);
    if lost > 0 {
        tracing::error!(
            "{lost} rows were lost to an internal error (a bug: please report the message above); {output_name} lacks them, and {rerun} finishes them"
        );
        written
            .failure
            .get_or_insert_with(|| "an internal error".to_owned());
        written.unrecorded += lost;
    }
    let report = |tally: Tally, stopped, output_failure, unrecorded| JobReport {
        tally,
        stopped,
        elapsed: ended.started.elapsed(),
        output_failure,
        unrecorded,
        pacing: ended.pacing.clone(),
        listed: ended.listed,
    };
    if let Some(failure) = written.failure {
        // The log stays as it is (append-only, valid up to its last whole row): --resume
        // settles the rows it lacks. Rewriting it now could only lose more.
        let stopped = Some(StopReason::OutputFailed);
        return Ok(report(
            written.tally,
            stopped,
            Some(failure),
            written.unrecorded,
        ));
    }
    // An input read only in part (a stop, a pipe given up, a read error) still leaves one
    // row per row read: the records of the rows not read stay in a continued file, after
    // them (a ledger never forgets).
    let mut stopped = shared.stopped();
    if ended.input_ended
        && let Err(error) = reading.await.expect("the input reader does not panic")
    {
        if written.tally.requests == 0 {
            return Err(error.into()); // before any request: a usage error
        }
        // After requests: the job stops as an abort.
        tracing::error!("{}", error_line(&anyhow::Error::new(error)));
        stopped = Some(StopReason::InputFailed);
    }
    let writer = written.writer;
    let finished = tokio::task::spawn_blocking(move || writer.finish())
        .await
        .expect("the results writer does not panic");
    // Every row is recorded, in the log as it stands: it is valid for --resume, only not
    // rewritten to one row per input row.
    let (finished, output_failure) = match finished {
        Ok(finished) => (finished, None),
        Err(error) => (
            Finished::default(),
            Some(format!(
                "cannot rewrite it at the end ({error}); it holds every row of this run as a log, which {rerun} reads"
            )),
        ),
    };
    let stopped = output_failure
        .as_ref()
        .map_or(stopped, |_| Some(StopReason::OutputFailed));
    let mut tally = written.tally;
    tally.not_in_input = finished.not_in_input;
    Ok(report(tally, stopped, output_failure, 0))
}
