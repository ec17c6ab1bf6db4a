//! The lifecycle commands where they could report wrongly: a wrong API root, odd names,
//! a results file of another command, a file that cannot say where its rows came from.

use std::collections::BTreeMap;

use dbprov::sandbox;
use dbprov::sandbox::SandboxConfig;

use crate::common::{
    Api, JobDir, ResultRow, holding_names, job_args, job_args_to, methods, set_flag, statuses,
    tenants,
};
use crate::hostile::{Hostile, HostileState, hostile_args};
use crate::process::{dbprov, dbprov_with, signal, spawn_dbprov, until_requests};

#[tokio::test]
async fn a_delete_against_a_wrong_api_root_reports_no_workspace_gone() {
    let sandbox = holding_names(&["a", "b"]).await;
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
    let sandbox = holding_names(&names).await;
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
    let sandbox = holding_names(&[]).await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write("t.csv", &tenants("t", 4));
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
    let sandbox = holding_names(&["t-0001", "t-0002"]).await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    // Four rows, two of which do not exist: those fail, and must never be created.
    let input = dir.write("t.csv", &tenants("t", 4));
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
    let sandbox = holding_names(&["a"]).await;
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
    let sandbox = holding_names(&["t-0001", "t-0002", "t-0003"]).await;
    let dir = JobDir::new();
    let input = dir.write("t.csv", &tenants("t", 40));
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
    let sandbox = holding_names(&["t-0001"]).await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write("t.csv", &tenants("t", 6));
    let args = job_args(&sandbox, &dir, "r.csv");
    assert_eq!(dbprov_with(&["run", &input], &args).await.exit, 0);
    let sent = methods(&api).await.len();
    let results = dir.path("r.csv").to_string_lossy().into_owned();
    let mut dry = args.clone();
    set_flag(&mut dry, "-o", dir.path("undo.csv").to_str().unwrap());
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
async fn a_lost_put_claims_no_workspace_the_list_did_not_show() {
    // t-0001 exists, but the list does not show it: its POST is refused, its first PUT
    // is applied and answered too late, its second answered.
    let hostile = Hostile::start(HostileState {
        existing: std::sync::Mutex::new(["t-0001".to_owned()].into()),
        unlisted: std::sync::Mutex::new(["t-0001".to_owned()].into()),
        slow_first_put: true,
        ..HostileState::default()
    })
    .await;
    let dir = JobDir::new();
    let input = dir.write("t.csv", &tenants("t", 2));
    let mut args = hostile_args(&hostile, &dir, "r.csv");
    args.extend(["--on-exists", "update", "--timeout", "1s"].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let puts = hostile.log().iter().filter(|(m, _)| m == "PUT").count();
    assert_eq!(puts, 2, "the lost PUT and its retry: {:?}", hostile.log());
    let (_, rows) = dir.results("r.csv");
    let got = statuses(&rows);
    assert_eq!(got["t-0001"], "updated", "a PUT creates nothing: {rows:?}");
    assert_eq!(got["t-0002"], "created");
}

#[tokio::test]
async fn a_dry_run_of_a_delete_is_retried_as_deletes() {
    let sandbox = holding_names(&["a", "b"]).await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    // The whole tenant columns: read as a run's, these rows would be valid creates.
    let input = dir.write(
        "off.csv",
        "name,connectionType,datasourceName\na,DATASOURCE,postgres-main\nc,DATASOURCE,postgres-main\n",
    );
    let args = job_args(&sandbox, &dir, "dry.csv");
    let dry = dbprov_with(&["delete", &input, "--dry-run"], &args).await;
    assert_eq!(dry.exit, 0, "{}", dry.stderr);
    let (_, rows) = dir.results("dry.csv");
    assert!(
        rows.iter()
            .all(|r| r["_error_message"] == "delete: would delete"),
        "{rows:?}"
    );
    let dry_path = dir.path("dry.csv").to_string_lossy().into_owned();
    let retry = dbprov_with(&["retry", &dry_path], &args[2..]).await;
    assert_eq!(retry.exit, 0, "{}", retry.stderr);
    let seen = methods(&api).await;
    assert_eq!(seen, ["DELETE", "DELETE"], "never a POST");
    let (_, rows) = dir.results("dry.csv");
    let got = statuses(&rows);
    assert_eq!((&*got["a"], &*got["c"]), ("deleted", "absent"));
    assert_eq!(api.workspace_names().await, ["b"]);
}

#[tokio::test]
async fn retrying_deletions_against_another_api_is_refused() {
    let here = holding_names(&[]).await;
    let there = holding_names(&["t-0001", "t-0002"]).await;
    let dir = JobDir::new();
    let input = dir.write("t.csv", &tenants("t", 4));
    let args = job_args(&here, &dir, "r.csv");
    assert_eq!(dbprov_with(&["run", &input], &args).await.exit, 0);
    let results = dir.path("r.csv").to_string_lossy().into_owned();
    let undo_args = job_args(&here, &dir, "undo.csv");
    let undo = dbprov_with(&["rollback", &results, "--yes"], &undo_args).await;
    assert_eq!(undo.exit, 0, "{}", undo.stderr);
    // The rollback's results, re-sent to an API that never had these workspaces created.
    let undo_path = dir.path("undo.csv").to_string_lossy().into_owned();
    let there_args = job_args(&there, &dir, "again.csv");
    let retry = dbprov_with(&["retry", &undo_path], &there_args).await;
    assert_eq!(retry.exit, 2, "{}", retry.stderr);
    assert!(
        retry.stderr.contains(&format!("--base-url {}", here.url())),
        "{}",
        retry.stderr
    );
    let there_api = Api::new(&there);
    assert!(methods(&there_api).await.is_empty(), "nothing sent");
    assert_eq!(there_api.workspace_names().await.len(), 2);
}

#[tokio::test]
async fn rows_without_a_target_are_not_rolled_back_after_their_file_is_upgraded() {
    let sandbox = holding_names(&["b1", "b2"]).await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let legacy = dir.write(
        "old.csv",
        "_row,_status,_error_code,_error_message,_http_status,_attempts,_latency_ms,_finished_at,name,connectionType\n\
         1,created,,,200,1,5,2026-01-01T00:00:00Z,b1,MULTI_DATAMART\n\
         2,created,,,200,1,5,2026-01-01T00:00:00Z,b2,MULTI_DATAMART\n\
         3,failed,HTTP_500,x,500,1,5,2026-01-01T00:00:00Z,b3,MULTI_DATAMART\n",
    );
    // A retry gives the file its _target column, empty for the rows it keeps.
    let retry = dbprov_with(&["retry", &legacy], &job_args(&sandbox, &dir, "x.csv")[2..]).await;
    assert_eq!(retry.exit, 0, "{}", retry.stderr);
    let undo = dbprov_with(
        &["rollback", &legacy, "--yes"],
        &job_args(&sandbox, &dir, "undo.csv"),
    )
    .await;
    // Only b3, which the retry created (and recorded against this API), is undone: b1
    // and b2 say nothing of where they were created.
    assert_eq!(undo.exit, 0, "{}", undo.stderr);
    let (_, undone) = dir.results("undo.csv");
    assert_eq!(
        statuses(&undone),
        BTreeMap::from([("b3".into(), "deleted".into())])
    );
    assert_eq!(api.workspace_names().await, ["b1", "b2"]);
}

#[tokio::test]
async fn a_rollback_waits_for_no_job_still_writing_its_file() {
    let sandbox = sandbox::spawn(SandboxConfig {
        seed: Some(1),
        faults: dbprov::sandbox::FaultConfig {
            latency: std::time::Duration::from_millis(200),
            ..Default::default()
        },
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write("t.csv", &tenants("t", 40));
    let args = job_args(&sandbox, &dir, "r.csv");
    let mut run_args = vec!["run", input.as_str()];
    run_args.extend(args.iter().map(String::as_str));
    run_args.extend(["--concurrency", "1"]);
    let mut child = spawn_dbprov(&run_args);
    until_requests(&api, &mut child, 2).await;
    let results = dir.path("r.csv").to_string_lossy().into_owned();
    let undo = dbprov_with(
        &["rollback", &results, "--yes"],
        &job_args(&sandbox, &dir, "undo.csv"),
    )
    .await;
    assert_eq!(undo.exit, 2, "{}", undo.stderr);
    assert!(
        undo.stderr
            .contains("being written by another dbprov process"),
        "{}",
        undo.stderr
    );
    assert!(
        !methods(&api).await.contains(&"DELETE".to_owned()),
        "nothing deleted"
    );
    signal(&child, libc::SIGKILL);
    let _ = child.wait().await;
}

#[tokio::test]
async fn a_plan_refused_by_the_api_says_so_on_every_row() {
    let sandbox = holding_names(&[]).await;
    let dir = JobDir::new();
    let input = dir.write("t.csv", &tenants("t", 3));
    let wrong = dir.private_key("not-the-key\n");
    let args = job_args_to(&sandbox.url(), &wrong, &dir, "plan.csv");
    let plan = dbprov_with(&["plan", &input], &args).await;
    assert_eq!(plan.exit, 3, "{}", plan.stderr);
    let (_, rows) = dir.results("plan.csv");
    assert_eq!(rows.len(), 3);
    for row in rows {
        assert_eq!(
            (&*row["_status"], &*row["_error_code"]),
            ("skipped", "ABORTED_UNAUTHORIZED"),
            "{row:?}"
        );
    }
}

#[tokio::test]
async fn a_server_cannot_turn_a_runs_retry_into_deletes() {
    let hostile = Hostile::start(HostileState {
        post_500_saying: Some("delete: job queue is full"),
        ..HostileState::default()
    })
    .await;
    let dir = JobDir::new();
    let input = dir.write("t.csv", &tenants("t", 3));
    let mut args = hostile_args(&hostile, &dir, "r.csv");
    args.extend(["--max-attempts", "1"].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let (_, rows) = dir.results("r.csv");
    assert!(
        rows.iter()
            .all(|r| r["_error_message"].starts_with("run: delete: job queue is full")),
        "{rows:?}"
    );
    let results = dir.path("r.csv").to_string_lossy().into_owned();
    let retry = dbprov_with(&["retry", &results], &args[2..]).await;
    assert_eq!(retry.exit, 0, "{}", retry.stderr);
    assert!(
        !hostile.log().iter().any(|(m, _)| m == "DELETE"),
        "{:?}",
        hostile.log()
    );
    let (_, rows) = dir.results("r.csv");
    assert!(rows.iter().all(|r| r["_status"] == "created"), "{rows:?}");
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

#[tokio::test]
async fn after_a_rollback_a_resumed_run_creates_its_tenants_again() {
    let sandbox = holding_names(&[]).await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write("t.csv", &tenants("t", 5));
    let mut args = job_args(&sandbox, &dir, "r.csv");
    args.retain(|a| a != "--no-preflight");
    assert_eq!(dbprov_with(&["run", &input], &args).await.exit, 0);
    let results = dir.path("r.csv").to_string_lossy().into_owned();
    let undo = dbprov_with(&["rollback", &results, "--yes"], &args[2..]).await;
    assert_eq!(undo.exit, 0, "{}", undo.stderr);
    assert!(api.workspace_names().await.is_empty());
    // The results still say created; the list says otherwise, and wins.
    let again = dbprov_with(&["run", &input, "--resume"], &args).await;
    assert_eq!(again.exit, 0, "{}", again.stderr);
    assert_eq!(api.workspace_names().await.len(), 5);
    let posts = methods(&api).await.iter().filter(|m| *m == "POST").count();
    assert_eq!(posts, 10, "five, and five again");
}

#[tokio::test]
async fn a_rollback_of_a_later_run_does_not_continue_an_earlier_rollbacks_file() {
    let sandbox = holding_names(&[]).await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write("t.csv", &tenants("t", 4));
    let args = job_args(&sandbox, &dir, "r.csv");
    let results = dir.path("r.csv").to_string_lossy().into_owned();
    let undo = || {
        let mut undo = job_args(&sandbox, &dir, "undo.csv");
        undo.push("--yes".into());
        undo
    };
    assert_eq!(dbprov_with(&["run", &input], &args).await.exit, 0);
    assert_eq!(dbprov_with(&["rollback", &results], &undo()).await.exit, 0);
    let mut overwrite = args.clone();
    overwrite.push("--overwrite".into());
    assert_eq!(dbprov_with(&["run", &input], &overwrite).await.exit, 0);
    assert_eq!(api.workspace_names().await.len(), 4);
    let stale = dbprov_with(&["rollback", &results, "--resume"], &undo()).await;
    assert_eq!(stale.exit, 2, "{}", stale.stderr);
    assert!(
        stale.stderr.contains("earlier rollback"),
        "{}",
        stale.stderr
    );
    assert_eq!(
        api.workspace_names().await.len(),
        4,
        "nothing deleted, nothing claimed"
    );
    let mut fresh = undo();
    set_flag(&mut fresh, "-o", dir.path("undo2.csv").to_str().unwrap());
    assert_eq!(dbprov_with(&["rollback", &results], &fresh).await.exit, 0);
    assert!(api.workspace_names().await.is_empty());
}

#[tokio::test]
async fn a_delete_does_not_continue_an_updates_file() {
    let sandbox = holding_names(&["t-0001", "t-0002"]).await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write("t.csv", &tenants("t", 2));
    let args = job_args(&sandbox, &dir, "x.csv");
    assert_eq!(dbprov_with(&["update", &input], &args).await.exit, 0);
    let delete = dbprov_with(&["delete", &input, "--resume"], &args).await;
    assert_eq!(delete.exit, 2, "{}", delete.stderr);
    assert!(!methods(&api).await.contains(&"DELETE".to_owned()));
}

#[tokio::test]
async fn readers_share_a_results_file() {
    let sandbox = holding_names(&[]).await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write("t.csv", &tenants("t", 4));
    let args = job_args(&sandbox, &dir, "r.csv");
    assert_eq!(dbprov_with(&["run", &input], &args).await.exit, 0);
    // Another reader (a rollback of another shard) holds it shared.
    let other = std::fs::File::open(dir.path("r.csv")).unwrap();
    other.try_lock_shared().unwrap();
    let results = dir.path("r.csv").to_string_lossy().into_owned();
    let undo = dbprov_with(
        &["rollback", &results, "--yes"],
        &job_args(&sandbox, &dir, "u.csv"),
    )
    .await;
    assert_eq!(undo.exit, 0, "{}", undo.stderr);
    assert!(api.workspace_names().await.is_empty());
    // A writer is refused while a reader holds it.
    let resumed = dbprov_with(&["run", &input, "--resume"], &args).await;
    assert_eq!(resumed.exit, 2, "{}", resumed.stderr);
    drop(other);
}

#[tokio::test]
async fn a_failed_list_never_shows_a_part_of_the_key() {
    let key = "9f3a6c1e-4b2d-4e8f-a1b2-c3d4e5f60718";
    let hostile = Hostile::start(HostileState {
        list_502_echoing: Some(key.to_owned()),
        ..HostileState::default()
    })
    .await;
    let dir = JobDir::new();
    let input = dir.write("t.csv", &tenants("t", 2));
    let key_file = dir.private_key(&format!("{key}\n"));
    let mut args = job_args_to(&hostile.url, &key_file, &dir, "r.csv");
    args.retain(|a| a != "--no-preflight");
    args.extend(["--max-attempts", "2", "-v"].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    assert!(run.stderr.contains("preflight"), "{}", run.stderr);
    assert!(!run.stderr.contains(&key[..12]), "{}", run.stderr);
}

#[tokio::test]
async fn a_server_cannot_write_the_notes_a_rollback_reads() {
    let hostile = Hostile::start(HostileState {
        existing: std::sync::Mutex::new(["t-0001".to_owned(), "t-0002".to_owned()].into()),
        taken_saying: Some(
            "taken (it was not listed before the run) an earlier attempt got no clear answer: the workspace may exist",
        ),
        ..HostileState::default()
    })
    .await;
    let dir = JobDir::new();
    let input = dir.write("t.csv", &tenants("t", 2));
    let mut args = hostile_args(&hostile, &dir, "r.csv");
    args.extend(["--no-preflight", "--on-exists", "fail"].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let results = dir.path("r.csv").to_string_lossy().into_owned();
    let undo = dbprov_with(&["rollback", &results, "--yes"], &args[2..]).await;
    assert_eq!(undo.exit, 0, "{}", undo.stderr);
    assert!(
        undo.stderr.contains("nothing to roll back"),
        "{}",
        undo.stderr
    );
    assert!(!hostile.log().iter().any(|(m, _)| m == "DELETE"));
}

#[tokio::test]
async fn a_name_the_list_misses_keeps_the_record_that_it_was_created() {
    let hostile = Hostile::start(HostileState::default()).await;
    let dir = JobDir::new();
    let input = dir.write("t.csv", &tenants("t", 3));
    let args = hostile_args(&hostile, &dir, "r.csv");
    assert_eq!(dbprov_with(&["run", &input], &args).await.exit, 0);
    // The list lags: it misses one of the workspaces the run created.
    hostile
        .state
        .unlisted
        .lock()
        .unwrap()
        .insert("t-0001".to_owned());
    for extra in [
        &[][..],
        &["--on-exists", "fail"][..],
        &["--on-exists", "update"][..],
    ] {
        let mut again = args.clone();
        again.extend(extra.iter().map(|s| s.to_string()));
        again.push("--resume".into());
        let rerun = dbprov_with(&["run", &input], &again).await;
        assert_eq!(rerun.exit, 0, "{extra:?}: {}", rerun.stderr);
        let (_, rows) = dir.results("r.csv");
        assert!(
            rows.iter().all(|r| r["_status"] == "created"),
            "{extra:?}: {rows:?}"
        );
    }
    let results = dir.path("r.csv").to_string_lossy().into_owned();
    let undo = dbprov_with(&["rollback", &results, "--yes"], &args[2..]).await;
    assert_eq!(undo.exit, 0, "{}", undo.stderr);
    let deletes = hostile.log().iter().filter(|(m, _)| m == "DELETE").count();
    assert_eq!(deletes, 3, "all three, the missed one too");
}

#[tokio::test]
async fn a_shards_retry_command_gives_a_share_of_failures_as_rows() {
    let sandbox = holding_names(&[]).await;
    let dir = JobDir::new();
    let mut csv = tenants("t", 20);
    for i in 0..20 {
        csv.push_str(&format!("bad-{i},DATASOURCE,no-such-source,\n"));
    }
    let input = dir.write("t.csv", &csv);
    let mut args = job_args(&sandbox, &dir, "r.csv");
    let summary = dir.path("s.json");
    args.extend(
        [
            "--shard",
            "0/2",
            "--max-failures",
            "90%",
            "--summary-json",
            summary.to_str().unwrap(),
        ]
        .map(str::to_owned),
    );
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let command = summary["retry_command"].as_str().unwrap().to_owned();
    assert!(!command.contains('%'), "{command}");
    // And the command works as printed.
    let words: Vec<String> = command
        .split(' ')
        .skip(1)
        .map(|w| w.trim_matches('\'').to_owned())
        .collect();
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    let retry = dbprov(&refs).await;
    assert_eq!(retry.exit, 1, "{}", retry.stderr);
}

#[tokio::test]
async fn a_record_the_list_misses_stands_through_a_lost_answer_of_its_resend() {
    // t-0002 is there before the job; the job creates t-0001 and t-0003.
    let hostile = Hostile::start(HostileState {
        existing: std::sync::Mutex::new(["t-0002".to_owned()].into()),
        ..HostileState::default()
    })
    .await;
    let dir = JobDir::new();
    let input = dir.write("t.csv", &tenants("t", 3));
    let mut args = hostile_args(&hostile, &dir, "r.csv");
    args.extend(["--timeout", "1s"].map(str::to_owned));
    assert_eq!(dbprov_with(&["run", &input], &args).await.exit, 0);
    // The list misses two of them, and their re-sent POSTs get no answer in time.
    for name in ["t-0001", "t-0002"] {
        hostile
            .state
            .unlisted
            .lock()
            .unwrap()
            .insert(name.to_owned());
        hostile
            .state
            .slow_next_post
            .lock()
            .unwrap()
            .insert(name.to_owned());
    }
    let mut again = args.clone();
    again.push("--resume".into());
    let rerun = dbprov_with(&["run", &input], &again).await;
    assert_eq!(rerun.exit, 0, "{}", rerun.stderr);
    let (_, rows) = dir.results("r.csv");
    let got = statuses(&rows);
    assert_eq!(
        (&*got["t-0001"], &*got["t-0002"], &*got["t-0003"]),
        ("created", "exists", "created"),
        "{rows:?}"
    );
    let results = dir.path("r.csv").to_string_lossy().into_owned();
    let undo = dbprov_with(&["rollback", &results, "--yes"], &args[2..]).await;
    assert_eq!(undo.exit, 0, "{}", undo.stderr);
    assert_eq!(
        *hostile.state.existing.lock().unwrap(),
        ["t-0002".to_owned()].into(),
        "only what was there before is left"
    );
}

#[tokio::test]
async fn a_created_record_whose_resend_is_refused_claims_nothing_later() {
    let hostile = Hostile::start(HostileState::default()).await;
    let dir = JobDir::new();
    let input = dir.write(
        "t.csv",
        "name,connectionType,datasourceName\nw1,DATASOURCE,x\n",
    );
    let args = hostile_args(&hostile, &dir, "r.csv");
    assert_eq!(dbprov_with(&["run", &input], &args).await.exit, 0);
    // Someone deletes it, and its datasource: the resend is refused, clearly.
    hostile.state.existing.lock().unwrap().remove("w1");
    hostile
        .state
        .refused
        .lock()
        .unwrap()
        .insert("w1".to_owned());
    let mut again = args.clone();
    again.push("--resume".into());
    assert_eq!(dbprov_with(&["run", &input], &again).await.exit, 1);
    let (_, rows) = dir.results("r.csv");
    assert_eq!(
        rows[0]["_error_code"], "INVALID_DATASOURCE_NAME",
        "{rows:?}"
    );
    assert!(!rows[0]["_error_message"].contains("may"), "{rows:?}");
    // Someone else creates it: not the job's, so neither created nor rolled back.
    hostile.state.refused.lock().unwrap().clear();
    hostile
        .state
        .existing
        .lock()
        .unwrap()
        .insert("w1".to_owned());
    assert_eq!(dbprov_with(&["run", &input], &again).await.exit, 0);
    let (_, rows) = dir.results("r.csv");
    assert_eq!(rows[0]["_status"], "exists", "{rows:?}");
    let results = dir.path("r.csv").to_string_lossy().into_owned();
    let undo = dbprov_with(&["rollback", &results, "--yes"], &args[2..]).await;
    assert_eq!(undo.exit, 0, "{}", undo.stderr);
    assert!(hostile.state.existing.lock().unwrap().contains("w1"));
}
