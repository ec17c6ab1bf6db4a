//! The `--summary-json` file: emptied before the job, so that an earlier run's summary
//! never passes for this one's, and written at every end of the command: the summary, or,
//! for a command that ended without one (an error before the job, say), how it ended.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use anyhow::Context;
use serde::Serialize;

use crate::records::FileId;
use crate::report::Summary;

/// The file, from when it is emptied until something is written to it.
static UNWRITTEN: Mutex<Option<PathBuf>> = Mutex::new(None);

fn unwritten() -> std::sync::MutexGuard<'static, Option<PathBuf>> {
    UNWRITTEN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Set once the file is claimed: from then on [`claim`]'s checks stand, and the end of
/// the command writes it.
static CLAIMED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// What is at a `--summary-json` path, as far as replacing it goes.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    /// Nothing yet.
    Nothing,
    /// An empty file.
    Empty,
    /// An earlier summary of dbprov: one JSON object with an `exit_code`.
    Summary,
    /// A pipe, a terminal, a device: written to, never read to be judged (a read could
    /// wait forever).
    Special,
    /// Anything else (a results file, an input, a key file, a log) is someone's data: a
    /// mistyped `--summary-json` must not destroy it.
    Data,
}

fn found(path: &Path) -> Found {
    match std::fs::metadata(path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Found::Nothing,
        // Not to be looked at: opening it says what is wrong.
        Err(_) => return Found::Nothing,
        Ok(meta) if !meta.is_file() => return Found::Special,
        Ok(meta) if meta.len() == 0 => return Found::Empty,
        Ok(meta) if meta.len() > 1024 * 1024 => return Found::Data,
        Ok(_) => {}
    }
    let summary = std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .is_some_and(|json| json.get("exit_code").is_some());
    match summary {
        true => Found::Summary,
        false => Found::Data,
    }
}

/// Empties (or creates) the file now: a path that cannot be written is said before any
/// request, and whatever the command comes to, the file says this command's end. A file
/// that holds anything but a summary is refused, and so is a pipe without a reader
/// (writing it would wait forever).
pub(crate) fn claim(path: &Path) -> anyhow::Result<()> {
    let found = found(path);
    // A file that the logs (or the results) go to: writing the summary at the end would
    // empty it of them.
    let at = FileId::at(path);
    anyhow::ensure!(
        found == Found::Special
            || at.is_none()
            || (at != FileId::of_stderr() && at != FileId::of_stdout()),
        "the --summary-json file {} is where this command's output goes: give another path",
        path.display()
    );
    anyhow::ensure!(
        found != Found::Data,
        "the --summary-json file {} holds something else than a summary of dbprov: give another path",
        path.display()
    );
    CLAIMED.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut open = std::fs::OpenOptions::new();
    open.write(true);
    let what = match found {
        // A pipe is not waited on: one that nothing reads is refused now.
        Found::Special => {
            use std::os::unix::fs::OpenOptionsExt;
            open.custom_flags(libc::O_NONBLOCK);
            " (a pipe nothing reads?)"
        }
        _ => {
            open.create(true).truncate(true);
            ""
        }
    };
    open.open(path)
        .with_context(|| format!("cannot write the summary to {}{what}", path.display()))?;
    *unwritten() = Some(path.to_owned());
    Ok(())
}

/// Writes the summary of a job to the file.
pub(crate) fn write(path: &Path, summary: &Summary) -> std::io::Result<()> {
    unwritten().take();
    let json = serde_json::to_vec_pretty(summary).expect("a summary always serialises");
    std::fs::write(path, json)
}

/// At the end of a command: a file that was emptied and has no summary gets the exit
/// code, and the error that ended the command if one did.
pub(crate) fn settle(exit_code: u8, error: Option<String>) {
    let Some(path) = unwritten().take() else {
        return;
    };
    write_ended(&path, exit_code, error);
}

/// After a command that stopped before it claimed the file (a usage error): the file
/// says how it ended all the same, unless it holds someone's data (see [`claim`]). An
/// earlier run's summary never passes for this one's.
pub(crate) fn settle_unclaimed(path: &Path, exit_code: u8, error: Option<String>) {
    // Only where nothing was, or where dbprov's own summary was: a command that stopped
    // this early has checked nothing of the path.
    if !CLAIMED.load(std::sync::atomic::Ordering::SeqCst)
        && matches!(found(path), Found::Nothing | Found::Summary)
    {
        write_ended(path, exit_code, error);
    }
}

fn write_ended(path: &Path, exit_code: u8, error: Option<String>) {
    #[derive(Serialize)]
    struct Ended {
        exit_code: u8,
        error: Option<String>,
    }
    let json = serde_json::to_vec_pretty(&Ended { exit_code, error })
        .expect("an exit code and a message serialise");
    if let Err(error) = std::fs::write(path, json) {
        tracing::error!("cannot write the summary to {}: {error}", path.display());
    }
}
