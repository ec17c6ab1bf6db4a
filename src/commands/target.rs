//! Where a job's requests go, set up and checked before any of them: the in-process
//! sandbox or the API, its key, the transport, and the sending settings.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use super::running::Running;
use crate::api::client::shown_base_url;
use crate::api::{Client, RetryPolicy, Transport};
use crate::cli::JobArgs;
use crate::job::{Mode, Sender};
use crate::model::{ApiKey, RateLimit, Shard};
use crate::pacing::PacingSettings;
use crate::sandbox::{self, SandboxConfig};

/// Raises the soft limit on open files to the hard one, and refuses a concurrency that
/// would not fit: better said before the job than as "Too many open files" on every row.
fn ensure_open_files(connections: usize) -> anyhow::Result<()> {
    // Files, the runtime and the logs, besides one socket per connection.
    const SPARE: u64 = 64;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Ok(());
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    let needed = connections as u64 + SPARE;
    anyhow::ensure!(
        limit.rlim_cur == libc::RLIM_INFINITY || needed <= limit.rlim_cur,
        "--concurrency needs about {needed} open files, but this process may open only {} (ulimit -n): lower --concurrency to {} or raise the limit",
        limit.rlim_cur,
        limit.rlim_cur.saturating_sub(SPARE).max(1)
    );
    Ok(())
}

/// Where requests go: nowhere (dry run), an in-process sandbox, or the API.
pub(crate) struct Target {
    pub(crate) mode: Mode,
    /// Kept alive until the job ends: dropping it stops the sandbox.
    pub(crate) sandbox: Option<sandbox::Sandbox>,
    /// The `_target` of the outcomes: the API's base URL, `sandbox`, or nothing for a dry
    /// run.
    pub(crate) name: String,
    /// `--sandbox` was given: the job talks to the in-process sandbox, or would (a dry
    /// run), and so does the retry command it prints.
    pub(crate) via_sandbox: bool,
}

impl Target {
    /// The target of the command `running`; a plan lists, but sends no write.
    pub(crate) async fn new(
        dry_run: bool,
        running: Running,
        use_sandbox: bool,
        args: &JobArgs,
    ) -> anyhow::Result<Target> {
        let plan = running == Running::Plan;
        let mode = |sender: Sender| {
            if plan {
                Mode::Plan(Box::new(sender))
            } else {
                Mode::Send(Box::new(sender))
            }
        };
        // Even a dry run: its retry command names the URL.
        if !use_sandbox {
            refuse_credentials(&args.base_url)?;
            let base = args.base_url.trim();
            anyhow::ensure!(
                !base.contains(['?', '#']),
                "--base-url '{}' has a ?query or #fragment: give the API's root alone (https://host), and the key in DATABRAIN_API_KEY or --api-key-file",
                shown_base_url(base)
            );
        }
        if dry_run {
            return Ok(Target {
                mode: Mode::DryRun,
                sandbox: None,
                name: String::new(),
                via_sandbox: use_sandbox,
            });
        }
        // The in-process sandbox holds the other end of each connection.
        let per_request = if use_sandbox { 2 } else { 1 };
        ensure_open_files(args.concurrency.saturating_mul(per_request))?;
        if use_sandbox {
            let local = sandbox::spawn(SandboxConfig::default())
                .await
                .context("cannot start the local sandbox")?;
            tracing::info!("sandbox started at {}", local.url());
            let key = ApiKey::new(local.api_key());
            return Ok(Target {
                mode: mode(sender(args, &local.url(), &key)?),
                sandbox: Some(local),
                name: "sandbox".to_owned(),
                via_sandbox: true,
            });
        }
        check_transport(&args.base_url, args.allow_insecure_http)?;
        let key = api_key(args, running)?;
        Ok(Target {
            mode: mode(sender(args, &args.base_url, &key)?),
            sandbox: None,
            name: target_of(&args.base_url),
            via_sandbox: false,
        })
    }
}

/// The `_target` of an API root: its URL as the URL parser writes it (scheme and host in
/// lower case, no default port), without a trailing `/`, so that one API spelled two ways
/// is one target.
pub(crate) fn target_of(base_url: &str) -> String {
    let normal = reqwest::Url::parse(base_url.trim())
        .map(String::from)
        .unwrap_or_else(|_| base_url.trim().to_owned());
    normal.trim_end_matches('/').to_owned()
}

/// Refuses a base URL with a user name or password in it (`https://user:KEY@host`): the
/// URL is written in every `_target`, retry command and lock message, and the client would
/// send it as Basic auth. Said without the URL's secret, whether or not it parses.
fn refuse_credentials(base_url: &str) -> anyhow::Result<()> {
    let base_url = base_url.trim();
    let (scheme, rest) = base_url.split_once("://").unwrap_or(("", base_url));
    let authority = rest.split(['/', '\\', '?', '#']).next().unwrap_or("");
    let Some((_, host)) = authority.rsplit_once('@') else {
        return Ok(());
    };
    let shown = match scheme {
        "" => host.to_owned(),
        scheme => format!("{scheme}://{host}"),
    };
    anyhow::bail!(
        "--base-url holds a user name or password before {shown}: put the key in DATABRAIN_API_KEY or --api-key-file, not in the URL"
    )
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
        "--base-url {} is plain http to another machine: the API key would cross the network unencrypted. Use https://, or pass --allow-insecure-http if the network is trusted",
        shown_base_url(base_url)
    );
    Ok(())
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
    let day = Duration::from_secs(86_400);
    for (flag, value) in [
        ("--timeout", args.timeout),
        ("--backoff-max", args.backoff_max),
        ("--max-retry-after", args.max_retry_after),
        ("--max-outage", args.max_outage),
    ] {
        anyhow::ensure!(
            value <= day,
            "{flag} {} is over a day: give at most 24h",
            humantime::format_duration(value)
        );
    }
    let retry = RetryPolicy {
        max_attempts: args.max_attempts,
        backoff_base: args.backoff_base,
        backoff_max: args.backoff_max,
    };
    Ok(Sender {
        client: Client::new(
            base_url,
            key,
            args.timeout,
            args.concurrency,
            &Transport::new(args.ca_cert.as_deref())?,
        )?,
        concurrency: args.concurrency,
        pacing: PacingSettings {
            ceiling: match args.rate {
                RateLimit::Limited(rate) => Some(rate),
                RateLimit::Unlimited => None,
            },
            burst,
            max_retry_after: args.max_retry_after,
            max_outage: args.max_outage,
            backoff: retry,
            shard: args.shard.unwrap_or(Shard::ALL),
        },
        retry,
        timeout: args.timeout,
        on_exists: args.on_exists.into(),
    })
}

/// The service token: `--api-key-file`, else `DATABRAIN_API_KEY`. Never a flag value.
/// Without one, says which options of the command `running` need none.
fn api_key(args: &JobArgs, running: Running) -> anyhow::Result<ApiKey> {
    let key = match &args.api_key_file {
        Some(path) => {
            let meta = std::fs::metadata(path).ok();
            anyhow::ensure!(
                !meta.as_ref().is_some_and(|m| m.is_dir()),
                "--api-key-file {} is a directory, not a key file: give the file that holds the key",
                path.display()
            );
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the API key file {}", path.display()))?;
            let key = ApiKey::new(&text);
            anyhow::ensure!(
                !key.expose().is_empty(),
                "the key file {} is empty: put the service token in it",
                path.display()
            );
            // A pipe (`<(vault read ...)`) has no permissions worth a warning.
            if let Some(meta) = meta.filter(|m| m.is_file()) {
                warn_if_readable_by_others(path, &meta);
            }
            key
        }
        None => ApiKey::new(&std::env::var("DATABRAIN_API_KEY").unwrap_or_default()),
    };
    // A rollback with --sandbox is refused (that sandbox would be new and empty), and a
    // plan has no --dry-run: it is one.
    let keyless = match running {
        Running::Plan => "--sandbox needs none",
        Running::Rollback => "--dry-run needs none",
        Running::Rows(_) | Running::Retry { .. } => "--sandbox and --dry-run need none",
    };
    anyhow::ensure!(
        !key.expose().is_empty(),
        "no API key: set DATABRAIN_API_KEY or pass --api-key-file PATH ({keyless})"
    );
    Ok(key)
}

/// A key file others can read is a key others can use.
fn warn_if_readable_by_others(path: &Path, meta: &std::fs::Metadata) {
    use std::os::unix::fs::PermissionsExt;
    if meta.permissions().mode() & 0o004 != 0 {
        tracing::warn!(
            "the API key file {} is readable by every user (mode {:o}): chmod 600 {}",
            path.display(),
            meta.permissions().mode() & 0o777,
            path.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::refuse_credentials;

    #[test]
    fn a_base_url_with_credentials_is_refused_without_them() {
        for url in [
            "http://user:SECRET@127.0.0.1:8080",
            "https://SECRET@api.example.com/root",
            "https://user:SECRET@host:notaport",
            "user:SECRET@host",
        ] {
            let error = refuse_credentials(url).unwrap_err().to_string();
            assert!(!error.contains("SECRET"), "{error}");
            assert!(error.contains("not in the URL"), "{error}");
        }
        assert!(refuse_credentials("https://api.usedatabrain.com/a@b?c=d@e").is_ok());
        assert!(refuse_credentials("http://127.0.0.1:8080").is_ok());
    }
}
