//! The retry command a summary prints: it repeats the options that shaped the run, keeps a
//! rehearsal a rehearsal, and works as printed.

use std::process::Stdio;

use serde_json::Value;

use crate::common::{
    JobDir, ONE_INVALID, assert_one_row_per_input_row, command_words, fifty_one_rows,
    printed_retry, read_json,
};
use crate::fixture::Job;
use crate::process::{BIN, dbprov, dbprov_with, run_printed, run_to_end};

#[tokio::test]
async fn the_retry_hint_repeats_the_options_that_shaped_the_run_and_works() {
    let job = Job::new().await;
    let input = job.input(&fifty_one_rows());
    let key = job.dir.key_file(&job.sandbox);
    let results = job.dir.path("results.csv");
    let url = job.sandbox.url();
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
    assert!(!hint.contains(job.sandbox.api_key()), "{hint}");
    let sent = job.writes().await;

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
    assert_eq!(job.writes().await, sent + 7, "the seven failed rows again");
    assert_one_row_per_input_row(&job.rows(), 51);
}

#[tokio::test]
async fn a_dry_runs_retry_command_is_a_dry_run_that_works() {
    let job = Job::new().await;
    let input = job.input(ONE_INVALID);
    let mut args = job.args("dr.csv");
    let summary = job.dir.path("summary.json");
    args.extend([
        "--summary-json".to_owned(),
        summary.to_str().unwrap().to_owned(),
    ]);
    let planned = dbprov_with(&["run", &input, "--dry-run"], &args).await;
    assert_eq!(planned.exit, 1, "{}", planned.stderr);
    let words = printed_retry(&planned.stderr).expect("a retry command");
    assert!(words.contains(&"--dry-run".to_owned()), "{words:?}");
    let json = read_json(&summary);
    assert_eq!(
        command_words(json["retry_command"].as_str().unwrap()),
        words,
        "the file and stderr say the same"
    );

    // The printed command re-plans the file in place and sends nothing; once the row is
    // fixed, it plans it.
    let again = run_printed(&words).await;
    assert_eq!(again.exit, 1, "{}", again.stderr);
    let fixed = std::fs::read_to_string(job.dir.path("dr.csv"))
        .unwrap()
        .replace(",,MULTI_DATAMART", ",a2,MULTI_DATAMART");
    std::fs::write(job.dir.path("dr.csv"), fixed).unwrap();
    let done = run_printed(&words).await;
    assert_eq!(done.exit, 0, "{}", done.stderr);
    let rows = job.rows_of("dr.csv");
    assert!(rows.iter().all(|r| r["_status"] == "planned"), "{rows:?}");
    assert_eq!(job.requests().await, 0, "nothing was sent");
}

#[tokio::test]
async fn a_rehearsals_retry_command_keeps_sandbox_and_dry_run_in_text_and_json() {
    let dir = JobDir::new();
    let input = dir.write("in.csv", ONE_INVALID);
    for (extra, dry_run) in [(&["--dry-run"][..], true), (&[][..], false)] {
        let output = dir.path("out.csv");
        let summary = dir.path("summary.json");
        let mut args = vec![
            "run",
            &input,
            "--sandbox",
            "--overwrite",
            "-o",
            output.to_str().unwrap(),
            "--summary-json",
            summary.to_str().unwrap(),
        ];
        args.extend(extra);
        let text = dbprov(&args).await;
        assert_eq!(text.exit, 1, "{}", text.stderr);
        let words = printed_retry(&text.stderr).expect("a retry command");
        assert!(words.contains(&"--sandbox".to_owned()), "{words:?}");
        assert_eq!(
            words.contains(&"--dry-run".to_owned()),
            dry_run,
            "{words:?}"
        );
        assert!(!words.contains(&"--base-url".to_owned()), "{words:?}");
        let file = read_json(&summary);
        assert_eq!(
            command_words(file["retry_command"].as_str().unwrap()),
            words
        );

        args.extend(["--log-format", "json"]);
        let json = dbprov(&args).await;
        assert_eq!(json.exit, 1, "{}", json.stderr);
        let event: Value = json
            .stderr
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|e| e["target"] == "dbprov::summary")
            .expect("the summary event");
        let command = event["fields"]["summary"]["retry_command"]
            .as_str()
            .unwrap();
        assert_eq!(command_words(command), words);
    }
}
