//! The sandbox over real HTTP: every documented status, code and envelope, each fault,
//! uniqueness under concurrency, seeded reproducibility, and the command line.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dbprov::sandbox::{
    self, Catalog, FaultConfig, RateLimitHeaders, Sandbox, SandboxConfig, WindowLimit,
};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{
    Answer, Api, holding, listed, numbered, plain_sandbox, sandbox_with, workspace,
};

#[tokio::test]
async fn create_answers_200_with_the_documented_envelope() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let answer = api.create(&workspace("Sales Analytics")).await;
    assert_eq!(answer.status(), Some(200));
    assert_eq!(
        answer.body(),
        &json!({"data": {"name": "Sales Analytics"}, "error": null})
    );
    assert_eq!(api.workspace_names().await, ["Sales Analytics"]);
}

#[tokio::test]
async fn every_connection_type_with_its_required_field_is_accepted() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let bodies = [
        json!({"name": "a", "connectionType": "DATASOURCE", "datasourceName": "mysql-orders"}),
        json!({"name": "b", "connectionType": "DATAMART", "datamartName": "sales-mart"}),
        json!({"name": "c", "connectionType": "MULTI_DATASOURCE"}),
        json!({"name": "d", "connectionType": "MULTI_DATAMART"}),
        json!({
            "name": "e", "connectionType": "MULTI_DATAMART", "llmName": "gpt-4o",
            "aiCopilotLlms": ["claude-sonnet", "gemini-pro"], "isEnableMetricSuggestions": true,
            "isEnableMetricSummary": true, "summaryType": "custom",
            "customSummaryPrompt": "Summarise weekly", "themeName": "dark"
        }),
    ];
    for body in &bodies {
        let answer = api.create(body).await;
        assert_eq!(answer.status(), Some(200), "{body}: {answer:?}");
    }
    let stored = api.get("/_sandbox/workspaces").await;
    assert_eq!(stored, Value::Array(bodies.to_vec()));
}

#[tokio::test]
async fn a_missing_or_wrong_key_is_401_invalid_data_app_api_key() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let body = workspace("x").to_string().into_bytes();
    for key in [None, Some("dbn_live_wrong"), Some("")] {
        let answer = api
            .send(Method::POST, key, Some("application/json"), body.clone())
            .await;
        assert_eq!(answer.status(), Some(401), "key {key:?}");
        assert_eq!(
            answer.body()["error"],
            json!({
                "code": "INVALID_DATA_APP_API_KEY",
                "message": answer.body()["error"]["message"],
                "status": 401
            })
        );
        assert_eq!(answer.body()["data"], Value::Null);
    }
    // A Basic header with the right key is not a Bearer token either.
    let answer = api
        .client
        .post(format!("{}/api/v2/workspace", api.base))
        .basic_auth(&api.key, None::<&str>)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    assert!(api.workspace_names().await.is_empty());
}

#[tokio::test]
async fn malformed_or_incomplete_bodies_are_400_invalid_request_body() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let cases: &[(&str, Vec<u8>)] = &[
        ("not JSON", b"name=a".to_vec()),
        ("empty body", Vec::new()),
        ("a JSON array", b"[]".to_vec()),
        (
            "missing name",
            br#"{"connectionType":"MULTI_DATAMART"}"#.to_vec(),
        ),
        (
            "blank name",
            br#"{"name":"  ","connectionType":"MULTI_DATAMART"}"#.to_vec(),
        ),
        ("missing connectionType", br#"{"name":"a"}"#.to_vec()),
        (
            "unknown connectionType",
            br#"{"name":"a","connectionType":"DATASORCE"}"#.to_vec(),
        ),
        (
            "DATASOURCE without datasourceName",
            br#"{"name":"a","connectionType":"DATASOURCE"}"#.to_vec(),
        ),
        (
            "DATAMART without datamartName",
            br#"{"name":"a","connectionType":"DATAMART","datasourceName":"postgres-main"}"#
                .to_vec(),
        ),
        (
            "metric summary without summaryType",
            br#"{"name":"a","connectionType":"MULTI_DATAMART","isEnableMetricSummary":true}"#
                .to_vec(),
        ),
        (
            "custom summary without prompt",
            br#"{"name":"a","connectionType":"MULTI_DATAMART","summaryType":"custom"}"#.to_vec(),
        ),
        (
            "unknown summaryType",
            br#"{"name":"a","connectionType":"MULTI_DATAMART","summaryType":"haiku"}"#.to_vec(),
        ),
        (
            "wrong JSON type for name",
            br#"{"name":42,"connectionType":"MULTI_DATAMART"}"#.to_vec(),
        ),
        (
            "wrong JSON type for a boolean",
            br#"{"name":"a","connectionType":"MULTI_DATAMART","isEnableMetricSuggestions":"yes"}"#
                .to_vec(),
        ),
        (
            "unknown field",
            br#"{"name":"a","connectionType":"MULTI_DATAMART","colour":"red"}"#.to_vec(),
        ),
        (
            "invalid UTF-8",
            b"{\"name\":\"\xff\xfe\",\"connectionType\":\"MULTI_DATAMART\"}".to_vec(),
        ),
    ];
    for (what, body) in cases {
        let answer = api
            .send(
                Method::POST,
                Some(&api.key),
                Some("application/json"),
                body.clone(),
            )
            .await;
        assert_eq!(answer.status(), Some(400), "{what}: {answer:?}");
        assert_eq!(
            answer.code().as_deref(),
            Some("INVALID_REQUEST_BODY"),
            "{what}"
        );
        assert_eq!(answer.body()["error"]["status"], 400, "{what}");
        assert!(
            !answer.body()["error"]["message"]
                .as_str()
                .unwrap()
                .is_empty(),
            "{what}: a message says why"
        );
        assert_eq!(answer.body()["data"], Value::Null, "{what}");
    }
    assert!(api.workspace_names().await.is_empty());
}

#[tokio::test]
async fn a_missing_content_type_is_400_and_an_oversized_body_413_both_enveloped() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let body = workspace("a").to_string().into_bytes();
    let answer = api
        .send(Method::POST, Some(&api.key), None, body.clone())
        .await;
    assert_eq!(answer.status(), Some(400));
    assert_eq!(answer.code().as_deref(), Some("INVALID_REQUEST_BODY"));
    let answer = api
        .send(Method::POST, Some(&api.key), Some("text/plain"), body)
        .await;
    assert_eq!(answer.status(), Some(400));

    let huge =
        json!({"name": "a".repeat(sandbox::MAX_BODY_BYTES), "connectionType": "MULTI_DATAMART"});
    let answer = api.create(&huge).await;
    assert_eq!(answer.status(), Some(413));
    assert_eq!(answer.code().as_deref(), Some("INVALID_REQUEST_BODY"));
    assert_eq!(answer.body()["error"]["status"], 413);

    // A charset parameter is still JSON.
    let answer = api
        .send(
            Method::POST,
            Some(&api.key),
            Some("application/json; charset=utf-8"),
            workspace("b").to_string().into_bytes(),
        )
        .await;
    assert_eq!(answer.status(), Some(200));
    assert_eq!(api.workspace_names().await, ["b"]);
}

#[tokio::test]
async fn unknown_references_get_their_own_codes() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let cases = [
        (
            json!({"name": "a", "connectionType": "DATASOURCE", "datasourceName": "oracle-old"}),
            "INVALID_DATASOURCE_NAME",
        ),
        (
            json!({"name": "a", "connectionType": "DATAMART", "datamartName": "hr-mart"}),
            "INVALID_DATAMART_NAME",
        ),
        (
            json!({"name": "a", "connectionType": "MULTI_DATASOURCE", "llmName": "gpt-2"}),
            "INVALID_LLM_NAME",
        ),
        (
            json!({"name": "a", "connectionType": "MULTI_DATASOURCE", "aiCopilotLlms": ["gpt-4o", "eliza"]}),
            "INVALID_AI_COPILOT_LLMS",
        ),
        (
            json!({"name": "a", "connectionType": "MULTI_DATASOURCE", "themeName": "neon"}),
            "INVALID_THEME_NAME",
        ),
    ];
    for (body, code) in cases {
        let answer = api.create(&body).await;
        assert_eq!(answer.status(), Some(400), "{body}");
        assert_eq!(answer.code().as_deref(), Some(code), "{body}");
    }
    assert!(api.workspace_names().await.is_empty());
}

#[tokio::test]
async fn the_catalog_can_be_replaced() {
    let sandbox = sandbox::spawn(SandboxConfig {
        catalog: Catalog {
            datasources: vec!["clickhouse-eu".into()],
            ..Catalog::default()
        },
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let api = Api::new(&sandbox);
    let ours =
        json!({"name": "a", "connectionType": "DATASOURCE", "datasourceName": "clickhouse-eu"});
    assert_eq!(api.create(&ours).await.status(), Some(200));
    let answer = api.create(&workspace("b")).await;
    assert_eq!(answer.code().as_deref(), Some("INVALID_DATASOURCE_NAME"));
}

#[tokio::test]
async fn a_taken_name_is_workspace_name_already_exists_and_names_are_case_sensitive() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    assert_eq!(api.create(&workspace("Acme")).await.status(), Some(200));
    let again = api.create(&workspace("Acme")).await;
    assert_eq!(again.status(), Some(400));
    assert_eq!(
        again.code().as_deref(),
        Some("WORKSPACE_NAME_ALREADY_EXISTS")
    );
    assert_eq!(api.create(&workspace("acme")).await.status(), Some(200));
    assert_eq!(api.workspace_names().await, ["Acme", "acme"]);
}

#[tokio::test]
async fn put_replaces_an_existing_workspace_and_refuses_an_unknown_name_with_400() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    assert_eq!(api.create(&workspace("Acme")).await.status(), Some(200));
    let changed =
        json!({"name": "Acme", "connectionType": "DATAMART", "datamartName": "finance-mart"});
    let answer = api.update(&changed).await;
    assert_eq!(answer.status(), Some(200));
    assert_eq!(
        answer.body(),
        &json!({"data": {"name": "Acme"}, "error": null})
    );
    assert_eq!(api.get("/_sandbox/workspaces").await, json!([changed]));

    let unknown = api.update(&workspace("Globex")).await;
    assert_eq!(unknown.status(), Some(400));
    assert_eq!(unknown.code().as_deref(), Some("WORKSPACE_DOES_NOT_EXIST"));
    assert_eq!(unknown.body()["error"]["status"], 400);
    assert_eq!(
        unknown.body()["error"]["message"],
        "no workspace named 'Globex' exists"
    );
    assert_eq!(api.workspace_names().await, ["Acme"], "nothing created");
    // PUT validates like POST.
    let bad = json!({"name": "Acme", "connectionType": "DATAMART", "datamartName": "nope"});
    assert_eq!(
        api.update(&bad).await.code().as_deref(),
        Some("INVALID_DATAMART_NAME")
    );
    assert_eq!(api.workspace_names().await, ["Acme"]);
}

#[tokio::test]
async fn stats_count_requests_by_status() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    api.create(&workspace("a")).await;
    api.create(&workspace("a")).await;
    api.create(&workspace("b")).await;
    api.send(Method::POST, None, None, Vec::new()).await;
    let stats = api.stats().await;
    assert_eq!(
        stats,
        json!({
            "requests_total": 4,
            "by_status": {"200": 2, "400": 1, "401": 1},
            "workspaces": 2,
            "deleted": 0,
            "faults_injected": {
                "fail": 0, "fail_after_commit": 0, "drop_before_commit": 0,
                "drop_after_commit": 0, "rate_limited": 0
            },
            "requests_by_client": {"127.0.0.1": 4},
            "rate_limited_by_client": {}
        })
    );
    let log = api.get("/_sandbox/requests").await;
    let statuses: Vec<_> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].clone())
        .collect();
    assert_eq!(statuses, [json!(200), json!(400), json!(200), json!(401)]);
}

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
async fn rate_limit_answers_429_with_retry_after() {
    let sandbox = sandbox_with(FaultConfig {
        rate_limit: Some(per_minute(5)),
        ..FaultConfig::default()
    })
    .await;
    let api = Api::new(&sandbox);
    let answers = futures_join(&api, 30).await;
    let ok = answers.iter().filter(|a| a.status() == Some(200)).count();
    let limited: Vec<_> = answers.iter().filter(|a| a.status() == Some(429)).collect();
    // 30 requests well within the first minute, from one client: 5 pass.
    assert_eq!(ok, 5);
    assert_eq!(limited.len(), 25);
    for answer in &limited {
        let Answer::Http {
            retry_after, body, ..
        } = answer
        else {
            unreachable!()
        };
        let seconds: u64 = retry_after
            .as_deref()
            .expect("Retry-After is set")
            .parse()
            .unwrap();
        assert!((1..=60).contains(&seconds), "Retry-After: {seconds}");
        assert_eq!(body["error"]["status"], 429);
        assert_eq!(body["error"]["code"], "TOO_MANY_REQUESTS");
    }
    let stats = api.stats().await;
    assert_eq!(
        stats["faults_injected"]["rate_limited"],
        limited.len() as u64
    );
    assert_eq!(stats["workspaces"], ok as u64);
}

async fn futures_join(api: &Api, n: usize) -> Vec<Answer> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let api = api.clone();
        tasks.spawn(async move { api.create(&workspace(&format!("w{i}"))).await });
    }
    tasks.join_all().await
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

#[tokio::test]
async fn unknown_paths_and_methods_answer_with_the_envelope() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let answer = api
        .send(Method::PATCH, Some(&api.key), None, Vec::new())
        .await;
    assert_eq!(answer.status(), Some(405));
    assert_eq!(answer.code().as_deref(), Some("METHOD_NOT_ALLOWED"));
    let response = api
        .client
        .get(format!("{}/api/v1/nothing", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "NOT_FOUND");
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

/// The command line: `dbprov sandbox --listen 127.0.0.1:0` prints the URL, then the key.
#[tokio::test]
async fn the_command_prints_its_url_and_key_and_serves() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dbprov"))
        .args([
            "sandbox",
            "--listen",
            "127.0.0.1:0",
            "--api-key",
            "dbn_test_cli",
            "--seed",
            "5",
        ])
        .args(["--datasources", "pg-one,pg-two"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = lines.next().unwrap().unwrap();
    let key = lines.next().unwrap().unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert_ne!(url, "http://127.0.0.1:0");
    assert_eq!(key, "dbn_test_cli");

    let api = Api {
        client: reqwest::Client::new(),
        base: url,
        key,
    };
    let body = json!({"name": "a", "connectionType": "DATASOURCE", "datasourceName": "pg-two"});
    let answer = api.create(&body).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(answer.status(), Some(200), "{answer:?}");
}

#[test]
fn the_command_refuses_bad_fault_flags_with_exit_2() {
    let output = Command::new(env!("CARGO_BIN_EXE_dbprov"))
        .args(["sandbox", "--listen", "127.0.0.1:0", "--fail-rate", "1.5"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--fail-rate must be between 0 and 1"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}

/// `requests` per minute: a window no test outlives, so counts never reset mid-test.
fn per_minute(requests: u64) -> WindowLimit {
    WindowLimit {
        requests,
        window: Duration::from_secs(60),
    }
}

/// A sandbox with `limit`, answering with these headers, with or without `Retry-After`.
async fn limited(limit: WindowLimit, headers: RateLimitHeaders, retry_after: bool) -> Sandbox {
    sandbox_with(FaultConfig {
        rate_limit: Some(limit),
        rate_limit_headers: headers,
        retry_after,
        ..FaultConfig::default()
    })
    .await
}

/// Every rate-limit header any flavour sends.
const LIMIT_HEADERS: [&str; 8] = [
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "ratelimit-policy",
    "ratelimit",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
];

/// The rate-limit headers among `headers`, by name.
fn limit_headers(headers: &reqwest::header::HeaderMap) -> Vec<&'static str> {
    LIMIT_HEADERS
        .into_iter()
        .filter(|name| headers.contains_key(*name))
        .collect()
}

/// A header as a number.
fn number(headers: &reqwest::header::HeaderMap, name: &str) -> u64 {
    let value = headers.get(name).unwrap_or_else(|| panic!("no {name}"));
    value.to_str().unwrap().parse().unwrap()
}

fn text<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers.get(name).unwrap().to_str().unwrap()
}

#[tokio::test]
async fn the_rate_limit_counts_each_client_apart() {
    let sandbox = limited(per_minute(5), RateLimitHeaders::Draft6, true).await;
    let api = Api::new(&sandbox);
    let mut statuses = Vec::new();
    for i in 0..8 {
        let (answer, headers) = api
            .create_with(&workspace(&format!("a{i}")), &[("X-Client-IP", "10.0.0.1")])
            .await;
        if answer.status() == Some(429) {
            let retry_after = number(&headers, "retry-after");
            assert!(
                (1..=60).contains(&retry_after),
                "Retry-After: {retry_after}"
            );
        }
        statuses.push(answer.status().unwrap());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
    // Another client has a budget of its own; spaces around the address do not matter.
    for i in 0..2 {
        let (answer, _) = api
            .create_with(
                &workspace(&format!("b{i}")),
                &[("X-Client-IP", " 10.0.0.2 ")],
            )
            .await;
        assert_eq!(answer.status(), Some(200));
    }
    // The first address of X-Forwarded-For is the client; X-Client-IP comes before it.
    let forwarded = [("X-Forwarded-For", "10.0.0.3, 10.0.0.9")];
    let (answer, _) = api.create_with(&workspace("c"), &forwarded).await;
    assert_eq!(answer.status(), Some(200));
    let both = [("X-Forwarded-For", "10.0.0.3"), ("X-Client-IP", "10.0.0.2")];
    let (answer, _) = api.create_with(&workspace("d"), &both).await;
    assert_eq!(answer.status(), Some(200));
    // Without either header, the connection's peer.
    assert_eq!(api.create(&workspace("e")).await.status(), Some(200));

    let stats = api.stats().await;
    assert_eq!(stats["rate_limited_by_client"], json!({"10.0.0.1": 3}));
    assert_eq!(
        stats["requests_by_client"],
        json!({"10.0.0.1": 8, "10.0.0.2": 3, "10.0.0.3": 1, "127.0.0.1": 1})
    );
    assert_eq!(stats["faults_injected"]["rate_limited"], 3);
    assert_eq!(stats["by_status"], json!({"200": 10, "429": 3}));
    let log = api.get("/_sandbox/requests").await;
    let clients: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["client"].as_str().unwrap())
        .collect();
    assert_eq!(clients[..8], ["10.0.0.1"; 8]);
    assert_eq!(
        clients[8..],
        ["10.0.0.2", "10.0.0.2", "10.0.0.3", "10.0.0.2", "127.0.0.1"]
    );
}

/// Sends `n` creates from one client and returns each answer's status and headers.
async fn creates(api: &Api, n: usize) -> Vec<(u16, reqwest::header::HeaderMap)> {
    let mut answers = Vec::new();
    for i in 0..n {
        let (answer, headers) = api.create_with(&workspace(&format!("w{i}")), &[]).await;
        answers.push((answer.status().unwrap(), headers));
    }
    answers
}

#[tokio::test]
async fn draft6_headers_state_limit_remaining_reset_and_policy() {
    let sandbox = limited(per_minute(3), RateLimitHeaders::Draft6, true).await;
    let api = Api::new(&sandbox);
    let answers = creates(&api, 4).await;
    let statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses, [200, 200, 200, 429]);
    let mut last_reset = u64::MAX;
    for ((_, headers), remaining) in answers.iter().zip([2, 1, 0, 0]) {
        assert_eq!(
            limit_headers(headers),
            [
                "ratelimit-limit",
                "ratelimit-remaining",
                "ratelimit-reset",
                "ratelimit-policy"
            ]
        );
        assert_eq!(number(headers, "ratelimit-limit"), 3);
        assert_eq!(number(headers, "ratelimit-remaining"), remaining);
        let reset = number(headers, "ratelimit-reset");
        assert!(
            (1..=60).contains(&reset) && reset <= last_reset,
            "reset {reset}"
        );
        last_reset = reset;
        assert_eq!(text(headers, "ratelimit-policy"), "3;w=60");
    }
    let (_, refused) = &answers[3];
    assert_eq!(
        number(refused, "retry-after"),
        number(refused, "ratelimit-reset")
    );
    assert!(
        !answers[0].1.contains_key("retry-after"),
        "only a 429 has it"
    );
}

#[tokio::test]
async fn draft7_headers_combine_limit_remaining_and_reset() {
    let sandbox = limited(per_minute(2), RateLimitHeaders::Draft7, true).await;
    let api = Api::new(&sandbox);
    let answers = creates(&api, 3).await;
    for ((_, headers), remaining) in answers.iter().zip([1, 0, 0]) {
        assert_eq!(limit_headers(headers), ["ratelimit-policy", "ratelimit"]);
        let combined = text(headers, "ratelimit");
        let (prefix, reset) = combined.rsplit_once(", reset=").unwrap();
        assert_eq!(prefix, format!("limit=2, remaining={remaining}"));
        let reset: u64 = reset.parse().unwrap();
        assert!((1..=60).contains(&reset), "{combined}");
        assert_eq!(text(headers, "ratelimit-policy"), "2;w=60");
    }
    assert_eq!(answers[2].0, 429);
    assert!(answers[2].1.contains_key("retry-after"));
}

#[tokio::test]
async fn legacy_headers_give_the_reset_as_a_unix_time() {
    let sandbox = limited(per_minute(2), RateLimitHeaders::Legacy, true).await;
    let api = Api::new(&sandbox);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let answers = creates(&api, 3).await;
    for ((_, headers), remaining) in answers.iter().zip([1, 0, 0]) {
        assert_eq!(
            limit_headers(headers),
            [
                "x-ratelimit-limit",
                "x-ratelimit-remaining",
                "x-ratelimit-reset"
            ]
        );
        assert_eq!(number(headers, "x-ratelimit-limit"), 2);
        assert_eq!(number(headers, "x-ratelimit-remaining"), remaining);
        let reset = number(headers, "x-ratelimit-reset");
        assert!(
            reset > before && reset <= before + 61,
            "reset {reset}, now {before}"
        );
    }
    assert_eq!(answers[2].0, 429);
    assert!(answers[2].1.contains_key("retry-after"));
}

#[tokio::test]
async fn with_no_headers_only_a_429_says_when_and_without_retry_after_nothing_does() {
    let sandbox = limited(per_minute(1), RateLimitHeaders::None, true).await;
    let answers = creates(&Api::new(&sandbox), 2).await;
    assert_eq!(answers[0].0, 200);
    assert!(limit_headers(&answers[0].1).is_empty());
    assert!(!answers[0].1.contains_key("retry-after"));
    assert_eq!(answers[1].0, 429);
    assert!(limit_headers(&answers[1].1).is_empty());
    assert!((1..=60).contains(&number(&answers[1].1, "retry-after")));

    let sandbox = limited(per_minute(1), RateLimitHeaders::Draft6, false).await;
    let api = Api::new(&sandbox);
    let answers = creates(&api, 2).await;
    assert_eq!(answers[1].0, 429);
    assert!(!answers[1].1.contains_key("retry-after"));
    assert_eq!(number(&answers[1].1, "ratelimit-remaining"), 0);
    let refused = api.create(&workspace("again")).await;
    assert_eq!(refused.code().as_deref(), Some("TOO_MANY_REQUESTS"));
}

#[tokio::test]
async fn without_a_limit_no_rate_limit_header_is_sent() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    for (status, headers) in creates(&api, 3).await {
        assert_eq!(status, 200);
        assert!(limit_headers(&headers).is_empty(), "{headers:?}");
        assert!(!headers.contains_key("retry-after"));
    }
}

#[tokio::test]
async fn every_answer_of_the_workspace_path_carries_the_headers() {
    let sandbox = limited(per_minute(10), RateLimitHeaders::Draft6, true).await;
    let api = Api::new(&sandbox);
    let json = Some("application/json");
    let body = || workspace("a").to_string().into_bytes();
    let cases = [
        (Method::POST, None, json, body(), 401),
        (Method::POST, Some(api.key.as_str()), None, body(), 400),
        (Method::PUT, Some(api.key.as_str()), json, body(), 400),
        (Method::PATCH, Some(api.key.as_str()), None, Vec::new(), 405),
        (Method::POST, Some(api.key.as_str()), json, body(), 200),
    ];
    for (remaining, (method, key, content_type, body, status)) in (0..10).rev().zip(cases) {
        let (answer, headers) = api
            .send_with(method.clone(), key, content_type, body, &[])
            .await;
        assert_eq!(answer.status(), Some(status), "{method}");
        assert_eq!(
            number(&headers, "ratelimit-remaining"),
            remaining,
            "{method} answered {status}"
        );
    }
    let stats = api.stats().await;
    assert_eq!(stats["requests_total"], 5, "the 405 is counted too");
    assert_eq!(
        stats["by_status"],
        json!({"200": 1, "400": 2, "401": 1, "405": 1})
    );

    // An injected 500 too.
    let failing = sandbox_with(FaultConfig {
        rate_limit: Some(per_minute(10)),
        fail_rate: 1.0,
        ..FaultConfig::default()
    })
    .await;
    let (answer, headers) = Api::new(&failing).create_with(&workspace("a"), &[]).await;
    assert_eq!(answer.status(), Some(500));
    assert_eq!(number(&headers, "ratelimit-remaining"), 9);
}

#[tokio::test]
async fn introspection_is_neither_counted_nor_limited() {
    let sandbox = limited(per_minute(2), RateLimitHeaders::Draft6, true).await;
    let api = Api::new(&sandbox);
    for _ in 0..10 {
        let response = api
            .client
            .get(format!("{}/_sandbox/stats", api.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(limit_headers(response.headers()).is_empty());
    }
    let statuses: Vec<u16> = creates(&api, 3).await.into_iter().map(|(s, _)| s).collect();
    assert_eq!(statuses, [200, 200, 429]);
    api.get("/_sandbox/workspaces").await;
    api.get("/_sandbox/requests").await;
    let stats = api.stats().await;
    assert_eq!(stats["requests_total"], 3);
    assert_eq!(stats["requests_by_client"], json!({"127.0.0.1": 3}));
}

#[tokio::test]
async fn an_outage_refuses_connections_and_the_sandbox_comes_back_with_its_state() {
    let sandbox = plain_sandbox().await;
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

    sandbox.go_down();
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

#[test]
fn the_command_refuses_impossible_limits_and_header_flags_without_one() {
    let refused = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_dbprov"))
            .args(["sandbox", "--listen", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let stderr = refused(&["--rate-limit", "0/s"]);
    assert!(stderr.contains("'0/s' is not a limit"), "{stderr}");
    let stderr = refused(&["--rate-limit", "50 per second"]);
    assert!(stderr.contains("write it as 500/2m or 50/s"), "{stderr}");
    let stderr = refused(&["--rate-limit-headers", "legacy"]);
    assert!(stderr.contains("--rate-limit <N/W>"), "{stderr}");
    let stderr = refused(&["--no-retry-after"]);
    assert!(stderr.contains("--rate-limit <N/W>"), "{stderr}");
}

#[tokio::test]
async fn the_command_serves_a_window_limit_with_the_headers_asked_for() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dbprov"))
        .args(["sandbox", "--listen", "127.0.0.1:0", "--rate-limit", "2/1m"])
        .args(["--rate-limit-headers", "draft7", "--no-retry-after"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = lines.next().unwrap().unwrap();
    let key = lines.next().unwrap().unwrap();
    let api = Api {
        client: reqwest::Client::new(),
        base,
        key,
    };
    let answers = creates(&api, 3).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses, [200, 200, 429]);
    let combined = text(&answers[2].1, "ratelimit");
    assert!(
        combined.starts_with("limit=2, remaining=0, reset="),
        "{combined}"
    );
    assert_eq!(text(&answers[2].1, "ratelimit-policy"), "2;w=60");
    assert!(!answers[2].1.contains_key("retry-after"));
}

#[tokio::test]
async fn list_gives_every_workspace_or_pages_of_ten_in_creation_order() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let empty = api.list(None).await;
    assert_eq!(empty.body(), &json!({"data": [], "error": null}));
    assert!(listed(&api.list(Some(1)).await).is_empty());

    // Created in an order that is not alphabetical.
    let names: Vec<String> = (0..25).map(|i| format!("ws-{:02}", (i * 7) % 25)).collect();
    for name in &names {
        assert_eq!(api.create(&workspace(name)).await.status(), Some(200));
    }
    assert_eq!(listed(&api.list(None).await), names);
    let (everything, _) = api
        .query(Method::GET, "isPagination=false", Some(&api.key), &[])
        .await;
    assert_eq!(listed(&everything), names);
    assert_eq!(
        everything.body()["data"][0],
        json!({"name": names[0]}),
        "names only"
    );
    assert_eq!(listed(&api.list(Some(1)).await), names[..10]);
    assert_eq!(listed(&api.list(Some(2)).await), names[10..20]);
    assert_eq!(listed(&api.list(Some(3)).await), names[20..]);
    let past = api.list(Some(4)).await;
    assert_eq!(past.body(), &json!({"data": [], "error": null}));
    // pageNumber defaults to 1.
    let (first, _) = api
        .query(Method::GET, "isPagination=true", Some(&api.key), &[])
        .await;
    assert_eq!(listed(&first), names[..10]);

    let stats = api.stats().await;
    assert_eq!(stats["requests_total"], 25 + 9);
    assert_eq!(stats["by_status"], json!({"200": 34}));
    let log = api.get("/_sandbox/requests").await;
    let last = &log.as_array().unwrap()[33];
    assert_eq!(last["method"], "GET");
    assert_eq!(last["name"], Value::Null);
    assert_eq!(last["status"], 200);
}

#[tokio::test]
async fn list_refuses_bad_query_values_with_400_and_a_missing_key_with_401() {
    let sandbox = holding(&numbered(3), FaultConfig::default()).await;
    let api = Api::new(&sandbox);
    for query in [
        "isPagination=yes",
        "isPagination=",
        "isPagination=TRUE",
        "isPagination=true&pageNumber=0",
        "isPagination=true&pageNumber=-1",
        "isPagination=true&pageNumber=1.5",
        "isPagination=true&pageNumber=two",
        "isPagination=true&pageNumber=",
        "pageNumber=0",
        "isPagination=true&isPagination=false",
    ] {
        let (answer, _) = api.query(Method::GET, query, Some(&api.key), &[]).await;
        assert_eq!(answer.status(), Some(400), "{query}: {answer:?}");
        assert_eq!(
            answer.code().as_deref(),
            Some("INVALID_REQUEST_BODY"),
            "{query}"
        );
        assert_eq!(answer.body()["data"], Value::Null, "{query}");
        assert!(
            !answer.body()["error"]["message"]
                .as_str()
                .unwrap()
                .is_empty(),
            "{query}: a message says why"
        );
    }
    for key in [None, Some("dbn_live_wrong")] {
        let (answer, _) = api.query(Method::GET, "", key, &[]).await;
        assert_eq!(answer.status(), Some(401), "{key:?}");
        assert_eq!(answer.code().as_deref(), Some("INVALID_DATA_APP_API_KEY"));
        assert_eq!(answer.body()["data"], Value::Null);
    }
}

#[tokio::test]
async fn delete_removes_the_workspace_answers_its_id_and_frees_the_name() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    for name in ["Sales Analytics", "Other", "Third"] {
        assert_eq!(api.create(&workspace(name)).await.status(), Some(200));
    }
    let answer = api.delete("Sales Analytics").await;
    assert_eq!(answer.status(), Some(200));
    assert_eq!(
        answer.body(),
        &json!({
            "data": {"id": "sales-analytics", "message": "Workspace deleted successfully"},
            "error": null
        })
    );
    assert_eq!(listed(&api.list(None).await), ["Other", "Third"]);
    assert_eq!(api.workspace_names().await, ["Other", "Third"]);
    let stats = api.stats().await;
    assert_eq!(
        (&stats["workspaces"], &stats["deleted"]),
        (&json!(2), &json!(1))
    );

    // Once more: it does not exist.
    let again = api.delete("Sales Analytics").await;
    assert_eq!(again.status(), Some(400));
    assert_eq!(again.code().as_deref(), Some("WORKSPACE_DOES_NOT_EXIST"));
    assert_eq!(
        again.body()["error"],
        json!({
            "code": "WORKSPACE_DOES_NOT_EXIST",
            "message": "no workspace named 'Sales Analytics' exists",
            "status": 400
        })
    );
    // No name, an empty one, a blank one.
    for query in ["", "name=", "name=%20%20", "other=Other"] {
        let (answer, _) = api.query(Method::DELETE, query, Some(&api.key), &[]).await;
        assert_eq!(answer.status(), Some(400), "{query:?}");
        assert_eq!(
            answer.code().as_deref(),
            Some("INVALID_REQUEST_BODY"),
            "{query:?}"
        );
    }
    // Without the key nothing is deleted.
    let (refused, _) = api.query(Method::DELETE, "name=Other", None, &[]).await;
    assert_eq!(refused.status(), Some(401));
    assert_eq!(refused.code().as_deref(), Some("INVALID_DATA_APP_API_KEY"));

    // The name can be created again; it comes last.
    let recreated = api.create(&workspace("Sales Analytics")).await;
    assert_eq!(recreated.status(), Some(200));
    assert_eq!(
        listed(&api.list(None).await),
        ["Other", "Third", "Sales Analytics"]
    );
    let stats = api.stats().await;
    assert_eq!(
        (&stats["workspaces"], &stats["deleted"]),
        (&json!(3), &json!(1))
    );

    // Spaces, `&` and `/` percent-encoded in the query.
    let odd = "R&D Team / EMEA";
    assert_eq!(api.create(&workspace(odd)).await.status(), Some(200));
    let (answer, _) = api
        .query(
            Method::DELETE,
            "name=R%26D%20Team%20%2F%20EMEA",
            Some(&api.key),
            &[],
        )
        .await;
    assert_eq!(answer.status(), Some(200), "{answer:?}");
    assert_eq!(answer.body()["data"]["id"], "r-d-team-emea");
    // `+` is a space in a query string, as in a form.
    assert_eq!(
        api.create(&workspace("Plus Sign")).await.status(),
        Some(200)
    );
    let (answer, _) = api
        .query(Method::DELETE, "name=Plus+Sign", Some(&api.key), &[])
        .await;
    assert_eq!(answer.body()["data"]["id"], "plus-sign");
    assert_eq!(
        api.workspace_names().await,
        ["Other", "Third", "Sales Analytics"]
    );

    // The log names each delete and what it answered.
    let log = api.get("/_sandbox/requests").await;
    let deletes: Vec<(Value, Value)> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["method"] == "DELETE")
        .map(|r| (r["name"].clone(), r["status"].clone()))
        .collect();
    assert_eq!(
        deletes,
        [
            (json!("Sales Analytics"), json!(200)),
            (json!("Sales Analytics"), json!(400)),
            (Value::Null, json!(400)),
            (Value::Null, json!(400)),
            (Value::Null, json!(400)),
            (Value::Null, json!(400)),
            (json!("Other"), json!(401)),
            (json!(odd), json!(200)),
            (json!("Plus Sign"), json!(200)),
        ]
    );
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
async fn lists_and_deletes_count_in_the_window_and_carry_the_headers() {
    let sandbox = sandbox_with(FaultConfig {
        rate_limit: Some(per_minute(6)),
        ..FaultConfig::default()
    })
    .await;
    let api = Api::new(&sandbox);
    let key = Some(api.key.as_str());
    let (created, headers) = api.create_with(&workspace("a"), &[]).await;
    assert_eq!(created.status(), Some(200));
    assert_eq!(number(&headers, "ratelimit-remaining"), 5);
    let steps = [
        (Method::GET, "", 200, 4),
        (Method::GET, "isPagination=true&pageNumber=1", 200, 3),
        (Method::GET, "isPagination=maybe", 400, 2),
        (Method::DELETE, "name=a", 200, 1),
        (Method::DELETE, "name=a", 400, 0),
    ];
    for (method, query, status, remaining) in steps {
        let (answer, headers) = api.query(method.clone(), query, key, &[]).await;
        assert_eq!(answer.status(), Some(status), "{method} ?{query}");
        assert_eq!(
            limit_headers(&headers),
            [
                "ratelimit-limit",
                "ratelimit-remaining",
                "ratelimit-reset",
                "ratelimit-policy"
            ],
            "{method} ?{query}"
        );
        assert_eq!(
            number(&headers, "ratelimit-remaining"),
            remaining,
            "{method} ?{query}"
        );
    }
    // Over the limit: 429 with Retry-After, and the delete is not done.
    assert_eq!(api.create(&workspace("b")).await.status(), Some(429));
    for (method, query) in [(Method::GET, ""), (Method::DELETE, "name=b")] {
        let (answer, headers) = api.query(method.clone(), query, key, &[]).await;
        assert_eq!(answer.status(), Some(429), "{method}");
        assert_eq!(answer.code().as_deref(), Some("TOO_MANY_REQUESTS"));
        assert_eq!(number(&headers, "ratelimit-remaining"), 0);
        assert!((1..=60).contains(&number(&headers, "retry-after")));
    }
    let stats = api.stats().await;
    assert_eq!(stats["requests_total"], 9);
    assert_eq!(stats["requests_by_client"], json!({"127.0.0.1": 9}));
    assert_eq!(stats["rate_limited_by_client"], json!({"127.0.0.1": 3}));
    assert_eq!(stats["by_status"], json!({"200": 4, "400": 2, "429": 3}));
    let log = api.get("/_sandbox/requests").await;
    let refused: Vec<(&str, &Value)> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["fault"] == "rate_limited")
        .map(|r| (r["method"].as_str().unwrap(), &r["name"]))
        .collect();
    assert_eq!(
        refused,
        [
            ("POST", &json!("b")),
            ("GET", &Value::Null),
            ("DELETE", &json!("b"))
        ]
    );
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

#[tokio::test]
async fn other_methods_on_the_workspace_path_are_still_405() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    for method in [Method::PATCH, Method::OPTIONS] {
        let (answer, _) = api.query(method.clone(), "", Some(&api.key), &[]).await;
        assert_eq!(answer.status(), Some(405), "{method}");
        assert_eq!(answer.code().as_deref(), Some("METHOD_NOT_ALLOWED"));
        let message = answer.body()["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(message.contains("POST, PUT, GET and DELETE"), "{message}");
    }
    let log = api.get("/_sandbox/requests").await;
    assert_eq!(log, json!([]), "a 405 is not in the log");
}
