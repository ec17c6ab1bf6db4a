//! What the operator sees: running counts, and the summary at the end of a job.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Duration;

use crate::results::{RowOutcome, Status};

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
    /// Requests beyond the first of each row.
    pub retries: u64,
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
        self.retries += u64::from(outcome.attempts.saturating_sub(1));
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

/// The end-of-job summary for stderr.
pub fn summary(tally: &Tally, elapsed: Duration, results: &str, stopped: Option<&str>) -> String {
    let mut text = String::new();
    let seconds = elapsed.as_secs_f64();
    let counts: Vec<String> = Status::ALL
        .iter()
        .filter(|s| tally.count(**s) > 0)
        .map(|s| format!("{} {}", tally.count(*s), s))
        .collect();
    let _ = writeln!(
        text,
        "dbprov: {} rows in {seconds:.1} s: {}",
        tally.rows(),
        if counts.is_empty() {
            "nothing to do".to_owned()
        } else {
            counts.join(", ")
        }
    );
    if tally.kept > 0 {
        let _ = writeln!(
            text,
            "  kept from the earlier run: {} (no request sent for them)",
            tally.kept
        );
    }
    if let Some(reason) = stopped {
        let _ = writeln!(text, "  stopped early: {reason}");
    }
    let codes = tally.top_codes(5);
    if !codes.is_empty() {
        let codes: Vec<String> = codes.iter().map(|(c, n)| format!("{c} {n}")).collect();
        let _ = writeln!(text, "  errors: {}", codes.join(", "));
    }
    if tally.requests > 0 {
        let ms = |q| {
            tally
                .latency_ms(q)
                .map_or("-".to_owned(), |ms| format!("{ms} ms"))
        };
        let _ = writeln!(
            text,
            "  requests: {} ({} retries), {:.1}/s; latency p50 {}, p95 {}, p99 {}",
            tally.requests,
            tally.retries,
            tally.requests as f64 / seconds.max(1e-9),
            ms(0.50),
            ms(0.95),
            ms(0.99),
        );
    }
    let _ = writeln!(text, "  results: {results}");
    text
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
