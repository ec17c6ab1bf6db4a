//! What each answer of the API means for a row: a 4xx is final, 5xx and timeouts are tried
//! again, a 200 that is not the success envelope is unexpected, redirects are not followed,
//! error bodies are read only so far, and a refused key stops the job.

use std::time::{Duration, Instant};

use dbprov::sandbox::FaultConfig;

use crate::common::{
    Answer, JobDir, ResultRow, assert_one_row_per_input_row, by_row, job_args_to, set_flag, tenants,
};
use crate::fault_server::{Canned, FaultServer, WORKSPACE, fault_key};
use crate::fixture::{Job, create_through_faults};
use crate::process::{Finished, command, dbprov_with, limit, line, run_to_end};

#[tokio::test]
async fn with_30_percent_500s_every_row_is_created_once() {
    let faults = FaultConfig {
        fail_rate: 0.3,
        ..FaultConfig::default()
    };
    let extra = ["--max-attempts", "12", "--concurrency", "16"];
    let (job, rows) = create_through_faults(faults, 300, &extra).await;
    let stats = job.api.stats().await;
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
    let extra = ["--max-attempts", "10", "--preflight"];
    let (job, _) = create_through_faults(faults, 200, &extra).await;
    let stats = job.api.stats().await;
    let drops = &stats["faults_injected"];
    assert!(
        drops["drop_before_commit"].as_u64().unwrap()
            + drops["drop_after_commit"].as_u64().unwrap()
            > 0
    );
}

#[tokio::test]
async fn a_400_is_tried_once() {
    let job = Job::new().await;
    let input = job.input(
        "name,connectionType,datasourceName,themeName\n\
         a,DATASOURCE,oracle-old,\n\
         b,MULTI_DATAMART,,neon\n\
         c,MULTI_DATAMART,,\n",
    );
    let run = job.run(&["run", &input, "--max-attempts", "5"]).await;
    assert_eq!(run.exit, 1);
    let rows = job.rows();
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
    assert_eq!(job.requests().await, 3);
}

#[tokio::test]
async fn a_wrong_key_stops_the_job_with_exit_3_and_every_row_accounted_for() {
    let job = Job::new().await;
    let input = job.input(&tenants("t", 500));
    let mut args = job.args("results.csv");
    set_flag(
        &mut args,
        "--api-key-file",
        &job.dir.write("wrong-key", "dbn_live_wrong\n"),
    );
    args.extend(["--concurrency", "4"].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 3, "{}", run.stderr);
    let rows = job.rows();
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
    assert_eq!(job.requests().await, failed.len() as u64);
    assert!(
        !run.stderr.contains("dbn_live_wrong"),
        "the key never shows"
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
async fn an_answer_slower_than_the_timeout_is_a_timeout_and_is_retried() {
    let job = Job::with_faults(FaultConfig {
        latency: std::time::Duration::from_secs(5),
        ..FaultConfig::default()
    })
    .await;
    let input = job.input("name,connectionType\nslow,MULTI_DATAMART\n");
    // A second: time for the sandbox to take each request in before the job gives up on
    // it, however busy the machine, so that what it counts is what was sent.
    let run = job
        .run(&["run", &input, "--timeout", "1s", "--max-attempts", "2"])
        .await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let rows = job.rows();
    assert_eq!(rows[0]["_status"], "failed");
    assert_eq!(rows[0]["_error_code"], "TIMEOUT");
    assert_eq!(rows[0]["_error_message"], "no answer within 1s");
    assert_eq!(rows[0]["_http_status"], "");
    assert_eq!(rows[0]["_attempts"], "2");
    assert_eq!(job.requests().await, 2);
}

/// Runs two rows against `url` with `--max-attempts 3`.
async fn two_rows_against(url: &str, extra: &[&str]) -> (Finished, Vec<ResultRow>) {
    let dir = JobDir::new();
    let input = dir.write(
        "in.csv",
        "name,connectionType\na,MULTI_DATAMART\nb,MULTI_DATAMART\n",
    );
    let key = fault_key(&dir);
    let mut args = job_args_to(url, &key, &dir, "results.csv");
    args.extend(["--max-attempts", "3"].map(str::to_owned));
    args.extend(extra.iter().map(|s| s.to_string()));
    let run = dbprov_with(&["run", &input], &args).await;
    let (_, rows) = dir.results("results.csv");
    (run, rows)
}

#[tokio::test]
async fn a_200_that_is_not_the_success_envelope_is_unexpected_and_retried() {
    for canned in [Canned::HtmlOk, Canned::ErrorEnvelopeOk] {
        let server = FaultServer::start(canned.clone()).await;
        let (run, rows) = two_rows_against(&server.url, &[]).await;
        assert_eq!(run.exit, 1, "{canned:?}: {}", run.stderr);
        assert_one_row_per_input_row(&rows, 2);
        for row in &rows {
            assert_eq!(row["_status"], "failed", "{canned:?}: {row:?}");
            assert_eq!(row["_error_code"], "UNEXPECTED_RESPONSE", "{canned:?}");
            assert_eq!(row["_http_status"], "200", "{canned:?}");
            assert_eq!(row["_attempts"], "3", "retried: the outcome is unknown");
        }
        assert_eq!(server.writes(), 6, "{canned:?}");
    }
}

#[tokio::test]
async fn redirects_are_not_followed_and_are_final() {
    for status in [301, 302, 303, 307, 308] {
        let elsewhere = FaultServer::start(Canned::Success).await;
        let location = format!("{}{WORKSPACE}", elsewhere.url);
        let server = FaultServer::start(Canned::Redirect {
            status,
            location: location.clone(),
        })
        .await;
        let (run, rows) = two_rows_against(&server.url, &[]).await;
        assert_eq!(run.exit, 1, "{status}: {}", run.stderr);
        assert_one_row_per_input_row(&rows, 2);
        for row in &rows {
            assert_eq!(row["_status"], "failed", "{status}: {row:?}");
            assert_eq!(row["_error_code"], format!("HTTP_{status}"));
            assert_eq!(row["_http_status"], status.to_string());
            assert_eq!(row["_attempts"], "1", "a redirect is final");
            assert!(
                row["_error_message"].contains(&location),
                "the message gives the Location: {row:?}"
            );
        }
        assert_eq!(server.writes(), 2, "{status}");
        assert_eq!(
            elsewhere.requests(),
            0,
            "{status}: the Location was not visited"
        );
    }
}

/// 100 workspaces that exist as MULTI_DATAMART, in a sandbox that answers 30% of requests
/// with a 500; a job that moves them to DATASOURCE / postgres-main with `--on-exists update`.
#[tokio::test]
async fn on_exists_update_puts_every_taken_name_even_through_500s() {
    let job = Job::with_faults(FaultConfig {
        fail_rate: 0.3,
        ..FaultConfig::default()
    })
    .await;
    let names: Vec<String> = (1..=100).map(|i| format!("w-{i:03}")).collect();
    for name in &names {
        let body = serde_json::json!({"name": name, "connectionType": "MULTI_DATAMART"});
        let mut tries = 0;
        loop {
            tries += 1;
            match job.api.create(&body).await {
                Answer::Http { status: 200, .. } => break,
                Answer::Http { status: 500, .. } if tries < 100 => continue,
                other => panic!("setting up {name}: {other:?}"),
            }
        }
    }
    let mut csv = String::from("name,connectionType,datasourceName\n");
    for name in &names {
        csv.push_str(&format!("{name},DATASOURCE,postgres-main\n"));
    }
    let input = job.input(&csv);
    let run = job
        .run(&[
            "run",
            &input,
            "--on-exists",
            "update",
            "--max-attempts",
            "30",
        ])
        .await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let rows = job.rows();
    assert_one_row_per_input_row(&rows, 100);
    let not_updated: Vec<_> = rows
        .iter()
        .filter(|r| r["_status"] != "updated")
        .map(|r| (r["name"].as_str(), r["_status"].as_str()))
        .collect();
    assert!(
        not_updated.is_empty(),
        "every workspace existed: each is updated, got {not_updated:?}"
    );
    let stored = job.api.get("/_sandbox/workspaces").await;
    let stored = stored.as_array().unwrap();
    assert_eq!(stored.len(), 100);
    for workspace in stored {
        assert_eq!(workspace["connectionType"], "DATASOURCE", "{workspace}");
        assert_eq!(workspace["datasourceName"], "postgres-main", "{workspace}");
    }
}

async fn a_500_with_a_body(canned: Canned) {
    let server = FaultServer::start(canned).await;
    let dir = JobDir::new();
    let input = dir.write("in.csv", "name,connectionType\nbig,MULTI_DATAMART\n");
    let mut args = job_args_to(&server.url, &fault_key(&dir), &dir, "results.csv");
    args.extend(["--timeout", "20s", "--max-attempts", "2"].map(str::to_owned));
    let started = Instant::now();
    let mut cmd = command(&line(&["run", &input], &args));
    // Under a memory limit (as a container has), reading a 100 MB body whole is an abort.
    // One malloc arena and two runtime threads keep the address space the same on any
    // machine (each arena reserves 64 MB of it).
    cmd.env("MALLOC_ARENA_MAX", "1")
        .env("TOKIO_WORKER_THREADS", "2");
    limit(&mut cmd, libc::RLIMIT_AS, 192 << 20);
    let run = run_to_end(cmd).await;
    let took = started.elapsed();
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let (_, rows) = dir.results("results.csv");
    assert_eq!(rows[0]["_status"], "failed");
    assert_eq!(rows[0]["_error_code"], "HTTP_500");
    assert_eq!(rows[0]["_http_status"], "500");
    assert_eq!(rows[0]["_attempts"], "2");
    let message = rows[0]["_error_message"].len();
    assert!(message < 1000, "a message of {message} bytes");
    assert!(
        took < Duration::from_secs(15),
        "two attempts took {took:?}: the body was read to the timeout"
    );
}

#[tokio::test]
async fn an_endless_error_body_is_read_only_so_far() {
    a_500_with_a_body(Canned::EndlessError).await;
}

#[tokio::test]
async fn a_100_mb_error_body_is_read_only_so_far() {
    a_500_with_a_body(Canned::HugeError(100 * 1024 * 1024)).await;
}

#[tokio::test]
async fn a_success_envelope_naming_another_workspace_is_not_a_success() {
    let server = FaultServer::start(Canned::SuccessFor("someone-else".into())).await;
    let (run, rows) = two_rows_against(&server.url, &[]).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    for row in &rows {
        assert_eq!(row["_status"], "failed", "{row:?}");
        assert_eq!(row["_error_code"], "UNEXPECTED_RESPONSE", "{row:?}");
        assert!(row["_error_message"].contains("someone-else"), "{row:?}");
    }
}

#[tokio::test]
async fn a_400_authentication_error_stops_the_job_like_a_401() {
    // The vendor's middleware answers a key that is missing or not a UUID with 400
    // AUTHENTICATION_ERROR: every further request would get the same.
    let server = FaultServer::start(Canned::AuthenticationError).await;
    let dir = JobDir::new();
    let input = dir.write("in.csv", &tenants("t", 200));
    let key = fault_key(&dir);
    let mut args = job_args_to(&server.url, &key, &dir, "results.csv");
    args.extend(["--concurrency", "2"].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 3, "{}", run.stderr);
    let (_, rows) = dir.results("results.csv");
    assert_one_row_per_input_row(&rows, 200);
    let failed: Vec<_> = rows.iter().filter(|r| r["_status"] == "failed").collect();
    assert!(
        !failed.is_empty() && failed.len() <= 2,
        "only the requests in flight: {}",
        failed.len()
    );
    assert_eq!(
        server.writes(),
        failed.len() as u64,
        "at most a few requests"
    );
    for row in &failed {
        assert_eq!(row["_error_code"], "AUTHENTICATION_ERROR", "{row:?}");
        assert_eq!(row["_http_status"], "400");
        assert_eq!(row["_attempts"], "1");
    }
    for row in rows.iter().filter(|r| r["_status"] != "failed") {
        assert_eq!(row["_status"], "skipped", "{row:?}");
        assert_eq!(row["_error_code"], "ABORTED_UNAUTHORIZED", "{row:?}");
    }
    assert!(
        run.stderr.contains("AUTHENTICATION_ERROR"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn a_delete_refused_with_a_message_that_reads_not_found_is_no_absent() {
    // The refusal's message reads like a delete's "does not exist": the key comes first.
    let server = FaultServer::start(Canned::AuthenticationError).await;
    let dir = JobDir::new();
    let input = dir.write("in.csv", "name\na\nb\nc\nd\n");
    let key = fault_key(&dir);
    let mut args = job_args_to(&server.url, &key, &dir, "deleted.csv");
    args.extend(["--concurrency", "1"].map(str::to_owned));
    let run = dbprov_with(&["delete", "--yes", &input], &args).await;
    assert_eq!(run.exit, 3, "{}", run.stderr);
    let (_, rows) = dir.results("deleted.csv");
    assert_one_row_per_input_row(&rows, 4);
    assert!(rows.iter().all(|r| r["_status"] != "absent"), "{rows:?}");
    let failed = rows.iter().filter(|r| r["_status"] == "failed").count();
    assert_eq!(failed, 1, "{rows:?}");
    assert_eq!(server.requests(), 1);
}
