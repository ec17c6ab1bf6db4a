//! `--pushgateway` and `--metrics-file`: the run's metrics, pushed and written once at the
//! end of the command, whatever it came to (a command that stops before its job says its
//! exit code and when it ran). Neither ever changes the exit code: a monitor that cannot
//! be told is a warning, not a failed night.

use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::api::Transport;
use crate::cli::JobArgs;
use crate::model::Shard;
use crate::report::metrics::{CONTENT_TYPE, RunFigures};

/// The longest a push may take: a Pushgateway that does not answer delays the end of the
/// job by this much at most.
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Set once the metrics went out, so that the end of the command does not send them again.
static SENT: AtomicBool = AtomicBool::new(false);

/// Where a command's metrics go.
#[derive(Debug, Clone, Default)]
pub(crate) struct MetricsOut {
    pushgateway: Option<String>,
    job: String,
    file: Option<std::path::PathBuf>,
    ca_cert: Option<std::path::PathBuf>,
    shard: Option<Shard>,
}

impl MetricsOut {
    /// What the options of a job ask for.
    pub(crate) fn of(args: &JobArgs) -> MetricsOut {
        MetricsOut {
            pushgateway: args.pushgateway.clone(),
            job: args.metrics_job.clone(),
            file: args.metrics_file.clone(),
            ca_cert: args.ca_cert.clone(),
            shard: args.shard.filter(|shard| shard.count > 1),
        }
    }

    /// Writes and pushes `figures`, once per command.
    pub(crate) async fn send(&self, figures: &RunFigures) {
        if SENT.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(path) = &self.file {
            let labels: Vec<(&'static str, String)> = self
                .shard
                .map(|shard| ("shard", shard.index.to_string()))
                .into_iter()
                .collect();
            if let Err(error) = write_atomically(path, &figures.encode(&labels)) {
                tracing::warn!(
                    "cannot write the metrics to {}: {error}; the exit code stays {}",
                    path.display(),
                    figures.exit_code
                );
            }
        }
        if let Some(url) = &self.pushgateway
            && let Err(error) = self.push(url, &figures.encode(&[])).await
        {
            tracing::warn!(
                "cannot push the metrics to the Pushgateway {}: {error}; the exit code stays {}",
                shown(url),
                figures.exit_code
            );
        }
    }

    /// The metrics have been sent (by the job's end): none at the command's end.
    pub(crate) fn sent() -> bool {
        SENT.load(Ordering::SeqCst)
    }

    /// A `POST` to `/metrics/job/<job>[/shard/<I>]`: it replaces the metrics it names in
    /// that group and keeps the others, so the last success of an earlier night stays.
    async fn push(&self, url: &str, text: &str) -> Result<(), String> {
        let mut target = reqwest::Url::parse(url).map_err(|e| e.to_string())?;
        {
            let mut path = target
                .path_segments_mut()
                .map_err(|_| "the URL cannot take a path".to_owned())?;
            path.pop_if_empty().extend(["metrics", "job", &self.job]);
            if let Some(shard) = self.shard {
                path.extend(["shard", &shard.index.to_string()]);
            }
        }
        let transport = Transport::new(self.ca_cert.as_deref()).map_err(|e| e.to_string())?;
        let client = transport
            .apply(reqwest::Client::builder(), &target)
            .timeout(PUSH_TIMEOUT)
            .connect_timeout(PUSH_TIMEOUT / 3)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        let response = client
            .post(target)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(text.to_owned())
            .send()
            .await
            .map_err(|e| error_chain(&e.without_url()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        let body: String = body
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(200)
            .collect();
        Err(format!(
            "it answered HTTP {}: {}",
            status.as_u16(),
            body.trim()
        ))
    }
}

/// Writes `text` to `path` through a temporary file beside it, renamed over it: a
/// collector never reads half a file. Readable by all, as a collector running as another
/// user needs.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(folder)?;
    file.write_all(text.as_bytes())?;
    file.as_file().sync_all()?;
    file.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A URL without its user name and password, for messages.
fn shown(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut url) => {
            let _ = url.set_password(None);
            let _ = url.set_username("");
            url.to_string()
        }
        Err(_) => "(the URL given)".to_owned(),
    }
}

/// `error: cause: cause`.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
