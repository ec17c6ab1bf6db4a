//! The ledger at its edges: records settled without a request, requests cut short, rows
//! that a retry or a rollback reads back, and names taken exactly. Each case once left a
//! results file that lost or falsified a record.

use std::collections::BTreeSet;

use crate::common::{Api, set_flag, tenants};
use crate::fixture::{Job, RESULTS};
use crate::hostile::{Hostile, HostileState, hostile_args};
use crate::process::{dbprov_with, signal, spawn_dbprov, until_requests};

async fn names(api: &Api) -> BTreeSet<String> {
    api.workspace_names().await.into_iter().collect()
}

/// The fast flags with the list before the run (a lost answer needs it for the job to
/// know a workspace is its own).
fn listing(job: &Job, output: &str) -> Vec<String> {
    let mut args = job.args(output);
    args.retain(|a| a != "--no-preflight");
    args
}

/// Runs `command` with `args`; once the list is answered, every write is applied and
/// answered 500 (a lost answer); faults end with the run.
async fn lose_writes_after_the_list(job: &Job, command: &[&str], args: &[String]) -> i32 {
    let mut args = args.to_vec();
    set_flag(&mut args, "--rate", "2/s");
    let mut all: Vec<&str> = command.to_vec();
    all.extend(args.iter().map(String::as_str));
    all.extend(["--max-attempts", "1"]);
    let mut child = spawn_dbprov(&all);
    until_requests(&job.api, &mut child, 1).await;
    job.sandbox.set_fault_rates(0.0, 1.0, 0.0).unwrap();
    let status = child.wait().await.unwrap();
    job.sandbox.set_fault_rates(0.0, 0.0, 0.0).unwrap();
    status.code().unwrap_or(-1)
}

#[tokio::test]
async fn a_record_settled_by_the_list_ties_the_file_to_its_api() {
    let job = Job::new().await;
    let input = job.input(&tenants("t", 4));
    let args = listing(&job, RESULTS);
    assert_eq!(
        lose_writes_after_the_list(&job, &["run", &input], &args).await,
        1
    );
    // Listed now, absent before: created, without a request (`_attempts` 0).
    let second = dbprov_with(&["run", &input, "--resume"], &args).await;
    assert_eq!(second.exit, 0, "{}", second.stderr);
    let rows = job.rows();
    assert!(
        rows.iter()
            .all(|r| r["_status"] == "created" && r["_attempts"] == "0"),
        "{rows:?}"
    );
    let mut elsewhere = args.clone();
    let localhost = job.sandbox.url().replace("127.0.0.1", "localhost");
    set_flag(&mut elsewhere, "--base-url", &localhost);
    let refused = dbprov_with(&["run", &input, "--resume"], &elsewhere).await;
    assert_eq!(refused.exit, 2, "{}", refused.stderr);
    let undo = dbprov_with(
        &[
            "rollback",
            &job.path(RESULTS),
            "--yes",
            "-o",
            &job.path("undo.csv"),
        ],
        &args[2..],
    )
    .await;
    assert_eq!(undo.exit, 0, "{}", undo.stderr);
    assert!(names(&job.api).await.is_empty());
}

#[tokio::test]
async fn a_put_cut_short_leaves_its_values_unknown_and_they_are_put_again() {
    let job = Job::new().await;
    let dark = job.dir.write(
        "dark.csv",
        "name,connectionType,themeName\nx,MULTI_DATASOURCE,dark\n",
    );
    let corporate = job.dir.write(
        "corporate.csv",
        "name,connectionType,themeName\nx,MULTI_DATASOURCE,corporate\n",
    );
    let args = listing(&job, RESULTS);
    assert_eq!(dbprov_with(&["run", &dark], &args).await.exit, 0);
    // The PUT of the new values is applied, and its answer lost.
    let command = ["run", &corporate, "--resume", "--on-exists", "update"];
    assert_eq!(lose_writes_after_the_list(&job, &command, &args).await, 1);
    let row = job.rows()[0].clone();
    assert_eq!(row["_status"], "created", "{row:?}");
    assert!(
        row["_error_message"].contains("which values the workspace holds is unknown"),
        "{row:?}"
    );
    // Back to the first values: the record's are unknown, so they are PUT, not trusted.
    let mut update = args.clone();
    update.extend(["--on-exists", "update"].map(str::to_owned));
    let third = dbprov_with(&["run", &dark, "--resume"], &update).await;
    assert_eq!(third.exit, 0, "{}", third.stderr);
    let held = job.api.get("/_sandbox/workspaces").await;
    assert_eq!(held[0]["themeName"], "dark");
    let row = &job.rows()[0];
    assert_eq!(
        (row["_status"].as_str(), row["themeName"].as_str()),
        ("created", "dark")
    );
}

#[tokio::test]
async fn a_lost_answer_whose_values_were_refused_since_is_not_claimed_with_them() {
    let job = Job::new().await;
    let good = job.input("name,connectionType,datasourceName\nx,DATASOURCE,postgres-main\n");
    let args = listing(&job, RESULTS);
    assert_eq!(
        lose_writes_after_the_list(&job, &["run", &good], &args).await,
        1
    );
    let bad = job.dir.write(
        "bad.csv",
        "name,connectionType,datasourceName\nx,DATASOURCE,nope\n",
    );
    for _ in 0..2 {
        let again = dbprov_with(&["run", &bad, "--resume"], &args).await;
        assert_eq!(again.exit, 1, "the values cannot be PUT: {}", again.stderr);
        let row = &job.rows()[0];
        assert_eq!(row["_status"], "failed", "{row:?}");
    }
    assert_eq!(
        job.api.get("/_sandbox/workspaces").await[0]["datasourceName"],
        "postgres-main"
    );
}

#[tokio::test]
async fn no_command_continues_a_file_whose_operations_were_cleared() {
    let job = Job::new().await;
    let input = job.input(&tenants("t", 3));
    assert_eq!(job.run(&["run", &input]).await.exit, 0);
    let path = job.path(RESULTS);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(",create,", ",,");
    std::fs::write(&path, text).unwrap();
    for command in ["delete", "update", "run"] {
        let run = job.run(&[command, &input, "--resume"]).await;
        assert_eq!(run.exit, 2, "{command}: {}", run.stderr);
        assert!(run.stderr.contains("_operation"), "{}", run.stderr);
    }
    assert_eq!(names(&job.api).await.len(), 3, "nothing was deleted");
}

#[tokio::test]
async fn a_put_after_a_taken_name_cut_short_by_kill_9_claims_nothing() {
    // The list misses a workspace that exists; the PUT that follows its taken name hangs.
    let hostile = Hostile::start(HostileState {
        slow_first_put: true,
        ..HostileState::default()
    })
    .await;
    hostile
        .state
        .existing
        .lock()
        .unwrap()
        .insert("cust".to_owned());
    hostile
        .state
        .unlisted
        .lock()
        .unwrap()
        .insert("cust".to_owned());
    let job = Job::new().await;
    let input = job.input("name,connectionType,themeName\ncust,MULTI_DATASOURCE,dark\n");
    let mut args = hostile_args(&hostile, &job.dir, RESULTS);
    set_flag(&mut args, "--rate", "unlimited");
    args.extend(["--on-exists", "update", "--timeout", "30s"].map(str::to_owned));
    let mut command = vec!["run", input.as_str()];
    command.extend(args.iter().map(String::as_str));
    let mut child = spawn_dbprov(&command);
    let started = std::time::Instant::now();
    while !hostile.log().iter().any(|(m, _)| m == "PUT") {
        assert!(started.elapsed().as_secs() < 30, "{:?}", hostile.log());
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    signal(&child, libc::SIGKILL);
    let _ = child.wait().await;
    hostile.state.unlisted.lock().unwrap().clear();
    let plain = hostile_args(&hostile, &job.dir, RESULTS);
    let undo = dbprov_with(
        &[
            "rollback",
            &job.path(RESULTS),
            "--yes",
            "-o",
            &job.path("undo.csv"),
        ],
        &plain[2..],
    )
    .await;
    assert!([0, 1].contains(&undo.exit), "{}", undo.stderr);
    assert!(
        hostile.state.existing.lock().unwrap().contains("cust"),
        "a workspace that existed before the run is never rolled back: {}",
        undo.stderr
    );
}

#[tokio::test]
async fn a_rollbacks_results_name_the_workspaces_as_they_were_deleted() {
    let job = Job::new().await;
    let input = job.input("name,connectionType\n\"Acme \",MULTI_DATASOURCE\n");
    assert_eq!(job.run(&["run", &input]).await.exit, 0);
    assert_eq!(names(&job.api).await, BTreeSet::from(["Acme".to_owned()]));
    // The rollback's DELETE fails; its retry (which takes names exactly) finishes it.
    job.sandbox.set_fault_rates(1.0, 0.0, 0.0).unwrap();
    let undo_path = job.path("undo.csv");
    let undo = dbprov_with(
        &[
            "rollback",
            &job.path(RESULTS),
            "--yes",
            "-o",
            &undo_path,
            "--max-attempts",
            "1",
        ],
        &job.args(RESULTS)[2..],
    )
    .await;
    assert_eq!(undo.exit, 1, "{}", undo.stderr);
    job.sandbox.set_fault_rates(0.0, 0.0, 0.0).unwrap();
    assert_eq!(job.rows_of("undo.csv")[0]["name"], "Acme");
    let retry = job.run_to(None, &["retry", &undo_path]).await;
    assert_eq!(retry.exit, 0, "{}", retry.stderr);
    assert!(names(&job.api).await.is_empty());
}

#[tokio::test]
async fn a_retry_sends_no_malformed_row_until_it_is_mended() {
    let job = Job::new().await;
    let input =
        job.input("name,connectionType,owner\nAcme,MULTI_DATASOURCE,ops@acme.example,extra\n");
    assert_eq!(job.run(&["run", &input]).await.exit, 1);
    let path = job.path(RESULTS);
    let retry = job.run_to(None, &["retry", &path]).await;
    assert_eq!(retry.exit, 1, "{}", retry.stderr);
    let row = job.rows()[0].clone();
    assert_eq!(row["_error_code"], "MALFORMED_ROW", "{row:?}");
    assert!(
        row["_error_message"].contains("ops@acme.example,extra"),
        "{row:?}"
    );
    assert_eq!(job.writes().await, 0);
    // Mended, with its code cleared: sent.
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(",MALFORMED_ROW,", ",,");
    std::fs::write(&path, text).unwrap();
    let mended = job.run_to(None, &["retry", &path]).await;
    assert_eq!(mended.exit, 0, "{}", mended.stderr);
    assert_eq!(job.rows()[0]["_status"], "created");
}

#[tokio::test]
async fn a_name_refused_for_its_spaces_takes_no_name_from_the_rows_after_it() {
    let job = Job::holding(&["Globex"]).await;
    let input = job.input("name\n\"Globex \"\nGlobex\n");
    let run = job.run(&["delete", "--yes", &input]).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let rows = job.rows();
    assert_eq!(rows[0]["_error_code"], "INVALID_NAME");
    assert_eq!(rows[1]["_status"], "deleted", "{rows:?}");
    assert!(names(&job.api).await.is_empty());
}

#[tokio::test]
async fn a_taken_name_is_put_once_the_job_is_told_to_update() {
    let job = Job::holding(&["cust"]).await;
    let input = job.input("name,connectionType,themeName\ncust,MULTI_DATASOURCE,dark\n");
    assert_eq!(job.run(&["run", &input]).await.exit, 0);
    assert_eq!(job.rows()[0]["_status"], "exists");
    let update = job
        .run(&["run", &input, "--resume", "--on-exists", "update"])
        .await;
    assert_eq!(update.exit, 0, "{}", update.stderr);
    assert_eq!(job.rows()[0]["_status"], "updated");
    assert_eq!(
        job.api.get("/_sandbox/workspaces").await[0]["themeName"],
        "dark"
    );
}
