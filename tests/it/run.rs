//! `dbprov run` end to end: the sample file, `--on-exists`, and results to standard output
//! with the input from standard input.

use std::collections::BTreeMap;

use serde_json::json;

use crate::common::{
    JobDir, ResultRow, assert_one_row_per_input_row, by_row, tenants, workspace, workspace_counts,
};
use crate::fixture::Job;
use crate::process::{dbprov, start};

/// Rows 8, 16, 24, 32, 39 and 45 of `samples/tenants.csv` are wrong on purpose.
fn assert_sample_results(rows: &[ResultRow]) {
    assert_one_row_per_input_row(rows, 51);
    let expected: BTreeMap<usize, (&str, &str)> = [
        (8, ("failed", "INVALID_DATASOURCE_NAME")),
        (16, ("invalid", "MISSING_DATAMART_NAME")),
        (24, ("invalid", "DUPLICATE_IN_INPUT")),
        (32, ("failed", "INVALID_THEME_NAME")),
        (39, ("invalid", "INVALID_CONNECTION_TYPE")),
        (45, ("invalid", "INVALID_FIELD")),
    ]
    .into();
    for (number, row) in by_row(rows) {
        let (status, code) = expected.get(&number).copied().unwrap_or(("created", ""));
        assert_eq!(
            (row["_status"].as_str(), row["_error_code"].as_str()),
            (status, code),
            "row {number}: {row:?}"
        );
        let attempts = if status == "invalid" { "0" } else { "1" };
        assert_eq!(row["_attempts"], attempts, "row {number}");
        assert!(
            row["owner_email"].ends_with(".example"),
            "input columns are carried"
        );
    }
}

#[tokio::test]
async fn the_sample_file_gives_its_documented_results() {
    let job = Job::new().await;
    let run = job.run(&["run", "samples/tenants.csv"]).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let (header, rows) = job.dir.results("results.csv");
    assert_eq!(
        header,
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
            "_operation",
            "name",
            "connectionType",
            "datasourceName",
            "datamartName",
            "llmName",
            "themeName",
            "isEnableMetricSuggestions",
            "owner_email"
        ]
    );
    assert_sample_results(&rows);
    let counts = workspace_counts(&job.api).await;
    assert_eq!(counts.len(), 45);
    assert!(counts.values().all(|n| *n == 1));
    // The failed rows reached the server once; the invalid ones never did.
    assert_eq!(job.requests().await, 47);
    assert!(
        run.stderr.contains("45 created, 2 failed, 4 invalid"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn the_readme_command_runs_the_sample_against_the_embedded_sandbox() {
    let dir = JobDir::new();
    let output = dir.path("results.csv");
    let run = dbprov(&[
        "run",
        "samples/tenants.csv",
        "--sandbox",
        "-o",
        output.to_str().unwrap(),
        "--rate",
        "200/s",
    ])
    .await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    assert_sample_results(&dir.results("results.csv").1);
}

#[tokio::test]
async fn on_exists_decides_what_a_taken_name_means() {
    let job = Job::new().await;
    for name in ["a", "b"] {
        assert_eq!(job.api.create(&workspace(name)).await.status(), Some(200));
    }
    let input = job.input(
        "name,connectionType,datamartName\na,DATAMART,finance-mart\nb,DATAMART,finance-mart\nc,DATAMART,finance-mart\n",
    );
    let statuses = || -> Vec<(String, String)> {
        by_row(&job.rows())
            .values()
            .map(|r| (r["_status"].clone(), r["_error_code"].clone()))
            .collect()
    };
    let run = job.run(&["run", &input]).await;
    assert_eq!(
        run.exit, 0,
        "skip (the default) counts a taken name as success"
    );
    let pair = |s: &str, c: &str| (s.to_owned(), c.to_owned());
    assert_eq!(
        statuses(),
        [pair("exists", ""), pair("exists", ""), pair("created", "")]
    );

    let run = job
        .run(&["run", &input, "--on-exists", "fail", "--overwrite"])
        .await;
    assert_eq!(run.exit, 1);
    let taken = pair("failed", "WORKSPACE_NAME_ALREADY_EXISTS");
    assert_eq!(statuses(), [taken.clone(), taken.clone(), taken]);

    let run = job
        .run(&["run", &input, "--on-exists", "update", "--overwrite"])
        .await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    assert_eq!(
        statuses(),
        [
            pair("updated", ""),
            pair("updated", ""),
            pair("updated", "")
        ]
    );
    assert!(
        job.rows().iter().all(|r| r["_attempts"] == "2"),
        "POST, then PUT"
    );
    let stored = job.api.get("/_sandbox/workspaces").await;
    assert_eq!(
        stored[0],
        json!({"name": "a", "connectionType": "DATAMART", "datamartName": "finance-mart"})
    );
}

#[tokio::test]
async fn results_can_go_to_stdout_and_input_come_from_stdin() {
    let job = Job::new().await;
    let key_file = job.dir.key_file(&job.sandbox);
    let mut child = start(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_dbprov"))
            .args([
                "run",
                "-",
                "-o",
                "-",
                "--base-url",
                &job.sandbox.url(),
                "--api-key-file",
                &key_file,
            ])
            .args(["--rate", "unlimited"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped()),
    );
    use tokio::io::AsyncWriteExt;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(tenants("s", 3).as_bytes()).await.unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut reader = csv::Reader::from_reader(output.stdout.as_slice());
    let statuses: Vec<String> = reader.records().map(|r| r.unwrap()[1].to_owned()).collect();
    assert_eq!(statuses, ["created", "created", "created"]);
}
