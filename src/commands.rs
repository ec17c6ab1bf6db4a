//! Dispatch from a parsed command line to the work, the exit codes of `DESIGN.md`, and
//! the line that tells why a command stopped.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::{
    Cli, Command, JobArgs, MaxFailures, PlanArgs, RetryArgs, RowsArgs, SandboxArgs, ValidateArgs,
};
use crate::decode::CsvFormat;
use crate::guard::{Continuing, hold_input, open_output, refuse_clobbering, scan_input};
use crate::input::{self, InputReader};
use crate::job::{self, Job, Mode, Source, StopReason};
use crate::logging;
use crate::operation::{Operation, Running};
use crate::report;
use crate::results::Sink;
use crate::resume::PriorResults;
use crate::sandbox::{self, Catalog, FaultConfig, SandboxConfig};
use crate::settings::{Input, Output, Shard};
use crate::signals;
use crate::summary_file;
use crate::target::Target;

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

/// The line that says why a command stopped: each message of the error's chain once,
/// outermost first, joined by `: `, then the next step that an OS error at its root calls
/// for (`check the path`, ...). Messages say what to do themselves; this only keeps a
/// cause that a message already quotes from being printed twice.
pub fn error_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    let os_error = error.root_cause().downcast_ref::<std::io::Error>();
    if let Some(step) = os_error.and_then(|e| next_step(e.kind())) {
        line.push_str("; ");
        line.push_str(step);
    }
    line
}

/// What to do about an OS error on a path the operator gave, when its kind says.
fn next_step(kind: std::io::ErrorKind) -> Option<&'static str> {
    use std::io::ErrorKind;
    Some(match kind {
        ErrorKind::NotFound | ErrorKind::NotADirectory => "check the path",
        ErrorKind::PermissionDenied => "check the file's permissions, or give another path",
        ErrorKind::IsADirectory => "give a file, not a folder",
        ErrorKind::ReadOnlyFilesystem => "give a path on a writable file system",
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => {
            "free some space, or give another path"
        }
        _ => return None,
    })
}

/// Runs one command to its end.
pub async fn run(cli: Cli) -> anyhow::Result<Exit> {
    // The --summary-json file, and the file the command reads, which it must never be.
    let (summary_json, read) = match &cli.command {
        Command::Run(args) => (&args.rows.job.summary_json, args.rows.input.clone()),
        Command::Update(args) | Command::Delete(args) => {
            (&args.job.summary_json, args.input.clone())
        }
        Command::Retry(args) => (&args.job.summary_json, args.results.clone()),
        Command::Plan(args) => (&args.job.summary_json, args.input.clone()),
        Command::Rollback(args) => (&args.job.summary_json, args.results.clone()),
        Command::Validate(_) | Command::Sandbox(_) | Command::Completions { .. } => {
            (&None, String::new())
        }
    };
    let summary_json = summary_json
        .clone()
        .filter(|path| read == "-" || !crate::output::same_file(path, std::path::Path::new(&read)));
    let ended = run_command(cli).await;
    let (code, error) = match &ended {
        Ok(exit) => (*exit as u8, None),
        Err(error) => (Exit::Usage as u8, Some(error_line(error))),
    };
    summary_file::settle(code, error.clone());
    if let Some(path) = summary_json {
        summary_file::settle_unclaimed(&path, code, error);
    }
    ended
}

/// The command itself.
async fn run_command(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Run(args) => rows_command(args.rows, Operation::Create).await,
        Command::Update(args) => rows_command(args, Operation::Update).await,
        Command::Delete(args) => rows_command(args, Operation::Delete).await,
        Command::Retry(args) => retry_command(args).await,
        Command::Plan(args) => plan_command(args).await,
        Command::Rollback(args) => crate::rollback::rollback_command(args).await,
        Command::Validate(args) => validate_command(args).await,
        Command::Sandbox(args) => sandbox_command(args).await,
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "dbprov", &mut std::io::stdout());
            Ok(Exit::Success)
        }
    }
}

/// `run`, `update` and `delete`: one job over a tenant CSV, with another request.
async fn rows_command(args: RowsArgs, operation: Operation) -> anyhow::Result<Exit> {
    signals::take_over();
    let input = Input::from_arg(&args.input);
    let kind = match operation {
        Operation::Create => "results",
        Operation::Update => "update",
        Operation::Delete => "delete",
    };
    let output = input
        .results_path(args.output.as_deref(), args.job.shard, kind)
        .map_err(anyhow::Error::msg)?;
    refuse_clobbering(&[&input], &output, &args.job, Running::Rows(operation))?;
    let continuing = match (args.resume, args.overwrite) {
        (true, _) => Continuing::Resume,
        (false, true) => Continuing::Overwrite,
        (false, false) => Continuing::Refuse,
    };
    let target = Target::new(
        args.dry_run,
        Running::Rows(operation),
        args.sandbox,
        &args.job,
    )
    .await?;
    let (sink, output_log) = open_output(
        &output,
        continuing,
        args.dry_run,
        &target.name,
        Some(operation),
        Running::Rows(operation),
    )?;
    let format = CsvFormat::from(args.csv);
    let (total, sink) = count_rows(&input, format, args.job.shard, sink).await?;
    let rows = Rows {
        source: Source::Csv(input, format),
        total,
        output,
        sink,
        output_log,
        operation,
        preflight: args.job.preflight.on(),
    };
    run_job(rows, target, &args.job).await
}

async fn retry_command(args: RetryArgs) -> anyhow::Result<Exit> {
    signals::take_over();
    anyhow::ensure!(
        args.results != "-",
        "retry reads a results file, not stdin: give its path"
    );
    let results = PathBuf::from(&args.results);
    let (in_place, into) = (
        Running::Retry { in_place: true },
        Running::Retry { in_place: false },
    );
    let running = if args.output.is_none() {
        in_place
    } else {
        into
    };
    let target = Target::new(args.dry_run, running, args.sandbox, &args.job).await?;
    let empty = || anyhow::anyhow!("{} is empty: there is nothing to retry", args.results);
    // The rows are re-sent as the command that wrote them sent them: a delete's are
    // deleted again, never created.
    let operation_of = |log: &PriorResults| {
        log.written_by.operation().map_err(|both| {
            anyhow::anyhow!(
                "{} holds rows of {both}: retry cannot tell which to send. Split the file, or send the rows again with the command they are for",
                args.results
            )
        })
    };
    // Without -o the results file itself is the log, read once for both roles, and locked
    // before it is read; with -o, a file left by an interrupted retry is carried on, and
    // the input is locked all the same while it is read.
    let mut held = None;
    let (input, output, sink, output_log, operation) = match args.output.as_deref() {
        None => {
            let output = Output::File(results);
            refuse_clobbering(&[], &output, &args.job, in_place)?;
            let (sink, log) = open_output(
                &output,
                Continuing::Resume,
                args.dry_run,
                &target.name,
                None,
                in_place,
            )?;
            let log = log.ok_or_else(empty)?;
            let operation = operation_of(&log)?;
            (log.clone(), output, sink, Some(log), operation)
        }
        Some(path) => {
            let output = if path == "-" {
                Output::Stdout
            } else {
                Output::File(path.into())
            };
            refuse_clobbering(&[&Input::File(results.clone())], &output, &args.job, into)?;
            held = hold_input(&results)?;
            let input = scan_input(&results, &target.name, into)?.ok_or_else(empty)?;
            let operation = operation_of(&input)?;
            let continuing = match output {
                Output::File(_) => Continuing::Resume,
                Output::Stdout => Continuing::Refuse,
            };
            let (sink, log) = open_output(
                &output,
                continuing,
                args.dry_run,
                &target.name,
                Some(operation),
                into,
            )?;
            (Arc::new(input), output, sink, log, operation)
        }
    };
    let (elsewhere, other) = &input.elsewhere;
    anyhow::ensure!(
        operation != Operation::Delete || *elsewhere == 0 || args.dry_run,
        "{} records deletions, and {elsewhere} of its rows were recorded against {other}, not {}: a retry deletes only on the API its rows were meant for. Give --base-url {other} (or --sandbox for `sandbox`); to delete those names here, run dbprov delete on them",
        args.results,
        target.name
    );
    if operation != Operation::Create {
        tracing::info!(
            "{} records the rows of `dbprov {}`: they are sent again as such",
            args.results,
            operation.command()
        );
    }
    let total = args.job.shard.is_none().then(|| input.len() as u64);
    let rows = Rows {
        source: Source::Results(input),
        total,
        output,
        sink,
        output_log,
        operation,
        preflight: args.job.preflight.on(),
    };
    let exit = run_job(rows, target, &args.job).await;
    drop(held);
    exit
}

/// `plan`: what `run` would do, from local checks and one list; no write is sent.
async fn plan_command(args: PlanArgs) -> anyhow::Result<Exit> {
    signals::take_over();
    let input = Input::from_arg(&args.input);
    let output = input
        .results_path(args.output.as_deref(), args.job.shard, "plan")
        .map_err(anyhow::Error::msg)?;
    refuse_clobbering(&[&input], &output, &args.job, Running::Plan)?;
    let target = Target::new(false, Running::Plan, args.sandbox, &args.job).await?;
    let (sink, _) = open_output(
        &output,
        Continuing::Refuse,
        true,
        &target.name,
        Some(Operation::Create),
        Running::Plan,
    )?;
    let format = CsvFormat::from(args.csv);
    let (total, sink) = count_rows(&input, format, args.job.shard, sink).await?;
    let rows = Rows {
        source: Source::Csv(input, format),
        total,
        output,
        sink,
        output_log: None,
        operation: Operation::Create,
        preflight: true,
    };
    run_job(rows, target, &args.job).await
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
    let progress = report::start_progress(args.progress, rows.total);
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
        shard: args.shard.unwrap_or(Shard::ALL),
        max_failures: failure_limit,
        progress,
        progress_every,
        excel: args.excel,
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

/// Counts the input's rows (of the shard) before the job, for the progress bar and
/// `--max-failures P%`; a results file opened for nothing is removed if that fails.
async fn count_rows(
    input: &Input,
    format: CsvFormat,
    shard: Option<Shard>,
    sink: Sink,
) -> anyhow::Result<(Option<u64>, Sink)> {
    let (counting, shard) = (input.clone(), shard.unwrap_or(Shard::ALL));
    let total = tokio::task::spawn_blocking(move || {
        input::count_rows(&counting, format, shard, signals::interrupted_flag())
    })
    .await
    .expect("counting rows does not panic");
    match total {
        Ok(total) => Ok((total, sink)),
        Err(error) => {
            sink.discard_if_unused();
            Err(error.into())
        }
    }
}

/// `validate`: every invalid row on stdout with its line, name and reason.
async fn validate_command(args: ValidateArgs) -> anyhow::Result<Exit> {
    let input = Input::from_arg(&args.input);
    let (rows, invalid) = tokio::task::spawn_blocking(move || {
        let format = CsvFormat::from(args.csv);
        // A file is checked whole, as a job checks it before sending.
        input::count_rows(&input, format, Shard::ALL, signals::interrupted_flag())?;
        let mut reader = InputReader::open(&input, format)?;
        let mut stdout = std::io::stdout().lock();
        let (mut rows, mut invalid) = (0u64, 0u64);
        while let Some(row) = reader.next_row()? {
            rows += 1;
            if let Err(error) = &row.request {
                invalid += 1;
                // One line per row, whatever the name holds.
                let name: String = row
                    .name
                    .as_deref()
                    .unwrap_or("")
                    .chars()
                    .flat_map(|c| match c.is_control() {
                        true => c.escape_default().collect::<Vec<_>>(),
                        false => vec![c],
                    })
                    .collect();
                // The line is said once, before the name: not again as the message's own
                // prefix (which results files keep).
                let line_prefix = format!("line {}: ", row.line);
                let message = error
                    .message
                    .strip_prefix(&line_prefix)
                    .unwrap_or(&error.message);
                let line = format!(
                    "row {} (line {}), name '{name}': {}: {message}",
                    row.row, row.line, error.code
                );
                if writeln!(stdout, "{line}").is_err() {
                    break; // a closed pipe (| head) is a normal end
                }
            }
        }
        Ok::<_, anyhow::Error>((rows, invalid))
    })
    .await
    .expect("validation does not panic")?;
    logging::notice(
        tracing::Level::INFO,
        &format!("{rows} rows: {} valid, {invalid} invalid", rows - invalid),
    );
    Ok(if invalid == 0 {
        Exit::Success
    } else {
        Exit::SomeRowsFailed
    })
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
    bar.finish_and_clear();
    let mut exit = match report.stopped {
        Some(StopReason::OutputFailed) => Exit::OutputFailed,
        Some(
            StopReason::Unauthorized
            | StopReason::MaxFailures
            | StopReason::RateLimited
            | StopReason::Unreachable
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
    let mut summary = report::Summary::new(&report.tally, report.elapsed, output.to_string())
        .with_pacing(&report.pacing);
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
            "cannot write the results to {output}, so sending stopped; {} rows whose requests were sent have no record: {failure}",
            report.unrecorded
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
    print_summary(&summary);
    Ok(exit)
}

/// The summary on stderr: lines of text, or with `--log-format json` one event whose
/// `summary` field holds what `--summary-json` writes.
fn print_summary(summary: &report::Summary) {
    #[derive(serde::Serialize)]
    struct Fields<'a> {
        message: String,
        summary: &'a report::Summary,
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
}

/// The options of a job that shaped how it was sent, for the retry command it prints:
/// everything but the defaults, and never the key itself. A dry run's retry is a dry run
/// too, and a rehearsal's goes to the sandbox: a command copied from the summary never
/// writes to an API that the job did not.
fn rerun_flags(args: &JobArgs, how: How) -> Vec<String> {
    use crate::cli::{
        DEFAULT_BACKOFF_BASE, DEFAULT_BACKOFF_MAX, DEFAULT_BASE_URL, DEFAULT_BURST,
        DEFAULT_CONCURRENCY, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_OUTAGE, DEFAULT_MAX_RETRY_AFTER,
        DEFAULT_RATE, DEFAULT_TIMEOUT, OnExists,
    };
    let mut flags = Vec::new();
    let mut flag = |name: &str, value: String| {
        flags.push(name.to_owned());
        if !value.is_empty() {
            flags.push(value);
        }
    };
    if how.dry_run {
        flag("--dry-run", String::new());
    }
    if how.use_sandbox {
        flag("--sandbox", String::new());
    } else {
        if args.base_url != DEFAULT_BASE_URL {
            flag("--base-url", args.base_url.clone());
        }
        if let Some(path) = &args.api_key_file {
            flag("--api-key-file", path.display().to_string());
        }
        if args.allow_insecure_http {
            flag("--allow-insecure-http", String::new());
        }
    }
    let duration = |d: Duration| humantime::format_duration(d).to_string();
    let default_duration = |text: &str| humantime::parse_duration(text).unwrap_or_default();
    if args.on_exists != OnExists::Skip {
        let value = clap::ValueEnum::to_possible_value(&args.on_exists)
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default();
        flag("--on-exists", value);
    }
    if args.rate.to_string() != DEFAULT_RATE {
        flag("--rate", args.rate.to_string());
    }
    if args.burst != DEFAULT_BURST {
        flag("--burst", args.burst.to_string());
    }
    if args.concurrency != DEFAULT_CONCURRENCY {
        flag("--concurrency", args.concurrency.to_string());
    }
    if args.max_attempts != DEFAULT_MAX_ATTEMPTS {
        flag("--max-attempts", args.max_attempts.to_string());
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
            flag(name, duration(value));
        }
    }
    if let Some(shard) = args.shard {
        flag("--shard", format!("{}/{}", shard.index, shard.count));
    }
    match (args.max_failures, how.failure_limit) {
        (Some(MaxFailures::Count(n)), _) => flag("--max-failures", n.to_string()),
        // A retry of one shard cannot count its rows beforehand: the share, as rows.
        (Some(MaxFailures::Percent(_)), Some(limit)) if args.shard.is_some() => {
            flag("--max-failures", limit.to_string())
        }
        (Some(MaxFailures::Percent(share)), _) => flag("--max-failures", format!("{share}%")),
        (None, _) => {}
    }
    if how.no_preflight {
        flag("--no-preflight", String::new());
    }
    flags
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

async fn sandbox_command(args: SandboxArgs) -> anyhow::Result<Exit> {
    let defaults = Catalog::default();
    let config = SandboxConfig {
        api_key: args.api_key,
        catalog: Catalog {
            datasources: args.datasources.unwrap_or(defaults.datasources),
            datamarts: args.datamarts.unwrap_or(defaults.datamarts),
            llms: args.llms.unwrap_or(defaults.llms),
            themes: args.themes.unwrap_or(defaults.themes),
        },
        faults: FaultConfig {
            latency: args.latency,
            jitter: args.jitter,
            fail_rate: args.fail_rate,
            fail_after_commit_rate: args.fail_after_commit_rate,
            drop_rate: args.drop_rate,
            rate_limit: args.rate_limit,
            rate_limit_headers: args.rate_limit_headers,
            retry_after: !args.no_retry_after,
        },
        seed: args.seed,
        ..SandboxConfig::default()
    };
    if !args.listen.ip().is_loopback() {
        tracing::warn!(
            "listening on {}: the sandbox is reachable from other machines",
            args.listen
        );
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|error| {
            anyhow::anyhow!(
                "cannot listen on {}: {error}; give another --listen (port 0 picks a free one)",
                args.listen
            )
        })?;
    let catalog = config.catalog.clone();
    let faults = config.faults.clone();
    let server = sandbox::serve(listener, config)?;
    // Scripts read these two lines: the URL first, then the key.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", server.url())?;
    writeln!(stdout, "{}", server.api_key())?;
    stdout.flush()?;
    drop(stdout);
    tracing::info!(
        seed = server.seed(),
        "sandbox listening on {}; datasources {}; datamarts {}; LLMs {}; themes {}; faults: {faults}",
        server.url(),
        catalog.datasources.join(", "),
        catalog.datamarts.join(", "),
        catalog.llms.join(", "),
        catalog.themes.join(", "),
    );
    signals::take_over();
    signals::until_interrupted().await;
    server.shutdown();
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missing_file() -> std::io::Error {
        std::fs::File::open("/nonexistent/dbprov/tenants.csv").unwrap_err()
    }

    #[test]
    fn an_os_error_is_told_once_with_the_next_step() {
        let input = Input::from_arg("/nonexistent/dbprov/tenants.csv");
        let error: anyhow::Error = crate::job::JobError::from(
            InputReader::open(&input, CsvFormat::default())
                .err()
                .unwrap(),
        )
        .into();
        assert_eq!(
            error_line(&error),
            "cannot open /nonexistent/dbprov/tenants.csv: No such file or directory (os error 2); check the path"
        );
        let context = anyhow::Error::new(missing_file()).context("cannot read the API key file k");
        assert_eq!(
            error_line(&context),
            "cannot read the API key file k: No such file or directory (os error 2); check the path"
        );
    }

    #[test]
    fn a_message_that_quotes_its_source_does_not_print_it_twice() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot open a.csv: {source}")]
        struct Quoting {
            source: std::io::Error,
        }
        let error = anyhow::Error::new(Quoting {
            source: missing_file(),
        })
        .context("while starting");
        let line = error_line(&error);
        assert_eq!(
            line.matches("No such file or directory").count(),
            1,
            "{line}"
        );
        assert_eq!(
            line,
            "while starting: cannot open a.csv: No such file or directory (os error 2); check the path"
        );
    }

    #[test]
    fn only_an_os_error_at_the_root_adds_a_step() {
        let plain = anyhow::anyhow!("--burst must be at least 1").context("settings");
        assert_eq!(error_line(&plain), "settings: --burst must be at least 1");
        let other = anyhow::Error::new(std::io::Error::other("the pipe broke"));
        assert_eq!(error_line(&other), "the pipe broke");
        let denied = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        assert!(
            error_line(&denied).ends_with("; check the file's permissions, or give another path")
        );
    }
}
