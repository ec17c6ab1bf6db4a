//! The results file as the job's record: which API a row was done on (`_target`), which
//! command wrote the file, what counts as done, and outcomes of sent requests never replaced
//! by accident.

use crate::common::{
    JobDir, assert_one_row_per_input_row, by_row, methods, row_numbers, set_flag, tenants,
    workspace_counts,
};
use crate::fixture::Job;
use crate::process::{dbprov, dbprov_with};

#[tokio::test]
async fn a_results_file_is_itself_a_valid_input_file() {
    let job = Job::new().await;
    let input = job.input("name,connectionType,owner\na,MULTI_DATAMART,ops\n");
    job.run(&["run", &input]).await;
    std::fs::rename(job.dir.path("results.csv"), job.dir.path("first.csv")).unwrap();
    let first = job.dir.path("first.csv");
    let run = job.run(&["run", first.to_str().unwrap()]).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let (header, rows) = job.dir.results("results.csv");
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
    let job = Job::new().await;
    let input = job.input(&tenants("t", 3));
    let plan = job.run(&["run", &input, "--dry-run"]).await;
    assert_eq!(plan.exit, 0);
    let planned = std::fs::read_to_string(job.dir.path("results.csv")).unwrap();

    let refused = job.run(&["run", &input, "--dry-run", "--resume"]).await;
    assert_eq!(refused.exit, 2);
    assert!(
        refused.stderr.contains("a dry run does not change"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        std::fs::read_to_string(job.dir.path("results.csv")).unwrap(),
        planned
    );

    // Planned rows are still to do: a resume sends them.
    let real = job.run(&["run", &input, "--resume"]).await;
    assert_eq!(real.exit, 0, "{}", real.stderr);
    assert_eq!(job.requests().await, 3);
}

#[tokio::test]
async fn successes_on_another_target_are_sent_again_and_the_target_is_recorded() {
    let job = Job::new().await;
    let input = job.input(&tenants("t", 20));
    let results = job.path("results.csv");
    let rehearsal = dbprov(&[
        "run",
        &input,
        "--sandbox",
        "-o",
        &results,
        "--rate",
        "unlimited",
    ])
    .await;
    assert_eq!(rehearsal.exit, 0, "{}", rehearsal.stderr);
    let (header, rows) = job.dir.results("results.csv");
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
    let mut args = job.args("results.csv");
    set_flag(&mut args, "--base-url", &format!("{}/", job.sandbox.url()));
    let real = dbprov_with(&["run", &input, "--resume"], &args).await;
    assert_eq!(real.exit, 0, "{}", real.stderr);
    assert_eq!(
        job.writes().await,
        20,
        "every row is sent to the new target"
    );
    let rows = job.rows();
    assert_one_row_per_input_row(&rows, 20);
    for row in &rows {
        assert_eq!(row["_status"], "created");
        assert_eq!(
            row["_target"],
            job.sandbox.url(),
            "without the trailing '/'"
        );
    }

    assert_eq!(workspace_counts(&job.api).await.len(), 20);

    // Against the same target (now without the slash), nothing is sent.
    set_flag(&mut args, "--base-url", &job.sandbox.url());
    let again = dbprov_with(&["run", &input, "--resume"], &args).await;
    assert_eq!(again.exit, 0, "{}", again.stderr);
    assert_eq!(job.writes().await, 20);
    let kept = job.rows();
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

/// A results file with the outcomes of sent requests, five rows created: the job, its input,
/// and the file's bytes.
async fn sent_outcomes() -> (Job, String, Vec<u8>) {
    let job = Job::new().await;
    let input = job.input(&tenants("t", 5));
    let first = job.run(&["run", &input]).await;
    assert_eq!(first.exit, 0, "{}", first.stderr);
    let bytes = std::fs::read(job.dir.path("results.csv")).unwrap();
    (job, input, bytes)
}

#[tokio::test]
async fn a_dry_run_never_replaces_sent_outcomes() {
    let (job, input, before) = sent_outcomes().await;
    let plan = job.run(&["run", &input, "--dry-run"]).await;
    assert_eq!(plan.exit, 2, "{}", plan.stderr);
    assert_eq!(std::fs::read(job.dir.path("results.csv")).unwrap(), before);
}

#[tokio::test]
async fn a_plain_run_never_replaces_sent_outcomes_without_overwrite() {
    let (job, input, before) = sent_outcomes().await;
    let plain = job.run(&["run", &input]).await;
    assert_eq!(plain.exit, 2, "{}", plain.stderr);
    assert!(
        plain.stderr.contains("--overwrite") && plain.stderr.contains("--resume"),
        "says what to do instead: {}",
        plain.stderr
    );
    assert_eq!(std::fs::read(job.dir.path("results.csv")).unwrap(), before);
    assert_eq!(job.writes().await, 5, "nothing sent");

    let overwrite = job.run(&["run", &input, "--overwrite"]).await;
    assert_eq!(overwrite.exit, 0, "{}", overwrite.stderr);
    assert_eq!(job.writes().await, 10, "sent again");
    let rows = job.rows();
    assert_one_row_per_input_row(&rows, 5);
    assert!(rows.iter().all(|r| r["_status"] == "exists"), "{rows:?}");
}

#[tokio::test]
async fn a_plain_run_may_replace_a_plan() {
    let job = Job::new().await;
    let input = job.input(&tenants("t", 5));
    let plan = job.run(&["run", &input, "--dry-run"]).await;
    assert_eq!(plan.exit, 0, "{}", plan.stderr);
    let real = job.run(&["run", &input]).await;
    assert_eq!(
        real.exit, 0,
        "planned rows are no sent outcomes: {}",
        real.stderr
    );
    assert_eq!(job.writes().await, 5);
    let rows = job.rows();
    assert!(rows.iter().all(|r| r["_status"] == "created"));
}

#[tokio::test]
async fn one_api_spelled_two_ways_is_one_target() {
    let job = Job::new().await;
    let input = job.input(&tenants("t", 5));
    let mut args = job.args("results.csv");
    let first = dbprov_with(&["run", &input, "--resume"], &args).await;
    assert_eq!(first.exit, 0, "{}", first.stderr);
    let shouted = format!("{}/", job.sandbox.url().replace("http://", "HTTP://"));
    set_flag(&mut args, "--base-url", &shouted);
    let again = dbprov_with(&["run", &input, "--resume"], &args).await;
    assert_eq!(again.exit, 0, "{}", again.stderr);
    assert_eq!(job.writes().await, 5, "nothing sent again");
    let rows = job.rows();
    assert!(rows.iter().all(|r| r["_status"] == "created"), "{rows:?}");
}

#[tokio::test]
async fn a_results_file_is_continued_only_by_the_command_that_wrote_it() {
    let job = Job::new().await;
    let input = job.dir.write("t.csv", &tenants("t", 4));
    assert_eq!(job.run_to(Some("r.csv"), &["run", &input]).await.exit, 0);
    let before = methods(&job.api).await.len();
    // An update resumed into a run's results would keep its `created` rows as done and
    // update nothing.
    for command in ["update", "delete"] {
        let refused = job
            .run_to(Some("r.csv"), &[command, &input, "--resume"])
            .await;
        assert_eq!(refused.exit, 2, "{}", refused.stderr);
        assert!(
            refused.stderr.contains("holds the results of `dbprov run`"),
            "{}",
            refused.stderr
        );
    }
    assert_eq!(methods(&job.api).await.len(), before, "nothing sent");
}

#[tokio::test]
async fn a_delete_does_not_continue_an_updates_file() {
    let job = Job::holding(&["t-0001", "t-0002"]).await;
    let input = job.dir.write("t.csv", &tenants("t", 2));
    assert_eq!(job.run_to(Some("x.csv"), &["update", &input]).await.exit, 0);
    let delete = job
        .run_to(Some("x.csv"), &["delete", &input, "--resume"])
        .await;
    assert_eq!(delete.exit, 2, "{}", delete.stderr);
    assert!(!methods(&job.api).await.contains(&"DELETE".to_owned()));
}

#[tokio::test]
async fn results_are_in_input_order_whatever_the_order_rows_finish_in() {
    let job = Job::with_faults(dbprov::sandbox::FaultConfig {
        latency: std::time::Duration::from_millis(1),
        jitter: std::time::Duration::from_millis(20),
        fail_rate: 0.3,
        ..Default::default()
    })
    .await;
    let input = job.input(&tenants("order", 60));
    let mut args = job.args("out.csv");
    args.extend(["--concurrency", "8", "--max-attempts", "1"].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert!(run.exit <= 1, "{}", run.stderr);
    let rows = job.rows_of("out.csv");
    assert_eq!(row_numbers(&rows), (1..=60).collect::<Vec<_>>());
    // A retry of the failures puts them back in their places too.
    let failed = rows.iter().filter(|r| r["_status"] == "failed").count();
    assert!(failed > 0, "the faults leave failures to retry");
    args.drain(0..2);
    let out = job.dir.path("out.csv");
    let retry = dbprov_with(&["retry", out.to_str().unwrap()], &args).await;
    assert!(retry.exit <= 1, "{}", retry.stderr);
    let rows = job.rows_of("out.csv");
    assert_eq!(row_numbers(&rows), (1..=60).collect::<Vec<_>>());
}
