//! What the operator sees: running counts, and the summary at the end of a job.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::LazyLock;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::cli::ProgressMode;
use crate::pacing::PacingReport;
use crate::record::Status;
use crate::results::RowOutcome;

/// Counts kept by the writer as rows become final. Its size does not grow with the input:
/// latencies go into a histogram of at most a few hundred buckets.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Rows per status.
    pub by_status: BTreeMap<Status, u64>,
    /// Rows per error code (failures, invalid and skipped rows).
    pub by_code: HashMap<String, u64>,
    /// Requests sent, retries included.
    pub requests: u64,
    /// Requests that sent the one before them again: after a retryable outcome (a 5xx, a
    /// timeout, a connection lost or not made) or a 429. A PUT after a taken name is a new
    /// request, not one of these.
    pub retries: u64,
    /// PUTs sent because a POST met a taken name (`--on-exists update`).
    pub puts_after_name_taken: u64,
    /// Successes of an earlier run, kept without a request.
    pub kept: u64,
    latencies: LatencyHistogram,
}

impl Tally {
    /// Counts one final row.
    pub fn add(&mut self, outcome: &RowOutcome) {
        *self.by_status.entry(outcome.status).or_default() += 1;
        if !outcome.error_code.is_empty() {
            *self.by_code.entry(outcome.error_code.clone()).or_default() += 1;
        }
        self.requests += u64::from(outcome.attempts);
        self.retries += u64::from(outcome.retries);
        self.puts_after_name_taken += u64::from(outcome.put_after_taken);
        if let Some(ms) = outcome.latency_ms {
            self.latencies.add(ms);
        }
    }

    /// Counts one success kept from an earlier run.
    pub fn add_kept(&mut self, status: Option<Status>) {
        self.kept += 1;
        if let Some(status) = status {
            *self.by_status.entry(status).or_default() += 1;
        }
    }

    /// Rows counted so far.
    pub fn rows(&self) -> u64 {
        self.by_status.values().sum()
    }

    /// Rows with this status.
    pub fn count(&self, status: Status) -> u64 {
        self.by_status.get(&status).copied().unwrap_or(0)
    }

    /// Rows that did not succeed.
    pub fn unsuccessful(&self) -> u64 {
        self.by_status
            .iter()
            .filter(|(status, _)| !status.is_success())
            .map(|(_, n)| n)
            .sum()
    }

    /// The most frequent error codes, most frequent first (ties by name).
    pub fn top_codes(&self, n: usize) -> Vec<(&str, u64)> {
        let mut codes: Vec<_> = self.by_code.iter().map(|(c, n)| (c.as_str(), *n)).collect();
        codes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        codes.truncate(n);
        codes
    }

    /// The latency under which `quantile` (0 to 1) of the sent rows finished, in ms.
    pub fn latency_ms(&self, quantile: f64) -> Option<u64> {
        self.latencies.quantile(quantile)
    }
}

/// Latencies rounded to two significant digits (1 234 ms counts as 1 200 ms): percentiles
/// within 5 %, in a map of at most ~90 buckets per power of ten.
#[derive(Debug, Clone, Default)]
struct LatencyHistogram {
    buckets: BTreeMap<u64, u64>,
    count: u64,
}

impl LatencyHistogram {
    fn add(&mut self, ms: u64) {
        let mut scale = 1;
        while ms / scale >= 100 {
            scale *= 10;
        }
        *self.buckets.entry(ms / scale * scale).or_default() += 1;
        self.count += 1;
    }

    fn quantile(&self, quantile: f64) -> Option<u64> {
        let rank = ((self.count as f64) * quantile).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (&ms, &n) in &self.buckets {
            seen += n;
            if seen >= rank {
                return Some(ms);
            }
        }
        None
    }
}

/// The end-of-job summary: printed on stderr, and written as JSON by `--summary-json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Rows accounted for.
    pub rows: u64,
    /// Rows per status.
    pub by_status: BTreeMap<&'static str, u64>,
    /// The most frequent error codes, most frequent first.
    pub top_error_codes: Vec<CodeCount>,
    /// Requests sent, retries included (the preflight's list requests are not).
    pub requests: u64,
    /// Requests that sent the one before them again (after a retryable outcome or a 429).
    pub retries: u64,
    /// PUTs sent because a POST met a taken name (`--on-exists update`): new requests, not
    /// retries.
    pub puts_after_name_taken: u64,
    /// Successes of an earlier run kept without a request.
    pub kept: u64,
    /// Wall time of the job.
    pub elapsed_seconds: f64,
    /// Requests per second over the job.
    pub requests_per_second: f64,
    /// Latency of the rows sent (first attempt to outcome, backoff included).
    pub latency_ms: Percentiles,
    /// The results file.
    pub results: String,
    /// Why the job stopped early, as the skipped rows' code.
    pub stopped: Option<&'static str>,
    /// What to do about why the job stopped, where that is clear (a refused key).
    pub next_step: Option<&'static str>,
    /// The command that re-sends the rows that did not succeed.
    pub retry_command: Option<String>,
    /// The process's exit code.
    pub exit_code: u8,
    /// Rows whose requests were sent but whose outcome could not be written (exit 4).
    pub unrecorded: u64,
    /// 429 answers met (they spend no attempt of a row).
    pub responses_429: u64,
    /// Seconds every request was paused by the API's rate limit.
    pub paused_rate_limited_seconds: f64,
    /// Seconds every request was paused because the API could not be reached.
    pub paused_unreachable_seconds: f64,
    /// The rate limit the API announced in its headers, last seen.
    pub announced_limit: Option<AnnouncedLimit>,
    /// Workspaces the preflight listed before the job sent anything; `None` without a
    /// list (`--no-preflight`, not a run, or the list failed).
    pub listed_workspaces: Option<u64>,
    /// Requests the list took (more than one after a failure or a 429).
    pub list_requests: u64,
}

/// A rate limit as the API announced it.
#[derive(Debug, Clone, Serialize)]
pub struct AnnouncedLimit {
    /// Requests per window.
    pub requests: u64,
    /// The window, in seconds, when the API said it.
    pub window_seconds: Option<f64>,
}

/// One error code and how many rows have it.
#[derive(Debug, Clone, Serialize)]
pub struct CodeCount {
    /// The code.
    pub code: String,
    /// Rows with it.
    pub count: u64,
}

/// Latency percentiles in milliseconds; `None` when no row was sent.
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: Option<u64>,
    /// 95th percentile.
    pub p95: Option<u64>,
    /// 99th percentile.
    pub p99: Option<u64>,
}

impl Summary {
    /// Gathers the figures of a finished job.
    pub fn new(tally: &Tally, elapsed: Duration, results: String) -> Summary {
        let seconds = elapsed.as_secs_f64();
        Summary {
            rows: tally.rows(),
            by_status: tally
                .by_status
                .iter()
                .map(|(status, n)| (status.as_str(), *n))
                .collect(),
            top_error_codes: tally
                .top_codes(5)
                .into_iter()
                .map(|(code, count)| CodeCount {
                    code: code.to_owned(),
                    count,
                })
                .collect(),
            requests: tally.requests,
            retries: tally.retries,
            puts_after_name_taken: tally.puts_after_name_taken,
            kept: tally.kept,
            elapsed_seconds: seconds,
            requests_per_second: tally.requests as f64 / seconds.max(1e-9),
            latency_ms: Percentiles {
                p50: tally.latency_ms(0.50),
                p95: tally.latency_ms(0.95),
                p99: tally.latency_ms(0.99),
            },
            results,
            stopped: None,
            next_step: None,
            retry_command: None,
            exit_code: 0,
            unrecorded: 0,
            responses_429: 0,
            paused_rate_limited_seconds: 0.0,
            paused_unreachable_seconds: 0.0,
            announced_limit: None,
            listed_workspaces: None,
            list_requests: 0,
        }
    }

    /// Adds what pacing met: 429s, pauses, the announced limit.
    pub fn with_pacing(mut self, pacing: &PacingReport) -> Summary {
        self.responses_429 = pacing.responses_429;
        self.paused_rate_limited_seconds = pacing.paused_rate_limited.as_secs_f64();
        self.paused_unreachable_seconds = pacing.paused_unreachable.as_secs_f64();
        self.announced_limit = pacing.announced.map(|a| AnnouncedLimit {
            requests: a.limit,
            window_seconds: a.window.map(|w| w.as_secs_f64()),
        });
        self
    }

    /// The first line of the summary: rows, time, and the count of every status met.
    pub fn headline(&self) -> String {
        let counts: Vec<String> = Status::ALL
            .iter()
            .filter_map(|s| self.by_status.get(s.as_str()).map(|n| format!("{n} {s}")))
            .collect();
        let counts = if counts.is_empty() {
            "nothing to do".to_owned()
        } else {
            counts.join(", ")
        };
        format!(
            "{} rows in {:.1} s: {counts}",
            self.rows, self.elapsed_seconds
        )
    }

    /// The summary as lines for stderr.
    pub fn text(&self) -> String {
        let mut text = format!("dbprov: {}\n", self.headline());
        if self.kept > 0 {
            let _ = writeln!(
                text,
                "  kept from the earlier run: {} (no request sent for them)",
                self.kept
            );
        }
        match self.stopped {
            Some("OUTPUT_FAILED") => {
                let _ = writeln!(
                    text,
                    "  stopped early: the results could not be written; {} rows sent have no record",
                    self.unrecorded
                );
            }
            Some("INPUT_FAILED") => {
                let _ = writeln!(
                    text,
                    "  stopped early: the input could not be read to its end; the rows not read have no record"
                );
            }
            Some(code) => {
                let _ = writeln!(text, "  stopped early: the rest are skipped / {code}");
            }
            None => {}
        }
        if let Some(step) = self.next_step {
            let _ = writeln!(text, "  {step}");
        }
        if !self.top_error_codes.is_empty() {
            let codes: Vec<String> = self
                .top_error_codes
                .iter()
                .map(|c| format!("{} {}", c.code, c.count))
                .collect();
            let _ = writeln!(text, "  errors: {}", codes.join(", "));
        }
        if self.requests > 0 {
            let ms = |p: Option<u64>| p.map_or("-".to_owned(), |ms| format!("{ms} ms"));
            let puts = match self.puts_after_name_taken {
                0 => String::new(),
                1 => ", 1 PUT after a taken name".to_owned(),
                n => format!(", {n} PUTs after a taken name"),
            };
            let _ = writeln!(
                text,
                "  requests: {} ({} retries{puts}), {:.1}/s; latency p50 {}, p95 {}, p99 {}",
                self.requests,
                self.retries,
                self.requests_per_second,
                ms(self.latency_ms.p50),
                ms(self.latency_ms.p95),
                ms(self.latency_ms.p99),
            );
        }
        let requests = match self.list_requests {
            1 => "one list request".to_owned(),
            n => format!("{n} list requests"),
        };
        match self.listed_workspaces {
            Some(listed) => {
                let _ = writeln!(
                    text,
                    "  preflight: {requests}; {listed} workspaces existed before the run"
                );
            }
            None if self.list_requests > 0 => {
                let _ = writeln!(text, "  preflight: {requests}; the list failed");
            }
            None => {}
        }
        if self.responses_429 > 0 || self.announced_limit.is_some() {
            let announced = match &self.announced_limit {
                Some(AnnouncedLimit {
                    requests,
                    window_seconds: Some(window),
                }) => format!("; the API announced {requests} requests per {window} s"),
                Some(AnnouncedLimit { requests, .. }) => {
                    format!("; the API announced {requests} requests per window")
                }
                None => "; the API announced no limit".to_owned(),
            };
            let _ = writeln!(
                text,
                "  rate limit: {} answers 429, paused {:.1} s{announced}",
                self.responses_429, self.paused_rate_limited_seconds
            );
        }
        if self.paused_unreachable_seconds > 0.0 {
            let _ = writeln!(
                text,
                "  API unreachable: paused {:.1} s",
                self.paused_unreachable_seconds
            );
        }
        let _ = writeln!(text, "  results: {}", self.results);
        if let Some(command) = &self.retry_command {
            let _ = writeln!(text, "  retry the rows that did not succeed: {command}");
        }
        text
    }
}

/// The progress bar. One per process, like stderr: log lines are written through
/// [`hide_bar_while`], so that the two never tear.
static BAR: LazyLock<ProgressBar> = LazyLock::new(ProgressBar::hidden);

/// Runs `write` (a line on stderr) with the bar cleared, and draws the bar again after.
pub fn hide_bar_while(write: impl FnOnce()) {
    BAR.suspend(write);
}

/// The bar, drawn when `mode` asks for it (`is_hidden` tells), but never among JSON logs:
/// its escape codes would break every line a collector reads. A hidden bar still keeps
/// count, for the periodic log lines.
pub fn start_progress(mode: ProgressMode, total: Option<u64>) -> ProgressBar {
    let bar = BAR.clone();
    let target = match mode {
        _ if crate::logging::is_json() => ProgressDrawTarget::hidden(),
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
    bar.set_position(tally.rows());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_five_percent() {
        let mut histogram = LatencyHistogram::default();
        for ms in 1..=1000 {
            histogram.add(ms);
        }
        assert_eq!(histogram.quantile(0.5), Some(500));
        assert_eq!(histogram.quantile(0.95), Some(950));
        assert_eq!(histogram.quantile(0.99), Some(990));
        assert_eq!(histogram.quantile(1.0), Some(1000));
        histogram.add(123_456);
        assert_eq!(histogram.quantile(1.0), Some(120_000));
        assert_eq!(LatencyHistogram::default().quantile(0.5), None);
    }
}
