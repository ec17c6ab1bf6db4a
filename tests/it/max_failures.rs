//! `--max-failures`: as a count or a share of the rows, the job stops with exit 3, every row
//! recorded and nothing sent for the rows it skipped.

use dbprov::sandbox::{self, Catalog, Sandbox, SandboxConfig};

use crate::common::{ResultRow, assert_one_row_per_input_row, tenants};
use crate::fixture::Job;
use crate::process::dbprov_with;

#[tokio::test]
async fn a_name_the_list_shows_taken_counts_towards_max_failures_with_on_exists_fail() {
    let job = Job::holding(&["t-0001", "t-0002", "t-0003"]).await;
    let input = job.dir.write("t.csv", &tenants("t", 40));
    let mut args = job.args("r.csv");
    args.retain(|a| a != "--no-preflight");
    let flags = ["--on-exists", "fail", "--max-failures", "2"];
    args.extend(flags.map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 3, "{}", run.stderr);
    let rows = job.rows_of("r.csv");
    let failed: Vec<&ResultRow> = rows.iter().filter(|r| r["_status"] == "failed").collect();
    assert_eq!(failed.len(), 3, "{rows:?}");
    for row in failed {
        assert_eq!(row["_error_code"], "WORKSPACE_NAME_ALREADY_EXISTS");
        assert_eq!(row["_attempts"], "0");
    }
    assert!(
        rows.iter()
            .any(|r| r["_error_code"] == "ABORTED_MAX_FAILURES"),
        "{rows:?}"
    );
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
    let job = Job::on(failing_sandbox().await);
    let input = job.input(&datasource_rows(rows));
    let run = job
        .run(&[
            "run",
            &input,
            "--max-failures",
            limit,
            "--concurrency",
            concurrency,
        ])
        .await;
    assert_eq!(run.exit, 3, "{}", run.stderr);
    assert!(run.stderr.contains("ABORTED_MAX_FAILURES"));
    let results = job.rows();
    assert_one_row_per_input_row(&results, rows);
    let failed = results.iter().filter(|r| r["_status"] == "failed").count();
    for row in results.iter().filter(|r| r["_status"] != "failed") {
        assert_eq!(
            (row["_status"].as_str(), row["_error_code"].as_str()),
            ("skipped", "ABORTED_MAX_FAILURES")
        );
    }
    assert_eq!(job.requests().await, failed as u64);
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
