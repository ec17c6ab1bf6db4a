//! Reruns: `run --resume` and `dbprov retry` send only what is not done yet, follow an input
//! that changed, keep each command's own operation (a retried delete deletes), and give
//! advice for themselves.

use std::collections::{BTreeMap, BTreeSet};

use dbprov::sandbox::{self, Catalog, FaultConfig, SandboxConfig};

use crate::common::with_summary;
use crate::common::{
    JobDir, ResultRow, assert_one_row_per_input_row, by_row, count, expect, fifty_one_rows, held,
    holding_seeded, log, methods, name_csv, names, set_flag, statuses, tally, tenants,
    workspace_counts,
};
use crate::fixture::Job;
use crate::hostile::{Hostile, HostileState, hostile_args};
use crate::ports::ClosedPort;
use crate::process::{dbprov, dbprov_with, finish, spawn_fed};
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn a_nightly_rerun_sends_nothing_for_known_tenants_and_one_request_per_new_one() {
    let job = Job::new().await;
    let input = job.dir.write("tenants.csv", &tenants("t", 100));

    let first = job.run(&["run", &input, "--resume"]).await;
    assert_eq!(first.exit, 0, "{}", first.stderr);
    assert_eq!(job.requests().await, 100);

    let second = job.run(&["run", &input, "--resume"]).await;
    assert_eq!(second.exit, 0, "{}", second.stderr);
    assert_eq!(
        job.requests().await,
        100,
        "an unchanged input costs no request"
    );
    let rows = job.rows();
    assert_one_row_per_input_row(&rows, 100);
    assert!(rows.iter().all(|r| r["_status"] == "created"));
    assert!(
        second.stderr.contains("kept from the earlier run: 100"),
        "{}",
        second.stderr
    );

    // Ten new tenants at the end of the list.
    let mut grown = tenants("t", 100);
    for line in tenants("new", 10).lines().skip(1) {
        grown.push_str(line);
        grown.push('\n');
    }
    std::fs::write(&input, grown).unwrap();
    let third = job.run(&["run", &input, "--resume"]).await;
    assert_eq!(third.exit, 0, "{}", third.stderr);
    assert_eq!(
        job.requests().await,
        110,
        "exactly ten requests for ten new tenants"
    );
    let rows = job.rows();
    assert_one_row_per_input_row(&rows, 110);
    assert!(rows.iter().all(|r| r["_status"] == "created"));
    assert_eq!(workspace_counts(&job.api).await.len(), 110);
}

#[tokio::test]
async fn retry_sends_only_the_rows_that_did_not_succeed_and_picks_up_edits() {
    // mysql-orders does not exist in this sandbox: rows that use it fail.
    let job = Job::on(
        sandbox::spawn(SandboxConfig {
            catalog: Catalog {
                datasources: vec!["postgres-main".into()],
                ..Catalog::default()
            },
            ..SandboxConfig::default()
        })
        .await
        .unwrap(),
    );
    let mut csv = String::from("name,connectionType,datasourceName,note\n");
    for i in 1..=15 {
        csv.push_str(&format!("ok-{i:02},DATASOURCE,postgres-main,n{i}\n"));
    }
    csv.push_str("fix-me,DATASOURCE,mysql-orders,x\n"); // 16
    csv.push_str("stays-1,DATASOURCE,mysql-orders,x\n"); // 17
    csv.push_str("stays-2,DATASOURCE,mysql-orders,x\n"); // 18
    csv.push_str("no-type,,,x\n"); // 19
    csv.push_str("last,MULTI_DATAMART,,x\n"); // 20
    let input = job.dir.write("tenants.csv", &csv);
    let first = job.run(&["run", &input]).await;
    assert_eq!(first.exit, 1);
    assert!(
        first.stderr.contains("dbprov retry "),
        "the summary gives the retry command: {}",
        first.stderr
    );
    let before = job.rows();
    assert_eq!(job.requests().await, 19);

    // Fix two rows in the results file, as an operator would in a spreadsheet.
    let results = job.dir.path("results.csv");
    let edited = std::fs::read_to_string(&results)
        .unwrap()
        .replace(
            "fix-me,DATASOURCE,mysql-orders",
            "fix-me,DATASOURCE,postgres-main",
        )
        .replace("no-type,,,x", "no-type,MULTI_DATAMART,,x");
    std::fs::write(&results, edited).unwrap();

    let retry = job
        .run_to(None, &["retry", results.to_str().unwrap()])
        .await;
    assert_eq!(retry.exit, 1, "{}", retry.stderr);
    assert_eq!(
        job.requests().await,
        19 + 4,
        "only rows 16 to 19 are sent again"
    );
    let log = job.api.get("/_sandbox/requests").await;
    let resent: BTreeSet<&str> = log.as_array().unwrap()[19..]
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        resent,
        BTreeSet::from(["fix-me", "no-type", "stays-1", "stays-2"])
    );

    let after = job.rows();
    assert_one_row_per_input_row(&after, 20);
    let after_by_name: BTreeMap<_, _> = after.iter().map(|r| (r["name"].clone(), r)).collect();
    assert_eq!(after_by_name["fix-me"]["_status"], "created");
    assert_eq!(after_by_name["fix-me"]["datasourceName"], "postgres-main");
    assert_eq!(after_by_name["no-type"]["_status"], "created");
    assert_eq!(after_by_name["stays-1"]["_status"], "failed");
    assert_eq!(
        after_by_name["stays-1"]["_row"], "17",
        "rows keep their number"
    );
    // Successes are carried over unchanged, down to their timestamps.
    for row in before.iter().filter(|r| r["_status"] == "created") {
        assert_eq!(&after_by_name[&row["name"]], &row);
    }

    // With -o, the original stays as it is and the new file gets every row.
    let retry = job
        .run_to(
            None,
            &[
                "retry",
                results.to_str().unwrap(),
                "-o",
                job.dir.path("again.csv").to_str().unwrap(),
            ],
        )
        .await;
    assert_eq!(retry.exit, 1);
    assert_eq!(
        job.requests().await,
        23 + 2,
        "only the two rows still failing"
    );
    let again = job.rows_of("again.csv");
    assert_one_row_per_input_row(&again, 20);
    assert_eq!(job.rows(), after);
}

#[tokio::test]
async fn resume_follows_an_input_that_gained_lost_and_reordered_rows() {
    let job = Job::new().await;
    let header = "name,connectionType\n";
    let input = job.input(&format!(
        "{header}a,MULTI_DATAMART\nb,MULTI_DATAMART\nc,DATAMART\nd,MULTI_DATAMART\n"
    ));
    let first = job.run(&["run", &input]).await;
    assert_eq!(first.exit, 1, "c is invalid");
    assert_eq!(job.requests().await, 3);

    // a and d are gone, c is fixed, e and f are new, and the order changed.
    std::fs::write(
        &input,
        format!("{header}f,MULTI_DATAMART\nc,MULTI_DATAMART\nb,MULTI_DATAMART\ne,MULTI_DATAMART\n"),
    )
    .unwrap();
    let second = job.run(&["run", &input, "--resume"]).await;
    assert_eq!(second.exit, 0, "{}", second.stderr);
    assert_eq!(job.requests().await, 3 + 3, "c, e and f");
    let rows = job.rows();
    // The four rows of this input, then the records of a and d, which it lost: they stay.
    assert_one_row_per_input_row(&rows[..4], 4);
    let gone: Vec<(&str, &str)> = rows[4..]
        .iter()
        .map(|r| (r["name"].as_str(), r["_status"].as_str()))
        .collect();
    assert_eq!(gone, [("a", "created"), ("d", "created")]);
    let by_name: BTreeMap<_, _> = rows[..4].iter().map(|r| (r["name"].as_str(), r)).collect();
    assert_eq!(
        by_name.keys().copied().collect::<Vec<_>>(),
        ["b", "c", "e", "f"]
    );
    assert_eq!(
        by_name["f"]["_row"], "1",
        "_row comes from the current input"
    );
    assert_eq!(by_name["b"]["_row"], "3");
    assert_eq!(by_name["b"]["_attempts"], "1", "b's earlier row is kept");
    assert!(rows.iter().all(|r| r["_status"] == "created"));
}

#[tokio::test]
async fn resume_tolerates_a_torn_last_line_and_refuses_changed_columns() {
    let job = Job::new().await;
    let input = job.input(&tenants("t", 5));
    assert_eq!(job.run(&["run", &input]).await.exit, 0);
    // A crash in the middle of writing a row leaves half a line.
    let results = job.dir.path("results.csv");
    let mut text = std::fs::read_to_string(&results).unwrap();
    text.push_str("6,crea");
    std::fs::write(&results, &text).unwrap();
    std::fs::write(&input, tenants("t", 6)).unwrap();

    let resumed = job.run(&["run", &input, "--resume"]).await;
    assert_eq!(resumed.exit, 0, "{}", resumed.stderr);
    assert_eq!(job.requests().await, 6);
    let rows = job.rows();
    assert_one_row_per_input_row(&rows, 6);
    assert!(
        !std::fs::read_to_string(&results)
            .unwrap()
            .contains("6,crea\n")
    );

    let other = job
        .dir
        .write("other.csv", "name,connectionType,team\nt-0001,DATAMART,x\n");
    let refused = job.run(&["run", &other, "--resume"]).await;
    assert_eq!(refused.exit, 2);
    assert!(
        refused.stderr.contains("was written for the columns"),
        "{}",
        refused.stderr
    );
    assert_eq!(job.rows(), rows, "nothing recorded is lost");
}

#[tokio::test]
async fn a_duplicate_written_before_its_first_row_costs_no_request_on_reruns() {
    // The first row waits on the sandbox's latency; its duplicate is invalid at once, so the
    // results file holds the duplicate first.
    let job = Job::with_faults(FaultConfig {
        latency: std::time::Duration::from_millis(100),
        ..FaultConfig::default()
    })
    .await;
    let input =
        job.input("name,connectionType\nx,MULTI_DATAMART\nx,MULTI_DATAMART\ny,MULTI_DATAMART\n");
    let first = job.run(&["run", &input]).await;
    assert_eq!(first.exit, 1);
    // The job ends with its rows in input order; a log left by a kill holds them in the
    // order they finished, the duplicate first.
    let written = std::fs::read_to_string(job.dir.path("results.csv")).unwrap();
    let mut lines: Vec<&str> = written.lines().collect();
    assert!(
        lines[2].starts_with("2,invalid,DUPLICATE_IN_INPUT"),
        "{written}"
    );
    lines.swap(1, 2);
    std::fs::write(job.dir.path("results.csv"), lines.join("\n") + "\n").unwrap();
    assert_eq!(job.requests().await, 2);

    let expected = |rows: &[ResultRow]| {
        let mut seen: Vec<(String, String, String)> = rows
            .iter()
            .map(|r| {
                (
                    r["_row"].clone(),
                    r["_status"].clone(),
                    r["_error_code"].clone(),
                )
            })
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            [
                ("1".into(), "created".into(), "".into()),
                ("2".into(), "invalid".into(), "DUPLICATE_IN_INPUT".into()),
                ("3".into(), "created".into(), "".into()),
            ]
        );
    };
    let resumed = job.run(&["run", &input, "--resume"]).await;
    assert_eq!(resumed.exit, 1);
    expected(&job.rows());

    let results = job.dir.path("results.csv");
    let retried = job
        .run_to(None, &["retry", results.to_str().unwrap()])
        .await;
    assert_eq!(retried.exit, 1, "{}", retried.stderr);
    expected(&job.rows());
    assert_eq!(job.requests().await, 2, "neither rerun sent anything");
}

#[tokio::test]
async fn retry_and_rollback_give_advice_for_themselves_not_for_run() {
    let dir = JobDir::new();
    let plain = dir.write("tenants.csv", &tenants("t", 3));
    let new = dir.path("new.csv");
    let new = new.to_str().unwrap();
    for command in [
        vec!["retry", &plain, "--dry-run"],
        vec!["retry", &plain, "-o", new, "--dry-run"],
        vec!["rollback", &plain, "--dry-run"],
    ] {
        let refused = dbprov(&command).await;
        assert_eq!(refused.exit, 2, "{command:?}: {}", refused.stderr);
        let stderr = &refused.stderr;
        assert!(stderr.contains("is not a dbprov results file"), "{stderr}");
        for advice_for_run in ["another -o", "--overwrite", "--resume", "remove it"] {
            assert!(!stderr.contains(advice_for_run), "{command:?}: {stderr}");
        }
        if command[0] == "retry" {
            assert!(
                stderr.contains(&format!("use dbprov run {plain}")),
                "{stderr}"
            );
        }
    }
    assert_eq!(std::fs::read_to_string(&plain).unwrap(), tenants("t", 3));
    assert!(!dir.path("new.csv").exists());

    // A retry that the API stops says to run the retry again: it has no --resume.
    let planned = dbprov(&["run", &plain, "--dry-run", "-o", new]).await;
    assert_eq!(planned.exit, 0, "{}", planned.stderr);
    let onto_itself = dbprov(&["retry", new, "-o", new, "--dry-run"]).await;
    assert_eq!(onto_itself.exit, 2, "{}", onto_itself.stderr);
    assert!(
        onto_itself
            .stderr
            .contains("without -o, retry updates its results file")
            && !onto_itself.stderr.contains("use dbprov retry"),
        "{}",
        onto_itself.stderr
    );
    // Nothing listens on this port.
    let closed = ClosedPort::new();
    let unreachable = closed.url();
    let key = dir.private_key("k");
    let retry = dbprov(&[
        "retry",
        new,
        "--base-url",
        &unreachable,
        "--api-key-file",
        &key,
    ])
    .await;
    assert_eq!(retry.exit, 3, "{}", retry.stderr);
    assert!(
        retry
            .stderr
            .contains("the same retry command finishes them later"),
        "{}",
        retry.stderr
    );
    assert!(!retry.stderr.contains("--resume"), "{}", retry.stderr);
}

#[tokio::test]
async fn a_stray_quote_in_a_results_file_makes_one_row_malformed_in_a_retry() {
    let job = Job::new().await;
    let input = job.input(&fifty_one_rows());
    let first = job.run(&["run", &input]).await;
    assert_eq!(first.exit, 1, "{}", first.stderr);
    let before = job.rows();
    assert_one_row_per_input_row(&before, 51);
    let sent = job.writes().await;

    // Row 3 (line 4 of the file) gets a stray quote opening its name.
    let results = job.dir.path("results.csv");
    let text = std::fs::read_to_string(&results).unwrap();
    let edited = text.replace(",q-03,", ",\"q-03,");
    assert_ne!(edited, text);
    let line_of_row_3 = 1 + edited.lines().position(|l| l.contains("\"q-03")).unwrap();
    std::fs::write(&results, edited).unwrap();

    let retry = job
        .run_to(None, &["retry", results.to_str().unwrap()])
        .await;
    assert_eq!(retry.exit, 1, "{}", retry.stderr);
    let after = job.rows();
    assert_one_row_per_input_row(&after, 51);
    let after = by_row(&after);
    assert_eq!(after[&3]["_status"], "invalid");
    assert_eq!(after[&3]["_error_code"], "MALFORMED_ROW");
    assert!(
        after[&3]["_error_message"].contains(&format!("line {line_of_row_3}")),
        "{:?}",
        after[&3]
    );
    for (row, earlier) in by_row(&before) {
        if row == 3 {
            continue;
        }
        assert_eq!(after[&row]["name"], earlier["name"]);
        assert_eq!(after[&row]["_status"], earlier["_status"], "row {row}");
        assert_eq!(after[&row]["_error_code"], earlier["_error_code"]);
    }
    let failed = before.iter().filter(|r| r["_status"] == "failed").count() as u64;
    assert_eq!(
        job.writes().await,
        sent + failed,
        "only the failed rows were sent again"
    );
}

/// Asserts that every row records its operation (`update`, `delete`) in `_operation`, and
/// that no message carries it (a cell an operator may tidy away).
fn assert_operations(rows: &[ResultRow], operation: &str) {
    for row in rows {
        assert_eq!(row["_operation"], operation, "{row:?}");
        let marker = format!("{operation}: ");
        assert!(!row["_error_message"].starts_with(&marker), "{row:?}");
    }
}

#[tokio::test]
async fn retry_of_a_delete_sends_deletes_again_never_a_post() {
    let doomed = names("w", 30);
    let job = Job::on(
        holding_seeded(
            &doomed,
            FaultConfig {
                fail_rate: 0.3,
                ..FaultConfig::default()
            },
            5,
        )
        .await,
    );
    let input = job.input(&name_csv(&doomed));
    let mut args = job.args_with_preflight("results.csv");
    args.extend(["--max-attempts", "1"].map(str::to_owned));
    let delete = dbprov_with(&["delete", "--yes", &input], &args).await;
    assert_eq!(delete.exit, 1, "some deletes failed: {}", delete.stderr);
    let rows = job.rows();
    let failed = rows.iter().filter(|r| r["_status"] == "failed").count();
    assert!(failed > 0, "premise: some rows failed");
    assert_operations(&rows, "delete");

    let results = job.dir.path("results.csv");
    let mut retry_args = job.args_with_preflight("results.csv");
    retry_args.drain(..2); // No -o: the retry updates the results file itself.
    retry_args.extend(["--max-attempts", "30"].map(str::to_owned));
    let retry = dbprov_with(&["retry", results.to_str().unwrap()], &retry_args).await;
    assert_eq!(retry.exit, 0, "{}", retry.stderr);
    let log = log(&job.api).await;
    assert_eq!(count(&log, "POST") + count(&log, "PUT"), 0, "never a POST");
    let rows = job.rows();
    assert_one_row_per_input_row(&rows, 30);
    assert_eq!(tally(&rows), expect(&[("deleted", 30)]));
    assert!(held(&job.api).await.is_empty());
}

#[tokio::test]
async fn retry_of_an_update_sends_puts_again_never_a_post() {
    let existing = names("w", 30);
    let job = Job::on(
        holding_seeded(
            &existing,
            FaultConfig {
                fail_rate: 0.3,
                ..FaultConfig::default()
            },
            6,
        )
        .await,
    );
    let mut csv = String::from("name,connectionType,datamartName\n");
    for name in &existing {
        csv.push_str(&format!("{name},DATAMART,finance-mart\n"));
    }
    let input = job.input(&csv);
    let mut args = job.args_with_preflight("results.csv");
    args.extend(["--max-attempts", "1"].map(str::to_owned));
    let update = dbprov_with(&["update", &input], &args).await;
    assert_eq!(update.exit, 1, "some updates failed: {}", update.stderr);
    let rows = job.rows();
    assert!(rows.iter().any(|r| r["_status"] == "failed"), "premise");
    assert_operations(&rows, "update");

    let results = job.dir.path("results.csv");
    let mut retry_args = job.args_with_preflight("results.csv");
    set_flag(
        &mut retry_args,
        "-o",
        job.dir.path("again.csv").to_str().unwrap(),
    );
    retry_args.extend(["--max-attempts", "30"].map(str::to_owned));
    let retry = dbprov_with(&["retry", results.to_str().unwrap()], &retry_args).await;
    assert_eq!(retry.exit, 0, "{}", retry.stderr);
    let log = log(&job.api).await;
    assert_eq!(
        count(&log, "POST") + count(&log, "DELETE"),
        0,
        "never a POST"
    );
    let rows = job.rows_of("again.csv");
    assert_one_row_per_input_row(&rows, 30);
    assert_eq!(tally(&rows), expect(&[("updated", 30)]));
    let stored = job.api.get("/_sandbox/workspaces").await;
    assert!(
        stored
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["datamartName"] == "finance-mart" && w["connectionType"] == "DATAMART")
    );
}

#[tokio::test]
async fn retry_sends_an_updates_failures_as_puts() {
    let job = Job::holding(&["t-0001", "t-0002"]).await;
    // Four rows, two of which do not exist: those fail, and must never be created.
    let input = job.dir.write("t.csv", &tenants("t", 4));
    let update = job.run_to(Some("u.csv"), &["update", &input]).await;
    assert_eq!(update.exit, 1, "{}", update.stderr);
    let results = job.path("u.csv");
    let retry = job.run_to(None, &["retry", &results]).await;
    assert_eq!(retry.exit, 1, "{}", retry.stderr);
    let seen = methods(&job.api).await;
    assert!(!seen.contains(&"POST".to_owned()), "{seen:?}");
    assert_eq!(seen.iter().filter(|m| *m == "PUT").count(), 6, "{seen:?}");
    let rows = job.rows_of("u.csv");
    let got = statuses(&rows);
    assert_eq!(got["t-0001"], "updated");
    assert_eq!(got["t-0003"], "failed");
    assert_eq!(job.api.workspace_names().await.len(), 2);
}

#[tokio::test]
async fn a_dry_run_of_a_delete_is_retried_as_deletes() {
    let job = Job::holding(&["a", "b"]).await;
    // The whole tenant columns: read as a run's, these rows would be valid creates.
    let input = job.dir.write(
        "off.csv",
        "name,connectionType,datasourceName\na,DATASOURCE,postgres-main\nc,DATASOURCE,postgres-main\n",
    );
    let dry = job
        .run_to(Some("dry.csv"), &["delete", "--yes", &input, "--dry-run"])
        .await;
    assert_eq!(dry.exit, 0, "{}", dry.stderr);
    let rows = job.rows_of("dry.csv");
    assert!(
        rows.iter()
            .all(|r| r["_error_message"] == "would delete" && r["_operation"] == "delete"),
        "{rows:?}"
    );
    let dry_path = job.path("dry.csv");
    let retry = job.run_to(None, &["retry", &dry_path]).await;
    assert_eq!(retry.exit, 0, "{}", retry.stderr);
    let seen = methods(&job.api).await;
    assert_eq!(seen, ["DELETE", "DELETE"], "never a POST");
    let rows = job.rows_of("dry.csv");
    let got = statuses(&rows);
    assert_eq!((&*got["a"], &*got["c"]), ("deleted", "absent"));
    assert_eq!(job.api.workspace_names().await, ["b"]);
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
        rows.iter().all(
            |r| r["_error_message"].starts_with("delete: job queue is full")
                && r["_operation"] == "create"
        ),
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

/// `run --resume` of `input` with the preflight on (its default) and a summary; the
/// sandbox's requests by method, counted from `before` requests on.
async fn resume_listing(job: &Job, input: &str) -> (crate::process::Finished, Vec<String>) {
    let before = methods(&job.api).await.len();
    let args = with_summary(job.args_with_preflight(RESULTS), &job.dir);
    let run = dbprov_with(&["run", input, "--resume"], &args).await;
    let sent = methods(&job.api).await.split_off(before);
    (run, sent)
}

const RESULTS: &str = "results.csv";

/// [`resume_listing`] with the input written into the job's standard input.
async fn resume_from_a_pipe(job: &Job, csv: &str) -> (crate::process::Finished, Vec<String>) {
    let before = methods(&job.api).await.len();
    let mut args = with_summary(job.args_with_preflight(RESULTS), &job.dir);
    args.push("--resume".into());
    let mut fed: Vec<&str> = vec!["run", "-"];
    fed.extend(args.iter().map(String::as_str));
    let (child, mut stdin) = spawn_fed(&fed);
    stdin.write_all(csv.as_bytes()).await.unwrap();
    drop(stdin);
    let run = finish(child).await;
    let sent = methods(&job.api).await.split_off(before);
    (run, sent)
}

#[tokio::test]
async fn a_rerun_with_nothing_to_send_sends_nothing_not_even_the_list() {
    let job = Job::new().await;
    let input = job.dir.write("tenants.csv", &tenants("t", 20));
    let (first, sent) = resume_listing(&job, &input).await;
    assert_eq!(first.exit, 0, "{}", first.stderr);
    assert_eq!(sent[0], "GET", "a first run lists first");
    assert_eq!(sent[1..], ["POST"; 20]);

    // Every row done, plus rows that need no request: one without a name, a repeat.
    let mut same = tenants("t", 20);
    same.push_str(",DATASOURCE,postgres-main,\nt-0003,MULTI_DATAMART,,\n");
    std::fs::write(&input, same).unwrap();
    let (again, sent) = resume_listing(&job, &input).await;
    assert_eq!(again.exit, 1, "two rows invalid: {}", again.stderr);
    assert!(sent.is_empty(), "no request at all: {sent:?}");
    let summary = job.summary();
    assert_eq!(summary["list_requests"], 0, "{summary}");
    assert_eq!(summary["listed_workspaces"], serde_json::Value::Null);
    let rows = job.rows();
    assert_eq!(rows.len(), 22);
    assert_eq!(
        rows.iter().filter(|r| r["_status"] == "created").count(),
        20
    );
    assert_eq!(rows[20]["_error_code"], "MISSING_NAME");
    assert_eq!(
        rows[21]["_error_code"], "DUPLICATE_IN_INPUT",
        "{:?}",
        rows[21]
    );
    assert_eq!(
        rows[2]["_status"], "created",
        "the first row of the name stands"
    );

    // A name repeated among new rows is a duplicate too, and its first row is sent.
    let mut more = tenants("t", 20);
    more.push_str("n-1,MULTI_DATAMART,,\nn-1,MULTI_DATAMART,,\nt-0005,MULTI_DATAMART,,\n");
    std::fs::write(&input, more).unwrap();
    let (third, sent) = resume_listing(&job, &input).await;
    assert_eq!(third.exit, 1, "{}", third.stderr);
    assert_eq!(sent, ["GET", "POST"], "{}", third.stderr);
    let rows = job.rows();
    let codes: Vec<&str> = rows[20..]
        .iter()
        .map(|r| r["_error_code"].as_str())
        .collect();
    assert_eq!(
        codes,
        ["", "DUPLICATE_IN_INPUT", "DUPLICATE_IN_INPUT"],
        "{rows:?}"
    );

    // A row refused for its values stays refused while they stay: the nightly rerun, and
    // a retry, send nothing for it (a list the first time it appears, then none).
    let mut bogus = tenants("t", 20);
    bogus.push_str("bad-1,BOGUS,,\n");
    std::fs::write(&input, &bogus).unwrap();
    let (fourth, _) = resume_listing(&job, &input).await;
    assert_eq!(fourth.exit, 1, "{}", fourth.stderr);
    let (fifth, sent) = resume_listing(&job, &input).await;
    assert_eq!(fifth.exit, 1, "{}", fifth.stderr);
    assert!(
        sent.is_empty(),
        "no request for a row refused as it is: {sent:?}"
    );
    assert_eq!(job.rows()[20]["_error_code"], "INVALID_CONNECTION_TYPE");
    let before = methods(&job.api).await.len();
    let retried = job.run_to(None, &["retry", &job.path(RESULTS)]).await;
    assert_eq!(retried.exit, 1, "{}", retried.stderr);
    assert_eq!(methods(&job.api).await.len(), before, "{}", retried.stderr);
    // Mended, it is sent.
    std::fs::write(&input, bogus.replace("bad-1,BOGUS", "bad-1,MULTI_DATAMART")).unwrap();
    let (mended, sent) = resume_listing(&job, &input).await;
    assert_eq!(mended.exit, 0, "{}", mended.stderr);
    assert_eq!(sent, ["GET", "POST"]);
}

#[tokio::test]
async fn the_list_is_made_once_and_only_when_a_row_needs_a_request() {
    let job = Job::new().await;
    let input = job.dir.write("tenants.csv", &tenants("t", 20));
    let (first, _) = resume_listing(&job, &input).await;
    assert_eq!(first.exit, 0, "{}", first.stderr);

    // Three new tenants, the first of them in the middle: one list, before any of them.
    let mut grown = tenants("t", 10);
    grown.push_str("new-1,MULTI_DATASOURCE,,\n");
    for line in tenants("t", 20).lines().skip(11) {
        grown.push_str(line);
        grown.push('\n');
    }
    grown.push_str("new-2,MULTI_DATASOURCE,,\nnew-3,MULTI_DATASOURCE,,\n");
    std::fs::write(&input, &grown).unwrap();
    let (again, sent) = resume_listing(&job, &input).await;
    assert_eq!(again.exit, 0, "{}", again.stderr);
    assert_eq!(sent, ["GET", "POST", "POST", "POST"], "{}", again.stderr);
    assert_eq!(job.summary()["list_requests"], 1);
    assert_eq!(job.summary()["listed_workspaces"], 20);

    // Read from a pipe, the rows cannot be looked at beforehand: the list waits for the
    // first row that needs a request, and is made then, once.
    grown.push_str("new-4,MULTI_DATASOURCE,,\nnew-5,MULTI_DATASOURCE,,\n");
    for (piped, expected) in [
        (tenants("t", 20), vec![]),
        (grown, vec!["GET", "POST", "POST"]),
    ] {
        let (run, sent) = resume_from_a_pipe(&job, &piped).await;
        assert_eq!(run.exit, 0, "{}", run.stderr);
        assert_eq!(sent, expected, "{}", run.stderr);
    }
    assert_eq!(job.rows().len(), 25);
    assert!(job.rows().iter().all(|r| r["_status"] == "created"));
}

#[tokio::test]
async fn kept_records_stay_where_they_are_and_the_file_is_rewritten_only_as_it_must_be() {
    use std::os::unix::fs::MetadataExt;
    let job = Job::new().await;
    let input = job.dir.write("tenants.csv", &tenants("t", 30));
    let results = job.dir.path(RESULTS);
    assert_eq!(job.run(&["run", &input]).await.exit, 0);
    let first = std::fs::read(&results).unwrap();
    let inode = std::fs::metadata(&results).unwrap().ino();

    // Nothing to do: the file is not even rewritten.
    let again = job.run(&["run", &input, "--resume"]).await;
    assert_eq!(again.exit, 0, "{}", again.stderr);
    assert_eq!(std::fs::read(&results).unwrap(), first);
    assert_eq!(std::fs::metadata(&results).unwrap().ino(), inode);

    // New tenants at the end: the kept records stay as they were, the new ones follow.
    let mut grown = tenants("t", 30);
    grown.push_str("new-1,MULTI_DATAMART,,\nnew-2,MULTI_DATAMART,,\n");
    std::fs::write(&input, &grown).unwrap();
    let more = job.run(&["run", &input, "--resume"]).await;
    assert_eq!(more.exit, 0, "{}", more.stderr);
    let now = std::fs::read(&results).unwrap();
    assert!(now.starts_with(&first), "the kept records are untouched");
    let rows = job.rows();
    assert_one_row_per_input_row(&rows, 32);
    assert_eq!(
        (rows[30]["name"].as_str(), rows[31]["name"].as_str()),
        ("new-1", "new-2")
    );

    // A new tenant first: every row moves down one, and says so; nothing else changes.
    let before = job.rows();
    std::fs::write(
        &input,
        format!(
            "{}first,MULTI_DATAMART,,\n{}",
            &grown[..grown.find('\n').unwrap() + 1],
            &grown[grown.find('\n').unwrap() + 1..]
        ),
    )
    .unwrap();
    let moved = job.run(&["run", &input, "--resume"]).await;
    assert_eq!(moved.exit, 0, "{}", moved.stderr);
    let rows = job.rows();
    assert_one_row_per_input_row(&rows, 33);
    let numbers: Vec<u64> = rows.iter().map(|r| r["_row"].parse().unwrap()).collect();
    assert!(numbers.is_sorted(), "in input order: {numbers:?}");
    assert_eq!(rows[0]["name"], "first");
    for (was, is) in before.iter().zip(&rows[1..]) {
        assert_eq!(is["name"], was["name"]);
        assert_eq!(
            is["_finished_at"], was["_finished_at"],
            "kept, not sent: {is:?}"
        );
        assert_eq!(
            is["_row"].parse::<u64>().unwrap(),
            was["_row"].parse::<u64>().unwrap() + 1
        );
    }

    // Tenants dropped from the input: their records stay, after the input's rows.
    std::fs::write(&input, tenants("t", 25)).unwrap();
    let fewer = job.run(&["run", &input, "--resume"]).await;
    assert_eq!(fewer.exit, 0, "{}", fewer.stderr);
    let rows = job.rows();
    assert_eq!(rows.len(), 33);
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str()).collect();
    assert_eq!(
        names[..25],
        tenants("t", 25)
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap())
            .collect::<Vec<_>>()[..]
    );
    let mut rest: Vec<&str> = names[25..].to_vec();
    rest.sort();
    assert_eq!(
        rest,
        [
            "first", "new-1", "new-2", "t-0026", "t-0027", "t-0028", "t-0029", "t-0030"
        ]
    );
    assert_eq!(job.requests().await, 33, "one request per tenant, ever");
}

#[tokio::test]
async fn kept_successes_are_checked_against_a_list_made_before_every_row_or_not_at_all() {
    let job = Job::new().await;
    let input = job.dir.write("tenants.csv", &tenants("t", 4));
    let (first, _) = resume_listing(&job, &input).await;
    assert_eq!(first.exit, 0, "{}", first.stderr);
    // Someone deletes the first and the last.
    for name in ["t-0001", "t-0004"] {
        assert_eq!(job.api.delete(name).await.status(), Some(200));
    }
    // From a pipe, with a new tenant in the middle: the list waits for it, and checks
    // neither the row before it nor the one after; both keep their records.
    let mut piped = tenants("t", 2);
    piped.push_str("new-1,MULTI_DATAMART,,\n");
    piped.extend(tenants("t", 4).lines().skip(3).map(|l| format!("{l}\n")));
    let (run, sent) = resume_from_a_pipe(&job, &piped).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    assert_eq!(sent, ["GET", "POST"]);
    let rows = job.rows();
    assert!(rows.iter().all(|r| r["_status"] == "created"), "{rows:?}");

    // From the file, with a new tenant: the list comes before every row, and both
    // vanished workspaces are created again.
    std::fs::write(
        &input,
        format!("{}new-2,MULTI_DATAMART,,\n", tenants("t", 4)),
    )
    .unwrap();
    let (again, sent) = resume_listing(&job, &input).await;
    assert_eq!(again.exit, 0, "{}", again.stderr);
    assert_eq!(sent, ["GET", "POST", "POST", "POST"], "{}", again.stderr);
    let mut names = job.api.workspace_names().await;
    names.sort();
    assert_eq!(
        names,
        ["new-1", "new-2", "t-0001", "t-0002", "t-0003", "t-0004"]
    );
}

#[tokio::test]
async fn a_results_file_saved_with_crlf_and_blank_lines_is_continued_in_its_own_line_ends() {
    let job = Job::new().await;
    let input = job.dir.write("tenants.csv", &tenants("t", 4));
    assert_eq!(job.run(&["run", &input]).await.exit, 0);
    let results = job.dir.path(RESULTS);
    let text = std::fs::read_to_string(&results).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(3, "");
    std::fs::write(&results, lines.join("\r\n") + "\r\n").unwrap();
    for grown in [
        format!("{}new-1,MULTI_DATAMART,,\n", tenants("t", 4)),
        format!(
            "{}new-0,MULTI_DATAMART,,\n{}",
            &tenants("t", 0),
            &tenants("t", 4)[tenants("t", 0).len()..]
        ) + "new-1,MULTI_DATAMART,,\n",
    ] {
        std::fs::write(&input, grown).unwrap();
        let run = job.run(&["run", &input, "--resume"]).await;
        assert_eq!(run.exit, 0, "{}", run.stderr);
        let now = std::fs::read(&results).unwrap();
        let text = String::from_utf8(now).unwrap();
        assert!(!text.contains("\r\n\r\n"), "no blank line: {text:?}");
        assert_eq!(
            text.matches('\n').count(),
            text.matches("\r\n").count(),
            "{text:?}"
        );
    }
    let rows = job.rows();
    assert_one_row_per_input_row(&rows, 6);
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str()).collect();
    assert_eq!(
        names,
        ["new-0", "t-0001", "t-0002", "t-0003", "t-0004", "new-1"]
    );

    // Nothing new, but asked for a spreadsheet's file: the whole file becomes one.
    let plain = std::fs::read_to_string(&results)
        .unwrap()
        .replace("\r\n", "\n");
    std::fs::write(&results, plain).unwrap();
    let excel = job.run(&["run", &input, "--resume", "--excel"]).await;
    assert_eq!(excel.exit, 0, "{}", excel.stderr);
    let text = std::fs::read_to_string(&results).unwrap();
    assert!(text.starts_with('\u{feff}'), "{text:?}");
    assert_eq!(text.matches('\n').count(), 7, "{text:?}");
    assert_eq!(text.matches("\r\n").count(), 7, "{text:?}");
}
