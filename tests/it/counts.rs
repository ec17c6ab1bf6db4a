//! What the operator is told the job did: the counts per status and the retries, in the
//! progress line, the summary on stderr and `--summary-json`. Each count is checked against
//! what reached the sandbox (its request log) or the results file, never against the
//! client's word alone.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use dbprov::sandbox::{FaultConfig, RateLimitHeaders, Sandbox, WindowLimit};
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

use crate::common::{
    Api, ResultRow, assert_one_row_per_input_row, attempts, holding, tenants, with_summary,
};
use crate::fixture::Job;
use crate::process::{dbprov_with, signal, start, until_requests};

/// The names `t-0001`... of [`tenants`]`("t", n)`.
fn names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("t-{i:04}")).collect()
}

/// Rows per `_status` of a results file, as the summary's `by_status` spells it.
fn by_status(rows: &[ResultRow]) -> Value {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for row in rows {
        *counts.entry(row["_status"].as_str()).or_default() += 1;
    }
    serde_json::to_value(counts).unwrap()
}

/// What the sandbox's request log says of the writes: requests that repeated the one
/// before them for the same workspace (same method), and PUTs that followed a POST.
#[derive(Debug, Default, PartialEq)]
struct Seen {
    writes: u64,
    repeats: u64,
    puts_after_post: u64,
}

async fn seen_by_sandbox(api: &Api) -> Seen {
    let log = api.get("/_sandbox/requests").await;
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    let mut seen = Seen::default();
    for entry in log.as_array().unwrap() {
        let Some(name) = entry["name"].as_str() else {
            continue; // the preflight's list
        };
        let method = entry["method"].as_str().unwrap().to_owned();
        seen.writes += 1;
        match last.insert(name.to_owned(), method.clone()).as_deref() {
            Some(before) if before == method => seen.repeats += 1,
            Some("POST") if method == "PUT" => seen.puts_after_post += 1,
            _ => {}
        }
    }
    seen
}

/// Starts `dbprov run input args...` with stderr piped; killed if the test fails first
/// (these jobs wait on an hour-long rate limit).
fn spawn_run(input: &str, args: &[String]) -> tokio::process::Child {
    start(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_dbprov"))
            .arg("run")
            .arg(input)
            .args(args)
            .env_remove("DATABRAIN_API_KEY")
            .env_remove("DATABRAIN_BASE_URL")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true),
    )
}

/// A sandbox that allows `requests` an hour per client, and says so in its headers
/// (`headers`) or not.
async fn hourly(requests: u64, headers: RateLimitHeaders, holding_names: &[String]) -> Sandbox {
    let faults = FaultConfig {
        rate_limit: Some(WindowLimit {
            requests,
            window: Duration::from_secs(3600),
        }),
        rate_limit_headers: headers,
        ..FaultConfig::default()
    };
    holding(holding_names, faults).await
}

#[tokio::test]
async fn on_exists_update_counts_updated_rows_and_no_retries() {
    let job = Job::holding(&names(6)).await;
    let input = job.input(&tenants("t", 6));

    // Without the list, each row's POST meets the taken name and the row is PUT: two
    // requests a row, and neither is a retry.
    let mut args = with_summary(job.args("results.csv"), &job.dir);
    args.extend(["--on-exists", "update"].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("dbprov: 6 rows in ") && run.stderr.contains(" s: 6 updated\n"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("requests: 12 (0 retries, 6 PUTs after a taken name)"),
        "{}",
        run.stderr
    );
    let json = job.summary();
    let rows = job.rows();
    assert_eq!(json["by_status"], serde_json::json!({"updated": 6}));
    assert_eq!(json["by_status"], by_status(&rows));
    assert_eq!(json["requests"], 12);
    assert_eq!(json["requests"], attempts(&rows));
    assert_eq!(json["retries"], 0);
    assert_eq!(json["puts_after_name_taken"], 6);
    assert_eq!(
        seen_by_sandbox(&job.api).await,
        Seen {
            writes: 12,
            repeats: 0,
            puts_after_post: 6
        }
    );

    // With the list, the names it shows go straight to PUT: one request a row, and the
    // list is neither a request of a row nor a retry.
    args.retain(|a| a != "--no-preflight");
    args.push("--overwrite".to_owned());
    let listed = dbprov_with(&["run", &input], &args).await;
    assert_eq!(listed.exit, 0, "{}", listed.stderr);
    let json = job.summary();
    assert_eq!(json["by_status"], serde_json::json!({"updated": 6}));
    assert_eq!(json["requests"], 6);
    assert_eq!(json["retries"], 0);
    assert_eq!(json["puts_after_name_taken"], 0);
    assert_eq!(json["list_requests"], 1);
    assert!(
        listed.stderr.contains("requests: 6 (0 retries), "),
        "{}",
        listed.stderr
    );
}

#[tokio::test]
async fn names_that_exist_are_counted_as_exists_and_a_dry_run_as_planned() {
    let job = Job::holding(&names(3)).await;
    let input = job.input(&tenants("t", 5));
    let args = with_summary(job.args("results.csv"), &job.dir);
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains(" s: 2 created, 3 exists\n"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("requests: 5 (0 retries), "),
        "{}",
        run.stderr
    );
    let json = job.summary();
    let rows = job.rows();
    assert_eq!(
        json["by_status"],
        serde_json::json!({"created": 2, "exists": 3})
    );
    assert_eq!(json["by_status"], by_status(&rows));
    assert_eq!(
        (json["retries"].as_u64(), json["requests"].as_u64()),
        (Some(0), Some(5))
    );

    let mut csv = tenants("d", 3);
    csv.push_str("d-bad,DATASORCE,,\n");
    let planned = job.dir.write("planned.csv", &csv);
    let mut args = with_summary(job.args("plan.csv"), &job.dir);
    args.push("--dry-run".to_owned());
    let dry = dbprov_with(&["run", &planned], &args).await;
    assert_eq!(dry.exit, 1, "{}", dry.stderr);
    assert!(
        dry.stderr.contains(" s: 1 invalid, 3 planned\n"),
        "{}",
        dry.stderr
    );
    let json = job.summary();
    assert_eq!(
        json["by_status"],
        serde_json::json!({"invalid": 1, "planned": 3})
    );
    assert_eq!(
        (json["retries"].as_u64(), json["requests"].as_u64()),
        (Some(0), Some(0))
    );
}

#[tokio::test]
async fn retries_are_the_requests_sent_again_after_500s_and_429s_and_nothing_else() {
    // 500s before and after creating, and a window limit without headers: some rows are
    // sent again after a 500 or a 429, some POSTs meet the name their lost answer took
    // and go on as PUT (a new request), and some PUTs meet a 500 in turn.
    let faults = FaultConfig {
        fail_rate: 0.2,
        fail_after_commit_rate: 0.2,
        rate_limit: Some(WindowLimit {
            requests: 25,
            window: Duration::from_secs(1),
        }),
        rate_limit_headers: RateLimitHeaders::None,
        ..FaultConfig::default()
    };
    let job = Job::with_faults(faults).await;
    let input = job.input(&tenants("t", 40));
    let mut args = with_summary(job.args("results.csv"), &job.dir);
    args.extend(["--on-exists", "update", "--max-attempts", "40"].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 0, "every row ends done: {}", run.stderr);

    let json = job.summary();
    let rows = job.rows();
    assert_one_row_per_input_row(&rows, 40);
    assert_eq!(json["by_status"], by_status(&rows));
    let stats = job.api.stats().await;
    let answered = |status: &str| stats["by_status"][status].as_u64().unwrap_or(0);
    assert!(answered("500") > 0 && answered("429") > 0, "{stats}");
    // Every 500 and every 429 was sent again, since every row ended done; nothing else
    // was.
    let seen = seen_by_sandbox(&job.api).await;
    assert_eq!(json["retries"], answered("500") + answered("429"), "{json}");
    assert_eq!(json["retries"], seen.repeats);
    assert!(seen.puts_after_post > 0, "some lost answers took the name");
    assert_eq!(json["puts_after_name_taken"], seen.puts_after_post);
    assert_eq!(json["requests"], seen.writes);
    assert_eq!(json["requests"], attempts(&rows));
    assert_eq!(json["responses_429"], answered("429"));
    assert!(
        run.stderr.contains(&format!(
            "requests: {} ({} retries, {} PUT",
            seen.writes, seen.repeats, seen.puts_after_post
        )),
        "{}",
        run.stderr
    );
}

/// A rerun counts each row once: the successes it keeps (by their status, and as kept),
/// and the rows it sends (by their new status), as its results file holds them.
#[tokio::test]
async fn a_retry_counts_kept_and_sent_rows_once_each() {
    let faults = FaultConfig {
        fail_rate: 0.4,
        ..FaultConfig::default()
    };
    let job = Job::with_faults(faults).await;
    let input = job.input(&tenants("t", 30));
    let mut args = with_summary(job.args("results.csv"), &job.dir);
    args.extend(["--max-attempts", "1"].map(str::to_owned));
    let first = dbprov_with(&["run", &input], &args).await;
    assert_eq!(first.exit, 1, "{}", first.stderr);
    let rows = job.rows();
    let failed = rows.iter().filter(|r| r["_status"] == "failed").count() as u64;
    assert!(failed > 0 && failed < 30, "{failed}");
    let json = job.summary();
    assert_eq!(json["by_status"], by_status(&rows));
    assert_eq!(json["retries"], 0, "one attempt a row: nothing sent again");

    job.sandbox.set_fault_rates(0.0, 0.0, 0.0).unwrap();
    let before = job.requests().await;
    let results = job.dir.path("results.csv");
    let args = with_summary(job.args("retried.csv"), &job.dir);
    let retry = dbprov_with(&["retry", results.to_str().unwrap()], &args).await;
    assert_eq!(retry.exit, 0, "{}", retry.stderr);
    let rows = job.rows_of("retried.csv");
    assert_one_row_per_input_row(&rows, 30);
    let json = job.summary();
    assert_eq!(json["by_status"], serde_json::json!({"created": 30}));
    assert_eq!(json["rows"], 30);
    assert_eq!(json["kept"], 30 - failed);
    let sent = job.requests().await - before;
    assert_eq!((json["requests"].as_u64(), sent), (Some(failed), failed));
    assert_eq!(json["retries"], 0);
}

/// The progress line names every status met so far, and only those. The job is held still
/// by the API's rate limit (two requests an hour, no headers) after an invalid row, a
/// name that exists and a new one; then Ctrl-C ends it, and the rows it never finished
/// are counted `skipped`, once each.
#[tokio::test]
async fn the_progress_line_names_every_status_met_and_an_interrupt_counts_the_rest_skipped() {
    let job = Job::on(hourly(2, RateLimitHeaders::None, &["t-old".to_owned()]).await);
    let input = job.input(
        "name,connectionType,datasourceName\n\
         t-bad,,\n\
         t-old,DATASOURCE,postgres-main\n\
         t-new1,DATASOURCE,postgres-main\n\
         t-new2,DATASOURCE,postgres-main\n\
         t-new3,DATASOURCE,postgres-main\n",
    );
    let mut args = with_summary(job.args("results.csv"), &job.dir);
    args.extend(
        [
            "--max-retry-after",
            "2h",
            "--concurrency",
            "1",
            "--progress",
            "never",
            "--progress-every",
            "50ms",
        ]
        .map(str::to_owned),
    );
    let mut child = spawn_run(&input, &args);
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut stderr = String::new();
    // One request at a time, each let go only once the row before it is written: when
    // the third request has met the 429, the first three rows are counted, and nothing
    // changes until the hour is over.
    let wanted = "; created 1, exists 1, invalid 1";
    let progress = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            stderr.push_str(&line);
            stderr.push('\n');
            if line.contains("progress: 3/5 rows") && line.contains(wanted) {
                return line;
            }
        }
        panic!("dbprov ended without the progress line: {stderr}");
    })
    .await
    .unwrap_or_else(|_| panic!("no progress line naming {wanted:?} within 60 s: {stderr}"));
    assert!(
        !progress.contains("failed") && !progress.contains("retries"),
        "{progress}"
    );
    // Those counts are written before the third request goes, and the test can read them
    // first: wait until the sandbox has the request (refused at once, the hour's two are
    // spent), so that Ctrl-C finds it in flight or answered, and the job drains it.
    until_requests(&job.api, &mut child, 3).await;

    signal(&child, libc::SIGINT);
    while let Some(line) = lines.next_line().await.unwrap() {
        stderr.push_str(&line);
        stderr.push('\n');
    }
    let exit = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("dbprov ends after Ctrl-C")
        .unwrap();
    assert_eq!(exit.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains(" s: 1 created, 1 exists, 1 invalid, 2 skipped\n"),
        "{stderr}"
    );
    let json = job.summary();
    let rows = job.rows();
    assert_one_row_per_input_row(&rows, 5);
    assert_eq!(json["by_status"], by_status(&rows));
    assert_eq!(json["rows"], 5);
    // The 429 was met, never sent again: no retry.
    assert_eq!(json["responses_429"], 1);
    assert_eq!(json["retries"], 0);
    assert_eq!(json["requests"], attempts(&rows));
    assert_eq!(json["requests"], 3);
}

/// A PUT that never went out is neither a request nor a PUT after a taken name: the POST
/// meets the taken name and spends the hour's one request, the API's headers say so, the
/// PUT waits for the next window, and Ctrl-C ends the job before it.
#[tokio::test]
async fn a_put_the_job_stopped_before_sending_is_not_counted() {
    let job = Job::on(hourly(1, RateLimitHeaders::Draft6, &["t-old".to_owned()]).await);
    let input = job.input("name,connectionType,datasourceName\nt-old,DATASOURCE,postgres-main\n");
    let mut args = with_summary(job.args("results.csv"), &job.dir);
    args.extend(["--on-exists", "update", "--max-retry-after", "2h"].map(str::to_owned));
    let mut child = spawn_run(&input, &args);
    until_requests(&job.api, &mut child, 1).await;
    signal(&child, libc::SIGINT);
    let ended = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("dbprov ends after Ctrl-C")
        .unwrap();
    let stderr = String::from_utf8_lossy(&ended.stderr);
    assert_eq!(ended.status.code(), Some(130), "{stderr}");
    let json = job.summary();
    assert_eq!(
        json["by_status"],
        serde_json::json!({"skipped": 1}),
        "{stderr}"
    );
    assert_eq!(json["requests"], 1);
    assert_eq!(json["puts_after_name_taken"], 0);
    assert_eq!(json["retries"], 0);
    assert_eq!(
        seen_by_sandbox(&job.api).await,
        Seen {
            writes: 1,
            repeats: 0,
            puts_after_post: 0
        }
    );
}

#[tokio::test]
async fn the_summary_json_agrees_with_the_results_file() {
    let job = Job::new().await;
    let mut args = job.args("results.csv");
    let summary = job.dir.path("summary.json");
    args.extend([
        "--summary-json".to_owned(),
        summary.to_str().unwrap().to_owned(),
    ]);
    let run = dbprov_with(&["run", "samples/tenants.csv"], &args).await;
    assert_eq!(run.exit, 1);
    let summary: Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let rows = job.rows();
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
        job.dir.path("results.csv").to_str().unwrap()
    );
    let retry = summary["retry_command"].as_str().unwrap();
    assert!(retry.starts_with("dbprov retry "), "{retry}");
    assert!(summary["latency_ms"]["p50"].is_u64());
}
