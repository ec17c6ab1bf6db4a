//! The sandbox over real HTTP: every documented status, code and envelope of the workspace
//! endpoint (create, update, list, delete), its stats, and the command that serves it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use dbprov::sandbox::{self, Catalog, FaultConfig, SandboxConfig};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Api, holding, listed, numbered, plain_sandbox, workspace};
use crate::process::start_std;

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

/// The command line: `dbprov sandbox --listen 127.0.0.1:0` prints the URL, then the key.
#[tokio::test]
async fn the_command_prints_its_url_and_key_and_serves() {
    let mut child = start_std(
        Command::new(env!("CARGO_BIN_EXE_dbprov"))
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
            .stderr(Stdio::null()),
    )
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
