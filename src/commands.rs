//! Dispatch from a parsed command line to the work, and the exit codes of `DESIGN.md`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use std::path::PathBuf;

use crate::cli::{Cli, Command, RateLimit, RetryArgs, RunArgs, SandboxArgs, SendArgs};
use crate::client::Client;
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
        Command::Sandbox(args) => sandbox_command(args).await,
    }
}

async fn run_command(args: RunArgs) -> anyhow::Result<Exit> {
    let input = Input::from_arg(&args.input);
    let output = input
        .results_path(args.output.as_deref())
        .map_err(anyhow::Error::msg)?;
    let output_log = if args.resume {
        earlier_results(&output, args.dry_run)?
    } else {
        None
    };
    let target = Target::new(args.dry_run, args.sandbox, &args.send).await?;
    let job = Job {
        source: Source::Csv(input),
        output,
        output_log,
        mode: target.mode,
    };
    finish(job, target.sandbox.is_some()).await
}

async fn retry_command(args: RetryArgs) -> anyhow::Result<Exit> {
    anyhow::ensure!(
        args.results != "-",
        "retry reads a results file, not stdin: give its path"
    );
    let results = PathBuf::from(&args.results);
    let input = PriorResults::scan(&results)?
        .ok_or_else(|| anyhow::anyhow!("{} is empty: there is nothing to retry", args.results))?;
    let output = match args.output.as_deref() {
        None => Output::File(results),
        Some("-") => Output::Stdout,
        Some(path) => Output::File(path.into()),
    };
    // Without -o the results file itself is the log; with -o, a file left by an
    // interrupted retry is carried on.
    let output_log = earlier_results(&output, args.dry_run)?;
    let target = Target::new(args.dry_run, args.sandbox, &args.send).await?;
    let job = Job {
        source: Source::Results(input),
        output,
        output_log,
        mode: target.mode,
    };
    finish(job, target.sandbox.is_some()).await
}

/// The earlier rows of a results file that is to be continued, if it exists.
fn earlier_results(output: &Output, dry_run: bool) -> anyhow::Result<Option<PriorResults>> {
    if let (Output::File(path), true) = (output, dry_run)
        && path.exists()
    {
        anyhow::bail!(
            "a dry run does not change the earlier results in {}: give -o with a new file for the plan",
            path.display()
        );
    }
    match output {
        Output::Stdout => {
            anyhow::bail!("--resume and retry continue a results file: give -o PATH, not stdout")
        }
        Output::File(path) if path.exists() => Ok(PriorResults::scan(path)?),
        Output::File(_) => Ok(None),
    }
}

/// Where requests go: nowhere (dry run), an in-process sandbox, or the API.
struct Target {
    mode: Mode,
    /// Kept alive until the job ends: dropping it stops the sandbox.
    sandbox: Option<sandbox::Sandbox>,
}

impl Target {
    async fn new(dry_run: bool, use_sandbox: bool, send: &SendArgs) -> anyhow::Result<Target> {
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
                mode: Mode::Send(sender(send, &local.url(), &key)?),
                sandbox: Some(local),
            });
        }
        let key = api_key(send)?;
        Ok(Target {
            mode: Mode::Send(sender(send, &send.base_url, &key)?),
            sandbox: None,
        })
    }
}

/// Runs the job, prints the summary, and tells the exit code.
async fn finish(job: Job, sandbox: bool) -> anyhow::Result<Exit> {
    let output = job.output.clone();
    let report = job::run(job).await?;
    let stopped = report.stopped.map(|reason| reason.message());
    let mut summary = report::summary(&report.tally, report.elapsed, &output.to_string(), stopped);
    if let (Output::File(path), true) = (&output, report.tally.unsuccessful() > 0) {
        let flag = if sandbox { " --sandbox" } else { "" };
        summary.push_str(&format!(
            "  retry the rows that did not succeed: dbprov retry {}{flag}\n",
            shell_quote(&path.display().to_string())
        ));
    }
    eprint!("{summary}");
    Ok(match report.stopped {
        Some(StopReason::Unauthorized) => Exit::Aborted,
        Some(StopReason::Interrupted) => Exit::Interrupted,
        None if report.tally.unsuccessful() > 0 => Exit::SomeRowsFailed,
        None => Exit::Success,
    })
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
fn sender(args: &SendArgs, base_url: &str, key: &ApiKey) -> anyhow::Result<Sender> {
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
fn api_key(args: &SendArgs) -> anyhow::Result<ApiKey> {
    let key = match &args.api_key_file {
        Some(path) => {
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
        "sandbox listening on {}; datasources {:?}, datamarts {:?}, LLMs {:?}, themes {:?}; faults {:?}",
        server.url(),
        catalog.datasources,
        catalog.datamarts,
        catalog.llms,
        catalog.themes,
        faults,
    );
    tokio::signal::ctrl_c()
        .await
        .context("cannot listen for Ctrl-C")?;
    server.shutdown();
    Ok(Exit::Success)
}
