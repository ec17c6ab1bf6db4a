//! The lifecycle commands where they could report wrongly: a wrong API root, odd names,
//! a results file of another command, a file that cannot say where its rows came from.

use std::collections::BTreeMap;

use dbprov::sandbox::{self, Sandbox, SandboxConfig};

use crate::common::{Api, JobDir, ResultRow, dbprov_with, job_args, job_args_to};

/// A sandbox holding these workspaces from the start.
async fn holding(names: &[&str]) -> Sandbox {
    sandbox::spawn(SandboxConfig {
        seed: Some(1),
        workspaces: names
            .iter()
            .map(|n| serde_json::from_value(crate::common::workspace(n)).unwrap())
            .collect(),
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox starts")
}

fn statuses(rows: &[ResultRow]) -> BTreeMap<String, String> {
    rows.iter()
        .map(|r| (r["name"].clone(), r["_status"].clone()))
        .collect()
}

/// The methods the sandbox has seen, in order.
async fn methods(api: &Api) -> Vec<String> {
    api.get("/_sandbox/requests")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["method"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_delete_against_a_wrong_api_root_reports_no_workspace_gone() {
    let sandbox = holding(&["a", "b"]).await;
    let dir = JobDir::new();
    let input = dir.write("off.csv", "name\na\nb\n");
    // A path the API does not serve: every DELETE meets a 404 about the path.
    let url = format!("{}/v1", sandbox.url());
    let args = job_args_to(&url, &dir.key_file(&sandbox), &dir, "off.csv.results");
    let run = dbprov_with(&["delete", &input], &args).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let (_, rows) = dir.results("off.csv.results");
    for row in &rows {
        assert_eq!(row["_status"], "failed", "{row:?}");
        assert_eq!(row["_http_status"], "404", "{row:?}");
        assert!(row["_error_message"].starts_with("delete: "), "{row:?}");
    }
    assert_eq!(Api::new(&sandbox).workspace_names().await.len(), 2);
}

#[tokio::test]
async fn names_with_spaces_ampersands_and_accents_are_deleted_by_their_exact_name() {
    let names = ["Acme & Sons", "café=1", "a+b", "x?y#z", "Zoë Ltd"];
    let sandbox = holding(&names).await;
    let dir = JobDir::new();
    let mut csv = String::from("name\n");
    for name in names {
        csv.push_str(&format!("\"{name}\"\n"));
    }
    csv.push_str("acme & sons\n"); // another name: the API's names are exact
    let input = dir.write("off.csv", &csv);
    let args = job_args(&sandbox, &dir, "out.csv");
    let run = dbprov_with(&["delete", &input], &args).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let (_, rows) = dir.results("out.csv");
    let mut expected: BTreeMap<String, String> = names
        .iter()
        .map(|n| (n.to_string(), "deleted".to_owned()))
        .collect();
    expected.insert("acme & sons".into(), "absent".into());
    assert_eq!(statuses(&rows), expected);
    assert!(Api::new(&sandbox).workspace_names().await.is_empty());
}

#[tokio::test]
async fn a_results_file_is_continued_only_by_the_command_that_wrote_it() {
    let sandbox = holding(&[]).await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write("t.csv", &crate::common::tenants("t", 4));
    let args = job_args(&sandbox, &dir, "r.csv");
    assert_eq!(dbprov_with(&["run", &input], &args).await.exit, 0);
    let before = methods(&api).await.len();
    // An update resumed into a run's results would keep its `created` rows as done and
    // update nothing.
    for command in ["update", "delete"] {
        let refused = dbprov_with(&[command, &input, "--resume"], &args).await;
        assert_eq!(refused.exit, 2, "{}", refused.stderr);
        assert!(
            refused.stderr.contains("holds the results of `dbprov run`"),
            "{}",
            refused.stderr
        );
    }
    assert_eq!(methods(&api).await.len(), before, "nothing sent");
}

#[tokio::test]
async fn retry_sends_an_updates_failures_as_puts() {
    let sandbox = holding(&["t-0001", "t-0002"]).await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    // Four rows, two of which do not exist: those fail, and must never be created.
    let input = dir.write("t.csv", &crate::common::tenants("t", 4));
    let args = job_args(&sandbox, &dir, "u.csv");
    let update = dbprov_with(&["update", &input], &args).await;
    assert_eq!(update.exit, 1, "{}", update.stderr);
    let results = dir.path("u.csv").to_string_lossy().into_owned();
    let retry = dbprov_with(&["retry", &results], &args[2..]).await;
    assert_eq!(retry.exit, 1, "{}", retry.stderr);
    let seen = methods(&api).await;
    assert!(!seen.contains(&"POST".to_owned()), "{seen:?}");
    assert_eq!(seen.iter().filter(|m| *m == "PUT").count(), 6, "{seen:?}");
    let (_, rows) = dir.results("u.csv");
    let got = statuses(&rows);
    assert_eq!(got["t-0001"], "updated");
    assert_eq!(got["t-0003"], "failed");
    assert_eq!(api.workspace_names().await.len(), 2);
}

#[tokio::test]
async fn rollback_refuses_a_file_that_cannot_say_where_its_rows_were_created() {
    let sandbox = holding(&["a"]).await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let args = job_args(&sandbox, &dir, "undo.csv");
    // Written before _target existed.
    let legacy = dir.write(
        "old.csv",
        "_row,_status,_error_code,_error_message,_http_status,_attempts,_latency_ms,_finished_at,name\n1,created,,,200,1,5,2026-01-01T00:00:00Z,a\n",
    );
    let refused = dbprov_with(&["rollback", &legacy, "--yes"], &args).await;
    assert_eq!(refused.exit, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("_target"), "{}", refused.stderr);
    // Created on another API.
    let elsewhere = dir.write(
        "other.csv",
        "_row,_status,_error_code,_error_message,_http_status,_attempts,_latency_ms,_finished_at,_target,name\n1,created,,,200,1,5,2026-01-01T00:00:00Z,https://api.example.com,a\n",
    );
    let refused = dbprov_with(&["rollback", &elsewhere, "--yes"], &args).await;
    assert_eq!(refused.exit, 2, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("--base-url https://api.example.com"),
        "{}",
        refused.stderr
    );
    assert!(methods(&api).await.is_empty(), "nothing sent");
    assert_eq!(api.workspace_names().await, ["a"]);
}

#[tokio::test]
async fn a_name_the_list_shows_taken_counts_towards_max_failures_with_on_exists_fail() {
    let sandbox = holding(&["t-0001", "t-0002", "t-0003"]).await;
    let dir = JobDir::new();
    let input = dir.write("t.csv", &crate::common::tenants("t", 40));
    let mut args = job_args(&sandbox, &dir, "r.csv");
    args.retain(|a| a != "--no-preflight");
    let flags = ["--on-exists", "fail", "--max-failures", "2"];
    args.extend(flags.map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 3, "{}", run.stderr);
    let (_, rows) = dir.results("r.csv");
    let failed: Vec<&ResultRow> = rows.iter().filter(|r| r["_status"] == "failed").collect();
    assert_eq!(failed.len(), 3, "{rows:?}");
    for row in failed {
        assert_eq!(row["_error_code"], "WORKSPACE_NAME_ALREADY_EXISTS");
        assert_eq!(row["_attempts"], "0");
    }
    assert!(
        rows.iter()
            .any(|r| r["_error_code"] == "ABORTED_MAX_FAILURES"),
        "{rows:?}"
    );
}

#[tokio::test]
async fn a_rollbacks_dry_run_lists_what_it_would_delete_and_sends_nothing() {
    let sandbox = holding(&["t-0001"]).await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write("t.csv", &crate::common::tenants("t", 6));
    let args = job_args(&sandbox, &dir, "r.csv");
    assert_eq!(dbprov_with(&["run", &input], &args).await.exit, 0);
    let sent = methods(&api).await.len();
    let results = dir.path("r.csv").to_string_lossy().into_owned();
    let mut dry = args.clone();
    crate::common::set_flag(&mut dry, "-o", dir.path("undo.csv").to_str().unwrap());
    let plan = dbprov_with(&["rollback", &results, "--dry-run"], &dry).await;
    assert_eq!(plan.exit, 0, "{}", plan.stderr);
    let (_, rows) = dir.results("undo.csv");
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str()).collect();
    assert_eq!(
        names.len(),
        5,
        "the five created, not the one that existed: {rows:?}"
    );
    assert!(!names.contains(&"t-0001"));
    assert!(rows.iter().all(|r| r["_status"] == "planned"));
    assert_eq!(methods(&api).await.len(), sent, "nothing sent");
    assert_eq!(api.workspace_names().await.len(), 6);
}
