//! The `--summary-json` file: emptied before the job, so that an earlier run's summary
//! never passes for this one's, and written at every end of the command: the summary, or,
//! for a command that ended without one (an error before the job, say), how it ended.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use anyhow::Context;
use serde::Serialize;

use crate::report::Summary;

/// The file, from when it is emptied until something is written to it.
static UNWRITTEN: Mutex<Option<PathBuf>> = Mutex::new(None);

fn unwritten() -> std::sync::MutexGuard<'static, Option<PathBuf>> {
    UNWRITTEN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Empties (or creates) the file now: a path that cannot be written is said before any
/// request, and whatever the command comes to, the file says this command's end.
pub(crate) fn claim(path: &Path) -> anyhow::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .with_context(|| format!("cannot write the summary to {}", path.display()))?;
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
    #[derive(Serialize)]
    struct Ended {
        exit_code: u8,
        error: Option<String>,
    }
    let Some(path) = unwritten().take() else {
        return;
    };
    let json = serde_json::to_vec_pretty(&Ended { exit_code, error })
        .expect("an exit code and a message serialise");
    if let Err(error) = std::fs::write(&path, json) {
        tracing::error!("cannot write the summary to {}: {error}", path.display());
    }
}
