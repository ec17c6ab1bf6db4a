//! The end-of-job summary: printed on stderr, and written as JSON by `--summary-json`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::tally::Tally;
use crate::model::{Status, counted};

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
    /// Kept rows whose values in the input differ from those they were sent with (their
    /// records keep the values sent).
    pub changed_since_sent: u64,
    /// Rows sent again over an earlier record that stands, whose outcome settled nothing.
    pub unsettled: u64,
    /// Records of names not in this run's input, kept in the results file after its rows.
    pub not_in_input: u64,
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
            changed_since_sent: tally.changed_since_sent,
            unsettled: tally.unsettled,
            not_in_input: tally.not_in_input,
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
            "{} in {:.1} s: {counts}",
            counted(self.rows, "row"),
            self.elapsed_seconds
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
        let lines = [
            (self.changed_since_sent > 0).then(|| {
                format!(
                    "values changed since sent: {} kept rows (their records keep the values sent)",
                    self.changed_since_sent
                )
            }),
            (self.unsettled > 0).then(|| {
                format!(
                    "sent again without settling anything: {} (their earlier records stand)",
                    counted(self.unsettled, "row")
                )
            }),
            (self.not_in_input > 0).then(|| {
                format!(
                    "not in this input: {} records of the results file, kept after its rows",
                    self.not_in_input
                )
            }),
            self.stopped_line(),
            self.next_step.map(str::to_owned),
            self.errors_line(),
            self.requests_line(),
            self.preflight_line(),
            self.rate_limit_line(),
            (self.paused_unreachable_seconds > 0.0).then(|| {
                format!(
                    "API unreachable: paused {:.1} s",
                    self.paused_unreachable_seconds
                )
            }),
            Some(format!("results: {}", self.results)),
            self.retry_command
                .as_ref()
                .map(|command| format!("retry the rows that did not succeed: {command}")),
        ];
        for line in lines.into_iter().flatten() {
            let _ = writeln!(text, "  {line}");
        }
        text
    }

    /// Why the job stopped early, if it did.
    fn stopped_line(&self) -> Option<String> {
        Some(match self.stopped? {
            "OUTPUT_FAILED" => format!(
                "stopped early: the results could not be written; {} sent {} no record",
                counted(self.unrecorded, "row"),
                if self.unrecorded == 1 { "has" } else { "have" }
            ),
            "INPUT_FAILED" => "stopped early: the input could not be read to its end; the rows not read have no record".to_owned(),
            code => format!("stopped early: the rest are skipped / {code}"),
        })
    }

    /// The most frequent error codes.
    fn errors_line(&self) -> Option<String> {
        if self.top_error_codes.is_empty() {
            return None;
        }
        let codes: Vec<String> = self
            .top_error_codes
            .iter()
            .map(|c| format!("{} {}", c.code, c.count))
            .collect();
        Some(format!("errors: {}", codes.join(", ")))
    }

    /// Requests, retries, rate and latency, when any request was sent.
    fn requests_line(&self) -> Option<String> {
        if self.requests == 0 {
            return None;
        }
        let ms = |p: Option<u64>| p.map_or("-".to_owned(), |ms| format!("{ms} ms"));
        let puts = match self.puts_after_name_taken {
            0 => String::new(),
            1 => ", 1 PUT after a taken name".to_owned(),
            n => format!(", {n} PUTs after a taken name"),
        };
        Some(format!(
            "requests: {} ({} retries{puts}), {:.1}/s; latency p50 {}, p95 {}, p99 {}",
            self.requests,
            self.retries,
            self.requests_per_second,
            ms(self.latency_ms.p50),
            ms(self.latency_ms.p95),
            ms(self.latency_ms.p99),
        ))
    }

    /// What the preflight's list came to, when one was asked for.
    fn preflight_line(&self) -> Option<String> {
        let requests = match self.list_requests {
            1 => "one list request".to_owned(),
            n => format!("{n} list requests"),
        };
        match self.listed_workspaces {
            Some(listed) => Some(format!(
                "preflight: {requests}; {listed} workspaces existed before the run"
            )),
            None if self.list_requests > 0 => {
                Some(format!("preflight: {requests}; the list failed"))
            }
            None => None,
        }
    }

    /// 429s, the pause they made, and the limit the API announced.
    fn rate_limit_line(&self) -> Option<String> {
        if self.responses_429 == 0 && self.announced_limit.is_none() {
            return None;
        }
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
        Some(format!(
            "rate limit: {} answers 429, paused {:.1} s{announced}",
            self.responses_429, self.paused_rate_limited_seconds
        ))
    }
}
