//! What the operator reads on stderr besides the summary: logs that stay JSON, the key
//! file and the base URL said plainly, validate's lines.

use std::os::fd::{FromRawFd, OwnedFd};

use serde_json::Value;

use crate::common::{Api, JobDir, job_args, plain_sandbox, sandbox_with, set_flag, tenants};
use crate::process::{dbprov, dbprov_with};

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
    let sandbox = sandbox_with(dbprov::sandbox::FaultConfig {
        latency: std::time::Duration::from_millis(20),
        ..Default::default()
    })
    .await;
    let dir = JobDir::new();
    let input = dir.write("in.csv", &tenants("t", 40));
    let mut args = job_args(&sandbox, &dir, "results.csv");
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
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write("in.csv", &tenants("t", 2));
    let args = job_args(&sandbox, &dir, "results.csv");
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);

    let results = dir.path("results.csv");
    let (mut terminal, stdin) = pty();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_dbprov"))
        .args([
            "rollback",
            results.to_str().unwrap(),
            "--log-format",
            "json",
        ])
        .args(&args[2..])
        .env_remove("DATABRAIN_API_KEY")
        .env_remove("DATABRAIN_BASE_URL")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::from(stdin))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
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
    assert_eq!(api.workspace_names().await.len(), 2, "nothing was deleted");
}

#[tokio::test]
async fn a_key_file_that_is_a_folder_or_empty_is_named_as_such() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = plain_sandbox().await;
    let dir = JobDir::new();
    let input = dir.write("in.csv", &tenants("t", 2));
    let folder = dir.path("keys");
    std::fs::create_dir(&folder).unwrap();
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o777)).unwrap();
    let blank = dir.write("blank", " \n\t\n");
    std::fs::set_permissions(&blank, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut args = job_args(&sandbox, &dir, "results.csv");
    for (key_file, says) in [
        (folder.to_str().unwrap(), "is a directory, not a key file"),
        (
            blank.as_str(),
            &format!("the key file {blank} is empty")[..],
        ),
    ] {
        set_flag(&mut args, "--api-key-file", key_file);
        let refused = dbprov_with(&["run", &input], &args).await;
        assert_eq!(refused.exit, 2, "{}", refused.stderr);
        assert!(refused.stderr.contains(says), "{}", refused.stderr);
        for misleading in ["readable by every user", "chmod", "no API key"] {
            assert!(!refused.stderr.contains(misleading), "{}", refused.stderr);
        }
    }
    assert_eq!(Api::new(&sandbox).stats().await["requests_total"], 0);
    assert!(!dir.path("results.csv").exists(), "nothing started");
}

#[tokio::test]
async fn a_base_url_with_a_password_is_refused_without_printing_it() {
    let sandbox = plain_sandbox().await;
    let dir = JobDir::new();
    let input = dir.write("in.csv", &tenants("t", 2));
    let summary = dir.path("summary.json");
    let mut args = job_args(&sandbox, &dir, "results.csv");
    let with_password = sandbox.url().replace("http://", "http://ops:PASSW0RD@");
    set_flag(&mut args, "--base-url", &with_password);
    args.extend([
        "--summary-json".to_owned(),
        summary.to_str().unwrap().to_owned(),
    ]);
    let results = dir.path("results.csv");
    for command in [
        vec!["run", &input],
        vec!["run", &input, "--dry-run"],
        vec!["plan", &input],
        vec!["retry", results.to_str().unwrap()],
        vec!["rollback", results.to_str().unwrap(), "--dry-run"],
    ] {
        // retry and rollback read a results file: a dry run leaves one.
        if command[0] != "run" && !results.exists() {
            let mut plain = job_args(&sandbox, &dir, "results.csv");
            plain.push("--dry-run".to_owned());
            assert_eq!(dbprov_with(&["run", &input], &plain).await.exit, 0);
        }
        // A rollback writes beside the file it reads, not over it.
        let extra = if command[0] == "rollback" {
            &args[2..]
        } else {
            &args[..]
        };
        let refused = dbprov_with(&command, extra).await;
        assert_eq!(refused.exit, 2, "{command:?}: {}", refused.stderr);
        assert!(
            refused
                .stderr
                .contains("put the key in DATABRAIN_API_KEY or --api-key-file, not in the URL"),
            "{command:?}: {}",
            refused.stderr
        );
        let written = std::fs::read_to_string(&summary).unwrap();
        for text in [&refused.stderr, &refused.stdout, &written] {
            assert!(!text.contains("PASSW0RD"), "{command:?}: {text}");
        }
    }
    assert_eq!(Api::new(&sandbox).stats().await["requests_total"], 0);
}
