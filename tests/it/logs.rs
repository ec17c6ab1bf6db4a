//! What stderr shows while a job runs: log levels and formats, JSON events one a line, the
//! progress bar on a terminal and none elsewhere, and no line forged by the server's text.

use std::os::fd::{FromRawFd, OwnedFd};

use dbprov::sandbox::FaultConfig;
use serde::de::Error as _;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::common::{
    JobDir, assert_one_row_per_input_row, job_args_to, set_flag, tenants, with_summary,
};
use crate::fault_server::{Canned, FORGED, FaultServer, fault_key};
use crate::fixture::Job;
use crate::process::{dbprov, dbprov_with, start};

#[tokio::test]
async fn line_breaks_from_the_server_cannot_forge_lines() {
    let server = FaultServer::start(Canned::ForgedLogLine).await;
    let dir = JobDir::new();
    let input = dir.write("in.csv", &tenants("t", 3));
    let args = job_args_to(&server.url, &fault_key(&dir), &dir, "results.csv");
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let (_, rows) = dir.results("results.csv");
    assert_one_row_per_input_row(&rows, 3);
    let text = std::fs::read_to_string(dir.path("results.csv")).unwrap();
    assert_eq!(text.lines().count(), 4, "one line per row: {text}");
    for row in &rows {
        assert_eq!(row["_status"], "failed");
        for column in ["_error_code", "_error_message"] {
            assert!(
                !row[column].chars().any(char::is_control),
                "{column}: {:?}",
                row[column]
            );
        }
        assert!(row["_error_message"].contains("bad"), "{row:?}");
    }
    assert!(
        !run.stderr
            .lines()
            .any(|l| l.starts_with(&FORGED[..20]) || l.starts_with(FORGED)),
        "a forged line on stderr: {}",
        run.stderr
    );
}

/// Parses one JSON text, refusing an object that holds a key twice (`serde_json::Value`
/// would keep the last one silently).
fn parse_strict(text: &str) -> Result<Value, String> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = Strict
        .deserialize(&mut deserializer)
        .map_err(|e| e.to_string())?;
    deserializer.end().map_err(|e| e.to_string())?;
    Ok(value)
}

/// Builds a `Value` like serde_json does, but fails on a duplicate key.
struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Strict)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(A::Error::custom(format!("the key {key:?} twice")));
            }
            let value = map.next_value_seed(Strict)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Every line of `stderr` as a JSON object without duplicate keys; fails the test on the
/// first line that is not one.
fn json_lines(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .map(|line| {
            let value = parse_strict(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert!(value.is_object(), "not an object: {line}");
            value
        })
        .collect()
}

#[test]
fn the_strict_parser_refuses_a_key_twice() {
    assert!(parse_strict(r#"{"span":{"name":"row","row":1,"name":"x"}}"#).is_err());
    assert!(parse_strict(r#"[{"a":1},{"a":2,"b":[{"c":1,"c":2}]}]"#).is_err());
    assert_eq!(
        parse_strict(r#"{"a":[1,2.5,"x",null,true],"b":{"a":-1}}"#).unwrap(),
        serde_json::json!({"a":[1,2.5,"x",null,true],"b":{"a":-1}})
    );
}

#[tokio::test]
async fn json_logs_are_one_object_a_line_without_a_key_twice_and_end_with_the_summary() {
    // Retries log inside the row's span; -vv opens the HTTP stack's spans and events too.
    let job = Job::with_faults(FaultConfig {
        fail_rate: 0.3,
        ..FaultConfig::default()
    })
    .await;
    let mut args = with_summary(job.args("results.csv"), &job.dir);
    args.extend(
        [
            "--log-format",
            "json",
            "-vv",
            "--max-attempts",
            "10",
            "--progress-every",
            "10ms",
        ]
        .map(str::to_owned),
    );
    let run = dbprov_with(&["run", "samples/tenants.csv"], &args).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let events = json_lines(&run.stderr);
    assert!(events.len() > 50, "{}", run.stderr);
    let in_a_row = events
        .iter()
        .find(|e| e["span"]["name"] == "row" && e["fields"]["message"].is_string())
        .expect("events inside a row's span");
    assert!(in_a_row["span"]["workspace"].is_string(), "{in_a_row}");
    assert!(in_a_row["span"]["row"].is_u64(), "{in_a_row}");
    let failure = events
        .iter()
        .find(|e| e["fields"]["code"] == "INVALID_DATASOURCE_NAME")
        .expect("the failed row is logged");
    assert_eq!(failure["fields"]["workspace"], "Legacy Oracle Tenant");

    let last = events.last().unwrap();
    assert_eq!(last["level"], "INFO");
    assert_eq!(last["target"], "dbprov::summary");
    assert!(
        last["fields"]["message"]
            .as_str()
            .unwrap()
            .starts_with("51 rows in "),
        "{last}"
    );
    let json = job.summary();
    assert_eq!(
        last["fields"]["summary"], json,
        "the same figures as --summary-json"
    );
    assert!(json["retries"].as_u64().unwrap() > 0, "{json}");
    assert_eq!(
        events
            .iter()
            .filter(|e| e["fields"]["summary"].is_object())
            .count(),
        1,
        "one summary event"
    );

    // An error that stops the job before it starts is one JSON event too.
    let missing = job.dir.path("missing.csv");
    let mut args = job.args("other.csv");
    args.extend(["--log-format", "json"].map(str::to_owned));
    let refused = dbprov_with(&["run", missing.to_str().unwrap()], &args).await;
    assert_eq!(refused.exit, 2, "{}", refused.stderr);
    let events = json_lines(&refused.stderr);
    let error = events.last().unwrap();
    assert_eq!(error["level"], "ERROR", "{error}");
    assert!(
        error["fields"]["message"]
            .as_str()
            .unwrap()
            .contains("missing.csv"),
        "{error}"
    );
}

/// Every line of `stderr` as a JSON event; fails on any line that is not one.
fn json_events(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
        })
        .collect()
}

fn message(event: &Value) -> &str {
    event["fields"]["message"].as_str().unwrap_or("")
}

#[tokio::test]
async fn json_logs_draw_no_bar_even_when_one_is_asked_for() {
    let job = Job::with_faults(dbprov::sandbox::FaultConfig {
        latency: std::time::Duration::from_millis(20),
        ..Default::default()
    })
    .await;
    let input = job.input(&tenants("t", 40));
    let mut args = job.args("results.csv");
    set_flag(&mut args, "--rate", "unlimited");
    let json = dbprov_with(
        &[
            "run",
            &input,
            "--progress",
            "always",
            "--progress-every",
            "50ms",
            "--concurrency",
            "2",
            "--log-format",
            "json",
        ],
        &args,
    )
    .await;
    assert_eq!(json.exit, 0, "{}", json.stderr);
    assert!(
        !json.stderr.contains('\x1b') && !json.stderr.contains('\r'),
        "{:?}",
        json.stderr
    );
    let events = json_events(&json.stderr);
    assert!(
        events.iter().any(|e| message(e).starts_with("progress: ")),
        "the figures come as log events: {}",
        json.stderr
    );
}

#[tokio::test]
async fn a_refused_command_line_is_one_json_event_when_json_logs_are_asked_for() {
    for spelling in [&["--log-format", "json"][..], &["--log-format=json"][..]] {
        let mut args = vec!["run", "in.csv", "--bogus"];
        args.extend(spelling);
        let refused = dbprov(&args).await;
        assert_eq!(refused.exit, 2, "{}", refused.stderr);
        let events = json_events(&refused.stderr);
        assert_eq!(events.len(), 1, "{}", refused.stderr);
        assert_eq!(events[0]["level"], "ERROR");
        assert!(
            message(&events[0]).starts_with("unexpected argument '--bogus'"),
            "{}",
            refused.stderr
        );
        assert!(message(&events[0]).contains("Usage: dbprov run"));
    }
    // A value clap refuses, before --log-format is even read.
    let bad_value = dbprov(&["--log-format", "json", "run", "in.csv", "--rate", "fast"]).await;
    assert_eq!(bad_value.exit, 2, "{}", bad_value.stderr);
    assert_eq!(json_events(&bad_value.stderr)[0]["level"], "ERROR");

    // Text otherwise, and help and version as they are.
    let text = dbprov(&["run", "in.csv", "--bogus"]).await;
    assert_eq!(text.exit, 2);
    assert!(
        text.stderr.starts_with("error: unexpected argument"),
        "{}",
        text.stderr
    );
    let help = dbprov(&["run", "--help", "--log-format", "json"]).await;
    assert_eq!(help.exit, 0, "{}", help.stderr);
    assert!(
        help.stdout.starts_with("Provision a workspace"),
        "{}",
        help.stdout
    );
    let version = dbprov(&["--version", "--log-format=json"]).await;
    assert_eq!(version.exit, 0);
    assert!(version.stdout.starts_with("dbprov "), "{}", version.stdout);
}

/// A pseudo-terminal: the parent end, and the child end to give a process as stdin.
fn pty() -> (std::fs::File, OwnedFd) {
    let (mut parent, mut child) = (0, 0);
    // SAFETY: openpty writes two descriptors into the ints we pass; the other arguments
    // may be null.
    let opened = unsafe {
        libc::openpty(
            &mut parent,
            &mut child,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(opened, 0, "openpty");
    // SAFETY: both descriptors were just opened, and each is owned once.
    unsafe {
        (
            std::fs::File::from_raw_fd(parent),
            OwnedFd::from_raw_fd(child),
        )
    }
}

#[tokio::test]
async fn a_rollback_asked_on_a_terminal_answers_in_json_among_json_logs() {
    use std::io::Write;
    let job = Job::new().await;
    let input = job.input(&tenants("t", 2));
    let args = job.args("results.csv");
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);

    let results = job.dir.path("results.csv");
    let (mut terminal, stdin) = pty();
    let child = start(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_dbprov"))
            .args([
                "rollback",
                results.to_str().unwrap(),
                "--log-format",
                "json",
            ])
            .args(args[2..].iter().filter(|a| *a != "--no-preflight"))
            .env_remove("DATABRAIN_API_KEY")
            .env_remove("DATABRAIN_BASE_URL")
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::from(stdin))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped()),
    );
    // Read when the question is asked: the terminal holds the line until then.
    terminal.write_all(b"no\n").unwrap();
    let output = child.wait_with_output().await.unwrap();
    drop(terminal);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let events = json_events(&stderr);
    assert!(
        events
            .iter()
            .any(|e| message(e).contains("Type yes to go on")),
        "{stderr}"
    );
    assert!(
        events.iter().any(|e| message(e) == "nothing was sent"),
        "{stderr}"
    );
    assert_eq!(
        job.api.workspace_names().await.len(),
        2,
        "nothing was deleted"
    );
}

#[tokio::test]
async fn progress_always_draws_a_bar_and_log_lines_print_above_it() {
    let job = Job::new().await;
    let mut args = job.args("results.csv");
    set_flag(&mut args, "--rate", "200/s");
    args.extend(["--progress", "always"].map(str::to_owned));
    let run = dbprov_with(&["run", "samples/tenants.csv"], &args).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    assert!(run.stderr.contains("/51 rows "), "{}", run.stderr);
    assert!(run.stderr.contains("\r\x1b[2K"), "the bar redraws in place");
    // Every log line starts on a line of its own: the bar is cleared before it.
    let mut warnings = 0;
    for line in run.stderr.split('\n') {
        if let Some(at) = line.find(" WARN ") {
            warnings += 1;
            // After the last clear, only a cursor move up (to the first line of a bar that
            // wrapped) may come before the log line's timestamp.
            let before = line[..at].rsplit("\x1b[2K").next().unwrap();
            let before = before.trim_start_matches("\x1b[1A");
            assert!(
                before.starts_with("20") && !before.contains("rows"),
                "a log line glued to the bar: {line:?}"
            );
        }
    }
    assert!(
        warnings >= 6,
        "the ignored column and the failed and invalid rows are logged"
    );
    assert!(run.stderr.contains("dbprov: 51 rows in"));
}

#[tokio::test]
async fn without_a_terminal_there_is_no_bar_and_no_escape_code() {
    let job = Job::new().await;
    let run = job.run(&["run", "samples/tenants.csv"]).await;
    assert_eq!(run.exit, 1);
    assert!(!run.stderr.contains('\x1b'), "{:?}", run.stderr);
    assert!(!run.stderr.contains("/51 rows "));
    assert!(run.stderr.contains("dbprov: 51 rows in"));
}

#[tokio::test]
async fn logs_follow_verbosity_and_format() {
    let job = Job::new().await;
    let quiet = job
        .run(&["run", "samples/tenants.csv", "-q", "--overwrite"])
        .await;
    assert!(!quiet.stderr.contains(" INFO "), "{}", quiet.stderr);
    assert!(quiet.stderr.contains(" WARN "));

    let json = job
        .run(&[
            "run",
            "samples/tenants.csv",
            "--log-format",
            "json",
            "--overwrite",
        ])
        .await;
    let events: Vec<Value> = json
        .stderr
        .lines()
        .take_while(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(events.len() >= 6, "{}", json.stderr);
    let failure = events
        .iter()
        .find(|e| e["fields"]["code"] == "INVALID_DATASOURCE_NAME")
        .expect("the failed row is logged");
    assert_eq!(failure["level"], "WARN");
    assert_eq!(failure["fields"]["row"], 8);
    assert_eq!(failure["fields"]["workspace"], "Legacy Oracle Tenant");
}

#[tokio::test]
async fn one_row_is_said_one_row() {
    let job = crate::fixture::Job::new().await;
    let input = job.input(&crate::common::tenants("t", 1));
    let run = job.run(&["run", &input]).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    assert!(run.stderr.contains("dbprov: 1 row in "), "{}", run.stderr);
    let validate = crate::process::dbprov(&["validate", &input]).await;
    assert!(
        validate.stderr.contains("1 row: 1 valid, 0 invalid"),
        "{}",
        validate.stderr
    );
}

#[tokio::test]
async fn the_bars_last_frame_says_what_the_summary_says() {
    let job = crate::fixture::Job::new().await;
    let input = job.input(&crate::common::tenants("t", 51));
    let run = job.run(&["run", &input, "--progress", "always"]).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let last = run
        .stderr
        .split(['\r', '\n'])
        .rfind(|frame| frame.contains("/51 rows"))
        .unwrap_or_else(|| panic!("no frame: {}", run.stderr));
    assert!(
        last.contains("51/51 rows") && last.contains("created 51"),
        "{last:?}"
    );
    assert!(run.stderr.contains("51 rows in"), "{}", run.stderr);
}
