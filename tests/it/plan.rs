//! `dbprov plan` and `--dry-run`: what would happen, row by row, with nothing written to the
//! API.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::common::{
    assert_one_row_per_input_row, by_method, datasource_csv, expect, job_args_to, log, names,
    read_json, tally, tenants,
};
use crate::fixture::Job;
use crate::process::dbprov_with;

#[tokio::test]
async fn a_dry_run_sends_nothing_and_plans_every_valid_row() {
    let job = Job::new().await;
    let run = job.run(&["run", "samples/tenants.csv", "--dry-run"]).await;
    assert_eq!(run.exit, 1, "the invalid rows still count: {}", run.stderr);
    let rows = job.rows();
    assert_one_row_per_input_row(&rows, 51);
    assert_eq!(
        rows.iter().filter(|r| r["_status"] == "planned").count(),
        47
    );
    assert_eq!(job.requests().await, 0);
}

/// The row counts of a summary, by status.
fn summary_counts(summary: &Value) -> Value {
    summary["by_status"].clone()
}

#[tokio::test]
async fn plan_sends_no_write_and_its_counts_match_the_run_that_follows() {
    let old = names("old", 10);
    let job = Job::holding(&old).await;
    let mut csv = datasource_csv(&old);
    for name in names("new", 15) {
        csv.push_str(&format!("{name},DATASOURCE,postgres-main\n"));
    }
    csv.push_str("no-type,,\n");
    csv.push_str("no-source,DATASOURCE,\n");
    let input = job.input(&csv);

    let mut args = job.args_with_preflight("plan.csv");
    let plan_summary = job.dir.path("plan.json");
    args.extend(["--summary-json", plan_summary.to_str().unwrap()].map(str::to_owned));
    let plan = dbprov_with(&["plan", &input], &args).await;
    assert_eq!(plan.exit, 1, "two rows are invalid: {}", plan.stderr);
    let log_after_plan = log(&job.api).await;
    assert_eq!(
        by_method(&log_after_plan),
        BTreeMap::from([("GET".to_owned(), 2)]),
        "a plan lists (a list of exactly one page, and its second page), and writes nothing"
    );
    let planned = job.rows_of("plan.csv");
    assert_one_row_per_input_row(&planned, 27);
    assert_eq!(
        tally(&planned),
        expect(&[("planned", 15), ("exists", 10), ("invalid", 2)])
    );
    assert!(planned.iter().all(|r| r["_attempts"] == "0"), "{planned:?}");
    let plan_summary = read_json(&plan_summary);

    let mut args = job.args_with_preflight("results.csv");
    let run_summary = job.dir.path("run.json");
    args.extend(["--summary-json", run_summary.to_str().unwrap()].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let rows = job.rows();
    assert_one_row_per_input_row(&rows, 27);
    assert_eq!(
        tally(&rows),
        expect(&[("created", 15), ("exists", 10), ("invalid", 2)])
    );
    let mut expected = summary_counts(&plan_summary);
    // What the plan calls planned, the run calls created.
    let planned_count = expected["planned"].take();
    expected.as_object_mut().unwrap().remove("planned");
    expected["created"] = planned_count;
    assert_eq!(
        summary_counts(&read_json(&run_summary)),
        expected,
        "the plan's counts, planned read as created"
    );
    let by_row: BTreeMap<&str, &str> = planned
        .iter()
        .map(|r| (r["_row"].as_str(), r["_status"].as_str()))
        .collect();
    for row in &rows {
        let was = by_row[row["_row"].as_str()];
        let now = if was == "planned" { "created" } else { was };
        assert_eq!(row["_status"], now, "row {} planned {was}", row["_row"]);
    }
}

#[tokio::test]
async fn plan_summary_json_has_the_counts_by_status() {
    let job = Job::holding(&names("old", 2)).await;
    let mut all = names("old", 2);
    all.extend(names("new", 3));
    let input = job.input(&datasource_csv(&all));
    let mut args = job.args_with_preflight("plan.csv");
    let path = job.dir.path("plan.json");
    args.extend(["--summary-json", path.to_str().unwrap()].map(str::to_owned));
    let plan = dbprov_with(&["plan", &input], &args).await;
    assert_eq!(plan.exit, 0, "{}", plan.stderr);
    let summary = read_json(&path);
    assert_eq!(
        summary["by_status"],
        serde_json::json!({"exists": 2, "planned": 3}),
        "{summary}"
    );
    assert_eq!(summary["listed_workspaces"], 2, "{summary}");
}

#[tokio::test]
async fn plan_with_on_exists_update_or_fail_says_what_would_happen() {
    let old = names("old", 5);
    let job = Job::holding(&old).await;
    let mut all = old.clone();
    all.extend(names("new", 5));
    let input = job.input(&datasource_csv(&all));

    let mut args = job.args_with_preflight("update-plan.csv");
    args.extend(["--on-exists", "update"].map(str::to_owned));
    let plan = dbprov_with(&["plan", &input], &args).await;
    assert_eq!(plan.exit, 0, "{}", plan.stderr);
    let rows = job.rows_of("update-plan.csv");
    assert_one_row_per_input_row(&rows, 10);
    for row in &rows {
        assert_eq!(row["_status"], "planned", "{row:?}");
        assert_eq!(row["_attempts"], "0", "{row:?}");
        if row["name"].starts_with("old-") {
            assert!(row["_error_message"].starts_with("would update"), "{row:?}");
        }
    }

    let mut args = job.args_with_preflight("fail-plan.csv");
    args.extend(["--on-exists", "fail"].map(str::to_owned));
    let plan = dbprov_with(&["plan", &input], &args).await;
    assert_eq!(plan.exit, 1, "{}", plan.stderr);
    let rows = job.rows_of("fail-plan.csv");
    for row in &rows {
        if row["name"].starts_with("old-") {
            assert_eq!(row["_status"], "failed", "{row:?}");
            assert_eq!(row["_error_code"], "WORKSPACE_NAME_ALREADY_EXISTS");
        } else {
            assert_eq!(row["_status"], "planned", "{row:?}");
        }
    }
    assert_eq!(
        by_method(&log(&job.api).await),
        BTreeMap::from([("GET".to_owned(), 2)]),
        "two plans, two list calls, no write"
    );
}

#[tokio::test]
async fn a_plan_refused_by_the_api_says_so_on_every_row() {
    let job = Job::new().await;
    let input = job.dir.write("t.csv", &tenants("t", 3));
    let wrong = job.dir.private_key("not-the-key\n");
    let args = job_args_to(&job.sandbox.url(), &wrong, &job.dir, "plan.csv");
    let plan = dbprov_with(&["plan", &input], &args).await;
    assert_eq!(plan.exit, 3, "{}", plan.stderr);
    let rows = job.rows_of("plan.csv");
    assert_eq!(rows.len(), 3);
    for row in rows {
        assert_eq!(
            (&*row["_status"], &*row["_error_code"]),
            ("skipped", "ABORTED_UNAUTHORIZED"),
            "{row:?}"
        );
    }
}
