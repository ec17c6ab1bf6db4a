//! Dispatch from a parsed command line to the work, and the exit codes of `DESIGN.md`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::cli::{
    Cli, Command, JobArgs, MaxFailures, RateLimit, RetryArgs, RunArgs, SandboxArgs, Shard,
    ValidateArgs,
};
use crate::client::Client;
use crate::input::{self, InputReader};
use crate::job::{self, Job, Mode, Sender, Source, StopReason};
use crate::report;
use crate::resume::PriorResults;
use crate::retry::RetryPolicy;
use crate::sandbox::{self, Catalog, FaultConfig, SandboxConfig};
use crate::settings::{ApiKey, Input, Output};

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
    /// 130: interrupted.
    Interrupted = 130,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit as u8)
    }
}

/// Runs one command to its end.
pub async fn run(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Run(args) => run_command(args).await,
        Command::Retry(args) => retry_command(args).await,
        Command::Validate(args) => validate_command(args).await,
        Command::Sandbox(args) => sandbox_command(args).await,
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "dbprov", &mut std::io::stdout());
            Ok(Exit::Success)
        }
    }
}

async fn run_command(args: RunArgs) -> anyhow::Result<Exit> {
    let input = Input::from_arg(&args.input);
    let output = input
        .results_path(args.output.as_deref())
        .map_err(anyhow::Error::msg)?;
    if let (Input::File(input), Output::File(output)) = (&input, &output)
        && same_file(input, output)
    {
        anyhow::bail!(
            "the results file {} is the input itself: writing it would destroy the input. Give another -o (to re-send a results file's failures, use dbprov retry)",
            output.display()
        );
    }
    let output_log = if args.resume {
        earlier_results(&output, args.dry_run)?
    } else {
        None
    };
    let shard = args.job.shard.unwrap_or(Shard::ALL);
    let counting = input.clone();
    let total = tokio::task::spawn_blocking(move || input::count_rows(&counting, shard))
        .await
        .expect("counting rows does not panic")?;
    let rows = Rows {
        source: Source::Csv(input),
        total,
        output,
        output_log,
    };
    run_job(rows, args.dry_run, args.sandbox, &args.job).await
}

async fn retry_command(args: RetryArgs) -> anyhow::Result<Exit> {
    anyhow::ensure!(
        args.results != "-",
        "retry reads a results file, not stdin: give its path"
    );
    let results = PathBuf::from(&args.results);
    let input = PriorResults::scan(&results)?
        .ok_or_else(|| anyhow::anyhow!("{} is empty: there is nothing to retry", args.results))?;
    let input = Arc::new(input);
    // Without -o the results file itself is the log, read once for both roles; with -o, a
    // file left by an interrupted retry is carried on.
    let (output, output_log) = match args.output.as_deref() {
        None => {
            let output = Output::File(results);
            refuse_dry_run_over(&output, args.dry_run)?;
            (output, Some(input.clone()))
        }
        Some(path) => {
            let output = if path == "-" {
                Output::Stdout
            } else {
                Output::File(path.into())
            };
            let log = earlier_results(&output, args.dry_run)?;
            (output, log)
        }
    };
    let total = args.job.shard.is_none().then(|| input.len() as u64);
    let rows = Rows {
        source: Source::Results(input),
        total,
        output,
        output_log,
    };
    run_job(rows, args.dry_run, args.sandbox, &args.job).await
}

/// What `run` and `retry` each decide: where the rows come from and go to.
struct Rows {
    source: Source,
    /// Rows to process, when known beforehand.
    total: Option<u64>,
    output: Output,
    output_log: Option<Arc<PriorResults>>,
}

/// Everything `run` and `retry` have in common, from the target to the exit code.
async fn run_job(
    rows: Rows,
    dry_run: bool,
    use_sandbox: bool,
    args: &JobArgs,
) -> anyhow::Result<Exit> {
    let target = Target::new(dry_run, use_sandbox, args).await?;
    let progress = report::start_progress(args.progress, rows.total);
    // Without a drawn bar, the progress figures go to the log every 10 s.
    let progress_every = progress.is_hidden().then_some(Duration::from_secs(10));
    let job = Job {
        source: rows.source,
        output: rows.output,
        output_log: rows.output_log,
        mode: target.mode,
        shard: args.shard.unwrap_or(Shard::ALL),
        max_failures: failure_limit(args, rows.total)?,
        progress,
        progress_every,
    };
    let rerun = RerunHint {
        sandbox: target.sandbox.is_some(),
        shard: args.shard,
    };
    finish(job, args, rerun).await
}

/// `validate`: every invalid row on stdout with its line, name and reason.
async fn validate_command(args: ValidateArgs) -> anyhow::Result<Exit> {
    let input = Input::from_arg(&args.input);
    let (rows, invalid) = tokio::task::spawn_blocking(move || {
        let mut reader = InputReader::open(&input)?;
        let mut stdout = std::io::stdout().lock();
        let (mut rows, mut invalid) = (0u64, 0u64);
        while let Some(row) = reader.next_row()? {
            rows += 1;
            if let Err(error) = &row.request {
                invalid += 1;
                let name = row.name.as_deref().unwrap_or("");
                let line = format!(
                    "row {} (line {}), name '{name}': {}: {}",
                    row.row, row.line, error.code, error.message
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
    eprintln!(
        "dbprov: {rows} rows: {} valid, {invalid} invalid",
        rows - invalid
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

/// The earlier rows of a results file that is to be continued, if it exists.
fn earlier_results(output: &Output, dry_run: bool) -> anyhow::Result<Option<Arc<PriorResults>>> {
    refuse_dry_run_over(output, dry_run)?;
    match output {
        Output::Stdout => {
            anyhow::bail!("--resume and retry continue a results file: give -o PATH, not stdout")
        }
        Output::File(path) if path.exists() => Ok(PriorResults::scan(path)?.map(Arc::new)),
        Output::File(_) => Ok(None),
    }
}

/// A dry run writes a plan; it never rewrites earlier results.
fn refuse_dry_run_over(output: &Output, dry_run: bool) -> anyhow::Result<()> {
    if let (Output::File(path), true) = (output, dry_run)
        && path.exists()
    {
        anyhow::bail!(
            "a dry run does not change the earlier results in {}: give -o with a new file for the plan",
            path.display()
        );
    }
    Ok(())
}

/// Where requests go: nowhere (dry run), an in-process sandbox, or the API.
struct Target {
    mode: Mode,
    /// Kept alive until the job ends: dropping it stops the sandbox.
    sandbox: Option<sandbox::Sandbox>,
}

impl Target {
    async fn new(dry_run: bool, use_sandbox: bool, args: &JobArgs) -> anyhow::Result<Target> {
        if dry_run {
            return Ok(Target {
                mode: Mode::DryRun,
                sandbox: None,
            });
        }
        if use_sandbox {
            let local = sandbox::spawn(SandboxConfig::default())
                .await
                .context("cannot start the local sandbox")?;
            tracing::info!("sandbox started at {}", local.url());
            let key = ApiKey::new(local.api_key());
            return Ok(Target {
                mode: Mode::Send(sender(args, &local.url(), &key)?),
                sandbox: Some(local),
            });
        }
        check_transport(&args.base_url, args.allow_insecure_http)?;
        let key = api_key(args)?;
        Ok(Target {
            mode: Mode::Send(sender(args, &args.base_url, &key)?),
            sandbox: None,
        })
    }
}

/// What the retry command in the summary must repeat.
struct RerunHint {
    sandbox: bool,
    shard: Option<Shard>,
}

/// Runs the job, prints the summary (and writes it as JSON), and tells the exit code.
async fn finish(job: Job, args: &JobArgs, rerun: RerunHint) -> anyhow::Result<Exit> {
    let output = job.output.clone();
    let bar = job.progress.clone();
    let report = job::run(job).await?;
    bar.finish_and_clear();
    let exit = match report.stopped {
        Some(StopReason::Unauthorized | StopReason::MaxFailures) => Exit::Aborted,
        Some(StopReason::Interrupted) => Exit::Interrupted,
        None if report.tally.unsuccessful() > 0 => Exit::SomeRowsFailed,
        None => Exit::Success,
    };
    let mut summary = report::Summary::new(&report.tally, report.elapsed, output.to_string());
    summary.stopped = report.stopped.map(StopReason::code);
    summary.exit_code = exit as u8;
    if let (Output::File(path), true) = (&output, report.tally.unsuccessful() > 0) {
        let mut command = format!("dbprov retry {}", shell_quote(&path.display().to_string()));
        if rerun.sandbox {
            command.push_str(" --sandbox");
        }
        if let Some(shard) = rerun.shard {
            command.push_str(&format!(" --shard {}/{}", shard.index, shard.count));
        }
        summary.retry_command = Some(command);
    }
    eprint!("{}", summary.text());
    if let Some(path) = &args.summary_json {
        let json = serde_json::to_vec_pretty(&summary).expect("a summary always serialises");
        std::fs::write(path, json)
            .with_context(|| format!("cannot write the summary to {}", path.display()))?;
    }
    Ok(exit)
}

/// Refuses plain http:// to another machine: the key would cross the network in clear.
fn check_transport(base_url: &str, allow_insecure_http: bool) -> anyhow::Result<()> {
    let Ok(url) = reqwest::Url::parse(base_url) else {
        return Ok(()); // the client names what is wrong with it
    };
    let host = url.host_str().unwrap_or("");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    anyhow::ensure!(
        url.scheme() != "http" || loopback || allow_insecure_http,
        "--base-url {base_url} is plain http to another machine: the API key would cross the network unencrypted. Use https://, or pass --allow-insecure-http if the network is trusted"
    );
    Ok(())
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

/// The sending half of the settings, checked.
fn sender(args: &JobArgs, base_url: &str, key: &ApiKey) -> anyhow::Result<Sender> {
    anyhow::ensure!(args.concurrency >= 1, "--concurrency must be at least 1");
    anyhow::ensure!(args.max_attempts >= 1, "--max-attempts must be at least 1");
    let burst = std::num::NonZeroU32::new(args.burst)
        .ok_or_else(|| anyhow::anyhow!("--burst must be at least 1"))?;
    anyhow::ensure!(
        args.backoff_base <= args.backoff_max,
        "--backoff-base ({}) is above --backoff-max ({})",
        humantime::format_duration(args.backoff_base),
        humantime::format_duration(args.backoff_max)
    );
    anyhow::ensure!(!args.timeout.is_zero(), "--timeout must be above 0");
    Ok(Sender {
        client: Client::new(base_url, key, args.timeout, args.concurrency)?,
        concurrency: args.concurrency,
        rate: match args.rate {
            RateLimit::Limited(rate) => Some(rate),
            RateLimit::Unlimited => None,
        },
        burst,
        retry: RetryPolicy {
            max_attempts: args.max_attempts,
            backoff_base: args.backoff_base,
            backoff_max: args.backoff_max,
        },
        timeout: args.timeout,
        on_exists: args.on_exists,
    })
}

/// The service token: `--api-key-file`, else `DATABRAIN_API_KEY`. Never a flag value.
fn api_key(args: &JobArgs) -> anyhow::Result<ApiKey> {
    let key = match &args.api_key_file {
        Some(path) => {
            warn_if_readable_by_others(path);
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the API key file {}", path.display()))?;
            ApiKey::new(&text)
        }
        None => ApiKey::new(&std::env::var("DATABRAIN_API_KEY").unwrap_or_default()),
    };
    anyhow::ensure!(
        !key.expose().is_empty(),
        "no API key: set DATABRAIN_API_KEY or pass --api-key-file PATH (--sandbox and --dry-run need none)"
    );
    Ok(key)
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
            rate_limit: args.rate_limit.map(|r| r.per_second),
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
        .with_context(|| format!("cannot listen on {}", args.listen))?;
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
    tokio::signal::ctrl_c()
        .await
        .context("cannot listen for Ctrl-C")?;
    server.shutdown();
    Ok(Exit::Success)
}

/// Whether two paths name one existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// A key file others can read is a key others can use.
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o004 != 0
    {
        tracing::warn!(
            "the API key file {} is readable by every user (mode {:o}): chmod 600 {}",
            path.display(),
            meta.permissions().mode() & 0o777,
            path.display()
        );
    }
}
