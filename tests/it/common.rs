//! Shared helpers: an in-process sandbox on port 0 and a small HTTP client for it.

#![allow(dead_code)]

use std::time::Duration;

use dbprov::sandbox::{self, FaultConfig, Sandbox, SandboxConfig};
use serde_json::Value;

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

/// One results row, by column name.
pub type ResultRow = std::collections::BTreeMap<String, String>;

/// What a finished `dbprov` process left.
#[derive(Debug)]
pub struct Finished {
    pub exit: i32,
    pub stderr: String,
    pub stdout: String,
}

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

/// Runs the `dbprov` binary to its end, without blocking the runtime the sandbox lives on.
pub async fn dbprov(args: &[&str]) -> Finished {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_dbprov"))
        .args(args)
        .env_remove("DATABRAIN_API_KEY")
        .env_remove("DATABRAIN_BASE_URL")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    Finished {
        exit: output.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
    }
}

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

/// Each workspace name in the sandbox, with how many times it occurs.
pub async fn workspace_counts(api: &Api) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for name in api.workspace_names().await {
        *counts.entry(name).or_default() += 1;
    }
    counts
}

/// Sends a signal to a child process.
pub fn signal(child: &tokio::process::Child, signal: i32) {
    let pid = child.id().expect("the child is running") as i32;
    // SAFETY: kill(2) with a pid we own and a valid signal number has no memory effects.
    let sent = unsafe { libc::kill(pid, signal) };
    assert_eq!(sent, 0, "kill({pid}, {signal})");
}

/// Starts `dbprov` without waiting for it.
pub fn spawn_dbprov(args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_dbprov"))
        .args(args)
        .env_remove("DATABRAIN_API_KEY")
        .env_remove("DATABRAIN_BASE_URL")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until the sandbox has received at least `n` requests (polling its stats), or
/// the process has ended.
pub async fn until_requests(api: &Api, child: &mut tokio::process::Child, n: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if api.stats().await["requests_total"].as_u64().unwrap() >= n {
            return;
        }
        if child.try_wait().unwrap().is_some() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {n} requests within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

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

/// Sets the value of a flag that `args` already has (clap refuses a flag given twice).
pub fn set_flag(args: &mut [String], flag: &str, value: &str) {
    let at = args
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("{flag} is not among {args:?}"));
    args[at + 1] = value.to_owned();
}

/// Runs `dbprov` with `command` followed by `extra`.
pub async fn dbprov_with(command: &[&str], extra: &[String]) -> Finished {
    let mut args: Vec<&str> = command.to_vec();
    args.extend(extra.iter().map(String::as_str));
    dbprov(&args).await
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

/// Runs a command that dbprov printed (its words, `dbprov` first).
pub async fn run_printed(words: &[String]) -> Finished {
    assert_eq!(words[0], "dbprov", "{words:?}");
    let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    dbprov(&args).await
}
