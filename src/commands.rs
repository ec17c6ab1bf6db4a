//! Dispatch from a parsed command line to the work, and the exit codes of `DESIGN.md`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{Cli, Command, RateLimit, RunArgs, SandboxArgs, SendArgs};
use crate::client::Client;
use crate::job::{self, Job, Mode, Sender, StopReason};
use crate::report;
use crate::retry::RetryPolicy;
use crate::sandbox::{self, Catalog, FaultConfig, SandboxConfig};
use crate::settings::{ApiKey, Input};

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
        Command::Sandbox(args) => sandbox_command(args).await,
    }
}

async fn run_command(args: RunArgs) -> anyhow::Result<Exit> {
    let input = Input::from_arg(&args.input);
    let output = input
        .results_path(args.output.as_deref())
        .map_err(anyhow::Error::msg)?;
    let results_name = output.to_string();
    // Kept alive until the job ends: dropping it stops the sandbox.
    let mut _sandbox = None;
    let mode = if args.dry_run {
        Mode::DryRun
    } else {
        let (base_url, key) = if args.sandbox {
            let local = sandbox::spawn(SandboxConfig::default())
                .await
                .context("cannot start the local sandbox")?;
            tracing::info!("sandbox started at {}", local.url());
            let target = (local.url(), ApiKey::new(local.api_key()));
            _sandbox = Some(local);
            target
        } else {
            (args.send.base_url.clone(), api_key(&args.send)?)
        };
        Mode::Send(sender(&args.send, &base_url, &key)?)
    };
    let report = job::run(Job {
        input,
        output,
        mode,
    })
    .await?;
    let stopped = report.stopped.map(|reason| reason.message());
    eprint!(
        "{}",
        report::summary(&report.tally, report.elapsed, &results_name, stopped)
    );
    Ok(match report.stopped {
        Some(StopReason::Unauthorized) => Exit::Aborted,
        Some(StopReason::Interrupted) => Exit::Interrupted,
        None if report.tally.unsuccessful() > 0 => Exit::SomeRowsFailed,
        None => Exit::Success,
    })
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
