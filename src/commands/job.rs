//! The way every job goes, whatever the command: from the target and the rows to the
//! summary and the exit code.

use std::sync::Arc;
use std::time::Duration;

use super::metrics::MetricsOut;
use super::summary_file;
use super::target::Target;
use crate::cli::JobArgs;
use crate::input::{self, CsvFormat};
use crate::job::{self, Job, Mode, Source, StopReason};
use crate::model::{Input, MaxFailures, Operation, Output, Shard};
use crate::pacing::PacingReport;
use crate::records::{PriorResults, Sink};
use crate::report::metrics::RunFigures;
use crate::report::summary::AnnouncedLimit;
use crate::report::{Summary, Tally, logging, progress, signals};

/// How a command ended, as the exit codes of `DESIGN.md` tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: every row succeeded (or the command had nothing to report).
    Success = 0,
    /// 1: the job finished; some rows did not succeed.
    SomeRowsFailed = 1,
    /// 2: usage, configuration or input error before any request.
    Usage = 2,
    /// 3: aborted (unauthorized, or too many failures).
    Aborted = 3,
    /// 4: the results file could not be written; sending stopped.
    OutputFailed = 4,
    /// 130: interrupted.
    Interrupted = 130,
}

/// What each command decides: where the rows come from and go to, and what is done to
/// them.
pub(crate) struct Rows {
    pub(crate) source: Source,
    /// Rows to process, when known beforehand.
    pub(crate) total: Option<u64>,
    pub(crate) output: Output,
    /// The results file, opened and locked, or stdout.
    pub(crate) sink: Sink,
    pub(crate) output_log: Option<Arc<PriorResults>>,
    /// What each row's request does.
    pub(crate) operation: Operation,
    /// List the workspaces first (a run's rows only).
    pub(crate) preflight: bool,
    /// Some row is known before the job to need a request (not recorded done in the
    /// results file it continues): the list, if any, is made before the first row rather
    /// than at the first row that needs it.
    pub(crate) to_send: bool,
}

/// Everything `run` and `retry` have in common, from the target to the exit code.
pub(crate) async fn run_job(rows: Rows, target: Target, args: &JobArgs) -> anyhow::Result<Exit> {
    // The sandbox, if any, lives until the job ends.
    let Target {
        mode,
        sandbox,
        name,
        via_sandbox,
    } = target;
    let planning = matches!(mode, Mode::Plan(_));
    let dry_run = matches!(mode, Mode::DryRun);
    let failure_limit = failure_limit(args, rows.total)?;
    let progress = progress::start_progress(args.progress.into(), rows.total);
    // Without a drawn bar, the progress figures go to the log (every 10 s).
    let progress_every = progress.is_hidden().then_some(args.progress_every);
    let job = Job {
        source: rows.source,
        sink: rows.sink,
        output_name: rows.output.to_string(),
        target: name,
        output_log: rows.output_log,
        mode,
        operation: rows.operation,
        preflight: rows.preflight,
        to_send: rows.to_send,
        shard: args.shard.unwrap_or(Shard::ALL),
        max_failures: failure_limit,
        progress,
        progress_every,
        // A spreadsheet opens files: what a script reads on stdout stays plain.
        excel: match (args.excel, args.no_excel, &rows.output) {
            (true, ..) => Some(true),
            (_, true, _) | (.., Output::Stdout) => Some(false),
            _ => None,
        },
    };
    let how = How {
        use_sandbox: via_sandbox,
        dry_run,
        planning,
        no_preflight: rows.operation == Operation::Create && !rows.preflight,
        failure_limit,
    };
    let exit = finish(job, rows.output, args, how).await;
    drop(sandbox);
    exit
}

/// The input's rows (of the shard), counted before the job for the progress bar and
/// `--max-failures P%`, and whether any of them is known to need a request.
pub(super) struct Counted {
    pub(super) total: Option<u64>,
    /// Some row with a name is not recorded done in `output_log`; `false` when unknown
    /// (stdin).
    pub(super) to_send: bool,
    pub(super) sink: Sink,
}

/// Counts the input's rows (of the shard) before the job; a results file opened for
/// nothing is removed if that fails.
pub(super) async fn count_rows(
    input: &Input,
    format: CsvFormat,
    shard: Option<Shard>,
    sink: Sink,
    output_log: Option<&Arc<PriorResults>>,
) -> anyhow::Result<Counted> {
    let (counting, shard) = (input.clone(), shard.unwrap_or(Shard::ALL));
    let log = output_log.cloned();
    let counted = tokio::task::spawn_blocking(move || {
        // Done, or refused as it is (it would be again, without a request).
        let mut near = 0;
        let done = |name: &str, row, values: &dyn Fn() -> u64| {
            log.as_ref()
                .and_then(|log| log.get_near(Some(name), row, &mut near))
                .is_some_and(|prior| prior.stands_without_a_request(values))
        };
        input::count_rows_to_send(&counting, format, shard, signals::interrupted_flag(), done)
    })
    .await
    .expect("counting rows does not panic");
    match counted {
        Ok(counted) => Ok(Counted {
            total: counted.map(|c| c.rows),
            to_send: counted.is_some_and(|c| c.to_send),
            sink,
        }),
        Err(error) => {
            sink.discard_if_unused();
            Err(error.into())
        }
    }
}

/// `--max-failures` as a number of rows.
fn failure_limit(args: &JobArgs, total: Option<u64>) -> anyhow::Result<Option<u64>> {
    Ok(match args.max_failures {
        None => None,
        Some(MaxFailures::Count(n)) => Some(n),
        Some(MaxFailures::Percent(share)) => {
            let total = total.ok_or_else(|| {
                anyhow::anyhow!(
                    "--max-failures {share}% needs the number of rows beforehand, which cannot be counted here (stdin, or retry with --shard): give a count, like --max-failures 50"
                )
            })?;
            Some((total as f64 * share / 100.0).floor() as u64)
        }
    })
}

/// What a job was, besides its options, for its summary and exit code.
#[derive(Debug, Clone, Copy)]
struct How {
    /// Against an in-process sandbox (or a dry run of that).
    use_sandbox: bool,
    /// `--dry-run`: nothing was sent, and the retry must send nothing either.
    dry_run: bool,
    /// A plan: nothing is re-sent, and a plan without its list is no plan.
    planning: bool,
    /// A run's rows did not list the workspaces first: `--no-preflight`.
    no_preflight: bool,
    /// `--max-failures`, in rows.
    failure_limit: Option<u64>,
}

/// Runs the job, prints the summary (and writes it as JSON), and tells the exit code.
async fn finish(job: Job, output: Output, args: &JobArgs, how: How) -> anyhow::Result<Exit> {
    let bar = job.progress.clone();
    let report = job::run(job).await?;
    // The last figures drawn, past the bar's rate limit, so that its last frame says what
    // the summary says; then it goes, for the summary.
    bar.finish();
    bar.finish_and_clear();
    warn_of_the_ledger(&report.tally, &output, args);
    let mut exit = match report.stopped {
        Some(StopReason::OutputFailed) => Exit::OutputFailed,
        Some(
            StopReason::Unauthorized
            | StopReason::MaxFailures
            | StopReason::RateLimited
            | StopReason::Unreachable
            | StopReason::Untrusted
            | StopReason::InputFailed,
        ) => Exit::Aborted,
        Some(StopReason::Interrupted) => Exit::Interrupted,
        None if how.planning && report.listed.workspaces.is_none() => {
            tracing::error!(
                "the plan is incomplete: the workspaces that exist could not be listed, so its rows say only what is valid"
            );
            Exit::Aborted
        }
        None if report.tally.unsuccessful() > 0 => Exit::SomeRowsFailed,
        None => Exit::Success,
    };
    let mut summary = Summary::new(&report.tally, report.elapsed, output.to_string());
    add_pacing(&mut summary, &report.pacing);
    summary.stopped = report.stopped.map(StopReason::code);
    summary.next_step = report.stopped.and_then(StopReason::next_step);
    summary.exit_code = exit as u8;
    summary.unrecorded = report.unrecorded;
    summary.listed_workspaces = report.listed.workspaces;
    summary.list_requests = report.listed.requests;
    if let (Output::File(path), true, None, false) = (
        &output,
        report.tally.unsuccessful() > 0,
        &report.output_failure,
        how.planning,
    ) {
        let mut command = format!("dbprov retry {}", shell_quote(&path.display().to_string()));
        for flag in rerun_flags(args, how) {
            command.push(' ');
            command.push_str(&shell_quote(&flag));
        }
        summary.retry_command = Some(command);
    }
    if let Some(failure) = &report.output_failure {
        tracing::error!(
            "cannot write the results to {output}, so sending stopped; {} whose requests were sent: no record: {failure}",
            crate::model::counted(report.unrecorded, "row")
        );
    }
    // The file first, so that the summary is the last line on stderr whatever happens.
    if let Some(path) = &args.summary_json
        && let Err(error) = summary_file::write(path, &summary)
    {
        tracing::error!("cannot write the summary to {}: {error}", path.display());
        exit = Exit::OutputFailed;
        summary.exit_code = exit as u8;
    }
    let figures = RunFigures {
        rehearsal: how.planning || how.dry_run,
        ..figures_of(&summary)
    };
    MetricsOut::of(args).send(&figures).await;
    print_summary(&summary);
    Ok(exit)
}

/// The figures of the metrics, from the summary.
fn figures_of(summary: &Summary) -> RunFigures {
    RunFigures {
        rows_by_status: RunFigures::rows(|status| {
            summary.by_status.get(status).copied().unwrap_or(0)
        }),
        requests: summary.requests + summary.list_requests,
        responses_429: summary.responses_429,
        duration: Duration::from_secs_f64(summary.elapsed_seconds.max(0.0)),
        exit_code: summary.exit_code,
        finished_at: Some(std::time::SystemTime::now()),
        earlier_success: None,
        rehearsal: false,
    }
}

/// The summary on stderr: lines of text, or with `--log-format json` one event whose
/// `summary` field holds what `--summary-json` writes.
fn print_summary(summary: &Summary) {
    #[derive(serde::Serialize)]
    struct Fields<'a> {
        message: String,
        summary: &'a Summary,
    }
    if logging::is_json() {
        let message = summary.headline();
        logging::json_event(
            tracing::Level::INFO,
            "dbprov::summary",
            &Fields { message, summary },
        );
    } else {
        eprint!("{}", summary.text());
    }
    logging::summary_written();
}

/// Adds what pacing met to the summary: 429s, pauses, the announced limit.
fn add_pacing(summary: &mut Summary, pacing: &PacingReport) {
    summary.responses_429 = pacing.responses_429;
    summary.paused_rate_limited_seconds = pacing.paused_rate_limited.as_secs_f64();
    summary.paused_unreachable_seconds = pacing.paused_unreachable.as_secs_f64();
    summary.announced_limit = pacing.announced.map(|a| AnnouncedLimit {
        requests: a.limit,
        window_seconds: a.window.map(|w| w.as_secs_f64()),
    });
}

/// The options of a job that shaped how it was sent, for the retry command it prints:
/// everything but the defaults, and never the key itself. A dry run's retry is a dry run
/// too, and a rehearsal's goes to the sandbox: a command copied from the summary never
/// writes to an API that the job did not.
fn rerun_flags(args: &JobArgs, how: How) -> Vec<String> {
    let mut flags = Flags(Vec::new());
    if how.dry_run {
        flags.add("--dry-run", String::new());
    }
    api_flags(&mut flags, args, how);
    sending_flags(&mut flags, args);
    rows_flags(&mut flags, args, how);
    flags.0
}

/// Flags with their values, as a command line has them.
struct Flags(Vec<String>);

impl Flags {
    /// Adds `name`, and `value` unless it is empty (a switch).
    fn add(&mut self, name: &str, value: String) {
        self.0.push(name.to_owned());
        if !value.is_empty() {
            self.0.push(value);
        }
    }
}

/// Where the requests went, and with which key.
fn api_flags(flags: &mut Flags, args: &JobArgs, how: How) {
    use crate::cli::DEFAULT_BASE_URL;
    if how.use_sandbox {
        flags.add("--sandbox", String::new());
        return;
    }
    if args.base_url != DEFAULT_BASE_URL {
        flags.add("--base-url", args.base_url.clone());
    }
    if let Some(path) = &args.api_key_file {
        flags.add("--api-key-file", path.display().to_string());
    }
    if args.allow_insecure_http {
        flags.add("--allow-insecure-http", String::new());
    }
    if let Some(path) = &args.ca_cert {
        flags.add("--ca-cert", path.display().to_string());
    }
}

/// How the requests were sent: every option not at its default.
fn sending_flags(flags: &mut Flags, args: &JobArgs) {
    use crate::cli::{
        DEFAULT_BACKOFF_BASE, DEFAULT_BACKOFF_MAX, DEFAULT_BURST, DEFAULT_CONCURRENCY,
        DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_OUTAGE, DEFAULT_MAX_RETRY_AFTER, DEFAULT_RATE,
        DEFAULT_TIMEOUT, OnExistsArg,
    };
    let duration = |d: Duration| humantime::format_duration(d).to_string();
    let default_duration = |text: &str| humantime::parse_duration(text).unwrap_or_default();
    if args.on_exists != OnExistsArg::Skip {
        let value = clap::ValueEnum::to_possible_value(&args.on_exists)
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default();
        flags.add("--on-exists", value);
    }
    if args.rate.to_string() != DEFAULT_RATE {
        flags.add("--rate", args.rate.to_string());
    }
    if args.burst != DEFAULT_BURST {
        flags.add("--burst", args.burst.to_string());
    }
    if args.concurrency != DEFAULT_CONCURRENCY {
        flags.add("--concurrency", args.concurrency.to_string());
    }
    if args.max_attempts != DEFAULT_MAX_ATTEMPTS {
        flags.add("--max-attempts", args.max_attempts.to_string());
    }
    for (name, value, default) in [
        ("--backoff-base", args.backoff_base, DEFAULT_BACKOFF_BASE),
        ("--backoff-max", args.backoff_max, DEFAULT_BACKOFF_MAX),
        ("--timeout", args.timeout, DEFAULT_TIMEOUT),
        (
            "--max-retry-after",
            args.max_retry_after,
            DEFAULT_MAX_RETRY_AFTER,
        ),
        ("--max-outage", args.max_outage, DEFAULT_MAX_OUTAGE),
    ] {
        if value != default_duration(default) {
            flags.add(name, duration(value));
        }
    }
}

/// Which rows, and when to stop.
fn rows_flags(flags: &mut Flags, args: &JobArgs, how: How) {
    if let Some(shard) = args.shard {
        flags.add("--shard", format!("{}/{}", shard.index, shard.count));
    }
    match (args.max_failures, how.failure_limit) {
        (Some(MaxFailures::Count(n)), _) => flags.add("--max-failures", n.to_string()),
        // A retry of one shard cannot count its rows beforehand: the share, as rows.
        (Some(MaxFailures::Percent(_)), Some(limit)) if args.shard.is_some() => {
            flags.add("--max-failures", limit.to_string())
        }
        (Some(MaxFailures::Percent(share)), _) => flags.add("--max-failures", format!("{share}%")),
        (None, _) => {}
    }
    if how.no_preflight {
        flags.add("--no-preflight", String::new());
    }
}

/// Quotes a path for a POSIX shell when it needs it.
fn shell_quote(text: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// What the ledger kept that the operator should know of: records of names the input lost
/// (many of them may mean a truncated export), and kept rows whose input changed.
fn warn_of_the_ledger(tally: &Tally, output: &Output, args: &JobArgs) {
    let (missing, rows) = (tally.not_in_input, tally.rows());
    if missing > 0 && missing * 10 >= rows + missing {
        tracing::warn!(
            "{missing} records of {output} are of names this input does not have ({}): they stay in the file, after this run's rows. If the input was cut short (a truncated export), mend it and run again",
            crate::model::counted(rows, "row")
        );
    } else if missing > 0 {
        tracing::info!(
            "{missing} records of {output} are of names this input does not have: kept after this run's rows"
        );
    }
    if tally.changed_since_sent > 0 {
        let how = match args.on_exists {
            crate::cli::OnExistsArg::Update => "",
            _ => "; --on-exists update PUTs the new ones",
        };
        tracing::warn!(
            "{} ({}) other values in the input than they were sent with: their records keep the values the workspaces have{how}",
            crate::model::counted(tally.changed_since_sent, "kept row"),
            if tally.changed_since_sent == 1 {
                "has"
            } else {
                "have"
            }
        );
    }
}
