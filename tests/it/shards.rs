//! Shards of one input file: together they cover every row once, each writes its own
//! results, they share the API's limit, and a shard's retry command stays a shard's.

use std::collections::BTreeMap;
use std::time::Duration;

use dbprov::sandbox::{FaultConfig, RateLimitHeaders, WindowLimit};

use crate::common::{JobDir, assert_all_created, complete_records, tenants, workspace_counts};
use crate::fixture::Job;
use crate::process::{command, dbprov, dbprov_with, run_to_end, spawn_dbprov, start};

#[tokio::test]
async fn shards_without_o_write_their_own_default_results_files() {
    let job = Job::new().await;
    let input = job.input(&tenants("t", 200));
    let key = job.dir.key_file(&job.sandbox);
    let url = job.sandbox.url();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for index in 0..4 {
        let shard = format!("{index}/4");
        let mut cmd = command(&[
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
        cmd.current_dir(job.dir.path(""));
        let run = run_to_end(cmd).await;
        assert_eq!(run.exit, 0, "shard {shard}: {}", run.stderr);
        let name = format!("in.shard-{index}-of-4.results.csv");
        assert!(job.dir.path(&name).exists(), "{name}: {}", run.stderr);
        for row in job.dir.results(&name).1 {
            *seen.entry(row["_row"].clone()).or_default() += 1;
        }
    }
    assert!(
        !job.dir.path("in.results.csv").exists(),
        "no shard writes the unsharded default"
    );
    assert_eq!(seen.len(), 200, "every row in some shard");
    assert!(seen.values().all(|n| *n == 1), "and in one only");
    assert_eq!(workspace_counts(&job.api).await.len(), 200);
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
    let job = Job::new().await;
    let mut csv = tenants("t", 20);
    for i in 0..20 {
        csv.push_str(&format!("bad-{i},DATASOURCE,no-such-source,\n"));
    }
    let input = job.dir.write("t.csv", &csv);
    let mut args = job.args("r.csv");
    let summary = job.dir.path("s.json");
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
    let job = Job::new().await;
    let mut csv = tenants("t", 300);
    csv.push_str(",MULTI_DATAMART,,\n,DATAMART,,\n"); // rows without a name go by number
    let input = job.input(&csv);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut sizes = Vec::new();
    for index in 0..3 {
        let output = format!("shard-{index}.csv");
        let mut args = job.args(&output);
        args.extend(["--shard".to_owned(), format!("{index}/3")]);
        let run = dbprov_with(&["run", &input], &args).await;
        assert!(run.exit <= 1, "{}", run.stderr);
        let (_, rows) = job.dir.results(&output);
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
    let held = workspace_counts(&job.api).await;
    assert_eq!(held.len(), 300);

    // JOB_COMPLETION_INDEX gives the index when --shard names only the count.
    let output = job.dir.path("indexed.csv");
    let key_file = job.dir.key_file(&job.sandbox);
    let indexed = start(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_dbprov"))
            .args([
                "run",
                &input,
                "-o",
                output.to_str().unwrap(),
                "--base-url",
                &job.sandbox.url(),
            ])
            .args(["--api-key-file", &key_file, "--shard", "3", "--dry-run"])
            .env("JOB_COMPLETION_INDEX", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped()),
    )
    .wait_with_output()
    .await
    .unwrap();
    assert_eq!(indexed.status.code(), Some(1));
    assert_eq!(job.rows_of("indexed.csv").len(), sizes[1]);
}

#[tokio::test]
async fn four_shards_behind_one_limit_share_it_without_a_failure() {
    // With some latency, a 429 (the limit is checked first) comes back before the
    // successes of the requests sent just before it: those still show the API is taking
    // requests, and no shard stops for a limit that refuses "every request".
    let job = Job::with_faults(FaultConfig {
        rate_limit: Some(WindowLimit {
            requests: 20,
            window: Duration::from_secs(1),
        }),
        rate_limit_headers: RateLimitHeaders::Draft6,
        latency: Duration::from_millis(20),
        ..FaultConfig::default()
    })
    .await;
    let input = job.input(&tenants("t", 240));
    let key = job.dir.key_file(&job.sandbox);
    let mut shards = Vec::new();
    for i in 0..4 {
        let output = job.dir.path(&format!("shard-{i}.csv"));
        let shard = format!("{i}/4");
        let args = [
            "run",
            &input,
            "-o",
            output.to_str().unwrap(),
            "--base-url",
            &job.sandbox.url(),
            "--api-key-file",
            &key,
            "--rate",
            "1000/s",
            "--concurrency",
            "64",
            "--max-retry-after",
            "8s",
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
        rows.extend(job.dir.results(&format!("shard-{i}.csv")).1);
    }
    assert_all_created(&job.sandbox, &rows, 240).await;
}
