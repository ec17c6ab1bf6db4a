//! Counts kept as rows become final: per status, per error code, requests, latencies.

use std::collections::{BTreeMap, HashMap};

use crate::model::{RowOutcome, Status};

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
    /// Kept rows whose values in the input differ from those they were sent with: their
    /// records keep the values sent.
    pub changed_since_sent: u64,
    /// Rows sent again over a record that stands, whose outcome settled nothing (a failure,
    /// the job stopping): counted as not done.
    pub unsettled: u64,
    /// Records of a continued file whose names this run's input did not have: kept in the
    /// file, after the input's rows.
    pub not_in_input: u64,
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

    /// Counts one record kept from an earlier run, recorded with `status`: kept without a
    /// request, or after this run `sent` the row again; `unsettled` when that settled
    /// nothing.
    pub fn add_kept(
        &mut self,
        status: Option<Status>,
        changed: bool,
        sent: Option<&RowOutcome>,
        unsettled: bool,
    ) {
        if let Some(status) = status {
            *self.by_status.entry(status).or_default() += 1;
        }
        self.changed_since_sent += u64::from(changed);
        self.unsettled += u64::from(unsettled);
        match sent {
            None => self.kept += 1,
            Some(sent) => {
                if !sent.error_code.is_empty() {
                    *self.by_code.entry(sent.error_code.clone()).or_default() += 1;
                }
                self.requests += u64::from(sent.attempts);
                self.retries += u64::from(sent.retries);
                self.puts_after_name_taken += u64::from(sent.put_after_taken);
                if let Some(ms) = sent.latency_ms {
                    self.latencies.add(ms);
                }
            }
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

    /// Rows that did not succeed, or whose re-send settled nothing.
    pub fn unsuccessful(&self) -> u64 {
        let not_done: u64 = self
            .by_status
            .iter()
            .filter(|(status, _)| !status.is_success())
            .map(|(_, n)| n)
            .sum();
        not_done + self.unsettled
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
