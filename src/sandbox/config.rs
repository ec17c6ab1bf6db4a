//! What a sandbox is started with: its key, the catalog of things that exist, and the
//! faults it injects.

use std::time::Duration;

use super::limit::{RateLimitHeaders, WindowLimit};
use crate::api::workspace::WorkspaceRequest;

/// The key the sandbox accepts unless told otherwise.
pub const DEFAULT_API_KEY: &str = "dbn_sandbox_key";

/// Largest request body accepted; anything above gets 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Everything a sandbox is started with.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The only Bearer token accepted.
    pub api_key: String,
    /// Datasources, datamarts, LLMs and themes that exist.
    pub catalog: Catalog,
    /// Injected misbehaviour.
    pub faults: FaultConfig,
    /// Seed of the fault sequence; `None` picks one (and logs it, so a run can be replayed).
    pub seed: Option<u64>,
    /// How many requests `GET /_sandbox/requests` keeps (the earliest ones).
    pub request_log_capacity: usize,
    /// Workspaces that exist from the start, in this order, as if created (validated the
    /// same way, but neither counted nor logged as requests). Empty by default.
    pub workspaces: Vec<WorkspaceRequest>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            api_key: DEFAULT_API_KEY.to_owned(),
            catalog: Catalog::default(),
            faults: FaultConfig::default(),
            seed: None,
            request_log_capacity: 1_000_000,
            workspaces: Vec::new(),
        }
    }
}

/// Names of the things a workspace may refer to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    /// Datasources (`datasourceName`).
    pub datasources: Vec<String>,
    /// Datamarts (`datamartName`).
    pub datamarts: Vec<String>,
    /// LLMs (`llmName`, `aiCopilotLlms`).
    pub llms: Vec<String>,
    /// Themes (`themeName`).
    pub themes: Vec<String>,
}

impl Catalog {
    /// The default datasources.
    pub const DATASOURCES: &[&str] = &[
        "postgres-main",
        "mysql-orders",
        "snowflake-warehouse",
        "bigquery-analytics",
    ];
    /// The default datamarts.
    pub const DATAMARTS: &[&str] = &["sales-mart", "finance-mart", "marketing-mart"];
    /// The default LLMs.
    pub const LLMS: &[&str] = &["gpt-4o", "gpt-4o-mini", "claude-sonnet", "gemini-pro"];
    /// The default themes.
    pub const THEMES: &[&str] = &["default", "dark", "corporate"];
}

impl Default for Catalog {
    fn default() -> Self {
        let owned = |names: &[&str]| names.iter().map(|n| n.to_string()).collect();
        Catalog {
            datasources: owned(Self::DATASOURCES),
            datamarts: owned(Self::DATAMARTS),
            llms: owned(Self::LLMS),
            themes: owned(Self::THEMES),
        }
    }
}

/// Injected faults; the default injects none.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    /// Fixed delay before every answer.
    pub latency: Duration,
    /// Extra random delay, uniform in `0..jitter`.
    pub jitter: Duration,
    /// Share of requests answered 500 without any effect.
    pub fail_rate: f64,
    /// Share of requests whose write (create, update, delete) is applied and then answered
    /// 500; a list has nothing to apply and gets a plain 500.
    pub fail_after_commit_rate: f64,
    /// Share of requests whose connection is closed without an answer (half after the write).
    pub drop_rate: f64,
    /// A fixed window per client IP, like the vendor's: over it, 429.
    pub rate_limit: Option<WindowLimit>,
    /// Which rate-limit headers every answer carries while a limit is set.
    pub rate_limit_headers: RateLimitHeaders,
    /// Whether a 429 carries `Retry-After` (false: a limit that says nothing).
    pub retry_after: bool,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            fail_rate: 0.0,
            fail_after_commit_rate: 0.0,
            drop_rate: 0.0,
            rate_limit: None,
            rate_limit_headers: RateLimitHeaders::default(),
            // The vendor's 429 says when to come back.
            retry_after: true,
        }
    }
}

impl FaultConfig {
    /// Checks that each rate is a probability and that together they are at most 1.
    pub fn validate(&self) -> Result<(), String> {
        let rates = [
            ("--fail-rate", self.fail_rate),
            ("--fail-after-commit-rate", self.fail_after_commit_rate),
            ("--drop-rate", self.drop_rate),
        ];
        for (flag, rate) in rates {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{flag} must be between 0 and 1, got {rate}"));
            }
        }
        let sum: f64 = rates.iter().map(|(_, r)| r).sum();
        if sum > 1.0 + 1e-9 {
            return Err(format!(
                "--fail-rate, --fail-after-commit-rate and --drop-rate add up to {sum}; at most 1 is possible"
            ));
        }
        if let Some(limit) = &self.rate_limit {
            limit.validate().map_err(|e| format!("--rate-limit {e}"))?;
        }
        Ok(())
    }
}

impl std::fmt::Display for FaultConfig {
    /// The faults in force, as the flags that set them: `--latency 10ms --fail-rate 0.1`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let duration = |d: Duration| humantime::format_duration(d).to_string();
        let mut flags = Vec::new();
        if !self.latency.is_zero() {
            flags.push(format!("--latency {}", duration(self.latency)));
        }
        if !self.jitter.is_zero() {
            flags.push(format!("--jitter {}", duration(self.jitter)));
        }
        for (flag, rate) in [
            ("--fail-rate", self.fail_rate),
            ("--fail-after-commit-rate", self.fail_after_commit_rate),
            ("--drop-rate", self.drop_rate),
        ] {
            if rate > 0.0 {
                flags.push(format!("{flag} {rate}"));
            }
        }
        // The headers and Retry-After flags only matter while a limit is set.
        if let Some(limit) = self.rate_limit {
            flags.push(format!("--rate-limit {limit}"));
            if self.rate_limit_headers != RateLimitHeaders::Draft6 {
                flags.push(format!("--rate-limit-headers {}", self.rate_limit_headers));
            }
            if !self.retry_after {
                flags.push("--no-retry-after".to_owned());
            }
        }
        if flags.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&flags.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(requests: u64, secs: u64) -> Option<WindowLimit> {
        Some(WindowLimit {
            requests,
            window: Duration::from_secs(secs),
        })
    }

    #[test]
    fn faults_display_as_the_flags_in_force() {
        assert_eq!(FaultConfig::default().to_string(), "none");
        let limited = FaultConfig {
            rate_limit: limit(100, 10),
            ..FaultConfig::default()
        };
        assert_eq!(limited.to_string(), "--rate-limit 100/10s");
        let silent = FaultConfig {
            rate_limit_headers: RateLimitHeaders::None,
            retry_after: false,
            ..limited
        };
        assert_eq!(
            silent.to_string(),
            "--rate-limit 100/10s --rate-limit-headers none --no-retry-after"
        );
        // Without a limit the header flags change nothing, so they are not shown.
        let moot = FaultConfig {
            rate_limit: None,
            ..silent
        };
        assert_eq!(moot.to_string(), "none");
    }

    #[test]
    fn a_hand_made_window_limit_is_validated() {
        let zero = FaultConfig {
            rate_limit: limit(0, 10),
            ..FaultConfig::default()
        };
        assert_eq!(
            zero.validate().unwrap_err(),
            "--rate-limit '0/10s' is not a limit: at least 1 request per window"
        );
        let fractional = FaultConfig {
            rate_limit: Some(WindowLimit {
                requests: 5,
                window: Duration::from_millis(2500),
            }),
            ..FaultConfig::default()
        };
        assert!(fractional.validate().unwrap_err().contains("whole number"));
        assert!(
            FaultConfig {
                rate_limit: limit(500, 120),
                ..FaultConfig::default()
            }
            .validate()
            .is_ok()
        );
        assert!(
            FaultConfig::default().retry_after,
            "a 429 says when by default"
        );
    }
}
