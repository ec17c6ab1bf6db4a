//! An HTTP answer, classified: a success, the API's refusal with its code, or something
//! else (a proxy's page, a redirect, a 2xx that is not the success envelope).

use std::time::{Duration, SystemTime};

use super::announced::Announced;
use super::request::Verb;
use super::workspace::{ApiError, Envelope, WorkspaceRef};

/// The code of a 2xx answer whose body is not the success envelope: the outcome is unknown.
pub const UNEXPECTED_RESPONSE: &str = "UNEXPECTED_RESPONSE";

/// An attempt that got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoAnswer {
    /// No answer within `--timeout`: the request may or may not have been applied.
    Timeout,
    /// No connection could be made: the request was not sent.
    ConnectFailed(String),
    /// The connection broke after the request went out: it may have been applied.
    Lost(String),
    /// The request could not be built (a name too long for a URL): nothing was sent.
    Unbuildable(String),
    /// The API's TLS certificate is not trusted (its problem, in words): nothing was sent,
    /// and no retry mends it.
    Untrusted(String),
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

/// The code with which the API refuses a key that is missing or not a valid token (400),
/// or unknown, expired or without the scope (401).
pub const AUTHENTICATION_ERROR: &str = "AUTHENTICATION_ERROR";

impl Answer {
    /// Whether the API refused the key: a 401, or a 400 `AUTHENTICATION_ERROR` (its answer
    /// to a key that is not a valid token). Every further request would be refused too.
    pub fn refuses_key(&self) -> bool {
        self.status == 401
            || (self.status == 400
                && self
                    .code
                    .as_deref()
                    .is_some_and(|code| code.eq_ignore_ascii_case(AUTHENTICATION_ERROR)))
    }

    /// `401`, or `400 AUTHENTICATION_ERROR`: for messages.
    pub fn status_and_code(&self) -> String {
        match &self.code {
            Some(code) if self.status != 401 => format!("{} {code}", self.status),
            _ => self.status.to_string(),
        }
    }
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
    error: Option<ApiError>,
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

/// Whether a refusal of a `DELETE` says the workspace does not exist. The vendor
/// documents `WORKSPACE_DOES_NOT_EXIST` for a `PUT`; a delete's code is not visible to us,
/// so a code that says `NOT_EXIST` (or a workspace `NOT_FOUND`) counts, and so does a 400
/// in the API's envelope whose message says a workspace does not exist. Nothing else
/// does: a wrong `--base-url` or a proxy answers 404 (or a 400 "upstream not found") for
/// a path it does not know, and taking that for "already gone" would report workspaces
/// deleted while none was.
pub fn says_absent(answer: &Answer) -> bool {
    let Some(code) = &answer.code else {
        return false;
    };
    let from_the_api = !code.starts_with("HTTP_");
    let code = code.to_ascii_uppercase();
    let message = answer.message.to_ascii_lowercase();
    let said_by_code =
        code.contains("NOT_EXIST") || (code.contains("WORKSPACE") && code.contains("NOT_FOUND"));
    let said_by_message = answer.status == 400
        && message.contains("workspace")
        && [
            "does not exist",
            "doesn't exist",
            "not found",
            "no workspace",
        ]
        .iter()
        .any(|words| message.contains(words));
    from_the_api && matches!(answer.status, 400 | 404) && (said_by_code || said_by_message)
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

    #[test]
    fn absence_is_read_from_the_code_or_the_message() {
        let absent = |status, body: &str| {
            says_absent(&classify(Verb::Delete, status, body.as_bytes(), None))
        };
        assert!(absent(
            400,
            r#"{"data":null,"error":{"code":"WORKSPACE_DOES_NOT_EXIST","message":"x"}}"#
        ));
        assert!(absent(
            400,
            r#"{"data":null,"error":{"code":"INVALID_REQUEST_BODY","message":"Workspace not found"}}"#
        ));
        // A proxy's words, in its page or in an envelope of its own.
        assert!(!absent(400, "400 Bad Request: upstream not found"));
        assert!(!absent(
            400,
            r#"{"error":{"code":"BAD_REQUEST","message":"route not found"}}"#
        ));
        assert!(
            !absent(404, "Not Found"),
            "a proxy's 404 for a path it does not know"
        );
        assert!(!absent(
            404,
            r#"{"data":null,"error":{"code":"NOT_FOUND","message":"no such endpoint"}}"#
        ));
        assert!(absent(
            404,
            r#"{"data":null,"error":{"code":"WORKSPACE_NOT_FOUND","message":"x"}}"#
        ));
        assert!(!absent(
            400,
            r#"{"data":null,"error":{"code":"INVALID_REQUEST_BODY","message":"name is required"}}"#
        ));
        assert!(!absent(500, "not found"));
    }
}
