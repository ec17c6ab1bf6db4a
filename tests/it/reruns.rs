//! Reruns and crash safety: `run --resume`, `dbprov retry`, Ctrl-C, and kill -9.

use std::collections::{BTreeMap, BTreeSet};

use dbprov::sandbox::{self, Catalog, FaultConfig, Sandbox, SandboxConfig};

use crate::common::{
    Api, JobDir, ResultRow, assert_one_row_per_input_row, holding, job_args, plain_sandbox,
    requests, sandbox_with, set_flag, statuses, tenants, workspace_counts,
};
use crate::process::{dbprov, dbprov_with, signal, spawn_dbprov, until_requests};

#[tokio::test]
async fn a_nightly_rerun_sends_nothing_for_known_tenants_and_one_request_per_new_one() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let args = job_args(&sandbox, &dir, "results.csv");
    let input = dir.write("tenants.csv", &tenants("t", 100));

    let first = dbprov_with(&["run", &input, "--resume"], &args).await;
    assert_eq!(first.exit, 0, "{}", first.stderr);
    assert_eq!(requests(&api).await, 100);

    let second = dbprov_with(&["run", &input, "--resume"], &args).await;
    assert_eq!(second.exit, 0, "{}", second.stderr);
    assert_eq!(
        requests(&api).await,
        100,
        "an unchanged input costs no request"
    );
    let (_, rows) = dir.results("results.csv");
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
    let third = dbprov_with(&["run", &input, "--resume"], &args).await;
    assert_eq!(third.exit, 0, "{}", third.stderr);
    assert_eq!(
        requests(&api).await,
        110,
        "exactly ten requests for ten new tenants"
    );
    let (_, rows) = dir.results("results.csv");
    assert_one_row_per_input_row(&rows, 110);
    assert!(rows.iter().all(|r| r["_status"] == "created"));
    assert_eq!(workspace_counts(&api).await.len(), 110);
}

#[tokio::test]
async fn retry_sends_only_the_rows_that_did_not_succeed_and_picks_up_edits() {
    // mysql-orders does not exist in this sandbox: rows that use it fail.
    let sandbox = sandbox::spawn(SandboxConfig {
        catalog: Catalog {
            datasources: vec!["postgres-main".into()],
            ..Catalog::default()
        },
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let args = job_args(&sandbox, &dir, "results.csv");
    let mut csv = String::from("name,connectionType,datasourceName,note\n");
    for i in 1..=15 {
        csv.push_str(&format!("ok-{i:02},DATASOURCE,postgres-main,n{i}\n"));
    }
    csv.push_str("fix-me,DATASOURCE,mysql-orders,x\n"); // 16
    csv.push_str("stays-1,DATASOURCE,mysql-orders,x\n"); // 17
    csv.push_str("stays-2,DATASOURCE,mysql-orders,x\n"); // 18
    csv.push_str("no-type,,,x\n"); // 19
    csv.push_str("last,MULTI_DATAMART,,x\n"); // 20
    let input = dir.write("tenants.csv", &csv);
    let first = dbprov_with(&["run", &input], &args).await;
    assert_eq!(first.exit, 1);
    assert!(
        first.stderr.contains("dbprov retry "),
        "the summary gives the retry command: {}",
        first.stderr
    );
    let (_, before) = dir.results("results.csv");
    assert_eq!(requests(&api).await, 19);

    // Fix two rows in the results file, as an operator would in a spreadsheet.
    let results = dir.path("results.csv");
    let edited = std::fs::read_to_string(&results)
        .unwrap()
        .replace(
            "fix-me,DATASOURCE,mysql-orders",
            "fix-me,DATASOURCE,postgres-main",
        )
        .replace("no-type,,,x", "no-type,MULTI_DATAMART,,x");
    std::fs::write(&results, edited).unwrap();

    let retry = dbprov_with(&["retry", results.to_str().unwrap()], &args[2..]).await;
    assert_eq!(retry.exit, 1, "{}", retry.stderr);
    assert_eq!(
        requests(&api).await,
        19 + 4,
        "only rows 16 to 19 are sent again"
    );
    let log = api.get("/_sandbox/requests").await;
    let resent: BTreeSet<&str> = log.as_array().unwrap()[19..]
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        resent,
        BTreeSet::from(["fix-me", "no-type", "stays-1", "stays-2"])
    );

    let (_, after) = dir.results("results.csv");
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
    let retry = dbprov_with(
        &[
            "retry",
            results.to_str().unwrap(),
            "-o",
            dir.path("again.csv").to_str().unwrap(),
        ],
        &args[2..],
    )
    .await;
    assert_eq!(retry.exit, 1);
    assert_eq!(
        requests(&api).await,
        23 + 2,
        "only the two rows still failing"
    );
    let (_, again) = dir.results("again.csv");
    assert_one_row_per_input_row(&again, 20);
    assert_eq!(dir.results("results.csv").1, after);
}

#[tokio::test]
async fn resume_follows_an_input_that_gained_lost_and_reordered_rows() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let args = job_args(&sandbox, &dir, "results.csv");
    let header = "name,connectionType\n";
    let input = dir.write(
        "in.csv",
        &format!("{header}a,MULTI_DATAMART\nb,MULTI_DATAMART\nc,DATAMART\nd,MULTI_DATAMART\n"),
    );
    let first = dbprov_with(&["run", &input], &args).await;
    assert_eq!(first.exit, 1, "c is invalid");
    assert_eq!(requests(&api).await, 3);

    // a and d are gone, c is fixed, e and f are new, and the order changed.
    std::fs::write(
        &input,
        format!("{header}f,MULTI_DATAMART\nc,MULTI_DATAMART\nb,MULTI_DATAMART\ne,MULTI_DATAMART\n"),
    )
    .unwrap();
    let second = dbprov_with(&["run", &input, "--resume"], &args).await;
    assert_eq!(second.exit, 0, "{}", second.stderr);
    assert_eq!(requests(&api).await, 3 + 3, "c, e and f");
    let (_, rows) = dir.results("results.csv");
    assert_one_row_per_input_row(&rows, 4);
    let by_name: BTreeMap<_, _> = rows.iter().map(|r| (r["name"].as_str(), r)).collect();
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
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let args = job_args(&sandbox, &dir, "results.csv");
    let input = dir.write("in.csv", &tenants("t", 5));
    assert_eq!(dbprov_with(&["run", &input], &args).await.exit, 0);
    // A crash in the middle of writing a row leaves half a line.
    let results = dir.path("results.csv");
    let mut text = std::fs::read_to_string(&results).unwrap();
    text.push_str("6,crea");
    std::fs::write(&results, &text).unwrap();
    std::fs::write(&input, tenants("t", 6)).unwrap();

    let resumed = dbprov_with(&["run", &input, "--resume"], &args).await;
    assert_eq!(resumed.exit, 0, "{}", resumed.stderr);
    assert_eq!(requests(&api).await, 6);
    let (_, rows) = dir.results("results.csv");
    assert_one_row_per_input_row(&rows, 6);
    assert!(
        !std::fs::read_to_string(&results)
            .unwrap()
            .contains("6,crea\n")
    );

    let other = dir.write("other.csv", "name,connectionType,team\nt-0001,DATAMART,x\n");
    let refused = dbprov_with(&["run", &other, "--resume"], &args).await;
    assert_eq!(refused.exit, 2);
    assert!(
        refused.stderr.contains("was written for the columns"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        dir.results("results.csv").1,
        rows,
        "nothing recorded is lost"
    );
}

/// A job of 400 rows, 4 in flight against 50 ms of latency, that gets `signal` midway: it
/// must exit 130 with every row recorded, the rest `skipped` / `INTERRUPTED`, and every
/// workspace it made recorded `created` (requests in flight are let finish).
async fn interrupt_midway(signal_number: i32) -> (Sandbox, JobDir, Vec<String>, String, u64) {
    let sandbox = sandbox_with(FaultConfig {
        latency: std::time::Duration::from_millis(50),
        ..FaultConfig::default()
    })
    .await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let args = job_args(&sandbox, &dir, "results.csv");
    let input = dir.write("in.csv", &tenants("t", 400));
    let mut command: Vec<&str> = vec!["run", &input, "--concurrency", "4"];
    command.extend(args.iter().map(String::as_str));
    let mut child = spawn_dbprov(&command);
    until_requests(&api, &mut child, 12).await;
    signal(&child, signal_number);
    let output = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");

    let (_, rows) = dir.results("results.csv");
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
    let held = workspace_counts(&api).await;
    assert_eq!(
        held.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        created
    );
    let interrupted = skipped.len() as u64;
    (sandbox, dir, args, input, interrupted)
}

#[tokio::test]
async fn ctrl_c_drains_records_the_rest_as_interrupted_and_resume_finishes() {
    let (sandbox, dir, args, input, interrupted) = interrupt_midway(libc::SIGINT).await;
    let api = Api::new(&sandbox);
    let sent_before = requests(&api).await;
    let resumed = dbprov_with(&["run", &input, "--resume", "--concurrency", "16"], &args).await;
    assert_eq!(resumed.exit, 0, "{}", resumed.stderr);
    assert_eq!(requests(&api).await - sent_before, interrupted);
    let (_, rows) = dir.results("results.csv");
    assert_one_row_per_input_row(&rows, 400);
    assert!(rows.iter().all(|r| r["_status"] == "created"));
    assert!(workspace_counts(&api).await.values().all(|n| *n == 1));
}

#[tokio::test]
async fn sigterm_drains_like_ctrl_c() {
    interrupt_midway(libc::SIGTERM).await;
}

/// The invariants after kill -9 at several moments and a final `--resume`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_any_moment_then_resume_loses_nothing_and_doubles_nothing() {
    let sandbox = sandbox::spawn(SandboxConfig {
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
    .unwrap();
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let mut args = job_args(&sandbox, &dir, "results.csv");
    // Slower backoff than the other tests, so that retries are pending at each kill.
    set_flag(&mut args, "--backoff-base", "50ms");
    set_flag(&mut args, "--backoff-max", "500ms");
    args.extend(["--max-attempts", "12", "--concurrency", "16"].map(str::to_owned));
    let mut csv = tenants("t", 3000);
    for i in 0..5 {
        csv.push_str(&format!("broken-{i},,,\n"));
    }
    let input = dir.write("in.csv", &csv);
    let mut command: Vec<&str> = vec!["run", &input, "--resume"];
    command.extend(args.iter().map(String::as_str));

    for after_requests in [100, 1400, 2800] {
        let mut child = spawn_dbprov(&command);
        until_requests(&api, &mut child, after_requests).await;
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

    let (_, rows) = dir.results("results.csv");
    assert_one_row_per_input_row(&rows, 3005);
    let held = workspace_counts(&api).await;
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
        api.stats().await["faults_injected"]["fail_after_commit"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[tokio::test]
async fn a_second_ctrl_c_exits_at_once_and_what_was_written_stays_valid() {
    use tokio::io::AsyncBufReadExt;
    let sandbox = sandbox_with(FaultConfig {
        latency: std::time::Duration::from_secs(30),
        ..FaultConfig::default()
    })
    .await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let args = job_args(&sandbox, &dir, "results.csv");
    let input = dir.write("in.csv", &format!("{}broken,,\n", tenants("t", 20)));
    let mut command: Vec<&str> = vec!["run", &input, "--concurrency", "4"];
    command.extend(args.iter().map(String::as_str));
    let mut child = spawn_dbprov(&command);
    until_requests(&api, &mut child, 4).await;
    signal(&child, libc::SIGINT);
    let first = std::time::Instant::now();
    // Wait until the first Ctrl-C is taken (the job says so), then press it again while
    // four requests are still waiting on the sandbox's 30 s latency: a second or more
    // later, as a person presses twice (closer together they are one press).
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    while let Some(line) = stderr.next_line().await.unwrap() {
        if line.contains("interrupted") {
            break;
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100).saturating_sub(first.elapsed()))
        .await;
    signal(&child, libc::SIGINT);
    let status = child.wait().await.unwrap();
    assert_eq!(status.code(), Some(130));
    // The rows written so far are whole; the in-flight ones are not there.
    let (header, rows) = dir.results("results.csv");
    assert!(
        rows.len() < 21,
        "exited without waiting for the requests in flight"
    );
    assert!(rows.iter().all(|r| r.len() == header.len()));
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
async fn a_duplicate_written_before_its_first_row_costs_no_request_on_reruns() {
    // The first row waits on the sandbox's latency; its duplicate is invalid at once, so the
    // results file holds the duplicate first.
    let sandbox = sandbox_with(FaultConfig {
        latency: std::time::Duration::from_millis(100),
        ..FaultConfig::default()
    })
    .await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let args = job_args(&sandbox, &dir, "results.csv");
    let input = dir.write(
        "in.csv",
        "name,connectionType\nx,MULTI_DATAMART\nx,MULTI_DATAMART\ny,MULTI_DATAMART\n",
    );
    let first = dbprov_with(&["run", &input], &args).await;
    assert_eq!(first.exit, 1);
    // The job ends with its rows in input order; a log left by a kill holds them in the
    // order they finished, the duplicate first.
    let written = std::fs::read_to_string(dir.path("results.csv")).unwrap();
    let mut lines: Vec<&str> = written.lines().collect();
    assert!(
        lines[2].starts_with("2,invalid,DUPLICATE_IN_INPUT"),
        "{written}"
    );
    lines.swap(1, 2);
    std::fs::write(dir.path("results.csv"), lines.join("\n") + "\n").unwrap();
    assert_eq!(requests(&api).await, 2);

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
    let resumed = dbprov_with(&["run", &input, "--resume"], &args).await;
    assert_eq!(resumed.exit, 1);
    expected(&dir.results("results.csv").1);

    let results = dir.path("results.csv");
    let retried = dbprov_with(&["retry", results.to_str().unwrap()], &args[2..]).await;
    assert_eq!(retried.exit, 1, "{}", retried.stderr);
    expected(&dir.results("results.csv").1);
    assert_eq!(requests(&api).await, 2, "neither rerun sent anything");
}

/// A sandbox holding `old-01`..`old-11` before any run, and a CSV of those eleven and
/// twenty new names, interleaved. (Not ten: a list of exactly one page of ten costs a
/// second request, for its second page.)
async fn eleven_old_and_twenty_new(dir: &JobDir) -> (Sandbox, String) {
    let old: Vec<String> = (1..=11).map(|i| format!("old-{i:02}")).collect();
    let sandbox = holding(&old, FaultConfig::default()).await;
    let mut csv = String::from("name,connectionType,datasourceName\n");
    for i in 1..=20 {
        csv.push_str(&format!("new-{i:02},DATASOURCE,postgres-main\n"));
        if i % 2 == 0 {
            csv.push_str(&format!("old-{:02},DATASOURCE,postgres-main\n", i / 2));
        }
    }
    csv.push_str("old-11,DATASOURCE,postgres-main\n");
    let input = dir.write("tenants.csv", &csv);
    (sandbox, input)
}

/// Runs `args` until the sandbox has its first request (the preflight's list, with no
/// fault), then makes every later write apply and answer 500, and waits for the end.
/// `--rate 2/s` keeps the first write half a second behind the list.
async fn lose_every_answer_after_the_list(sandbox: &Sandbox, args: &[String]) -> i32 {
    let api = Api::new(sandbox);
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.extend(["--max-attempts", "1"]);
    let mut child = spawn_dbprov(&all);
    until_requests(&api, &mut child, 1).await;
    sandbox.set_fault_rates(0.0, 1.0, 0.0).unwrap();
    let status = child.wait().await.unwrap();
    sandbox.set_fault_rates(0.0, 0.0, 0.0).unwrap();
    status.code().unwrap_or(-1)
}

#[tokio::test]
async fn a_lost_answer_is_ours_when_the_list_of_its_first_run_lacked_the_name() {
    let dir = JobDir::new();
    let (sandbox, input) = eleven_old_and_twenty_new(&dir).await;
    let api = Api::new(&sandbox);
    let mut args = job_args(&sandbox, &dir, "results.csv");
    args.retain(|a| a != "--no-preflight");
    set_flag(&mut args, "--rate", "2/s");
    let mut first = vec!["run".to_owned(), input.clone()];
    first.extend(args.iter().cloned());
    assert_eq!(lose_every_answer_after_the_list(&sandbox, &first).await, 1);
    let (_, rows) = dir.results("results.csv");
    assert_one_row_per_input_row(&rows, 31);
    let lost: Vec<&ResultRow> = rows.iter().filter(|r| r["_status"] == "failed").collect();
    assert!(!lost.is_empty(), "{rows:?}");
    for row in &lost {
        assert!(row["name"].starts_with("new-"), "{row:?}");
        assert!(
            row["_error_message"].contains("it was not listed before the run"),
            "{row:?}"
        );
    }
    for row in rows.iter().filter(|r| r["name"].starts_with("old-")) {
        assert_eq!((&*row["_status"], &*row["_attempts"]), ("exists", "0"));
    }

    // The next run lists them: there now, not before the first run, so that run made them.
    set_flag(&mut args, "--rate", "unlimited");
    let before = requests(&api).await;
    let second = dbprov_with(&["run", &input, "--resume"], &args).await;
    assert_eq!(second.exit, 0, "{}", second.stderr);
    assert_eq!(requests(&api).await - before, 1, "the list, and no write");
    let (_, rows) = dir.results("results.csv");
    assert_one_row_per_input_row(&rows, 31);
    for row in &rows {
        let expected = if row["name"].starts_with("new-") {
            "created"
        } else {
            "exists"
        };
        assert_eq!(row["_status"], expected, "{row:?}");
    }

    // So a rollback deletes the twenty, and leaves the ten that were there before. (The
    // job's flags without `-o results.csv`: the rollback writes its own file.)
    let undo = dbprov_with(
        &[
            "rollback",
            &dir.path("results.csv").to_string_lossy(),
            "--yes",
        ],
        &args[2..],
    )
    .await;
    assert_eq!(undo.exit, 0, "{}", undo.stderr);
    let left: BTreeSet<String> = api.workspace_names().await.into_iter().collect();
    let old: BTreeSet<String> = (1..=11).map(|i| format!("old-{i:02}")).collect();
    assert_eq!(left, old);
}

#[tokio::test]
async fn without_a_list_before_the_first_run_a_name_listed_later_is_not_claimed() {
    let dir = JobDir::new();
    let (sandbox, input) = eleven_old_and_twenty_new(&dir).await;
    let api = Api::new(&sandbox);
    // The first run does not list: whether a lost answer's workspace was there before,
    // nobody can tell.
    let mut args = job_args(&sandbox, &dir, "results.csv");
    set_flag(&mut args, "--rate", "2/s");
    let mut first = vec!["run".to_owned(), input.clone()];
    first.extend(args.iter().cloned());
    // Without the list, the first request is a write: let it through, lose the rest.
    assert_eq!(lose_every_answer_after_the_list(&sandbox, &first).await, 1);
    args.retain(|a| a != "--no-preflight");
    set_flag(&mut args, "--rate", "unlimited");
    let second = dbprov_with(&["run", &input, "--resume"], &args).await;
    assert_eq!(second.exit, 0, "{}", second.stderr);
    let (_, rows) = dir.results("results.csv");
    assert_one_row_per_input_row(&rows, 31);
    // The old ones met WORKSPACE_NAME_ALREADY_EXISTS in the first run and are `exists`;
    // the new ones whose answer was lost are listed now, and may be ours or not: `exists`,
    // with a message that says so. None is claimed.
    let claimed: Vec<&ResultRow> = rows
        .iter()
        .filter(|r| r["_status"] == "created" && r["_attempts"] == "0")
        .collect();
    assert!(claimed.is_empty(), "{claimed:?}");
    let unsure = rows
        .iter()
        .filter(|r| r["_error_message"].contains("may have created it"))
        .count();
    assert!(unsure > 0, "{rows:?}");
    // A rollback never deletes what the runs did not know to be theirs.
    let undo = dbprov_with(
        &[
            "rollback",
            &dir.path("results.csv").to_string_lossy(),
            "--yes",
        ],
        &args[2..],
    )
    .await;
    assert_eq!(undo.exit, 0, "{}", undo.stderr);
    let left = api.workspace_names().await;
    for i in 1..=11 {
        assert!(left.contains(&format!("old-{i:02}")), "{left:?}");
    }
}

#[tokio::test]
async fn a_rollback_undoes_what_lost_answers_may_have_created_where_the_list_lacked_the_name() {
    let dir = JobDir::new();
    let (sandbox, input) = eleven_old_and_twenty_new(&dir).await;
    let api = Api::new(&sandbox);
    let mut args = job_args(&sandbox, &dir, "results.csv");
    args.retain(|a| a != "--no-preflight");
    set_flag(&mut args, "--rate", "2/s");
    let mut first = vec!["run".to_owned(), input.clone()];
    first.extend(args.iter().cloned());
    assert_eq!(lose_every_answer_after_the_list(&sandbox, &first).await, 1);
    // No retry first: the rollback itself deletes those rows' workspaces.
    set_flag(&mut args, "--rate", "unlimited");
    let results = dir.path("results.csv").to_string_lossy().into_owned();
    let undo = dbprov_with(&["rollback", &results, "--yes"], &args[2..]).await;
    assert_eq!(undo.exit, 0, "{}", undo.stderr);
    let left: BTreeSet<String> = api.workspace_names().await.into_iter().collect();
    let old: BTreeSet<String> = (1..=11).map(|i| format!("old-{i:02}")).collect();
    assert_eq!(left, old);
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
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable = format!("http://127.0.0.1:{port}");
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
