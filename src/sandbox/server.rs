//! HTTP plumbing of the sandbox: routes, handlers, the rate-limit headers, and a
//! connection loop that can close a connection without answering (the `--drop-rate`
//! fault) or close everything at once (an outage).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
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

use super::config::{FaultConfig, MAX_BODY_BYTES};
use super::limit::RateLimitHeaders;
use super::query::{Params, listing, name_to_delete, params_of, parse};
use super::replies::{Admission, Operation, Reply, Success};
use super::store::Store;
use crate::api::workspace::{ApiError, Envelope, ErrorCode, WORKSPACE_PATH};

/// State shared by every connection, kept across an outage.
pub struct Shared {
    store: Mutex<Store>,
    started: Instant,
    /// Which rate-limit headers answers carry.
    flavour: RateLimitHeaders,
    /// Whether a 429 carries `Retry-After`.
    retry_after: bool,
}

impl Shared {
    /// The state of a sandbox starting now; `faults` says how its answers describe the
    /// rate limit.
    pub fn new(store: Store, faults: &FaultConfig) -> Shared {
        Shared {
            store: Mutex::new(store),
            started: Instant::now(),
            flavour: faults.rate_limit_headers,
            retry_after: faults.retry_after,
        }
    }

    /// The store. A panic while it was held cannot leave it half-written (every write is
    /// one push or one assignment), so a poisoned lock is taken as is.
    pub fn lock(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }
}

/// Closes the connection a request came on, without an answer.
#[derive(Clone)]
struct KillSwitch(Arc<Notify>);

/// The address of the connection's other end.
#[derive(Clone, Copy)]
struct Peer(IpAddr);

/// When and from whom a request arrived: what the rate limit counts it with.
struct Arrival {
    /// Since the sandbox started.
    at: Duration,
    /// The wall clock, for a reset given as a Unix time.
    wall: SystemTime,
    /// The client the request is counted against.
    client: String,
}

impl Arrival {
    fn now(state: &Shared, headers: &HeaderMap, peer: Peer) -> Arrival {
        Arrival {
            at: state.started.elapsed(),
            wall: SystemTime::now(),
            client: client(headers, peer.0),
        }
    }
}

fn router(state: Arc<Shared>) -> Router {
    Router::new()
        .route(
            WORKSPACE_PATH,
            post(create)
                .put(update)
                .get(list)
                .delete(delete)
                .fallback(other_method),
        )
        .route("/_sandbox/stats", get(stats))
        .route("/_sandbox/workspaces", get(workspaces))
        .route("/_sandbox/requests", get(requests))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// The listening socket, shared so that [`Serving::stop`] can close it at once.
type Listener = Arc<Mutex<Option<TcpListener>>>;

/// One spell of serving: a listening socket, its accept loop and its connections.
pub struct Serving {
    listener: Listener,
    stop: watch::Sender<bool>,
}

impl Serving {
    /// Serves `state` on `listener` in the current tokio runtime until stopped.
    pub fn start(listener: TcpListener, state: Arc<Shared>) -> Serving {
        let listener = Arc::new(Mutex::new(Some(listener)));
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(accept_loop(listener.clone(), state, stopped));
        Serving { listener, stop }
    }

    /// Closes the listening socket and every connection of this spell.
    pub fn stop(self) {
        // Closed here rather than when the accept loop next runs: a connection attempted
        // right after must be refused, not queued on a socket about to close.
        drop(lock(&self.listener).take());
        self.stop.send_replace(true);
    }
}

/// A lock whose holder cannot panic halfway through a change, so poisoning is ignored.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Accepts connections until `stop` turns true (or its sender is dropped) or the
/// listener is closed.
async fn accept_loop(listener: Listener, state: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let app = router(state);
    loop {
        tokio::select! {
            accepted = accept(&listener) => match accepted {
                Some(Ok((stream, peer))) => {
                    tokio::spawn(serve_connection(stream, peer, app.clone(), stop.clone()));
                }
                // Out of file descriptors, say: back off instead of spinning.
                Some(Err(e)) => {
                    tracing::warn!("sandbox: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                None => return,
            },
            _ = stopped(&mut stop) => return,
        }
    }
}

/// The next connection, or `None` once the listener has been closed.
async fn accept(listener: &Listener) -> Option<std::io::Result<(TcpStream, SocketAddr)>> {
    // The lock is held only while polling, never across an await.
    std::future::poll_fn(|cx| match lock(listener).as_ref() {
        Some(listener) => listener.poll_accept(cx).map(Some),
        None => Poll::Ready(None),
    })
    .await
}

/// Resolves once the sandbox is told to stop (or its handle is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    // Small request/response pairs: Nagle would add 40 ms stalls.
    let _ = stream.set_nodelay(true);
    let kill = KillSwitch(Arc::new(Notify::new()));
    // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d; name them as IPv4.
    let peer = Peer(peer.ip().to_canonical());
    let service = hyper::service::service_fn({
        let kill = kill.clone();
        move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(kill.clone());
            request.extensions_mut().insert(peer);
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
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let operation = Operation::Create(parse(&headers, body));
    serve(state, operation, kill, peer, headers).await
}

async fn update(
    State(state): State<Arc<Shared>>,
    Extension(kill): Extension<KillSwitch>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let operation = Operation::Update(parse(&headers, body));
    serve(state, operation, kill, peer, headers).await
}

async fn list(
    State(state): State<Arc<Shared>>,
    Extension(kill): Extension<KillSwitch>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    params: Params,
) -> Response {
    let operation = Operation::List(params_of(params).and_then(|p| listing(&p)));
    serve(state, operation, kill, peer, headers).await
}

async fn delete(
    State(state): State<Arc<Shared>>,
    Extension(kill): Extension<KillSwitch>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    params: Params,
) -> Response {
    let operation = Operation::Delete(params_of(params).and_then(|p| name_to_delete(&p)));
    serve(state, operation, kill, peer, headers).await
}

/// One request the workspace path serves, in the order a real deployment would meet it:
/// the proxy's rate limit, the server's latency, then authentication, faults, validation
/// and the work, which the store does under one lock. Whatever the answer, it describes
/// the client's window as the request found it.
async fn serve(
    state: Arc<Shared>,
    operation: Operation,
    kill: KillSwitch,
    peer: Peer,
    headers: HeaderMap,
) -> Response {
    let arrival = Arrival::now(&state, &headers, peer);
    let admission = {
        let mut store = state.lock();
        let admission = store.admit(arrival.at, &arrival.client);
        if admission.plan.is_none() {
            let (method, name) = (operation.method(), operation.name());
            store.record_rate_limited(arrival.at, Some(method), name, &arrival.client);
        }
        admission
    };
    let Some(plan) = admission.plan else {
        return state.describe_limit(state.too_many_requests(), &admission, &arrival);
    };
    if !plan.delay.is_zero() {
        // futures-timer wakes within microseconds; tokio's millisecond wheel would add
        // 1-2 ms to every answer, which a 10 ms latency benchmark would notice.
        futures_timer::Delay::new(plan.delay).await;
    }
    let authorization = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    let (at, client) = (arrival.at, arrival.client.as_str());
    let reply = state
        .lock()
        .handle(at, client, authorization, operation, plan);
    let response = match reply {
        Reply::Respond { status, envelope } => envelope_response(status, envelope),
        Reply::Listed(body) => ([(CONTENT_TYPE, "application/json")], body).into_response(),
        Reply::Deleted(deleted) => Json(Success::new(deleted)).into_response(),
        Reply::Drop => {
            kill.0.notify_one();
            return std::future::pending().await;
        }
    };
    state.describe_limit(response, &admission, &arrival)
}

/// Any other method on the workspace path: 405, but counted against the client's window
/// first, as the vendor counts every request.
async fn other_method(
    State(state): State<Arc<Shared>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
) -> Response {
    let arrival = Arrival::now(&state, &headers, peer);
    let admission = {
        let mut store = state.lock();
        let admission = store.admit(arrival.at, &arrival.client);
        if admission.plan.is_none() {
            store.record_rate_limited(arrival.at, None, None, &arrival.client);
        } else {
            store.record_status(405);
        }
        admission
    };
    let response = match admission.plan {
        Some(_) => method_not_allowed().await,
        None => state.too_many_requests(),
    };
    state.describe_limit(response, &admission, &arrival)
}

impl Shared {
    /// The answer over the limit.
    fn too_many_requests(&self) -> Response {
        let message = if self.retry_after {
            "rate limit exceeded: retry after the time in Retry-After"
        } else {
            "rate limit exceeded"
        };
        envelope_response(429, Envelope::err(ErrorCode::TooManyRequests, message))
    }

    /// Adds the rate-limit headers of the client's window to an answer, and to a refusal
    /// `Retry-After`: the seconds to the window's end.
    fn describe_limit(
        &self,
        mut response: Response,
        admission: &Admission,
        arrival: &Arrival,
    ) -> Response {
        let Some(window) = admission.window else {
            return response;
        };
        let headers = response.headers_mut();
        for (name, value) in window.headers(self.flavour, arrival.wall) {
            insert(headers, HeaderName::from_static(name), value);
        }
        if admission.plan.is_none() && self.retry_after {
            insert(headers, RETRY_AFTER, window.reset_secs().to_string());
        }
        response
    }
}

fn insert(headers: &mut HeaderMap, name: HeaderName, value: String) {
    // Every value is digits, commas, spaces and letters: always a valid header value.
    if let Ok(value) = HeaderValue::try_from(value) {
        headers.insert(name, value);
    }
}

/// The client a request is counted against, in the vendor's order: `X-Client-IP`, else
/// the first address of `X-Forwarded-For`, else the connection's peer.
fn client(headers: &HeaderMap, peer: IpAddr) -> String {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    header("x-client-ip")
        .and_then(non_blank)
        .or_else(|| header("x-forwarded-for").and_then(|v| non_blank(v.split(',').next()?)))
        .map_or_else(|| peer.to_string(), str::to_owned)
}

fn non_blank(value: &str) -> Option<&str> {
    let value = value.trim();
    (!value.is_empty()).then_some(value)
}

fn envelope_response(status: u16, envelope: Envelope) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(envelope)).into_response()
}

async fn stats(State(state): State<Arc<Shared>>) -> Response {
    Json(state.lock().stats()).into_response()
}

async fn workspaces(State(state): State<Arc<Shared>>) -> Response {
    let store = state.lock();
    // Serialised under the lock, from references: no copy of a million bodies.
    Json(store.workspaces().collect::<Vec<_>>()).into_response()
}

async fn requests(State(state): State<Arc<Shared>>) -> Response {
    Json(state.lock().log().to_vec()).into_response()
}

async fn not_found() -> Response {
    routing_error(
        404,
        "NOT_FOUND",
        format!("no such endpoint; the sandbox serves POST, PUT, GET and DELETE {WORKSPACE_PATH}"),
    )
}

async fn method_not_allowed() -> Response {
    routing_error(
        405,
        "METHOD_NOT_ALLOWED",
        format!("method not allowed; {WORKSPACE_PATH} takes POST, PUT, GET and DELETE"),
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
