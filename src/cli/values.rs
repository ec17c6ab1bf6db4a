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
    let (head, tail) = trimmed
        .split_once(['?', '#'])
        .map_or((trimmed, ""), |(head, _)| (head, &trimmed[head.len()..]));
    let path_end = head.trim_end_matches('/');
    match path_end.strip_suffix("/api/v2") {
        Some(root) if root.contains("://") && !root.ends_with(':') && !root.ends_with('/') => {
            Ok(format!("{root}{tail}"))
        }
        _ => Ok(trimmed.to_owned()),
    }
}

/// `--pushgateway`: an http(s) URL with no query or fragment (the push's path goes after
/// it).
pub(super) fn pushgateway(text: &str) -> Result<String, String> {
    let refused = || {
        "not an http:// or https:// URL without ?query or #fragment (e.g. http://pushgateway:9091)"
            .to_owned()
    };
    let url = reqwest::Url::parse(text.trim()).map_err(|_| refused())?;
    if !matches!(url.scheme(), "http" | "https")
        || !url.has_host()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(refused());
    }
    Ok(text.trim().to_owned())
}

/// `--metrics-job`: a name that goes into a URL's path as it is.
pub(super) fn metrics_job(text: &str) -> Result<String, String> {
    let fits = |c: char| c.is_ascii_alphanumeric() || "_-.:".contains(c);
    if text.is_empty() || !text.chars().all(fits) {
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
