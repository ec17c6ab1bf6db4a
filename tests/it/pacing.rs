//! Pacing: the API's rate limit (its headers, its 429s and their `Retry-After`), and an API
//! that cannot be reached. Every job here must end with each row accounted for, and none
//! failed for being refused "not now".

use crate::common::*;
use crate::faults::{Canned, FaultServer};

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
    for retry_after in [
        "999999999".to_owned(),
        httpdate::fmt_http_date(
            std::time::SystemTime::now() + std::time::Duration::from_secs(3 * 3600),
        ),
    ] {
        let server = FaultServer::start(Canned::TooManyRequests(retry_after.clone())).await;
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
