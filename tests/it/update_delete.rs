//! `dbprov update` and `dbprov delete`: through faults they change exactly the workspaces named,
//! a name that is not there is failed (update) or absent (delete), and names are taken as
//! they are written.

use std::collections::{BTreeMap, BTreeSet};

use dbprov::sandbox::FaultConfig;
use serde_json::Value;

use crate::common::{
    Api, ResultRow, assert_one_row_per_input_row, by_name, count, held, holding_seeded,
    job_args_to, log, name_csv, names, statuses,
};
use crate::fixture::Job;
use crate::process::dbprov_with;

fn faulty() -> FaultConfig {
    FaultConfig {
        fail_rate: 0.1,
        fail_after_commit_rate: 0.1,
        drop_rate: 0.1,
        ..FaultConfig::default()
    }
}

#[tokio::test]
async fn update_puts_new_settings_through_faults_and_fails_a_missing_name() {
    let existing = names("w", 30);
    let job = Job::on(holding_seeded(&existing, faulty(), 3).await);
    let mut csv = String::from("name,connectionType,datasourceName,themeName,team\n");
    for name in &existing {
        csv.push_str(&format!("{name},DATASOURCE,snowflake-warehouse,dark,ops\n"));
    }
    csv.push_str("nobody,DATASOURCE,snowflake-warehouse,dark,ops\n");
    let input = job.input(&csv);
    let mut args = job.args_with_preflight("results.csv");
    args.extend(["--max-attempts", "30", "--concurrency", "4"].map(str::to_owned));
    let update = dbprov_with(&["update", &input], &args).await;
    assert_eq!(update.exit, 1, "the missing name fails: {}", update.stderr);

    let rows = job.rows();
    assert_one_row_per_input_row(&rows, 31);
    let rows = by_name(&rows);
    for name in &existing {
        assert_eq!(rows[name]["_status"], "updated", "{:?}", rows[name]);
        assert_eq!(rows[name]["team"], "ops", "other columns are carried");
    }
    let missing = &rows["nobody"];
    assert_eq!(missing["_status"], "failed", "{missing:?}");
    assert_eq!(
        missing["_error_code"], "WORKSPACE_DOES_NOT_EXIST",
        "{missing:?}"
    );
    assert!(
        missing["_operation"] == "update" && !missing["_error_message"].starts_with("update: "),
        "{missing:?}"
    );

    let log = log(&job.api).await;
    assert_eq!(count(&log, "POST"), 0, "an update never creates");
    assert_eq!(count(&log, "DELETE"), 0);
    let faults = job.api.stats().await["faults_injected"].clone();
    assert!(
        faults["fail"].as_u64().unwrap() > 0
            && faults["fail_after_commit"].as_u64().unwrap() > 0
            && faults["drop_after_commit"].as_u64().unwrap()
                + faults["drop_before_commit"].as_u64().unwrap()
                > 0,
        "premise: every kind of fault was met: {faults}"
    );
    let stored = job.api.get("/_sandbox/workspaces").await;
    let stored = stored.as_array().unwrap();
    assert_eq!(stored.len(), 30, "nothing created, nothing lost");
    for workspace in stored {
        assert_eq!(
            workspace["datasourceName"], "snowflake-warehouse",
            "{workspace}"
        );
        assert_eq!(workspace["themeName"], "dark", "{workspace}");
    }
}

#[tokio::test]
async fn delete_through_faults_deletes_what_exists_and_marks_the_rest_absent() {
    let doomed = names("gone", 30);
    let kept = names("keep", 10);
    let missing = names("never", 5);
    let mut start = doomed.clone();
    start.extend(kept.clone());
    let job = Job::on(holding_seeded(&start, faulty(), 4).await);
    let mut listed = doomed.clone();
    listed.extend(missing.clone());
    let input = job.dir.write("offboard.csv", &name_csv(&listed));
    let mut args = job.args_with_preflight("results.csv");
    args.extend(["--max-attempts", "30", "--concurrency", "4"].map(str::to_owned));
    let delete = dbprov_with(&["delete", "--yes", &input], &args).await;
    assert_eq!(delete.exit, 0, "{}", delete.stderr);

    let rows = job.rows();
    assert_one_row_per_input_row(&rows, 35);
    let log = log(&job.api).await;
    assert_eq!(
        count(&log, "POST") + count(&log, "PUT"),
        0,
        "a delete only deletes"
    );
    let rows = by_name(&rows);
    for name in &doomed {
        assert_eq!(rows[name]["_status"], "deleted", "{:?}", rows[name]);
    }
    // A missing name is `absent`, unless an answer to it was lost (then dbprov cannot tell
    // whether its own earlier attempt deleted it, and `deleted` is the answer).
    let mut absent = 0;
    for name in &missing {
        let answers: Vec<&Value> = log
            .iter()
            .filter(|e| e["method"] == "DELETE" && e["name"] == name.as_str())
            .map(|e| &e["status"])
            .collect();
        let lost = answers
            .iter()
            .any(|s| s.is_null() || s.as_u64().is_some_and(|s| s >= 500));
        let status = rows[name]["_status"].as_str();
        if lost {
            assert!(
                status == "absent" || status == "deleted",
                "{name}: {status}"
            );
        } else {
            assert_eq!(status, "absent", "{name}: answers {answers:?}");
        }
        absent += usize::from(status == "absent");
    }
    assert!(absent > 0, "premise: some missing name was met cleanly");
    let faults = job.api.stats().await["faults_injected"].clone();
    assert!(
        faults["fail_after_commit"].as_u64().unwrap() > 0
            && faults["drop_after_commit"].as_u64().unwrap() > 0,
        "premise: deletes whose answer was lost after the delete: {faults}"
    );
    assert_eq!(
        held(&job.api).await,
        kept.into_iter().collect(),
        "only the others are left"
    );
}

#[tokio::test]
async fn delete_marks_empty_and_repeated_names_invalid() {
    let job = Job::holding(&names("w", 3)).await;
    let input = job.input("name,note\nw-001,a\n,b\nw-002,c\nw-001,d\n");
    let args = job.args_with_preflight("results.csv");
    let delete = dbprov_with(&["delete", "--yes", &input], &args).await;
    assert_eq!(delete.exit, 1, "{}", delete.stderr);
    let rows = job.rows();
    assert_one_row_per_input_row(&rows, 4);
    let by_row: BTreeMap<&str, &ResultRow> = rows.iter().map(|r| (r["_row"].as_str(), r)).collect();
    assert_eq!(by_row["1"]["_status"], "deleted");
    assert_eq!(by_row["2"]["_status"], "invalid");
    assert_eq!(by_row["2"]["_error_code"], "MISSING_NAME");
    assert_eq!(by_row["3"]["_status"], "deleted");
    assert_eq!(by_row["4"]["_status"], "invalid");
    assert_eq!(by_row["4"]["_error_code"], "DUPLICATE_IN_INPUT");
    assert_eq!(by_row["4"]["note"], "d", "other columns are carried");
    assert_eq!(count(&log(&job.api).await, "DELETE"), 2);
    assert_eq!(held(&job.api).await, BTreeSet::from(["w-003".to_owned()]));
}

#[tokio::test]
async fn a_delete_against_a_wrong_api_root_reports_no_workspace_gone() {
    let job = Job::holding(&["a", "b"]).await;
    let input = job.dir.write("off.csv", "name\na\nb\n");
    // A path the API does not serve: every DELETE meets a 404 about the path.
    let url = format!("{}/v1", job.sandbox.url());
    let args = job_args_to(
        &url,
        &job.dir.key_file(&job.sandbox),
        &job.dir,
        "off.csv.results",
    );
    let run = dbprov_with(&["delete", "--yes", &input], &args).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let rows = job.rows_of("off.csv.results");
    for row in &rows {
        assert_eq!(row["_status"], "failed", "{row:?}");
        assert_eq!(row["_http_status"], "404", "{row:?}");
        assert_eq!(row["_operation"], "delete", "{row:?}");
    }
    assert_eq!(Api::new(&job.sandbox).workspace_names().await.len(), 2);
}

#[tokio::test]
async fn names_with_spaces_ampersands_and_accents_are_deleted_by_their_exact_name() {
    let names = ["Acme & Sons", "café=1", "a+b", "x?y#z", "Zoë Ltd"];
    let job = Job::holding(&names).await;
    let mut csv = String::from("name\n");
    for name in names {
        csv.push_str(&format!("\"{name}\"\n"));
    }
    csv.push_str("acme & sons\n"); // another name: the API's names are exact
    let input = job.dir.write("off.csv", &csv);
    let run = job
        .run_to(Some("out.csv"), &["delete", "--yes", &input])
        .await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let rows = job.rows_of("out.csv");
    let mut expected: BTreeMap<String, String> = names
        .iter()
        .map(|n| (n.to_string(), "deleted".to_owned()))
        .collect();
    expected.insert("acme & sons".into(), "absent".into());
    assert_eq!(statuses(&rows), expected);
    assert!(Api::new(&job.sandbox).workspace_names().await.is_empty());
}

#[tokio::test]
async fn delete_asks_like_rollback_and_sends_nothing_without_a_yes() {
    let job = Job::holding(&["t-0001", "t-0002"]).await;
    let input = job.input("name\nt-0001\nt-0002\n");
    // No terminal, no --yes: refused, nothing sent, no results file left behind.
    let run = job.run(&["delete", &input]).await;
    assert_eq!(run.exit, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("give --yes to confirm"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("Delete the workspaces named by the 2 rows of"),
        "{}",
        run.stderr
    );
    assert_eq!(job.requests().await, 0);
    assert!(!job.dir.path(crate::fixture::RESULTS).exists());
    // With --yes it deletes; a dry run asks nothing.
    let dry = job
        .run_to(Some("dry.csv"), &["delete", &input, "--dry-run"])
        .await;
    assert_eq!(dry.exit, 0, "{}", dry.stderr);
    let run = job.run(&["delete", "--yes", &input]).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    assert_eq!(job.api.workspace_names().await.len(), 0);
    // --yes belongs to delete (and rollback) alone.
    let refused = job
        .run_to(Some("other.csv"), &["run", "--yes", &input])
        .await;
    assert_eq!(refused.exit, 2, "{}", refused.stderr);
}

#[tokio::test]
async fn an_update_of_the_themes_changes_themes_and_keeps_the_llm_and_metric_settings() {
    let job = Job::new().await;
    let created = job.input(
        "name,connectionType,llmName,isEnableMetricSuggestions,themeName\n\
         a,MULTI_DATAMART,gpt-4o,true,default\n",
    );
    assert_eq!(job.run(&["run", &created]).await.exit, 0);
    let themes = job.dir.write(
        "themes.csv",
        "name,connectionType,themeName\na,MULTI_DATAMART,corporate\n",
    );
    let run = job.run_to(Some("updated.csv"), &["update", &themes]).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    // Said before the first PUT: what it sets, and what it leaves.
    let said = run
        .stderr
        .lines()
        .find(|l| l.contains("each PUT sets"))
        .unwrap_or_else(|| panic!("{}", run.stderr));
    assert!(
        said.contains("sets connectionType, themeName as the file's rows say"),
        "{said}"
    );
    assert!(
        said.contains("no column for datasourceName, datamartName, llmName"),
        "{said}"
    );
    assert!(said.contains("repoints every metric"), "{said}");
    let stored = job.api.get("/_sandbox/workspaces").await;
    assert_eq!(
        stored,
        serde_json::json!([{
            "name": "a",
            "connectionType": "MULTI_DATAMART",
            "llmName": "gpt-4o",
            "isEnableMetricSuggestions": true,
            "themeName": "corporate"
        }]),
        "only the theme changed"
    );
}
