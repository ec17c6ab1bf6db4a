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

/// Set once the file is claimed: from then on [`claim`]'s checks stand, and the end of
/// the command writes it.
static CLAIMED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// What is at a `--summary-json` path, as far as replacing it goes.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    /// Nothing, an empty file, or JSON (an earlier summary): it may be replaced.
    Replaceable,
    /// A pipe, a terminal, a device: written to, never read to be judged (a read could
    /// wait forever).
    Special,
    /// Anything else (a results file, an input) is someone's data: a mistyped
    /// `--summary-json` must not destroy it.
    Data,
}

fn found(path: &Path) -> Found {
    use std::io::Read;
    match std::fs::metadata(path) {
        // Not there, or not to be looked at: writing it says what is wrong, if anything.
        Err(_) => return Found::Replaceable,
        Ok(meta) if !meta.is_file() => return Found::Special,
        Ok(_) => {}
    }
    let mut start = [0; 64];
    let read = std::fs::File::open(path)
        .and_then(|mut file| file.read(&mut start))
        .unwrap_or(0);
    match start[..read].iter().find(|b| !b.is_ascii_whitespace()) {
        None | Some(b'{') => Found::Replaceable,
        Some(_) => Found::Data,
    }
}

/// Empties (or creates) the file now: a path that cannot be written is said before any
/// request, and whatever the command comes to, the file says this command's end. A file
/// that holds anything but a summary is refused.
pub(crate) fn claim(path: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        found(path) != Found::Data,
        "the --summary-json file {} holds something else than a summary (a results file, an input?): give another path",
        path.display()
    );
    CLAIMED.store(true, std::sync::atomic::Ordering::SeqCst);
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
    let Some(path) = unwritten().take() else {
        return;
    };
    write_ended(&path, exit_code, error);
}

/// After a command that stopped before it claimed the file (a usage error): the file
/// says how it ended all the same, unless it holds someone's data (see [`claim`]). An
/// earlier run's summary never passes for this one's.
pub(crate) fn settle_unclaimed(path: &Path, exit_code: u8, error: Option<String>) {
    if !CLAIMED.load(std::sync::atomic::Ordering::SeqCst) && found(path) == Found::Replaceable {
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
