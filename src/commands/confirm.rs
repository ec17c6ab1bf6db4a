//! A yes-or-no question before a command deletes workspaces (`rollback`, `delete`):
//! asked on a terminal, refused without one unless `--yes` was given.

use std::io::Write;

use crate::report::{logging, signals};

/// What the operator said to a question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Said {
    /// Yes: go on.
    Yes,
    /// Anything else, or no terminal to ask on.
    No,
    /// Ctrl-C (or SIGTERM) while asked.
    Interrupted,
}

/// Asks a yes-or-no question on the terminal; no without a terminal (scripts give
/// `--yes`), and for anything but yes. Ctrl-C ends the question at once.
pub(super) async fn confirm(question: &str) -> Said {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        tracing::error!(
            "{question} There is no terminal to ask on: give --yes to confirm. Nothing was sent"
        );
        return Said::No;
    }
    // Among JSON logs the question is one event too; the answer is typed all the same.
    if logging::is_json() {
        logging::notice(
            tracing::Level::WARN,
            &format!("{question} Type yes to go on"),
        );
    } else {
        eprint!("{question} Type yes to go on: ");
        let _ = std::io::stderr().flush();
    }
    let read = tokio::task::spawn_blocking(|| {
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer).map(|_| answer)
    });
    let said = tokio::select! {
        biased;
        () = signals::until_interrupted() => Said::Interrupted,
        answer = read => match answer {
            Ok(Ok(answer)) if matches!(answer.trim().to_ascii_lowercase().as_str(), "yes" | "y") => Said::Yes,
            _ => Said::No,
        },
    };
    // A signal that came with the answer still counts.
    if signals::interrupted_flag().load(std::sync::atomic::Ordering::SeqCst) {
        if !logging::is_json() {
            eprintln!(); // the question's line, left open
        }
        logging::notice(tracing::Level::WARN, "interrupted: nothing was sent");
        return Said::Interrupted;
    }
    if said == Said::No {
        logging::notice(tracing::Level::INFO, "nothing was sent");
    }
    said
}
