//! The sandbox's rate limit, shaped like the vendor's: a fixed window per client IP
//! (`500/2m` by default there), the standard headers that describe it, and `Retry-After`.
//!
//! Windows are aligned to the sandbox's start: window `i` covers `[i·W, (i+1)·W)` of its
//! uptime, for every client alike. Nothing here knows HTTP beyond header names and values.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A fixed-window rate limit: at most `requests` per `window`, per client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowLimit {
    /// Requests allowed per window and client (at least 1).
    pub requests: u64,
    /// The window's length: a whole number of seconds, at least one.
    pub window: Duration,
}

impl WindowLimit {
    /// Checks what parsing checks, for a limit built by hand.
    pub fn validate(&self) -> Result<(), String> {
        match self.problem() {
            Some(why) => Err(format!(
                "'{}/{}' is not a limit: {why}",
                self.requests,
                humantime::format_duration(self.window)
            )),
            None => Ok(()),
        }
    }

    /// Why this is no limit at all, if it is not one.
    fn problem(&self) -> Option<&'static str> {
        if self.requests == 0 {
            Some("at least 1 request per window")
        } else if self.window < Duration::from_secs(1) {
            Some("the window must be at least 1s")
        } else if self.window.subsec_nanos() != 0 {
            // Whole seconds, so that every header can state the window exactly.
            Some("the window must be a whole number of seconds")
        } else {
            None
        }
    }
}

impl FromStr for WindowLimit {
    type Err = String;

    /// `N/W`: `W` is a unit (`s`, `m`, `h`) or a duration (`10s`, `2m`).
    fn from_str(text: &str) -> Result<WindowLimit, String> {
        let malformed = || format!("'{text}' is not a limit: write it as 500/2m or 50/s");
        let (requests, window) = text.split_once('/').ok_or_else(malformed)?;
        let requests: u64 = requests.trim().parse().map_err(|_| malformed())?;
        let window = match window.trim() {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            other => humantime::parse_duration(other).map_err(|_| malformed())?,
        };
        let limit = WindowLimit { requests, window };
        match limit.problem() {
            Some(why) => Err(format!("'{text}' is not a limit: {why}")),
            None => Ok(limit),
        }
    }
}

impl fmt::Display for WindowLimit {
    /// `N/Ws`, e.g. `100/10s`: parses back to the same limit.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}s", self.requests, self.window.as_secs())
    }
}

/// Which standard rate-limit headers the sandbox's answers carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RateLimitHeaders {
    /// `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (seconds) and
    /// `RateLimit-Policy: N;w=W` (IETF draft 6).
    #[default]
    #[value(name = "draft6")]
    Draft6,
    /// `RateLimit: limit=N, remaining=R, reset=T` and `RateLimit-Policy: N;w=W` (draft 7).
    #[value(name = "draft7")]
    Draft7,
    /// `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (a Unix time).
    #[value(name = "legacy")]
    Legacy,
    /// No rate-limit headers (a 429 still carries `Retry-After` unless told not to).
    #[value(name = "none")]
    None,
}

impl fmt::Display for RateLimitHeaders {
    /// The flag's value: `draft6`, `draft7`, `legacy` or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RateLimitHeaders::Draft6 => "draft6",
            RateLimitHeaders::Draft7 => "draft7",
            RateLimitHeaders::Legacy => "legacy",
            RateLimitHeaders::None => "none",
        })
    }
}

/// One client's window as a request found it, after counting that request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowState {
    /// Requests allowed per window.
    pub limit: u64,
    /// Requests still allowed in this window, this one counted (never below 0).
    pub remaining: u64,
    /// Time from the request's arrival to the window's end (above zero).
    pub reset_after: Duration,
    /// The window's length.
    pub window: Duration,
}

impl WindowState {
    /// Seconds until the window ends, rounded up and at least 1: a client that waits this
    /// long is never early.
    pub fn reset_secs(&self) -> u64 {
        ceil_secs(self.reset_after).max(1)
    }

    /// The rate-limit headers of `flavour`, as names and values. `arrived` is the wall
    /// clock at the request's arrival, for the legacy reset given as a Unix time.
    pub fn headers(
        &self,
        flavour: RateLimitHeaders,
        arrived: SystemTime,
    ) -> Vec<(&'static str, String)> {
        let (limit, remaining, reset) = (self.limit, self.remaining, self.reset_secs());
        let policy = || format!("{limit};w={}", self.window.as_secs());
        match flavour {
            RateLimitHeaders::Draft6 => vec![
                ("ratelimit-limit", limit.to_string()),
                ("ratelimit-remaining", remaining.to_string()),
                ("ratelimit-reset", reset.to_string()),
                ("ratelimit-policy", policy()),
            ],
            RateLimitHeaders::Draft7 => vec![
                (
                    "ratelimit",
                    format!("limit={limit}, remaining={remaining}, reset={reset}"),
                ),
                ("ratelimit-policy", policy()),
            ],
            RateLimitHeaders::Legacy => vec![
                ("x-ratelimit-limit", limit.to_string()),
                ("x-ratelimit-remaining", remaining.to_string()),
                ("x-ratelimit-reset", self.reset_at(arrived).to_string()),
            ],
            RateLimitHeaders::None => Vec::new(),
        }
    }

    /// The Unix time, in whole seconds rounded up, at which the window ends.
    fn reset_at(&self, arrived: SystemTime) -> u64 {
        arrived
            .checked_add(self.reset_after)
            .and_then(|end| end.duration_since(UNIX_EPOCH).ok())
            .map_or(u64::MAX, ceil_secs)
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Requests per client in the current window.
///
/// One window index serves every client, since windows are aligned to the start; a new
/// window forgets every count, which also keeps the map as small as one window's clients.
#[derive(Debug)]
pub struct Windows {
    limit: WindowLimit,
    /// The index of the current window.
    index: u64,
    /// The latest arrival seen: requests stamped before taking the lock may reach it out
    /// of order, and an older stamp must not reopen a window that has ended.
    latest: Duration,
    counts: HashMap<String, u64>,
}

impl Windows {
    /// Empty windows for `limit` (valid: at least 1 request, at least 1 s).
    pub fn new(limit: WindowLimit) -> Windows {
        Windows {
            limit,
            index: 0,
            latest: Duration::ZERO,
            counts: HashMap::new(),
        }
    }

    /// Counts a request from `client` arriving `at` after the start. Returns the window as
    /// it stands with this request counted, and whether the request is over the limit.
    pub fn count(&mut self, at: Duration, client: &str) -> (WindowState, bool) {
        let now = at.max(self.latest);
        self.latest = now;
        let window_secs = self.limit.window.as_secs().max(1);
        let index = now.as_secs() / window_secs;
        if index != self.index {
            self.index = index;
            self.counts.clear();
        }
        let count = self.counts.entry(client.to_owned()).or_default();
        *count += 1;
        let end = Duration::from_secs(index.saturating_add(1).saturating_mul(window_secs));
        let state = WindowState {
            limit: self.limit.requests,
            remaining: self.limit.requests.saturating_sub(*count),
            reset_after: end.saturating_sub(now),
            window: self.limit.window,
        };
        (state, *count > self.limit.requests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(text: &str) -> Result<WindowLimit, String> {
        text.parse()
    }

    fn secs(requests: u64, window: u64) -> WindowLimit {
        WindowLimit {
            requests,
            window: Duration::from_secs(window),
        }
    }

    #[test]
    fn limits_parse_with_a_unit_or_a_duration() {
        assert_eq!(limit("500/2m"), Ok(secs(500, 120)));
        assert_eq!(limit("50/s"), Ok(secs(50, 1)));
        assert_eq!(limit("100/10s"), Ok(secs(100, 10)));
        assert_eq!(limit("4/s"), Ok(secs(4, 1)));
        assert_eq!(limit("20/1s"), Ok(secs(20, 1)));
        assert_eq!(limit("7/m"), Ok(secs(7, 60)));
        assert_eq!(limit("3/h"), Ok(secs(3, 3600)));
        assert_eq!(limit(" 5 / 2m "), Ok(secs(5, 120)));
    }

    #[test]
    fn limits_display_as_they_parse() {
        assert_eq!(secs(100, 10).to_string(), "100/10s");
        assert_eq!(secs(500, 120).to_string(), "500/120s");
        assert_eq!(limit(&secs(500, 120).to_string()), Ok(secs(500, 120)));
    }

    #[test]
    fn impossible_limits_are_refused_with_the_reason() {
        let refused = |text: &str| limit(text).unwrap_err();
        assert_eq!(
            refused("0/s"),
            "'0/s' is not a limit: at least 1 request per window"
        );
        assert_eq!(
            refused("5/0s"),
            "'5/0s' is not a limit: the window must be at least 1s"
        );
        assert_eq!(
            refused("5/500ms"),
            "'5/500ms' is not a limit: the window must be at least 1s"
        );
        assert_eq!(
            refused("5/1500ms"),
            "'5/1500ms' is not a limit: the window must be a whole number of seconds"
        );
        for text in [
            "x/s",
            "5/d",
            "5",
            "/s",
            "5/",
            "-1/s",
            "1.5/s",
            "5/2 parsecs",
        ] {
            assert_eq!(
                refused(text),
                format!("'{text}' is not a limit: write it as 500/2m or 50/s"),
                "{text}"
            );
        }
    }

    #[test]
    fn a_hand_made_limit_is_checked_too() {
        assert!(secs(0, 1).validate().is_err());
        let half = WindowLimit {
            requests: 1,
            window: Duration::from_millis(1500),
        };
        assert!(half.validate().unwrap_err().contains("whole number"));
        assert!(secs(1, 1).validate().is_ok());
    }

    #[test]
    fn a_window_counts_each_client_apart_and_refuses_over_the_limit() {
        let mut windows = Windows::new(secs(2, 10));
        let at = Duration::from_millis(3_250);
        let (first, over) = windows.count(at, "a");
        assert!(!over);
        assert_eq!(
            first,
            WindowState {
                limit: 2,
                remaining: 1,
                reset_after: Duration::from_millis(6_750),
                window: Duration::from_secs(10),
            }
        );
        assert_eq!(
            windows.count(at, "a"),
            (
                WindowState {
                    remaining: 0,
                    ..first
                },
                false
            )
        );
        assert_eq!(
            windows.count(at, "a"),
            (
                WindowState {
                    remaining: 0,
                    ..first
                },
                true
            )
        );
        assert!(
            !windows.count(at, "b").1,
            "another client has its own count"
        );
    }

    #[test]
    fn windows_are_aligned_to_the_start_and_a_new_one_forgets_the_counts() {
        let mut windows = Windows::new(secs(1, 10));
        assert!(!windows.count(Duration::from_millis(9_999), "a").1);
        assert!(windows.count(Duration::from_millis(9_999), "a").1);
        // 10 s since the start is the second window, whatever the first request's time.
        let (state, over) = windows.count(Duration::from_secs(10), "a");
        assert!(!over);
        assert_eq!(state.reset_after, Duration::from_secs(10));
        assert_eq!(state.reset_secs(), 10);
    }

    #[test]
    fn a_late_stamp_does_not_reopen_an_ended_window() {
        let mut windows = Windows::new(secs(1, 1));
        assert!(!windows.count(Duration::from_millis(2_000), "a").1);
        // Stamped at 1.999 s but counted after the 2.000 s request: the same window.
        let (state, over) = windows.count(Duration::from_millis(1_999), "a");
        assert!(over);
        assert_eq!(state.reset_after, Duration::from_secs(1));
    }

    #[test]
    fn the_reset_rounds_up_and_is_at_least_one_second() {
        let state = |reset_after| WindowState {
            limit: 5,
            remaining: 0,
            reset_after,
            window: Duration::from_secs(60),
        };
        assert_eq!(state(Duration::from_nanos(1)).reset_secs(), 1);
        assert_eq!(state(Duration::from_millis(1_001)).reset_secs(), 2);
        assert_eq!(state(Duration::from_secs(60)).reset_secs(), 60);
        assert_eq!(state(Duration::ZERO).reset_secs(), 1);
    }

    #[test]
    fn each_flavour_names_its_headers() {
        let state = WindowState {
            limit: 500,
            remaining: 3,
            reset_after: Duration::from_millis(56_200),
            window: Duration::from_secs(120),
        };
        let arrived = UNIX_EPOCH + Duration::from_millis(1_700_000_000_500);
        let owned = |pairs: &[(&'static str, &str)]| {
            pairs
                .iter()
                .map(|(n, v)| (*n, v.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            state.headers(RateLimitHeaders::Draft6, arrived),
            owned(&[
                ("ratelimit-limit", "500"),
                ("ratelimit-remaining", "3"),
                ("ratelimit-reset", "57"),
                ("ratelimit-policy", "500;w=120"),
            ])
        );
        assert_eq!(
            state.headers(RateLimitHeaders::Draft7, arrived),
            owned(&[
                ("ratelimit", "limit=500, remaining=3, reset=57"),
                ("ratelimit-policy", "500;w=120"),
            ])
        );
        // 1_700_000_000.5 + 56.2 = 1_700_000_056.7, rounded up.
        assert_eq!(
            state.headers(RateLimitHeaders::Legacy, arrived),
            owned(&[
                ("x-ratelimit-limit", "500"),
                ("x-ratelimit-remaining", "3"),
                ("x-ratelimit-reset", "1700000057"),
            ])
        );
        assert!(state.headers(RateLimitHeaders::None, arrived).is_empty());
    }
}
