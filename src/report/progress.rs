//! The progress bar on a terminal, and the same figures as a log line without one.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::logging;
use super::stderr;
use super::tally::Tally;
use crate::model::{ProgressMode, Status};

/// The bar, drawn when `mode` asks for it (`is_hidden` tells), but never among JSON logs:
/// its escape codes would break every line a collector reads. A hidden bar still keeps
/// count, for the periodic log lines.
pub fn start_progress(mode: ProgressMode, total: Option<u64>) -> ProgressBar {
    let bar = stderr::bar();
    let target = match mode {
        _ if logging::is_json() => ProgressDrawTarget::hidden(),
        ProgressMode::Always => {
            ProgressDrawTarget::term_like_with_hz(Box::new(console::Term::buffered_stderr()), 10)
        }
        ProgressMode::Auto if std::io::stderr().is_terminal() => {
            ProgressDrawTarget::stderr_with_hz(10)
        }
        _ => ProgressDrawTarget::hidden(),
    };
    let template = match total {
        Some(total) => {
            bar.set_length(total);
            "{bar:20} {pos}/{len} rows {percent}% ETA {eta} {msg}{prefix}"
        }
        None => "{spinner} {pos} rows {msg}{prefix}",
    };
    let style = ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.reset_elapsed();
    bar.set_draw_target(target);
    bar
}

/// Moves the bar to the rows counted so far, and shows every status met (the same
/// counts as the summary's), and the retries once there are some.
pub fn show_progress(bar: &ProgressBar, tally: &Tally) {
    // Rows a stop left skipped are accounted for, not done: Ctrl-C does not fill the bar.
    bar.set_position(tally.rows() - tally.count(Status::Skipped));
    let mut counts: Vec<String> = Status::ALL
        .into_iter()
        .filter(|s| tally.count(*s) > 0)
        .map(|s| format!("{s} {}", tally.count(s)))
        .collect();
    if tally.retries > 0 {
        counts.push(format!("retries {}", tally.retries));
    }
    bar.set_message(counts.join(", "));
}

/// Shows the requests per second of the last few seconds, and the pace or why sending is
/// paused, after the counts (in the bar's prefix, which the template draws last): redrawn
/// on a clock, so a pause shows 0 req/s rather than the figure before it.
pub fn show_pace(bar: &ProgressBar, per_second: Option<f64>, pace: Option<String>) {
    let rate = per_second.map(|r| format!("; {r:.1} req/s"));
    let pace = pace.map(|p| format!("; {p}"));
    bar.set_prefix(format!(
        "{}{}",
        rate.unwrap_or_default(),
        pace.unwrap_or_default()
    ));
}

/// The figures of the bar as one log line, for jobs nobody watches on a terminal.
pub fn progress_line(bar: &ProgressBar) -> String {
    let done = bar.position();
    let total = bar.length();
    let of = match total {
        Some(total) if total > 0 => format!(
            "{done}/{total} rows ({:.1}%)",
            done as f64 * 100.0 / total as f64
        ),
        _ => format!("{done} rows"),
    };
    let eta = match total {
        // A long pause makes indicatif's estimate absurd: better none than years.
        Some(_) if bar.eta() > Duration::from_secs(7 * 86_400) => String::new(),
        Some(total) if done < total => {
            format!(
                ", ETA {}",
                humantime::format_duration(Duration::from_secs(bar.eta().as_secs()))
            )
        }
        _ => String::new(),
    };
    let figures = format!("{}{}", bar.message(), bar.prefix());
    let figures = figures.trim_start_matches("; ");
    if figures.is_empty() {
        format!("progress: {of}{eta}")
    } else {
        format!("progress: {of}{eta}; {figures}")
    }
}
