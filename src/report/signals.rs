//! Ctrl-C and SIGTERM, handled from the first instant of the process.
//!
//! Before a job takes over, a signal ends the process at once (exit 130): nothing is being
//! recorded yet. Once a job has taken over, the first signal asks it to stop dispatching
//! and drain; a second one, a second or more later, exits at once. Signals closer together
//! are one press: `timeout -s INT` and a terminal both deliver one press to the process and
//! to its group, which may be twice to us.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{LazyLock, OnceLock};
use std::time::{Duration, Instant};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// Signals closer together than this are one press.
const SAME_PRESS: Duration = Duration::from_secs(1);

/// Set once the first signal came, for those who wait and for those who poll.
static INTERRUPTED: LazyLock<watch::Sender<bool>> = LazyLock::new(|| watch::channel(false).0);
static INTERRUPTED_FLAG: AtomicBool = AtomicBool::new(false);
/// Set while a job drains on a signal instead of exiting.
static TAKEN_OVER: AtomicBool = AtomicBool::new(false);
/// Rows sent whose outcome is not yet written: what an exit at once leaves unrecorded.
static UNRECORDED: AtomicU64 = AtomicU64::new(0);
/// What settles those rows, in the words of the command running.
static RERUN: OnceLock<&'static str> = OnceLock::new();
/// The temporary file of a rewrite under way: an exit at once removes it (the file it
/// was to replace stays as it was).
static REWRITING: std::sync::Mutex<Option<std::path::PathBuf>> = std::sync::Mutex::new(None);

/// Starts listening for SIGINT and SIGTERM. Call first thing, inside the runtime.
pub fn install() {
    let (Ok(mut interrupts), Ok(mut terminations)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    tokio::spawn(async move {
        let mut next = async || {
            tokio::select! {
                _ = interrupts.recv() => {}
                _ = terminations.recv() => {}
            }
        };
        next().await;
        let first = Instant::now();
        if !TAKEN_OVER.load(Ordering::SeqCst) {
            std::process::exit(130);
        }
        INTERRUPTED_FLAG.store(true, Ordering::SeqCst);
        INTERRUPTED.send_replace(true);
        loop {
            next().await;
            if first.elapsed() >= SAME_PRESS {
                break;
            }
        }
        let message = match UNRECORDED.load(Ordering::SeqCst) {
            0 => "interrupted again: exiting now".to_owned(),
            unrecorded => format!(
                "interrupted again: exiting now; {} in flight: no record ({} settles them)",
                crate::model::counted(unrecorded, "row"),
                RERUN.get().unwrap_or(&"the same command with --resume")
            ),
        };
        super::logging::notice(tracing::Level::WARN, &message);
        if let Some(temp) = REWRITING.lock().ok().and_then(|mut temp| temp.take()) {
            let _ = std::fs::remove_file(temp);
        }
        std::process::exit(130);
    });
}

/// Names the temporary file of a rewrite under way (`None` once it is renamed or gone).
pub fn rewriting(temp: Option<&std::path::Path>) {
    if let Ok(mut rewriting) = REWRITING.lock() {
        *rewriting = temp.map(std::path::Path::to_owned);
    }
}

/// From now on a signal asks the job to drain instead of ending the process.
pub fn take_over() {
    TAKEN_OVER.store(true, Ordering::SeqCst);
}

/// Names what settles the rows an exit at once would leave unrecorded: `the same command
/// with --resume`, `the same retry command`, ...
pub fn rerun_is(rerun: &'static str) {
    let _ = RERUN.set(rerun);
}

/// The flag set by the first signal, for loops that poll it (the row count).
pub fn interrupted_flag() -> &'static AtomicBool {
    &INTERRUPTED_FLAG
}

/// Resolves once the first signal came.
pub async fn until_interrupted() {
    let mut interrupted = INTERRUPTED.subscribe();
    let _ = interrupted.wait_for(|set| *set).await;
}

/// A row was sent and its outcome is not written yet.
pub fn sending() {
    UNRECORDED.fetch_add(1, Ordering::SeqCst);
}

/// A sent row's outcome was written (or will never be).
pub fn recorded() {
    UNRECORDED.fetch_sub(1, Ordering::SeqCst);
}
