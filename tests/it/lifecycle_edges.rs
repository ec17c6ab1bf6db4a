//! The lifecycle commands where they could report wrongly: a wrong API root, odd names,
//! a results file of another command, a file that cannot say where its rows came from.

use std::collections::BTreeMap;

use crate::common::{
    Api, JobDir, ResultRow, holding_names, job_args, job_args_to, methods, set_flag, statuses,
    tenants,
};
use crate::hostile::{Hostile, HostileState, hostile_args};
use crate::process::{dbprov, dbprov_with};

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
