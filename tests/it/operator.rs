//! What the operator sees and controls: progress, logs, secrets, summary, validate,
//! --max-failures, shards, completions.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;

use dbprov::sandbox::{self, Catalog, Sandbox, SandboxConfig};
use serde_json::Value;

use crate::common::{
    Api, JobDir, assert_one_row_per_input_row, job_args, job_args_to, plain_sandbox, set_flag,
    tenants, workspace_counts,
};
use crate::process::{dbprov, dbprov_with};

#[tokio::test]
async fn progress_always_draws_a_bar_and_log_lines_print_above_it() {
    let sandbox = plain_sandbox().await;
    let dir = JobDir::new();
    let mut args = job_args(&sandbox, &dir, "results.csv");
    set_flag(&mut args, "--rate", "200/s");
    args.extend(["--progress", "always"].map(str::to_owned));
    let run = dbprov_with(&["run", "samples/tenants.csv"], &args).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    assert!(run.stderr.contains("/51 rows "), "{}", run.stderr);
    assert!(run.stderr.contains("\r\x1b[2K"), "the bar redraws in place");
    // Every log line starts on a line of its own: the bar is cleared before it.
    let mut warnings = 0;
    for line in run.stderr.split('\n') {
        if let Some(at) = line.find(" WARN ") {
            warnings += 1;
            let before = line[..at].rsplit("\x1b[2K").next().unwrap();
            assert!(
                before.starts_with("20") && !before.contains("rows"),
                "a log line glued to the bar: {line:?}"
            );
        }
    }
    assert!(
        warnings >= 6,
        "the ignored column and the failed and invalid rows are logged"
    );
    assert!(run.stderr.contains("dbprov: 51 rows in"));
}

#[tokio::test]
async fn without_a_terminal_there_is_no_bar_and_no_escape_code() {
    let sandbox = plain_sandbox().await;
    let dir = JobDir::new();
    let args = job_args(&sandbox, &dir, "results.csv");
    let run = dbprov_with(&["run", "samples/tenants.csv"], &args).await;
    assert_eq!(run.exit, 1);
    assert!(!run.stderr.contains('\x1b'), "{:?}", run.stderr);
    assert!(!run.stderr.contains("/51 rows "));
    assert!(run.stderr.contains("dbprov: 51 rows in"));
}

#[tokio::test]
async fn the_key_never_appears_in_any_output_even_at_trace() {
    const KEY: &str = "dbn_live_CANARY_4f1d9c2b7e";
    let sandbox = sandbox::spawn(SandboxConfig {
        api_key: KEY.into(),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let dir = JobDir::new();
    let mut args = job_args(&sandbox, &dir, "results.csv");
    let summary = dir.path("summary.json");
    args.extend([
        "--summary-json".to_owned(),
        summary.to_str().unwrap().to_owned(),
    ]);
    args.extend(["-vv", "--max-attempts", "2"].map(str::to_owned));
    let ok = dbprov_with(&["run", "samples/tenants.csv"], &args).await;
    assert_eq!(ok.exit, 1, "{}", ok.stderr);
    assert!(ok.stderr.contains("TRACE"), "trace logs were on");
    assert!(
        ok.stderr.contains("hyper") || ok.stderr.contains("reqwest"),
        "the HTTP stack logged too"
    );

    // The same key, refused by another sandbox: the 401 path and its messages.
    let other = sandbox::spawn(SandboxConfig::default()).await.unwrap();
    let refused_args: Vec<String> = [
        "-o",
        dir.path("refused.csv").to_str().unwrap(),
        "--base-url",
        &other.url(),
        "--api-key-file",
        &dir.key_file(&sandbox),
        "-vv",
    ]
    .map(str::to_owned)
    .to_vec();
    let refused = dbprov_with(&["run", "samples/tenants.csv"], &refused_args).await;
    assert_eq!(refused.exit, 3);

    let mut haystacks = vec![ok.stdout, ok.stderr, refused.stdout, refused.stderr];
    for file in ["results.csv", "summary.json", "refused.csv"] {
        haystacks.push(std::fs::read_to_string(dir.path(file)).unwrap());
    }
    for (i, text) in haystacks.iter().enumerate() {
        assert!(!text.contains(KEY), "output {i} leaks the key");
        assert!(!text.contains("CANARY"), "output {i} leaks part of the key");
    }
}

#[tokio::test]
async fn plain_http_to_another_machine_is_refused_and_a_readable_key_file_is_warned_about() {
    let dir = JobDir::new();
    let input = dir.write("in.csv", &tenants("t", 2));
    let key = dir.write("key", "dbn_live_x\n");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = dir.path("results.csv");
    let insecure = job_args_to(
        "http://databrain.internal.example",
        &key,
        &dir,
        "results.csv",
    );
    let refused = dbprov_with(&["run", &input], &insecure).await;
    assert_eq!(refused.exit, 2);
    assert!(
        refused.stderr.contains("--allow-insecure-http"),
        "{}",
        refused.stderr
    );
    assert!(!output.exists(), "nothing started");

    let sandbox = plain_sandbox().await;
    let local = job_args_to(&sandbox.url(), &key, &dir, "results.csv");
    let readable = dbprov_with(&["run", &input], &local).await;
    assert!(
        readable.stderr.contains("readable by every user"),
        "{}",
        readable.stderr
    );
    assert!(readable.stderr.contains("chmod 600"));
}

#[tokio::test]
async fn the_summary_json_agrees_with_the_results_file() {
    let sandbox = plain_sandbox().await;
    let dir = JobDir::new();
    let mut args = job_args(&sandbox, &dir, "results.csv");
    let summary = dir.path("summary.json");
    args.extend([
        "--summary-json".to_owned(),
        summary.to_str().unwrap().to_owned(),
    ]);
    let run = dbprov_with(&["run", "samples/tenants.csv"], &args).await;
    assert_eq!(run.exit, 1);
    let summary: Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let (_, rows) = dir.results("results.csv");
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_code: BTreeMap<String, u64> = BTreeMap::new();
    for row in &rows {
        *by_status.entry(row["_status"].clone()).or_default() += 1;
        if !row["_error_code"].is_empty() {
            *by_code.entry(row["_error_code"].clone()).or_default() += 1;
        }
    }
    assert_eq!(summary["rows"], rows.len() as u64);
    assert_eq!(
        serde_json::to_value(&by_status).unwrap(),
        summary["by_status"]
    );
    for entry in summary["top_error_codes"].as_array().unwrap() {
        assert_eq!(by_code[entry["code"].as_str().unwrap()], entry["count"]);
    }
    let attempts: u64 = rows
        .iter()
        .map(|r| r["_attempts"].parse::<u64>().unwrap())
        .sum();
    assert_eq!(summary["requests"], attempts);
    assert_eq!(summary["exit_code"], 1);
    assert_eq!(
        summary["results"],
        dir.path("results.csv").to_str().unwrap()
    );
    let retry = summary["retry_command"].as_str().unwrap();
    assert!(retry.starts_with("dbprov retry "), "{retry}");
    assert!(summary["latency_ms"]["p50"].is_u64());
}

async fn failing_sandbox() -> Sandbox {
    // No datasource exists: every DATASOURCE row fails with a 400.
    sandbox::spawn(SandboxConfig {
        catalog: Catalog {
            datasources: vec![],
            ..Catalog::default()
        },
        ..SandboxConfig::default()
    })
    .await
    .unwrap()
}

fn datasource_rows(n: usize) -> String {
    let mut csv = String::from("name,connectionType,datasourceName\n");
    for i in 0..n {
        csv.push_str(&format!("t-{i},DATASOURCE,postgres-main\n"));
    }
    csv
}

/// Runs `rows` rows that all fail against `--max-failures limit`; checks what every halt
/// must show (exit 3, every row recorded, the unsent ones `ABORTED_MAX_FAILURES`, nothing
/// sent for them) and returns how many rows failed.
async fn halt_after_failures(rows: usize, limit: &str, concurrency: &str) -> usize {
    let sandbox = failing_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write("in.csv", &datasource_rows(rows));
    let mut args = job_args(&sandbox, &dir, "results.csv");
    args.extend(["--max-failures", limit, "--concurrency", concurrency].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 3, "{}", run.stderr);
    assert!(run.stderr.contains("ABORTED_MAX_FAILURES"));
    let (_, results) = dir.results("results.csv");
    assert_one_row_per_input_row(&results, rows);
    let failed = results.iter().filter(|r| r["_status"] == "failed").count();
    for row in results.iter().filter(|r| r["_status"] != "failed") {
        assert_eq!(
            (row["_status"].as_str(), row["_error_code"].as_str()),
            ("skipped", "ABORTED_MAX_FAILURES")
        );
    }
    assert_eq!(
        api.stats().await["requests_total"].as_u64(),
        Some(failed as u64)
    );
    failed
}

#[tokio::test]
async fn max_failures_as_a_count_stops_the_job_with_exit_3() {
    let failed = halt_after_failures(100, "5", "2").await;
    assert!(
        (6..=7).contains(&failed),
        "the sixth failure stops it, and the other request in flight ends: {failed}"
    );
}

#[tokio::test]
async fn max_failures_as_a_share_of_the_rows() {
    let failed = halt_after_failures(200, "10%", "1").await;
    assert_eq!(
        failed, 21,
        "one more than 10% of 200, one request at a time"
    );
}

#[tokio::test]
async fn validate_lists_each_invalid_row_and_exits_0_only_when_all_are_valid() {
    let run = dbprov(&["validate", "samples/tenants.csv"]).await;
    assert_eq!(run.exit, 1);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", run.stdout);
    assert_eq!(
        lines[0],
        "row 16 (line 17), name 'Finance Without Mart': MISSING_DATAMART_NAME: datamartName is empty; connectionType DATAMART needs one"
    );
    assert!(
        lines.iter().all(|l| l.matches("line ").count() == 1),
        "the line is said once: {}",
        run.stdout
    );
    assert!(lines[1].contains("name 'Globex Analytics': DUPLICATE_IN_INPUT"));
    assert!(run.stderr.contains("51 rows: 47 valid, 4 invalid"));

    // A results file's message keeps its line: it has no column of its own for it.
    let dir = JobDir::new();
    let planned = dir.path("planned.csv");
    let dry_run = dbprov(&[
        "run",
        "samples/tenants.csv",
        "--dry-run",
        "-o",
        planned.to_str().unwrap(),
    ])
    .await;
    assert_eq!(dry_run.exit, 1, "{}", dry_run.stderr);
    let (_, rows) = dir.results("planned.csv");
    assert_eq!(
        rows[15]["_error_message"],
        "line 17: datamartName is empty; connectionType DATAMART needs one"
    );

    let good = dir.write("good.csv", &tenants("t", 10));
    let valid = dbprov(&["validate", &good]).await;
    assert_eq!(valid.exit, 0, "{}", valid.stderr);
    assert!(valid.stdout.is_empty());
    let missing = dbprov(&["validate", dir.path("nope.csv").to_str().unwrap()]).await;
    assert_eq!(missing.exit, 2);
}

#[tokio::test]
async fn validate_knows_the_api_rules_of_the_metric_summary() {
    let dir = JobDir::new();
    let input = dir.write(
        "summaries.csv",
        "name,connectionType,isEnableMetricSummary,summaryType,customSummaryPrompt\n\
         on-without-type,MULTI_DATAMART,true,,\n\
         custom-without-prompt,MULTI_DATAMART,TRUE,Custom,\n\
         custom-while-off,MULTI_DATAMART,,custom,\n\
         unknown-type,MULTI_DATAMART,true,haiku,\n\
         not-a-boolean,MULTI_DATAMART,yes,custom,Be brief\n\
         custom,MULTI_DATAMART,true,CUSTOM,Be brief\n\
         type-while-off,MULTI_DATAMART,false,forecastAndTrendAnalysis,\n\
         prompt-alone,MULTI_DATAMART,,,Be brief\n",
    );
    let run = dbprov(&["validate", &input]).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "row 1 (line 2), name 'on-without-type': INVALID_FIELD: isEnableMetricSummary is true but summaryType is empty; give one of technicalAndInsightSummary, forecastAndTrendAnalysis, comparativeAndAnomalyDetection, custom, or set isEnableMetricSummary to false",
            "row 2 (line 3), name 'custom-without-prompt': INVALID_FIELD: summaryType is custom but customSummaryPrompt is empty; write the prompt in customSummaryPrompt, or choose another summaryType",
            "row 3 (line 4), name 'custom-while-off': INVALID_FIELD: summaryType is custom but customSummaryPrompt is empty; write the prompt in customSummaryPrompt, or choose another summaryType",
            "row 4 (line 5), name 'unknown-type': INVALID_FIELD: summaryType 'haiku' is not one of technicalAndInsightSummary, forecastAndTrendAnalysis, comparativeAndAnomalyDetection, custom; give one of them, or leave it empty",
            "row 5 (line 6), name 'not-a-boolean': INVALID_FIELD: isEnableMetricSummary 'yes' is not true or false; write one of them, or leave it empty for false",
        ],
        "the last three rows are valid: {}",
        run.stdout
    );
    assert!(
        run.stderr.contains("8 rows: 3 valid, 5 invalid"),
        "{}",
        run.stderr
    );

    // `run` checks the same: only the valid rows reach the API, summary types in the
    // API's spelling, and a type given while the summary is off is sent as it is.
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let job = dbprov_with(&["run", &input], &job_args(&sandbox, &dir, "r.csv")).await;
    assert_eq!(job.exit, 1, "{}", job.stderr);
    assert_eq!(api.stats().await["requests_total"], 3);
    let sent = api.get("/_sandbox/workspaces").await;
    let sent: BTreeMap<&str, &Value> = sent
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["name"].as_str().unwrap(), w))
        .collect();
    assert_eq!(sent["custom"]["summaryType"], "custom");
    assert_eq!(
        sent["type-while-off"]["summaryType"],
        "forecastAndTrendAnalysis"
    );
    assert_eq!(sent["type-while-off"]["isEnableMetricSummary"], false);
    assert_eq!(sent["prompt-alone"]["customSummaryPrompt"], "Be brief");
}

#[tokio::test]
async fn shards_together_cover_every_row_exactly_once() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let mut csv = tenants("t", 300);
    csv.push_str(",MULTI_DATAMART,,\n,DATAMART,,\n"); // rows without a name go by number
    let input = dir.write("in.csv", &csv);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut sizes = Vec::new();
    for index in 0..3 {
        let output = format!("shard-{index}.csv");
        let mut args = job_args(&sandbox, &dir, &output);
        args.extend(["--shard".to_owned(), format!("{index}/3")]);
        let run = dbprov_with(&["run", &input], &args).await;
        assert!(run.exit <= 1, "{}", run.stderr);
        let (_, rows) = dir.results(&output);
        sizes.push(rows.len());
        for row in rows {
            *seen.entry(row["_row"].clone()).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), 302, "every row is in some shard");
    assert!(seen.values().all(|n| *n == 1), "and in one only");
    assert!(
        sizes.iter().all(|n| *n > 50),
        "shards are roughly even: {sizes:?}"
    );
    let held = workspace_counts(&api).await;
    assert_eq!(held.len(), 300);

    // JOB_COMPLETION_INDEX gives the index when --shard names only the count.
    let output = dir.path("indexed.csv");
    let key_file = dir.key_file(&sandbox);
    let indexed = tokio::process::Command::new(env!("CARGO_BIN_EXE_dbprov"))
        .args([
            "run",
            &input,
            "-o",
            output.to_str().unwrap(),
            "--base-url",
            &sandbox.url(),
        ])
        .args(["--api-key-file", &key_file, "--shard", "3", "--dry-run"])
        .env("JOB_COMPLETION_INDEX", "1")
        .output()
        .await
        .unwrap();
    assert_eq!(indexed.status.code(), Some(1));
    assert_eq!(dir.results("indexed.csv").1.len(), sizes[1]);
}

#[tokio::test]
async fn logs_follow_verbosity_and_format() {
    let sandbox = plain_sandbox().await;
    let dir = JobDir::new();
    let args = job_args(&sandbox, &dir, "results.csv");
    let quiet = dbprov_with(&["run", "samples/tenants.csv", "-q", "--overwrite"], &args).await;
    assert!(!quiet.stderr.contains(" INFO "), "{}", quiet.stderr);
    assert!(quiet.stderr.contains(" WARN "));

    let json = dbprov_with(
        &[
            "run",
            "samples/tenants.csv",
            "--log-format",
            "json",
            "--overwrite",
        ],
        &args,
    )
    .await;
    let events: Vec<Value> = json
        .stderr
        .lines()
        .take_while(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(events.len() >= 6, "{}", json.stderr);
    let failure = events
        .iter()
        .find(|e| e["fields"]["code"] == "INVALID_DATASOURCE_NAME")
        .expect("the failed row is logged");
    assert_eq!(failure["level"], "WARN");
    assert_eq!(failure["fields"]["row"], 8);
    assert_eq!(failure["fields"]["workspace"], "Legacy Oracle Tenant");
}

#[tokio::test]
async fn help_groups_the_options_and_each_command_speaks_only_of_itself() {
    let run = dbprov(&["run", "--help"]).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let help = &run.stdout;
    let flags_under = |heading: &str| -> Vec<String> {
        let start = help
            .find(&format!("\n{heading}:\n"))
            .unwrap_or_else(|| panic!("no {heading} heading: {help}"));
        help[start + heading.len() + 3..]
            .lines()
            .take_while(|line| line.is_empty() || line.starts_with(' '))
            // `-v, --verbose...` or `--log-format <LOG_FORMAT>`, not `- text: ...`
            .filter_map(|line| {
                let line = line.trim_start();
                let long = match line.as_bytes() {
                    [b'-', short, b',', b' ', ..] if short.is_ascii_alphabetic() => &line[4..],
                    _ => line,
                };
                long.starts_with("--")
                    .then(|| long.split_whitespace().next().unwrap().to_owned())
            })
            .collect()
    };
    // The global options in a group of their own, after the run's.
    assert_eq!(
        flags_under("Logging"),
        ["--verbose...", "--quiet...", "--log-format"],
        "{help}"
    );
    assert!(help.find("\nLogging:\n") > help.find("\nReporting:\n"));
    assert_eq!(
        flags_under("Input"),
        ["--delimiter", "--encoding"],
        "{help}"
    );
    assert!(
        flags_under("Results").contains(&"--excel".to_owned()),
        "{help}"
    );
    for heading in ["API", "Sending", "Rows"] {
        assert!(!flags_under(heading).is_empty(), "{heading}: {help}");
    }
    for command in ["sandbox", "validate", "completions"] {
        let other = dbprov(&[command, "--help"]).await;
        assert_eq!(other.exit, 0, "{command}: {}", other.stderr);
        assert!(other.stdout.contains("\nLogging:\n"), "{}", other.stdout);
        let text = other.stdout.to_lowercase();
        assert!(
            !text.contains("dry run") && !text.contains("dry-run"),
            "{command}: {}",
            other.stdout
        );
    }
}

#[tokio::test]
async fn completions_are_generated_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let run = dbprov(&["completions", shell]).await;
        assert_eq!(run.exit, 0, "{shell}");
        assert!(
            run.stdout.contains("retry") && run.stdout.contains("max-failures"),
            "{shell}"
        );
    }
}
