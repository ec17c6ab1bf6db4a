//! The lifecycle commands (issue 10): the preflight list of `run`, `plan`, `update`,
//! `delete`, `rollback`, and their reruns. Each test runs the binary against an in-process
//! sandbox (or a small stub server) and counts what reached the server from the server's
//! side: its request log and stats, never the client's word.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use dbprov::sandbox::{FaultConfig, Sandbox};
use serde_json::Value;

use crate::common::{
    Api, JobDir, ResultRow, args_for, args_to, assert_one_row_per_input_row, by_method, by_name,
    count, datasource_csv, expect, held, holding, holding_seeded, log, name_csv, names, names_sent,
    read_summary, requests_total, tally,
};
use crate::process::{Finished, dbprov_with};

/// The row counts of a summary, by status.
fn summary_counts(summary: &Value) -> Value {
    summary["by_status"].clone()
}

/// Ten names the sandbox holds and ten it does not, in one input, with these extra flags.
/// A list of exactly ten names is one page: dbprov asks for the second page too, to be
/// sure the API did not page it, so every run here lists with two GETs.
async fn ten_old_ten_new(extra: &[&str]) -> (Sandbox, JobDir, Finished, Vec<ResultRow>, Value) {
    let old = names("old", 10);
    let sandbox = holding(&old, FaultConfig::default()).await;
    let dir = JobDir::new();
    let mut all = old.clone();
    all.extend(names("new", 10));
    let input = dir.write("in.csv", &datasource_csv(&all));
    let mut args = args_for(&sandbox, &dir, "results.csv");
    let summary_path = dir.path("summary.json");
    args.extend(["--summary-json", summary_path.to_str().unwrap()].map(str::to_owned));
    args.extend(extra.iter().map(|s| s.to_string()));
    let run = dbprov_with(&["run", &input], &args).await;
    let (_, rows) = dir.results("results.csv");
    assert_one_row_per_input_row(&rows, 20);
    let summary = read_summary(&summary_path);
    (sandbox, dir, run, rows, summary)
}

#[tokio::test]
async fn preflight_marks_listed_names_exists_without_a_post() {
    let (sandbox, _dir, run, rows, summary) = ten_old_ten_new(&[]).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let log = log(&Api::new(&sandbox)).await;
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
    let (sandbox, _dir, run, rows, _) = ten_old_ten_new(&["--on-exists", "update"]).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let log = log(&Api::new(&sandbox)).await;
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
    let (sandbox, _dir, run, rows, _) = ten_old_ten_new(&["--on-exists", "fail"]).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let log = log(&Api::new(&sandbox)).await;
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
    let (sandbox, _dir, run, rows, summary) = ten_old_ten_new(&["--no-preflight"]).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let log = log(&Api::new(&sandbox)).await;
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
            read_summary(&summary_path)["listed_workspaces"],
            Value::Null,
            "{list:?}: no listing was made"
        );
    }
}

#[tokio::test]
async fn a_401_on_the_list_call_stops_the_job_before_any_write() {
    let stub = Stub::start(ListAnswer::Unauthorized).await;
    let dir = JobDir::new();
    let input = dir.write("in.csv", &datasource_csv(&names("t", 8)));
    let key = stub_key(&dir);
    let args = args_to(&stub.url, &key, &dir, "results.csv");
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 3, "{}", run.stderr);
    assert_eq!(stub.hits("POST"), 0, "nothing written after a 401");
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
async fn plan_sends_no_write_and_its_counts_match_the_run_that_follows() {
    let old = names("old", 10);
    let sandbox = holding(&old, FaultConfig::default()).await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let mut csv = datasource_csv(&old);
    for name in names("new", 15) {
        csv.push_str(&format!("{name},DATASOURCE,postgres-main\n"));
    }
    csv.push_str("no-type,,\n");
    csv.push_str("no-source,DATASOURCE,\n");
    let input = dir.write("in.csv", &csv);

    let mut args = args_for(&sandbox, &dir, "plan.csv");
    let plan_summary = dir.path("plan.json");
    args.extend(["--summary-json", plan_summary.to_str().unwrap()].map(str::to_owned));
    let plan = dbprov_with(&["plan", &input], &args).await;
    assert_eq!(plan.exit, 1, "two rows are invalid: {}", plan.stderr);
    let log_after_plan = log(&api).await;
    assert_eq!(
        by_method(&log_after_plan),
        BTreeMap::from([("GET".to_owned(), 2)]),
        "a plan lists (a list of exactly one page, and its second page), and writes nothing"
    );
    let (_, planned) = dir.results("plan.csv");
    assert_one_row_per_input_row(&planned, 27);
    assert_eq!(
        tally(&planned),
        expect(&[("planned", 15), ("exists", 10), ("invalid", 2)])
    );
    assert!(planned.iter().all(|r| r["_attempts"] == "0"), "{planned:?}");
    let plan_summary = read_summary(&plan_summary);

    let mut args = args_for(&sandbox, &dir, "results.csv");
    let run_summary = dir.path("run.json");
    args.extend(["--summary-json", run_summary.to_str().unwrap()].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let (_, rows) = dir.results("results.csv");
    assert_one_row_per_input_row(&rows, 27);
    assert_eq!(
        tally(&rows),
        expect(&[("created", 15), ("exists", 10), ("invalid", 2)])
    );
    let mut expected = summary_counts(&plan_summary);
    // What the plan calls planned, the run calls created.
    let planned_count = expected["planned"].take();
    expected.as_object_mut().unwrap().remove("planned");
    expected["created"] = planned_count;
    assert_eq!(
        summary_counts(&read_summary(&run_summary)),
        expected,
        "the plan's counts, planned read as created"
    );
    let by_row: BTreeMap<&str, &str> = planned
        .iter()
        .map(|r| (r["_row"].as_str(), r["_status"].as_str()))
        .collect();
    for row in &rows {
        let was = by_row[row["_row"].as_str()];
        let now = if was == "planned" { "created" } else { was };
        assert_eq!(row["_status"], now, "row {} planned {was}", row["_row"]);
    }
}

#[tokio::test]
async fn plan_summary_json_has_the_counts_by_status() {
    let sandbox = holding(&names("old", 2), FaultConfig::default()).await;
    let dir = JobDir::new();
    let mut all = names("old", 2);
    all.extend(names("new", 3));
    let input = dir.write("in.csv", &datasource_csv(&all));
    let mut args = args_for(&sandbox, &dir, "plan.csv");
    let path = dir.path("plan.json");
    args.extend(["--summary-json", path.to_str().unwrap()].map(str::to_owned));
    let plan = dbprov_with(&["plan", &input], &args).await;
    assert_eq!(plan.exit, 0, "{}", plan.stderr);
    let summary = read_summary(&path);
    assert_eq!(
        summary["by_status"],
        serde_json::json!({"exists": 2, "planned": 3}),
        "{summary}"
    );
    assert_eq!(summary["listed_workspaces"], 2, "{summary}");
}

#[tokio::test]
async fn plan_with_on_exists_update_or_fail_says_what_would_happen() {
    let old = names("old", 5);
    let sandbox = holding(&old, FaultConfig::default()).await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let mut all = old.clone();
    all.extend(names("new", 5));
    let input = dir.write("in.csv", &datasource_csv(&all));

    let mut args = args_for(&sandbox, &dir, "update-plan.csv");
    args.extend(["--on-exists", "update"].map(str::to_owned));
    let plan = dbprov_with(&["plan", &input], &args).await;
    assert_eq!(plan.exit, 0, "{}", plan.stderr);
    let (_, rows) = dir.results("update-plan.csv");
    assert_one_row_per_input_row(&rows, 10);
    for row in &rows {
        assert_eq!(row["_status"], "planned", "{row:?}");
        assert_eq!(row["_attempts"], "0", "{row:?}");
        if row["name"].starts_with("old-") {
            assert!(row["_error_message"].starts_with("would update"), "{row:?}");
        }
    }

    let mut args = args_for(&sandbox, &dir, "fail-plan.csv");
    args.extend(["--on-exists", "fail"].map(str::to_owned));
    let plan = dbprov_with(&["plan", &input], &args).await;
    assert_eq!(plan.exit, 1, "{}", plan.stderr);
    let (_, rows) = dir.results("fail-plan.csv");
    for row in &rows {
        if row["name"].starts_with("old-") {
            assert_eq!(row["_status"], "failed", "{row:?}");
            assert_eq!(row["_error_code"], "WORKSPACE_NAME_ALREADY_EXISTS");
        } else {
            assert_eq!(row["_status"], "planned", "{row:?}");
        }
    }
    assert_eq!(
        by_method(&log(&api).await),
        BTreeMap::from([("GET".to_owned(), 2)]),
        "two plans, two list calls, no write"
    );
}

fn faulty() -> FaultConfig {
    FaultConfig {
        fail_rate: 0.1,
        fail_after_commit_rate: 0.1,
        drop_rate: 0.1,
        ..FaultConfig::default()
    }
}

#[tokio::test]
async fn update_puts_new_settings_through_faults_and_fails_a_missing_name() {
    let existing = names("w", 30);
    let sandbox = holding_seeded(&existing, faulty(), 3).await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let mut csv = String::from("name,connectionType,datasourceName,themeName,team\n");
    for name in &existing {
        csv.push_str(&format!("{name},DATASOURCE,snowflake-warehouse,dark,ops\n"));
    }
    csv.push_str("nobody,DATASOURCE,snowflake-warehouse,dark,ops\n");
    let input = dir.write("in.csv", &csv);
    let mut args = args_for(&sandbox, &dir, "results.csv");
    args.extend(["--max-attempts", "30", "--concurrency", "4"].map(str::to_owned));
    let update = dbprov_with(&["update", &input], &args).await;
    assert_eq!(update.exit, 1, "the missing name fails: {}", update.stderr);

    let (_, rows) = dir.results("results.csv");
    assert_one_row_per_input_row(&rows, 31);
    let rows = by_name(&rows);
    for name in &existing {
        assert_eq!(rows[name]["_status"], "updated", "{:?}", rows[name]);
        assert_eq!(rows[name]["team"], "ops", "other columns are carried");
    }
    let missing = &rows["nobody"];
    assert_eq!(missing["_status"], "failed", "{missing:?}");
    assert_eq!(
        missing["_error_code"], "WORKSPACE_DOES_NOT_EXIST",
        "{missing:?}"
    );
    assert!(
        missing["_error_message"].starts_with("update: "),
        "{missing:?}"
    );

    let log = log(&api).await;
    assert_eq!(count(&log, "POST"), 0, "an update never creates");
    assert_eq!(count(&log, "DELETE"), 0);
    let faults = api.stats().await["faults_injected"].clone();
    assert!(
        faults["fail"].as_u64().unwrap() > 0
            && faults["fail_after_commit"].as_u64().unwrap() > 0
            && faults["drop_after_commit"].as_u64().unwrap()
                + faults["drop_before_commit"].as_u64().unwrap()
                > 0,
        "premise: every kind of fault was met: {faults}"
    );
    let stored = api.get("/_sandbox/workspaces").await;
    let stored = stored.as_array().unwrap();
    assert_eq!(stored.len(), 30, "nothing created, nothing lost");
    for workspace in stored {
        assert_eq!(
            workspace["datasourceName"], "snowflake-warehouse",
            "{workspace}"
        );
        assert_eq!(workspace["themeName"], "dark", "{workspace}");
    }
}

#[tokio::test]
async fn delete_through_faults_deletes_what_exists_and_marks_the_rest_absent() {
    let doomed = names("gone", 30);
    let kept = names("keep", 10);
    let missing = names("never", 5);
    let mut start = doomed.clone();
    start.extend(kept.clone());
    let sandbox = holding_seeded(&start, faulty(), 4).await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let mut listed = doomed.clone();
    listed.extend(missing.clone());
    let input = dir.write("offboard.csv", &name_csv(&listed));
    let mut args = args_for(&sandbox, &dir, "results.csv");
    args.extend(["--max-attempts", "30", "--concurrency", "4"].map(str::to_owned));
    let delete = dbprov_with(&["delete", &input], &args).await;
    assert_eq!(delete.exit, 0, "{}", delete.stderr);

    let (_, rows) = dir.results("results.csv");
    assert_one_row_per_input_row(&rows, 35);
    let log = log(&api).await;
    assert_eq!(
        count(&log, "POST") + count(&log, "PUT"),
        0,
        "a delete only deletes"
    );
    let rows = by_name(&rows);
    for name in &doomed {
        assert_eq!(rows[name]["_status"], "deleted", "{:?}", rows[name]);
    }
    // A missing name is `absent`, unless an answer to it was lost (then dbprov cannot tell
    // whether its own earlier attempt deleted it, and `deleted` is the answer).
    let mut absent = 0;
    for name in &missing {
        let answers: Vec<&Value> = log
            .iter()
            .filter(|e| e["method"] == "DELETE" && e["name"] == name.as_str())
            .map(|e| &e["status"])
            .collect();
        let lost = answers
            .iter()
            .any(|s| s.is_null() || s.as_u64().is_some_and(|s| s >= 500));
        let status = rows[name]["_status"].as_str();
        if lost {
            assert!(
                status == "absent" || status == "deleted",
                "{name}: {status}"
            );
        } else {
            assert_eq!(status, "absent", "{name}: answers {answers:?}");
        }
        absent += usize::from(status == "absent");
    }
    assert!(absent > 0, "premise: some missing name was met cleanly");
    let faults = api.stats().await["faults_injected"].clone();
    assert!(
        faults["fail_after_commit"].as_u64().unwrap() > 0
            && faults["drop_after_commit"].as_u64().unwrap() > 0,
        "premise: deletes whose answer was lost after the delete: {faults}"
    );
    assert_eq!(
        held(&api).await,
        kept.into_iter().collect(),
        "only the others are left"
    );
}

#[tokio::test]
async fn delete_marks_empty_and_repeated_names_invalid() {
    let sandbox = holding(&names("w", 3), FaultConfig::default()).await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write("in.csv", "name,note\nw-001,a\n,b\nw-002,c\nw-001,d\n");
    let args = args_for(&sandbox, &dir, "results.csv");
    let delete = dbprov_with(&["delete", &input], &args).await;
    assert_eq!(delete.exit, 1, "{}", delete.stderr);
    let (_, rows) = dir.results("results.csv");
    assert_one_row_per_input_row(&rows, 4);
    let by_row: BTreeMap<&str, &ResultRow> = rows.iter().map(|r| (r["_row"].as_str(), r)).collect();
    assert_eq!(by_row["1"]["_status"], "deleted");
    assert_eq!(by_row["2"]["_status"], "invalid");
    assert_eq!(by_row["2"]["_error_code"], "MISSING_NAME");
    assert_eq!(by_row["3"]["_status"], "deleted");
    assert_eq!(by_row["4"]["_status"], "invalid");
    assert_eq!(by_row["4"]["_error_code"], "DUPLICATE_IN_INPUT");
    assert_eq!(by_row["4"]["note"], "d", "other columns are carried");
    assert_eq!(count(&log(&api).await, "DELETE"), 2);
    assert_eq!(held(&api).await, BTreeSet::from(["w-003".to_owned()]));
}

/// A run of 20 new and 10 listed names against a sandbox with these faults: returns the
/// sandbox, the job folder (results in `results.csv`), and the listed names.
async fn a_run_to_roll_back(faults: FaultConfig) -> (Sandbox, JobDir, Vec<String>) {
    let old = names("old", 10);
    let sandbox = holding(&old, faults).await;
    let dir = JobDir::new();
    let mut all = names("new", 20);
    all.extend(old.clone());
    let input = dir.write("in.csv", &datasource_csv(&all));
    let mut args = args_for(&sandbox, &dir, "results.csv");
    args.extend(["--max-attempts", "30"].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let (_, rows) = dir.results("results.csv");
    assert_eq!(tally(&rows), expect(&[("created", 20), ("exists", 10)]));
    (sandbox, dir, old)
}

async fn rollback_leaves_exactly_what_was_there(faults: FaultConfig) {
    let (sandbox, dir, old) = a_run_to_roll_back(faults).await;
    let api = Api::new(&sandbox);
    let results = dir.path("results.csv");
    let results = results.to_str().unwrap();
    let mut args = args_for(&sandbox, &dir, "undo.csv");
    args.extend(["--max-attempts", "30"].map(str::to_owned));
    let before = log(&api).await.len();

    let rollback = dbprov_with(&["rollback", results, "--yes"], &args).await;
    assert_eq!(rollback.exit, 0, "{}", rollback.stderr);
    let (_, undo) = dir.results("undo.csv");
    assert_eq!(tally(&undo), expect(&[("deleted", 20)]), "{undo:?}");
    let (_, run_rows) = dir.results("results.csv");
    let created_rows: BTreeSet<(String, String)> = run_rows
        .iter()
        .filter(|r| r["_status"] == "created")
        .map(|r| (r["_row"].clone(), r["name"].clone()))
        .collect();
    let undone_rows: BTreeSet<(String, String)> = undo
        .iter()
        .map(|r| (r["_row"].clone(), r["name"].clone()))
        .collect();
    assert_eq!(
        undone_rows, created_rows,
        "one row per created row, its _row kept"
    );
    let sent = log(&api).await.split_off(before);
    assert!(
        sent.iter()
            .all(|e| e["method"] == "DELETE" || e["method"] == "GET"),
        "a rollback only deletes"
    );
    assert!(
        names_sent(&sent, "DELETE")
            .iter()
            .all(|n| n.starts_with("new-")),
        "never a DELETE of a name that was there before"
    );
    assert_eq!(held(&api).await, old.into_iter().collect());
}

#[tokio::test]
async fn rollback_deletes_exactly_the_created_rows() {
    rollback_leaves_exactly_what_was_there(FaultConfig::default()).await;
}

#[tokio::test]
async fn rollback_deletes_exactly_the_created_rows_through_faults() {
    rollback_leaves_exactly_what_was_there(FaultConfig {
        fail_after_commit_rate: 0.2,
        drop_rate: 0.1,
        ..FaultConfig::default()
    })
    .await;
}

#[tokio::test]
async fn rollback_without_yes_and_without_a_terminal_refuses_and_sends_nothing() {
    let (sandbox, dir, _) = a_run_to_roll_back(FaultConfig::default()).await;
    let api = Api::new(&sandbox);
    let before = requests_total(&api.stats().await);
    let args = args_for(&sandbox, &dir, "undo.csv");
    let results = dir.path("results.csv");
    let refused = dbprov_with(&["rollback", results.to_str().unwrap()], &args).await;
    assert_eq!(refused.exit, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("--yes"),
        "the refusal says how to confirm: {}",
        refused.stderr
    );
    assert_eq!(requests_total(&api.stats().await), before, "nothing sent");
    assert_eq!(held(&api).await.len(), 30);

    // The same command, confirmed, does it.
    let confirmed = dbprov_with(&["rollback", results.to_str().unwrap(), "--yes"], &args).await;
    assert_eq!(confirmed.exit, 0, "{}", confirmed.stderr);
    assert_eq!(held(&api).await.len(), 10);
}

#[tokio::test]
async fn rolling_back_a_record_of_deletions_is_refused() {
    let (sandbox, dir, _) = a_run_to_roll_back(FaultConfig::default()).await;
    let api = Api::new(&sandbox);
    let results = dir.path("results.csv");
    let args = args_for(&sandbox, &dir, "undo.csv");
    let rollback = dbprov_with(&["rollback", results.to_str().unwrap(), "--yes"], &args).await;
    assert_eq!(rollback.exit, 0, "{}", rollback.stderr);

    // A delete's results, of names that exist.
    let input = dir.write("offboard.csv", &name_csv(&names("old", 3)));
    let args = args_for(&sandbox, &dir, "deleted.csv");
    let delete = dbprov_with(&["delete", &input], &args).await;
    assert_eq!(delete.exit, 0, "{}", delete.stderr);

    let before = requests_total(&api.stats().await);
    for record in ["undo.csv", "deleted.csv"] {
        let args = args_for(&sandbox, &dir, &format!("re-{record}"));
        let path = dir.path(record);
        let refused = dbprov_with(&["rollback", path.to_str().unwrap(), "--yes"], &args).await;
        assert_eq!(refused.exit, 2, "{record}: {}", refused.stderr);
        assert!(
            refused.stderr.contains("deletions"),
            "{record}: the message says the file records deletions: {}",
            refused.stderr
        );
    }
    assert_eq!(requests_total(&api.stats().await), before, "nothing sent");
    assert_eq!(held(&api).await.len(), 7);
}

#[tokio::test]
async fn rollback_of_a_run_that_created_nothing_has_nothing_to_roll_back() {
    let old = names("old", 5);
    let sandbox = holding(&old, FaultConfig::default()).await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write("in.csv", &datasource_csv(&old));
    let run = dbprov_with(&["run", &input], &args_for(&sandbox, &dir, "results.csv")).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    assert_eq!(
        tally(&dir.results("results.csv").1),
        expect(&[("exists", 5)])
    );
    let before = requests_total(&api.stats().await);
    let results = dir.path("results.csv");
    let args = args_for(&sandbox, &dir, "undo.csv");
    let rollback = dbprov_with(&["rollback", results.to_str().unwrap(), "--yes"], &args).await;
    assert_eq!(rollback.exit, 0, "{}", rollback.stderr);
    assert!(
        rollback.stderr.contains("nothing to roll back"),
        "{}",
        rollback.stderr
    );
    assert_eq!(requests_total(&api.stats().await), before, "nothing sent");
    assert_eq!(held(&api).await, old.into_iter().collect());
}

#[tokio::test]
async fn rollback_against_another_target_is_refused_naming_the_target() {
    let (sandbox, dir, _) = a_run_to_roll_back(FaultConfig::default()).await;
    let api = Api::new(&sandbox);
    let other = holding(&names("new", 20), FaultConfig::default()).await;
    let other_api = Api::new(&other);
    let before = requests_total(&api.stats().await);
    let results = dir.path("results.csv");
    let args = args_for(&other, &dir, "undo.csv");
    let rollback = dbprov_with(&["rollback", results.to_str().unwrap(), "--yes"], &args).await;
    // Most likely a wrong --base-url: said, with the one the rows name.
    assert_eq!(rollback.exit, 2, "{}", rollback.stderr);
    assert!(
        rollback
            .stderr
            .contains(&format!("give --base-url {}", sandbox.url())),
        "{}",
        rollback.stderr
    );
    assert_eq!(requests_total(&other_api.stats().await), 0, "nothing sent");
    assert_eq!(requests_total(&api.stats().await), before);
    assert_eq!(other_api.workspace_names().await.len(), 20);
}
