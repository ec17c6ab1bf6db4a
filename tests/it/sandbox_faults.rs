//! The sandbox's faults: 500s before and after commit, dropped connections, latency, outages,
//! uniqueness under concurrency, and seeded reproducibility.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dbprov::sandbox::{self, FaultConfig, SandboxConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{Answer, Api, holding, numbered, plain_sandbox, sandbox_with, workspace};
use crate::ports::sandbox_on_reserved_port;
use crate::process::{close_at_once, start_std};

#[tokio::test]
async fn fail_rate_answers_500_without_creating() {
    let sandbox = sandbox_with(FaultConfig {
        fail_rate: 1.0,
        ..FaultConfig::default()
    })
    .await;
    let api = Api::new(&sandbox);
    for i in 0..5 {
        let answer = api.create(&workspace(&format!("w{i}"))).await;
        assert_eq!(answer.status(), Some(500));
        assert_eq!(answer.code().as_deref(), Some("INTERNAL_SERVER_ERROR"));
    }
    assert!(api.workspace_names().await.is_empty());
    assert_eq!(api.stats().await["faults_injected"]["fail"], 5);
}

#[tokio::test]
async fn fail_after_commit_really_leaves_the_workspace_behind() {
    let sandbox = sandbox_with(FaultConfig {
        fail_after_commit_rate: 1.0,
        ..FaultConfig::default()
    })
    .await;
    let api = Api::new(&sandbox);
    let first = api.create(&workspace("Acme")).await;
    assert_eq!(first.status(), Some(500));
    assert_eq!(first.code().as_deref(), Some("INTERNAL_SERVER_ERROR"));
    assert_eq!(api.workspace_names().await, ["Acme"]);
    // A retry meets the workspace the failed attempt created.
    let retry = api.create(&workspace("Acme")).await;
    assert_eq!(
        retry.code().as_deref(),
        Some("WORKSPACE_NAME_ALREADY_EXISTS")
    );
    assert_eq!(api.stats().await["faults_injected"]["fail_after_commit"], 1);
}

#[tokio::test]
async fn drop_rate_closes_connections_without_an_answer_half_of_them_after_creating() {
    let sandbox = sandbox_with(FaultConfig {
        drop_rate: 1.0,
        ..FaultConfig::default()
    })
    .await;
    let api = Api::new(&sandbox);
    let names: Vec<String> = (0..40).map(|i| format!("w{i}")).collect();
    for name in &names {
        assert_eq!(
            api.create(&workspace(name)).await,
            Answer::Dropped,
            "{name}"
        );
    }
    let stats = api.stats().await;
    let faults = &stats["faults_injected"];
    let after = faults["drop_after_commit"].as_u64().unwrap();
    let before = faults["drop_before_commit"].as_u64().unwrap();
    assert_eq!(before + after, 40);
    assert!(
        after > 0 && before > 0,
        "both kinds of drop happen: {faults}"
    );
    assert_eq!(stats["by_status"], json!({}), "nothing was answered");
    // Exactly the after-commit drops left a workspace, and the log says which.
    let created = api.workspace_names().await;
    assert_eq!(created.len() as u64, after);
    let log = api.get("/_sandbox/requests").await;
    let mut dropped_after: Vec<String> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["fault"] == "drop_after_commit")
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    dropped_after.sort();
    let mut created_sorted = created.clone();
    created_sorted.sort();
    assert_eq!(dropped_after, created_sorted);
}

#[tokio::test]
async fn latency_delays_every_answer_by_at_least_its_value() {
    let sandbox = sandbox_with(FaultConfig {
        latency: Duration::from_millis(150),
        jitter: Duration::from_millis(50),
        ..FaultConfig::default()
    })
    .await;
    let api = Api::new(&sandbox);
    for i in 0..3 {
        let started = Instant::now();
        let answer = api.create(&workspace(&format!("w{i}"))).await;
        assert_eq!(answer.status(), Some(200));
        assert!(started.elapsed() >= Duration::from_millis(150));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_64_concurrent_creates_of_one_name_exactly_one_succeeds() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let mut tasks = tokio::task::JoinSet::new();
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(64));
    for _ in 0..64 {
        let (api, start) = (api.clone(), start.clone());
        tasks.spawn(async move {
            start.wait().await;
            api.create(&workspace("Contested")).await
        });
    }
    let answers = tasks.join_all().await;
    let ok = answers.iter().filter(|a| a.status() == Some(200)).count();
    let taken = answers
        .iter()
        .filter(|a| a.code().as_deref() == Some("WORKSPACE_NAME_ALREADY_EXISTS"))
        .count();
    assert_eq!((ok, taken), (1, 63));
    assert_eq!(api.workspace_names().await, ["Contested"]);
}

/// Sends `n` sequential creates and returns what each got, dropped ones included.
async fn fault_sequence(seed: u64, n: usize) -> (Vec<Option<u16>>, Value) {
    let sandbox = sandbox::spawn(SandboxConfig {
        seed: Some(seed),
        faults: FaultConfig {
            fail_rate: 0.2,
            fail_after_commit_rate: 0.2,
            drop_rate: 0.2,
            ..FaultConfig::default()
        },
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let api = Api::new(&sandbox);
    let mut seen = Vec::new();
    for i in 0..n {
        seen.push(api.create(&workspace(&format!("w{i}"))).await.status());
    }
    (seen, api.get("/_sandbox/workspaces").await)
}

#[tokio::test]
async fn the_same_seed_gives_the_same_fault_sequence() {
    let (first, first_workspaces) = fault_sequence(42, 60).await;
    let (second, second_workspaces) = fault_sequence(42, 60).await;
    assert_eq!(first, second);
    assert_eq!(first_workspaces, second_workspaces);
    for status in [None, Some(200), Some(500)] {
        assert!(first.contains(&status), "{status:?} occurs in {first:?}");
    }
    let (other, _) = fault_sequence(43, 60).await;
    assert_ne!(first, other);
}

#[test]
fn impossible_fault_rates_are_refused() {
    let faults = FaultConfig {
        fail_rate: 0.7,
        drop_rate: 0.7,
        ..FaultConfig::default()
    };
    assert!(faults.validate().unwrap_err().contains("add up to"));
}

#[test]
fn the_command_refuses_bad_fault_flags_with_exit_2() {
    let output = start_std(
        Command::new(env!("CARGO_BIN_EXE_dbprov"))
            .args(["sandbox", "--listen", "127.0.0.1:0", "--fail-rate", "1.5"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
    .and_then(|sandbox| sandbox.wait_with_output())
    .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--fail-rate must be between 0 and 1"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}

#[tokio::test]
async fn an_outage_refuses_connections_and_the_sandbox_comes_back_with_its_state() {
    // On a port no other test can take while it is down.
    let sandbox = sandbox_on_reserved_port().await;
    let api = Api::new(&sandbox);
    assert_eq!(api.create(&workspace("before")).await.status(), Some(200));
    // A keep-alive connection open when the sandbox goes down.
    let mut open = tokio::net::TcpStream::connect(sandbox.addr())
        .await
        .unwrap();
    let request = format!(
        "GET /_sandbox/stats HTTP/1.1\r\nHost: {}\r\n\r\n",
        sandbox.addr()
    );
    open.write_all(request.as_bytes()).await.unwrap();
    let mut buffer = vec![0; 4096];
    assert!(open.read(&mut buffer).await.unwrap() > 0, "answered");

    // No child started meanwhile keeps a copy of the listening socket open.
    close_at_once(|| sandbox.go_down());
    assert!(sandbox.is_down());
    // Refused at once: connecting without yielding gives no task a chance to close it later.
    let refused = std::net::TcpStream::connect(sandbox.addr()).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    // A fresh client, so that no pooled connection stands in for a new one.
    let fresh = Api::new(&sandbox);
    let error = fresh
        .client
        .get(format!("{}/_sandbox/stats", fresh.base))
        .send()
        .await
        .unwrap_err();
    assert!(error.is_connect(), "{error:?}");
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match open.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the open connection is closed");

    sandbox.come_back().await.unwrap();
    assert!(!sandbox.is_down());
    let fresh = Api::new(&sandbox);
    assert_eq!(fresh.base, api.base, "the same address");
    assert_eq!(fresh.workspace_names().await, ["before"]);
    assert_eq!(fresh.create(&workspace("after")).await.status(), Some(200));
    assert_eq!(fresh.workspace_names().await, ["before", "after"]);
    assert_eq!(sandbox.stats().requests_total, 2);
    // Coming back while up changes nothing.
    sandbox.come_back().await.unwrap();
    assert_eq!(fresh.stats().await["workspaces"], 2);
}

#[tokio::test]
async fn a_delete_failing_after_commit_answers_500_with_the_workspace_gone() {
    let sandbox = holding(
        &numbered(2),
        FaultConfig {
            fail_after_commit_rate: 1.0,
            ..FaultConfig::default()
        },
    )
    .await;
    let api = Api::new(&sandbox);
    let answer = api.delete("w00").await;
    assert_eq!(answer.status(), Some(500));
    assert_eq!(answer.code().as_deref(), Some("INTERNAL_SERVER_ERROR"));
    assert_eq!(api.workspace_names().await, ["w01"]);
    // A retry meets the delete the failed attempt made.
    let retry = api.delete("w00").await;
    assert_eq!(retry.code().as_deref(), Some("WORKSPACE_DOES_NOT_EXIST"));
    // A list has nothing to commit: a plain 500.
    assert_eq!(api.list(None).await.status(), Some(500));
    let stats = api.stats().await;
    assert_eq!(stats["faults_injected"]["fail_after_commit"], 1);
    assert_eq!(stats["faults_injected"]["fail"], 1);
    assert_eq!(
        (&stats["workspaces"], &stats["deleted"]),
        (&json!(1), &json!(1))
    );
}

#[tokio::test]
async fn a_delete_failing_before_commit_answers_500_with_the_workspace_still_there() {
    let sandbox = holding(
        &numbered(2),
        FaultConfig {
            fail_rate: 1.0,
            ..FaultConfig::default()
        },
    )
    .await;
    let api = Api::new(&sandbox);
    for _ in 0..3 {
        let answer = api.delete("w00").await;
        assert_eq!(answer.status(), Some(500));
        assert_eq!(answer.code().as_deref(), Some("INTERNAL_SERVER_ERROR"));
    }
    assert_eq!(api.list(None).await.status(), Some(500));
    assert_eq!(api.workspace_names().await, ["w00", "w01"]);
    let stats = api.stats().await;
    assert_eq!(stats["faults_injected"]["fail"], 4);
    assert_eq!(stats["deleted"], 0);
}

#[tokio::test]
async fn dropped_deletes_get_no_answer_and_half_of_them_were_applied() {
    let names = numbered(20);
    let sandbox = holding(
        &names,
        FaultConfig {
            drop_rate: 1.0,
            ..FaultConfig::default()
        },
    )
    .await;
    let api = Api::new(&sandbox);
    for name in &names {
        assert_eq!(api.delete(name).await, Answer::Dropped, "{name}");
    }
    let stats = api.stats().await;
    let faults = &stats["faults_injected"];
    let after = faults["drop_after_commit"].as_u64().unwrap();
    let before = faults["drop_before_commit"].as_u64().unwrap();
    assert_eq!(before + after, 20);
    assert!(after > 0 && before > 0, "some applied, some not: {faults}");
    assert_eq!(stats["by_status"], json!({}), "nothing was answered");
    assert_eq!(stats["deleted"].as_u64(), Some(after));
    // Exactly the after-commit drops deleted, and the log says which.
    let log = api.get("/_sandbox/requests").await;
    let applied: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["fault"] == "drop_after_commit")
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    let kept: Vec<String> = names
        .iter()
        .filter(|n| !applied.contains(&n.as_str()))
        .cloned()
        .collect();
    assert_eq!(api.workspace_names().await, kept);
    assert_eq!(stats["workspaces"].as_u64(), Some(before));
}

#[tokio::test]
async fn lists_go_through_latency_and_the_fault_plan_like_writes() {
    let sandbox = holding(
        &numbered(3),
        FaultConfig {
            latency: Duration::from_millis(120),
            drop_rate: 0.5,
            ..FaultConfig::default()
        },
    )
    .await;
    let api = Api::new(&sandbox);
    let mut seen = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let answer = api.list(Some(1)).await;
        assert!(started.elapsed() >= Duration::from_millis(120));
        seen.push(answer.status());
    }
    assert!(
        seen.contains(&None) && seen.contains(&Some(200)),
        "{seen:?}"
    );
    let faults = &api.stats().await["faults_injected"];
    let dropped = faults["drop_before_commit"].as_u64().unwrap()
        + faults["drop_after_commit"].as_u64().unwrap();
    assert_eq!(
        dropped as usize,
        seen.iter().filter(|s| s.is_none()).count()
    );
}
