//! The list before a run (the preflight): names it shows are not created again, `--on-exists`
//! decides what they become, and a list that fails, refuses the key or pages itself is
//! handled without trusting it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::common::{
    JobDir, ResultRow, args_to, assert_one_row_per_input_row, by_method, datasource_csv, expect,
    log, names, names_sent, read_json, statuses, tally, tenants,
};
use crate::fixture::Job;
use crate::hostile::{Hostile, HostileState, hostile_args};
use crate::process::{Finished, dbprov_with};

/// Ten names the sandbox holds and ten it does not, in one input, with these extra flags.
/// A list of exactly ten names is one page: dbprov asks for the second page too, to be
/// sure the API did not page it, so every run here lists with two GETs.
async fn ten_old_ten_new(extra: &[&str]) -> (Job, Finished, Vec<ResultRow>, Value) {
    let old = names("old", 10);
    let job = Job::holding(&old).await;
    let mut all = old.clone();
    all.extend(names("new", 10));
    let input = job.input(&datasource_csv(&all));
    let mut args = job.args_with_preflight("results.csv");
    let summary_path = job.path("summary.json");
    args.extend(["--summary-json", &summary_path].map(str::to_owned));
    args.extend(extra.iter().map(|s| s.to_string()));
    let run = dbprov_with(&["run", &input], &args).await;
    let rows = job.rows();
    assert_one_row_per_input_row(&rows, 20);
    let summary = read_json(summary_path.as_ref());
    (job, run, rows, summary)
}

#[tokio::test]
async fn preflight_marks_listed_names_exists_without_a_post() {
    let (job, run, rows, summary) = ten_old_ten_new(&[]).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let log = log(&job.api).await;
    assert_eq!(
        by_method(&log),
        BTreeMap::from([("GET".to_owned(), 2), ("POST".to_owned(), 10)]),
        "one list call, then a POST per new name only"
    );
    assert_eq!(log[0]["method"], "GET", "the list comes before any write");
    assert_eq!(
        names_sent(&log, "POST"),
        names("new", 10).into_iter().collect()
    );
    assert_eq!(tally(&rows), expect(&[("created", 10), ("exists", 10)]));
    for row in &rows {
        let expected = if row["name"].starts_with("old-") {
            ("exists", "0")
        } else {
            ("created", "1")
        };
        assert_eq!(
            (row["_status"].as_str(), row["_attempts"].as_str()),
            expected,
            "{row:?}"
        );
    }
    assert_eq!(summary["listed_workspaces"], 10, "{summary}");
}

#[tokio::test]
async fn preflight_with_on_exists_update_puts_listed_names_and_never_posts_them() {
    let (job, run, rows, _) = ten_old_ten_new(&["--on-exists", "update"]).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let log = log(&job.api).await;
    assert_eq!(
        by_method(&log),
        BTreeMap::from([
            ("GET".to_owned(), 2),
            ("POST".to_owned(), 10),
            ("PUT".to_owned(), 10)
        ])
    );
    assert_eq!(
        names_sent(&log, "POST"),
        names("new", 10).into_iter().collect()
    );
    assert_eq!(
        names_sent(&log, "PUT"),
        names("old", 10).into_iter().collect()
    );
    for row in &rows {
        let expected = if row["name"].starts_with("old-") {
            "updated"
        } else {
            "created"
        };
        assert_eq!(row["_status"], expected, "{row:?}");
        assert_eq!(row["_attempts"], "1", "{row:?}");
    }
}

#[tokio::test]
async fn preflight_with_on_exists_fail_fails_listed_names_without_a_request() {
    let (job, run, rows, _) = ten_old_ten_new(&["--on-exists", "fail"]).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let log = log(&job.api).await;
    assert_eq!(
        by_method(&log),
        BTreeMap::from([("GET".to_owned(), 2), ("POST".to_owned(), 10)])
    );
    assert_eq!(
        names_sent(&log, "POST"),
        names("new", 10).into_iter().collect()
    );
    for row in &rows {
        if row["name"].starts_with("old-") {
            assert_eq!(row["_status"], "failed", "{row:?}");
            assert_eq!(
                row["_error_code"], "WORKSPACE_NAME_ALREADY_EXISTS",
                "{row:?}"
            );
            assert_eq!(row["_attempts"], "0", "{row:?}");
        } else {
            assert_eq!(row["_status"], "created", "{row:?}");
        }
    }
}

#[tokio::test]
async fn no_preflight_lists_nothing_and_posts_every_row() {
    let (job, run, rows, summary) = ten_old_ten_new(&["--no-preflight"]).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let log = log(&job.api).await;
    assert_eq!(
        by_method(&log),
        BTreeMap::from([("POST".to_owned(), 20)]),
        "no list call, every row POSTed"
    );
    assert_eq!(tally(&rows), expect(&[("created", 10), ("exists", 10)]));
    assert_eq!(summary["listed_workspaces"], Value::Null, "{summary}");
}

/// What the stub answers to a list call.
#[derive(Clone, Copy, Debug)]
enum ListAnswer {
    /// 500 with an error envelope.
    ServerError,
    /// 200 with a body that is not JSON.
    Garbage,
    /// 401 with the API's envelope.
    Unauthorized,
    /// 400 `AUTHENTICATION_ERROR`: a key that is not a valid token.
    AuthenticationError,
}

/// A stub API: list calls get `ListAnswer`, a POST gets the success envelope naming the
/// body's workspace; every request counted by method.
struct Stub {
    url: String,
    hits: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl Stub {
    async fn start(list: ListAnswer) -> Stub {
        let hits: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
        let counted = hits.clone();
        let app = axum::Router::new().fallback(move |method: Method, body: axum::body::Bytes| {
            let counted = counted.clone();
            async move {
                *counted
                    .lock()
                    .unwrap()
                    .entry(method.to_string())
                    .or_default() += 1;
                stub_answer(list, method, &body)
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Stub { url, hits }
    }

    fn hits(&self, method: &str) -> u64 {
        self.hits.lock().unwrap().get(method).copied().unwrap_or(0)
    }
}

fn stub_answer(list: ListAnswer, method: Method, body: &[u8]) -> Response {
    let json = |status: StatusCode, body: String| {
        (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    };
    if method == Method::GET {
        return match list {
            ListAnswer::ServerError => json(
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"data":null,"error":{"code":"INTERNAL_SERVER_ERROR","message":"boom"}}"#
                    .to_owned(),
            ),
            ListAnswer::Garbage => (
                StatusCode::OK,
                [(axum::http::header::CONTENT_TYPE, "text/html")],
                "<html><body>Please sign in</body></html>",
            )
                .into_response(),
            ListAnswer::Unauthorized => json(
                StatusCode::UNAUTHORIZED,
                r#"{"data":null,"error":{"code":"INVALID_DATA_APP_API_KEY","message":"no"}}"#
                    .to_owned(),
            ),
            ListAnswer::AuthenticationError => json(
                StatusCode::BAD_REQUEST,
                r#"{"data":null,"error":{"code":"AUTHENTICATION_ERROR","message":"Invalid API key format","status":400}}"#
                    .to_owned(),
            ),
        };
    }
    if method == Method::POST {
        let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let name = request["name"].clone();
        return json(
            StatusCode::OK,
            serde_json::json!({"data": {"name": name}, "error": null}).to_string(),
        );
    }
    json(
        StatusCode::METHOD_NOT_ALLOWED,
        r#"{"data":null,"error":{"code":"METHOD_NOT_ALLOWED","message":"no"}}"#.to_owned(),
    )
}

/// A key file for the stub, readable by its owner only.
fn stub_key(dir: &JobDir) -> String {
    dir.private_key("stub-server-key-7d41\n")
}

#[tokio::test]
async fn a_list_call_that_fails_is_a_warning_and_every_row_is_posted() {
    for list in [ListAnswer::ServerError, ListAnswer::Garbage] {
        let stub = Stub::start(list).await;
        let dir = JobDir::new();
        let input = dir.write("in.csv", &datasource_csv(&names("t", 8)));
        let key = stub_key(&dir);
        let mut args = args_to(&stub.url, &key, &dir, "results.csv");
        let summary_path = dir.path("summary.json");
        args.extend(["--summary-json", summary_path.to_str().unwrap()].map(str::to_owned));
        let run = dbprov_with(&["run", &input], &args).await;
        assert_eq!(run.exit, 0, "{list:?}: {}", run.stderr);
        let warning = run
            .stderr
            .lines()
            .find(|l| l.to_lowercase().contains("preflight"))
            .unwrap_or_else(|| panic!("{list:?}: no warning names the preflight: {}", run.stderr));
        assert!(warning.contains("WARN"), "{list:?}: {warning}");
        assert!(stub.hits("GET") >= 1, "{list:?}: the list was asked");
        assert_eq!(stub.hits("POST"), 8, "{list:?}: every valid row is POSTed");
        let (_, rows) = dir.results("results.csv");
        assert_one_row_per_input_row(&rows, 8);
        assert_eq!(tally(&rows), expect(&[("created", 8)]), "{list:?}");
        assert_eq!(
            read_json(&summary_path)["listed_workspaces"],
            Value::Null,
            "{list:?}: no listing was made"
        );
    }
}

#[tokio::test]
async fn a_refused_key_on_the_list_call_stops_the_job_before_any_write() {
    for list in [ListAnswer::Unauthorized, ListAnswer::AuthenticationError] {
        a_refused_list_stops_the_job(list).await;
    }
}

async fn a_refused_list_stops_the_job(list: ListAnswer) {
    let stub = Stub::start(list).await;
    let dir = JobDir::new();
    let input = dir.write("in.csv", &datasource_csv(&names("t", 8)));
    let key = stub_key(&dir);
    let args = args_to(&stub.url, &key, &dir, "results.csv");
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 3, "{list:?}: {}", run.stderr);
    assert_eq!(stub.hits("GET"), 1, "{list:?}: one list, not retried");
    assert_eq!(
        stub.hits("POST"),
        0,
        "{list:?}: nothing written after the refusal"
    );
    assert!(
        run.stderr.contains("refused the key"),
        "{list:?}: {}",
        run.stderr
    );
    let (_, rows) = dir.results("results.csv");
    assert_one_row_per_input_row(&rows, 8);
    for row in &rows {
        assert_eq!(row["_status"], "skipped", "{row:?}");
        assert_eq!(row["_error_code"], "ABORTED_UNAUTHORIZED", "{row:?}");
    }
}

#[tokio::test]
async fn plan_stops_with_exit_3_when_the_list_call_fails() {
    let stub = Stub::start(ListAnswer::ServerError).await;
    let dir = JobDir::new();
    let input = dir.write("in.csv", &datasource_csv(&names("t", 8)));
    let key = stub_key(&dir);
    let args = args_to(&stub.url, &key, &dir, "plan.csv");
    let plan = dbprov_with(&["plan", &input], &args).await;
    assert_eq!(plan.exit, 3, "{}", plan.stderr);
    assert!(!plan.stderr.trim().is_empty(), "an error message is given");
    assert_eq!(
        stub.hits("POST") + stub.hits("PUT") + stub.hits("DELETE"),
        0
    );
}

#[tokio::test]
async fn a_list_that_pages_itself_whatever_it_is_asked_is_not_trusted() {
    let existing: std::collections::BTreeSet<String> =
        (1..=20).map(|i| format!("t-{i:04}")).collect();
    let hostile = Hostile::start(HostileState {
        existing: std::sync::Mutex::new(existing.clone()),
        pages_only: true,
        ..HostileState::default()
    })
    .await;
    let dir = JobDir::new();
    let input = dir.write("t.csv", &tenants("t", 25));
    let mut args = hostile_args(&hostile, &dir, "r.csv");
    let summary = dir.path("s.json");
    args.extend([
        "--summary-json".to_owned(),
        summary.to_string_lossy().into_owned(),
    ]);
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    assert!(run.stderr.contains("pages the list"), "{}", run.stderr);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(summary["listed_workspaces"], serde_json::Value::Null);
    let (_, rows) = dir.results("r.csv");
    for row in &rows {
        let expected = if existing.contains(&row["name"]) {
            "exists"
        } else {
            "created"
        };
        assert_eq!(row["_status"], expected, "{row:?}");
    }
}

#[tokio::test]
async fn a_second_page_that_keeps_refusing_leaves_the_list_trusted_and_the_job_going() {
    let existing: std::collections::BTreeSet<String> =
        (1..=10).map(|i| format!("t-{i:04}")).collect();
    let hostile = Hostile::start(HostileState {
        existing: std::sync::Mutex::new(existing.clone()),
        page_two_429: true,
        ..HostileState::default()
    })
    .await;
    let dir = JobDir::new();
    let input = dir.write("t.csv", &tenants("t", 15));
    let mut args = hostile_args(&hostile, &dir, "r.csv");
    args.extend(["--max-attempts", "2"].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let (_, rows) = dir.results("r.csv");
    let got = statuses(&rows);
    for (name, status) in &got {
        let expected = if existing.contains(name) {
            "exists"
        } else {
            "created"
        };
        assert_eq!(status, expected, "{rows:?}");
    }
    let gets = hostile.log().iter().filter(|(m, _)| m == "GET").count();
    assert_eq!(gets, 3, "the list, and its second page twice");
}
