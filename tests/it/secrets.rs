//! The API key: never printed (not even at trace level, nor in part), never sent over plain
//! HTTP to another machine, and its file checked and named plainly.

use std::os::unix::fs::PermissionsExt;

use dbprov::sandbox;
use dbprov::sandbox::SandboxConfig;

use crate::common::{JobDir, job_args_to, plain_sandbox, set_flag, tenants};
use crate::fault_server::{Canned, FaultServer};
use crate::fixture::Job;
use crate::hostile::{Hostile, HostileState};
use crate::process::dbprov_with;

const CANARY: &str = "canary-key-5f2b";

#[tokio::test]
async fn a_page_that_echoes_the_authorization_header_never_leaks_the_key() {
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
async fn a_failed_list_never_shows_a_part_of_the_key() {
    let key = "9f3a6c1e-4b2d-4e8f-a1b2-c3d4e5f60718";
    let hostile = Hostile::start(HostileState {
        list_502_echoing: Some(key.to_owned()),
        ..HostileState::default()
    })
    .await;
    let dir = JobDir::new();
    let input = dir.write("t.csv", &tenants("t", 2));
    let key_file = dir.private_key(&format!("{key}\n"));
    let mut args = job_args_to(&hostile.url, &key_file, &dir, "r.csv");
    args.retain(|a| a != "--no-preflight");
    args.extend(["--max-attempts", "2", "-v"].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    assert!(run.stderr.contains("preflight"), "{}", run.stderr);
    assert!(!run.stderr.contains(&key[..12]), "{}", run.stderr);
}

#[tokio::test]
async fn a_key_file_that_is_a_folder_or_empty_is_named_as_such() {
    use std::os::unix::fs::PermissionsExt;
    let job = Job::new().await;
    let input = job.input(&tenants("t", 2));
    let folder = job.dir.path("keys");
    std::fs::create_dir(&folder).unwrap();
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o777)).unwrap();
    let blank = job.dir.write("blank", " \n\t\n");
    std::fs::set_permissions(&blank, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut args = job.args("results.csv");
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
    assert_eq!(job.requests().await, 0);
    assert!(!job.dir.path("results.csv").exists(), "nothing started");
}

#[tokio::test]
async fn a_base_url_with_a_password_is_refused_without_printing_it() {
    let job = Job::new().await;
    let input = job.input(&tenants("t", 2));
    let summary = job.dir.path("summary.json");
    let mut args = job.args("results.csv");
    let with_password = job.sandbox.url().replace("http://", "http://ops:PASSW0RD@");
    set_flag(&mut args, "--base-url", &with_password);
    args.extend([
        "--summary-json".to_owned(),
        summary.to_str().unwrap().to_owned(),
    ]);
    let results = job.dir.path("results.csv");
    for command in [
        vec!["run", &input],
        vec!["run", &input, "--dry-run"],
        vec!["plan", &input],
        vec!["retry", results.to_str().unwrap()],
        vec!["rollback", results.to_str().unwrap(), "--dry-run"],
    ] {
        // retry and rollback read a results file: a dry run leaves one.
        if command[0] != "run" && !results.exists() {
            let mut plain = job.args("results.csv");
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
    assert_eq!(job.requests().await, 0);
}

#[tokio::test]
async fn the_key_never_appears_in_any_output_even_at_trace() {
    const KEY: &str = "dbn_live_CANARY_4f1d9c2b7e";
    let job = Job::on(
        sandbox::spawn(SandboxConfig {
            api_key: KEY.into(),
            ..SandboxConfig::default()
        })
        .await
        .unwrap(),
    );
    let mut args = job.args("results.csv");
    let summary = job.dir.path("summary.json");
    args.extend([
        "--summary-json".to_owned(),
        summary.to_str().unwrap().to_owned(),
    ]);
    args.extend(["-vv", "--max-attempts", "2"].map(str::to_owned));
    let ok = dbprov_with(&["run", "samples/tenants.csv"], &args).await;
    assert_eq!(ok.exit, 1, "{}", ok.stderr);
    assert!(ok.stderr.contains("TRACE"), "trace logs were on");
    assert!(
        ok.stderr.contains("hyper") || ok.stderr.contains("reqwest"),
        "the HTTP stack logged too"
    );

    // The same key, refused by another sandbox: the 401 path and its messages.
    let other = sandbox::spawn(SandboxConfig::default()).await.unwrap();
    let refused_args: Vec<String> = [
        "-o",
        job.dir.path("refused.csv").to_str().unwrap(),
        "--base-url",
        &other.url(),
        "--api-key-file",
        &job.dir.key_file(&job.sandbox),
        "-vv",
    ]
    .map(str::to_owned)
    .to_vec();
    let refused = dbprov_with(&["run", "samples/tenants.csv"], &refused_args).await;
    assert_eq!(refused.exit, 3);

    let mut haystacks = vec![ok.stdout, ok.stderr, refused.stdout, refused.stderr];
    for file in ["results.csv", "summary.json", "refused.csv"] {
        haystacks.push(std::fs::read_to_string(job.dir.path(file)).unwrap());
    }
    for (i, text) in haystacks.iter().enumerate() {
        assert!(!text.contains(KEY), "output {i} leaks the key");
        assert!(!text.contains("CANARY"), "output {i} leaks part of the key");
    }
}

#[tokio::test]
async fn plain_http_to_another_machine_is_refused_and_a_readable_key_file_is_warned_about() {
    let dir = JobDir::new();
    let input = dir.write("in.csv", &tenants("t", 2));
    let key = dir.write("key", "dbn_live_x\n");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = dir.path("results.csv");
    let insecure = job_args_to(
        "http://databrain.internal.example",
        &key,
        &dir,
        "results.csv",
    );
    let refused = dbprov_with(&["run", &input], &insecure).await;
    assert_eq!(refused.exit, 2);
    assert!(
        refused.stderr.contains("--allow-insecure-http"),
        "{}",
        refused.stderr
    );
    assert!(!output.exists(), "nothing started");

    let sandbox = plain_sandbox().await;
    let local = job_args_to(&sandbox.url(), &key, &dir, "results.csv");
    let readable = dbprov_with(&["run", &input], &local).await;
    assert!(
        readable.stderr.contains("readable by every user"),
        "{}",
        readable.stderr
    );
    assert!(readable.stderr.contains("chmod 600"));
}
