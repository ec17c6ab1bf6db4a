//! `--summary-json`: written at every end (refusals and interrupts too), never over a file
//! that holds something else, and never onto the input, the results or a pipe nobody reads.

use serde_json::Value;

use crate::common::{Api, JobDir, ONE_INVALID, read_json, set_flag, tenants};
use crate::fixture::Job;
use crate::process::{
    close_at_once, dbprov, dbprov_with, signal, spawn_dbprov, start_std, until_requests,
};

#[tokio::test]
async fn a_summary_json_on_the_input_or_the_results_is_refused() {
    let job = Job::new().await;
    let input = job.input(&tenants("t", 5));
    std::fs::hard_link(&input, job.dir.path("link.csv")).unwrap();
    let results = job.dir.path("results.csv");
    let link = job.dir.path("link.csv");
    for summary in [
        input.as_str(),
        results.to_str().unwrap(),
        link.to_str().unwrap(),
    ] {
        let run = job.run(&["run", &input, "--summary-json", summary]).await;
        assert_eq!(run.exit, 2, "--summary-json {summary}: {}", run.stderr);
        assert_eq!(std::fs::read_to_string(&input).unwrap(), tenants("t", 5));
    }
    assert_eq!(job.writes().await, 0, "no request");
}

#[tokio::test]
async fn a_summary_json_that_leads_to_the_results_file_is_refused() {
    let job = Job::new().await;
    let input = job.input(&tenants("t", 3));
    std::fs::create_dir(job.dir.path("sub")).unwrap();
    std::os::unix::fs::symlink("r2.csv", job.dir.path("link2")).unwrap();
    std::os::unix::fs::symlink("r3.csv", job.dir.path("link3")).unwrap();
    for (output, summary) in [
        ("sub/../r1.csv", "r1.csv"),
        ("r2.csv", "link2"),
        ("link3", "r3.csv"),
    ] {
        let mut args = job.args(output);
        args.extend(["--summary-json", job.dir.path(summary).to_str().unwrap()].map(str::to_owned));
        let run = dbprov_with(&["run", &input], &args).await;
        assert_eq!(
            run.exit, 2,
            "-o {output} --summary-json {summary}: {}",
            run.stderr
        );
        assert!(run.stderr.contains("--summary-json"), "{}", run.stderr);
    }
    assert_eq!(job.writes().await, 0);
}

/// A summary a monitor would read as last night's success.
const STALE: &str = r#"{"rows": 3, "exit_code": 0}"#;

#[tokio::test]
async fn a_job_refused_before_it_starts_leaves_no_stale_summary() {
    let job = Job::new().await;
    let input = job.input(ONE_INVALID);
    let summary = job.dir.path("summary.json");
    let mut args = job.args("results.csv");
    args.extend([
        "--summary-json".to_owned(),
        summary.to_str().unwrap().to_owned(),
    ]);

    // The results file is locked by another process.
    std::fs::write(&summary, STALE).unwrap();
    let held = std::fs::File::create(job.dir.path("results.csv")).unwrap();
    held.try_lock().unwrap();
    let locked = dbprov_with(&["run", &input], &args).await;
    assert_eq!(locked.exit, 2, "{}", locked.stderr);
    let json = read_json(&summary);
    assert_eq!(json["exit_code"], 2, "{json}");
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("in use by another"),
        "{json}"
    );
    close_at_once(|| drop(held));

    // An input that is not there: the error, not an empty file.
    std::fs::write(&summary, STALE).unwrap();
    let missing = job.dir.path("missing.csv");
    let early = dbprov_with(&["run", missing.to_str().unwrap(), "--overwrite"], &args).await;
    assert_eq!(early.exit, 2, "{}", early.stderr);
    let json = read_json(&summary);
    assert_eq!(json["exit_code"], 2, "{json}");
    assert!(
        json["error"].as_str().unwrap().contains("missing.csv"),
        "{json}"
    );

    // The summary is never the input, stale or not: refused, and left alone.
    std::fs::write(&summary, STALE).unwrap();
    let onto_input = dbprov(&[
        "run",
        summary.to_str().unwrap(),
        "--sandbox",
        "-o",
        job.dir.path("other.csv").to_str().unwrap(),
        "--summary-json",
        summary.to_str().unwrap(),
    ])
    .await;
    assert_eq!(onto_input.exit, 2, "{}", onto_input.stderr);
    assert_eq!(std::fs::read_to_string(&summary).unwrap(), STALE);
}

#[tokio::test]
async fn an_interrupted_job_writes_its_summary() {
    let job = Job::with_faults(dbprov::sandbox::FaultConfig {
        latency: std::time::Duration::from_millis(100),
        ..Default::default()
    })
    .await;
    let input = job.input(&tenants("t", 40));
    let summary = job.dir.path("summary.json");
    std::fs::write(&summary, STALE).unwrap();
    let mut command = vec!["run", &input, "--concurrency", "2"];
    let args = job.args("results.csv");
    command.extend(args.iter().map(String::as_str));
    command.extend(["--summary-json", summary.to_str().unwrap()]);
    let mut child = spawn_dbprov(&command);
    until_requests(&job.api, &mut child, 1).await;
    signal(&child, libc::SIGINT);
    let status = child.wait().await.unwrap();
    assert_eq!(status.code(), Some(130));
    let json = read_json(&summary);
    assert_eq!(json["exit_code"], 130, "{json}");
    assert_eq!(json["stopped"], "INTERRUPTED", "{json}");
    assert_eq!(json["rows"], 40, "{json}");
}

#[tokio::test]
async fn a_refused_key_says_what_to_check_in_text_and_json() {
    const STEP: &str = "the API refused the key (401 or 400 AUTHENTICATION_ERROR): check DATABRAIN_API_KEY or --api-key-file";
    let job = Job::new().await;
    let input = job.input(&tenants("t", 3));
    let summary = job.dir.path("summary.json");
    let mut args = job.args("results.csv");
    let wrong_key = job.dir.private_key("dbn_wrong\n");
    set_flag(&mut args, "--api-key-file", &wrong_key);
    args.extend([
        "--summary-json".to_owned(),
        summary.to_str().unwrap().to_owned(),
    ]);
    // With the list first, the list meets the 401; without it, the first row does.
    for list_first in [true, false] {
        let mut args = args.clone();
        if list_first {
            args.retain(|a| a != "--no-preflight");
        }
        let text = dbprov_with(&["run", &input, "--overwrite"], &args).await;
        assert_eq!(text.exit, 3, "{}", text.stderr);
        assert!(
            text.stderr.contains(&format!("\n  {STEP}\n")),
            "{}",
            text.stderr
        );
        assert_eq!(
            text.stderr.contains("ERROR")
                && text
                    .stderr
                    .contains("preflight: the API refused the key (401)"),
            list_first,
            "{}",
            text.stderr
        );
        let file = read_json(&summary);
        assert_eq!(file["next_step"], STEP, "{file}");
        assert_eq!(file["stopped"], "ABORTED_UNAUTHORIZED", "{file}");

        let json = dbprov_with(
            &["run", &input, "--overwrite", "--log-format", "json"],
            &args,
        )
        .await;
        assert_eq!(json.exit, 3, "{}", json.stderr);
        let events: Vec<Value> = json
            .stderr
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        let summary_event = events
            .iter()
            .find(|e| e["target"] == "dbprov::summary")
            .expect("the summary event");
        assert_eq!(summary_event["fields"]["summary"]["next_step"], STEP);
        if list_first {
            assert!(
                events.iter().any(|e| e["level"] == "ERROR"
                    && e["fields"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("refused the key (401)"))),
                "{}",
                json.stderr
            );
        }
    }
    assert_eq!(Api::new(&job.sandbox).workspace_names().await.len(), 0);
}

#[tokio::test]
async fn a_summary_path_that_holds_a_results_file_is_refused_and_left_alone() {
    let job = Job::new().await;
    let first = job.dir.write("first.csv", ONE_INVALID);
    let run = dbprov_with(&["run", &first], &job.args("first.results.csv")).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let records = job.dir.path("first.results.csv");
    let before = std::fs::read(&records).unwrap();
    // A mistyped --summary-json naming another job's results file.
    let second = job.dir.write("second.csv", ONE_INVALID);
    let mut args = job.args("second.results.csv");
    args.extend([
        "--dry-run".to_owned(),
        "--summary-json".to_owned(),
        records.to_str().unwrap().to_owned(),
    ]);
    let refused = dbprov_with(&["run", &second], &args).await;
    assert_eq!(refused.exit, 2, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("holds something else than a summary"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        std::fs::read(&records).unwrap(),
        before,
        "the records are intact"
    );
}

#[tokio::test]
async fn an_error_before_the_job_replaces_an_earlier_summary() {
    let job = Job::new().await;
    let input = job.input(ONE_INVALID);
    let summary = job.dir.path("s.json");
    std::fs::write(&summary, r#"{"exit_code":0,"rows":3}"#).unwrap();
    // The output is the input: refused before the summary file is claimed.
    let mut args = job.args("in.csv");
    args.extend([
        "--summary-json".to_owned(),
        summary.to_str().unwrap().to_owned(),
    ]);
    let refused = dbprov_with(&["run", &input], &args).await;
    assert_eq!(refused.exit, 2, "{}", refused.stderr);
    let written = read_json(&summary);
    assert_eq!(written["exit_code"], 2, "{written}");
    assert!(
        written["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{written}"
    );
}

#[tokio::test]
async fn an_early_error_never_writes_over_a_file_that_is_not_a_summary() {
    let dir = JobDir::new();
    // A key file that happens to be JSON, named as the summary by mistake.
    let key = dir.path("key.json");
    std::fs::write(&key, r#"{"token":"abc"}"#).unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let k = key.to_str().unwrap();
    let missing = dir.path("missing.csv");
    let run = dbprov(&[
        "run",
        missing.to_str().unwrap(),
        "--base-url",
        "http://127.0.0.1:1",
        "--api-key-file",
        k,
        "--summary-json",
        k,
    ])
    .await;
    assert_eq!(run.exit, 2, "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&key).unwrap(), r#"{"token":"abc"}"#);
    // An empty file, or a log of JSON lines, is not a summary either.
    let log = dir.path("log.jsonl");
    std::fs::write(&log, "{\"a\":1}\n{\"b\":2}\n").unwrap();
    let run = dbprov(&[
        "run",
        missing.to_str().unwrap(),
        "--sandbox",
        "--summary-json",
        log.to_str().unwrap(),
    ])
    .await;
    assert_eq!(run.exit, 2, "{}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "{\"a\":1}\n{\"b\":2}\n"
    );
}

#[tokio::test]
async fn a_summary_to_a_pipe_nothing_reads_is_refused_at_once() {
    let dir = JobDir::new();
    let fifo = dir.path("fifo");
    let made = start_std(std::process::Command::new("mkfifo").arg(&fifo))
        .and_then(|mut mkfifo| mkfifo.wait())
        .unwrap();
    assert!(made.success());
    let input = dir.write("in.csv", ONE_INVALID);
    let run = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        dbprov(&[
            "run",
            &input,
            "--sandbox",
            "-o",
            dir.path("out.csv").to_str().unwrap(),
            "--summary-json",
            fifo.to_str().unwrap(),
        ]),
    )
    .await
    .expect("no wait for a reader that never comes");
    assert_eq!(run.exit, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("a pipe nothing reads"),
        "{}",
        run.stderr
    );
}
