//! The results file on disk: one writer at a time, readers shared, a pipe that closes, a file
//! size limit, a file removed or replaced mid-run, links, modes, unwritable folders, and the
//! default paths beside the input.

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use dbprov::sandbox::{self, SandboxConfig};
use tokio::io::AsyncBufReadExt;

use crate::common::{
    assert_one_row_per_input_row, attempts, complete_records, datasource_csv, expect, held,
    latest_records, methods, names, set_flag, slow_sandbox, tally, tenants, workspace_counts,
};
use crate::fixture::Job;
use crate::process::{
    close_at_once, command, dbprov, dbprov_with, finish, limit, line, run_to_end, signal,
    spawn_dbprov, start, start_std, until_requests, until_writes,
};

#[tokio::test]
async fn a_results_file_that_is_the_input_is_refused() {
    let job = Job::new().await;
    let input = job.input(&tenants("t", 2));
    let key_file = job.dir.key_file(&job.sandbox);
    let url = job.sandbox.url();
    let run = dbprov(&[
        "run",
        &input,
        "-o",
        &input,
        "--base-url",
        &url,
        "--api-key-file",
        &key_file,
    ])
    .await;
    assert_eq!(run.exit, 2);
    assert!(run.stderr.contains("is the input itself"), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&input).unwrap(), tenants("t", 2));
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A first job runs for a few seconds; a second `run --resume` on the same results file must
/// stop at once (exit 2), name the file and the holder, and send nothing.
async fn a_second_process_on_the_same_results_file_is_refused(existing: bool) {
    let job = Job::on(slow_sandbox(20).await);
    let mut args = job.args("results.csv");
    let results = job.path("results.csv");
    let input = job.input(&tenants("t", 20));
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
    let mut first = start(&mut command(&line(first_head, &args)));
    let first_pid = first.id().unwrap();
    until_writes(&job.api, &mut first, if existing { 25 } else { 5 }).await;

    let second = dbprov_with(&["run", &input, "--resume"], &args).await;
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first job (150 rows at 50/s) still runs while the second is refused"
    );
    assert_eq!(second.exit, 2, "{}", second.stderr);
    let said = second.stderr.to_lowercase();
    assert!(
        second.stderr.contains(&results),
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
    let rows = job.rows();
    assert_one_row_per_input_row(&rows, 170);
    assert!(rows.iter().all(|r| r["_status"] == "created"));
    assert_eq!(
        job.writes().await,
        attempts(&rows),
        "every request is the first job's (and the earlier run's)"
    );
    assert!(workspace_counts(&job.api).await.values().all(|n| *n == 1));
}

#[tokio::test]
async fn a_second_resume_on_a_results_file_in_use_stops_before_any_request() {
    a_second_process_on_the_same_results_file_is_refused(true).await;
}

#[tokio::test]
async fn a_second_process_on_a_new_results_file_in_use_stops_before_any_request() {
    a_second_process_on_the_same_results_file_is_refused(false).await;
}

#[tokio::test]
async fn results_to_a_closed_pipe_stop_the_sending_with_exit_4() {
    let job = Job::on(slow_sandbox(20).await);
    let input = job.input(&tenants("t", 1000));
    let key = job.dir.key_file(&job.sandbox);
    let url = job.sandbox.url();
    let mut child = start(&mut command(&[
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
    ]));
    // As `| head -2` would: read two lines, then close the pipe.
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..2 {
        stdout
            .next_line()
            .await
            .unwrap()
            .expect("a line of results");
    }
    // Closed at once: no child started meanwhile keeps a copy of the read end open.
    close_at_once(|| drop(stdout));
    let sent_when_closed = job.writes().await;
    let run = finish(child).await;
    assert_eq!(run.exit, 4, "{}", run.stderr);
    let sent = job.writes().await;
    // After the pipe closed, the next row's write fails: the requests in flight then (at
    // most --concurrency) may finish, and whatever their workers took next; nothing more.
    assert!(
        sent - sent_when_closed <= 2 * 4,
        "{} requests sent after the results pipe closed (of 1000 rows)",
        sent - sent_when_closed
    );
}

#[tokio::test]
async fn a_results_file_over_the_file_size_limit_stops_the_sending_with_exit_4() {
    let job = Job::on(slow_sandbox(2).await);
    let args = job.args("results.csv");
    let input = job.input(&tenants("t", 500));
    let mut child = command(&line(&["run", &input, "--concurrency", "4"], &args));
    // As `ulimit -f 16` would: room for about a hundred rows.
    limit(&mut child, libc::RLIMIT_FSIZE, 16 * 1024);
    let run = run_to_end(child).await;
    assert_eq!(run.exit, 4, "{}", run.stderr);
    let results = job.dir.path("results.csv");
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
    let sent = job.writes().await;
    assert!(
        sent <= recorded + 4,
        "{sent} requests sent, {recorded} recorded, --concurrency 4"
    );
    assert!(sent < 500);
}

#[tokio::test]
async fn a_results_file_deleted_mid_run_exits_4_keeps_its_rows_and_resume_completes() {
    let job = Job::on(slow_sandbox(10).await);
    let args = job.args("results.csv");
    let input = job.input(&tenants("t", 600));
    let head = ["run", input.as_str(), "--resume", "--concurrency", "4"];
    let mut child = start(&mut command(&line(&head, &args)));
    until_writes(&job.api, &mut child, 30).await;
    let results = job.dir.path("results.csv");
    std::fs::remove_file(&results).unwrap();
    let run = finish(child).await;
    assert_eq!(run.exit, 4, "{}", run.stderr);
    assert!(
        results.exists(),
        "the rows recorded so far are written back to the same path"
    );
    let kept = complete_records(&results);
    assert!(kept.len() >= 20, "{} rows kept: {}", kept.len(), run.stderr);
    assert!(job.writes().await < 600, "sending stopped");

    let resumed = dbprov_with(&head, &args).await;
    assert_eq!(resumed.exit, 0, "{}", resumed.stderr);
    let rows = job.rows();
    assert_one_row_per_input_row(&rows, 600);
    assert!(
        rows.iter()
            .all(|r| r["_status"] == "created" || r["_status"] == "exists")
    );
    let held = workspace_counts(&job.api).await;
    assert_eq!(held.len(), 600);
    assert!(held.values().all(|n| *n == 1), "no workspace twice");
}

#[tokio::test]
async fn results_on_a_hard_link_of_the_input_are_refused() {
    let job = Job::new().await;
    let input = job.input(&tenants("t", 5));
    std::fs::hard_link(&input, job.dir.path("link.csv")).unwrap();
    for head in [vec!["run", input.as_str()], vec!["run", &input, "--resume"]] {
        let run = job.run_to(Some("link.csv"), &head).await;
        assert_eq!(run.exit, 2, "{head:?}: {}", run.stderr);
        assert_eq!(std::fs::read_to_string(&input).unwrap(), tenants("t", 5));
    }
    assert_eq!(job.writes().await, 0);
}

#[tokio::test]
async fn compaction_keeps_the_mode_of_the_results_file() {
    let job = Job::new().await;
    let input = job.input(&tenants("t", 10));
    let first = job.run(&["run", &input, "--resume"]).await;
    assert_eq!(first.exit, 0, "{}", first.stderr);
    let results = job.dir.path("results.csv");
    std::fs::set_permissions(&results, std::fs::Permissions::from_mode(0o664)).unwrap();
    std::fs::write(&input, tenants("t", 15)).unwrap();
    let resumed = job.run(&["run", &input, "--resume"]).await;
    assert_eq!(resumed.exit, 0, "{}", resumed.stderr);
    assert_one_row_per_input_row(&job.rows(), 15);
    assert_eq!(mode(&results), 0o664, "the mode is kept");
}

#[tokio::test]
async fn compaction_writes_through_a_symbolic_link() {
    let job = Job::new().await;
    std::fs::create_dir(job.dir.path("store")).unwrap();
    let input = job.input(&tenants("t", 10));
    let stored = dbprov_with(&["run", &input, "--resume"], &job.args("store/results.csv")).await;
    assert_eq!(stored.exit, 0, "{}", stored.stderr);
    std::os::unix::fs::symlink("store/results.csv", job.dir.path("results.csv")).unwrap();

    std::fs::write(&input, tenants("t", 15)).unwrap();
    let resumed = job.run(&["run", &input, "--resume"]).await;
    assert_eq!(resumed.exit, 0, "{}", resumed.stderr);
    let link = std::fs::symlink_metadata(job.dir.path("results.csv")).unwrap();
    assert!(link.file_type().is_symlink(), "the link stays a link");
    let rows = job.rows_of("store/results.csv");
    assert_one_row_per_input_row(&rows, 15);
    assert_eq!(
        std::fs::read_to_string(job.dir.path("store/results.csv"))
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
        let done = start_std(
            std::process::Command::new("chattr")
                .arg("+i")
                .arg(dir)
                .stderr(Stdio::null()),
        )
        .and_then(|mut chattr| chattr.wait())
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
            let _ = start_std(
                std::process::Command::new("chattr")
                    .arg("-i")
                    .arg(&self.dir),
            )
            .and_then(|mut chattr| chattr.wait());
        } else {
            let _ = std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o755));
        }
    }
}

#[tokio::test]
async fn resume_in_a_directory_where_compaction_cannot_happen_stops_before_sending() {
    let job = Job::new().await;
    std::fs::create_dir(job.dir.path("ro")).unwrap();
    let input = job.input(&tenants("t", 5));
    let first = job
        .run_to(Some("ro/results.csv"), &["run", &input, "--resume"])
        .await;
    assert_eq!(first.exit, 0, "{}", first.stderr);
    let before = std::fs::read(job.dir.path("ro/results.csv")).unwrap();
    let Some(_guard) = Unwritable::make(&job.dir.path("ro")) else {
        println!("note: cannot make a directory unwritable here (root without chattr +i); skipped");
        return;
    };
    std::fs::write(&input, tenants("t", 10)).unwrap();
    let resumed = job
        .run_to(Some("ro/results.csv"), &["run", &input, "--resume"])
        .await;
    assert_eq!(resumed.exit, 2, "{}", resumed.stderr);
    assert_eq!(job.writes().await, 5, "nothing sent");
    assert_eq!(
        std::fs::read(job.dir.path("ro/results.csv")).unwrap(),
        before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_started_together_on_one_results_file_never_run_at_once() {
    let job = Job::on(slow_sandbox(5).await);
    let args = job.args("results.csv");
    let input = job.path("in.csv");
    let head = ["run", &input, "--resume", "--concurrency", "4"];
    let mut rows = 0;
    for round in 1..=5 {
        rows += 60;
        std::fs::write(&input, tenants("t", rows)).unwrap();
        let a = start(&mut command(&line(&head, &args)));
        let b = start(&mut command(&line(&head, &args)));
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
        let results = job.rows();
        assert_one_row_per_input_row(&results, rows);
        assert!(
            results.iter().all(|r| r["_status"] == "created"),
            "round {round}: no row was sent twice"
        );
        assert_eq!(
            job.writes().await,
            rows as u64,
            "round {round}: each name sent once"
        );
    }
    let held = workspace_counts(&job.api).await;
    assert_eq!(held.len(), 300);
    assert!(held.values().all(|n| *n == 1));
}

#[tokio::test]
async fn a_results_file_replaced_mid_run_keeps_this_runs_rows_beside_it() {
    let job = Job::on(slow_sandbox(10).await);
    let args = job.args("results.csv");
    let input = job.input(&tenants("t", 600));
    let head = ["run", input.as_str(), "--concurrency", "4"];
    let mut child = start(&mut command(&line(&head, &args)));
    until_writes(&job.api, &mut child, 30).await;
    let results = job.dir.path("results.csv");
    let newcomer = job.dir.write("newcomer.csv", "someone else's file\n");
    std::fs::rename(&newcomer, &results).unwrap();
    let run = finish(child).await;
    assert_eq!(run.exit, 4, "{}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(&results).unwrap(),
        "someone else's file\n",
        "the newcomer is left alone"
    );
    let rescued: Vec<_> = std::fs::read_dir(job.dir.dir.path())
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
    let kept = latest_records(complete_records(&rescued[0]));
    let sent = job.writes().await;
    assert!(sent < 600, "sending stopped");
    assert!(
        sent.saturating_sub(attempts(&kept)) <= 4,
        "{sent} sent, {} recorded",
        attempts(&kept)
    );
}

#[tokio::test]
async fn stdin_that_reads_the_results_file_is_refused() {
    let job = Job::new().await;
    let input = job.input(&tenants("t", 20));
    let args = job.args("results.csv");
    let first = dbprov_with(&["run", &input], &args).await;
    assert_eq!(first.exit, 0, "{}", first.stderr);
    let results = job.dir.path("results.csv");
    let before = std::fs::read(&results).unwrap();
    let mut cmd = command(&line(&["run", "-", "--resume"], &args));
    cmd.stdin(std::fs::File::open(&results).unwrap());
    let run = run_to_end(cmd).await;
    assert_eq!(run.exit, 2, "{}", run.stderr);
    assert!(run.stderr.contains("standard input"), "{}", run.stderr);
    assert_eq!(std::fs::read(&results).unwrap(), before);
    assert_eq!(job.writes().await, 20);
}

#[tokio::test]
async fn each_command_writes_beside_its_input_by_default() {
    let job = Job::holding(&names("old", 2)).await;
    let mut no_output = job.args_with_preflight("unused.csv");
    no_output.drain(..2);

    let tenants = job
        .dir
        .write("tenants.csv", &datasource_csv(&names("new", 3)));
    let plan = dbprov_with(&["plan", &tenants], &no_output).await;
    assert_eq!(plan.exit, 0, "{}", plan.stderr);
    assert_eq!(job.rows_of("tenants.plan.csv").len(), 3);

    let run = dbprov_with(&["run", &tenants], &no_output).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let results = job.dir.path("tenants.results.csv");
    assert_eq!(job.rows_of("tenants.results.csv").len(), 3);

    let rollback = dbprov_with(
        &["rollback", results.to_str().unwrap(), "--yes"],
        &no_output,
    )
    .await;
    assert_eq!(rollback.exit, 0, "{}", rollback.stderr);
    let written: Vec<String> = std::fs::read_dir(job.dir.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("rollback"))
        .collect();
    assert_eq!(
        written.len(),
        1,
        "one rollback file beside the results: {written:?}"
    );
    assert!(written[0].ends_with(".rollback.csv"), "{written:?}");
    assert_eq!(job.dir.results(&written[0]).1.len(), 3);

    let old = job.dir.write("old.csv", &datasource_csv(&names("old", 2)));
    let update = dbprov_with(&["update", &old], &no_output).await;
    assert_eq!(update.exit, 0, "{}", update.stderr);
    assert_eq!(
        tally(&job.rows_of("old.update.csv")),
        expect(&[("updated", 2)])
    );
    let delete = dbprov_with(&["delete", "--yes", &old], &no_output).await;
    assert_eq!(delete.exit, 0, "{}", delete.stderr);
    assert_eq!(
        tally(&job.rows_of("old.delete.csv")),
        expect(&[("deleted", 2)])
    );
    assert!(held(&job.api).await.is_empty());
}

#[tokio::test]
async fn a_rollback_waits_for_no_job_still_writing_its_file() {
    let job = Job::on(
        sandbox::spawn(SandboxConfig {
            seed: Some(1),
            faults: dbprov::sandbox::FaultConfig {
                latency: std::time::Duration::from_millis(200),
                ..Default::default()
            },
            ..SandboxConfig::default()
        })
        .await
        .unwrap(),
    );
    let input = job.dir.write("t.csv", &tenants("t", 40));
    let args = job.args("r.csv");
    let mut run_args = vec!["run", input.as_str()];
    run_args.extend(args.iter().map(String::as_str));
    run_args.extend(["--concurrency", "1"]);
    let mut child = spawn_dbprov(&run_args);
    until_requests(&job.api, &mut child, 2).await;
    let results = job.path("r.csv");
    let undo = dbprov_with(&["rollback", &results, "--yes"], &job.args("undo.csv")).await;
    assert_eq!(undo.exit, 2, "{}", undo.stderr);
    assert!(
        undo.stderr
            .contains("being written by another dbprov process"),
        "{}",
        undo.stderr
    );
    assert!(
        !methods(&job.api).await.contains(&"DELETE".to_owned()),
        "nothing deleted"
    );
    signal(&child, libc::SIGKILL);
    let _ = child.wait().await;
}

#[tokio::test]
async fn readers_share_a_results_file() {
    let job = Job::new().await;
    let input = job.dir.write("t.csv", &tenants("t", 4));
    assert_eq!(job.run_to(Some("r.csv"), &["run", &input]).await.exit, 0);
    // Another reader (a rollback of another shard) holds it shared.
    let other = std::fs::File::open(job.dir.path("r.csv")).unwrap();
    other.try_lock_shared().unwrap();
    let results = job.path("r.csv");
    let undo = dbprov_with(&["rollback", &results, "--yes"], &job.args("u.csv")).await;
    assert_eq!(undo.exit, 0, "{}", undo.stderr);
    assert!(job.api.workspace_names().await.is_empty());
    // A writer is refused while a reader holds it.
    let resumed = job
        .run_to(Some("r.csv"), &["run", &input, "--resume"])
        .await;
    assert_eq!(resumed.exit, 2, "{}", resumed.stderr);
    drop(other);
}
