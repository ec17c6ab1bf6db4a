//! `dbprov run` end to end: the real binary against an in-process sandbox, with the
//! results file and the sandbox's own records checked row by row.

use std::collections::BTreeMap;
use std::time::Duration;

use dbprov::sandbox::{FaultConfig, RateLimitHeaders, WindowLimit};
use serde_json::json;

use crate::common::{
    Api, JobDir, ResultRow, assert_one_row_per_input_row, by_row, job_args, job_args_to,
    plain_sandbox, run_against, run_through_faults, sandbox_with, set_flag, tenants, workspace,
    workspace_counts,
};
use crate::process::{dbprov, dbprov_with};

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
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let run = run_against(&sandbox, &dir, "samples/tenants.csv", &[]).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let (header, rows) = dir.results("results.csv");
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
    let counts = workspace_counts(&api).await;
    assert_eq!(counts.len(), 45);
    assert!(counts.values().all(|n| *n == 1));
    // The failed rows reached the server once; the invalid ones never did.
    assert_eq!(api.stats().await["requests_total"], 47);
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
async fn with_30_percent_500s_every_row_is_created_once() {
    let faults = FaultConfig {
        fail_rate: 0.3,
        ..FaultConfig::default()
    };
    let extra = ["--max-attempts", "12", "--concurrency", "16"];
    let (sandbox, rows) = run_through_faults(faults, 300, &extra).await;
    let stats = Api::new(&sandbox).stats().await;
    let fails = stats["faults_injected"]["fail"].as_u64().unwrap();
    assert!(fails > 0);
    let attempts: u64 = rows
        .iter()
        .map(|r| r["_attempts"].parse::<u64>().unwrap())
        .sum();
    assert_eq!(
        attempts,
        stats["requests_total"].as_u64().unwrap(),
        "_attempts counts requests"
    );
    assert_eq!(
        attempts,
        300 + fails,
        "a row is sent again only after a 500"
    );
}

#[tokio::test]
async fn dropped_connections_are_retried_and_no_workspace_is_lost_or_doubled() {
    let faults = FaultConfig {
        drop_rate: 0.2,
        ..FaultConfig::default()
    };
    let (sandbox, _) = run_through_faults(faults, 200, &["--max-attempts", "10"]).await;
    let stats = Api::new(&sandbox).stats().await;
    let drops = &stats["faults_injected"];
    assert!(
        drops["drop_before_commit"].as_u64().unwrap()
            + drops["drop_after_commit"].as_u64().unwrap()
            > 0
    );
}

#[tokio::test]
async fn a_400_is_tried_once() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write(
        "in.csv",
        "name,connectionType,datasourceName,themeName\n\
         a,DATASOURCE,oracle-old,\n\
         b,MULTI_DATAMART,,neon\n\
         c,MULTI_DATAMART,,\n",
    );
    let run = run_against(&sandbox, &dir, &input, &["--max-attempts", "5"]).await;
    assert_eq!(run.exit, 1);
    let (_, rows) = dir.results("results.csv");
    let rows = by_row(&rows);
    assert_eq!(rows[&1]["_error_code"], "INVALID_DATASOURCE_NAME");
    assert_eq!(rows[&1]["_http_status"], "400");
    assert_eq!(
        rows[&1]["_error_message"],
        "datasource 'oracle-old' does not exist"
    );
    assert_eq!(rows[&2]["_error_code"], "INVALID_THEME_NAME");
    for n in [1, 2] {
        assert_eq!(rows[&n]["_status"], "failed");
        assert_eq!(rows[&n]["_attempts"], "1");
    }
    assert_eq!(api.stats().await["requests_total"], 3);
}

#[tokio::test]
async fn a_429_storm_with_retry_after_is_survived_and_retry_after_honoured() {
    // Without the headers that would let the job pace itself, only 429s say "not now".
    let sandbox = sandbox_with(FaultConfig {
        rate_limit: Some(WindowLimit {
            requests: 25,
            window: Duration::from_secs(1),
        }),
        rate_limit_headers: RateLimitHeaders::None,
        ..FaultConfig::default()
    })
    .await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write("in.csv", &tenants("t", 60));
    let run = run_against(
        &sandbox,
        &dir,
        &input,
        &["--concurrency", "16", "--max-attempts", "20"],
    )
    .await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let (_, rows) = dir.results("results.csv");
    assert_one_row_per_input_row(&rows, 60);
    assert!(rows.iter().all(|r| r["_status"] == "created"));
    assert_eq!(workspace_counts(&api).await.len(), 60);
    assert!(
        api.stats().await["faults_injected"]["rate_limited"]
            .as_u64()
            .unwrap()
            > 0
    );
    // After a 429 with Retry-After: 1, the same row waits at least a second.
    let log = api.get("/_sandbox/requests").await;
    let mut last_429: BTreeMap<String, u64> = BTreeMap::new();
    for request in log.as_array().unwrap() {
        let name = request["name"].as_str().unwrap_or_default().to_owned();
        let at = request["at_us"].as_u64().unwrap();
        if let Some(refused_at) = last_429.remove(&name) {
            assert!(
                at - refused_at >= 1_000_000,
                "{name} came back after {} µs",
                at - refused_at
            );
        }
        if request["status"] == 429 {
            last_429.insert(name, at);
        }
    }
}

#[tokio::test]
async fn a_wrong_key_stops_the_job_with_exit_3_and_every_row_accounted_for() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write("in.csv", &tenants("t", 500));
    let mut args = job_args(&sandbox, &dir, "results.csv");
    set_flag(
        &mut args,
        "--api-key-file",
        &dir.write("wrong-key", "dbn_live_wrong\n"),
    );
    args.extend(["--concurrency", "4"].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 3, "{}", run.stderr);
    let (_, rows) = dir.results("results.csv");
    assert_one_row_per_input_row(&rows, 500);
    let failed: Vec<_> = rows.iter().filter(|r| r["_status"] == "failed").collect();
    assert!(
        !failed.is_empty() && failed.len() <= 4,
        "only the requests in flight: {}",
        failed.len()
    );
    for row in &failed {
        assert_eq!(row["_error_code"], "INVALID_DATA_APP_API_KEY");
        assert_eq!(row["_http_status"], "401");
        assert_eq!(row["_attempts"], "1", "a 401 is not retried");
    }
    for row in rows.iter().filter(|r| r["_status"] != "failed") {
        assert_eq!(row["_status"], "skipped");
        assert_eq!(row["_error_code"], "ABORTED_UNAUTHORIZED");
        assert_eq!(row["_attempts"], "0");
    }
    assert_eq!(
        api.stats().await["requests_total"].as_u64(),
        Some(failed.len() as u64)
    );
    assert!(
        !run.stderr.contains("dbn_live_wrong"),
        "the key never shows"
    );
}

#[tokio::test]
async fn the_rate_limit_holds_in_every_one_second_window() {
    // A third of the attempts fail: retries must take permits like first attempts.
    let sandbox = sandbox_with(FaultConfig {
        fail_rate: 0.3,
        ..FaultConfig::default()
    })
    .await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write("in.csv", &tenants("t", 120));
    let mut args = job_args(&sandbox, &dir, "results.csv");
    set_flag(&mut args, "--rate", "50/s");
    args.extend(
        [
            "--burst",
            "5",
            "--concurrency",
            "32",
            "--max-attempts",
            "12",
        ]
        .map(str::to_owned),
    );
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let log = api.get("/_sandbox/requests").await;
    let mut times: Vec<u64> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["at_us"].as_u64().unwrap())
        .collect();
    times.sort_unstable();
    assert!(times.len() > 120, "retries happened: {}", times.len());
    // Generous: the bound is rate + burst over any window of one second.
    let mut first = 0;
    for (last, t) in times.iter().enumerate() {
        while *t - times[first] >= 1_000_000 {
            first += 1;
        }
        assert!(
            last - first < 55,
            "{} requests within one second",
            last - first + 1
        );
    }
}

#[tokio::test]
async fn on_exists_decides_what_a_taken_name_means() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    for name in ["a", "b"] {
        assert_eq!(api.create(&workspace(name)).await.status(), Some(200));
    }
    let dir = JobDir::new();
    let input = dir.write(
        "in.csv",
        "name,connectionType,datamartName\na,DATAMART,finance-mart\nb,DATAMART,finance-mart\nc,DATAMART,finance-mart\n",
    );
    let statuses = |dir: &JobDir| -> Vec<(String, String)> {
        let (_, rows) = dir.results("results.csv");
        by_row(&rows)
            .values()
            .map(|r| (r["_status"].clone(), r["_error_code"].clone()))
            .collect()
    };
    let run = run_against(&sandbox, &dir, &input, &[]).await;
    assert_eq!(
        run.exit, 0,
        "skip (the default) counts a taken name as success"
    );
    let pair = |s: &str, c: &str| (s.to_owned(), c.to_owned());
    assert_eq!(
        statuses(&dir),
        [pair("exists", ""), pair("exists", ""), pair("created", "")]
    );

    let run = run_against(
        &sandbox,
        &dir,
        &input,
        &["--on-exists", "fail", "--overwrite"],
    )
    .await;
    assert_eq!(run.exit, 1);
    let taken = pair("failed", "WORKSPACE_NAME_ALREADY_EXISTS");
    assert_eq!(statuses(&dir), [taken.clone(), taken.clone(), taken]);

    let run = run_against(
        &sandbox,
        &dir,
        &input,
        &["--on-exists", "update", "--overwrite"],
    )
    .await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    assert_eq!(
        statuses(&dir),
        [
            pair("updated", ""),
            pair("updated", ""),
            pair("updated", "")
        ]
    );
    let (_, rows) = dir.results("results.csv");
    assert!(rows.iter().all(|r| r["_attempts"] == "2"), "POST, then PUT");
    let stored = api.get("/_sandbox/workspaces").await;
    assert_eq!(
        stored[0],
        json!({"name": "a", "connectionType": "DATAMART", "datamartName": "finance-mart"})
    );
}

#[tokio::test]
async fn error_bodies_that_are_not_json_are_classified_by_status() {
    use axum::http::StatusCode;
    let app = axum::Router::new().route(
        "/api/v2/workspace",
        axum::routing::post(|| async {
            (
                StatusCode::BAD_GATEWAY,
                "<html><body>502 Bad Gateway</body></html>",
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let dir = JobDir::new();
    let input = dir.write("in.csv", "name,connectionType\na,MULTI_DATAMART\n");
    let mut args = job_args_to(&url, &dir.write("key", "k"), &dir, "results.csv");
    args.extend(["--max-attempts", "3"].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let (_, rows) = dir.results("results.csv");
    assert_eq!(rows[0]["_status"], "failed");
    assert_eq!(rows[0]["_error_code"], "HTTP_502");
    assert_eq!(rows[0]["_http_status"], "502");
    assert_eq!(
        rows[0]["_attempts"], "3",
        "a 502 is retried up to --max-attempts"
    );
    assert_eq!(
        rows[0]["_error_message"],
        "<html><body>502 Bad Gateway</body></html>"
    );
}

#[tokio::test]
async fn an_api_unreachable_from_the_start_stops_the_job_after_a_few_probes() {
    // A port that was free a moment ago: nothing listens there now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = JobDir::new();
    let input = dir.write("in.csv", &tenants("t", 51));
    let url = format!("http://127.0.0.1:{port}");
    let args = job_args_to(&url, &dir.write("key", "k"), &dir, "results.csv");
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 3, "{}", run.stderr);
    let (_, rows) = dir.results("results.csv");
    assert_one_row_per_input_row(&rows, 51);
    for row in &rows {
        assert_eq!(row["_status"], "skipped");
        assert_eq!(row["_error_code"], "ABORTED_UNREACHABLE");
        assert_eq!(row["_http_status"], "");
    }
    // Three refusals open the breaker, three probes give up; at most the default eight
    // requests were on their way meanwhile.
    let attempts: u32 = rows
        .iter()
        .map(|r| r["_attempts"].parse::<u32>().unwrap())
        .sum();
    assert!((4..=14).contains(&attempts), "{attempts} attempts");
    assert_eq!(
        run.stderr.matches("the API cannot be reached: ").count(),
        1,
        "one clear message: {}",
        run.stderr
    );
    assert!(run.stderr.contains("--base-url"), "{}", run.stderr);
}

#[tokio::test]
async fn a_missing_input_is_told_once_with_the_next_step() {
    let dir = JobDir::new();
    let missing = dir.path("nope.csv");
    let missing = missing.to_str().unwrap();
    let results = dir.path("r.csv");
    for command in [
        vec!["validate", missing],
        vec!["run", missing, "--dry-run", "-o", results.to_str().unwrap()],
    ] {
        let run = dbprov(&command).await;
        assert_eq!(run.exit, 2, "{command:?}: {}", run.stderr);
        assert_eq!(
            run.stderr,
            format!(
                "error: cannot open {missing}: No such file or directory (os error 2); check the path\n"
            ),
            "{command:?}"
        );
    }
    assert!(
        !results.exists(),
        "no results file for a job that never started"
    );
}

#[tokio::test]
async fn input_errors_stop_the_job_with_exit_2_before_any_request() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let cases = [
        (
            dir.path("missing.csv").to_str().unwrap().to_owned(),
            "cannot open",
        ),
        (dir.write("empty.csv", ""), "is empty"),
        (
            dir.write("headless.csv", "Acme,DATASOURCE,postgres-main\n"),
            "no 'name' column",
        ),
        (dir.write("twice.csv", "name,Name\na,b\n"), "both mean name"),
    ];
    for (input, message) in &cases {
        let run = run_against(&sandbox, &dir, input, &[]).await;
        assert_eq!(run.exit, 2, "{input}: {}", run.stderr);
        assert!(run.stderr.contains(message), "{input}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"));
    }
    let input = dir.write("ok.csv", &tenants("t", 3));
    let output = dir.path("r.csv");
    let no_key = dbprov(&[
        "run",
        &input,
        "-o",
        output.to_str().unwrap(),
        "--base-url",
        &sandbox.url(),
    ])
    .await;
    assert_eq!(no_key.exit, 2);
    assert!(
        no_key.stderr.contains("DATABRAIN_API_KEY"),
        "{}",
        no_key.stderr
    );
    assert_eq!(api.stats().await["requests_total"], 0);
}

#[tokio::test]
async fn malformed_records_are_invalid_rows_and_the_job_goes_on() {
    let sandbox = plain_sandbox().await;
    let dir = JobDir::new();
    let mut bytes = b"name,connectionType,team\na,MULTI_DATAMART,x\nb,MULTI_DATAMART\n".to_vec();
    // (A byte that is not UTF-8 refuses the file when it is near the start: `spreadsheets`.)
    bytes.extend_from_slice(b"\"c,MULTI_DATAMART,z\nd,MULTI_DATAMART,w\n");
    let input = dir.path("in.csv");
    std::fs::write(&input, bytes).unwrap();
    let run = run_against(&sandbox, &dir, input.to_str().unwrap(), &[]).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let (_, rows) = dir.results("results.csv");
    let rows = by_row(&rows);
    assert_eq!(rows[&1]["_status"], "created");
    assert_eq!(rows[&2]["_error_code"], "MALFORMED_ROW");
    assert_eq!(
        rows[&2]["_error_message"],
        "line 3: has 2 fields, the header has 3"
    );
    assert_eq!(rows[&2]["team"], "", "a short row is padded");
    assert_eq!(rows[&3]["_error_code"], "MALFORMED_ROW");
    assert!(rows[&3]["_error_message"].starts_with("line 4:"));
    assert_eq!(rows[&4]["_status"], "created");
}

#[tokio::test]
async fn results_can_go_to_stdout_and_input_come_from_stdin() {
    let sandbox = plain_sandbox().await;
    let dir = JobDir::new();
    let key_file = dir.key_file(&sandbox);
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_dbprov"))
        .args([
            "run",
            "-",
            "-o",
            "-",
            "--base-url",
            &sandbox.url(),
            "--api-key-file",
            &key_file,
        ])
        .args(["--rate", "unlimited"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
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

#[tokio::test]
async fn an_answer_slower_than_the_timeout_is_a_timeout_and_is_retried() {
    let sandbox = sandbox_with(FaultConfig {
        latency: std::time::Duration::from_secs(5),
        ..FaultConfig::default()
    })
    .await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write("in.csv", "name,connectionType\nslow,MULTI_DATAMART\n");
    let run = run_against(
        &sandbox,
        &dir,
        &input,
        &["--timeout", "100ms", "--max-attempts", "2"],
    )
    .await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let (_, rows) = dir.results("results.csv");
    assert_eq!(rows[0]["_status"], "failed");
    assert_eq!(rows[0]["_error_code"], "TIMEOUT");
    assert_eq!(rows[0]["_error_message"], "no answer within 100ms");
    assert_eq!(rows[0]["_http_status"], "");
    assert_eq!(rows[0]["_attempts"], "2");
    assert_eq!(api.stats().await["requests_total"], 2);
}
