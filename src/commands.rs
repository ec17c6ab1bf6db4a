//! Dispatch from a parsed command line to the work, and the exit codes of `DESIGN.md`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{Cli, Command, SandboxArgs};
use crate::sandbox::{self, Catalog, FaultConfig, SandboxConfig};

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
        Command::Sandbox(args) => sandbox_command(args).await,
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
