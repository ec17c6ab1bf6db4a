//! The sandbox's rate limit: a window per client, its headers in each flavour, `Retry-After`,
//! and the command-line flags that set it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use dbprov::sandbox::{FaultConfig, RateLimitHeaders, Sandbox, WindowLimit};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Answer, Api, plain_sandbox, sandbox_with, workspace};
use crate::process::start_std;

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

#[test]
fn the_command_refuses_impossible_limits_and_header_flags_without_one() {
    let refused = |args: &[&str]| {
        let output = start_std(
            Command::new(env!("CARGO_BIN_EXE_dbprov"))
                .args(["sandbox", "--listen", "127.0.0.1:0"])
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )
        .and_then(|sandbox| sandbox.wait_with_output())
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
    let mut child = start_std(
        Command::new(env!("CARGO_BIN_EXE_dbprov"))
            .args(["sandbox", "--listen", "127.0.0.1:0", "--rate-limit", "2/1m"])
            .args(["--rate-limit-headers", "draft7", "--no-retry-after"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    )
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
