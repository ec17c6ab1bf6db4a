//! A small fault server for the answers the sandbox cannot give: a 200 that is not the
//! success envelope, redirects, bodies that never end or are huge, pages that echo the
//! request's headers, and messages with line breaks in them.
//!
//! It answers every `POST` / `PUT /api/v2/workspace` with one canned answer, a `GET` of the
//! same path (a list call) with an empty list, and anything else with 404; it counts every
//! request by method and path.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::body::Frame;

use crate::common::JobDir;

/// The path every write goes to.
pub const WORKSPACE: &str = "/api/v2/workspace";

/// What the server answers to a write.
#[derive(Debug, Clone)]
pub enum Canned {
    /// 200 with the success envelope, as the real API answers a create.
    Success,
    /// 200 with a success envelope that names another workspace.
    SuccessFor(String),
    /// 200 with an HTML page (a web front-end, a captive portal).
    HtmlOk,
    /// 200 with an error envelope.
    ErrorEnvelopeOk,
    /// A redirect with this status to `location`.
    Redirect { status: u16, location: String },
    /// 500 whose body never ends: 256 KiB at once, then 1 KiB every 5 ms for ever.
    EndlessError,
    /// 500 whose body is this many bytes.
    HugeError(usize),
    /// This status with an HTML page that echoes the request's `Authorization` header.
    EchoAuthorization(u16),
    /// 400 whose envelope's code and message carry `\r\n` and a forged log line.
    ForgedLogLine,
    /// 400 whose envelope's code is the request's `Authorization` header.
    AuthorizationAsCode,
    /// 502 with an HTML page that has the `Authorization` header this many characters in.
    AuthorizationAt(usize),
    /// 502 whose body is `A`, this many spaces, then the `Authorization` header.
    AuthorizationAfterSpaces(usize),
    /// 429 with this `Retry-After`.
    TooManyRequests(String),
    /// 503 with this `Retry-After`.
    Unavailable(String),
    /// 400 `AUTHENTICATION_ERROR` to every request, the list and deletes too: the vendor's
    /// answer to a key that is not a valid token.
    AuthenticationError,
}

/// The forged line that [`Canned::ForgedLogLine`] puts after a line break.
pub const FORGED: &str = "2026-01-01T00:00:00Z  INFO dbprov: forged";

#[derive(Clone)]
struct Shared {
    canned: Canned,
    hits: Arc<Mutex<BTreeMap<(String, String), u64>>>,
}

/// A running fault server on a free loopback port; it stops with the test's runtime.
pub struct FaultServer {
    pub url: String,
    hits: Arc<Mutex<BTreeMap<(String, String), u64>>>,
}

impl FaultServer {
    pub async fn start(canned: Canned) -> FaultServer {
        let hits = Arc::new(Mutex::new(BTreeMap::new()));
        let shared = Shared {
            canned,
            hits: hits.clone(),
        };
        let app = axum::Router::new().fallback(answer).with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        FaultServer { url, hits }
    }

    /// Every request received, whatever its method and path.
    pub fn requests(&self) -> u64 {
        self.hits.lock().unwrap().values().sum()
    }

    /// Requests received on `path`, whatever their method.
    pub fn requests_to(&self, path: &str) -> u64 {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|((_, p), _)| p == path)
            .map(|(_, n)| n)
            .sum()
    }

    /// `POST` and `PUT` requests on the workspace path: the writes.
    pub fn writes(&self) -> u64 {
        let hits = self.hits.lock().unwrap();
        ["POST", "PUT"]
            .iter()
            .map(|m| {
                hits.get(&(m.to_string(), WORKSPACE.to_owned()))
                    .copied()
                    .unwrap_or(0)
            })
            .sum()
    }
}

async fn answer(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    *shared
        .hits
        .lock()
        .unwrap()
        .entry((method.to_string(), uri.path().to_owned()))
        .or_default() += 1;
    if uri.path() != WORKSPACE {
        return envelope(StatusCode::NOT_FOUND, "NOT_FOUND", "no such path");
    }
    if let Canned::AuthenticationError = shared.canned {
        // Every method, the list too; the message reads like a delete's "not found".
        return envelope(
            StatusCode::BAD_REQUEST,
            "AUTHENTICATION_ERROR",
            "Workspace not found for this API key",
        );
    }
    if method == Method::GET {
        return json(StatusCode::OK, r#"{"data":[],"error":null}"#.to_owned());
    }
    if method != Method::POST && method != Method::PUT {
        return envelope(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", "no");
    }
    match &shared.canned {
        Canned::Success => json(
            StatusCode::OK,
            r#"{"data":{"name":"whatever"},"error":null}"#.to_owned(),
        ),
        Canned::SuccessFor(name) => json(
            StatusCode::OK,
            serde_json::json!({"data": {"name": name}, "error": null}).to_string(),
        ),
        Canned::AuthorizationAsCode => {
            let authorization = authorization(&headers);
            let body = serde_json::json!({
                "data": null,
                "error": {"code": authorization, "message": "refused"},
            });
            json(StatusCode::BAD_REQUEST, body.to_string())
        }
        Canned::AuthorizationAfterSpaces(spaces) => {
            let page = format!("A{}{}", " ".repeat(*spaces), authorization(&headers));
            html(StatusCode::BAD_GATEWAY, page)
        }
        Canned::AuthorizationAt(at) => {
            let page = format!("{}{}</pre>", "x".repeat(*at), authorization(&headers));
            html(StatusCode::BAD_GATEWAY, page)
        }
        Canned::HtmlOk => html(
            StatusCode::OK,
            "<html><body><h1>Welcome</h1><p>Please sign in.</p></body></html>".to_owned(),
        ),
        Canned::ErrorEnvelopeOk => json(
            StatusCode::OK,
            r#"{"data":null,"error":{"code":"INVALID_THEME_NAME","message":"x"}}"#.to_owned(),
        ),
        Canned::Redirect { status, location } => (
            StatusCode::from_u16(*status).unwrap(),
            [(header::LOCATION, location.clone())],
            "",
        )
            .into_response(),
        Canned::EndlessError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/html")],
            Body::new(Filler::endless()),
        )
            .into_response(),
        Canned::HugeError(size) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/html")],
            Body::new(Filler::sized(*size)),
        )
            .into_response(),
        Canned::EchoAuthorization(status) => {
            let mut page = String::from("<html><body><h1>Error</h1><pre>\n");
            for (name, value) in &headers {
                page.push_str(&format!(
                    "{}: {}\n",
                    name,
                    String::from_utf8_lossy(value.as_bytes())
                ));
            }
            page.push_str("</pre></body></html>");
            html(StatusCode::from_u16(*status).unwrap(), page)
        }
        Canned::TooManyRequests(retry_after) => {
            let mut response = envelope(
                StatusCode::TOO_MANY_REQUESTS,
                "TOO_MANY_REQUESTS",
                "slow down",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after.parse().unwrap());
            response
        }
        Canned::Unavailable(retry_after) => {
            let mut response = envelope(StatusCode::SERVICE_UNAVAILABLE, "HTTP_503", "maintenance");
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after.parse().unwrap());
            response
        }
        Canned::AuthenticationError => unreachable!("answered above"),
        Canned::ForgedLogLine => {
            let text = format!("bad\r\n{FORGED}");
            let body = serde_json::json!({
                "data": null,
                "error": {"code": format!("INVALID_REQUEST_BODY\r\n{FORGED}"), "message": text},
            });
            json(StatusCode::BAD_REQUEST, body.to_string())
        }
    }
}

fn authorization(headers: &HeaderMap) -> String {
    headers
        .get(header::AUTHORIZATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default()
}

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn html(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html")], body).into_response()
}

fn envelope(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"data": null, "error": {"code": code, "message": message}});
    json(status, body.to_string())
}

/// A body of `x`s, endless or of a given size, produced as it is read (never in memory).
struct Filler {
    /// Bytes still to send; `None` for ever.
    left: Option<usize>,
    /// Bytes sent so far.
    sent: usize,
    /// The pause before the next chunk of an endless body, once past its first 256 KiB.
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

const CHUNK: usize = 64 * 1024;

static XS: [u8; CHUNK] = [b'x'; CHUNK];

impl Filler {
    fn endless() -> Filler {
        Filler {
            left: None,
            sent: 0,
            pause: None,
        }
    }

    fn sized(size: usize) -> Filler {
        Filler {
            left: Some(size),
            sent: 0,
            pause: None,
        }
    }
}

impl hyper::body::Body for Filler {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let size = match this.left {
            Some(0) => return Poll::Ready(None),
            Some(left) => left.min(CHUNK),
            None if this.sent < 256 * 1024 => CHUNK,
            None => {
                // Past the first 256 KiB an endless body trickles, so that a client that
                // reads it all grows slowly (and only until its timeout), not by GB/s.
                let pause = this
                    .pause
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(Duration::from_millis(5))));
                if pause.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.pause = None;
                1024
            }
        };
        if let Some(left) = &mut this.left {
            *left -= size;
        }
        this.sent += size;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&XS[..size])))))
    }
}

/// A key file for a fault server, readable by its owner only. The key is one that no
/// message contains by chance (a one-letter key would be redacted from every word).
pub fn fault_key(dir: &JobDir) -> String {
    let key = dir.write("key", "fault-server-key-3a9c\n");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    key
}
