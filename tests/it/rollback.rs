//! `dbprov rollback`: it deletes exactly what a run created, on the API where it was created,
//! after a confirmation, and refuses a file that cannot say so.

use std::collections::{BTreeMap, BTreeSet};

use dbprov::sandbox::FaultConfig;

use crate::common::{
    Api, args_for, datasource_csv, expect, held, holding, job_args, log, methods, name_csv, names,
    names_sent, requests, set_flag, statuses, tally, tenants,
};
use crate::fixture::Job;
use crate::process::dbprov_with;

/// A run of 20 new and 10 listed names against a sandbox with these faults: returns the
/// job (results in `results.csv`) and the listed names.
async fn a_run_to_roll_back(faults: FaultConfig) -> (Job, Vec<String>) {
    let old = names("old", 10);
    let job = Job::on(holding(&old, faults).await);
    let mut all = names("new", 20);
    all.extend(old.clone());
    let input = job.input(&datasource_csv(&all));
    let mut args = job.args_with_preflight("results.csv");
    args.extend(["--max-attempts", "30"].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    assert_eq!(
        tally(&job.rows()),
        expect(&[("created", 20), ("exists", 10)])
    );
    (job, old)
}

async fn rollback_leaves_exactly_what_was_there(faults: FaultConfig) {
    let (job, old) = a_run_to_roll_back(faults).await;
    let results = job.path("results.csv");
    let mut args = job.args_with_preflight("undo.csv");
    args.extend(["--max-attempts", "30"].map(str::to_owned));
    let before = log(&job.api).await.len();

    let rollback = dbprov_with(&["rollback", &results, "--yes"], &args).await;
    assert_eq!(rollback.exit, 0, "{}", rollback.stderr);
    let undo = job.rows_of("undo.csv");
    assert_eq!(tally(&undo), expect(&[("deleted", 20)]), "{undo:?}");
    let run_rows = job.rows();
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
    let sent = log(&job.api).await.split_off(before);
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
    assert_eq!(held(&job.api).await, old.into_iter().collect());
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
    let (job, _) = a_run_to_roll_back(FaultConfig::default()).await;
    let before = job.requests().await;
    let args = job.args_with_preflight("undo.csv");
    let results = job.dir.path("results.csv");
    let refused = dbprov_with(&["rollback", results.to_str().unwrap()], &args).await;
    assert_eq!(refused.exit, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("--yes"),
        "the refusal says how to confirm: {}",
        refused.stderr
    );
    assert_eq!(job.requests().await, before, "nothing sent");
    assert_eq!(held(&job.api).await.len(), 30);

    // The same command, confirmed, does it.
    let confirmed = dbprov_with(&["rollback", results.to_str().unwrap(), "--yes"], &args).await;
    assert_eq!(confirmed.exit, 0, "{}", confirmed.stderr);
    assert_eq!(held(&job.api).await.len(), 10);
}

#[tokio::test]
async fn rolling_back_a_record_of_deletions_is_refused() {
    let (job, _) = a_run_to_roll_back(FaultConfig::default()).await;
    let results = job.dir.path("results.csv");
    let args = job.args_with_preflight("undo.csv");
    let rollback = dbprov_with(&["rollback", results.to_str().unwrap(), "--yes"], &args).await;
    assert_eq!(rollback.exit, 0, "{}", rollback.stderr);

    // A delete's results, of names that exist.
    let input = job.dir.write("offboard.csv", &name_csv(&names("old", 3)));
    let args = job.args_with_preflight("deleted.csv");
    let delete = dbprov_with(&["delete", "--yes", &input], &args).await;
    assert_eq!(delete.exit, 0, "{}", delete.stderr);

    let before = job.requests().await;
    for record in ["undo.csv", "deleted.csv"] {
        let args = job.args_with_preflight(&format!("re-{record}"));
        let path = job.dir.path(record);
        let refused = dbprov_with(&["rollback", path.to_str().unwrap(), "--yes"], &args).await;
        assert_eq!(refused.exit, 2, "{record}: {}", refused.stderr);
        assert!(
            refused.stderr.contains("deletions"),
            "{record}: the message says the file records deletions: {}",
            refused.stderr
        );
    }
    assert_eq!(job.requests().await, before, "nothing sent");
    assert_eq!(held(&job.api).await.len(), 7);
}

#[tokio::test]
async fn rollback_of_a_run_that_created_nothing_has_nothing_to_roll_back() {
    let old = names("old", 5);
    let job = Job::holding(&old).await;
    let input = job.input(&datasource_csv(&old));
    let run = dbprov_with(&["run", &input], &job.args_with_preflight("results.csv")).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    assert_eq!(tally(&job.rows()), expect(&[("exists", 5)]));
    let before = job.requests().await;
    let results = job.dir.path("results.csv");
    let args = job.args_with_preflight("undo.csv");
    let rollback = dbprov_with(&["rollback", results.to_str().unwrap(), "--yes"], &args).await;
    assert_eq!(rollback.exit, 0, "{}", rollback.stderr);
    assert!(
        rollback.stderr.contains("nothing to roll back"),
        "{}",
        rollback.stderr
    );
    assert_eq!(job.requests().await, before, "nothing sent");
    assert_eq!(held(&job.api).await, old.into_iter().collect());
}

#[tokio::test]
async fn rollback_against_another_target_is_refused_naming_the_target() {
    let (job, _) = a_run_to_roll_back(FaultConfig::default()).await;
    let other = holding(&names("new", 20), FaultConfig::default()).await;
    let other_api = Api::new(&other);
    let before = job.requests().await;
    let results = job.dir.path("results.csv");
    let args = args_for(&other, &job.dir, "undo.csv");
    let rollback = dbprov_with(&["rollback", results.to_str().unwrap(), "--yes"], &args).await;
    // Most likely a wrong --base-url: said, with the one the rows name.
    assert_eq!(rollback.exit, 2, "{}", rollback.stderr);
    assert!(
        rollback
            .stderr
            .contains(&format!("give --base-url {}", job.sandbox.url())),
        "{}",
        rollback.stderr
    );
    assert_eq!(requests(&other_api).await, 0, "nothing sent");
    assert_eq!(job.requests().await, before);
    assert_eq!(other_api.workspace_names().await.len(), 20);
}

#[tokio::test]
async fn rollback_refuses_a_file_that_cannot_say_where_its_rows_were_created() {
    let job = Job::holding(&["a"]).await;
    // Written before _target existed.
    let legacy = job.dir.write(
        "old.csv",
        "_row,_status,_error_code,_error_message,_http_status,_attempts,_latency_ms,_finished_at,name\n1,created,,,200,1,5,2026-01-01T00:00:00Z,a\n",
    );
    let refused = job
        .run_to(Some("undo.csv"), &["rollback", &legacy, "--yes"])
        .await;
    assert_eq!(refused.exit, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("_target"), "{}", refused.stderr);
    // Created on another API.
    let elsewhere = job.dir.write(
        "other.csv",
        "_row,_status,_error_code,_error_message,_http_status,_attempts,_latency_ms,_finished_at,_target,name\n1,created,,,200,1,5,2026-01-01T00:00:00Z,https://api.example.com,a\n",
    );
    let refused = job
        .run_to(Some("undo.csv"), &["rollback", &elsewhere, "--yes"])
        .await;
    assert_eq!(refused.exit, 2, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("--base-url https://api.example.com"),
        "{}",
        refused.stderr
    );
    assert!(methods(&job.api).await.is_empty(), "nothing sent");
    assert_eq!(job.api.workspace_names().await, ["a"]);
}

#[tokio::test]
async fn a_rollbacks_dry_run_lists_what_it_would_delete_and_sends_nothing() {
    let job = Job::holding(&["t-0001"]).await;
    let input = job.dir.write("t.csv", &tenants("t", 6));
    let args = job.args("r.csv");
    assert_eq!(dbprov_with(&["run", &input], &args).await.exit, 0);
    let sent = methods(&job.api).await.len();
    let results = job.path("r.csv");
    let mut dry = args.clone();
    set_flag(&mut dry, "-o", job.dir.path("undo.csv").to_str().unwrap());
    let plan = dbprov_with(&["rollback", &results, "--dry-run"], &dry).await;
    assert_eq!(plan.exit, 0, "{}", plan.stderr);
    let rows = job.rows_of("undo.csv");
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str()).collect();
    assert_eq!(
        names.len(),
        5,
        "the five created, not the one that existed: {rows:?}"
    );
    assert!(!names.contains(&"t-0001"));
    assert!(rows.iter().all(|r| r["_status"] == "planned"));
    assert_eq!(methods(&job.api).await.len(), sent, "nothing sent");
    assert_eq!(job.api.workspace_names().await.len(), 6);
}

#[tokio::test]
async fn retrying_deletions_against_another_api_is_refused() {
    let job = Job::new().await;
    let there = holding(&["t-0001", "t-0002"], FaultConfig::default()).await;
    let input = job.dir.write("t.csv", &tenants("t", 4));
    assert_eq!(job.run_to(Some("r.csv"), &["run", &input]).await.exit, 0);
    let results = job.path("r.csv");
    let undo = job
        .run_to(Some("undo.csv"), &["rollback", &results, "--yes"])
        .await;
    assert_eq!(undo.exit, 0, "{}", undo.stderr);
    // The rollback's results, re-sent to an API that never had these workspaces created.
    let undo_path = job.path("undo.csv");
    let there_args = job_args(&there, &job.dir, "again.csv");
    let retry = dbprov_with(&["retry", &undo_path], &there_args).await;
    assert_eq!(retry.exit, 2, "{}", retry.stderr);
    assert!(
        retry
            .stderr
            .contains(&format!("--base-url {}", job.sandbox.url())),
        "{}",
        retry.stderr
    );
    let there_api = Api::new(&there);
    assert!(methods(&there_api).await.is_empty(), "nothing sent");
    assert_eq!(there_api.workspace_names().await.len(), 2);
}

#[tokio::test]
async fn rows_without_a_target_are_not_rolled_back_after_their_file_is_upgraded() {
    let job = Job::holding(&["b1", "b2"]).await;
    let legacy = job.dir.write(
        "old.csv",
        "_row,_status,_error_code,_error_message,_http_status,_attempts,_latency_ms,_finished_at,name,connectionType\n\
         1,created,,,200,1,5,2026-01-01T00:00:00Z,b1,MULTI_DATAMART\n\
         2,created,,,200,1,5,2026-01-01T00:00:00Z,b2,MULTI_DATAMART\n\
         3,failed,HTTP_500,x,500,1,5,2026-01-01T00:00:00Z,b3,MULTI_DATAMART\n",
    );
    // A retry gives the file its _target column, empty for the rows it keeps.
    let retry = dbprov_with(&["retry", &legacy], &job.args("x.csv")[2..]).await;
    assert_eq!(retry.exit, 0, "{}", retry.stderr);
    let undo = dbprov_with(&["rollback", &legacy, "--yes"], &job.args("undo.csv")).await;
    // Only b3, which the retry created (and recorded against this API), is undone: b1
    // and b2 say nothing of where they were created.
    assert_eq!(undo.exit, 0, "{}", undo.stderr);
    let undone = job.rows_of("undo.csv");
    assert_eq!(
        statuses(&undone),
        BTreeMap::from([("b3".into(), "deleted".into())])
    );
    assert_eq!(job.api.workspace_names().await, ["b1", "b2"]);
}

#[tokio::test]
async fn a_rollback_of_a_later_run_does_not_continue_an_earlier_rollbacks_file() {
    let job = Job::new().await;
    let input = job.dir.write("t.csv", &tenants("t", 4));
    let args = job.args("r.csv");
    let results = job.path("r.csv");
    let undo = || {
        let mut undo = job.args("undo.csv");
        undo.push("--yes".into());
        undo
    };
    assert_eq!(dbprov_with(&["run", &input], &args).await.exit, 0);
    assert_eq!(dbprov_with(&["rollback", &results], &undo()).await.exit, 0);
    let mut overwrite = args.clone();
    overwrite.push("--overwrite".into());
    assert_eq!(dbprov_with(&["run", &input], &overwrite).await.exit, 0);
    assert_eq!(job.api.workspace_names().await.len(), 4);
    let stale = dbprov_with(&["rollback", &results, "--resume"], &undo()).await;
    assert_eq!(stale.exit, 2, "{}", stale.stderr);
    assert!(
        stale.stderr.contains("earlier rollback"),
        "{}",
        stale.stderr
    );
    assert_eq!(
        job.api.workspace_names().await.len(),
        4,
        "nothing deleted, nothing claimed"
    );
    let mut fresh = undo();
    set_flag(
        &mut fresh,
        "-o",
        job.dir.path("undo2.csv").to_str().unwrap(),
    );
    assert_eq!(dbprov_with(&["rollback", &results], &fresh).await.exit, 0);
    assert!(job.api.workspace_names().await.is_empty());
}
