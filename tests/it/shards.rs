//! Shards of one input file: together they cover every row once, each writes its own
//! results, they share the API's limit, and a shard's retry command stays a shard's.

use std::collections::BTreeMap;
use std::time::Duration;

use dbprov::sandbox::{FaultConfig, RateLimitHeaders, WindowLimit};

use crate::common::{
    Api, JobDir, assert_all_created, complete_records, holding_names, job_args, plain_sandbox,
    sandbox_with, tenants, workspace_counts,
};
use crate::process::{command, dbprov, dbprov_with, run_to_end, spawn_dbprov};

#[tokio::test]
async fn shards_without_o_write_their_own_default_results_files() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write("in.csv", &tenants("t", 200));
    let key = dir.key_file(&sandbox);
    let url = sandbox.url();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for index in 0..4 {
        let shard = format!("{index}/4");
        let mut job = command(&[
            "run",
            &input,
            "--shard",
            &shard,
            "--base-url",
            &url,
            "--api-key-file",
            &key,
            "--rate",
            "unlimited",
        ]);
        job.current_dir(dir.path(""));
        let run = run_to_end(job).await;
        assert_eq!(run.exit, 0, "shard {shard}: {}", run.stderr);
        let name = format!("in.shard-{index}-of-4.results.csv");
        assert!(dir.path(&name).exists(), "{name}: {}", run.stderr);
        for row in dir.results(&name).1 {
            *seen.entry(row["_row"].clone()).or_default() += 1;
        }
    }
    assert!(
        !dir.path("in.results.csv").exists(),
        "no shard writes the unsharded default"
    );
    assert_eq!(seen.len(), 200, "every row in some shard");
    assert!(seen.values().all(|n| *n == 1), "and in one only");
    assert_eq!(workspace_counts(&api).await.len(), 200);
}

#[tokio::test]
async fn shards_are_balanced_for_names_over_a_small_alphabet() {
    // a e i m q u: letters whose two low bits are the same.
    let letters = ['a', 'e', 'i', 'm', 'q', 'u'];
    let dir = JobDir::new();
    let mut csv = String::from("name,connectionType\n");
    for i in 0..2000usize {
        let mut name = String::new();
        let mut k = i;
        for _ in 0..5 {
            name.push(letters[k % 6]);
            k /= 6;
        }
        csv.push_str(&format!("{name},MULTI_DATAMART\n"));
    }
    let input = dir.write("in.csv", &csv);
    let mut sizes = Vec::new();
    for index in 0..4 {
        let output = dir.path(&format!("plan-{index}.csv"));
        let shard = format!("{index}/4");
        let plan = dbprov(&[
            "run",
            &input,
            "--dry-run",
            "--sandbox",
            "--shard",
            &shard,
            "-o",
            output.to_str().unwrap(),
        ])
        .await;
        assert_eq!(plan.exit, 0, "{}", plan.stderr);
        sizes.push(complete_records(&output).len());
    }
    assert_eq!(sizes.iter().sum::<usize>(), 2000);
    assert!(
        sizes.iter().all(|n| *n >= 300),
        "no shard below 300 of 2000: {sizes:?}"
    );
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
async fn four_shards_behind_one_limit_share_it_without_a_failure() {
    let sandbox = sandbox_with(FaultConfig {
        rate_limit: Some(WindowLimit {
            requests: 20,
            window: Duration::from_secs(1),
        }),
        rate_limit_headers: RateLimitHeaders::Draft6,
        ..FaultConfig::default()
    })
    .await;
    let dir = JobDir::new();
    let input = dir.write("in.csv", &tenants("t", 120));
    let key = dir.key_file(&sandbox);
    let mut shards = Vec::new();
    for i in 0..4 {
        let output = dir.path(&format!("shard-{i}.csv"));
        let shard = format!("{i}/4");
        let args = [
            "run",
            &input,
            "-o",
            output.to_str().unwrap(),
            "--base-url",
            &sandbox.url(),
            "--api-key-file",
            &key,
            "--rate",
            "200/s",
            "--shard",
            &shard,
        ];
        shards.push(spawn_dbprov(&args));
    }
    let mut rows = Vec::new();
    for (i, shard) in shards.into_iter().enumerate() {
        let end = shard.wait_with_output().await.unwrap();
        let stderr = String::from_utf8_lossy(&end.stderr);
        assert_eq!(end.status.code(), Some(0), "shard {i}: {stderr}");
        rows.extend(dir.results(&format!("shard-{i}.csv")).1);
    }
    assert_all_created(&sandbox, &rows, 120).await;
}
