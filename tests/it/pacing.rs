//! Pacing: the API's rate limit (its headers, its 429s and their `Retry-After`), the job's own
//! `--rate` and concurrency, and an API that cannot be reached. Every job here must end with
//! each row accounted for, and none failed for being refused "not now".

use std::collections::BTreeMap;
use std::time::Duration;

use dbprov::sandbox::{FaultConfig, RateLimitHeaders, Sandbox, WindowLimit};

use crate::common::{
    JobDir, ResultRow, assert_all_created, assert_one_row_per_input_row, job_args_to, read_json,
    sandbox_with, set_flag, slow_sandbox, tenants, workspace_counts,
};
use crate::fault_server::{Canned, FaultServer};
use crate::fixture::Job;
use crate::ports::{ClosedPort, sandbox_on_reserved_port};
use crate::process::{
    Finished, close_at_once, command, dbprov_with, limit, line, run_to_end, spawn_dbprov,
    until_requests,
};

#[tokio::test]
async fn a_429_storm_with_retry_after_is_survived_and_retry_after_honoured() {
    // Without the headers that would let the job pace itself, only 429s say "not now".
    let job = Job::with_faults(FaultConfig {
        rate_limit: Some(WindowLimit {
            requests: 25,
            window: Duration::from_secs(1),
        }),
        rate_limit_headers: RateLimitHeaders::None,
        ..FaultConfig::default()
    })
    .await;
    let input = job.input(&tenants("t", 60));
    let run = job
        .run(&["run", &input, "--concurrency", "16", "--max-attempts", "20"])
        .await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let rows = job.rows();
    assert_one_row_per_input_row(&rows, 60);
    assert!(rows.iter().all(|r| r["_status"] == "created"));
    assert_eq!(workspace_counts(&job.api).await.len(), 60);
    assert!(
        job.api.stats().await["faults_injected"]["rate_limited"]
            .as_u64()
            .unwrap()
            > 0
    );
    // After a 429 with Retry-After: 1, the same row waits at least a second.
    let log = job.api.get("/_sandbox/requests").await;
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
async fn the_rate_limit_holds_in_every_one_second_window() {
    // A third of the attempts fail: retries must take permits like first attempts.
    let job = Job::with_faults(FaultConfig {
        fail_rate: 0.3,
        ..FaultConfig::default()
    })
    .await;
    let input = job.input(&tenants("t", 60));
    let mut args = job.args("results.csv");
    // The limiter lets at most burst + 9 requests go in any second at 10/s (burst + 49 at
    // 50/s); the bound below, rate + burst, leaves room for one more. The sandbox stamps a
    // request when it gets to it, and on a busy machine a stamp can be tens of milliseconds
    // late, which moves a request into a later window: at 10/s the room covers stamps up to
    // 100 ms late, at 50/s only 20 ms.
    set_flag(&mut args, "--rate", "10/s");
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
    let log = job.api.get("/_sandbox/requests").await;
    let mut times: Vec<u64> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["at_us"].as_u64().unwrap())
        .collect();
    times.sort_unstable();
    assert!(times.len() > 60, "retries happened: {}", times.len());
    // The bound is rate + burst over any window of one second.
    let mut first = 0;
    for (last, t) in times.iter().enumerate() {
        while *t - times[first] >= 1_000_000 {
            first += 1;
        }
        assert!(
            last - first < 15,
            "{} requests within one second",
            last - first + 1
        );
    }
}

#[tokio::test]
async fn an_api_unreachable_from_the_start_stops_the_job_after_a_few_probes() {
    // Nothing listens on this port.
    let closed = ClosedPort::new();
    let dir = JobDir::new();
    let input = dir.write("in.csv", &tenants("t", 51));
    let url = closed.url();
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
async fn a_concurrency_beyond_the_file_descriptor_limit_is_raised_or_refused() {
    let job = Job::on(slow_sandbox(200).await);
    let args = job.args("results.csv");
    let input = job.input(&tenants("t", 1500));
    let mut cmd = command(&line(&["run", &input, "--concurrency", "1000"], &args));
    limit(&mut cmd, libc::RLIMIT_NOFILE, 256);
    let run = run_to_end(cmd).await;
    match run.exit {
        2 => {
            assert_eq!(job.writes().await, 0, "refused before any request");
            let said = run.stderr.to_lowercase();
            assert!(
                said.contains("limit")
                    && (said.contains("file descriptor") || said.contains("open files")),
                "names the file-descriptor limit: {}",
                run.stderr
            );
        }
        0 => {
            let rows = job.rows();
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
    if let Ok(text) = std::fs::read_to_string(job.dir.path("results.csv")) {
        assert!(!text.contains("Too many open files"));
    }
}

/// Runs `dbprov run` over `rows` tenants against `url`, with the fast test flags and
/// `extra`, and returns the process's end and the results rows.
async fn run_rows(
    url: &str,
    dir: &JobDir,
    rows: usize,
    extra: &[&str],
) -> (Finished, Vec<ResultRow>) {
    let input = dir.write("in.csv", &tenants("t", rows));
    let mut args = job_args_to(url, &dir.write("key", "k"), dir, "results.csv");
    args.extend(extra.iter().map(|a| a.to_string()));
    let run = dbprov_with(&["run", &input], &args).await;
    let (_, results) = dir.results("results.csv");
    assert_one_row_per_input_row(&results, rows);
    (run, results)
}

#[tokio::test]
async fn a_retry_after_beyond_max_retry_after_stops_the_job_with_exit_3() {
    let in_three_hours =
        httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(3 * 3600));
    for answer in [
        Canned::TooManyRequests("999999999".to_owned()),
        // Beyond what a clock can add: must not panic a worker and lose its row.
        Canned::TooManyRequests("18446744073709551615".to_owned()),
        Canned::TooManyRequests(in_three_hours),
        // A 503 that says "come back in an hour" is bounded the same way.
        Canned::Unavailable("3600".to_owned()),
    ] {
        let retry_after = format!("{answer:?}");
        let server = FaultServer::start(answer).await;
        let dir = JobDir::new();
        let (run, rows) = run_rows(&server.url, &dir, 40, &[]).await;
        assert_eq!(run.exit, 3, "{retry_after}: {}", run.stderr);
        for row in &rows {
            assert_eq!(row["_status"], "skipped", "{row:?}");
            assert_eq!(row["_error_code"], "ABORTED_RATE_LIMITED");
        }
        // Only the requests already on their way when the first 429 came back.
        assert!(server.writes() <= 8, "{} requests", server.writes());
        assert!(run.stderr.contains("--max-retry-after"), "{}", run.stderr);
        assert!(
            run.stderr.contains("--resume"),
            "says how to finish it: {}",
            run.stderr
        );
    }
}

/// A sandbox with a window limit of `requests` per `window_s` seconds per client.
async fn limited(
    requests: u64,
    window_s: u64,
    headers: RateLimitHeaders,
    retry_after: bool,
) -> Sandbox {
    sandbox_with(FaultConfig {
        rate_limit: Some(WindowLimit {
            requests,
            window: Duration::from_secs(window_s),
        }),
        rate_limit_headers: headers,
        retry_after,
        ..FaultConfig::default()
    })
    .await
}

/// The flags of `job` with every option at its default but `extra` (and a summary file).
fn default_args(job: &Job, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "-o",
        &job.path("results.csv"),
        "--base-url",
        &job.sandbox.url(),
        "--api-key-file",
        &job.dir.key_file(&job.sandbox),
        "--summary-json",
        &job.path("summary.json"),
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

fn rate_limited(stats: &serde_json::Value) -> u64 {
    stats["faults_injected"]["rate_limited"].as_u64().unwrap()
}

#[tokio::test]
async fn no_row_fails_under_a_window_limit_that_announces_itself() {
    for headers in [
        RateLimitHeaders::Draft6,
        RateLimitHeaders::Draft7,
        RateLimitHeaders::Legacy,
    ] {
        let job = Job::on(limited(20, 1, headers, true).await);
        let input = job.input(&tenants("t", 60));
        // Ten times the API's limit as the ceiling, and every other option at its default.
        let args = default_args(&job, &["--rate", "200/s"]);
        let run = dbprov_with(&["run", &input], &args).await;
        assert_eq!(run.exit, 0, "{headers}: {}", run.stderr);
        let rows = job.rows();
        assert_all_created(&job.sandbox, &rows, 60).await;
        // Paced to the window, the job meets few refusals (unpaced, it meets ~9 in 10).
        let stats = job.api.stats().await;
        let requests = stats["requests_total"].as_u64().unwrap();
        assert!(
            rate_limited(&stats) * 4 <= requests,
            "{headers}: {} 429s in {requests} requests",
            rate_limited(&stats)
        );
        let summary: serde_json::Value = read_json(&job.dir.path("summary.json"));
        assert_eq!(summary["responses_429"], rate_limited(&stats));
        assert_eq!(summary["announced_limit"]["requests"], 20, "{headers}");
    }
}

#[tokio::test]
async fn no_row_fails_under_a_window_limit_with_only_retry_after_or_nothing_at_all() {
    for retry_after in [true, false] {
        let job = Job::on(limited(20, 1, RateLimitHeaders::None, retry_after).await);
        let input = job.input(&tenants("t", 60));
        let args = default_args(&job, &["--rate", "200/s"]);
        let run = dbprov_with(&["run", &input], &args).await;
        assert_eq!(run.exit, 0, "Retry-After {retry_after}: {}", run.stderr);
        let rows = job.rows();
        assert_all_created(&job.sandbox, &rows, 60).await;
        let stats = job.api.stats().await;
        assert!(rate_limited(&stats) > 0, "the limit was met");
        let summary: serde_json::Value = read_json(&job.dir.path("summary.json"));
        assert_eq!(summary["responses_429"], rate_limited(&stats));
        assert!(summary["paused_rate_limited_seconds"].as_f64().unwrap() > 0.0);
        assert_eq!(summary["announced_limit"], serde_json::Value::Null);
    }
}

#[tokio::test]
async fn a_429_spends_none_of_a_rows_attempts() {
    let job = Job::on(limited(10, 1, RateLimitHeaders::None, true).await);
    let input = job.input(&tenants("t", 40));
    let args = default_args(&job, &["--rate", "unlimited", "--max-attempts", "1"]);
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let rows = job.rows();
    assert_all_created(&job.sandbox, &rows, 40).await;
    // Rows that met a 429 were sent again, with one attempt allowed.
    let sent_again = rows.iter().filter(|r| r["_attempts"] != "1").count();
    assert!(sent_again > 0, "{rows:?}");
    let attempts: u64 = rows
        .iter()
        .map(|r| r["_attempts"].parse::<u64>().unwrap())
        .sum();
    let stats = job.api.stats().await;
    // And the preflight's list, which counts against the limit like any request.
    assert_eq!(attempts + 1, stats["requests_total"].as_u64().unwrap());
}

#[tokio::test]
async fn a_wait_beyond_max_retry_after_stops_the_job_and_resume_finishes_it() {
    // 10 per 6 s: the eleventh request is told to wait for the window's end, seconds away.
    // (With the headers the job would spread the ten over the window and never be told.)
    let job = Job::on(limited(10, 6, RateLimitHeaders::None, true).await);
    let input = job.input(&tenants("t", 20));
    let args = default_args(&job, &["--rate", "unlimited", "--max-retry-after", "1s"]);
    let first = dbprov_with(&["run", &input], &args).await;
    assert_eq!(first.exit, 3, "{}", first.stderr);
    let rows = job.rows();
    assert_one_row_per_input_row(&rows, 20);
    let created = rows.iter().filter(|r| r["_status"] == "created").count();
    // The window's worth, less the preflight's list, which the limit counts too.
    assert_eq!(created, 9, "the window's worth: {rows:?}");
    for row in rows.iter().filter(|r| r["_status"] != "created") {
        assert_eq!(row["_status"], "skipped");
        assert_eq!(row["_error_code"], "ABORTED_RATE_LIMITED");
    }
    assert!(
        first.stderr.contains("--max-retry-after"),
        "{}",
        first.stderr
    );
    // The same command with --resume (and the default bound) waits for the window.
    let mut resume = args.clone();
    set_flag(&mut resume, "--max-retry-after", "15m");
    let second = dbprov_with(&["run", &input, "--resume"], &resume).await;
    assert_eq!(second.exit, 0, "{}", second.stderr);
    let rows = job.rows();
    assert_all_created(&job.sandbox, &rows, 20).await;
}

/// Starts a job of 150 rows at 50/s against `job`'s sandbox, with `extra` flags.
fn start_steady_job(job: &Job, extra: &[&str]) -> tokio::process::Child {
    let input = job.input(&tenants("t", 150));
    let mut args = job.args("results.csv");
    set_flag(&mut args, "--rate", "50/s");
    let mut line = vec!["run", &input];
    line.extend(args.iter().map(String::as_str));
    line.extend(extra);
    spawn_dbprov(&line)
}

#[tokio::test]
async fn an_outage_in_the_middle_is_ridden_out() {
    // On a port no other test can take while it is down.
    let job = Job::on(sandbox_on_reserved_port().await);
    let mut child = start_steady_job(&job, &[]);
    let mut stderr = Lines::of(&mut child);
    until_requests(&job.api, &mut child, 30).await;
    close_at_once(|| job.sandbox.go_down());
    // The job pauses on the outage: "the API cannot be reached" when its first failed request
    // could not connect, "does not answer" when one in flight lost its connection.
    stderr.until("sending paused").await;
    job.sandbox.come_back().await.unwrap();
    let end = child.wait().await.unwrap();
    let rest = stderr.rest().await;
    assert_eq!(end.code(), Some(0), "{rest}");
    assert!(rest.contains("answers again"), "{rest}");
    let rows = job.rows();
    assert_all_created(&job.sandbox, &rows, 150).await;
}

#[tokio::test]
async fn an_outage_longer_than_max_outage_stops_the_job_with_every_row_accounted_for() {
    // On a port no other test can take while it is down.
    let job = Job::on(sandbox_on_reserved_port().await);
    let mut child = start_steady_job(&job, &["--max-outage", "2s"]);
    until_requests(&job.api, &mut child, 30).await;
    close_at_once(|| job.sandbox.go_down());
    let end = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&end.stderr);
    assert_eq!(end.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("--max-outage"), "{stderr}");
    let rows = job.rows();
    assert_one_row_per_input_row(&rows, 150);
    for row in rows.iter().filter(|r| r["_status"] != "created") {
        assert_eq!(row["_status"], "skipped", "{row:?}");
        assert_eq!(row["_error_code"], "ABORTED_UNREACHABLE");
    }
    // Every workspace the API made is a created row, or one that says it may exist (its
    // answer was lost when the API went down).
    job.sandbox.come_back().await.unwrap();
    for name in job.api.workspace_names().await {
        let row = rows.iter().find(|r| r["name"] == name).unwrap();
        assert!(
            row["_status"] == "created" || row["_error_message"].contains("may exist"),
            "{row:?}"
        );
    }
}

#[tokio::test]
async fn the_progress_line_shows_a_pause_and_why() {
    let job = Job::on(limited(5, 3, RateLimitHeaders::None, true).await);
    let input = job.input(&tenants("t", 10));
    let args = default_args(&job, &["--rate", "unlimited", "--progress", "always"]);
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    assert!(run.stderr.contains("paused"), "{}", run.stderr);
    assert!(
        run.stderr.contains(": rate limit, again in"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("rate limit: "),
        "the summary: {}",
        run.stderr
    );
}

/// A child's stderr, read line by line as it comes.
struct Lines {
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>,
    seen: String,
}

impl Lines {
    fn of(child: &mut tokio::process::Child) -> Lines {
        use tokio::io::AsyncBufReadExt;
        let stderr = child.stderr.take().expect("stderr is piped");
        Lines {
            lines: tokio::io::BufReader::new(stderr).lines(),
            seen: String::new(),
        }
    }

    /// Reads until a line holds `text`; fails if the stream ends first.
    async fn until(&mut self, text: &str) {
        while let Some(line) = self.lines.next_line().await.unwrap() {
            self.seen.push_str(&line);
            self.seen.push('\n');
            if line.contains(text) {
                return;
            }
        }
        panic!("stderr ended without '{text}': {}", self.seen);
    }

    /// Everything read so far and the rest, to the end.
    async fn rest(mut self) -> String {
        while let Some(line) = self.lines.next_line().await.unwrap() {
            self.seen.push_str(&line);
            self.seen.push('\n');
        }
        self.seen
    }
}
