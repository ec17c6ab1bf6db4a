//! The results file as the job's record: which API a row was done on (`_target`), which
//! command wrote the file, what counts as done, and outcomes of sent requests never replaced
//! by accident.

use dbprov::sandbox::Sandbox;

use crate::common::{
    Api, JobDir, assert_one_row_per_input_row, by_row, holding_names, job_args, methods,
    plain_sandbox, requests, row_numbers, run_against, sandbox_with, set_flag, tenants,
    workspace_counts, writes,
};
use crate::process::{dbprov, dbprov_with};

#[tokio::test]
async fn a_results_file_is_itself_a_valid_input_file() {
    let sandbox = plain_sandbox().await;
    let dir = JobDir::new();
    let input = dir.write(
        "in.csv",
        "name,connectionType,owner\na,MULTI_DATAMART,ops\n",
    );
    run_against(&sandbox, &dir, &input, &[]).await;
    std::fs::rename(dir.path("results.csv"), dir.path("first.csv")).unwrap();
    let first = dir.path("first.csv");
    let run = run_against(&sandbox, &dir, first.to_str().unwrap(), &[]).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let (header, rows) = dir.results("results.csv");
    assert_eq!(
        header[9..],
        ["name", "connectionType", "owner"],
        "no result columns twice"
    );
    assert_eq!(rows[0]["_status"], "exists");
    assert_eq!(rows[0]["owner"], "ops");
}

#[tokio::test]
async fn a_dry_run_neither_counts_as_done_nor_changes_earlier_results() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let args = job_args(&sandbox, &dir, "results.csv");
    let input = dir.write("in.csv", &tenants("t", 3));
    let plan = dbprov_with(&["run", &input, "--dry-run"], &args).await;
    assert_eq!(plan.exit, 0);
    let planned = std::fs::read_to_string(dir.path("results.csv")).unwrap();

    let refused = dbprov_with(&["run", &input, "--dry-run", "--resume"], &args).await;
    assert_eq!(refused.exit, 2);
    assert!(
        refused.stderr.contains("a dry run does not change"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        std::fs::read_to_string(dir.path("results.csv")).unwrap(),
        planned
    );

    // Planned rows are still to do: a resume sends them.
    let real = dbprov_with(&["run", &input, "--resume"], &args).await;
    assert_eq!(real.exit, 0, "{}", real.stderr);
    assert_eq!(requests(&api).await, 3);
}

#[tokio::test]
async fn successes_on_another_target_are_sent_again_and_the_target_is_recorded() {
    let dir = JobDir::new();
    let input = dir.write("in.csv", &tenants("t", 20));
    let results = dir.path("results.csv");
    let rehearsal = dbprov(&[
        "run",
        &input,
        "--sandbox",
        "-o",
        results.to_str().unwrap(),
        "--rate",
        "unlimited",
    ])
    .await;
    assert_eq!(rehearsal.exit, 0, "{}", rehearsal.stderr);
    let (header, rows) = dir.results("results.csv");
    assert_eq!(
        header[..9],
        [
            "_row",
            "_status",
            "_error_code",
            "_error_message",
            "_http_status",
            "_attempts",
            "_latency_ms",
            "_finished_at",
            "_target"
        ]
    );
    assert!(rows.iter().all(|r| r["_target"] == "sandbox"), "{rows:?}");

    // The same job against another API, given with a trailing slash.
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let mut args = job_args(&sandbox, &dir, "results.csv");
    set_flag(&mut args, "--base-url", &format!("{}/", sandbox.url()));
    let real = dbprov_with(&["run", &input, "--resume"], &args).await;
    assert_eq!(real.exit, 0, "{}", real.stderr);
    assert_eq!(
        writes(&api).await,
        20,
        "every row is sent to the new target"
    );
    let (_, rows) = dir.results("results.csv");
    assert_one_row_per_input_row(&rows, 20);
    for row in &rows {
        assert_eq!(row["_status"], "created");
        assert_eq!(row["_target"], sandbox.url(), "without the trailing '/'");
    }

    assert_eq!(workspace_counts(&api).await.len(), 20);

    // Against the same target (now without the slash), nothing is sent.
    set_flag(&mut args, "--base-url", &sandbox.url());
    let again = dbprov_with(&["run", &input, "--resume"], &args).await;
    assert_eq!(again.exit, 0, "{}", again.stderr);
    assert_eq!(writes(&api).await, 20);
    let (_, kept) = dir.results("results.csv");
    assert_eq!(by_row(&kept), by_row(&rows), "every row kept as it was");
}

#[tokio::test]
async fn a_dry_run_records_no_target() {
    let dir = JobDir::new();
    let input = dir.write("in.csv", &tenants("t", 3));
    let results = dir.path("plan.csv");
    let plan = dbprov(&[
        "run",
        &input,
        "--dry-run",
        "--sandbox",
        "-o",
        results.to_str().unwrap(),
    ])
    .await;
    assert_eq!(plan.exit, 0, "{}", plan.stderr);
    let (_, rows) = dir.results("plan.csv");
    assert_one_row_per_input_row(&rows, 3);
    assert!(
        rows.iter()
            .all(|r| r["_status"] == "planned" && r["_target"].is_empty()),
        "{rows:?}"
    );
}

/// A results file with the outcomes of sent requests: five rows created.
async fn sent_outcomes() -> (Sandbox, JobDir, Vec<String>, String, Vec<u8>) {
    let sandbox = plain_sandbox().await;
    let dir = JobDir::new();
    let args = job_args(&sandbox, &dir, "results.csv");
    let input = dir.write("in.csv", &tenants("t", 5));
    let first = dbprov_with(&["run", &input], &args).await;
    assert_eq!(first.exit, 0, "{}", first.stderr);
    let bytes = std::fs::read(dir.path("results.csv")).unwrap();
    (sandbox, dir, args, input, bytes)
}

#[tokio::test]
async fn a_dry_run_never_replaces_sent_outcomes() {
    let (_sandbox, dir, args, input, before) = sent_outcomes().await;
    let plan = dbprov_with(&["run", &input, "--dry-run"], &args).await;
    assert_eq!(plan.exit, 2, "{}", plan.stderr);
    assert_eq!(std::fs::read(dir.path("results.csv")).unwrap(), before);
}

#[tokio::test]
async fn a_plain_run_never_replaces_sent_outcomes_without_overwrite() {
    let (sandbox, dir, args, input, before) = sent_outcomes().await;
    let api = Api::new(&sandbox);
    let plain = dbprov_with(&["run", &input], &args).await;
    assert_eq!(plain.exit, 2, "{}", plain.stderr);
    assert!(
        plain.stderr.contains("--overwrite") && plain.stderr.contains("--resume"),
        "says what to do instead: {}",
        plain.stderr
    );
    assert_eq!(std::fs::read(dir.path("results.csv")).unwrap(), before);
    assert_eq!(writes(&api).await, 5, "nothing sent");

    let overwrite = dbprov_with(&["run", &input, "--overwrite"], &args).await;
    assert_eq!(overwrite.exit, 0, "{}", overwrite.stderr);
    assert_eq!(writes(&api).await, 10, "sent again");
    let (_, rows) = dir.results("results.csv");
    assert_one_row_per_input_row(&rows, 5);
    assert!(rows.iter().all(|r| r["_status"] == "exists"), "{rows:?}");
}

#[tokio::test]
async fn a_plain_run_may_replace_a_plan() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let args = job_args(&sandbox, &dir, "results.csv");
    let input = dir.write("in.csv", &tenants("t", 5));
    let plan = dbprov_with(&["run", &input, "--dry-run"], &args).await;
    assert_eq!(plan.exit, 0, "{}", plan.stderr);
    let real = dbprov_with(&["run", &input], &args).await;
    assert_eq!(
        real.exit, 0,
        "planned rows are no sent outcomes: {}",
        real.stderr
    );
    assert_eq!(writes(&api).await, 5);
    let (_, rows) = dir.results("results.csv");
    assert!(rows.iter().all(|r| r["_status"] == "created"));
}

#[tokio::test]
async fn one_api_spelled_two_ways_is_one_target() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write("in.csv", &tenants("t", 5));
    let mut args = job_args(&sandbox, &dir, "results.csv");
    let first = dbprov_with(&["run", &input, "--resume"], &args).await;
    assert_eq!(first.exit, 0, "{}", first.stderr);
    let shouted = format!("{}/", sandbox.url().replace("http://", "HTTP://"));
    set_flag(&mut args, "--base-url", &shouted);
    let again = dbprov_with(&["run", &input, "--resume"], &args).await;
    assert_eq!(again.exit, 0, "{}", again.stderr);
    assert_eq!(writes(&api).await, 5, "nothing sent again");
    let (_, rows) = dir.results("results.csv");
    assert!(rows.iter().all(|r| r["_status"] == "created"), "{rows:?}");
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
async fn results_are_in_input_order_whatever_the_order_rows_finish_in() {
    let sandbox = sandbox_with(dbprov::sandbox::FaultConfig {
        latency: std::time::Duration::from_millis(1),
        jitter: std::time::Duration::from_millis(20),
        fail_rate: 0.3,
        ..Default::default()
    })
    .await;
    let dir = JobDir::new();
    let input = dir.write("in.csv", &tenants("order", 60));
    let mut args = job_args(&sandbox, &dir, "out.csv");
    args.extend(["--concurrency", "8", "--max-attempts", "1"].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert!(run.exit <= 1, "{}", run.stderr);
    let (_, rows) = dir.results("out.csv");
    assert_eq!(row_numbers(&rows), (1..=60).collect::<Vec<_>>());
    // A retry of the failures puts them back in their places too.
    let failed = rows.iter().filter(|r| r["_status"] == "failed").count();
    assert!(failed > 0, "the faults leave failures to retry");
    args.drain(0..2);
    let out = dir.path("out.csv");
    let retry = dbprov_with(&["retry", out.to_str().unwrap()], &args).await;
    assert!(retry.exit <= 1, "{}", retry.stderr);
    let (_, rows) = dir.results("out.csv");
    assert_eq!(row_numbers(&rows), (1..=60).collect::<Vec<_>>());
}
