//! A run's metrics for Prometheus (`--pushgateway`, `--metrics-file`), in its text format:
//! what a scheduled job is watched by. Every figure is a gauge of the last run; the time of
//! the last success is there only when the run succeeded, so a push (which replaces only
//! the metrics it names) keeps the last success of an earlier night.

use std::borrow::Cow;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime};

use prometheus_client::encoding::text::encode_registry;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::model::Status;

/// The content type of [`RunFigures::encode`]'s text, for a push.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The metric of the last success.
pub const LAST_SUCCESS: &str = "dbprov_last_success_timestamp_seconds";

/// Whether `text` is metrics dbprov wrote: a file that holds anything else is not
/// replaced.
pub fn written_by_dbprov(text: &str) -> bool {
    text.starts_with("# HELP dbprov_")
}

/// The last success that metrics dbprov wrote with these `labels` say, if they say one
/// (another shard's is not this one's).
pub fn last_success_in(text: &str, labels: &[(&'static str, String)]) -> Option<f64> {
    let sample = match labels {
        [] => format!("{LAST_SUCCESS} "),
        labels => {
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            format!("{LAST_SUCCESS}{{{}}} ", labels.join(","))
        }
    };
    text.lines()
        .find_map(|line| line.strip_prefix(&sample)?.trim().parse().ok())
}

/// What a run came to, as its metrics say it.
#[derive(Debug, Clone, Default)]
pub struct RunFigures {
    /// Rows per status; empty when the command ended before its job (exit 2).
    pub rows_by_status: Vec<(&'static str, u64)>,
    /// Requests sent to the API: writes, their retries, and the lists.
    pub requests: u64,
    /// 429 answers met.
    pub responses_429: u64,
    /// How long the command ran.
    pub duration: Duration,
    /// The process's exit code.
    pub exit_code: u8,
    /// When the run ended.
    pub finished_at: Option<SystemTime>,
    /// When an earlier run last succeeded (Unix time), to say again after a run that did
    /// not: a file, unlike a push, keeps nothing it is not given.
    pub earlier_success: Option<f64>,
    /// A plan or a dry run: it sends no write, so exiting 0 is no success of the job (an
    /// ad-hoc plan must not silence the alert of a nightly job that fails).
    pub rehearsal: bool,
}

impl RunFigures {
    /// Rows per status from a summary's counts: every status, those with no row at 0, so
    /// that an alert on `failed` has a series to read.
    pub fn rows(counted: impl Fn(&str) -> u64) -> Vec<(&'static str, u64)> {
        Status::ALL
            .iter()
            .map(|status| (status.as_str(), counted(status.as_str())))
            .collect()
    }

    /// The metrics in Prometheus' text format, each with `labels` (`shard`, for a file).
    pub fn encode(&self, labels: &[(&'static str, String)]) -> String {
        let constant = labels
            .iter()
            .map(|(name, value)| (Cow::Borrowed(*name), Cow::Owned(value.clone())));
        let mut registry = Registry::with_labels(constant);
        let rows = Family::<Vec<(&'static str, &'static str)>, Gauge>::default();
        for (status, count) in &self.rows_by_status {
            rows.get_or_create(&vec![("status", *status)])
                .set(saturating(*count));
        }
        registry.register("dbprov_rows", "Rows of the last run, by status", rows);
        let whole = |registry: &mut Registry, name: &str, help: &str, value: u64| {
            let gauge = Gauge::<i64, std::sync::atomic::AtomicI64>::default();
            gauge.set(saturating(value));
            registry.register(name, help, gauge);
        };
        whole(
            &mut registry,
            "dbprov_requests",
            "Requests the last run sent to the API (writes, retries and lists)",
            self.requests,
        );
        whole(
            &mut registry,
            "dbprov_responses_429",
            "429 answers the last run met",
            self.responses_429,
        );
        whole(
            &mut registry,
            "dbprov_exit_code",
            "Exit code of the last run (0 every row succeeded, 1 some failed, 2 usage or input, 3 aborted, 4 results unwritable, 130 interrupted)",
            u64::from(self.exit_code),
        );
        let seconds = |registry: &mut Registry, name: &str, help: &str, value: f64| {
            let gauge = Gauge::<f64, AtomicU64>::default();
            gauge.set(value);
            registry.register(name, help, gauge);
        };
        seconds(
            &mut registry,
            "dbprov_duration_seconds",
            "How long the last run took",
            self.duration.as_secs_f64(),
        );
        let finished = unix_seconds(self.finished_at.unwrap_or_else(SystemTime::now));
        seconds(
            &mut registry,
            "dbprov_last_run_timestamp_seconds",
            "When the last run ended (Unix time)",
            finished,
        );
        let last_success = match (self.exit_code, self.rehearsal) {
            (0, false) => Some(finished),
            _ => self.earlier_success,
        };
        if let Some(last_success) = last_success {
            seconds(
                &mut registry,
                LAST_SUCCESS,
                "When the last run that exited 0 ended (Unix time)",
                last_success,
            );
        }
        let mut text = String::new();
        encode_registry(&mut text, &registry).expect("writing to a String cannot fail");
        text
    }
}

fn saturating(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(exit_code: u8) -> RunFigures {
        RunFigures {
            rows_by_status: RunFigures::rows(|s| match s {
                "created" => 7,
                "failed" => 2,
                _ => 0,
            }),
            requests: 11,
            responses_429: 1,
            duration: Duration::from_millis(1500),
            exit_code,
            finished_at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)),
            earlier_success: None,
            rehearsal: false,
        }
    }

    #[test]
    fn the_text_has_every_status_and_the_figures() {
        let text = figures(1).encode(&[("shard", "2".to_owned())]);
        assert!(text.contains("# TYPE dbprov_rows gauge"), "{text}");
        assert!(
            text.contains("dbprov_rows{shard=\"2\",status=\"created\"} 7"),
            "{text}"
        );
        assert!(text.contains("dbprov_rows{shard=\"2\",status=\"skipped\"} 0"));
        assert!(text.contains("dbprov_requests{shard=\"2\"} 11"), "{text}");
        assert!(text.contains("dbprov_exit_code{shard=\"2\"} 1"), "{text}");
        assert!(
            text.contains("dbprov_duration_seconds{shard=\"2\"} 1.5"),
            "{text}"
        );
        assert!(text.contains("dbprov_last_run_timestamp_seconds{shard=\"2\"} 1800000000"));
        assert!(
            !text.contains("dbprov_last_success"),
            "not after exit 1: {text}"
        );
        assert!(
            !text.contains("# EOF"),
            "Prometheus' text format, not OpenMetrics'"
        );
    }

    #[test]
    fn a_file_says_again_the_last_success_of_an_earlier_run() {
        let earlier = figures(0).encode(&[("shard", "1".to_owned())]);
        assert!(written_by_dbprov(&earlier));
        assert!(!written_by_dbprov("_row,_status\n"));
        let carried = last_success_in(&earlier, &[("shard", "1".to_owned())]);
        assert_eq!(
            last_success_in(&earlier, &[("shard", "2".to_owned())]),
            None
        );
        assert_eq!(last_success_in(&earlier, &[]), None);
        assert_eq!(carried, Some(1_800_000_000.0));
        let failed = RunFigures {
            earlier_success: carried,
            ..figures(1)
        };
        let text = failed.encode(&[("shard", "1".to_owned())]);
        assert_eq!(
            last_success_in(&text, &[("shard", "1".to_owned())]),
            carried,
            "{text}"
        );
        assert!(text.contains("dbprov_exit_code{shard=\"1\"} 1"), "{text}");
    }

    #[test]
    fn a_plan_or_a_dry_run_is_no_success() {
        let rehearsal = RunFigures {
            rehearsal: true,
            ..figures(0)
        };
        assert!(!rehearsal.encode(&[]).contains(LAST_SUCCESS));
    }

    #[test]
    fn the_last_success_is_there_only_after_exit_0() {
        let text = figures(0).encode(&[]);
        assert!(
            text.contains("dbprov_last_success_timestamp_seconds 1800000000"),
            "{text}"
        );
    }
}
