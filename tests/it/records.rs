//! Every record true, nothing lost (issue 8): results, statuses and inputs under operator
//! mistakes and odd answers. Each test names the point of the issue it covers.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use dbprov::sandbox::{FaultConfig, Sandbox};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::common::{
    Answer, Api, JobDir, ResultRow, assert_one_row_per_input_row, attempts, by_row,
    complete_records, fifty_one_rows, job_args, job_args_to, plain_sandbox, sandbox_with, set_flag,
    slow_sandbox, tenants, workspace_counts, writes,
};
use crate::fault_server::{Canned, FORGED, FaultServer, WORKSPACE, fault_key};
use crate::process::{
    BIN, Finished, PROCESS_DEADLINE, command, dbprov, dbprov_with, finish, finish_within, limit,
    line, run_to_end, signal, spawn_fed, until_writes,
};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A first job runs for a few seconds; a second `run --resume` on the same results file must
/// stop at once (exit 2), name the file and the holder, and send nothing.
async fn a_second_process_on_the_same_results_file_is_refused(existing: bool) {
    let sandbox = slow_sandbox(20).await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let mut args = job_args(&sandbox, &dir, "results.csv");
    let results = dir.path("results.csv");
    let input = dir.write("in.csv", &tenants("t", 20));
    if existing {
        let earlier = dbprov_with(&["run", &input], &args).await;
        assert_eq!(earlier.exit, 0, "{}", earlier.stderr);
    }
    std::fs::write(&input, tenants("t", 170)).unwrap();
    set_flag(&mut args, "--rate", "50/s");
    let first_head: &[&str] = if existing {
        &["run", &input, "--resume"]
    } else {
        &["run", &input]
    };
    let mut first = command(&line(first_head, &args)).spawn().unwrap();
    let first_pid = first.id().unwrap();
    until_writes(&api, &mut first, if existing { 25 } else { 5 }).await;

    let second = dbprov_with(&["run", &input, "--resume"], &args).await;
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first job (150 rows at 50/s) still runs while the second is refused"
    );
    assert_eq!(second.exit, 2, "{}", second.stderr);
    let said = second.stderr.to_lowercase();
    assert!(
        second.stderr.contains(results.to_str().unwrap()),
        "names the file: {}",
        second.stderr
    );
    assert!(
        said.contains("in use") && said.contains("pid"),
        "says the file is in use by another process: {}",
        second.stderr
    );
    assert!(
        second.stderr.contains(&first_pid.to_string()),
        "names the holder's pid {first_pid}: {}",
        second.stderr
    );

    let first = finish(first).await;
    assert_eq!(first.exit, 0, "{}", first.stderr);
    let (_, rows) = dir.results("results.csv");
    assert_one_row_per_input_row(&rows, 170);
    assert!(rows.iter().all(|r| r["_status"] == "created"));
    assert_eq!(
        writes(&api).await,
        attempts(&rows),
        "every request is the first job's (and the earlier run's)"
    );
    assert!(workspace_counts(&api).await.values().all(|n| *n == 1));
}

#[tokio::test]
async fn p1_a_second_resume_on_a_results_file_in_use_stops_before_any_request() {
    a_second_process_on_the_same_results_file_is_refused(true).await;
}

#[tokio::test]
async fn p1_a_second_process_on_a_new_results_file_in_use_stops_before_any_request() {
    a_second_process_on_the_same_results_file_is_refused(false).await;
}

#[tokio::test]
async fn p2a_results_to_a_closed_pipe_stop_the_sending_with_exit_4() {
    let sandbox = slow_sandbox(20).await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write("in.csv", &tenants("t", 1000));
    let key = dir.key_file(&sandbox);
    let url = sandbox.url();
    let mut child = command(&[
        "run",
        &input,
        "-o",
        "-",
        "--base-url",
        &url,
        "--api-key-file",
        &key,
        "--rate",
        "unlimited",
        "--concurrency",
        "4",
    ])
    .spawn()
    .unwrap();
    // As `| head -2` would: read two lines, then close the pipe.
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..2 {
        stdout
            .next_line()
            .await
            .unwrap()
            .expect("a line of results");
    }
    drop(stdout);
    let sent_when_closed = writes(&api).await;
    let run = finish(child).await;
    assert_eq!(run.exit, 4, "{}", run.stderr);
    let sent = writes(&api).await;
    // After the pipe closed, the next row's write fails: the requests in flight then (at
    // most --concurrency) may finish, and whatever their workers took next; nothing more.
    assert!(
        sent - sent_when_closed <= 2 * 4,
        "{} requests sent after the results pipe closed (of 1000 rows)",
        sent - sent_when_closed
    );
}

#[tokio::test]
async fn p2b_a_results_file_over_the_file_size_limit_stops_the_sending_with_exit_4() {
    let sandbox = slow_sandbox(2).await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let args = job_args(&sandbox, &dir, "results.csv");
    let input = dir.write("in.csv", &tenants("t", 500));
    let mut child = command(&line(&["run", &input, "--concurrency", "4"], &args));
    // As `ulimit -f 16` would: room for about a hundred rows.
    limit(&mut child, libc::RLIMIT_FSIZE, 16 * 1024);
    let run = run_to_end(child).await;
    assert_eq!(run.exit, 4, "{}", run.stderr);
    let results = dir.path("results.csv");
    assert!(
        run.stderr.contains(results.to_str().unwrap()) && run.stderr.contains("writ"),
        "says the results file cannot be written: {}",
        run.stderr
    );
    let bytes = std::fs::read(&results).unwrap();
    assert!(
        bytes.ends_with(b"\n"),
        "the row the limit tore is cut off, not left to pass for a whole one: {:?}",
        String::from_utf8_lossy(&bytes[bytes.len().saturating_sub(80)..])
    );
    let recorded = complete_records(&results).len() as u64;
    let sent = writes(&api).await;
    assert!(
        sent <= recorded + 4,
        "{sent} requests sent, {recorded} recorded, --concurrency 4"
    );
    assert!(sent < 500);
}

#[tokio::test]
async fn p2c_a_results_file_deleted_mid_run_exits_4_keeps_its_rows_and_resume_completes() {
    let sandbox = slow_sandbox(10).await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let args = job_args(&sandbox, &dir, "results.csv");
    let input = dir.write("in.csv", &tenants("t", 600));
    let head = ["run", input.as_str(), "--resume", "--concurrency", "4"];
    let mut child = command(&line(&head, &args)).spawn().unwrap();
    until_writes(&api, &mut child, 30).await;
    let results = dir.path("results.csv");
    std::fs::remove_file(&results).unwrap();
    let run = finish(child).await;
    assert_eq!(run.exit, 4, "{}", run.stderr);
    assert!(
        results.exists(),
        "the rows recorded so far are written back to the same path"
    );
    let kept = complete_records(&results);
    assert!(kept.len() >= 20, "{} rows kept: {}", kept.len(), run.stderr);
    assert!(writes(&api).await < 600, "sending stopped");

    let resumed = dbprov_with(&head, &args).await;
    assert_eq!(resumed.exit, 0, "{}", resumed.stderr);
    let (_, rows) = dir.results("results.csv");
    assert_one_row_per_input_row(&rows, 600);
    assert!(
        rows.iter()
            .all(|r| r["_status"] == "created" || r["_status"] == "exists")
    );
    let held = workspace_counts(&api).await;
    assert_eq!(held.len(), 600);
    assert!(held.values().all(|n| *n == 1), "no workspace twice");
}

/// Runs two rows against `url` with `--max-attempts 3`.
async fn two_rows_against(url: &str, extra: &[&str]) -> (Finished, Vec<ResultRow>) {
    let dir = JobDir::new();
    let input = dir.write(
        "in.csv",
        "name,connectionType\na,MULTI_DATAMART\nb,MULTI_DATAMART\n",
    );
    let key = fault_key(&dir);
    let mut args = job_args_to(url, &key, &dir, "results.csv");
    args.extend(["--max-attempts", "3"].map(str::to_owned));
    args.extend(extra.iter().map(|s| s.to_string()));
    let run = dbprov_with(&["run", &input], &args).await;
    let (_, rows) = dir.results("results.csv");
    (run, rows)
}

#[tokio::test]
async fn p3_a_200_that_is_not_the_success_envelope_is_unexpected_and_retried() {
    for canned in [Canned::HtmlOk, Canned::ErrorEnvelopeOk] {
        let server = FaultServer::start(canned.clone()).await;
        let (run, rows) = two_rows_against(&server.url, &[]).await;
        assert_eq!(run.exit, 1, "{canned:?}: {}", run.stderr);
        assert_one_row_per_input_row(&rows, 2);
        for row in &rows {
            assert_eq!(row["_status"], "failed", "{canned:?}: {row:?}");
            assert_eq!(row["_error_code"], "UNEXPECTED_RESPONSE", "{canned:?}");
            assert_eq!(row["_http_status"], "200", "{canned:?}");
            assert_eq!(row["_attempts"], "3", "retried: the outcome is unknown");
        }
        assert_eq!(server.writes(), 6, "{canned:?}");
    }
}

#[tokio::test]
async fn p3_redirects_are_not_followed_and_are_final() {
    for status in [301, 302, 303, 307, 308] {
        let elsewhere = FaultServer::start(Canned::Success).await;
        let location = format!("{}{WORKSPACE}", elsewhere.url);
        let server = FaultServer::start(Canned::Redirect {
            status,
            location: location.clone(),
        })
        .await;
        let (run, rows) = two_rows_against(&server.url, &[]).await;
        assert_eq!(run.exit, 1, "{status}: {}", run.stderr);
        assert_one_row_per_input_row(&rows, 2);
        for row in &rows {
            assert_eq!(row["_status"], "failed", "{status}: {row:?}");
            assert_eq!(row["_error_code"], format!("HTTP_{status}"));
            assert_eq!(row["_http_status"], status.to_string());
            assert_eq!(row["_attempts"], "1", "a redirect is final");
            assert!(
                row["_error_message"].contains(&location),
                "the message gives the Location: {row:?}"
            );
        }
        assert_eq!(server.writes(), 2, "{status}");
        assert_eq!(
            elsewhere.requests(),
            0,
            "{status}: the Location was not visited"
        );
    }
}

#[tokio::test]
async fn p4_successes_on_another_target_are_sent_again_and_the_target_is_recorded() {
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
async fn p4_a_dry_run_records_no_target() {
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

/// 100 workspaces that exist as MULTI_DATAMART, in a sandbox that answers 30% of requests
/// with a 500; a job that moves them to DATASOURCE / postgres-main with `--on-exists update`.
async fn update_through_lost_answers() {
    let sandbox = sandbox_with(FaultConfig {
        fail_rate: 0.3,
        ..FaultConfig::default()
    })
    .await;
    let api = Api::new(&sandbox);
    let names: Vec<String> = (1..=100).map(|i| format!("w-{i:03}")).collect();
    for name in &names {
        let body = serde_json::json!({"name": name, "connectionType": "MULTI_DATAMART"});
        let mut tries = 0;
        loop {
            tries += 1;
            match api.create(&body).await {
                Answer::Http { status: 200, .. } => break,
                Answer::Http { status: 500, .. } if tries < 100 => continue,
                other => panic!("setting up {name}: {other:?}"),
            }
        }
    }
    let dir = JobDir::new();
    let mut csv = String::from("name,connectionType,datasourceName\n");
    for name in &names {
        csv.push_str(&format!("{name},DATASOURCE,postgres-main\n"));
    }
    let input = dir.write("in.csv", &csv);
    let mut args = job_args(&sandbox, &dir, "results.csv");
    args.extend(["--on-exists", "update", "--max-attempts", "30"].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let (_, rows) = dir.results("results.csv");
    assert_one_row_per_input_row(&rows, 100);
    let not_updated: Vec<_> = rows
        .iter()
        .filter(|r| r["_status"] != "updated")
        .map(|r| (r["name"].as_str(), r["_status"].as_str()))
        .collect();
    assert!(
        not_updated.is_empty(),
        "every workspace existed: each is updated, got {not_updated:?}"
    );
    let stored = api.get("/_sandbox/workspaces").await;
    let stored = stored.as_array().unwrap();
    assert_eq!(stored.len(), 100);
    for workspace in stored {
        assert_eq!(workspace["connectionType"], "DATASOURCE", "{workspace}");
        assert_eq!(workspace["datasourceName"], "postgres-main", "{workspace}");
    }
}

#[tokio::test]
async fn p5_on_exists_update_puts_after_a_lost_answer() {
    update_through_lost_answers().await;
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
async fn p6a_a_dry_run_never_replaces_sent_outcomes() {
    let (_sandbox, dir, args, input, before) = sent_outcomes().await;
    let plan = dbprov_with(&["run", &input, "--dry-run"], &args).await;
    assert_eq!(plan.exit, 2, "{}", plan.stderr);
    assert_eq!(std::fs::read(dir.path("results.csv")).unwrap(), before);
}

#[tokio::test]
async fn p6b_a_plain_run_never_replaces_sent_outcomes_without_overwrite() {
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
async fn p6b_a_plain_run_may_replace_a_plan() {
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
async fn p6c_results_on_a_hard_link_of_the_input_are_refused() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write("in.csv", &tenants("t", 5));
    std::fs::hard_link(&input, dir.path("link.csv")).unwrap();
    let args = job_args(&sandbox, &dir, "link.csv");
    for head in [vec!["run", input.as_str()], vec!["run", &input, "--resume"]] {
        let run = dbprov_with(&head, &args).await;
        assert_eq!(run.exit, 2, "{head:?}: {}", run.stderr);
        assert_eq!(std::fs::read_to_string(&input).unwrap(), tenants("t", 5));
    }
    assert_eq!(writes(&api).await, 0);
}

#[tokio::test]
async fn p6d_a_summary_json_on_the_input_or_the_results_is_refused() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write("in.csv", &tenants("t", 5));
    std::fs::hard_link(&input, dir.path("link.csv")).unwrap();
    let args = job_args(&sandbox, &dir, "results.csv");
    let results = dir.path("results.csv");
    let link = dir.path("link.csv");
    for summary in [
        input.as_str(),
        results.to_str().unwrap(),
        link.to_str().unwrap(),
    ] {
        let run = dbprov_with(&["run", &input, "--summary-json", summary], &args).await;
        assert_eq!(run.exit, 2, "--summary-json {summary}: {}", run.stderr);
        assert_eq!(std::fs::read_to_string(&input).unwrap(), tenants("t", 5));
    }
    assert_eq!(writes(&api).await, 0, "no request");
}

#[tokio::test]
async fn p6e_compaction_keeps_the_mode_of_the_results_file() {
    let sandbox = plain_sandbox().await;
    let dir = JobDir::new();
    let args = job_args(&sandbox, &dir, "results.csv");
    let input = dir.write("in.csv", &tenants("t", 10));
    let first = dbprov_with(&["run", &input, "--resume"], &args).await;
    assert_eq!(first.exit, 0, "{}", first.stderr);
    let results = dir.path("results.csv");
    std::fs::set_permissions(&results, std::fs::Permissions::from_mode(0o664)).unwrap();
    std::fs::write(&input, tenants("t", 15)).unwrap();
    let resumed = dbprov_with(&["run", &input, "--resume"], &args).await;
    assert_eq!(resumed.exit, 0, "{}", resumed.stderr);
    assert_one_row_per_input_row(&dir.results("results.csv").1, 15);
    assert_eq!(mode(&results), 0o664, "the mode is kept");
}

#[tokio::test]
async fn p6e_compaction_writes_through_a_symbolic_link() {
    let sandbox = plain_sandbox().await;
    let dir = JobDir::new();
    std::fs::create_dir(dir.path("store")).unwrap();
    let input = dir.write("in.csv", &tenants("t", 10));
    let stored = dbprov_with(
        &["run", &input, "--resume"],
        &job_args(&sandbox, &dir, "store/results.csv"),
    )
    .await;
    assert_eq!(stored.exit, 0, "{}", stored.stderr);
    std::os::unix::fs::symlink("store/results.csv", dir.path("results.csv")).unwrap();

    std::fs::write(&input, tenants("t", 15)).unwrap();
    let args = job_args(&sandbox, &dir, "results.csv");
    let resumed = dbprov_with(&["run", &input, "--resume"], &args).await;
    assert_eq!(resumed.exit, 0, "{}", resumed.stderr);
    let link = std::fs::symlink_metadata(dir.path("results.csv")).unwrap();
    assert!(link.file_type().is_symlink(), "the link stays a link");
    let (_, rows) = dir.results("store/results.csv");
    assert_one_row_per_input_row(&rows, 15);
    assert_eq!(
        std::fs::read_to_string(dir.path("store/results.csv"))
            .unwrap()
            .lines()
            .count(),
        16,
        "the target is compacted: one line per row"
    );
}

/// Makes a directory one where no file can be created; undone on drop.
struct Unwritable {
    dir: std::path::PathBuf,
    immutable: bool,
}

impl Unwritable {
    /// chmod 555, or as root (whom permission bits do not stop) `chattr +i`; `None` when
    /// neither can be done here.
    fn make(dir: &std::path::Path) -> Option<Unwritable> {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if !root {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
            return Some(Unwritable {
                dir: dir.to_owned(),
                immutable: false,
            });
        }
        let done = std::process::Command::new("chattr")
            .arg("+i")
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let guard = Unwritable {
            dir: dir.to_owned(),
            immutable: true,
        };
        if !done || std::fs::write(dir.join("probe"), "").is_ok() {
            return None;
        }
        Some(guard)
    }
}

impl Drop for Unwritable {
    fn drop(&mut self) {
        if self.immutable {
            let _ = std::process::Command::new("chattr")
                .arg("-i")
                .arg(&self.dir)
                .status();
        } else {
            let _ = std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o755));
        }
    }
}

#[tokio::test]
async fn p6f_resume_in_a_directory_where_compaction_cannot_happen_stops_before_sending() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    std::fs::create_dir(dir.path("ro")).unwrap();
    let args = job_args(&sandbox, &dir, "ro/results.csv");
    let input = dir.write("in.csv", &tenants("t", 5));
    let first = dbprov_with(&["run", &input, "--resume"], &args).await;
    assert_eq!(first.exit, 0, "{}", first.stderr);
    let before = std::fs::read(dir.path("ro/results.csv")).unwrap();
    let Some(_guard) = Unwritable::make(&dir.path("ro")) else {
        println!("note: cannot make a directory unwritable here (root without chattr +i); skipped");
        return;
    };
    std::fs::write(&input, tenants("t", 10)).unwrap();
    let resumed = dbprov_with(&["run", &input, "--resume"], &args).await;
    assert_eq!(resumed.exit, 2, "{}", resumed.stderr);
    assert_eq!(writes(&api).await, 5, "nothing sent");
    assert_eq!(std::fs::read(dir.path("ro/results.csv")).unwrap(), before);
}

#[tokio::test]
async fn p7_a_stray_quote_in_a_results_file_makes_one_row_malformed_in_retry() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let args = job_args(&sandbox, &dir, "results.csv");
    let input = dir.write("in.csv", &fifty_one_rows());
    let first = dbprov_with(&["run", &input], &args).await;
    assert_eq!(first.exit, 1, "{}", first.stderr);
    let (_, before) = dir.results("results.csv");
    assert_one_row_per_input_row(&before, 51);
    let sent = writes(&api).await;

    // Row 3 (line 4 of the file) gets a stray quote opening its name.
    let results = dir.path("results.csv");
    let text = std::fs::read_to_string(&results).unwrap();
    let edited = text.replace(",q-03,", ",\"q-03,");
    assert_ne!(edited, text);
    let line_of_row_3 = 1 + edited.lines().position(|l| l.contains("\"q-03")).unwrap();
    std::fs::write(&results, edited).unwrap();

    let retry = dbprov_with(&["retry", results.to_str().unwrap()], &args[2..]).await;
    assert_eq!(retry.exit, 1, "{}", retry.stderr);
    let (_, after) = dir.results("results.csv");
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
        writes(&api).await,
        sent + failed,
        "only the failed rows were sent again"
    );
}

#[tokio::test]
async fn p7_a_stray_quote_in_an_input_makes_one_row_malformed_in_run() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let args = job_args(&sandbox, &dir, "results.csv");
    let csv = tenants("t", 30).replace("\nt-0003,", "\n\"t-0003,");
    let input = dir.write("in.csv", &csv);
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let (_, rows) = dir.results("results.csv");
    assert_one_row_per_input_row(&rows, 30);
    let rows = by_row(&rows);
    assert_eq!(rows[&3]["_status"], "invalid");
    assert_eq!(rows[&3]["_error_code"], "MALFORMED_ROW");
    assert!(
        rows[&3]["_error_message"].contains("line 4"),
        "{:?}",
        rows[&3]
    );
    for (row, result) in &rows {
        if *row != 3 {
            assert_eq!(result["_status"], "created", "row {row}");
        }
    }
    assert_eq!(workspace_counts(&api).await.len(), 29);
}

/// Spawns a job of 400 rows, 4 in flight against 50 ms of latency, in its own process group.
async fn a_job_in_its_own_group() -> (Sandbox, JobDir, tokio::process::Child) {
    let sandbox = slow_sandbox(50).await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let args = job_args(&sandbox, &dir, "results.csv");
    let input = dir.write("in.csv", &tenants("t", 400));
    let mut child = command(&line(&["run", &input, "--concurrency", "4"], &args));
    child.process_group(0);
    let mut child = child.spawn().unwrap();
    until_writes(&api, &mut child, 12).await;
    (sandbox, dir, child)
}

#[tokio::test]
async fn p8a_two_sigints_back_to_back_are_one_press() {
    let (sandbox, dir, mut child) = a_job_in_its_own_group().await;
    let pid = child.id().unwrap() as i32;
    // What `timeout -s INT` does: the process, then its group. The second is sent once the
    // job has taken the first (it says so), well within a second of it: one press.
    // SAFETY: kill(2) on our own child and its group.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut stderr = String::new();
    let taken = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            stderr.push_str(&line);
            stderr.push('\n');
            if line.contains("interrupted") {
                return true;
            }
        }
        false
    })
    .await
    .expect("the first SIGINT is taken within 30 s");
    assert!(
        taken,
        "dbprov ended without saying it was interrupted: {stderr}"
    );
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(-pid, libc::SIGINT) }, 0);
    let rest = tokio::time::timeout(PROCESS_DEADLINE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            stderr.push_str(&line);
            stderr.push('\n');
        }
    });
    rest.await.expect("stderr closes");
    let status = child.wait().await.unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    let (_, rows) = dir.results("results.csv");
    assert_one_row_per_input_row(&rows, 400);
    let skipped: Vec<_> = rows.iter().filter(|r| r["_status"] == "skipped").collect();
    assert!(!skipped.is_empty());
    assert!(skipped.iter().all(|r| r["_error_code"] == "INTERRUPTED"));
    assert!(
        rows.iter()
            .all(|r| r["_status"] == "created" || r["_status"] == "skipped")
    );
    assert!(
        stderr.contains("400 rows") && stderr.contains("results:"),
        "a summary: {stderr}"
    );
    let created: BTreeSet<String> = rows
        .iter()
        .filter(|r| r["_status"] == "created")
        .map(|r| r["name"].clone())
        .collect();
    let held = workspace_counts(&Api::new(&sandbox)).await;
    assert_eq!(held.keys().cloned().collect::<BTreeSet<_>>(), created);
}

#[tokio::test]
async fn p8b_sigterm_while_a_large_input_is_counted_exits_130_with_every_row() {
    let sandbox = slow_sandbox(50).await;
    let dir = JobDir::new();
    let args = job_args(&sandbox, &dir, "results.csv");
    let n = 300_000;
    let mut csv = String::with_capacity(n * 32);
    csv.push_str("name,connectionType\n");
    for i in 1..=n {
        csv.push_str(&format!("big-{i:06},MULTI_DATAMART\n"));
    }
    let input = dir.write("in.csv", &csv);
    drop(csv);
    let mut child = command(&line(&["run", &input, "--concurrency", "4"], &args))
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    // As soon as the process has the input open (its first pass counts the rows): the
    // signal lands in the counting pass or, on a fast machine, just after; either way the
    // outcome must be the same.
    let fds = format!("/proc/{pid}/fd");
    let wanted = std::fs::canonicalize(&input).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let open = std::fs::read_dir(&fds).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| std::fs::read_link(e.path()).is_ok_and(|target| target == wanted))
        });
        if open {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "dbprov ended early");
        assert!(
            Instant::now() < deadline,
            "the input was not opened in 30 s"
        );
        tokio::task::yield_now().await;
    }
    signal(&child, libc::SIGTERM);
    let run = finish(child).await;
    assert_eq!(run.exit, 130, "never 143: {}", run.stderr);
    let (_, rows) = dir.results("results.csv");
    assert_one_row_per_input_row(&rows, n);
    assert!(
        rows.iter()
            .all(|r| r["_status"] == "created" || r["_error_code"] == "INTERRUPTED")
    );
}

#[tokio::test]
async fn p9_a_fifo_input_streams() {
    // Five rounds: a writer meets the first process that opens the FIFO, so a job that
    // opens it twice (to look at it, then to read it) loses the rows in some of them.
    for round in 1..=5 {
        let sandbox = plain_sandbox().await;
        let api = Api::new(&sandbox);
        let dir = JobDir::new();
        let fifo = dir.path("in.fifo");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string and mode.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::write(fifo, tenants("f", 20)))
        };
        let args = job_args(&sandbox, &dir, "results.csv");
        let mut child = command(&line(&["run", fifo.to_str().unwrap()], &args))
            .spawn()
            .unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(15), child.wait()).await;
        if ended.is_err() {
            child.start_kill().unwrap();
        }
        // A writer still waiting for a reader is let go.
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo);
        let run = finish(child).await;
        let _ = writer.join().unwrap();
        assert!(
            ended.is_ok(),
            "round {round}: dbprov still waits on the FIFO after 15 s: {}",
            run.stderr
        );
        assert_eq!(run.exit, 0, "round {round}: {}", run.stderr);
        let (_, rows) = dir.results("results.csv");
        assert_one_row_per_input_row(&rows, 20);
        assert!(rows.iter().all(|r| r["_status"] == "created"));
        assert_eq!(writes(&api).await, 20);
    }
}

#[tokio::test]
async fn p9_dev_stdin_as_the_input_path_streams() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let args = job_args(&sandbox, &dir, "results.csv");
    let (child, mut stdin) = spawn_fed(&line(&["run", "/dev/stdin"], &args));
    stdin.write_all(tenants("s", 20).as_bytes()).await.unwrap();
    drop(stdin);
    let run = finish_within(child, Duration::from_secs(20)).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let (_, rows) = dir.results("results.csv");
    assert_one_row_per_input_row(&rows, 20);
    assert!(rows.iter().all(|r| r["_status"] == "created"));
    assert_eq!(writes(&api).await, 20);
}

#[tokio::test]
async fn p10_shards_without_o_write_their_own_default_results_files() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write("in.csv", &tenants("t", 200));
    let key = dir.key_file(&sandbox);
    let url = sandbox.url();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for index in 0..4 {
        let shard = format!("{index}/4");
        let mut job = command(&[
            "run",
            &input,
            "--shard",
            &shard,
            "--base-url",
            &url,
            "--api-key-file",
            &key,
            "--rate",
            "unlimited",
        ]);
        job.current_dir(dir.path(""));
        let run = run_to_end(job).await;
        assert_eq!(run.exit, 0, "shard {shard}: {}", run.stderr);
        let name = format!("in.shard-{index}-of-4.results.csv");
        assert!(dir.path(&name).exists(), "{name}: {}", run.stderr);
        for row in dir.results(&name).1 {
            *seen.entry(row["_row"].clone()).or_default() += 1;
        }
    }
    assert!(
        !dir.path("in.results.csv").exists(),
        "no shard writes the unsharded default"
    );
    assert_eq!(seen.len(), 200, "every row in some shard");
    assert!(seen.values().all(|n| *n == 1), "and in one only");
    assert_eq!(workspace_counts(&api).await.len(), 200);
}

#[tokio::test]
async fn p10_shards_are_balanced_for_names_over_a_small_alphabet() {
    // a e i m q u: letters whose two low bits are the same.
    let letters = ['a', 'e', 'i', 'm', 'q', 'u'];
    let dir = JobDir::new();
    let mut csv = String::from("name,connectionType\n");
    for i in 0..2000usize {
        let mut name = String::new();
        let mut k = i;
        for _ in 0..5 {
            name.push(letters[k % 6]);
            k /= 6;
        }
        csv.push_str(&format!("{name},MULTI_DATAMART\n"));
    }
    let input = dir.write("in.csv", &csv);
    let mut sizes = Vec::new();
    for index in 0..4 {
        let output = dir.path(&format!("plan-{index}.csv"));
        let shard = format!("{index}/4");
        let plan = dbprov(&[
            "run",
            &input,
            "--dry-run",
            "--sandbox",
            "--shard",
            &shard,
            "-o",
            output.to_str().unwrap(),
        ])
        .await;
        assert_eq!(plan.exit, 0, "{}", plan.stderr);
        sizes.push(complete_records(&output).len());
    }
    assert_eq!(sizes.iter().sum::<usize>(), 2000);
    assert!(
        sizes.iter().all(|n| *n >= 300),
        "no shard below 300 of 2000: {sizes:?}"
    );
}

#[tokio::test]
async fn p11_absurd_rates_are_refused_with_exit_2_not_a_panic() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let mut args = job_args(&sandbox, &dir, "results.csv");
    let input = dir.write("in.csv", &tenants("t", 3));
    for rate in ["1e-20/s", "0.0000001/h"] {
        set_flag(&mut args, "--rate", rate);
        let run = dbprov_with(&["run", &input], &args).await;
        assert_eq!(run.exit, 2, "--rate {rate}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        assert!(run.stderr.contains("--rate"), "{}", run.stderr);
    }
    assert_eq!(writes(&api).await, 0);
}

async fn a_500_with_a_body(canned: Canned) {
    let server = FaultServer::start(canned).await;
    let dir = JobDir::new();
    let input = dir.write("in.csv", "name,connectionType\nbig,MULTI_DATAMART\n");
    let mut args = job_args_to(&server.url, &fault_key(&dir), &dir, "results.csv");
    args.extend(["--timeout", "20s", "--max-attempts", "2"].map(str::to_owned));
    let started = Instant::now();
    let mut job = command(&line(&["run", &input], &args));
    // Under a memory limit (as a container has), reading a 100 MB body whole is an abort.
    // One malloc arena and two runtime threads keep the address space the same on any
    // machine (each arena reserves 64 MB of it).
    job.env("MALLOC_ARENA_MAX", "1")
        .env("TOKIO_WORKER_THREADS", "2");
    limit(&mut job, libc::RLIMIT_AS, 192 << 20);
    let run = run_to_end(job).await;
    let took = started.elapsed();
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let (_, rows) = dir.results("results.csv");
    assert_eq!(rows[0]["_status"], "failed");
    assert_eq!(rows[0]["_error_code"], "HTTP_500");
    assert_eq!(rows[0]["_http_status"], "500");
    assert_eq!(rows[0]["_attempts"], "2");
    let message = rows[0]["_error_message"].len();
    assert!(message < 1000, "a message of {message} bytes");
    assert!(
        took < Duration::from_secs(15),
        "two attempts took {took:?}: the body was read to the timeout"
    );
}

#[tokio::test]
async fn p11_an_endless_error_body_is_read_only_so_far() {
    a_500_with_a_body(Canned::EndlessError).await;
}

#[tokio::test]
async fn p11_a_100_mb_error_body_is_read_only_so_far() {
    a_500_with_a_body(Canned::HugeError(100 * 1024 * 1024)).await;
}

#[tokio::test]
async fn p11_a_concurrency_beyond_the_file_descriptor_limit_is_raised_or_refused() {
    let sandbox = slow_sandbox(200).await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let args = job_args(&sandbox, &dir, "results.csv");
    let input = dir.write("in.csv", &tenants("t", 1500));
    let mut job = command(&line(&["run", &input, "--concurrency", "1000"], &args));
    limit(&mut job, libc::RLIMIT_NOFILE, 256);
    let run = run_to_end(job).await;
    match run.exit {
        2 => {
            assert_eq!(writes(&api).await, 0, "refused before any request");
            let said = run.stderr.to_lowercase();
            assert!(
                said.contains("limit")
                    && (said.contains("file descriptor") || said.contains("open files")),
                "names the file-descriptor limit: {}",
                run.stderr
            );
        }
        0 => {
            let (_, rows) = dir.results("results.csv");
            assert_one_row_per_input_row(&rows, 1500);
            assert!(rows.iter().all(|r| r["_status"] == "created"));
        }
        other => panic!("exit {other}: {}", run.stderr),
    }
    assert!(
        !run.stderr.contains("Too many open files"),
        "{}",
        run.stderr
    );
    if let Ok(text) = std::fs::read_to_string(dir.path("results.csv")) {
        assert!(!text.contains("Too many open files"));
    }
}

const CANARY: &str = "canary-key-5f2b";

#[tokio::test]
async fn p12_a_page_that_echoes_the_authorization_header_never_leaks_the_key() {
    for status in [401, 502] {
        let server = FaultServer::start(Canned::EchoAuthorization(status)).await;
        let dir = JobDir::new();
        let input = dir.write("in.csv", &tenants("t", 3));
        let key = dir.write("key", &format!("{CANARY}\n"));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut args = job_args_to(&server.url, &key, &dir, "results.csv");
        let summary = dir.path("summary.json");
        args.extend(
            [
                "--max-attempts",
                "2",
                "-v",
                "--summary-json",
                summary.to_str().unwrap(),
            ]
            .map(str::to_owned),
        );
        let run = dbprov_with(&["run", &input], &args).await;
        assert!(
            run.exit == 1 || run.exit == 3,
            "{status}: exit {}: {}",
            run.exit,
            run.stderr
        );
        assert!(server.writes() > 0, "the page was seen");
        let results = std::fs::read_to_string(dir.path("results.csv")).unwrap();
        let summary = std::fs::read_to_string(&summary).unwrap();
        for (what, text) in [
            ("results", &results),
            ("stderr", &run.stderr),
            ("stdout", &run.stdout),
            ("summary", &summary),
        ] {
            assert!(
                !text.contains(CANARY),
                "{status}: the key is in {what}: {text}"
            );
        }
        let (_, rows) = dir.results("results.csv");
        assert!(
            rows.iter().any(|r| r["_http_status"] == status.to_string()),
            "{rows:?}"
        );
    }
}

#[tokio::test]
async fn p12_line_breaks_from_the_server_cannot_forge_lines() {
    let server = FaultServer::start(Canned::ForgedLogLine).await;
    let dir = JobDir::new();
    let input = dir.write("in.csv", &tenants("t", 3));
    let args = job_args_to(&server.url, &fault_key(&dir), &dir, "results.csv");
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let (_, rows) = dir.results("results.csv");
    assert_one_row_per_input_row(&rows, 3);
    let text = std::fs::read_to_string(dir.path("results.csv")).unwrap();
    assert_eq!(text.lines().count(), 4, "one line per row: {text}");
    for row in &rows {
        assert_eq!(row["_status"], "failed");
        for column in ["_error_code", "_error_message"] {
            assert!(
                !row[column].chars().any(char::is_control),
                "{column}: {:?}",
                row[column]
            );
        }
        assert!(row["_error_message"].contains("bad"), "{row:?}");
    }
    assert!(
        !run.stderr
            .lines()
            .any(|l| l.starts_with(&FORGED[..20]) || l.starts_with(FORGED)),
        "a forged line on stderr: {}",
        run.stderr
    );
}

#[tokio::test]
async fn the_retry_hint_repeats_the_options_that_shaped_the_run_and_works() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write("in.csv", &fifty_one_rows());
    let key = dir.key_file(&sandbox);
    let results = dir.path("results.csv");
    let url = sandbox.url();
    let run = dbprov(&[
        "run",
        &input,
        "-o",
        results.to_str().unwrap(),
        "--base-url",
        &url,
        "--api-key-file",
        &key,
        "--on-exists",
        "update",
        "--rate",
        "500/s",
        "--concurrency",
        "3",
    ])
    .await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let hint = run
        .stderr
        .lines()
        .find_map(|l| l.split_once("retry the rows that did not succeed: "))
        .map(|(_, command)| command.trim().to_owned())
        .unwrap_or_else(|| panic!("no retry hint: {}", run.stderr));
    // Words of the command, with any shell quotes taken off.
    let words: Vec<String> = hint
        .split_whitespace()
        .map(|w| w.trim_matches(|c| c == '\'' || c == '"').to_owned())
        .collect();
    for (flag, value) in [
        ("--base-url", url.as_str()),
        ("--api-key-file", key.as_str()),
        ("--on-exists", "update"),
        ("--rate", "500/s"),
        ("--concurrency", "3"),
    ] {
        let given = words.windows(2).any(|w| w[0] == flag && w[1] == value)
            || words.contains(&format!("{flag}={value}"));
        assert!(given, "{flag} {value} is not in {hint:?}");
    }
    assert!(!hint.contains(sandbox.api_key()), "{hint}");
    let sent = writes(&api).await;

    // The hint runs as printed, from a shell, with dbprov on the PATH.
    let bin_dir = std::path::Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut shell = tokio::process::Command::new("sh");
    shell
        .args(["-c", &hint])
        .env("PATH", path)
        .env_remove("DATABRAIN_API_KEY")
        .env_remove("DATABRAIN_BASE_URL")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let retry = run_to_end(shell).await;
    assert_eq!(retry.exit, 1, "{}", retry.stderr);
    assert_eq!(writes(&api).await, sent + 7, "the seven failed rows again");
    assert_one_row_per_input_row(&dir.results("results.csv").1, 51);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_two_processes_started_together_never_run_at_once() {
    let sandbox = slow_sandbox(5).await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let args = job_args(&sandbox, &dir, "results.csv");
    let input = dir.path("in.csv");
    let input = input.to_str().unwrap();
    let head = ["run", input, "--resume", "--concurrency", "4"];
    let mut rows = 0;
    for round in 1..=5 {
        rows += 60;
        std::fs::write(input, tenants("t", rows)).unwrap();
        let a = command(&line(&head, &args)).spawn().unwrap();
        let b = command(&line(&head, &args)).spawn().unwrap();
        let (a, b) = tokio::join!(finish(a), finish(b));
        for run in [&a, &b] {
            assert!(
                run.exit == 0 || (run.exit == 2 && run.stderr.contains("in use")),
                "round {round}: exit {}: {}",
                run.exit,
                run.stderr
            );
        }
        assert!(a.exit == 0 || b.exit == 0, "round {round}: one proceeds");
        let (_, results) = dir.results("results.csv");
        assert_one_row_per_input_row(&results, rows);
        assert!(
            results.iter().all(|r| r["_status"] == "created"),
            "round {round}: no row was sent twice"
        );
        assert_eq!(
            writes(&api).await,
            rows as u64,
            "round {round}: each name sent once"
        );
    }
    let held = workspace_counts(&api).await;
    assert_eq!(held.len(), 300);
    assert!(held.values().all(|n| *n == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_kill_9_then_resume_five_times_loses_nothing_and_doubles_nothing() {
    let sandbox = dbprov::sandbox::spawn(dbprov::sandbox::SandboxConfig {
        seed: Some(8),
        faults: FaultConfig {
            latency: Duration::from_millis(2),
            jitter: Duration::from_millis(4),
            fail_after_commit_rate: 0.1,
            drop_rate: 0.05,
            ..FaultConfig::default()
        },
        ..dbprov::sandbox::SandboxConfig::default()
    })
    .await
    .unwrap();
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let mut args = job_args(&sandbox, &dir, "results.csv");
    args.extend(["--max-attempts", "12", "--concurrency", "8"].map(str::to_owned));
    let input = dir.write("in.csv", &tenants("t", 600));
    let head = ["run", input.as_str(), "--resume"];
    for after in [30, 120, 240, 360, 480] {
        let mut child = command(&line(&head, &args)).spawn().unwrap();
        let reached = async {
            while writes(&api).await < after {
                if child.try_wait().unwrap().is_some() {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            true
        };
        let reached = tokio::time::timeout(Duration::from_secs(60), reached)
            .await
            .expect("progress within 60 s");
        if reached {
            child.start_kill().unwrap();
        }
        let killed = finish(child).await;
        assert!(
            killed.exit == 128 + libc::SIGKILL || killed.exit == 0,
            "after {after} requests: exit {}: {}",
            killed.exit,
            killed.stderr
        );
    }
    let last = dbprov_with(&head, &args).await;
    assert_eq!(last.exit, 0, "{}", last.stderr);
    let (_, rows) = dir.results("results.csv");
    assert_one_row_per_input_row(&rows, 600);
    let held = workspace_counts(&api).await;
    assert_eq!(held.len(), 600);
    assert!(held.values().all(|n| *n == 1), "no workspace twice");
    for row in &rows {
        assert!(
            row["_status"] == "created" || row["_status"] == "exists",
            "{row:?}"
        );
        assert!(held.contains_key(&row["name"]));
    }
}

#[tokio::test]
async fn the_key_leaks_neither_through_a_code_nor_through_a_cut_excerpt() {
    // 183: "Bearer " and the key straddle the 200th character of a page's excerpt.
    for canned in [
        Canned::AuthorizationAsCode,
        Canned::AuthorizationAt(183),
        Canned::AuthorizationAt(190),
        // The 64 KiB cut falls inside the key, and the spaces fold away in the excerpt.
        Canned::AuthorizationAfterSpaces(64 * 1024 - 1 - "Bearer ".len() - 10),
    ] {
        let server = FaultServer::start(canned.clone()).await;
        let dir = JobDir::new();
        let input = dir.write("in.csv", &tenants("t", 2));
        let key = dir.write("key", &format!("{CANARY}\n"));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut args = job_args_to(&server.url, &key, &dir, "results.csv");
        args.extend(["--max-attempts", "2", "-v"].map(str::to_owned));
        let run = dbprov_with(&["run", &input], &args).await;
        assert_eq!(run.exit, 1, "{canned:?}: {}", run.stderr);
        let results = std::fs::read_to_string(dir.path("results.csv")).unwrap();
        // Not the key, and not its first eight characters either.
        for text in [&results, &run.stderr] {
            assert!(!text.contains(&CANARY[..8]), "{canned:?}: {text}");
        }
    }
}

#[tokio::test]
async fn a_success_envelope_naming_another_workspace_is_not_a_success() {
    let server = FaultServer::start(Canned::SuccessFor("someone-else".into())).await;
    let (run, rows) = two_rows_against(&server.url, &[]).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    for row in &rows {
        assert_eq!(row["_status"], "failed", "{row:?}");
        assert_eq!(row["_error_code"], "UNEXPECTED_RESPONSE", "{row:?}");
        assert!(row["_error_message"].contains("someone-else"), "{row:?}");
    }
}

#[tokio::test]
async fn a_summary_json_that_leads_to_the_results_file_is_refused() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write("in.csv", &tenants("t", 3));
    std::fs::create_dir(dir.path("sub")).unwrap();
    std::os::unix::fs::symlink("r2.csv", dir.path("link2")).unwrap();
    std::os::unix::fs::symlink("r3.csv", dir.path("link3")).unwrap();
    for (output, summary) in [
        ("sub/../r1.csv", "r1.csv"),
        ("r2.csv", "link2"),
        ("link3", "r3.csv"),
    ] {
        let mut args = job_args(&sandbox, &dir, output);
        args.extend(["--summary-json", dir.path(summary).to_str().unwrap()].map(str::to_owned));
        let run = dbprov_with(&["run", &input], &args).await;
        assert_eq!(
            run.exit, 2,
            "-o {output} --summary-json {summary}: {}",
            run.stderr
        );
        assert!(run.stderr.contains("--summary-json"), "{}", run.stderr);
    }
    assert_eq!(writes(&api).await, 0);
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
async fn a_lost_answer_is_still_ours_after_a_rerun_that_sent_nothing() {
    // Every create is committed, then answered 500: all three are ours, unseen.
    let sandbox = sandbox_with(FaultConfig {
        fail_after_commit_rate: 1.0,
        ..FaultConfig::default()
    })
    .await;
    let dir = JobDir::new();
    let input = dir.write("in.csv", &tenants("t", 3));
    let mut args = job_args(&sandbox, &dir, "results.csv");
    set_flag(&mut args, "--backoff-max", "1ms");
    args.extend(["--max-attempts", "1"].map(str::to_owned));
    let first = dbprov_with(&["run", &input], &args).await;
    assert_eq!(first.exit, 1, "{}", first.stderr);
    // A retry with a key the API refuses: a 401, the rest skipped with no attempt.
    let wrong = dir.write("wrong-key", "not-the-key\n");
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut refused = args.clone();
    set_flag(&mut refused, "--api-key-file", &wrong);
    let results = dir.path("results.csv");
    let results = results.to_str().unwrap();
    let second = dbprov_with(&["retry", results], &refused[2..]).await;
    assert_eq!(second.exit, 3, "{}", second.stderr);
    let third = dbprov_with(&["retry", results], &args[2..]).await;
    assert_eq!(third.exit, 0, "{}", third.stderr);
    let (_, rows) = dir.results("results.csv");
    assert_one_row_per_input_row(&rows, 3);
    assert!(
        rows.iter().all(|r| r["_status"] == "created"),
        "created by the first run, not found existing: {rows:?}"
    );
}

#[tokio::test]
async fn a_results_file_replaced_mid_run_keeps_this_runs_rows_beside_it() {
    let sandbox = slow_sandbox(10).await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let args = job_args(&sandbox, &dir, "results.csv");
    let input = dir.write("in.csv", &tenants("t", 600));
    let head = ["run", input.as_str(), "--concurrency", "4"];
    let mut child = command(&line(&head, &args)).spawn().unwrap();
    until_writes(&api, &mut child, 30).await;
    let results = dir.path("results.csv");
    let newcomer = dir.write("newcomer.csv", "someone else's file\n");
    std::fs::rename(&newcomer, &results).unwrap();
    let run = finish(child).await;
    assert_eq!(run.exit, 4, "{}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(&results).unwrap(),
        "someone else's file\n",
        "the newcomer is left alone"
    );
    let rescued: Vec<_> = std::fs::read_dir(dir.dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("results.csv.dbprov-rescued-"))
        .collect();
    assert_eq!(rescued.len(), 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(&*rescued[0].to_string_lossy()),
        "{}",
        run.stderr
    );
    let kept = complete_records(&rescued[0]);
    let sent = writes(&api).await;
    assert!(sent < 600, "sending stopped");
    assert!(
        sent - attempts(&kept) <= 4,
        "{sent} sent, {} recorded",
        attempts(&kept)
    );
}

#[tokio::test]
async fn stdin_that_reads_the_results_file_is_refused() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write("in.csv", &tenants("t", 20));
    let args = job_args(&sandbox, &dir, "results.csv");
    let first = dbprov_with(&["run", &input], &args).await;
    assert_eq!(first.exit, 0, "{}", first.stderr);
    let results = dir.path("results.csv");
    let before = std::fs::read(&results).unwrap();
    let mut job = command(&line(&["run", "-", "--resume"], &args));
    job.stdin(std::fs::File::open(&results).unwrap());
    let run = run_to_end(job).await;
    assert_eq!(run.exit, 2, "{}", run.stderr);
    assert!(run.stderr.contains("standard input"), "{}", run.stderr);
    assert_eq!(std::fs::read(&results).unwrap(), before);
    assert_eq!(writes(&api).await, 20);
}

#[tokio::test]
async fn a_first_ctrl_c_ends_a_job_whose_piped_input_stalls() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let args = job_args(&sandbox, &dir, "results.csv");
    let (mut child, mut stdin) = spawn_fed(&line(&["run", "-"], &args));
    stdin.write_all(tenants("t", 3).as_bytes()).await.unwrap();
    stdin.flush().await.unwrap();
    until_writes(&api, &mut child, 3).await;
    // The input stays open and gives nothing more, as a producer that waits would.
    signal(&child, libc::SIGINT);
    let run = finish_within(child, Duration::from_secs(30)).await;
    drop(stdin);
    assert_eq!(run.exit, 130, "{}", run.stderr);
    let (_, rows) = dir.results("results.csv");
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows.iter().all(|r| r["_status"] == "created"));
}

#[tokio::test]
async fn a_connection_never_made_is_not_a_lost_answer_on_the_next_run() {
    let dir = JobDir::new();
    let input = dir.write("in.csv", &tenants("t", 2));
    // Nothing listens on this port (taken, then freed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nowhere = format!("http://127.0.0.1:{port}");
    let sandbox = plain_sandbox().await;
    let mut args = job_args_to(&nowhere, &dir.key_file(&sandbox), &dir, "results.csv");
    let first = dbprov_with(&["run", &input], &args).await;
    assert_eq!(first.exit, 3, "unreachable: {}", first.stderr);
    let (_, rows) = dir.results("results.csv");
    assert!(
        rows.iter()
            .all(|r| r["_error_code"] == "ABORTED_UNREACHABLE")
    );
    assert!(rows.iter().any(|r| r["_attempts"] != "0"), "{rows:?}");
    // Someone else creates both names; then the run is resumed against the live API.
    let api = Api::new(&sandbox);
    for name in ["t-0001", "t-0002"] {
        let body = serde_json::json!({"name": name, "connectionType": "MULTI_DATAMART"});
        assert_eq!(api.create(&body).await.status(), Some(200));
    }
    set_flag(&mut args, "--base-url", &sandbox.url());
    let second = dbprov_with(&["run", &input, "--resume"], &args).await;
    assert_eq!(second.exit, 0, "{}", second.stderr);
    let (_, rows) = dir.results("results.csv");
    assert!(
        rows.iter().all(|r| r["_status"] == "exists"),
        "nothing was ever sent to them: {rows:?}"
    );
}

#[tokio::test]
async fn a_first_sigterm_ends_a_job_whose_piped_input_never_ends() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let args = job_args(&sandbox, &dir, "results.csv");
    let (mut child, mut stdin) = spawn_fed(&line(&["run", "-", "--rate", "200/s"], &args[..6]));
    let feeding = tokio::spawn(async move {
        stdin.write_all(b"name,connectionType\n").await.unwrap();
        for i in 0.. {
            let row = format!("endless-{i},MULTI_DATAMART\n");
            if stdin.write_all(row.as_bytes()).await.is_err() {
                break;
            }
        }
    });
    until_writes(&api, &mut child, 20).await;
    signal(&child, libc::SIGTERM);
    let run = finish_within(child, Duration::from_secs(30)).await;
    feeding.abort();
    assert_eq!(run.exit, 130, "{}", run.stderr);
    let rows = complete_records(&dir.path("results.csv"));
    let mut numbers: Vec<u64> = rows.iter().map(|r| r["_row"].parse().unwrap()).collect();
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(numbers.len(), rows.len(), "no row twice");
    assert!(
        rows.iter().filter(|r| r["_status"] == "created").count() as u64 >= 20,
        "the rows sent are recorded"
    );
}

#[tokio::test]
async fn a_base_url_with_a_query_and_a_summary_on_stdout_are_refused() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write("in.csv", &tenants("t", 2));
    let mut args = job_args(&sandbox, &dir, "results.csv");
    set_flag(&mut args, "--base-url", &format!("{}/?a=b", sandbox.url()));
    let query = dbprov_with(&["run", &input], &args).await;
    assert_eq!(query.exit, 2, "{}", query.stderr);
    assert!(query.stderr.contains("?query"), "{}", query.stderr);

    let mut args = job_args(&sandbox, &dir, "results.csv");
    set_flag(&mut args, "-o", "-");
    let mut job = command(&line(
        &["run", &input, "--summary-json", "/dev/stdout"],
        &args,
    ));
    job.stdout(Stdio::piped());
    let stdout = run_to_end(job).await;
    assert_eq!(stdout.exit, 2, "{}", stdout.stderr);
    assert!(
        stdout.stderr.contains("standard output"),
        "{}",
        stdout.stderr
    );
    assert_eq!(writes(&api).await, 0);
}
