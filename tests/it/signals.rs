//! Ctrl-C, SIGTERM and kill -9: a job that is stopped records every row, a second Ctrl-C
//! exits at once, and `--resume` after any of them loses nothing and doubles nothing.

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use dbprov::sandbox::{self, FaultConfig, Sandbox, SandboxConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::common::{
    Api, assert_one_row_per_input_row, complete_records, count, datasource_csv, expect, held,
    holding, latest_records, log, name_csv, names, set_flag, slow_sandbox, statuses, tally,
    tenants, workspace_counts,
};
use crate::fixture::Job;
use crate::process::{
    PROCESS_DEADLINE, command, dbprov, dbprov_with, finish, finish_within, line, signal,
    spawn_dbprov, spawn_fed, start, until_requests, until_writes,
};

/// A job of 400 rows, 4 in flight against 50 ms of latency, that gets `signal` midway: it
/// must exit 130 with every row recorded, the rest `skipped` / `INTERRUPTED`, and every
/// workspace it made recorded `created` (requests in flight are let finish).
async fn interrupt_midway(signal_number: i32) -> (Job, String, u64) {
    let job = Job::with_faults(FaultConfig {
        latency: std::time::Duration::from_millis(50),
        ..FaultConfig::default()
    })
    .await;
    let args = job.args("results.csv");
    let input = job.input(&tenants("t", 400));
    let mut command: Vec<&str> = vec!["run", &input, "--concurrency", "4"];
    command.extend(args.iter().map(String::as_str));
    let mut child = spawn_dbprov(&command);
    until_requests(&job.api, &mut child, 12).await;
    signal(&child, signal_number);
    let output = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");

    let rows = job.rows();
    assert_one_row_per_input_row(&rows, 400);
    let created: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r["_status"] == "created")
        .map(|r| r["name"].as_str())
        .collect();
    let skipped: Vec<_> = rows.iter().filter(|r| r["_status"] == "skipped").collect();
    assert!(skipped.iter().all(|r| r["_error_code"] == "INTERRUPTED"));
    assert_eq!(created.len() + skipped.len(), 400, "{stderr}");
    assert!(!skipped.is_empty());
    let held = workspace_counts(&job.api).await;
    assert_eq!(
        held.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        created
    );
    let interrupted = skipped.len() as u64;
    (job, input, interrupted)
}

#[tokio::test]
async fn ctrl_c_drains_records_the_rest_as_interrupted_and_resume_finishes() {
    let (job, input, interrupted) = interrupt_midway(libc::SIGINT).await;
    let sent_before = job.requests().await;
    let resumed = job
        .run(&["run", &input, "--resume", "--concurrency", "16"])
        .await;
    assert_eq!(resumed.exit, 0, "{}", resumed.stderr);
    assert_eq!(job.requests().await - sent_before, interrupted);
    let rows = job.rows();
    assert_one_row_per_input_row(&rows, 400);
    assert!(rows.iter().all(|r| r["_status"] == "created"));
    assert!(workspace_counts(&job.api).await.values().all(|n| *n == 1));
}

#[tokio::test]
async fn sigterm_drains_like_ctrl_c() {
    interrupt_midway(libc::SIGTERM).await;
}

/// The invariants after kill -9 at several moments and a final `--resume`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_any_moment_then_resume_loses_nothing_and_doubles_nothing() {
    let job = Job::on(
        sandbox::spawn(SandboxConfig {
            seed: Some(9),
            faults: FaultConfig {
                latency: std::time::Duration::from_millis(3),
                jitter: std::time::Duration::from_millis(6),
                fail_after_commit_rate: 0.2,
                drop_rate: 0.05,
                ..FaultConfig::default()
            },
            ..SandboxConfig::default()
        })
        .await
        .unwrap(),
    );
    let mut args = job.args("results.csv");
    // Slower backoff than the other tests, so that retries are pending at each kill.
    set_flag(&mut args, "--backoff-base", "50ms");
    set_flag(&mut args, "--backoff-max", "500ms");
    args.extend(["--max-attempts", "12", "--concurrency", "16"].map(str::to_owned));
    let mut csv = tenants("t", 3000);
    for i in 0..5 {
        csv.push_str(&format!("broken-{i},,,\n"));
    }
    let input = job.input(&csv);
    let mut command: Vec<&str> = vec!["run", &input, "--resume"];
    command.extend(args.iter().map(String::as_str));

    for after_requests in [100, 1400, 2800] {
        let mut child = spawn_dbprov(&command);
        until_requests(&job.api, &mut child, after_requests).await;
        child.start_kill().unwrap();
        let output = child.wait_with_output().await.unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            output.status.signal(),
            Some(libc::SIGKILL),
            "killed after {after_requests} requests: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let last = dbprov(&command).await;
    assert_eq!(last.exit, 1, "the five broken rows: {}", last.stderr);

    let rows = job.rows();
    assert_one_row_per_input_row(&rows, 3005);
    let held = workspace_counts(&job.api).await;
    assert!(held.values().all(|n| *n == 1), "no workspace twice");
    let statuses = statuses(&rows);
    for (name, status) in &statuses {
        if name.starts_with("broken-") {
            assert_eq!(status, "invalid");
        } else {
            assert!(
                status == "created" || status == "exists",
                "{name}: {status}"
            );
            assert!(
                held.contains_key(name),
                "{name} is recorded {status} but does not exist"
            );
        }
    }
    assert_eq!(held.len(), 3000);
    assert!(
        job.api.stats().await["faults_injected"]["fail_after_commit"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[tokio::test]
async fn a_second_ctrl_c_exits_at_once_and_what_was_written_stays_valid() {
    use tokio::io::AsyncBufReadExt;
    let job = Job::with_faults(FaultConfig {
        latency: std::time::Duration::from_secs(30),
        ..FaultConfig::default()
    })
    .await;
    let args = job.args("results.csv");
    let input = job.input(&format!("{}broken,,\n", tenants("t", 20)));
    let mut command: Vec<&str> = vec!["run", &input, "--concurrency", "4"];
    command.extend(args.iter().map(String::as_str));
    let mut child = spawn_dbprov(&command);
    until_requests(&job.api, &mut child, 4).await;
    signal(&child, libc::SIGINT);
    // Wait until the first Ctrl-C is taken (the job says so), then press it again while
    // four requests are still waiting on the sandbox's 30 s latency: a second or more
    // later, as a person presses twice (closer together they are one press). The second
    // is timed from the job's message, which comes after the job took the first press:
    // however late this test reads it, the job sees more than a second between the two.
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    while let Some(line) = stderr.next_line().await.unwrap() {
        if line.contains("interrupted") {
            break;
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    signal(&child, libc::SIGINT);
    let status = child.wait().await.unwrap();
    assert_eq!(status.code(), Some(130));
    // The rows written so far are whole; the four in flight are recorded as such (what a
    // rerun reads as a lost answer), and have no final record.
    let (header, rows) = job.dir.results("results.csv");
    assert!(rows.iter().all(|r| r.len() == header.len()));
    let latest = latest_records(rows);
    let in_flight = latest
        .iter()
        .filter(|r| r["_error_message"].starts_with("the job ended while this row's request"))
        .count();
    assert_eq!(
        in_flight, 4,
        "exited without waiting for the requests in flight: {latest:?}"
    );
}

/// Spawns a job of 400 rows, 4 in flight against 50 ms of latency, in its own process group.
async fn a_job_in_its_own_group() -> (Job, tokio::process::Child) {
    let job = Job::on(slow_sandbox(50).await);
    let args = job.args("results.csv");
    let input = job.input(&tenants("t", 400));
    let mut child = command(&line(&["run", &input, "--concurrency", "4"], &args));
    child.process_group(0);
    let mut child = start(&mut child);
    until_writes(&job.api, &mut child, 12).await;
    (job, child)
}

#[tokio::test]
async fn two_sigints_back_to_back_are_one_press() {
    let (job, mut child) = a_job_in_its_own_group().await;
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
    let rows = job.rows();
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
    let held = workspace_counts(&job.api).await;
    assert_eq!(held.keys().cloned().collect::<BTreeSet<_>>(), created);
}

#[tokio::test]
async fn sigterm_while_a_large_input_is_counted_exits_130_with_every_row() {
    let job = Job::on(slow_sandbox(50).await);
    let args = job.args("results.csv");
    let n = 300_000;
    let mut csv = String::with_capacity(n * 32);
    csv.push_str("name,connectionType\n");
    for i in 1..=n {
        csv.push_str(&format!("big-{i:06},MULTI_DATAMART\n"));
    }
    let input = job.input(&csv);
    drop(csv);
    let mut child = start(&mut command(&line(
        &["run", &input, "--concurrency", "4"],
        &args,
    )));
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
    let rows = job.rows();
    assert_one_row_per_input_row(&rows, n);
    assert!(
        rows.iter()
            .all(|r| r["_status"] == "created" || r["_error_code"] == "INTERRUPTED")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_then_resume_five_times_through_lost_answers_loses_nothing_and_doubles_nothing() {
    let job = Job::on(
        dbprov::sandbox::spawn(dbprov::sandbox::SandboxConfig {
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
        .unwrap(),
    );
    let mut args = job.args("results.csv");
    args.extend(["--max-attempts", "12", "--concurrency", "8"].map(str::to_owned));
    let input = job.input(&tenants("t", 600));
    let head = ["run", input.as_str(), "--resume"];
    for after in [30, 120, 240, 360, 480] {
        let mut child = start(&mut command(&line(&head, &args)));
        let reached = async {
            while job.writes().await < after {
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
    let rows = job.rows();
    assert_one_row_per_input_row(&rows, 600);
    let held = workspace_counts(&job.api).await;
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
async fn a_first_ctrl_c_ends_a_job_whose_piped_input_stalls() {
    let job = Job::new().await;
    let args = job.args("results.csv");
    let (mut child, mut stdin) = spawn_fed(&line(&["run", "-"], &args));
    stdin.write_all(tenants("t", 3).as_bytes()).await.unwrap();
    stdin.flush().await.unwrap();
    until_writes(&job.api, &mut child, 3).await;
    // The input stays open and gives nothing more, as a producer that waits would.
    signal(&child, libc::SIGINT);
    let run = finish_within(child, Duration::from_secs(30)).await;
    drop(stdin);
    assert_eq!(run.exit, 130, "{}", run.stderr);
    let rows = job.rows();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows.iter().all(|r| r["_status"] == "created"));
}

#[tokio::test]
async fn a_first_sigterm_ends_a_job_whose_piped_input_never_ends() {
    let job = Job::new().await;
    let args = job.args("results.csv");
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
    until_writes(&job.api, &mut child, 20).await;
    signal(&child, libc::SIGTERM);
    let run = finish_within(child, Duration::from_secs(30)).await;
    feeding.abort();
    assert_eq!(run.exit, 130, "{}", run.stderr);
    let rows = complete_records(&job.dir.path("results.csv"));
    let mut numbers: Vec<u64> = rows.iter().map(|r| r["_row"].parse().unwrap()).collect();
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(numbers.len(), rows.len(), "no row twice");
    assert!(
        rows.iter().filter(|r| r["_status"] == "created").count() as u64 >= 20,
        "the rows sent are recorded"
    );
}

/// Starts a command, waits until the sandbox has counted `n` requests in all, kills it with
/// SIGKILL and asserts it was killed (not finished before).
async fn kill_9_after(api: &Api, command: &[&str], n: u64) {
    let mut child = spawn_dbprov(command);
    until_requests(api, &mut child, n).await;
    signal(&child, libc::SIGKILL);
    let output = child.wait_with_output().await.unwrap();
    assert_eq!(
        output.status.signal(),
        Some(libc::SIGKILL),
        "the job was killed midway, not over before {n} requests: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A sandbox holding `names`, answering each request after 5 ms.
async fn slow_holding(names: &[String]) -> Sandbox {
    holding(
        names,
        FaultConfig {
            latency: Duration::from_millis(5),
            ..FaultConfig::default()
        },
    )
    .await
}

const KILL_ROWS: usize = 300;

const KILL_CONCURRENCY: usize = 4;

/// The job's flags (the preflight on) with 4 in flight.
fn kill_args(job: &Job, output: &str) -> Vec<String> {
    let mut args = job.args_with_preflight(output);
    args.extend(["--concurrency".to_owned(), KILL_CONCURRENCY.to_string()]);
    args
}

#[tokio::test]
async fn update_killed_then_resumed_completes_the_file() {
    let existing = names("w", KILL_ROWS);
    let job = Job::on(slow_holding(&existing).await);
    let mut csv = String::from("name,connectionType,datasourceName\n");
    for name in &existing {
        csv.push_str(&format!("{name},DATASOURCE,bigquery-analytics\n"));
    }
    let input = job.input(&csv);
    let args = kill_args(&job, "results.csv");
    kill_9_after(&job.api, &line(&["update", &input], &args), 60).await;

    let resumed = dbprov_with(&["update", &input, "--resume"], &args).await;
    assert_eq!(resumed.exit, 0, "{}", resumed.stderr);
    let rows = job.rows();
    assert_one_row_per_input_row(&rows, KILL_ROWS);
    assert_eq!(tally(&rows), expect(&[("updated", KILL_ROWS)]));
    let log = log(&job.api).await;
    assert_eq!(count(&log, "POST") + count(&log, "DELETE"), 0);
    assert!(
        count(&log, "PUT") <= KILL_ROWS + KILL_CONCURRENCY,
        "rows recorded before the kill are not sent again: {} PUTs",
        count(&log, "PUT")
    );
    let stored = job.api.get("/_sandbox/workspaces").await;
    let stored = stored.as_array().unwrap();
    assert_eq!(stored.len(), KILL_ROWS);
    assert!(
        stored
            .iter()
            .all(|w| w["datasourceName"] == "bigquery-analytics"),
        "every workspace has the new settings"
    );
}

#[tokio::test]
async fn delete_killed_then_resumed_completes_the_file() {
    let doomed = names("w", KILL_ROWS);
    let kept = names("keep", 5);
    let mut start = doomed.clone();
    start.extend(kept.clone());
    let job = Job::on(slow_holding(&start).await);
    let input = job.input(&name_csv(&doomed));
    let args = kill_args(&job, "results.csv");
    kill_9_after(&job.api, &line(&["delete", "--yes", &input], &args), 60).await;

    let resumed = dbprov_with(&["delete", "--yes", &input, "--resume"], &args).await;
    assert_eq!(resumed.exit, 0, "{}", resumed.stderr);
    let rows = job.rows();
    assert_one_row_per_input_row(&rows, KILL_ROWS);
    let statuses = tally(&rows);
    let absent = statuses.get("absent").copied().unwrap_or(0);
    assert_eq!(
        statuses.get("deleted").copied().unwrap_or(0) + absent,
        KILL_ROWS,
        "{statuses:?}"
    );
    assert!(
        absent <= KILL_CONCURRENCY,
        "only deletes in flight at the kill can be found gone: {statuses:?}"
    );
    let log = log(&job.api).await;
    assert_eq!(count(&log, "POST") + count(&log, "PUT"), 0);
    assert!(count(&log, "DELETE") <= KILL_ROWS + KILL_CONCURRENCY);
    assert_eq!(held(&job.api).await, kept.into_iter().collect());
}

#[tokio::test]
async fn rollback_killed_then_resumed_completes_the_file() {
    let old = names("old", 5);
    let job = Job::on(slow_holding(&old).await);
    let mut all = names("new", KILL_ROWS);
    all.extend(old.clone());
    let input = job.input(&datasource_csv(&all));
    let run = dbprov_with(&["run", &input], &kill_args(&job, "results.csv")).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let results = job.path("results.csv");

    let args = kill_args(&job, "undo.csv");
    let before = job.requests().await;
    kill_9_after(
        &job.api,
        &line(&["rollback", &results, "--yes"], &args),
        before + 60,
    )
    .await;
    let resumed = dbprov_with(&["rollback", &results, "--yes", "--resume"], &args).await;
    assert_eq!(resumed.exit, 0, "{}", resumed.stderr);

    let undo = job.rows_of("undo.csv");
    assert_eq!(undo.len(), KILL_ROWS, "one row per created row");
    let undone: BTreeSet<&str> = undo.iter().map(|r| r["_row"].as_str()).collect();
    assert_eq!(undone.len(), KILL_ROWS, "no row twice");
    let statuses = tally(&undo);
    let absent = statuses.get("absent").copied().unwrap_or(0);
    assert_eq!(
        statuses.get("deleted").copied().unwrap_or(0) + absent,
        KILL_ROWS,
        "{statuses:?}"
    );
    assert!(absent <= KILL_CONCURRENCY, "{statuses:?}");
    assert_eq!(held(&job.api).await, old.into_iter().collect());
}

#[tokio::test]
async fn an_interrupted_summary_says_what_to_do_next() {
    let job = Job::with_faults(FaultConfig {
        latency: std::time::Duration::from_millis(50),
        ..FaultConfig::default()
    })
    .await;
    let args = job.args("results.csv");
    let input = job.input(&tenants("t", 400));
    let summary = job.path("summary.json");
    let mut command: Vec<&str> = vec![
        "run",
        &input,
        "--concurrency",
        "4",
        "--summary-json",
        &summary,
    ];
    command.extend(args.iter().map(String::as_str));
    let mut child = spawn_dbprov(&command);
    until_requests(&job.api, &mut child, 12).await;
    signal(&child, libc::SIGINT);
    let output = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    let summary = crate::common::read_json(std::path::Path::new(&summary));
    let next = summary["next_step"]
        .as_str()
        .unwrap_or_else(|| panic!("{summary}"));
    assert!(next.contains("--resume"), "{next}");
}
