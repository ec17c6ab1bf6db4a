//! `dbprov plan` and `--dry-run`: what would happen, row by row, with nothing written to the
//! API.

use std::collections::BTreeMap;

use dbprov::sandbox::FaultConfig;
use serde_json::Value;

use crate::common::{
    Api, JobDir, args_for, assert_one_row_per_input_row, by_method, datasource_csv, expect,
    holding, holding_names, job_args_to, log, names, plain_sandbox, read_summary, run_against,
    tally, tenants,
};
use crate::process::dbprov_with;

#[tokio::test]
async fn a_dry_run_sends_nothing_and_plans_every_valid_row() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let run = run_against(&sandbox, &dir, "samples/tenants.csv", &["--dry-run"]).await;
    assert_eq!(run.exit, 1, "the invalid rows still count: {}", run.stderr);
    let (_, rows) = dir.results("results.csv");
    assert_one_row_per_input_row(&rows, 51);
    assert_eq!(
        rows.iter().filter(|r| r["_status"] == "planned").count(),
        47
    );
    assert_eq!(api.stats().await["requests_total"], 0);
}

/// The row counts of a summary, by status.
fn summary_counts(summary: &Value) -> Value {
    summary["by_status"].clone()
}

#[tokio::test]
async fn plan_sends_no_write_and_its_counts_match_the_run_that_follows() {
    let old = names("old", 10);
    let sandbox = holding(&old, FaultConfig::default()).await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let mut csv = datasource_csv(&old);
    for name in names("new", 15) {
        csv.push_str(&format!("{name},DATASOURCE,postgres-main\n"));
    }
    csv.push_str("no-type,,\n");
    csv.push_str("no-source,DATASOURCE,\n");
    let input = dir.write("in.csv", &csv);

    let mut args = args_for(&sandbox, &dir, "plan.csv");
    let plan_summary = dir.path("plan.json");
    args.extend(["--summary-json", plan_summary.to_str().unwrap()].map(str::to_owned));
    let plan = dbprov_with(&["plan", &input], &args).await;
    assert_eq!(plan.exit, 1, "two rows are invalid: {}", plan.stderr);
    let log_after_plan = log(&api).await;
    assert_eq!(
        by_method(&log_after_plan),
        BTreeMap::from([("GET".to_owned(), 2)]),
        "a plan lists (a list of exactly one page, and its second page), and writes nothing"
    );
    let (_, planned) = dir.results("plan.csv");
    assert_one_row_per_input_row(&planned, 27);
    assert_eq!(
        tally(&planned),
        expect(&[("planned", 15), ("exists", 10), ("invalid", 2)])
    );
    assert!(planned.iter().all(|r| r["_attempts"] == "0"), "{planned:?}");
    let plan_summary = read_summary(&plan_summary);

    let mut args = args_for(&sandbox, &dir, "results.csv");
    let run_summary = dir.path("run.json");
    args.extend(["--summary-json", run_summary.to_str().unwrap()].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let (_, rows) = dir.results("results.csv");
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
        summary_counts(&read_summary(&run_summary)),
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
    let sandbox = holding(&names("old", 2), FaultConfig::default()).await;
    let dir = JobDir::new();
    let mut all = names("old", 2);
    all.extend(names("new", 3));
    let input = dir.write("in.csv", &datasource_csv(&all));
    let mut args = args_for(&sandbox, &dir, "plan.csv");
    let path = dir.path("plan.json");
    args.extend(["--summary-json", path.to_str().unwrap()].map(str::to_owned));
    let plan = dbprov_with(&["plan", &input], &args).await;
    assert_eq!(plan.exit, 0, "{}", plan.stderr);
    let summary = read_summary(&path);
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
    let sandbox = holding(&old, FaultConfig::default()).await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let mut all = old.clone();
    all.extend(names("new", 5));
    let input = dir.write("in.csv", &datasource_csv(&all));

    let mut args = args_for(&sandbox, &dir, "update-plan.csv");
    args.extend(["--on-exists", "update"].map(str::to_owned));
    let plan = dbprov_with(&["plan", &input], &args).await;
    assert_eq!(plan.exit, 0, "{}", plan.stderr);
    let (_, rows) = dir.results("update-plan.csv");
    assert_one_row_per_input_row(&rows, 10);
    for row in &rows {
        assert_eq!(row["_status"], "planned", "{row:?}");
        assert_eq!(row["_attempts"], "0", "{row:?}");
        if row["name"].starts_with("old-") {
            assert!(row["_error_message"].starts_with("would update"), "{row:?}");
        }
    }

    let mut args = args_for(&sandbox, &dir, "fail-plan.csv");
    args.extend(["--on-exists", "fail"].map(str::to_owned));
    let plan = dbprov_with(&["plan", &input], &args).await;
    assert_eq!(plan.exit, 1, "{}", plan.stderr);
    let (_, rows) = dir.results("fail-plan.csv");
    for row in &rows {
        if row["name"].starts_with("old-") {
            assert_eq!(row["_status"], "failed", "{row:?}");
            assert_eq!(row["_error_code"], "WORKSPACE_NAME_ALREADY_EXISTS");
        } else {
            assert_eq!(row["_status"], "planned", "{row:?}");
        }
    }
    assert_eq!(
        by_method(&log(&api).await),
        BTreeMap::from([("GET".to_owned(), 2)]),
        "two plans, two list calls, no write"
    );
}

#[tokio::test]
async fn a_plan_refused_by_the_api_says_so_on_every_row() {
    let sandbox = holding_names(&[]).await;
    let dir = JobDir::new();
    let input = dir.write("t.csv", &tenants("t", 3));
    let wrong = dir.private_key("not-the-key\n");
    let args = job_args_to(&sandbox.url(), &wrong, &dir, "plan.csv");
    let plan = dbprov_with(&["plan", &input], &args).await;
    assert_eq!(plan.exit, 3, "{}", plan.stderr);
    let (_, rows) = dir.results("plan.csv");
    assert_eq!(rows.len(), 3);
    for row in rows {
        assert_eq!(
            (&*row["_status"], &*row["_error_code"]),
            ("skipped", "ABORTED_UNAUTHORIZED"),
            "{row:?}"
        );
    }
}
