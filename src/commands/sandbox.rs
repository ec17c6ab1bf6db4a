//! `sandbox`: a local DataBrain-compatible API, until Ctrl-C.

use std::io::Write;

use super::job::Exit;
use crate::cli::SandboxArgs;
use crate::report::signals;
use crate::sandbox::{self, Catalog, FaultConfig, SandboxConfig};

pub(super) async fn sandbox_command(args: SandboxArgs) -> anyhow::Result<Exit> {
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
