//! The job: a reader thread streams rows to one dispatcher, which hands valid rows to
//! workers under a concurrency bound; every attempt waits for the rate limiter; every row's
//! final outcome goes to one writer thread that owns the results file. All channels are
//! bounded, so memory stays flat however long the input is.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use indicatif::ProgressBar;
use tokio::sync::{Mutex, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::cli::OnExists;
use crate::client::{Client, NoAnswer, Verb};
use crate::input::{InputError, InputReader, InputRow};
use crate::record::{DUPLICATE_IN_INPUT, NOT_CONNECTED, Status};
use crate::recording::{self, ToWrite};
use crate::report::{self, Tally};
use crate::results::{Final, ResultsWriter, RowOutcome, Sink};
use crate::resume::PriorResults;
use crate::retry::{RetryPolicy, is_retryable_status, may_have_applied};
use crate::settings::Shard;
use crate::settings::{Input, Rate};
use crate::signals;
use crate::workspace::WorkspaceRequest;

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
    /// Only the rows of this shard.
    pub shard: Shard,
    /// Stop dispatching once more rows than this have failed.
    pub max_failures: Option<u64>,
    /// Counts rows as they become final (drawn or hidden).
    pub progress: ProgressBar,
    /// Without a drawn bar: how often to log the progress figures.
    pub progress_every: Option<Duration>,
}

/// Where the rows come from.
pub enum Source {
    /// A tenant CSV (`run`).
    Csv(Input),
    /// A results file (`retry`): its successful rows are carried over unchanged.
    Results(Arc<PriorResults>),
}

/// Whether requests are sent.
pub enum Mode {
    /// Send them.
    Send(Sender),
    /// `--dry-run`: validate, write `planned`, send nothing.
    DryRun,
}

/// How requests are sent.
pub struct Sender {
    /// The API.
    pub client: Client,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Sustained rate over every attempt; `None` for no limit.
    pub rate: Option<Rate>,
    /// Requests that may go out back to back.
    pub burst: NonZeroU32,
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
}

impl StopReason {
    /// The `_error_code` of the rows this leaves `skipped`.
    pub fn code(self) -> &'static str {
        match self {
            StopReason::Unauthorized => "ABORTED_UNAUTHORIZED",
            StopReason::Interrupted => "INTERRUPTED",
            StopReason::MaxFailures => "ABORTED_MAX_FAILURES",
            StopReason::OutputFailed => "OUTPUT_FAILED",
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
    #[error("cannot write the results file {output}: {source}")]
    Output {
        /// The results file.
        output: String,
        /// Why.
        source: std::io::Error,
    },
}

/// State every worker shares.
struct Shared {
    mode: Mode,
    output_log: Option<Arc<PriorResults>>,
    limiter: Option<DefaultDirectRateLimiter>,
    /// One task at a time waits on the limiter: FIFO, and no herd of wake-ups.
    limiter_queue: Mutex<()>,
    stop_tx: watch::Sender<Option<StopReason>>,
    /// `--max-failures`, in rows.
    max_failures: Option<u64>,
    /// Rows failed so far, counted by the workers so the job stops as soon as it can.
    failures: AtomicU64,
    /// The input is a pipe or a stream, not a file: after a stop it is read no further.
    streamed_input: bool,
}

impl Shared {
    fn stop(&self, reason: StopReason) {
        self.stop_tx.send_if_modified(|current| {
            let first = current.is_none();
            if first {
                *current = Some(reason);
            }
            first
        });
    }

    fn stopped(&self) -> Option<StopReason> {
        *self.stop_tx.borrow()
    }

    /// Resolves with the reason once the job stops.
    async fn until_stopped(&self) -> StopReason {
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

    /// Waits for the rate limiter; `Err` if the job stops first.
    async fn permit(&self) -> Result<(), StopReason> {
        if let Some(limiter) = &self.limiter {
            tokio::select! {
                biased;
                reason = self.until_stopped() => return Err(reason),
                _ = async {
                    let _turn = self.limiter_queue.lock().await;
                    until_ready(limiter).await;
                } => {}
            }
        }
        self.stopped().map_or(Ok(()), Err)
    }
}

/// Runs a job to its end: every input row gets exactly one results row.
pub async fn run(job: Job) -> Result<JobReport, JobError> {
    let started = Instant::now();
    let shard = job.shard;
    let streamed_input = match &job.source {
        Source::Csv(Input::Stdin) => true,
        Source::Csv(Input::File(path)) => !std::fs::metadata(path).is_ok_and(|m| m.is_file()),
        Source::Results(_) => false,
    };
    let reader = tokio::task::spawn_blocking(move || {
        let reader = match job.source {
            Source::Csv(input) => InputReader::open(&input),
            Source::Results(log) => InputReader::open_log(log),
        };
        reader.map(|r| r.with_shard(shard))
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
            ResultsWriter::append(file, log, header.carried_names(), &job.target)
        }
        (_, sink) => ResultsWriter::create(sink, header.carried_names(), &job.target),
    }
    .map_err(output_error)?;

    let (rows_tx, mut rows_rx) = mpsc::channel::<InputRow>(CHANNEL_ROWS);
    let reading = tokio::task::spawn_blocking(move || {
        while let Some(row) = reader.next_row()? {
            if rows_tx.blocking_send(row).is_err() {
                break;
            }
        }
        Ok::<(), InputError>(())
    });

    let limiter = match &job.mode {
        Mode::Send(Sender {
            rate: Some(rate),
            burst,
            ..
        }) => Some(RateLimiter::direct(quota(*rate, *burst))),
        _ => None,
    };
    let shared = Arc::new(Shared {
        mode: job.mode,
        output_log: job.output_log,
        limiter,
        limiter_queue: Mutex::new(()),
        stop_tx: watch::channel(None).0,
        max_failures: job.max_failures,
        failures: AtomicU64::new(0),
        streamed_input,
    });

    let (outcomes_tx, outcomes_rx) = mpsc::channel::<ToWrite>(CHANNEL_ROWS);
    let writing = tokio::task::spawn_blocking({
        let bar = job.progress.clone();
        let shared = shared.clone();
        move || {
            let stop_sending = || shared.stop(StopReason::OutputFailed);
            recording::write_results(writer, outcomes_rx, stop_sending, &bar)
        }
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
    let input_ended = dispatch(&shared, &mut rows_rx, outcomes_tx).await;
    drop(rows_rx);
    ctrl_c.abort();
    if let Some(task) = progress_lines {
        task.abort();
    }

    let written = writing.await.expect("the results writer does not panic");
    if let Some(failure) = written.failure {
        // The log stays as it is (append-only, valid up to its last whole row): --resume
        // settles the rows it lacks. Rewriting it now could only lose more.
        return Ok(JobReport {
            tally: written.tally,
            stopped: Some(StopReason::OutputFailed),
            elapsed: started.elapsed(),
            output_failure: Some(failure),
            unrecorded: written.unrecorded,
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
        });
    }
    reading.await.expect("the input reader does not panic")?;
    let writer = written.writer;
    let finished = tokio::task::spawn_blocking(move || writer.finish())
        .await
        .expect("the results writer does not panic");
    // Every row is recorded, in the log as it stands: it is valid for --resume, only not
    // rewritten to one row per input row.
    let output_failure = finished.err().map(|error| {
        format!("cannot rewrite it at the end ({error}); it holds every row of this run as a log, which the same command with --resume reads")
    });
    Ok(JobReport {
        tally: written.tally,
        stopped: output_failure
            .as_ref()
            .map_or(shared.stopped(), |_| Some(StopReason::OutputFailed)),
        elapsed: started.elapsed(),
        output_failure,
        unrecorded: 0,
    })
}

/// GCRA quota: one request per `1/rate`, `burst` of them back to back.
fn quota(rate: Rate, burst: NonZeroU32) -> Quota {
    let period = Duration::from_secs_f64(1.0 / rate.per_second).max(Duration::from_nanos(1));
    Quota::with_period(period)
        .expect("the period is above zero")
        .allow_burst(burst)
}

/// How long before its permit is due a waiter stops sleeping and starts polling.
const PERMIT_SPIN: Duration = Duration::from_micros(200);

/// Resolves when the limiter grants a permit, within microseconds of the moment it is due.
///
/// governor's own `until_ready` sleeps the whole wait, and a timer wakes 100 µs or more
/// late on a busy machine. With `--burst 1` a late permit is lost for good (the next one is
/// due a full period after it), so at 500/s the job would reach only ~94 % of the rate.
/// Sleeping until shortly before the permit is due and then polling, yielding to the
/// runtime between polls, holds the rate at 99 % for a few percent of one core.
async fn until_ready(limiter: &DefaultDirectRateLimiter) {
    while let Err(not_until) = limiter.check() {
        let wait = not_until.wait_time_from(limiter.clock().now());
        if wait > PERMIT_SPIN {
            futures_timer::Delay::new(wait - PERMIT_SPIN).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
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
        Mode::DryRun => 1,
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
            Triage::Send { row, request } => {
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
                let (shared, outcomes_tx) = (shared.clone(), outcomes_tx.clone());
                // Retries and the HTTP stack's own logs carry the row they belong to.
                let span = tracing::debug_span!("row", row = row.row, name = row.name.as_deref());
                workers.spawn(
                    async move {
                        let outcome = provision(&shared, row, request).await;
                        let _ = outcomes_tx
                            .send((Final::Outcome(outcome), Some(slot)))
                            .await;
                    }
                    .instrument(span),
                );
                // Reap finished workers so the set stays as small as the concurrency.
                while workers.try_join_next().is_some() {}
                continue;
            }
        };
        if outcomes_tx.send((final_row, None)).await.is_err() {
            ended = false;
            break;
        }
    }
    while workers.join_next().await.is_some() {}
    ended
}

/// How long, after the job stopped, the input may give no row before it is given up.
const STALLED_INPUT: Duration = Duration::from_secs(1);

/// What becomes of one input row before any request.
enum Triage {
    /// Final already: kept from an earlier run, invalid, or planned (dry run).
    Done(Final),
    /// To be sent.
    Send {
        row: Carried,
        request: WorkspaceRequest,
    },
}

fn triage(shared: &Shared, input_row: InputRow) -> Triage {
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
    // A success of an earlier run is kept as it is, even if the row has changed since:
    // the workspace exists. Only a second row of the same name is not a success.
    match (logged, &earlier) {
        _ if duplicate => {}
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
    let maybe_created =
        logged.is_some_and(|p| p.maybe_created) || earlier.is_some_and(|e| e.prior.maybe_created);
    let row = Carried {
        row,
        name,
        cells,
        maybe_created,
    };
    match (request, &shared.mode) {
        (Err(error), _) => Triage::Done(Final::Outcome(unsent(
            row,
            Status::Invalid,
            error.code,
            &error.message,
        ))),
        (Ok(request), Mode::DryRun) => {
            tracing::debug!(row = row.row, body = %body_json(&request), "planned");
            Triage::Done(Final::Outcome(unsent(row, Status::Planned, "", "")))
        }
        (Ok(request), Mode::Send(_)) => Triage::Send { row, request },
    }
}

fn body_json(request: &WorkspaceRequest) -> String {
    serde_json::to_string(request).unwrap_or_default()
}

/// What a row's results line needs besides its outcome.
struct Carried {
    row: u64,
    name: Option<String>,
    cells: csv::ByteRecord,
    /// An earlier attempt, of this run or one before, may have created the workspace
    /// without learning it (a timeout, a lost connection, a 5xx).
    maybe_created: bool,
}

/// The outcome of a row that was never sent.
fn unsent(row: Carried, status: Status, code: &str, message: &str) -> RowOutcome {
    RowOutcome {
        row: row.row,
        name: row.name,
        status,
        error_code: code.to_owned(),
        error_message: message.to_owned(),
        http_status: None,
        attempts: 0,
        latency_ms: None,
        finished_at: SystemTime::now(),
        cells: row.cells,
        maybe_created: row.maybe_created,
    }
}

/// Sends one row until it has a final outcome: success, a final refusal, retries spent,
/// or the job stopping.
async fn provision(shared: &Shared, mut row: Carried, request: WorkspaceRequest) -> RowOutcome {
    let mut trail = Trail::default();
    let verdict = attempt_until_final(shared, &request, &mut row.maybe_created, &mut trail).await;
    if verdict.status == Status::Failed {
        let failed = shared.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if shared.max_failures.is_some_and(|limit| failed > limit) {
            shared.stop(StopReason::MaxFailures);
        }
    }
    RowOutcome {
        row: row.row,
        name: row.name,
        status: verdict.status,
        error_code: verdict.code,
        error_message: verdict.message,
        http_status: trail.http_status,
        attempts: trail.attempts,
        latency_ms: trail.started.map(|t| t.elapsed().as_millis() as u64),
        finished_at: SystemTime::now(),
        cells: row.cells,
        maybe_created: row.maybe_created,
    }
}

/// What the attempts of one row left behind.
#[derive(Default)]
struct Trail {
    /// Requests sent.
    attempts: u32,
    /// Status of the last attempt; `None` if it got no answer.
    http_status: Option<u16>,
    /// When the first attempt went out (latency is not counted from the limiter's queue).
    started: Option<Instant>,
}

/// A row's final status with its code and message.
struct Verdict {
    status: Status,
    code: String,
    message: String,
}

impl Verdict {
    fn new(status: Status, code: &str, message: impl Into<String>) -> Verdict {
        Verdict {
            status,
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// The job stopped before this row's next attempt.
    fn stopped(reason: StopReason, trail: &Trail) -> Verdict {
        let message = match trail.attempts {
            0 => reason.message().to_owned(),
            n => format!(
                "{}, after {n} attempt(s) whose outcome was not final",
                reason.message().replacen("not sent", "not finished", 1)
            ),
        };
        Verdict::new(Status::Skipped, reason.code(), message)
    }
}

/// `maybe_created`: an earlier attempt may already have created the workspace; set when
/// one of these attempts may have.
async fn attempt_until_final(
    shared: &Shared,
    request: &WorkspaceRequest,
    maybe_created: &mut bool,
    trail: &mut Trail,
) -> Verdict {
    let Mode::Send(sender) = &shared.mode else {
        unreachable!("only a sending job provisions");
    };
    let body = Bytes::from(serde_json::to_vec(request).expect("a request always serialises"));
    let mut verb = Verb::Post;
    // Attempts of the current verb: switching to PUT starts a fresh retry budget.
    let mut tries = 0;
    loop {
        if let Err(reason) = shared.permit().await {
            return Verdict::stopped(reason, trail);
        }
        if trail.attempts == 0 {
            trail.started = Some(Instant::now());
            signals::sending();
        }
        trail.attempts += 1;
        tries += 1;
        // Whatever is not final here is worth another attempt.
        let (code, message, retry_after, unknown) = match sender
            .client
            .send(verb, body.clone(), &request.name)
            .await
        {
            Err(no_answer) => {
                trail.http_status = None;
                match no_answer {
                    NoAnswer::Timeout => {
                        let limit = humantime::format_duration(sender.timeout);
                        (
                            "TIMEOUT".to_owned(),
                            format!("no answer within {limit}"),
                            None,
                            true,
                        )
                    }
                    NoAnswer::ConnectFailed(message) => (
                        "CONNECTION_ERROR".to_owned(),
                        format!("{NOT_CONNECTED}: {message}"),
                        None,
                        false,
                    ),
                    NoAnswer::Lost(message) => ("CONNECTION_ERROR".to_owned(), message, None, true),
                }
            }
            Ok(answer) => {
                trail.http_status = Some(answer.status);
                let Some(code) = answer.code else {
                    return match (verb, *maybe_created) {
                        (Verb::Post, _) => Verdict::new(Status::Created, "", ""),
                        // Taken after an answer was lost: ours, or there before the run;
                        // without a list of the names before the run nobody can tell. The
                        // PUT made its settings true, and `updated` claims no more than
                        // that: a rollback must never delete what the run did not create.
                        (Verb::Put, true) => Verdict::new(
                            Status::Updated,
                            "",
                            "its settings were PUT; an earlier attempt, whose answer was lost, may have created it",
                        ),
                        (Verb::Put, false) => Verdict::new(Status::Updated, "", ""),
                    };
                };
                if code == "WORKSPACE_NAME_ALREADY_EXISTS" && verb == Verb::Post {
                    match (sender.on_exists, *maybe_created) {
                        // The PUT makes the row's settings true whoever created it.
                        (OnExists::Update, _) => {
                            verb = Verb::Put;
                            tries = 0;
                            continue;
                        }
                        (_, true) => {
                            let message = "an earlier attempt, whose answer was lost, created it";
                            return Verdict::new(Status::Created, "", message);
                        }
                        (OnExists::Skip, false) => {
                            return Verdict::new(Status::Exists, "", "");
                        }
                        (OnExists::Fail, false) => {
                            return Verdict::new(Status::Failed, &code, answer.message);
                        }
                    }
                }
                if answer.status == 401 {
                    shared.stop(StopReason::Unauthorized);
                }
                if !is_retryable_status(answer.status) {
                    return Verdict::new(Status::Failed, &code, answer.message);
                }
                let unknown = may_have_applied(answer.status);
                (code, answer.message, answer.retry_after, unknown)
            }
        };
        *maybe_created |= unknown;
        if tries >= sender.retry.max_attempts {
            return Verdict::new(Status::Failed, &code, message);
        }
        if let Err(reason) = back_off(shared, sender, tries, retry_after, &code, &message).await {
            return Verdict::stopped(reason, trail);
        }
    }
}

/// Sleeps before the next attempt; `Err` if the job stops meanwhile.
async fn back_off(
    shared: &Shared,
    sender: &Sender,
    failed_tries: u32,
    retry_after: Option<Duration>,
    code: &str,
    message: &str,
) -> Result<(), StopReason> {
    let wait = sender.retry.backoff(failed_tries, retry_after);
    tracing::debug!(
        attempt = failed_tries,
        code,
        ?wait,
        "retrying after: {message}"
    );
    tokio::select! {
        biased;
        reason = shared.until_stopped() => Err(reason),
        _ = tokio::time::sleep(wait) => Ok(()),
    }
}
