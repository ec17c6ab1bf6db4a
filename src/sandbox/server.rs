//! HTTP plumbing of the sandbox: routes, handlers, and a connection loop that can close a
//! connection without answering (the `--drop-rate` fault).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tower::ServiceExt;

use super::MAX_BODY_BYTES;
use super::store::{Reply, Store, WriteMethod};
use crate::workspace::{ApiError, Envelope, ErrorCode, WORKSPACE_PATH, WorkspaceRequest};

/// State shared by every connection.
pub struct Shared {
    store: Mutex<Store>,
    started: Instant,
}

impl Shared {
    pub fn new(store: Mutex<Store>) -> Shared {
        Shared {
            store,
            started: Instant::now(),
        }
    }

    /// The store. A panic while it was held cannot leave it half-written (every write is
    /// one push or one assignment), so a poisoned lock is taken as is.
    pub fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Closes the connection a request came on, without an answer.
#[derive(Clone)]
struct KillSwitch(Arc<Notify>);

fn router(state: Arc<Shared>) -> Router {
    Router::new()
        .route(WORKSPACE_PATH, post(create).put(update))
        .route("/_sandbox/stats", get(stats))
        .route("/_sandbox/workspaces", get(workspaces))
        .route("/_sandbox/requests", get(requests))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Accepts connections until `shutdown` turns true (or its sender is dropped).
pub async fn accept_loop(
    listener: TcpListener,
    state: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) {
    let app = router(state);
    let mut stop = shutdown.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(serve_connection(stream, app.clone(), shutdown.clone()));
                }
                // Out of file descriptors, say: back off instead of spinning.
                Err(e) => {
                    tracing::warn!("sandbox: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stopped(&mut stop) => return,
        }
    }
}

/// Resolves once the sandbox is told to stop (or its handle is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn serve_connection(stream: TcpStream, app: Router, mut shutdown: watch::Receiver<bool>) {
    // Small request/response pairs: Nagle would add 40 ms stalls.
    let _ = stream.set_nodelay(true);
    let kill = KillSwitch(Arc::new(Notify::new()));
    let service = hyper::service::service_fn({
        let kill = kill.clone();
        move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(kill.clone());
            app.clone().oneshot(request)
        }
    });
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    // Dropping the connection future closes the socket, answered or not.
    tokio::select! {
        _ = connection => {}
        _ = kill.0.notified() => {}
        _ = stopped(&mut shutdown) => {}
    }
}

async fn create(
    State(state): State<Arc<Shared>>,
    Extension(kill): Extension<KillSwitch>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    write(state, WriteMethod::Post, kill, headers, body).await
}

async fn update(
    State(state): State<Arc<Shared>>,
    Extension(kill): Extension<KillSwitch>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    write(state, WriteMethod::Put, kill, headers, body).await
}

/// One write, in the order a real deployment would meet it: the proxy's rate limit, the
/// server's latency, then authentication, faults, validation and the commit, which the
/// store does under one lock.
async fn write(
    state: Arc<Shared>,
    method: WriteMethod,
    kill: KillSwitch,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let at = state.started.elapsed();
    let request = parse(&headers, body);
    let admitted = {
        let mut store = state.lock();
        let admitted = store.admit(at);
        if admitted.is_err() {
            let name = request.as_ref().ok().map(|r| r.name.clone());
            store.record_rate_limited(at, method, name);
        }
        admitted
    };
    let plan = match admitted {
        Ok(plan) => plan,
        Err(retry_after_secs) => {
            let envelope = Envelope::err(
                ErrorCode::TooManyRequests,
                "rate limit exceeded: retry after the time in Retry-After",
            );
            let mut response = envelope_response(429, envelope);
            response
                .headers_mut()
                .insert(RETRY_AFTER, retry_after_secs.into());
            return response;
        }
    };
    if !plan.delay.is_zero() {
        // futures-timer wakes within microseconds; tokio's millisecond wheel would add
        // 1-2 ms to every answer, which a 10 ms latency benchmark would notice.
        futures_timer::Delay::new(plan.delay).await;
    }
    let authorization = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    let reply = state.lock().write(at, method, authorization, request, plan);
    match reply {
        Reply::Respond { status, envelope } => envelope_response(status, envelope),
        Reply::Drop => {
            kill.0.notify_one();
            std::future::pending().await
        }
    }
}

/// The body as a workspace request, or the 4xx answer that explains why it is not one.
fn parse(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<WorkspaceRequest, (u16, Envelope)> {
    let invalid = |status: u16, message: String| {
        let envelope = Envelope::err_with_status(ErrorCode::InvalidRequestBody, status, message);
        (status, envelope)
    };
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => invalid(
            413,
            format!("request body is larger than {MAX_BODY_BYTES} bytes"),
        ),
        _ => invalid(400, rejection.body_text()),
    })?;
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let is_json = content_type
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(invalid(
            400,
            "Content-Type must be application/json".to_owned(),
        ));
    }
    serde_json::from_slice(&body)
        .map_err(|e| invalid(400, format!("request body is not a valid workspace: {e}")))
}

fn envelope_response(status: u16, envelope: Envelope) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(envelope)).into_response()
}

async fn stats(State(state): State<Arc<Shared>>) -> Response {
    Json(state.lock().stats()).into_response()
}

async fn workspaces(State(state): State<Arc<Shared>>) -> Response {
    Json(state.lock().workspaces().to_vec()).into_response()
}

async fn requests(State(state): State<Arc<Shared>>) -> Response {
    Json(state.lock().log().to_vec()).into_response()
}

async fn not_found() -> Response {
    routing_error(
        404,
        "NOT_FOUND",
        format!("no such endpoint; the sandbox serves POST and PUT {WORKSPACE_PATH}"),
    )
}

async fn method_not_allowed() -> Response {
    routing_error(
        405,
        "METHOD_NOT_ALLOWED",
        format!("method not allowed; {WORKSPACE_PATH} takes POST and PUT"),
    )
}

/// An answer for a request that reached no endpoint, in the same envelope.
fn routing_error(status: u16, code: &str, message: String) -> Response {
    let envelope = Envelope {
        data: None,
        error: Some(ApiError {
            code: code.to_owned(),
            message,
            status: Some(status),
        }),
    };
    envelope_response(status, envelope)
}
