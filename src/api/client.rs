//! One HTTP attempt → a classified outcome. No retries here: that is the job's, under the
//! retry policy of [`super::retry`].

use std::error::Error as _;
use std::time::{Duration, SystemTime};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION, RETRY_AFTER};

use super::announced;
use super::answer::{Answer, NoAnswer, UNEXPECTED_RESPONSE, classify, parse_retry_after};
use super::request::Verb;
use super::text::{clean, clean_code, redact};
use super::transport::{Transport, untrusted};
use super::workspace::WORKSPACE_PATH;
use crate::model::ApiKey;

/// The most of an answer's body that is read: enough for any envelope or error page, and
/// a server that sends a huge or endless body cannot fill the memory.
pub const MAX_BODY: usize = 64 * 1024;

/// The longest a connection may take to be made.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends workspace requests to one API root with one key.
#[derive(Debug, Clone)]
pub struct Client {
    pub(super) http: reqwest::Client,
    /// The workspace endpoint: the API root and [`WORKSPACE_PATH`].
    pub(super) url: String,
    /// Only to strip it from server text that echoes it.
    pub(super) key: ApiKey,
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL is not an http(s) URL (shown without its query or fragment, which
    /// may hold a secret).
    #[error("--base-url '{0}' is not an http:// or https:// URL without ?query or #fragment")]
    BadBaseUrl(String),
    /// The key cannot go into a header.
    #[error(
        "the API key contains characters that cannot be sent in a header: check DATABRAIN_API_KEY or the --api-key-file"
    )]
    BadKey,
    /// reqwest refused the configuration.
    #[error("cannot set up the HTTP client")]
    Http(#[from] reqwest::Error),
}

impl Client {
    /// A client for `base_url` (`https://api.usedatabrain.com`, or a self-hosted root).
    pub fn new(
        base_url: &str,
        key: &ApiKey,
        timeout: Duration,
        concurrency: usize,
        transport: &Transport,
    ) -> Result<Client, ClientError> {
        let base = reqwest::Url::parse(base_url)
            .ok()
            .filter(is_root)
            .ok_or_else(|| ClientError::BadBaseUrl(shown_base_url(base_url)))?;
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
            .map_err(|_| ClientError::BadKey)?;
        // Marked sensitive, the header is redacted from reqwest's and hyper's own logs.
        authorization.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, authorization);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let http = transport
            .apply(reqwest::Client::builder(), &base)
            .default_headers(headers)
            .user_agent(concat!("dbprov/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            // A host that drops packets is unreachable, like one that refuses: said in
            // seconds, so the outage breaker can act, not after the whole --timeout. Always
            // shorter than --timeout, or a connection never made would read as a request
            // whose answer was lost.
            .connect_timeout(CONNECT_TIMEOUT.min(timeout / 2))
            // A redirect is an answer, not a detour: following it would re-send the
            // tenant's data (and the key) to another host, or turn a POST into a GET.
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(concurrency)
            .tcp_nodelay(true)
            .build()?;
        Ok(Client {
            http,
            url: format!("{}{WORKSPACE_PATH}", base.as_str().trim_end_matches('/')),
            key: key.clone(),
        })
    }

    /// Sends one request for the workspace `name` (with a JSON body, or the name in the
    /// query of a `DELETE`) and classifies what came back. A success envelope that names
    /// another workspace is not a success.
    pub async fn send(
        &self,
        verb: Verb,
        body: Option<bytes::Bytes>,
        name: &str,
    ) -> Result<Answer, NoAnswer> {
        let request = match verb {
            Verb::Post => self.http.post(&self.url),
            Verb::Put => self.http.put(&self.url),
            Verb::Delete => self.http.delete(&self.url).query(&[("name", name)]),
        };
        let request = match body {
            Some(body) => request.body(body),
            None => request,
        };
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => return Err(no_answer(e)),
        };
        let status = response.status().as_u16();
        let header = |name| {
            response
                .headers()
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        let retry_after = header(RETRY_AFTER).as_deref().and_then(parse_retry_after);
        let location = header(LOCATION);
        let announced = announced::parse(response.headers(), SystemTime::now());
        let body = self.redacted_body(response).await?;
        let mut answer = classify(verb, status, body.as_bytes(), retry_after);
        answer.announced = announced;
        if (300..400).contains(&status) {
            answer.message = redirected(location.as_deref());
        }
        // A delete's success names no workspace (its `data` has an id and a message).
        if answer.code.is_none() && verb != Verb::Delete && answer.name.as_deref() != Some(name) {
            answer.code = Some(UNEXPECTED_RESPONSE.to_owned());
            answer.message = format!(
                "HTTP {status} names another workspace ({}); the outcome is unknown",
                answer.name.take().unwrap_or_default()
            );
        }
        answer.message = clean(&answer.message, &self.key);
        answer.code = answer.code.map(|code| clean_code(&code, status, &self.key));
        Ok(answer)
    }
}

impl Client {
    /// An answer's body, up to [`MAX_BODY`], without the key. The key goes before anything
    /// is cut from the body, so no part of it survives; a body cut at the limit loses a
    /// key's length more, which may hold the key's start.
    pub(super) async fn redacted_body(
        &self,
        response: reqwest::Response,
    ) -> Result<String, NoAnswer> {
        let mut body = read_body(response, MAX_BODY).await.map_err(no_answer)?;
        if body.len() == MAX_BODY {
            body.truncate(MAX_BODY - self.key.expose().len().min(MAX_BODY));
        }
        Ok(redact(&String::from_utf8_lossy(&body), &self.key))
    }
}

/// Whether `url` can be a root that paths go after: http(s), with a host, and no query or
/// fragment (which would swallow the path appended to it).
pub fn is_root(url: &reqwest::Url) -> bool {
    matches!(url.scheme(), "http" | "https")
        && url.has_host()
        && url.query().is_none()
        && url.fragment().is_none()
}

/// A base URL for a message: what stands before a `?` or `#` (after them may be a key, a
/// token), and `?…` in their place.
pub fn shown_base_url(base_url: &str) -> String {
    match base_url.split_once(['?', '#']) {
        Some((head, _)) => format!("{head}?…"),
        None => base_url.to_owned(),
    }
}

/// The message of a redirect, which is never followed.
pub(super) fn redirected(location: Option<&str>) -> String {
    let to = location.unwrap_or("nowhere (no Location header)");
    format!("redirected to {to}; redirects are not followed")
}

/// The body, up to `limit` bytes: the rest is never read (the connection is closed).
pub async fn read_body(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() == limit {
            break;
        }
    }
    Ok(body)
}

pub(super) fn no_answer(error: reqwest::Error) -> NoAnswer {
    // A request that could not be built went nowhere: said short, without the URL it
    // could not make (which may hold the whole name).
    if error.is_builder() {
        let why = error
            .source()
            .map_or_else(|| "builder error".to_owned(), |e| e.to_string());
        return NoAnswer::Unbuildable(why.chars().take(200).collect());
    }
    if let Some(problem) = untrusted(&error) {
        return NoAnswer::Untrusted(problem);
    }
    // A connection that timed out before it was made sent nothing: not a lost answer.
    if error.is_connect() {
        NoAnswer::ConnectFailed(error_chain(&error))
    } else if error.is_timeout() {
        NoAnswer::Timeout
    } else {
        NoAnswer::Lost(error_chain(&error))
    }
}

/// `error: cause: cause`, so "connection closed before message completed" is not hidden
/// behind "error sending request".
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
