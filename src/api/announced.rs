//! The rate limit an API announces in its answers: `RateLimit-Limit/Remaining/Reset` (the
//! IETF draft 6 headers), `RateLimit: limit=…, remaining=…, reset=…` (draft 7; later drafts'
//! `r=` and `t=` too), or the older `X-RateLimit-*`, with `RateLimit-Policy` for the window.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;

/// What one answer said about the client's current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announced {
    /// Requests a window allows.
    pub limit: u64,
    /// Requests left in the current window, this one counted.
    pub remaining: u64,
    /// Until the window resets, from when the answer came.
    pub reset_after: Duration,
    /// The window's length, when the API said it (`RateLimit-Policy: 500;w=120`).
    pub window: Option<Duration>,
}

/// A reset above this many seconds is a Unix time, not a delay: no window lasts 30 years.
const UNIX_TIME_FROM: f64 = 1e9;

/// A reset above this is a Unix time in milliseconds (some APIs send those).
const UNIX_MILLIS_FROM: f64 = 1e12;

/// The longest reset believed: a window said to reset later than this is no window dbprov
/// can pace to (or a misread one), and the answer is taken as announcing nothing.
const LONGEST_RESET: Duration = Duration::from_secs(86_400);

/// The rate limit announced in `headers`, if any; `now` reads a reset given as a Unix time.
/// Headers that contradict themselves (no limit, a negative or absurd count) are ignored.
pub fn parse(headers: &HeaderMap, now: SystemTime) -> Option<Announced> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let policies = text("ratelimit-policy")
        .map(parse_policies)
        .unwrap_or_default();
    let (limit, remaining, reset) = if let Some(remaining) = text("ratelimit-remaining") {
        (
            text("ratelimit-limit").and_then(number),
            number(remaining),
            text("ratelimit-reset").and_then(number),
        )
    } else if let Some(combined) = text("ratelimit") {
        let pairs = pairs(combined);
        let get = |keys: &[&str]| {
            pairs
                .iter()
                .find(|(k, _)| keys.contains(&k.as_str()))
                .and_then(|(_, v)| number(v))
        };
        (
            get(&["limit", "l"]),
            get(&["remaining", "r"]),
            get(&["reset", "t"]),
        )
    } else if let Some(remaining) = text("x-ratelimit-remaining") {
        (
            text("x-ratelimit-limit").and_then(number),
            number(remaining),
            text("x-ratelimit-reset").and_then(number),
        )
    } else {
        return None;
    };
    // Of several policies, the one the limit is (else the first): its window is this one's.
    let policy = policies
        .iter()
        .find(|(quota, _)| limit.is_some() && *quota == limit)
        .or(policies.first())
        .copied()
        .unwrap_or_default();
    let limit = limit.or(policy.0).filter(|l| *l >= 1.0)?;
    // More left than the limit is no window at all: taken as announcing nothing, not as
    // a fresh one on every answer.
    let remaining = remaining.filter(|r| *r >= 0.0 && *r <= limit)?;
    let reset = reset.filter(|r| *r >= 0.0)?;
    let reset_after = if reset >= UNIX_TIME_FROM {
        let seconds = if reset >= UNIX_MILLIS_FROM {
            reset / 1000.0
        } else {
            reset
        };
        let at = UNIX_EPOCH + Duration::from_secs_f64(seconds.min(1e12));
        // A little in the past is a clock apart from ours; long ago, no reset at all.
        match at.duration_since(now) {
            Ok(after) => after,
            Err(past) if past.duration() > LONGEST_RESET => return None,
            Err(_) => Duration::ZERO,
        }
    } else {
        Duration::from_secs_f64(reset.min(2.0 * LONGEST_RESET.as_secs_f64()))
    };
    if reset_after > LONGEST_RESET {
        return None;
    }
    Some(Announced {
        limit: limit as u64,
        remaining: remaining as u64,
        reset_after,
        window: policy
            .1
            .filter(|w| *w > 0.0 && *w <= LONGEST_RESET.as_secs_f64())
            .map(Duration::from_secs_f64),
    })
}

/// A finite number, integer or decimal.
fn number(text: &str) -> Option<f64> {
    text.trim()
        .trim_matches('"')
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
}

/// `key=value` pairs of a structured header, across its items and their parameters.
fn pairs(text: &str) -> Vec<(String, String)> {
    text.split([',', ';'])
        .filter_map(|part| part.split_once('='))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect()
}

/// The policies of `RateLimit-Policy` (`10;w=1, 500;w=120`, or `"day";q=500;w=86400`):
/// each one's limit and window in seconds.
fn parse_policies(text: &str) -> Vec<(Option<f64>, Option<f64>)> {
    text.split(',')
        .map(|policy| {
            let pairs = pairs(policy);
            let get = |key: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| k == key)
                    .and_then(|(_, v)| number(v))
            };
            let leading = policy.split(';').next().and_then(number);
            (leading.or_else(|| get("q")), get("w"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn draft6_headers_with_their_policy() {
        let got = parse(
            &headers(&[
                ("RateLimit-Limit", "500"),
                ("RateLimit-Remaining", "57"),
                ("RateLimit-Reset", "19"),
                ("RateLimit-Policy", "500;w=120"),
            ]),
            SystemTime::now(),
        );
        assert_eq!(
            got,
            Some(Announced {
                limit: 500,
                remaining: 57,
                reset_after: secs(19),
                window: Some(secs(120)),
            })
        );
    }

    #[test]
    fn draft7_and_later_combined_headers() {
        let now = SystemTime::now();
        let draft7 = parse(
            &headers(&[
                ("RateLimit", "limit=100, remaining=0, reset=7"),
                ("RateLimit-Policy", "100;w=10"),
            ]),
            now,
        )
        .unwrap();
        assert_eq!((draft7.limit, draft7.remaining), (100, 0));
        assert_eq!(draft7.reset_after, secs(7));
        assert_eq!(draft7.window, Some(secs(10)));
        let later = parse(
            &headers(&[
                ("RateLimit", "\"default\";r=50;t=30"),
                ("RateLimit-Policy", "\"default\";q=100;w=60"),
            ]),
            now,
        )
        .unwrap();
        assert_eq!((later.limit, later.remaining), (100, 50));
        assert_eq!(later.reset_after, secs(30));
        assert_eq!(later.window, Some(secs(60)));
    }

    #[test]
    fn legacy_headers_with_a_reset_in_seconds_or_as_a_unix_time() {
        let now = UNIX_EPOCH + secs(1_800_000_000);
        let in_seconds = parse(
            &headers(&[
                ("X-RateLimit-Limit", "60"),
                ("X-RateLimit-Remaining", "3"),
                ("X-RateLimit-Reset", "42"),
            ]),
            now,
        )
        .unwrap();
        assert_eq!(in_seconds.reset_after, secs(42));
        assert_eq!(in_seconds.window, None);
        let as_time = parse(
            &headers(&[
                ("X-RateLimit-Limit", "60"),
                ("X-RateLimit-Remaining", "3"),
                ("X-RateLimit-Reset", "1800000030"),
            ]),
            now,
        )
        .unwrap();
        assert_eq!(as_time.reset_after, secs(30));
        let past = parse(
            &headers(&[
                ("X-RateLimit-Limit", "60"),
                ("X-RateLimit-Remaining", "0"),
                ("X-RateLimit-Reset", "1799999990"),
            ]),
            now,
        )
        .unwrap();
        assert_eq!(past.reset_after, Duration::ZERO);
    }

    #[test]
    fn nonsense_is_no_announcement() {
        let now = SystemTime::now();
        assert_eq!(parse(&HeaderMap::new(), now), None);
        for (limit, remaining, reset) in [
            ("0", "0", "1"),
            ("x", "1", "1"),
            ("10", "-1", "1"),
            ("10", "1", "-5"),
            ("10", "1", "NaN"),
            ("10", "1", "soon"),
        ] {
            let got = parse(
                &headers(&[
                    ("RateLimit-Limit", limit),
                    ("RateLimit-Remaining", remaining),
                    ("RateLimit-Reset", reset),
                ]),
                now,
            );
            assert_eq!(got, None, "{limit} {remaining} {reset}");
        }
        // More left than the limit, or a reset given as a Unix time years ago, would read
        // as a fresh window on every answer: no window is known instead, and 429s pace.
        for (remaining, reset) in [("99", "60"), ("9", "1000000000")] {
            let got = parse(
                &headers(&[
                    ("RateLimit-Limit", "10"),
                    ("RateLimit-Remaining", remaining),
                    ("RateLimit-Reset", reset),
                ]),
                now,
            );
            assert_eq!(got, None, "{remaining} {reset}");
        }
        // A window that resets more than a day away is none to pace to.
        let far = parse(
            &headers(&[
                ("RateLimit-Limit", "10"),
                ("RateLimit-Remaining", "9"),
                ("RateLimit-Reset", "99999999"),
            ]),
            now,
        );
        assert_eq!(far, None);
    }

    #[test]
    fn a_reset_in_unix_milliseconds_is_read_as_such() {
        let now = UNIX_EPOCH + secs(1_800_000_000);
        let got = parse(
            &headers(&[
                ("X-RateLimit-Limit", "100"),
                ("X-RateLimit-Remaining", "99"),
                ("X-RateLimit-Reset", "1800000060000"),
            ]),
            now,
        )
        .unwrap();
        assert_eq!(got.reset_after, secs(60));
    }

    #[test]
    fn of_several_policies_the_one_of_the_limit_gives_the_window() {
        let got = parse(
            &headers(&[
                ("RateLimit-Limit", "30"),
                ("RateLimit-Remaining", "29"),
                ("RateLimit-Reset", "9"),
                ("RateLimit-Policy", "10;w=1, 30;w=10"),
            ]),
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!((got.limit, got.window), (30, Some(secs(10))));
    }
}
