//! One HTTP attempt → a classified outcome. No retries here: that is `retry` and `job`.

use std::time::{Duration, SystemTime};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION, RETRY_AFTER};

use crate::pacing::{Announced, announced};
use crate::preflight::Listing;
use crate::settings::ApiKey;
use crate::workspace::{Envelope, WORKSPACE_PATH, WorkspaceRef};

/// The most of an answer's body that is read: enough for any envelope or error page, and
/// a server that sends a huge or endless body cannot fill the memory.
pub const MAX_BODY: usize = 64 * 1024;

/// The longest a connection may take to be made.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The code of a 2xx answer whose body is not the success envelope: the outcome is unknown.
pub const UNEXPECTED_RESPONSE: &str = "UNEXPECTED_RESPONSE";

/// `POST` creates, `PUT` updates, `DELETE` deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// Create.
    Post,
    /// Update (`update`, `--on-exists update`).
    Put,
    /// Delete by name (`delete`, `rollback`).
    Delete,
}

/// An attempt that got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoAnswer {
    /// No answer within `--timeout`: the request may or may not have been applied.
    Timeout,
    /// No connection could be made: the request was not sent.
    ConnectFailed(String),
    /// The connection broke after the request went out: it may have been applied.
    Lost(String),
}

/// An HTTP answer, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The envelope's error code, or `HTTP_<status>` when an error body has none.
    /// `None` on success.
    pub code: Option<String>,
    /// The envelope's message, or the start of a non-JSON body.
    pub message: String,
    /// The server's `Retry-After`, if any.
    pub retry_after: Option<Duration>,
    /// The workspace a success envelope names.
    pub name: Option<String>,
    /// The rate limit the answer's headers announce, if they do.
    pub announced: Option<Announced>,
}

/// Sends workspace requests to one API root with one key.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    url: String,
    /// Only to strip it from server text that echoes it.
    key: ApiKey,
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL is not an http(s) URL.
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
    ) -> Result<Client, ClientError> {
        let base = reqwest::Url::parse(base_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            // The API's path is appended to the root: a query or fragment would swallow it.
            .filter(|u| u.query().is_none() && u.fragment().is_none())
            .ok_or_else(|| ClientError::BadBaseUrl(base_url.to_owned()))?;
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
            .map_err(|_| ClientError::BadKey)?;
        // Marked sensitive, the header is redacted from reqwest's and hyper's own logs.
        authorization.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, authorization);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let http = reqwest::Client::builder()
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

/// The most of a list's body that is read (some 5 million names): only the names are
/// kept, but an endless answer (or one name of a gigabyte) must end.
pub const MAX_LIST_BODY: usize = 256 * 1024 * 1024;

/// What a list of every workspace came back as.
#[derive(Debug)]
pub enum Listed {
    /// The names, and the answer's status and headers (for the pacer).
    Names(Listing, Answer),
    /// Any other answer: an error, or a 2xx whose body is not the list.
    Refused(Answer),
}

impl Client {
    /// Lists every workspace in one answer (`isPagination=false`), or only the page `page`
    /// of ten, within `timeout`.
    pub async fn list(&self, page: Option<u32>, timeout: Duration) -> Result<Listed, NoAnswer> {
        let request = match page {
            None => self.http.get(&self.url).query(&[("isPagination", "false")]),
            Some(page) => self
                .http
                .get(&self.url)
                .query(&[("isPagination", "true"), ("pageNumber", &page.to_string())]),
        };
        let response = match request.timeout(timeout).send().await {
            Ok(response) => response,
            Err(e) => return Err(no_answer(e)),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let announced = announced::parse(response.headers(), SystemTime::now());
        let location = response
            .headers()
            .get(LOCATION)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let mut answer = Answer {
            status,
            code: None,
            message: String::new(),
            retry_after,
            name: None,
            announced,
        };
        if !(200..300).contains(&status) {
            let body = self.redacted_body(response).await?;
            let refusal = classify(Verb::Post, status, body.as_bytes(), retry_after);
            answer.code = refusal
                .code
                .map(|code| clean_code(&code, status, &self.key));
            answer.message = if (300..400).contains(&status) {
                redirected(location.as_deref())
            } else {
                refusal.message
            };
            answer.message = clean(&answer.message, &self.key);
            return Ok(Listed::Refused(answer));
        }
        let parsed = match parse_list(response).await {
            Ok(parsed) => parsed,
            Err(e) => return Err(no_answer(e)),
        };
        match parsed {
            Ok(ListEnvelope {
                data: Some(names),
                error: None,
            }) => Ok(Listed::Names(names, answer)),
            Ok(_) => {
                answer.code = Some(UNEXPECTED_RESPONSE.to_owned());
                answer.message = format!("HTTP {status} without a list of workspaces in its body");
                Ok(Listed::Refused(answer))
            }
            Err(why) => {
                answer.code = Some(UNEXPECTED_RESPONSE.to_owned());
                answer.message = clean(
                    &format!("HTTP {status} without a list of workspaces: {why}"),
                    &self.key,
                );
                Ok(Listed::Refused(answer))
            }
        }
    }
}

/// Reads a list's body into the set of names as it arrives, so that memory holds the
/// names and never the whole answer. `Err(why)` inside when it is not a list (or longer
/// than [`MAX_LIST_BODY`]).
async fn parse_list(
    mut response: reqwest::Response,
) -> Result<Result<ListEnvelope, String>, reqwest::Error> {
    let (chunks_tx, chunks_rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(16);
    let parser = tokio::task::spawn_blocking(move || {
        let reader = ChunkReader {
            chunks_rx,
            chunk: bytes::Bytes::new(),
        };
        serde_json::from_reader::<_, ListEnvelope>(reader).map_err(|e| e.to_string())
    });
    let mut read = 0;
    let mut too_long = false;
    while let Some(chunk) = response.chunk().await? {
        read += chunk.len();
        if read > MAX_LIST_BODY {
            too_long = true;
            break;
        }
        if chunks_tx.send(chunk).await.is_err() {
            break; // the parser has its answer (or gave up): the rest is not read
        }
    }
    drop(chunks_tx);
    let parsed = parser.await.expect("parsing a list does not panic");
    if too_long {
        return Ok(Err(format!(
            "the answer is longer than {} MiB",
            MAX_LIST_BODY >> 20
        )));
    }
    Ok(parsed)
}

/// The chunks of a body as they arrive, as a blocking reader (for serde_json).
struct ChunkReader {
    chunks_rx: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    chunk: bytes::Bytes,
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.chunks_rx.blocking_recv() {
                Some(chunk) => self.chunk = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

impl Client {
    /// An answer's body, up to [`MAX_BODY`], without the key. The key goes before anything
    /// is cut from the body, so no part of it survives; a body cut at the limit loses a
    /// key's length more, which may hold the key's start.
    async fn redacted_body(&self, response: reqwest::Response) -> Result<String, NoAnswer> {
        let mut body = read_body(response, MAX_BODY).await.map_err(no_answer)?;
        if body.len() == MAX_BODY {
            body.truncate(MAX_BODY - self.key.expose().len().min(MAX_BODY));
        }
        Ok(redact(&String::from_utf8_lossy(&body), &self.key))
    }
}

/// The message of a redirect, which is never followed.
fn redirected(location: Option<&str>) -> String {
    let to = location.unwrap_or("nowhere (no Location header)");
    format!("redirected to {to}; redirects are not followed")
}

/// A list's answer: `{"data": [{"name": ...}, ...], "error": null}`.
#[derive(serde::Deserialize)]
struct ListEnvelope {
    data: Option<Listing>,
    error: Option<crate::workspace::ApiError>,
}

/// The body, up to [`MAX_BODY`] bytes: the rest is never read (the connection is closed).
async fn read_body(
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

/// Server text made fit for a CSV cell and a log line: one line, no control characters,
/// and never the key, even from a server that echoes the request's headers.
pub fn clean(text: &str, key: &ApiKey) -> String {
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    defang(&redact(&text, key))
}

/// Server text without the words our own notes are read back by (that an earlier
/// attempt may have created the workspace, that the list did not show it...): a server
/// that wrote them into its message would make the next run, or a rollback, believe
/// them. Each becomes the same words joined by `_`, still readable.
fn defang(text: &str) -> String {
    let mut text = text.to_owned();
    for words in crate::record::READ_BACK {
        if text.contains(words) {
            text = text.replace(words, &words.replace(' ', "_"));
        }
    }
    text
}

/// `text` without the key: as it is, or percent-encoded in a URL (hex in either case, a
/// space as `%20` or `+`).
fn redact(text: &str, key: &ApiKey) -> String {
    let key = key.expose();
    if key.is_empty() {
        return text.to_owned();
    }
    let encode = |upper: bool, plus: bool| -> String {
        key.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    char::from(b).to_string()
                }
                b' ' if plus => "+".to_owned(),
                _ if upper => format!("%{b:02X}"),
                _ => format!("%{b:02x}"),
            })
            .collect()
    };
    // Servers print keys in another case too (a UUID in lower case, a header echoed
    // lower-cased): letters match whatever their case.
    // A key too short to be a real one would match inside ordinary words in any case.
    let replace = |text: &str, needle: &str| {
        if key.len() >= 8 {
            replace_any_case(text, needle)
        } else {
            text.replace(needle, "<redacted>")
        }
    };
    let mut text = replace(text, key);
    for (upper, plus) in [(true, false), (false, false), (true, true), (false, true)] {
        text = replace(&text, &encode(upper, plus));
    }
    text
}

/// `text` with every occurrence of `needle`, ASCII letters in any case, made `<redacted>`.
fn replace_any_case(text: &str, needle: &str) -> String {
    if needle.is_empty() {
        return text.to_owned();
    }
    // Lower-casing ASCII keeps every byte where it was, so positions carry over.
    let (lower_text, lower_needle) = (text.to_ascii_lowercase(), needle.to_ascii_lowercase());
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(found) = lower_text[at..].find(&lower_needle) {
        out.push_str(&text[at..at + found]);
        out.push_str("<redacted>");
        at += found + lower_needle.len();
    }
    out.push_str(&text[at..]);
    out
}

/// An error code from a server: letters, digits and `_ - .` only, at most 64 of them;
/// `HTTP_<status>` if nothing is left, or if what is left still shows the key.
fn clean_code(code: &str, status: u16, key: &ApiKey) -> String {
    let code: String = redact(code, key)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .take(64)
        .collect();
    let shows_key = !key.expose().is_empty() && code.contains(key.expose());
    if code.is_empty() || shows_key {
        format!("HTTP_{status}")
    } else {
        code
    }
}

fn no_answer(error: reqwest::Error) -> NoAnswer {
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
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Reads an answer's body. A success is a 2xx with the success envelope and nothing else;
/// a 2xx with any other body is `UNEXPECTED_RESPONSE` (the outcome is unknown). Otherwise
/// the envelope's code and message when there is one, else `HTTP_<status>` and the body's
/// start (an HTML page from a proxy, say). A delete's success envelope carries an object
/// in `data` that need not name the workspace.
pub fn classify(verb: Verb, status: u16, body: &[u8], retry_after: Option<Duration>) -> Answer {
    let envelope = match verb {
        Verb::Post | Verb::Put => serde_json::from_slice::<Envelope>(body).ok(),
        Verb::Delete => serde_json::from_slice::<DeleteEnvelope>(body)
            .ok()
            .map(|envelope| Envelope {
                // `{"id": ..., "message": ...}`: an object that names neither (the create
                // envelope, `{}`) is no deletion.
                data: envelope
                    .data
                    .filter(|data| data.get("id").is_some() || data.get("message").is_some())
                    .map(|_| WorkspaceRef {
                        name: String::new(),
                    }),
                error: envelope.error,
            }),
    };
    let excerpt = || {
        let text = String::from_utf8_lossy(body);
        let excerpt: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        excerpt.chars().take(200).collect::<String>()
    };
    let mut name = None;
    let (code, message) = match envelope {
        _ if (300..400).contains(&status) => (Some(format!("HTTP_{status}")), String::new()),
        Some(Envelope {
            data: Some(data),
            error: None,
        }) if (200..300).contains(&status) => {
            name = Some(data.name);
            (None, String::new())
        }
        Some(Envelope {
            error: Some(error), ..
        }) if (200..300).contains(&status) => (
            Some(UNEXPECTED_RESPONSE.to_owned()),
            format!(
                "HTTP {status} with an error in its body ({}: {}); the outcome is unknown",
                error.code, error.message
            ),
        ),
        _ if (200..300).contains(&status) => (
            Some(UNEXPECTED_RESPONSE.to_owned()),
            format!(
                "HTTP {status} without the success envelope; the outcome is unknown: {}",
                excerpt()
            ),
        ),
        Some(Envelope {
            error: Some(error), ..
        }) => (Some(error.code), error.message),
        _ => (Some(format!("HTTP_{status}")), excerpt()),
    };
    Answer {
        status,
        code,
        message,
        retry_after,
        name,
        announced: None,
    }
}

/// A delete's answer: `data` is `{"id": ..., "message": ...}` on success.
#[derive(serde::Deserialize)]
struct DeleteEnvelope {
    data: Option<serde_json::Value>,
    error: Option<crate::workspace::ApiError>,
}

/// The longest `Retry-After` taken as it is: longer ones are this long, which is beyond
/// any `--max-retry-after` and still a time that can be added to a clock.
const LONGEST_RETRY_AFTER: Duration = Duration::from_secs(365 * 86_400);

/// `Retry-After` as seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            at.duration_since(SystemTime::now()).unwrap_or_default()
        }
    };
    Some(wait.min(LONGEST_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_gives_code_and_message() {
        let body = br#"{"data":null,"error":{"code":"INVALID_THEME_NAME","message":"no such theme","status":400}}"#;
        let answer = classify(Verb::Post, 400, body, None);
        assert_eq!(answer.code.as_deref(), Some("INVALID_THEME_NAME"));
        assert_eq!(answer.message, "no such theme");
    }

    #[test]
    fn a_delete_succeeds_with_any_object_in_data() {
        let ok = br#"{"data":{"id":"a","message":"Workspace deleted successfully"},"error":null}"#;
        assert_eq!(classify(Verb::Delete, 200, ok, None).code, None);
        for body in [
            &b""[..],
            br#"{"data":null,"error":null}"#,
            b"<html>ok</html>",
        ] {
            assert_eq!(
                classify(Verb::Delete, 200, body, None).code.as_deref(),
                Some(UNEXPECTED_RESPONSE),
                "{body:?}"
            );
        }
    }

    #[test]
    fn a_body_that_is_not_json_is_classified_by_status() {
        let answer = classify(
            Verb::Post,
            502,
            b"<html>\n<h1>502 Bad   Gateway</h1></html>",
            None,
        );
        assert_eq!(answer.code.as_deref(), Some("HTTP_502"));
        assert_eq!(answer.message, "<html> <h1>502 Bad Gateway</h1></html>");
        assert_eq!(
            classify(Verb::Post, 503, b"", None).code.as_deref(),
            Some("HTTP_503")
        );
    }

    #[test]
    fn success_is_the_success_envelope_and_nothing_else() {
        assert_eq!(
            classify(
                Verb::Post,
                200,
                br#"{"data":{"name":"a"},"error":null}"#,
                None
            )
            .code,
            None
        );
        for body in [
            &b""[..],
            b"<html>Welcome</html>",
            br#"{"data":null,"error":{"code":"INVALID_THEME_NAME","message":"x"}}"#,
            br#"{"data":{"id":"a"},"error":null}"#,
        ] {
            let answer = classify(Verb::Post, 200, body, None);
            assert_eq!(
                answer.code.as_deref(),
                Some(UNEXPECTED_RESPONSE),
                "{body:?}"
            );
        }
        assert_eq!(
            classify(Verb::Post, 201, b"{}", None).code.as_deref(),
            Some(UNEXPECTED_RESPONSE)
        );
    }

    #[test]
    fn server_text_loses_control_characters_and_the_key() {
        let key = ApiKey::new("canary-key");
        assert_eq!(
            clean("bad\r\n2026 INFO forged Bearer canary-key\t!", &key),
            "bad  2026 INFO forged Bearer <redacted> !"
        );
        assert_eq!(clean_code("BAD\r\nINFO: x", 400, &key), "BADINFOx");
        assert_eq!(clean_code("\r\n", 400, &key), "HTTP_400");
        assert_eq!(clean_code("Bearer canary-key", 400, &key), "Bearerredacted");
        let spaced = ApiKey::new("can ary");
        assert_eq!(clean_code("can ary", 401, &spaced), "redacted");
        assert_eq!(clean("a can%20ary b", &spaced), "a <redacted> b");
        assert_eq!(
            clean("taken (it was not listed before the run)", &key),
            "taken (it_was_not_listed_before_the_run)",
            "a server cannot write our notes"
        );
        let uuid = ApiKey::new("9F3A6C1E-Key");
        assert_eq!(
            clean(
                "authorization: bearer 9f3a6c1e-key; again 9F3A6C1E-KEY",
                &uuid
            ),
            "authorization: bearer <redacted>; again <redacted>"
        );
        let odd = ApiKey::new("dbn+live/KEY 12");
        for encoded in [
            "dbn%2Blive%2FKEY%2012",
            "dbn%2blive%2fKEY%2012",
            "dbn%2blive%2fKEY+12",
        ] {
            assert_eq!(clean(encoded, &odd), "<redacted>", "{encoded}");
        }
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        let later = SystemTime::now() + Duration::from_secs(120);
        let wait = parse_retry_after(&httpdate::fmt_http_date(later)).unwrap();
        assert!(wait > Duration::from_secs(100) && wait <= Duration::from_secs(120));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(
            parse_retry_after("99999999999999999999"),
            None,
            "beyond u64: not a number of seconds"
        );
        assert_eq!(
            parse_retry_after("18446744073709551615"),
            Some(LONGEST_RETRY_AFTER)
        );
    }
}
