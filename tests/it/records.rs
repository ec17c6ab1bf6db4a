//! Every record true, nothing lost (issue 8): results, statuses and inputs under operator
//! mistakes and odd answers. Each test names the point of the issue it covers.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use dbprov::sandbox::FaultConfig;
use tokio::io::AsyncWriteExt;

use crate::common::{
    Answer, Api, JobDir, ResultRow, assert_one_row_per_input_row, by_row, complete_records,
    fifty_one_rows, job_args, job_args_to, plain_sandbox, sandbox_with, set_flag, slow_sandbox,
    tenants, workspace_counts, writes,
};
use crate::fault_server::{Canned, FORGED, FaultServer, WORKSPACE, fault_key};
use crate::process::{
    BIN, Finished, command, dbprov, dbprov_with, finish, finish_within, limit, line, run_to_end,
    spawn_fed,
};

/// Runs two rows against `url` with `--max-attempts 3`.
async fn two_rows_against(url: &str, extra: &[&str]) -> (Finished, Vec<ResultRow>) {
    let dir = JobDir::new();
    let input = dir.write(
        "in.csv",
        "name,connectionType\na,MULTI_DATAMART\nb,MULTI_DATAMART\n",
    );
    let key = fault_key(&dir);
    let mut args = job_args_to(url, &key, &dir, "results.csv");
    args.extend(["--max-attempts", "3"].map(str::to_owned));
    args.extend(extra.iter().map(|s| s.to_string()));
    let run = dbprov_with(&["run", &input], &args).await;
    let (_, rows) = dir.results("results.csv");
    (run, rows)
}

#[tokio::test]
async fn p3_a_200_that_is_not_the_success_envelope_is_unexpected_and_retried() {
    for canned in [Canned::HtmlOk, Canned::ErrorEnvelopeOk] {
        let server = FaultServer::start(canned.clone()).await;
        let (run, rows) = two_rows_against(&server.url, &[]).await;
        assert_eq!(run.exit, 1, "{canned:?}: {}", run.stderr);
        assert_one_row_per_input_row(&rows, 2);
        for row in &rows {
            assert_eq!(row["_status"], "failed", "{canned:?}: {row:?}");
            assert_eq!(row["_error_code"], "UNEXPECTED_RESPONSE", "{canned:?}");
            assert_eq!(row["_http_status"], "200", "{canned:?}");
            assert_eq!(row["_attempts"], "3", "retried: the outcome is unknown");
        }
        assert_eq!(server.writes(), 6, "{canned:?}");
    }
}

#[tokio::test]
async fn p3_redirects_are_not_followed_and_are_final() {
    for status in [301, 302, 303, 307, 308] {
        let elsewhere = FaultServer::start(Canned::Success).await;
        let location = format!("{}{WORKSPACE}", elsewhere.url);
        let server = FaultServer::start(Canned::Redirect {
            status,
            location: location.clone(),
        })
        .await;
        let (run, rows) = two_rows_against(&server.url, &[]).await;
        assert_eq!(run.exit, 1, "{status}: {}", run.stderr);
        assert_one_row_per_input_row(&rows, 2);
        for row in &rows {
            assert_eq!(row["_status"], "failed", "{status}: {row:?}");
            assert_eq!(row["_error_code"], format!("HTTP_{status}"));
            assert_eq!(row["_http_status"], status.to_string());
            assert_eq!(row["_attempts"], "1", "a redirect is final");
            assert!(
                row["_error_message"].contains(&location),
                "the message gives the Location: {row:?}"
            );
        }
        assert_eq!(server.writes(), 2, "{status}");
        assert_eq!(
            elsewhere.requests(),
            0,
            "{status}: the Location was not visited"
        );
    }
}

/// 100 workspaces that exist as MULTI_DATAMART, in a sandbox that answers 30% of requests
/// with a 500; a job that moves them to DATASOURCE / postgres-main with `--on-exists update`.
async fn update_through_lost_answers() {
    let sandbox = sandbox_with(FaultConfig {
        fail_rate: 0.3,
        ..FaultConfig::default()
    })
    .await;
    let api = Api::new(&sandbox);
    let names: Vec<String> = (1..=100).map(|i| format!("w-{i:03}")).collect();
    for name in &names {
        let body = serde_json::json!({"name": name, "connectionType": "MULTI_DATAMART"});
        let mut tries = 0;
        loop {
            tries += 1;
            match api.create(&body).await {
                Answer::Http { status: 200, .. } => break,
                Answer::Http { status: 500, .. } if tries < 100 => continue,
                other => panic!("setting up {name}: {other:?}"),
            }
        }
    }
    let dir = JobDir::new();
    let mut csv = String::from("name,connectionType,datasourceName\n");
    for name in &names {
        csv.push_str(&format!("{name},DATASOURCE,postgres-main\n"));
    }
    let input = dir.write("in.csv", &csv);
    let mut args = job_args(&sandbox, &dir, "results.csv");
    args.extend(["--on-exists", "update", "--max-attempts", "30"].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let (_, rows) = dir.results("results.csv");
    assert_one_row_per_input_row(&rows, 100);
    let not_updated: Vec<_> = rows
        .iter()
        .filter(|r| r["_status"] != "updated")
        .map(|r| (r["name"].as_str(), r["_status"].as_str()))
        .collect();
    assert!(
        not_updated.is_empty(),
        "every workspace existed: each is updated, got {not_updated:?}"
    );
    let stored = api.get("/_sandbox/workspaces").await;
    let stored = stored.as_array().unwrap();
    assert_eq!(stored.len(), 100);
    for workspace in stored {
        assert_eq!(workspace["connectionType"], "DATASOURCE", "{workspace}");
        assert_eq!(workspace["datasourceName"], "postgres-main", "{workspace}");
    }
}

#[tokio::test]
async fn p5_on_exists_update_puts_after_a_lost_answer() {
    update_through_lost_answers().await;
}

#[tokio::test]
async fn p6d_a_summary_json_on_the_input_or_the_results_is_refused() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write("in.csv", &tenants("t", 5));
    std::fs::hard_link(&input, dir.path("link.csv")).unwrap();
    let args = job_args(&sandbox, &dir, "results.csv");
    let results = dir.path("results.csv");
    let link = dir.path("link.csv");
    for summary in [
        input.as_str(),
        results.to_str().unwrap(),
        link.to_str().unwrap(),
    ] {
        let run = dbprov_with(&["run", &input, "--summary-json", summary], &args).await;
        assert_eq!(run.exit, 2, "--summary-json {summary}: {}", run.stderr);
        assert_eq!(std::fs::read_to_string(&input).unwrap(), tenants("t", 5));
    }
    assert_eq!(writes(&api).await, 0, "no request");
}

#[tokio::test]
async fn p7_a_stray_quote_in_an_input_makes_one_row_malformed_in_run() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let args = job_args(&sandbox, &dir, "results.csv");
    let csv = tenants("t", 30).replace("\nt-0003,", "\n\"t-0003,");
    let input = dir.write("in.csv", &csv);
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let (_, rows) = dir.results("results.csv");
    assert_one_row_per_input_row(&rows, 30);
    let rows = by_row(&rows);
    assert_eq!(rows[&3]["_status"], "invalid");
    assert_eq!(rows[&3]["_error_code"], "MALFORMED_ROW");
    assert!(
        rows[&3]["_error_message"].contains("line 4"),
        "{:?}",
        rows[&3]
    );
    for (row, result) in &rows {
        if *row != 3 {
            assert_eq!(result["_status"], "created", "row {row}");
        }
    }
    assert_eq!(workspace_counts(&api).await.len(), 29);
}

#[tokio::test]
async fn p9_a_fifo_input_streams() {
    // Five rounds: a writer meets the first process that opens the FIFO, so a job that
    // opens it twice (to look at it, then to read it) loses the rows in some of them.
    for round in 1..=5 {
        let sandbox = plain_sandbox().await;
        let api = Api::new(&sandbox);
        let dir = JobDir::new();
        let fifo = dir.path("in.fifo");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string and mode.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::write(fifo, tenants("f", 20)))
        };
        let args = job_args(&sandbox, &dir, "results.csv");
        let mut child = command(&line(&["run", fifo.to_str().unwrap()], &args))
            .spawn()
            .unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(15), child.wait()).await;
        if ended.is_err() {
            child.start_kill().unwrap();
        }
        // A writer still waiting for a reader is let go.
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo);
        let run = finish(child).await;
        let _ = writer.join().unwrap();
        assert!(
            ended.is_ok(),
            "round {round}: dbprov still waits on the FIFO after 15 s: {}",
            run.stderr
        );
        assert_eq!(run.exit, 0, "round {round}: {}", run.stderr);
        let (_, rows) = dir.results("results.csv");
        assert_one_row_per_input_row(&rows, 20);
        assert!(rows.iter().all(|r| r["_status"] == "created"));
        assert_eq!(writes(&api).await, 20);
    }
}

#[tokio::test]
async fn p9_dev_stdin_as_the_input_path_streams() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let args = job_args(&sandbox, &dir, "results.csv");
    let (child, mut stdin) = spawn_fed(&line(&["run", "/dev/stdin"], &args));
    stdin.write_all(tenants("s", 20).as_bytes()).await.unwrap();
    drop(stdin);
    let run = finish_within(child, Duration::from_secs(20)).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let (_, rows) = dir.results("results.csv");
    assert_one_row_per_input_row(&rows, 20);
    assert!(rows.iter().all(|r| r["_status"] == "created"));
    assert_eq!(writes(&api).await, 20);
}

#[tokio::test]
async fn p10_shards_without_o_write_their_own_default_results_files() {
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
async fn p10_shards_are_balanced_for_names_over_a_small_alphabet() {
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
async fn p11_absurd_rates_are_refused_with_exit_2_not_a_panic() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let mut args = job_args(&sandbox, &dir, "results.csv");
    let input = dir.write("in.csv", &tenants("t", 3));
    for rate in ["1e-20/s", "0.0000001/h"] {
        set_flag(&mut args, "--rate", rate);
        let run = dbprov_with(&["run", &input], &args).await;
        assert_eq!(run.exit, 2, "--rate {rate}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        assert!(run.stderr.contains("--rate"), "{}", run.stderr);
    }
    assert_eq!(writes(&api).await, 0);
}

async fn a_500_with_a_body(canned: Canned) {
    let server = FaultServer::start(canned).await;
    let dir = JobDir::new();
    let input = dir.write("in.csv", "name,connectionType\nbig,MULTI_DATAMART\n");
    let mut args = job_args_to(&server.url, &fault_key(&dir), &dir, "results.csv");
    args.extend(["--timeout", "20s", "--max-attempts", "2"].map(str::to_owned));
    let started = Instant::now();
    let mut job = command(&line(&["run", &input], &args));
    // Under a memory limit (as a container has), reading a 100 MB body whole is an abort.
    // One malloc arena and two runtime threads keep the address space the same on any
    // machine (each arena reserves 64 MB of it).
    job.env("MALLOC_ARENA_MAX", "1")
        .env("TOKIO_WORKER_THREADS", "2");
    limit(&mut job, libc::RLIMIT_AS, 192 << 20);
    let run = run_to_end(job).await;
    let took = started.elapsed();
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let (_, rows) = dir.results("results.csv");
    assert_eq!(rows[0]["_status"], "failed");
    assert_eq!(rows[0]["_error_code"], "HTTP_500");
    assert_eq!(rows[0]["_http_status"], "500");
    assert_eq!(rows[0]["_attempts"], "2");
    let message = rows[0]["_error_message"].len();
    assert!(message < 1000, "a message of {message} bytes");
    assert!(
        took < Duration::from_secs(15),
        "two attempts took {took:?}: the body was read to the timeout"
    );
}

#[tokio::test]
async fn p11_an_endless_error_body_is_read_only_so_far() {
    a_500_with_a_body(Canned::EndlessError).await;
}

#[tokio::test]
async fn p11_a_100_mb_error_body_is_read_only_so_far() {
    a_500_with_a_body(Canned::HugeError(100 * 1024 * 1024)).await;
}

#[tokio::test]
async fn p11_a_concurrency_beyond_the_file_descriptor_limit_is_raised_or_refused() {
    let sandbox = slow_sandbox(200).await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let args = job_args(&sandbox, &dir, "results.csv");
    let input = dir.write("in.csv", &tenants("t", 1500));
    let mut job = command(&line(&["run", &input, "--concurrency", "1000"], &args));
    limit(&mut job, libc::RLIMIT_NOFILE, 256);
    let run = run_to_end(job).await;
    match run.exit {
        2 => {
            assert_eq!(writes(&api).await, 0, "refused before any request");
            let said = run.stderr.to_lowercase();
            assert!(
                said.contains("limit")
                    && (said.contains("file descriptor") || said.contains("open files")),
                "names the file-descriptor limit: {}",
                run.stderr
            );
        }
        0 => {
            let (_, rows) = dir.results("results.csv");
            assert_one_row_per_input_row(&rows, 1500);
            assert!(rows.iter().all(|r| r["_status"] == "created"));
        }
        other => panic!("exit {other}: {}", run.stderr),
    }
    assert!(
        !run.stderr.contains("Too many open files"),
        "{}",
        run.stderr
    );
    if let Ok(text) = std::fs::read_to_string(dir.path("results.csv")) {
        assert!(!text.contains("Too many open files"));
    }
}

const CANARY: &str = "canary-key-5f2b";

#[tokio::test]
async fn p12_a_page_that_echoes_the_authorization_header_never_leaks_the_key() {
    for status in [401, 502] {
        let server = FaultServer::start(Canned::EchoAuthorization(status)).await;
        let dir = JobDir::new();
        let input = dir.write("in.csv", &tenants("t", 3));
        let key = dir.write("key", &format!("{CANARY}\n"));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut args = job_args_to(&server.url, &key, &dir, "results.csv");
        let summary = dir.path("summary.json");
        args.extend(
            [
                "--max-attempts",
                "2",
                "-v",
                "--summary-json",
                summary.to_str().unwrap(),
            ]
            .map(str::to_owned),
        );
        let run = dbprov_with(&["run", &input], &args).await;
        assert!(
            run.exit == 1 || run.exit == 3,
            "{status}: exit {}: {}",
            run.exit,
            run.stderr
        );
        assert!(server.writes() > 0, "the page was seen");
        let results = std::fs::read_to_string(dir.path("results.csv")).unwrap();
        let summary = std::fs::read_to_string(&summary).unwrap();
        for (what, text) in [
            ("results", &results),
            ("stderr", &run.stderr),
            ("stdout", &run.stdout),
            ("summary", &summary),
        ] {
            assert!(
                !text.contains(CANARY),
                "{status}: the key is in {what}: {text}"
            );
        }
        let (_, rows) = dir.results("results.csv");
        assert!(
            rows.iter().any(|r| r["_http_status"] == status.to_string()),
            "{rows:?}"
        );
    }
}

#[tokio::test]
async fn p12_line_breaks_from_the_server_cannot_forge_lines() {
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

#[tokio::test]
async fn the_retry_hint_repeats_the_options_that_shaped_the_run_and_works() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write("in.csv", &fifty_one_rows());
    let key = dir.key_file(&sandbox);
    let results = dir.path("results.csv");
    let url = sandbox.url();
    let run = dbprov(&[
        "run",
        &input,
        "-o",
        results.to_str().unwrap(),
        "--base-url",
        &url,
        "--api-key-file",
        &key,
        "--on-exists",
        "update",
        "--rate",
        "500/s",
        "--concurrency",
        "3",
    ])
    .await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let hint = run
        .stderr
        .lines()
        .find_map(|l| l.split_once("retry the rows that did not succeed: "))
        .map(|(_, command)| command.trim().to_owned())
        .unwrap_or_else(|| panic!("no retry hint: {}", run.stderr));
    // Words of the command, with any shell quotes taken off.
    let words: Vec<String> = hint
        .split_whitespace()
        .map(|w| w.trim_matches(|c| c == '\'' || c == '"').to_owned())
        .collect();
    for (flag, value) in [
        ("--base-url", url.as_str()),
        ("--api-key-file", key.as_str()),
        ("--on-exists", "update"),
        ("--rate", "500/s"),
        ("--concurrency", "3"),
    ] {
        let given = words.windows(2).any(|w| w[0] == flag && w[1] == value)
            || words.contains(&format!("{flag}={value}"));
        assert!(given, "{flag} {value} is not in {hint:?}");
    }
    assert!(!hint.contains(sandbox.api_key()), "{hint}");
    let sent = writes(&api).await;

    // The hint runs as printed, from a shell, with dbprov on the PATH.
    let bin_dir = std::path::Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut shell = tokio::process::Command::new("sh");
    shell
        .args(["-c", &hint])
        .env("PATH", path)
        .env_remove("DATABRAIN_API_KEY")
        .env_remove("DATABRAIN_BASE_URL")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let retry = run_to_end(shell).await;
    assert_eq!(retry.exit, 1, "{}", retry.stderr);
    assert_eq!(writes(&api).await, sent + 7, "the seven failed rows again");
    assert_one_row_per_input_row(&dir.results("results.csv").1, 51);
}

#[tokio::test]
async fn the_key_leaks_neither_through_a_code_nor_through_a_cut_excerpt() {
    // 183: "Bearer " and the key straddle the 200th character of a page's excerpt.
    for canned in [
        Canned::AuthorizationAsCode,
        Canned::AuthorizationAt(183),
        Canned::AuthorizationAt(190),
        // The 64 KiB cut falls inside the key, and the spaces fold away in the excerpt.
        Canned::AuthorizationAfterSpaces(64 * 1024 - 1 - "Bearer ".len() - 10),
    ] {
        let server = FaultServer::start(canned.clone()).await;
        let dir = JobDir::new();
        let input = dir.write("in.csv", &tenants("t", 2));
        let key = dir.write("key", &format!("{CANARY}\n"));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut args = job_args_to(&server.url, &key, &dir, "results.csv");
        args.extend(["--max-attempts", "2", "-v"].map(str::to_owned));
        let run = dbprov_with(&["run", &input], &args).await;
        assert_eq!(run.exit, 1, "{canned:?}: {}", run.stderr);
        let results = std::fs::read_to_string(dir.path("results.csv")).unwrap();
        // Not the key, and not its first eight characters either.
        for text in [&results, &run.stderr] {
            assert!(!text.contains(&CANARY[..8]), "{canned:?}: {text}");
        }
    }
}

#[tokio::test]
async fn a_success_envelope_naming_another_workspace_is_not_a_success() {
    let server = FaultServer::start(Canned::SuccessFor("someone-else".into())).await;
    let (run, rows) = two_rows_against(&server.url, &[]).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    for row in &rows {
        assert_eq!(row["_status"], "failed", "{row:?}");
        assert_eq!(row["_error_code"], "UNEXPECTED_RESPONSE", "{row:?}");
        assert!(row["_error_message"].contains("someone-else"), "{row:?}");
    }
}

#[tokio::test]
async fn a_summary_json_that_leads_to_the_results_file_is_refused() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write("in.csv", &tenants("t", 3));
    std::fs::create_dir(dir.path("sub")).unwrap();
    std::os::unix::fs::symlink("r2.csv", dir.path("link2")).unwrap();
    std::os::unix::fs::symlink("r3.csv", dir.path("link3")).unwrap();
    for (output, summary) in [
        ("sub/../r1.csv", "r1.csv"),
        ("r2.csv", "link2"),
        ("link3", "r3.csv"),
    ] {
        let mut args = job_args(&sandbox, &dir, output);
        args.extend(["--summary-json", dir.path(summary).to_str().unwrap()].map(str::to_owned));
        let run = dbprov_with(&["run", &input], &args).await;
        assert_eq!(
            run.exit, 2,
            "-o {output} --summary-json {summary}: {}",
            run.stderr
        );
        assert!(run.stderr.contains("--summary-json"), "{}", run.stderr);
    }
    assert_eq!(writes(&api).await, 0);
}

#[tokio::test]
async fn a_base_url_with_a_query_and_a_summary_on_stdout_are_refused() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write("in.csv", &tenants("t", 2));
    let mut args = job_args(&sandbox, &dir, "results.csv");
    set_flag(&mut args, "--base-url", &format!("{}/?a=b", sandbox.url()));
    let query = dbprov_with(&["run", &input], &args).await;
    assert_eq!(query.exit, 2, "{}", query.stderr);
    assert!(query.stderr.contains("?query"), "{}", query.stderr);

    let mut args = job_args(&sandbox, &dir, "results.csv");
    set_flag(&mut args, "-o", "-");
    let mut job = command(&line(
        &["run", &input, "--summary-json", "/dev/stdout"],
        &args,
    ));
    job.stdout(Stdio::piped());
    let stdout = run_to_end(job).await;
    assert_eq!(stdout.exit, 2, "{}", stdout.stderr);
    assert!(
        stdout.stderr.contains("standard output"),
        "{}",
        stdout.stderr
    );
    assert_eq!(writes(&api).await, 0);
}
