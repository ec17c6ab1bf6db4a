//! The job: a reader thread streams rows to one dispatcher, which hands valid rows to
//! workers under a concurrency bound; every attempt waits for the pacer; every row's final
//! outcome goes to one writer thread that owns the results file. All channels are bounded,
//! so memory stays flat however long the input is.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::attempt;
use crate::cli::OnExists;
use crate::client::Client;
use crate::decode::CsvFormat;
use crate::input::{InputError, InputReader, InputRow};
use crate::operation::Operation;
use crate::pacing::{Halt, Pacer, PacingReport, PacingSettings, Ticket};
use crate::preflight::{self, Before, Listing};
use crate::record::Status;
use crate::recording::{self, ToWrite};
use crate::report::{self, Tally};
use crate::results::{Final, Layout, ResultsWriter, Sink};
use crate::resume::PriorResults;
use crate::retry::RetryPolicy;
use crate::settings::{Input, Shard};
use crate::signals;
use crate::triage::{Triage, triage, unsent};

/// Rows in the reader → dispatcher and worker → writer channels at most.
const CHANNEL_ROWS: usize = 1024;

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
    /// Only the rows of this shard.
    pub shard: Shard,
    /// Stop dispatching once more rows than this have failed.
    pub max_failures: Option<u64>,
    /// Counts rows as they become final (drawn or hidden).
    pub progress: ProgressBar,
    /// Without a drawn bar: how often to log the progress figures.
    pub progress_every: Option<Duration>,
    /// Write the results for a spreadsheet (`--excel`).
    pub excel: bool,
}

impl Job {
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

/// Whether requests are sent.
pub enum Mode {
    /// Send them.
    Send(Box<Sender>),
    /// `plan`: list the workspaces that exist, then write what `run` would do; send no
    /// write.
    Plan(Box<Sender>),
    /// `--dry-run`: validate, write `planned`, send nothing.
    DryRun,
}

impl Mode {
    /// How requests are sent, unless nothing is.
    pub(crate) fn sender(&self) -> Option<&Sender> {
        match self {
            Mode::Send(sender) | Mode::Plan(sender) => Some(sender),
            Mode::DryRun => None,
        }
    }
}

/// How requests are sent.
pub struct Sender {
    /// The API.
    pub client: Client,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// `--rate`, the API's rate limit, outages.
    pub pacing: PacingSettings,
    /// Attempts and backoff.
    pub retry: RetryPolicy,
    /// Per attempt (for messages; the client enforces it).
    pub timeout: Duration,
    /// What a taken name means.
    pub on_exists: OnExists,
}

/// Why a job stopped dispatching before the end of its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The API answered 401: every further request would fail too.
    Unauthorized,
    /// Ctrl-C.
    Interrupted,
    /// More rows failed than `--max-failures` allows.
    MaxFailures,
    /// The results file cannot be written: no request may go out without its record.
    OutputFailed,
    /// The API's rate limit asked for a longer wait than `--max-retry-after`.
    RateLimited,
    /// The API could not be reached: from the start, or for longer than `--max-outage`.
    Unreachable,
    /// The input could not be read to its end, after requests were sent: the rows not
    /// read have no record, and the results file stays a log for `--resume`.
    InputFailed,
}

impl StopReason {
    /// The `_error_code` of the rows this leaves `skipped`.
    pub fn code(self) -> &'static str {
        match self {
            StopReason::Unauthorized => "ABORTED_UNAUTHORIZED",
            StopReason::Interrupted => "INTERRUPTED",
            StopReason::MaxFailures => "ABORTED_MAX_FAILURES",
            StopReason::OutputFailed => "OUTPUT_FAILED",
            StopReason::RateLimited => "ABORTED_RATE_LIMITED",
            StopReason::Unreachable => "ABORTED_UNREACHABLE",
            StopReason::InputFailed => "INPUT_FAILED",
        }
    }

    /// What the operator should do about it, where that is clear, for the summary.
    pub fn next_step(self) -> Option<&'static str> {
        match self {
            StopReason::Unauthorized => {
                Some("the API refused the key (401): check DATABRAIN_API_KEY or --api-key-file")
            }
            StopReason::InputFailed => Some(
                "the input could not be read to its end (the error above says why): mend it, then run the same command with --resume (its results written to a file, -o PATH); the rows not read were not sent",
            ),
            _ => None,
        }
    }

    /// The `_error_message` of those rows.
    pub fn message(self) -> &'static str {
        match self {
            StopReason::Unauthorized => {
                "not sent: the API refused the key (401), so the job stopped"
            }
            StopReason::Interrupted => "not sent: the job was interrupted",
            StopReason::MaxFailures => {
                "not sent: more rows failed than --max-failures allows, so the job stopped"
            }
            StopReason::OutputFailed => "not sent: the results file could not be written",
            StopReason::RateLimited => {
                "not sent: the API's rate limit asked for a longer wait than --max-retry-after, so the job stopped"
            }
            StopReason::Unreachable => "not sent: the API could not be reached, so the job stopped",
            StopReason::InputFailed => "not sent: the input could not be read, so the job stopped",
        }
    }
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
    Resume(#[from] crate::resume::ResumeError),
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

/// State every worker shares.
pub(crate) struct Shared {
    pub(crate) mode: Mode,
    pub(crate) operation: Operation,
    /// The workspaces that existed before the run, when the preflight listed them.
    listing: std::sync::OnceLock<Listing>,
    pub(crate) output_log: Option<Arc<PriorResults>>,
    /// When each attempt may go; `None` for a dry run.
    pacer: Option<Pacer>,
    stop_tx: watch::Sender<Option<StopReason>>,
    /// `--max-failures`, in rows.
    max_failures: Option<u64>,
    /// Rows failed so far, counted by the workers so the job stops as soon as it can.
    failures: AtomicU64,
    /// Rows whose worker panicked: they have no record.
    lost_rows: AtomicU64,
    /// The input is a pipe or a stream, not a file: after a stop it is read no further.
    streamed_input: bool,
    /// What settles the rows left unsent (see [`Job::rerun`]).
    rerun: &'static str,
}

impl Shared {
    /// Stops the job for `reason`, unless it stopped already; returns whether this did.
    pub(crate) fn stop(&self, reason: StopReason) -> bool {
        self.stop_tx.send_if_modified(|current| {
            let first = current.is_none();
            if first {
                *current = Some(reason);
            }
            first
        })
    }

    pub(crate) fn stopped(&self) -> Option<StopReason> {
        *self.stop_tx.borrow()
    }

    /// Resolves with the reason once the job stops.
    pub(crate) async fn until_stopped(&self) -> StopReason {
        let mut stop_rx = self.stop_tx.subscribe();
        loop {
            if let Some(reason) = *stop_rx.borrow_and_update() {
                return reason;
            }
            if stop_rx.changed().await.is_err() {
                // The sender lives as long as `self`: unreachable, but never resolve then.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Counts a failed row, and stops the job once more have failed than
    /// `--max-failures` allows.
    pub(crate) fn count_failure(&self) {
        let failed = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if self.max_failures.is_some_and(|limit| failed > limit) {
            self.stop(StopReason::MaxFailures);
        }
    }

    /// What the preflight says of a name: listed, not listed, or unknown.
    pub(crate) fn before(&self, name: Option<&str>) -> Before {
        match (self.listing.get(), name) {
            (Some(listing), Some(name)) if listing.contains(name) => Before::Listed,
            (Some(_), Some(_)) => Before::NotListed,
            _ => Before::Unknown,
        }
    }

    /// The pacer of a sending job.
    pub(crate) fn pacer(&self) -> &Pacer {
        self.pacer.as_ref().expect("a sending job has a pacer")
    }

    /// Waits for the pacer's leave to send; `Err` if the job stops first.
    pub(crate) async fn permit(&self) -> Result<Ticket, StopReason> {
        let ticket = tokio::select! {
            biased;
            reason = self.until_stopped() => return Err(reason),
            ticket = self.pacer().permit() => ticket,
        };
        self.stopped().map_or(Ok(ticket), Err)
    }

    /// Stops the job because pacing gave up, saying why once; returns the reason the job
    /// stopped for (an earlier stop stands).
    pub(crate) fn halt(&self, halt: Halt) -> StopReason {
        let (reason, why) = match halt {
            Halt::RateLimited(why) => (StopReason::RateLimited, why),
            Halt::Unreachable(why) => (StopReason::Unreachable, why),
        };
        if self.stop(reason) {
            tracing::error!(
                "stopping: {why}. The requests in flight finish; the rows not finished are written skipped / {}, and {} finishes them later",
                reason.code(),
                self.rerun
            );
        }
        self.stopped().unwrap_or(reason)
    }
}

/// Runs a job to its end: every input row gets exactly one results row.
pub async fn run(job: Job) -> Result<JobReport, JobError> {
    let started = Instant::now();
    let rerun = job.rerun();
    signals::rerun_is(rerun);
    let shard = job.shard;
    let streamed_input = match &job.source {
        Source::Csv(Input::Stdin, _) => true,
        Source::Csv(Input::File(path), _) => !std::fs::metadata(path).is_ok_and(|m| m.is_file()),
        Source::Results(_) | Source::Created(_) => false,
    };
    let names_only = job.operation.names_only();
    let reader = tokio::task::spawn_blocking(move || {
        let reader = match job.source {
            Source::Csv(input, format) => InputReader::open(&input, format),
            Source::Results(log) => InputReader::open_log(log),
            Source::Created(log) => InputReader::open_log(log).map(InputReader::only_created),
        };
        reader.map(|r| r.with_shard(shard).names_only(names_only))
    })
    .await
    .expect("the input reader does not panic");
    let mut reader = match reader {
        Ok(reader) => reader,
        Err(error) => {
            job.sink.discard_if_unused();
            return Err(error.into());
        }
    };
    let header = reader.header().clone();
    if !header.ignored.is_empty() {
        tracing::warn!(
            "columns {:?} are not request fields: carried to the results, never sent",
            header.ignored
        );
    }
    let output_name = job.output_name.clone();
    let output_error = |source| JobError::Output {
        output: output_name.clone(),
        source,
    };
    let writer = match (&job.output_log, job.sink) {
        (Some(log), Sink::File(file)) => {
            if &log.carried_names != header.carried_names() {
                let names =
                    |r: &csv::ByteRecord| String::from_utf8_lossy(r.as_slice()).into_owned();
                return Err(JobError::ColumnsChanged {
                    output: output_name,
                    earlier: names(&log.carried_names),
                    now: names(header.carried_names()),
                });
            }
            let layout = Layout::continuing(job.excel, log);
            ResultsWriter::append(file, log, header.carried_names(), &job.target, layout)
        }
        (_, sink) => {
            let layout = Layout::new(job.excel, reader.delimiter());
            ResultsWriter::create(sink, header.carried_names(), &job.target, layout)
        }
    }
    .map(|writer| writer.for_operation(job.operation))
    .map_err(output_error)?;

    let (rows_tx, mut rows_rx) = mpsc::channel::<InputRow>(CHANNEL_ROWS);
    // Once a stream (stdin, a pipe) has ended, the job knows its total, and the pacer how
    // many rows are left.
    let input_total: Arc<std::sync::OnceLock<u64>> = Arc::new(std::sync::OnceLock::new());
    if let Some(total) = job.progress.length() {
        let _ = input_total.set(total);
    }
    let reading = tokio::task::spawn_blocking({
        let input_total = input_total.clone();
        move || {
            let mut rows_read = 0;
            while let Some(row) = reader.next_row()? {
                rows_read += 1;
                if rows_tx.blocking_send(row).is_err() {
                    return Ok(());
                }
            }
            let _ = input_total.set(rows_read);
            Ok::<(), InputError>(())
        }
    });

    let pacer = job.mode.sender().map(|sender| {
        let (bar, total) = (job.progress.clone(), input_total.clone());
        let rows_left = move || total.get().map(|rows| rows.saturating_sub(bar.position()));
        Pacer::new(sender.pacing).with_rows_left(rows_left)
    });
    let list_first = match &job.mode {
        Mode::Plan(_) => true,
        Mode::Send(_) => job.preflight && job.operation == Operation::Create,
        Mode::DryRun => false,
    };
    let shared = Arc::new(Shared {
        mode: job.mode,
        operation: job.operation,
        listing: std::sync::OnceLock::new(),
        output_log: job.output_log,
        pacer,
        stop_tx: watch::channel(None).0,
        max_failures: job.max_failures,
        failures: AtomicU64::new(0),
        lost_rows: AtomicU64::new(0),
        streamed_input,
        rerun,
    });

    let (outcomes_tx, outcomes_rx) = mpsc::channel::<ToWrite>(CHANNEL_ROWS);
    let writing = tokio::task::spawn_blocking({
        let bar = job.progress.clone();
        let shared = shared.clone();
        move || {
            let stop_sending = || {
                shared.stop(StopReason::OutputFailed);
            };
            recording::write_results(writer, outcomes_rx, stop_sending, &bar, rerun)
        }
    });
    // The pace, and any pause, beside the counts: a pause finishes no row to redraw them.
    let pace_shown = shared.pacer.is_some().then(|| {
        let (bar, shared) = (job.progress.clone(), shared.clone());
        tokio::spawn(async move {
            // Requests issued at each of the last ten ticks: the rate of the last 5 s.
            let mut issued = std::collections::VecDeque::from([(Instant::now(), 0)]);
            let mut ticks = tokio::time::interval(Duration::from_millis(500));
            loop {
                ticks.tick().await;
                let pacer = shared.pacer();
                let (now, count) = (Instant::now(), pacer.issued());
                if issued.len() > 10 {
                    issued.pop_front();
                }
                let (then, before) = issued.front().copied().unwrap_or((now, count));
                issued.push_back((now, count));
                // Less than half a second says nothing of a rate.
                let seconds = now.duration_since(then).as_secs_f64();
                let per_second = (seconds >= 0.4).then(|| (count - before) as f64 / seconds);
                report::show_pace(&bar, per_second, pacer.describe());
            }
        })
    });
    let progress_lines = job.progress_every.map(|every| {
        let bar = job.progress.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                tracing::info!("{}", report::progress_line(&bar));
            }
        })
    });
    let ctrl_c = tokio::spawn({
        let shared = shared.clone();
        async move {
            signals::until_interrupted().await;
            shared.stop(StopReason::Interrupted);
            tracing::warn!(
                "interrupted: finishing the requests in flight, then writing the rest as skipped; Ctrl-C again (a second or more later) to exit at once"
            );
        }
    });

    // A signal before the job began (while the rows were counted) stops it before any
    // request, not a moment after the first few.
    if signals::interrupted_flag().load(Ordering::SeqCst) {
        shared.stop(StopReason::Interrupted);
    }
    let mut list_requests = 0;
    if list_first
        && shared.stopped().is_none()
        && let Some(listing) = preflight::list(&shared, &mut list_requests).await
    {
        let _ = shared.listing.set(listing);
    }
    let listed = Listed {
        workspaces: shared.listing.get().map(|l| l.len() as u64),
        requests: list_requests,
    };
    let input_ended = dispatch(&shared, &mut rows_rx, outcomes_tx).await;
    drop(rows_rx);
    ctrl_c.abort();
    for task in [progress_lines, pace_shown].into_iter().flatten() {
        task.abort();
        // Awaited, so that a line it was writing is out before anything after the job
        // (the summary last of all).
        let _ = task.await;
    }
    let pacing = shared.pacer.as_ref().map(Pacer::report).unwrap_or_default();

    let mut written = writing.await.expect("the results writer does not panic");
    let lost = shared.lost_rows.load(Ordering::Relaxed);
    if lost > 0 {
        tracing::error!(
            "{lost} rows were lost to an internal error (a bug: please report the message above); {} lacks them, and {rerun} finishes them",
            job.output_name
        );
        written
            .failure
            .get_or_insert_with(|| "an internal error".to_owned());
        written.unrecorded += lost;
    }
    if let Some(failure) = written.failure {
        // The log stays as it is (append-only, valid up to its last whole row): --resume
        // settles the rows it lacks. Rewriting it now could only lose more.
        return Ok(JobReport {
            tally: written.tally,
            stopped: Some(StopReason::OutputFailed),
            elapsed: started.elapsed(),
            output_failure: Some(failure),
            unrecorded: written.unrecorded,
            pacing,
            listed,
        });
    }
    // An input that could not be read to its end leaves a resumed log as it is: compacted,
    // it would lose the earlier successes of the rows not read.
    if !input_ended {
        return Ok(JobReport {
            tally: written.tally,
            stopped: shared.stopped(),
            elapsed: started.elapsed(),
            output_failure: None,
            unrecorded: 0,
            pacing,
            listed,
        });
    }
    if let Err(error) = reading.await.expect("the input reader does not panic") {
        if written.tally.requests == 0 {
            return Err(error.into()); // before any request: a usage error
        }
        // After requests: the job stops as an abort, its log as it stands (see above).
        tracing::error!("{}", crate::error_line(&anyhow::Error::new(error)));
        return Ok(JobReport {
            tally: written.tally,
            stopped: Some(StopReason::InputFailed),
            elapsed: started.elapsed(),
            output_failure: None,
            unrecorded: 0,
            pacing,
            listed,
        });
    }
    let writer = written.writer;
    let finished = tokio::task::spawn_blocking(move || writer.finish())
        .await
        .expect("the results writer does not panic");
    // Every row is recorded, in the log as it stands: it is valid for --resume, only not
    // rewritten to one row per input row.
    let output_failure = finished.err().map(|error| {
        format!("cannot rewrite it at the end ({error}); it holds every row of this run as a log, which {rerun} reads")
    });
    Ok(JobReport {
        tally: written.tally,
        stopped: output_failure
            .as_ref()
            .map_or(shared.stopped(), |_| Some(StopReason::OutputFailed)),
        elapsed: started.elapsed(),
        output_failure,
        unrecorded: 0,
        pacing,
        listed,
    })
}

/// Reads rows until the input ends, and sends each to its fate. Returns once every
/// worker has handed its outcome to the writer.
///
/// Returns whether the input was read to its end. After a stop, an input that gives no row
/// for [`STALLED_INPUT`] (a pipe whose writer waits) is given up: the rows not yet read
/// cannot be recorded, and waiting for them would keep Ctrl-C from working.
async fn dispatch(
    shared: &Arc<Shared>,
    rows_rx: &mut mpsc::Receiver<InputRow>,
    outcomes_tx: mpsc::Sender<ToWrite>,
) -> bool {
    let concurrency = match &shared.mode {
        Mode::Send(sender) => sender.concurrency,
        Mode::Plan(_) | Mode::DryRun => 1,
    };
    let slots = Arc::new(Semaphore::new(concurrency));
    let mut workers = JoinSet::new();
    let mut ended = true;
    // After a stop, a piped input is read no further: it may never end (a generator, or a
    // pipe fed back from this very results file). A file is read to its end, so that every
    // row is recorded; one that gives nothing for a while is given up too.
    let give_up = async || {
        shared.until_stopped().await;
        if !shared.streamed_input {
            tokio::time::sleep(STALLED_INPUT).await;
        }
    };
    // Rows already read when a piped input is given up: they are recorded, the rest not.
    let mut read_before_stop: Option<usize> = None;
    loop {
        let mut read_already = true;
        if shared.streamed_input && shared.stopped().is_some() {
            let left = read_before_stop.get_or_insert(rows_rx.len());
            read_already = *left > 0;
            *left = left.saturating_sub(1);
        }
        let input_row = if read_already {
            tokio::select! {
                biased;
                row = rows_rx.recv() => row,
                () = give_up() => None,
            }
        } else {
            None
        };
        let Some(input_row) = input_row else {
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
        let final_row = match triage(shared, input_row) {
            Triage::Done(final_row) => final_row,
            Triage::Send { row, request, verb } => {
                let slot = tokio::select! {
                    biased;
                    _ = shared.until_stopped() => None,
                    slot = slots.clone().acquire_owned() => slot.ok(),
                };
                let Some(slot) = slot else {
                    let reason = shared.stopped().unwrap_or(StopReason::Interrupted);
                    let outcome = unsent(row, Status::Skipped, reason.code(), reason.message());
                    if outcomes_tx
                        .send((Final::Outcome(outcome), None))
                        .await
                        .is_err()
                    {
                        ended = false;
                        break;
                    }
                    continue;
                };
                let (worker, outcomes_tx) = (shared.clone(), outcomes_tx.clone());
                // Retries and the HTTP stack's own logs carry the row they belong to. Not
                // `name`: as JSON the span's own name has that key.
                let span =
                    tracing::debug_span!("row", row = row.row, workspace = row.name.as_deref());
                workers.spawn(
                    async move {
                        let outcome = attempt::provision(&worker, row, request, verb).await;
                        let _ = outcomes_tx
                            .send((Final::Outcome(outcome), Some(slot)))
                            .await;
                    }
                    .instrument(span),
                );
                // Reap finished workers so the set stays as small as the concurrency.
                while let Some(done) = workers.try_join_next() {
                    count_lost(shared, done);
                }
                continue;
            }
        };
        if outcomes_tx.send((final_row, None)).await.is_err() {
            ended = false;
            break;
        }
    }
    while let Some(done) = workers.join_next().await {
        count_lost(shared, done);
    }
    ended
}

/// A worker that panicked took its row with it: a bug, but never a silent one. The row
/// has no record, so the job must not end as if it had.
fn count_lost(shared: &Shared, done: Result<(), tokio::task::JoinError>) {
    if done.is_err() {
        shared.lost_rows.fetch_add(1, Ordering::Relaxed);
        shared.stop(StopReason::OutputFailed);
    }
}

/// How long, after the job stopped, the input may give no row before it is given up.
const STALLED_INPUT: Duration = Duration::from_secs(1);
