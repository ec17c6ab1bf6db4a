//! Logging on stderr, as text or as JSON objects, and the few lines that are not log
//! events (the summary, a fatal error) written in the same format.

use std::io::{IsTerminal, Write as _};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use serde::Serialize;
use tracing::Level;
use tracing_subscriber::fmt::writer::EitherWriter;

use super::stderr;
use crate::model::LogFormat;

/// `--log-format`, once logging is set up; text before.
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Set once the summary is out: what the HTTP stack still says while its connections close
/// (at `-vv`) is not written after it, so that the summary stays the last line.
static SUMMARY_OUT: AtomicBool = AtomicBool::new(false);

/// Sets up logging on stderr: `-v`/`-q` pick the level unless `RUST_LOG` is set.
pub fn init(verbose: u8, quiet: u8, format: LogFormat) {
    // -v is for dbprov's own detail (retries, bodies); -vv opens the HTTP stack too.
    let level = match (verbose, quiet) {
        (0, 0) => "info",
        (1, _) => "info,dbprov=debug",
        (v, _) if v >= 2 => "trace",
        (_, 1) => "warn",
        _ => "error",
    };
    let _ = FORMAT.set(format);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Events);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}

/// Whether stderr carries JSON objects (`--log-format json`), so that nothing else may be
/// written there as plain text.
pub fn is_json() -> bool {
    FORMAT.get() == Some(&LogFormat::Json)
}

/// Writes `fields` on stderr as one JSON object shaped like the tracing events around it
/// (`timestamp`, `level`, `fields`, `target`), whatever the verbosity: for what the
/// operator must see even with `-qq`, like the summary.
pub fn json_event(level: Level, target: &str, fields: &impl Serialize) {
    #[derive(Serialize)]
    struct Event<'a, F> {
        timestamp: String,
        level: &'a str,
        fields: &'a F,
        target: &'a str,
    }
    let event = Event {
        timestamp: humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
        level: level.as_str(),
        fields,
        target,
    };
    // Every field serialises (the summary, a message): nothing is lost here in practice.
    let Ok(mut line) = serde_json::to_vec(&event) else {
        return;
    };
    line.push(b'\n');
    drop(LogWriter(line));
}

/// A line for the operator that is not a log event and shows at every verbosity: as text,
/// `dbprov: {message}`; as JSON, one event with it as its message.
pub fn notice(level: Level, message: &str) {
    if is_json() {
        json_event(level, "dbprov", &Message { message });
    } else {
        drop(LogWriter(format!("dbprov: {message}\n").into_bytes()));
    }
}

/// The error that ends the process, with its chain: `error: ...` as text, one ERROR event
/// as JSON.
pub fn fatal(error: &anyhow::Error) {
    let message = error_line(error);
    if is_json() {
        json_event(Level::ERROR, "dbprov", &Message { message: &message });
    } else {
        drop(LogWriter(format!("error: {message}\n").into_bytes()));
    }
}

/// Ends the process on a command line that clap refused, with clap's exit code: as clap
/// prints it, unless the command line asks for JSON logs (`--log-format json`), then as
/// one ERROR event, so that a log collector reads it like any other. Help and version
/// print as they are.
pub fn command_line_refused(error: clap::Error) -> ! {
    use clap::error::ErrorKind;
    let shown_as_is = matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if shown_as_is || !asks_for_json(std::env::args_os().skip(1)) {
        error.exit()
    }
    // clap's lines (the error, a tip, the usage) as one line.
    let text = error.to_string();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    let message = lines.join("; ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    json_event(Level::ERROR, "dbprov", &Message { message });
    std::process::exit(error.exit_code())
}

/// Whether a command line that could not be parsed asks for `--log-format json`.
fn asks_for_json(args: impl IntoIterator<Item = std::ffi::OsString>) -> bool {
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.to_str() {
            // What follows is values, not options.
            Some("--") => return false,
            Some("--log-format=json") => return true,
            Some("--log-format") if args.next().is_some_and(|value| value == "json") => {
                return true;
            }
            _ => {}
        }
    }
    false
}

/// The fields of an event that has only a message.
#[derive(Serialize)]
struct Message<'a> {
    message: &'a str,
}

/// Says that the summary is out: from now on only dbprov's own events are written.
pub fn summary_written() {
    SUMMARY_OUT.store(true, Ordering::SeqCst);
}

/// Where tracing writes its events: a [`LogWriter`] each, or nothing for a dependency's
/// event after the summary.
struct Events;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Events {
    type Writer = EitherWriter<LogWriter, std::io::Sink>;

    fn make_writer(&'a self) -> Self::Writer {
        EitherWriter::A(LogWriter(Vec::new()))
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        let ours = meta.target() == "dbprov" || meta.target().starts_with("dbprov::");
        if SUMMARY_OUT.load(Ordering::SeqCst) && !ours {
            return EitherWriter::B(std::io::sink());
        }
        self.make_writer()
    }
}

/// A line on its way to stderr: written in one piece when dropped, with the progress bar
/// hidden meanwhile.
pub struct LogWriter(Vec<u8>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        stderr::hide_bar_while(|| {
            let _ = std::io::stderr().write_all(&self.0);
        });
    }
}

/// The line that says why a command stopped: each message of the error's chain once,
/// outermost first, joined by `: `, then the next step that an OS error at its root calls
/// for (`check the path`, ...). Messages say what to do themselves; this only keeps a
/// cause that a message already quotes from being printed twice.
pub fn error_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    let os_error = error.root_cause().downcast_ref::<std::io::Error>();
    if let Some(step) = os_error.and_then(|e| next_step(e.kind())) {
        line.push_str("; ");
        line.push_str(step);
    }
    line
}

/// What to do about an OS error on a path the operator gave, when its kind says.
fn next_step(kind: std::io::ErrorKind) -> Option<&'static str> {
    use std::io::ErrorKind;
    Some(match kind {
        ErrorKind::NotFound | ErrorKind::NotADirectory => "check the path",
        ErrorKind::PermissionDenied => "check the file's permissions, or give another path",
        ErrorKind::IsADirectory => "give a file, not a folder",
        ErrorKind::ReadOnlyFilesystem => "give a path on a writable file system",
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => {
            "free some space, or give another path"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_logs_are_asked_for_in_either_spelling_before_the_values() {
        let asks = |args: &[&str]| asks_for_json(args.iter().map(|a| a.into()));
        assert!(asks(&["run", "--log-format", "json", "--bogus"]));
        assert!(asks(&["--bogus", "--log-format=json"]));
        assert!(!asks(&["run", "--log-format", "text"]));
        assert!(!asks(&["run", "--log-format"]));
        assert!(!asks(&["run", "--", "--log-format", "json"]));
    }

    fn missing_file() -> std::io::Error {
        std::fs::File::open("/nonexistent/dbprov/tenants.csv").unwrap_err()
    }

    #[test]
    fn a_message_that_quotes_its_source_does_not_print_it_twice() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot open a.csv: {source}")]
        struct Quoting {
            source: std::io::Error,
        }
        let error = anyhow::Error::new(Quoting {
            source: missing_file(),
        })
        .context("while starting");
        let line = error_line(&error);
        assert_eq!(
            line.matches("No such file or directory").count(),
            1,
            "{line}"
        );
        assert_eq!(
            line,
            "while starting: cannot open a.csv: No such file or directory (os error 2); check the path"
        );
    }

    #[test]
    fn only_an_os_error_at_the_root_adds_a_step() {
        let plain = anyhow::anyhow!("--burst must be at least 1").context("settings");
        assert_eq!(error_line(&plain), "settings: --burst must be at least 1");
        let other = anyhow::Error::new(std::io::Error::other("the pipe broke"));
        assert_eq!(error_line(&other), "the pipe broke");
        let denied = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        assert!(
            error_line(&denied).ends_with("; check the file's permissions, or give another path")
        );
    }
}
