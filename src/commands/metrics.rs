//! `--pushgateway` and `--metrics-file`: the run's metrics, pushed and written once at the
//! end of the command, whatever it came to (a command that stops before its job says its
//! exit code and when it ran). Neither ever changes the exit code: a monitor that cannot
//! be told is a warning, not a failed night.

use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::api::Transport;
use crate::api::client::{error_chain, is_root, read_body};
use crate::cli::JobArgs;
use crate::model::Shard;
use crate::report::metrics::{CONTENT_TYPE, RunFigures, last_success_in, written_by_dbprov};
use crate::report::signals;

/// The most a file of dbprov's metrics holds, far above what they take (about 3 KiB): a
/// larger file is someone else's, and is not read into memory to be judged.
const MOST_METRICS: u64 = 64 * 1024;

/// The longest a push may take: a Pushgateway that does not answer delays the end of the
/// job by this much at most.
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Set once the metrics went out, so that the end of the command does not send them again.
static SENT: AtomicBool = AtomicBool::new(false);

/// Set once the command's checks accepted the `--metrics-file` path: a path refused (the
/// results file, the input, where stdout goes) is never written, not even with the exit
/// code of its refusal.
static FILE_CLEARED: AtomicBool = AtomicBool::new(false);

/// The command's checks accepted the `--metrics-file` path.
pub(crate) fn file_cleared() {
    FILE_CLEARED.store(true, Ordering::SeqCst);
}

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
        if let Some(path) = &self.file
            && FILE_CLEARED.load(Ordering::SeqCst)
        {
            let labels: Vec<(&'static str, String)> = self
                .shard
                .map(|shard| ("shard", shard.index.to_string()))
                .into_iter()
                .collect();
            if let Err(error) = write_file(path, figures, &labels) {
                tracing::warn!(
                    "cannot write the metrics to {}: {error}; the exit code stays {}",
                    path.display(),
                    figures.exit_code
                );
            }
        }
        if let Some(url) = &self.pushgateway
            && check_pushgateway(url).is_ok()
        {
            let text = figures.encode(&[]);
            // The job is over and recorded: a first Ctrl-C (or SIGTERM) that comes during
            // the push abandons only the push. One that stopped the job lets it go.
            let interrupted = async {
                if signals::interrupted_flag().load(Ordering::SeqCst) {
                    std::future::pending::<()>().await;
                }
                signals::until_interrupted().await;
            };
            let pushed = tokio::select! {
                pushed = self.push(url, &text) => pushed,
                () = interrupted => Err("interrupted, so the push was abandoned".to_owned()),
            };
            if let Err(error) = pushed {
                tracing::warn!(
                    "cannot push the metrics to the Pushgateway {}: {error}; the exit code stays {}",
                    shown(url),
                    figures.exit_code
                );
            }
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
        // A --ca-cert that cannot be used was said already: the push goes on without it
        // (a push over http needs none).
        let transport = Transport::new(self.ca_cert.as_deref()).unwrap_or_default();
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
        // The first KiB at most: what stands in a Pushgateway's place may answer with a
        // huge body.
        let body = read_body(response, 1024).await.unwrap_or_default();
        let body: String = String::from_utf8_lossy(&body)
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

/// Refuses a `--pushgateway` that is not an http(s) URL without a query or fragment (the
/// push's path goes after it), before any request; said without its password.
pub(crate) fn check_pushgateway(url: &str) -> anyhow::Result<()> {
    let usable = reqwest::Url::parse(url).is_ok_and(|parsed| is_root(&parsed));
    anyhow::ensure!(
        usable,
        "--pushgateway {} is not an http:// or https:// URL without ?query or #fragment (e.g. http://pushgateway:9091)",
        shown(url)
    );
    Ok(())
}

/// Writes the metrics to `path` (through a symbolic link, to what it names), through a
/// temporary file beside it renamed over it: a collector never reads half a file.
/// Readable by all, as a collector running as another user needs. A file that holds
/// anything but dbprov's metrics is someone's data, never replaced; the last success it
/// holds is said again after a run that did not succeed.
fn write_file(
    path: &Path,
    figures: &RunFigures,
    labels: &[(&'static str, String)],
) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    // Through symbolic links, dangling ones too: the link stays, its target is written.
    let path = crate::records::file::resolve(path)
        .ok_or("its symbolic links go round in a circle, or its folder does not exist")?;
    if std::fs::symlink_metadata(&path).is_ok_and(|meta| meta.file_type().is_symlink()) {
        return Err("its symbolic links go round in a circle".to_owned());
    }
    let mut figures = figures.clone();
    match std::fs::metadata(&path) {
        Ok(meta) if !meta.is_file() => return Err("it is not a regular file".to_owned()),
        Ok(meta) if meta.len() > MOST_METRICS => {
            return Err(format!(
                "it holds {} bytes, more than dbprov's metrics ever do: give another path",
                meta.len()
            ));
        }
        Ok(meta) if meta.len() > 0 => {
            let text = std::fs::read(&path)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .filter(|text| written_by_dbprov(text))
                .ok_or("it holds something else than dbprov's metrics: give another path")?;
            figures.earlier_success = last_success_in(&text, labels);
        }
        _ => {}
    }
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let write = || -> std::io::Result<()> {
        let mut file = tempfile::NamedTempFile::new_in(folder)?;
        file.write_all(figures.encode(labels).as_bytes())?;
        file.as_file().sync_all()?;
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
        file.persist(&path).map_err(|e| e.error)?;
        Ok(())
    };
    write().map_err(|e| e.to_string())
}

/// A URL without its user name and password, query and fragment, for messages.
fn shown(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut url) if matches!(url.scheme(), "http" | "https") => {
            let _ = url.set_password(None);
            let _ = url.set_username("");
            url.set_query(None);
            url.set_fragment(None);
            url.to_string()
        }
        // Not an http URL (`user:password@host` parses with `user` as its scheme): what
        // stands before an `@` may be a password, and a query a token.
        _ => {
            let url = url.split(['?', '#']).next().unwrap_or("");
            match url.rsplit_once('@') {
                Some((_, host)) => format!("…@{host}"),
                None => url.to_owned(),
            }
        }
    }
}
