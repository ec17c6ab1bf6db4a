//! The lifecycle commands where they could report wrongly: a wrong API root, odd names,
//! a results file of another command, a file that cannot say where its rows came from.

use crate::common::{JobDir, ResultRow, holding_names, job_args, job_args_to, tenants};
use crate::hostile::{Hostile, HostileState};
use crate::process::{dbprov, dbprov_with};

#[tokio::test]
async fn a_name_the_list_shows_taken_counts_towards_max_failures_with_on_exists_fail() {
    let sandbox = holding_names(&["t-0001", "t-0002", "t-0003"]).await;
    let dir = JobDir::new();
    let input = dir.write("t.csv", &tenants("t", 40));
    let mut args = job_args(&sandbox, &dir, "r.csv");
    args.retain(|a| a != "--no-preflight");
    let flags = ["--on-exists", "fail", "--max-failures", "2"];
    args.extend(flags.map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 3, "{}", run.stderr);
    let (_, rows) = dir.results("r.csv");
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

#[tokio::test]
async fn a_failed_list_never_shows_a_part_of_the_key() {
    let key = "9f3a6c1e-4b2d-4e8f-a1b2-c3d4e5f60718";
    let hostile = Hostile::start(HostileState {
        list_502_echoing: Some(key.to_owned()),
        ..HostileState::default()
    })
    .await;
    let dir = JobDir::new();
    let input = dir.write("t.csv", &tenants("t", 2));
    let key_file = dir.private_key(&format!("{key}\n"));
    let mut args = job_args_to(&hostile.url, &key_file, &dir, "r.csv");
    args.retain(|a| a != "--no-preflight");
    args.extend(["--max-attempts", "2", "-v"].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    assert!(run.stderr.contains("preflight"), "{}", run.stderr);
    assert!(!run.stderr.contains(&key[..12]), "{}", run.stderr);
}

#[tokio::test]
async fn a_shards_retry_command_gives_a_share_of_failures_as_rows() {
    let sandbox = holding_names(&[]).await;
    let dir = JobDir::new();
    let mut csv = tenants("t", 20);
    for i in 0..20 {
        csv.push_str(&format!("bad-{i},DATASOURCE,no-such-source,\n"));
    }
    let input = dir.write("t.csv", &csv);
    let mut args = job_args(&sandbox, &dir, "r.csv");
    let summary = dir.path("s.json");
    args.extend(
        [
            "--shard",
            "0/2",
            "--max-failures",
            "90%",
            "--summary-json",
            summary.to_str().unwrap(),
        ]
        .map(str::to_owned),
    );
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let command = summary["retry_command"].as_str().unwrap().to_owned();
    assert!(!command.contains('%'), "{command}");
    // And the command works as printed.
    let words: Vec<String> = command
        .split(' ')
        .skip(1)
        .map(|w| w.trim_matches('\'').to_owned())
        .collect();
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    let retry = dbprov(&refs).await;
    assert_eq!(retry.exit, 1, "{}", retry.stderr);
}
