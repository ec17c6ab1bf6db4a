//! What every part of a running job shares: whether requests are sent ([`Mode`]) and how
//! ([`Sender`]), why the job stopped ([`StopReason`]), and the state every worker reads
//! ([`Shared`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::api::{Client, Listing, RetryPolicy};
use crate::model::{OnExists, Operation};
use crate::pacing::{Halt, Pacer, PacingSettings, Ticket};

/// Whether requests are sent.
pub enum Mode {
    /// Send them.
    Send(Box<Sender>),
    /// `plan`: list the workspaces that exist, then write what `run` would do; send no
    /// write.
    Plan(Box<Sender>),
    /// `--dry-run`: validate, write `planned`, send nothing.
    DryRun,
}

impl Mode {
    /// How requests are sent, unless nothing is.
    pub(crate) fn sender(&self) -> Option<&Sender> {
        match self {
            Mode::Send(sender) | Mode::Plan(sender) => Some(sender),
            Mode::DryRun => None,
        }
    }
}

/// How requests are sent.
pub struct Sender {
    /// The API.
    pub client: Client,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// `--rate`, the API's rate limit, outages.
    pub pacing: PacingSettings,
    /// Attempts and backoff.
    pub retry: RetryPolicy,
    /// Per attempt (for messages; the client enforces it).
    pub timeout: Duration,
    /// What a taken name means.
    pub on_exists: OnExists,
}

/// Why a job stopped dispatching before the end of its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The API refused the key (401, or 400 `AUTHENTICATION_ERROR`): every further
    /// request would fail too.
    Unauthorized,
    /// Ctrl-C.
    Interrupted,
    /// More rows failed than `--max-failures` allows.
    MaxFailures,
    /// The results file cannot be written: no request may go out without its record.
    OutputFailed,
    /// The API's rate limit asked for a longer wait than `--max-retry-after`.
    RateLimited,
    /// The API could not be reached: from the start, or for longer than `--max-outage`.
    Unreachable,
    /// The API's TLS certificate is not trusted: no retry mends it.
    Untrusted,
    /// The input could not be read to its end, after requests were sent: the rows not
    /// read have no record, and the results file stays a log for `--resume`.
    InputFailed,
}

impl StopReason {
    /// The `_error_code` of the rows this leaves `skipped`.
    pub fn code(self) -> &'static str {
        match self {
            StopReason::Unauthorized => "ABORTED_UNAUTHORIZED",
            StopReason::Interrupted => "INTERRUPTED",
            StopReason::MaxFailures => "ABORTED_MAX_FAILURES",
            StopReason::OutputFailed => "OUTPUT_FAILED",
            StopReason::RateLimited => "ABORTED_RATE_LIMITED",
            // Not reached, though not an outage: its message and the summary say why.
            StopReason::Unreachable | StopReason::Untrusted => "ABORTED_UNREACHABLE",
            StopReason::InputFailed => "INPUT_FAILED",
        }
    }

    /// What the operator should do about it, where that is clear, for the summary.
    pub fn next_step(self) -> Option<&'static str> {
        match self {
            StopReason::Unauthorized => Some(
                "the API refused the key (401 or 400 AUTHENTICATION_ERROR): check DATABRAIN_API_KEY or --api-key-file",
            ),
            StopReason::Untrusted => Some(
                "the API's TLS certificate is not trusted: give the certificate authority that signed it, in PEM, with --ca-cert PATH (or SSL_CERT_FILE), then run the command again (with --resume if it wrote a results file)",
            ),
            StopReason::InputFailed => Some(
                "the input could not be read to its end (the error above says why): mend it, then run the same command with --resume (its results written to a file, -o PATH); the rows not read were not sent",
            ),
            StopReason::Interrupted => Some(
                "interrupted: the rows not finished are skipped / INTERRUPTED; run the same command with --resume (or the retry command below) to send them",
            ),
            StopReason::MaxFailures => Some(
                "more rows failed than --max-failures allows: read the errors above, mend the input or the API's side, then retry the rows that did not succeed",
            ),
            StopReason::RateLimited => Some(
                "the API's rate limit asked for a longer wait than --max-retry-after: retry the rows that did not succeed later, or raise --max-retry-after",
            ),
            StopReason::Unreachable => Some(
                "the API could not be reached: check --base-url and the network, then retry the rows that did not succeed",
            ),
            _ => None,
        }
    }

    /// The `_error_message` of those rows.
    pub fn message(self) -> &'static str {
        match self {
            StopReason::Unauthorized => {
                "not sent: the API refused the key (401 or 400 AUTHENTICATION_ERROR), so the job stopped"
            }
            StopReason::Interrupted => "not sent: the job was interrupted",
            StopReason::MaxFailures => {
                "not sent: more rows failed than --max-failures allows, so the job stopped"
            }
            StopReason::OutputFailed => "not sent: the results file could not be written",
            StopReason::RateLimited => {
                "not sent: the API's rate limit asked for a longer wait than --max-retry-after, so the job stopped"
            }
            StopReason::Unreachable => "not sent: the API could not be reached, so the job stopped",
            StopReason::Untrusted => {
                "not sent: the API's TLS certificate is not trusted (see --ca-cert), so the job stopped"
            }
            StopReason::InputFailed => "not sent: the input could not be read, so the job stopped",
        }
    }
}

/// What the preflight says of a name before the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Before {
    /// The preflight list showed it.
    Listed,
    /// The preflight list did not show it: if it exists now, this job created it.
    NotListed,
    /// No list was made, or it failed.
    Unknown,
}

/// State every worker shares.
pub(crate) struct Shared {
    pub(crate) mode: Mode,
    pub(crate) operation: Operation,
    /// The workspaces that existed before the run, when the preflight listed them (until
    /// the rows are all triaged: a list of a million names is 16 MB).
    pub(super) listing: std::sync::Mutex<Option<Listing>>,
    /// List requests sent.
    pub(super) list_requests: AtomicU64,
    /// The workspaces were listed before the first row (not at the first that needed a
    /// request): every kept success can be checked against the list, not only some.
    pub(super) listed_first: bool,
    /// When each attempt may go; `None` for a dry run.
    pub(super) pacer: Option<Pacer>,
    pub(super) stop_tx: watch::Sender<Option<StopReason>>,
    /// `--max-failures`, in rows.
    pub(super) max_failures: Option<u64>,
    /// Rows failed so far, counted by the workers so the job stops as soon as it can.
    pub(super) failures: AtomicU64,
    /// Rows whose worker panicked: they have no record.
    pub(super) lost_rows: AtomicU64,
    /// The input is a pipe or a stream, not a file: after a stop it is read no further.
    pub(super) streamed_input: bool,
    /// What settles the rows left unsent (see [`Job::rerun`]).
    pub(super) rerun: &'static str,
}

impl Shared {
    /// Stops the job for `reason`, unless it stopped already; returns whether this did.
    pub(crate) fn stop(&self, reason: StopReason) -> bool {
        self.stop_tx.send_if_modified(|current| {
            let first = current.is_none();
            if first {
                *current = Some(reason);
            }
            first
        })
    }

    pub(crate) fn stopped(&self) -> Option<StopReason> {
        *self.stop_tx.borrow()
    }

    /// Resolves with the reason once the job stops.
    pub(crate) async fn until_stopped(&self) -> StopReason {
        let mut stop_rx = self.stop_tx.subscribe();
        loop {
            if let Some(reason) = *stop_rx.borrow_and_update() {
                return reason;
            }
            if stop_rx.changed().await.is_err() {
                // The sender lives as long as `self`: unreachable, but never resolve then.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Counts a failed row, and stops the job once more have failed than
    /// `--max-failures` allows.
    pub(crate) fn count_failure(&self) {
        let failed = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if self.max_failures.is_some_and(|limit| failed > limit) {
            self.stop(StopReason::MaxFailures);
        }
    }

    /// What the preflight says of a name: listed, not listed, or unknown.
    pub(crate) fn before(&self, name: Option<&str>) -> Before {
        let listing = self.listing.lock().unwrap_or_else(|e| e.into_inner());
        match (listing.as_ref(), name) {
            (Some(listing), Some(name)) if listing.contains(name) => Before::Listed,
            (Some(_), Some(_)) => Before::NotListed,
            _ => Before::Unknown,
        }
    }

    /// The pacer of a sending job.
    pub(crate) fn pacer(&self) -> &Pacer {
        self.pacer.as_ref().expect("a sending job has a pacer")
    }

    /// Waits for the pacer's leave to send; `Err` if the job stops first.
    pub(crate) async fn permit(&self) -> Result<Ticket, StopReason> {
        let ticket = tokio::select! {
            biased;
            reason = self.until_stopped() => return Err(reason),
            ticket = self.pacer().permit() => ticket,
        };
        self.stopped().map_or(Ok(ticket), Err)
    }

    /// Stops the job because pacing gave up, saying why once; returns the reason the job
    /// stopped for (an earlier stop stands).
    /// Stops the job because the API's certificate is not trusted (`problem`, in words),
    /// and says so once; the reason the job stopped for.
    pub(crate) fn distrust(&self, problem: &str) -> StopReason {
        if self.stop(StopReason::Untrusted) {
            tracing::error!(
                "stopping: the API's TLS certificate was refused: {problem}. The request that met it was not sent. For a self-hosted API behind a private certificate authority, give that authority's certificate (PEM) with --ca-cert PATH, or set SSL_CERT_FILE / SSL_CERT_DIR; the rows not finished are written skipped / {}",
                StopReason::Untrusted.code()
            );
        }
        self.stopped().unwrap_or(StopReason::Untrusted)
    }

    pub(crate) fn halt(&self, halt: Halt) -> StopReason {
        let (reason, why) = match halt {
            Halt::RateLimited(why) => (StopReason::RateLimited, why),
            Halt::Unreachable(why) => (StopReason::Unreachable, why),
        };
        if self.stop(reason) {
            tracing::error!(
                "stopping: {why}. The requests in flight finish; the rows not finished are written skipped / {}, and {} finishes them later",
                reason.code(),
                self.rerun
            );
        }
        self.stopped().unwrap_or(reason)
    }
}
