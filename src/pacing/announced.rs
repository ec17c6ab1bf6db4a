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

/// The longest reset believed; a later one is taken as a day.
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
    let policy = text("ratelimit-policy")
        .map(parse_policy)
        .unwrap_or_default();
    let (limit, remaining, reset) = if let Some(remaining) = text("ratelimit-remaining") {
        (
            text("ratelimit-limit").and_then(number).or(policy.0),
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
            get(&["limit", "l"]).or(policy.0),
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
    let limit = limit.filter(|l| *l >= 1.0)?;
    let remaining = remaining.filter(|r| *r >= 0.0)?.min(limit);
    let reset = reset.filter(|r| *r >= 0.0)?;
    let reset_after = if reset >= UNIX_TIME_FROM {
        let at = UNIX_EPOCH + Duration::from_secs_f64(reset.min(1e12));
        at.duration_since(now).unwrap_or_default()
    } else {
        Duration::from_secs_f64(reset.min(LONGEST_RESET.as_secs_f64()))
    };
    Some(Announced {
        limit: limit as u64,
        remaining: remaining as u64,
        reset_after: reset_after.min(LONGEST_RESET),
        window: policy
            .1
            .filter(|w| *w > 0.0)
            .map(|w| Duration::from_secs_f64(w.min(LONGEST_RESET.as_secs_f64()))),
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

/// The first policy of `RateLimit-Policy`: its limit (`500;w=120`, or `q=500`) and its
/// window in seconds.
fn parse_policy(text: &str) -> (Option<f64>, Option<f64>) {
    let first = text.split(',').next().unwrap_or("");
    let pairs = pairs(first);
    let get = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| number(v))
    };
    let leading = first.split(';').next().and_then(number);
    (leading.or_else(|| get("q")), get("w"))
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
        let clamped = parse(
            &headers(&[
                ("RateLimit-Limit", "10"),
                ("RateLimit-Remaining", "99"),
                ("RateLimit-Reset", "99999999"),
            ]),
            now,
        )
        .unwrap();
        assert_eq!(clamped.remaining, 10);
        assert_eq!(clamped.reset_after, LONGEST_RESET);
    }
}
