//! A hostile API for the lifecycle's edges: it holds workspaces, lists only what it wants to,
//! and answers each request as its script says (late, refused, paged when not asked to).

#![allow(dead_code)]

use std::collections::BTreeMap;

use crate::common::{JobDir, job_args_to};

/// A hostile API: it holds `existing`, lists only what it wants to, and answers each
/// request as its script says. Every request is logged as (method, name).
pub struct Hostile {
    pub url: String,
    pub state: std::sync::Arc<HostileState>,
}

#[derive(Default)]
pub struct HostileState {
    pub existing: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// The list pages itself whatever it is asked: ten names a page.
    pub pages_only: bool,
    /// Names the list never shows (it is scoped narrower than uniqueness).
    pub unlisted: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// What a POST of a name that exists is told (else "taken").
    pub taken_saying: Option<&'static str>,
    /// A list answered 502 with a long page that ends by echoing this (the key).
    pub list_502_echoing: Option<String>,
    /// The next POST of each of these names is answered too late, and does nothing.
    pub slow_next_post: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// POSTs of these names are refused, 400 INVALID_DATASOURCE_NAME.
    pub refused: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// The first PUT of a name is applied, then answered too late (a lost answer).
    pub slow_first_put: bool,
    /// The first POST of a name is applied, then answered 500 with this message.
    pub post_500_saying: Option<&'static str>,
    /// The second page of the list is answered 429, `Retry-After: 1`.
    pub page_two_429: bool,
    pub log: std::sync::Mutex<Vec<(String, String)>>,
}

impl Hostile {
    pub async fn start(state: HostileState) -> Hostile {
        use axum::extract::{Query, State};
        use axum::http::Method;
        let state = std::sync::Arc::new(state);
        let app = axum::Router::new()
            .fallback(
                |State(state): State<std::sync::Arc<HostileState>>,
                 method: Method,
                 Query(query): Query<BTreeMap<String, String>>,
                 body: axum::body::Bytes| async move {
                    state.answer(method, query, &body).await
                },
            )
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Hostile { url, state }
    }

    pub fn log(&self) -> Vec<(String, String)> {
        self.state.log.lock().unwrap().clone()
    }
}

impl HostileState {
    async fn answer(
        &self,
        method: axum::http::Method,
        query: BTreeMap<String, String>,
        body: &[u8],
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        let json = |status: u16, value: serde_json::Value| {
            (
                axum::http::StatusCode::from_u16(status).unwrap(),
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                value.to_string(),
            )
                .into_response()
        };
        let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let name = request["name"].as_str().unwrap_or_default().to_owned();
        let earlier = {
            let mut log = self.log.lock().unwrap();
            let earlier = log
                .iter()
                .filter(|(m, n)| *m == method.as_str() && *n == name)
                .count();
            log.push((method.to_string(), name.clone()));
            earlier
        };
        match method.as_str() {
            "GET" if self.page_two_429 && query.get("pageNumber").is_some_and(|p| p == "2") => {
                let mut answer = json(
                    429,
                    serde_json::json!({"data": null, "error": {"code": "TOO_MANY_REQUESTS", "message": "slow down"}}),
                );
                answer
                    .headers_mut()
                    .insert("retry-after", axum::http::HeaderValue::from_static("1"));
                answer
            }
            "GET" if self.list_502_echoing.is_some() => {
                let page = format!(
                    "<html><body>Bad gateway {} Authorization: Bearer {}</body></html>",
                    "x".repeat(118),
                    self.list_502_echoing.as_deref().unwrap_or_default()
                );
                (axum::http::StatusCode::BAD_GATEWAY, page).into_response()
            }
            "GET" => {
                let listed: Vec<String> = self
                    .existing
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|n| !self.unlisted.lock().unwrap().contains(*n))
                    .cloned()
                    .collect();
                let paged =
                    self.pages_only || query.get("isPagination").is_some_and(|p| p == "true");
                let listed: Vec<String> = if paged {
                    let page: usize = query
                        .get("pageNumber")
                        .and_then(|p| p.parse().ok())
                        .unwrap_or(1);
                    listed.into_iter().skip((page - 1) * 10).take(10).collect()
                } else {
                    listed
                };
                let data: Vec<_> = listed
                    .iter()
                    .map(|n| serde_json::json!({"name": n}))
                    .collect();
                json(200, serde_json::json!({"data": data, "error": null}))
            }
            "POST" => {
                if self.slow_next_post.lock().unwrap().remove(&name) {
                    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                    return json(500, serde_json::json!({"data": null, "error": null}));
                }
                if self.refused.lock().unwrap().contains(&name) {
                    return json(
                        400,
                        serde_json::json!({"data": null, "error": {"code": "INVALID_DATASOURCE_NAME", "message": "no such datasource"}}),
                    );
                }
                if !self.existing.lock().unwrap().insert(name.clone()) {
                    return json(
                        400,
                        serde_json::json!({"data": null, "error": {"code": "WORKSPACE_NAME_ALREADY_EXISTS", "message": self.taken_saying.unwrap_or("taken")}}),
                    );
                }
                if let (Some(message), 0) = (self.post_500_saying, earlier) {
                    return json(
                        500,
                        serde_json::json!({"data": null, "error": {"code": "INTERNAL_SERVER_ERROR", "message": message}}),
                    );
                }
                json(
                    200,
                    serde_json::json!({"data": {"name": name}, "error": null}),
                )
            }
            "PUT" => {
                if !self.existing.lock().unwrap().contains(&name) {
                    return json(
                        400,
                        serde_json::json!({"data": null, "error": {"code": "WORKSPACE_DOES_NOT_EXIST", "message": "no"}}),
                    );
                }
                if self.slow_first_put && earlier == 0 {
                    // Longer than the job's --timeout: applied, and its answer lost.
                    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                }
                json(
                    200,
                    serde_json::json!({"data": {"name": name}, "error": null}),
                )
            }
            "DELETE" => {
                let name = query.get("name").cloned().unwrap_or_default();
                self.log.lock().unwrap().last_mut().unwrap().1 = name.clone();
                if self.existing.lock().unwrap().remove(&name) {
                    json(
                        200,
                        serde_json::json!({"data": {"id": name, "message": "Workspace deleted successfully"}, "error": null}),
                    )
                } else {
                    json(
                        400,
                        serde_json::json!({"data": null, "error": {"code": "WORKSPACE_DOES_NOT_EXIST", "message": "no"}}),
                    )
                }
            }
            _ => json(
                405,
                serde_json::json!({"data": null, "error": {"code": "METHOD_NOT_ALLOWED", "message": "no"}}),
            ),
        }
    }
}

pub fn hostile_args(hostile: &Hostile, dir: &JobDir, output: &str) -> Vec<String> {
    let key = dir.private_key("hostile-key-1\n");
    let mut args = job_args_to(&hostile.url, &key, dir, output);
    args.retain(|a| a != "--no-preflight");
    args
}
