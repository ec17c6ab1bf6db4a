//! The values of the command line that clap cannot check by type alone.

use std::time::Duration;

/// The most requests in flight that `--concurrency` takes.
pub const MAX_CONCURRENCY: usize = 4096;

/// `--concurrency`: 1 to [`MAX_CONCURRENCY`].
pub(super) fn concurrency(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n @ 1..=MAX_CONCURRENCY) => Ok(n),
        _ => Err(format!(
            "'{text}' is not a number of requests from 1 to {MAX_CONCURRENCY}"
        )),
    }
}

/// `--base-url`: the API's root. The vendor's pages write every endpoint as
/// `<root>/api/v2/...`, so a root copied with its `/api/v2` would send to
/// `/api/v2/api/v2/workspace`: that part is dropped.
pub(super) fn api_root(text: &str) -> Result<String, String> {
    let trimmed = text.trim();
    // A query or a fragment is refused as it was typed, by the client.
    if trimmed.contains(['?', '#']) {
        return Ok(trimmed.to_owned());
    }
    let path_end = trimmed.trim_end_matches('/');
    let cut = path_end.len().saturating_sub("/api/v2".len());
    match path_end.get(cut..) {
        Some(suffix) if suffix.eq_ignore_ascii_case("/api/v2") => {
            let root = &path_end[..cut];
            let has_host = root
                .split_once("://")
                .is_some_and(|(_, rest)| !rest.is_empty() && !rest.ends_with('/'));
            Ok(if has_host { root } else { trimmed }.to_owned())
        }
        _ => Ok(trimmed.to_owned()),
    }
}

/// `--metrics-job`: a name that goes into a URL's path as it is.
pub(super) fn metrics_job(text: &str) -> Result<String, String> {
    let fits = |c: char| c.is_ascii_alphanumeric() || "_-.:".contains(c);
    if text.chars().all(|c| c == '.') || !text.chars().all(fits) {
        return Err("give letters, digits, and _ - . : only (e.g. dbprov-nightly)".to_owned());
    }
    Ok(text.to_owned())
}

/// A duration above zero (`250ms`, `10s`).
pub(super) fn above_zero(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(duration) if duration.is_zero() => Err("must be above 0".to_owned()),
        Ok(duration) => Ok(duration),
        Err(error) => Err(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trailing_api_v2_is_dropped_from_the_root_and_nothing_else() {
        for (given, root) in [
            ("https://h/api/v2", "https://h"),
            ("https://h/api/v2/", "https://h"),
            ("https://h/API/V2", "https://h"),
            (
                " https://h:8443/databrain/api/v2 ",
                "https://h:8443/databrain",
            ),
            ("https://h/api/v2/api/v2", "https://h/api/v2"),
            ("https://h", "https://h"),
            ("https://h/api/v20", "https://h/api/v20"),
            ("https:///api/v2", "https:///api/v2"),
            // Refused as typed, by the client: never quoted back changed.
            ("https://h/api/v2?x=1", "https://h/api/v2?x=1"),
            ("https://h/api/v2#f", "https://h/api/v2#f"),
        ] {
            assert_eq!(api_root(given).unwrap(), root, "{given}");
        }
    }

    #[test]
    fn a_metrics_job_is_a_name_that_fits_a_path() {
        assert!(metrics_job("dbprov-nightly_1.2:x").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "é"] {
            assert!(metrics_job(bad).is_err(), "{bad:?}");
        }
    }
}
