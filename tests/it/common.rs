//! Shared helpers: an in-process sandbox on port 0, a small HTTP client for it, what its
//! request log says, and the CSVs that tests write and read back.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use dbprov::sandbox::{self, FaultConfig, Sandbox, SandboxConfig};
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// Sandboxes.

/// Starts a sandbox with these faults and a fixed seed.
pub async fn sandbox_with(faults: FaultConfig) -> Sandbox {
    sandbox::spawn(SandboxConfig {
        faults,
        seed: Some(1),
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox starts")
}

/// Starts a sandbox without faults.
pub async fn plain_sandbox() -> Sandbox {
    sandbox_with(FaultConfig::default()).await
}

/// Starts a sandbox that holds these workspaces from the start (not counted as requests),
/// with these faults and this seed.
pub async fn holding_seeded(names: &[impl AsRef<str>], faults: FaultConfig, seed: u64) -> Sandbox {
    sandbox::spawn(SandboxConfig {
        faults,
        seed: Some(seed),
        workspaces: names
            .iter()
            .map(|n| serde_json::from_value(workspace(n.as_ref())).unwrap())
            .collect(),
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox starts")
}

/// [`holding_seeded`] with seed 1.
pub async fn holding(names: &[impl AsRef<str>], faults: FaultConfig) -> Sandbox {
    holding_seeded(names, faults, 1).await
}

/// Starts a sandbox that answers each request after `latency_ms`.
pub fn slow_sandbox(latency_ms: u64) -> impl std::future::Future<Output = Sandbox> {
    sandbox_with(FaultConfig {
        latency: Duration::from_millis(latency_ms),
        ..FaultConfig::default()
    })
}

// ---------------------------------------------------------------------------------------
// A raw client for the sandbox's API.

/// What came back for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// An HTTP answer: status, `Retry-After` if any, and the body parsed as JSON.
    Http {
        status: u16,
        retry_after: Option<String>,
        body: Value,
    },
    /// The connection closed without an answer.
    Dropped,
}

impl Answer {
    pub fn status(&self) -> Option<u16> {
        match self {
            Answer::Http { status, .. } => Some(*status),
            Answer::Dropped => None,
        }
    }

    /// The envelope's error code, if any.
    pub fn code(&self) -> Option<String> {
        match self {
            Answer::Http { body, .. } => body["error"]["code"].as_str().map(str::to_owned),
            Answer::Dropped => None,
        }
    }

    pub fn body(&self) -> &Value {
        match self {
            Answer::Http { body, .. } => body,
            Answer::Dropped => panic!("no body: the connection was dropped"),
        }
    }
}

/// A raw client for the sandbox's API.
#[derive(Clone)]
pub struct Api {
    pub client: reqwest::Client,
    pub base: String,
    pub key: String,
}

impl Api {
    pub fn new(sandbox: &Sandbox) -> Api {
        Api {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            base: sandbox.url(),
            key: sandbox.api_key().to_owned(),
        }
    }

    /// `POST /api/v2/workspace` with a JSON body and the right key.
    pub async fn create(&self, body: &Value) -> Answer {
        self.send(
            reqwest::Method::POST,
            Some(&self.key),
            Some("application/json"),
            body.to_string().into_bytes(),
        )
        .await
    }

    /// `PUT /api/v2/workspace` with a JSON body and the right key.
    pub async fn update(&self, body: &Value) -> Answer {
        self.send(
            reqwest::Method::PUT,
            Some(&self.key),
            Some("application/json"),
            body.to_string().into_bytes(),
        )
        .await
    }

    /// Any request to the workspace endpoint.
    pub async fn send(
        &self,
        method: reqwest::Method,
        key: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Answer {
        self.send_with(method, key, content_type, body, &[]).await.0
    }

    /// `send` with `extra` headers (`X-Client-IP`, say); also returns the answer's headers
    /// (none when the connection was dropped).
    pub async fn send_with(
        &self,
        method: reqwest::Method,
        key: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
        extra: &[(&str, &str)],
    ) -> (Answer, reqwest::header::HeaderMap) {
        let mut request = self
            .client
            .request(method, format!("{}/api/v2/workspace", self.base))
            .body(body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        finish(request).await
    }

    /// `GET /api/v2/workspace` with the right key: every workspace (`None`), or page `n`
    /// (`Some(n)`: `isPagination=true&pageNumber=n`).
    pub async fn list(&self, pagination: Option<u32>) -> Answer {
        let query = match pagination {
            None => String::new(),
            Some(n) => format!("isPagination=true&pageNumber={n}"),
        };
        self.query(reqwest::Method::GET, &query, Some(&self.key), &[])
            .await
            .0
    }

    /// `DELETE /api/v2/workspace?name=<name>` with the right key, the name percent-encoded.
    pub async fn delete(&self, name: &str) -> Answer {
        let query = format!("name={}", percent_encode(name));
        self.query(reqwest::Method::DELETE, &query, Some(&self.key), &[])
            .await
            .0
    }

    /// A request to the workspace endpoint without a body, with `query` as the query
    /// string verbatim (`isPagination=yes`; empty for none); also returns the answer's
    /// headers.
    pub async fn query(
        &self,
        method: reqwest::Method,
        query: &str,
        key: Option<&str>,
        extra: &[(&str, &str)],
    ) -> (Answer, reqwest::header::HeaderMap) {
        let mut url = format!("{}/api/v2/workspace", self.base);
        if !query.is_empty() {
            url = format!("{url}?{query}");
        }
        let mut request = self.client.request(method, url);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        finish(request).await
    }

    /// `create` with `extra` headers; also returns the answer's headers.
    pub async fn create_with(
        &self,
        body: &Value,
        extra: &[(&str, &str)],
    ) -> (Answer, reqwest::header::HeaderMap) {
        self.send_with(
            reqwest::Method::POST,
            Some(&self.key),
            Some("application/json"),
            body.to_string().into_bytes(),
            extra,
        )
        .await
    }

    /// `GET` a sandbox introspection path, parsed as JSON.
    pub async fn get(&self, path: &str) -> Value {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
    }

    pub async fn stats(&self) -> Value {
        self.get("/_sandbox/stats").await
    }

    pub async fn workspace_names(&self) -> Vec<String> {
        let list = self.get("/_sandbox/workspaces").await;
        list.as_array()
            .unwrap()
            .iter()
            .map(|w| w["name"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// The names of a successful list's answer, in order.
pub fn listed(answer: &Answer) -> Vec<String> {
    assert_eq!(answer.status(), Some(200), "{answer:?}");
    assert_eq!(answer.body()["error"], Value::Null, "{answer:?}");
    answer.body()["data"]
        .as_array()
        .unwrap_or_else(|| panic!("data is not an array: {answer:?}"))
        .iter()
        .map(|w| w["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Sends a request; a connection closed without an answer is [`Answer::Dropped`].
async fn finish(request: reqwest::RequestBuilder) -> (Answer, reqwest::header::HeaderMap) {
    match request.send().await {
        Ok(response) => {
            let headers = response.headers().clone();
            (answer(response).await, headers)
        }
        Err(e) if e.is_timeout() => panic!("request timed out: {e}"),
        Err(_) => (Answer::Dropped, reqwest::header::HeaderMap::new()),
    }
}

/// `text` for a query string: every byte but `A-Z a-z 0-9 - . _ ~` as `%XX`.
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    match response.bytes().await {
        Ok(bytes) => Answer::Http {
            status,
            retry_after,
            body: serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("body of a {status} is not JSON ({e}): {bytes:?}")),
        },
        Err(_) => Answer::Dropped,
    }
}

/// A valid create body for `name`.
pub fn workspace(name: &str) -> Value {
    serde_json::json!({
        "name": name,
        "connectionType": "DATASOURCE",
        "datasourceName": "postgres-main",
    })
}

// ---------------------------------------------------------------------------------------
// What the sandbox holds and saw: its workspaces, stats and request log.

/// Each workspace name in the sandbox, with how many times it occurs.
pub async fn workspace_counts(api: &Api) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for name in api.workspace_names().await {
        *counts.entry(name).or_default() += 1;
    }
    counts
}

/// The names the sandbox holds now.
pub async fn held(api: &Api) -> BTreeSet<String> {
    let counts = workspace_counts(api).await;
    assert!(
        counts.values().all(|n| *n == 1),
        "no workspace twice: {counts:?}"
    );
    counts.into_keys().collect()
}

/// The names the sandbox holds, sorted.
pub async fn names_on(api: &Api) -> Vec<String> {
    let mut names = api.workspace_names().await;
    names.sort();
    names
}

/// Every request the sandbox has received (its stats).
pub async fn requests(api: &Api) -> u64 {
    api.stats().await["requests_total"].as_u64().unwrap()
}

/// Writes (`POST` and `PUT`) the sandbox received, from its request log.
pub async fn writes(api: &Api) -> u64 {
    let log = api.get("/_sandbox/requests").await;
    log.as_array()
        .unwrap()
        .iter()
        .filter(|r| r["method"] == "POST" || r["method"] == "PUT")
        .count() as u64
}

/// The sandbox's request log.
pub async fn log(api: &Api) -> Vec<Value> {
    api.get("/_sandbox/requests")
        .await
        .as_array()
        .unwrap()
        .clone()
}

/// The methods the sandbox has seen, in order.
pub async fn methods(api: &Api) -> Vec<String> {
    api.get("/_sandbox/requests")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["method"].as_str().unwrap().to_owned())
        .collect()
}

/// Requests in the log per method (`GET`, `POST`, `PUT`, `DELETE`).
pub fn by_method(log: &[Value]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for entry in log {
        *counts
            .entry(entry["method"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    counts
}

/// How many requests of `method` the log holds.
pub fn count(log: &[Value], method: &str) -> usize {
    log.iter().filter(|e| e["method"] == method).count()
}

/// The names the requests of `method` carried.
pub fn names_sent(log: &[Value], method: &str) -> BTreeSet<String> {
    log.iter()
        .filter(|e| e["method"] == method)
        .filter_map(|e| e["name"].as_str().map(str::to_owned))
        .collect()
}

/// Asserts that every row was created, and each workspace exactly once.
pub async fn assert_all_created(sandbox: &Sandbox, rows: &[ResultRow], n: usize) {
    assert_one_row_per_input_row(rows, n);
    let not_created: Vec<_> = rows.iter().filter(|r| r["_status"] != "created").collect();
    assert!(not_created.is_empty(), "{not_created:?}");
    let counts = workspace_counts(&Api::new(sandbox)).await;
    assert_eq!(counts.len(), n);
    assert!(counts.values().all(|&c| c == 1));
}

// ---------------------------------------------------------------------------------------
// Inputs.

/// A tenant CSV of `n` valid rows over the four connection types, names `prefix-0001`...
pub fn tenants(prefix: &str, n: usize) -> String {
    let mut csv = String::from("name,connectionType,datasourceName,datamartName\n");
    for i in 1..=n {
        let row = match i % 4 {
            0 => format!("{prefix}-{i:04},DATASOURCE,postgres-main,\n"),
            1 => format!("{prefix}-{i:04},DATAMART,,sales-mart\n"),
            2 => format!("{prefix}-{i:04},MULTI_DATASOURCE,,\n"),
            _ => format!("{prefix}-{i:04},MULTI_DATAMART,,\n"),
        };
        csv.push_str(&row);
    }
    csv
}

/// `prefix-001`, `prefix-002`, ...
pub fn names(prefix: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{prefix}-{i:03}")).collect()
}

/// `w00`, `w01`, ...
pub fn numbered(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("w{i:02}")).collect()
}

/// A tenant CSV with one valid `DATASOURCE` / `postgres-main` row per name.
pub fn datasource_csv(names: &[String]) -> String {
    let mut csv = String::from("name,connectionType,datasourceName\n");
    for name in names {
        csv.push_str(&format!("{name},DATASOURCE,postgres-main\n"));
    }
    csv
}

/// A CSV with only a `name` column.
pub fn name_csv(names: &[String]) -> String {
    let mut csv = String::from("name\n");
    for name in names {
        csv.push_str(name);
        csv.push('\n');
    }
    csv
}

/// 51 rows; every seventh uses a datasource the sandbox does not have.
pub fn fifty_one_rows() -> String {
    let mut csv = String::from("name,connectionType,datasourceName,note\n");
    for i in 1..=51 {
        let source = if i % 7 == 0 {
            "oracle-legacy"
        } else {
            "postgres-main"
        };
        csv.push_str(&format!("q-{i:02},DATASOURCE,{source},n{i}\n"));
    }
    csv
}

/// Two valid rows and one without a name.
pub const ONE_INVALID: &str =
    "name,connectionType\na1,MULTI_DATAMART\n,MULTI_DATAMART\na3,MULTI_DATAMART\n";

/// A committed sample file, by its name in `samples/spreadsheets/`.
pub fn sample(name: &str) -> String {
    format!("{}/samples/spreadsheets/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The names of the sample spreadsheets, as they must arrive.
pub const SPREADSHEET_NAMES: [&str; 5] = [
    "Café Zürich",
    "Smörgås AB",
    "Straße & Söhne",
    "Crème; Brûlée",
    "Ærø Fjord",
];

/// `names`, sorted.
pub fn sorted(names: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    names.sort();
    names
}

// ---------------------------------------------------------------------------------------
// The work folder, and the results read back.

/// One results row, by column name.
pub type ResultRow = std::collections::BTreeMap<String, String>;

/// A temporary folder with the files of one job.
pub struct JobDir {
    pub dir: tempfile::TempDir,
}

impl JobDir {
    pub fn new() -> JobDir {
        JobDir {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a file and returns its path as a string.
    pub fn write(&self, name: &str, contents: &str) -> String {
        let path = self.path(name);
        std::fs::write(&path, contents).unwrap();
        path.to_str().unwrap().to_owned()
    }

    /// Writes the key file for `sandbox`, readable by its owner only, and returns its path.
    pub fn key_file(&self, sandbox: &Sandbox) -> String {
        self.private_key(&format!("{}\n", sandbox.api_key()))
    }

    /// Writes `key` to the key file, readable by its owner only, and returns its path.
    pub fn private_key(&self, key: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        let path = self.write("key", key);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    /// The results file, parsed, with its header.
    pub fn results(&self, name: &str) -> (Vec<String>, Vec<ResultRow>) {
        // Strict: a row with another number of cells than the header fails the test.
        parse_rows(csv::Reader::from_path(self.path(name)).unwrap())
    }
}

/// The header and the rows of a CSV, each row by column name; a row with fewer cells than
/// the header has fewer entries.
pub fn parse_rows<R: std::io::Read>(mut reader: csv::Reader<R>) -> (Vec<String>, Vec<ResultRow>) {
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            header
                .iter()
                .cloned()
                .zip(r.iter().map(str::to_owned))
                .collect()
        })
        .collect();
    (header, rows)
}

/// The complete records of a results file that may end in a torn line.
pub fn complete_records(path: &std::path::Path) -> Vec<ResultRow> {
    let bytes = std::fs::read(path).unwrap();
    let end = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(&bytes[..end]);
    let (header, rows) = parse_rows(reader);
    rows.into_iter()
        .filter(|r| r.len() == header.len())
        .collect()
}

/// Asserts the invariant of every job: one results row per input row, `_row` 1..=n once each.
pub fn assert_one_row_per_input_row(rows: &[ResultRow], n: usize) {
    let mut numbers: Vec<usize> = rows.iter().map(|r| r["_row"].parse().unwrap()).collect();
    numbers.sort_unstable();
    assert_eq!(
        numbers,
        (1..=n).collect::<Vec<_>>(),
        "one results row per input row"
    );
}

/// Each row by its `_row` number.
pub fn by_row(rows: &[ResultRow]) -> BTreeMap<usize, &ResultRow> {
    rows.iter()
        .map(|r| (r["_row"].parse().unwrap(), r))
        .collect()
}

/// Each row by name.
pub fn by_name(rows: &[ResultRow]) -> BTreeMap<String, ResultRow> {
    rows.iter()
        .map(|r| (r["name"].clone(), r.clone()))
        .collect()
}

/// Each row's `_status`, by name.
pub fn statuses(rows: &[ResultRow]) -> BTreeMap<String, String> {
    rows.iter()
        .map(|r| (r["name"].clone(), r["_status"].clone()))
        .collect()
}

/// `_row` of each results row, in file order.
pub fn row_numbers(rows: &[ResultRow]) -> Vec<u64> {
    rows.iter().map(|r| r["_row"].parse().unwrap()).collect()
}

/// Rows per status.
pub fn tally(rows: &[ResultRow]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for row in rows {
        *counts.entry(row["_status"].clone()).or_default() += 1;
    }
    counts
}

/// `[(status, n), ...]` as a tally, for comparisons.
pub fn expect(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(s, n)| (s.to_string(), *n)).collect()
}

/// The `_attempts` of all rows, summed: the requests the results file accounts for.
/// The last record of each row of a results log (a row recorded in flight, then final,
/// is its final record), in file order of those last records.
pub fn latest_records(rows: Vec<ResultRow>) -> Vec<ResultRow> {
    let mut last = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        last.insert(row["_row"].clone(), i);
    }
    let keep: BTreeSet<usize> = last.into_values().collect();
    rows.into_iter()
        .enumerate()
        .filter(|(i, _)| keep.contains(i))
        .map(|(_, row)| row)
        .collect()
}

pub fn attempts(rows: &[ResultRow]) -> u64 {
    rows.iter()
        .map(|r| r["_attempts"].parse::<u64>().unwrap())
        .sum()
}

/// Reads a JSON file (a `--summary-json`), failing the test with its text if it is not JSON.
pub fn read_json(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text:?}"))
}

// ---------------------------------------------------------------------------------------
// Flags.

/// The flags of a fast job against `sandbox` writing `output` in `dir`: no rate limit,
/// millisecond backoff.
pub fn job_args(sandbox: &Sandbox, dir: &JobDir, output: &str) -> Vec<String> {
    job_args_to(&sandbox.url(), &dir.key_file(sandbox), dir, output)
}

/// The same fast flags against any API root, with the key in `key_file`.
pub fn job_args_to(url: &str, key_file: &str, dir: &JobDir, output: &str) -> Vec<String> {
    [
        "-o",
        dir.path(output).to_str().unwrap(),
        "--base-url",
        url,
        "--api-key-file",
        key_file,
        "--rate",
        "unlimited",
        "--backoff-base",
        "1ms",
        "--backoff-max",
        "20ms",
        // The tests of other things count every request: the list would be one more.
        // Preflight has its own tests (lifecycle).
        "--no-preflight",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// The fast flags of `job_args`, with the preflight at its default (on): the other
/// modules turn it off to count requests, and it is what these tests are about.
pub fn args_for(sandbox: &Sandbox, dir: &JobDir, output: &str) -> Vec<String> {
    default_preflight(job_args(sandbox, dir, output))
}

/// [`args_for`] against any API root.
pub fn args_to(url: &str, key_file: &str, dir: &JobDir, output: &str) -> Vec<String> {
    default_preflight(job_args_to(url, key_file, dir, output))
}

/// `args` without `--no-preflight`.
pub fn default_preflight(mut args: Vec<String>) -> Vec<String> {
    args.retain(|a| a != "--no-preflight");
    args
}

/// Sets the value of a flag that `args` already has (clap refuses a flag given twice).
pub fn set_flag(args: &mut [String], flag: &str, value: &str) {
    let at = args
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("{flag} is not among {args:?}"));
    args[at + 1] = value.to_owned();
}

/// `args` with `--summary-json` into `summary.json` of `dir` (read it with `Job::summary`).
pub fn with_summary(mut args: Vec<String>, dir: &JobDir) -> Vec<String> {
    let path = dir.path("summary.json");
    args.extend([
        "--summary-json".to_owned(),
        path.to_str().unwrap().to_owned(),
    ]);
    args
}

/// The retry command a summary printed on stderr (`retry the rows that did not succeed:
/// ...`), as its words with any shell quotes taken off, `dbprov` first; `None` without one.
pub fn printed_retry(stderr: &str) -> Option<Vec<String>> {
    let (_, command) = stderr
        .lines()
        .find_map(|l| l.split_once("retry the rows that did not succeed: "))?;
    Some(command_words(command))
}

/// A command line as its words, with simple shell quotes taken off.
pub fn command_words(command: &str) -> Vec<String> {
    command
        .split_whitespace()
        .map(|w| w.trim_matches(|c| c == '\'' || c == '"').to_owned())
        .collect()
}
