//! A self-hosted API behind a private certificate authority: trusted through `--ca-cert`,
//! `SSL_CERT_FILE` or `SSL_CERT_DIR`, and, without them, a certificate error that says what
//! to give, not an outage.

use crate::common::{assert_one_row_per_input_row, expect, read_json, set_flag, tally, tenants};
use crate::fixture::Job;
use crate::process::{Finished, command, dbprov_with, line, run_to_end};
use crate::tls_front::{TlsFront, unrelated_authority};

/// A job against a sandbox behind a TLS front, and its args pointed at the front.
async fn behind_tls(rows: usize) -> (Job, TlsFront, String, Vec<String>) {
    let job = Job::new().await;
    let front = TlsFront::start(&job.sandbox.url()).await;
    let input = job.input(&tenants("t", rows));
    let mut args = job.args_with_preflight("results.csv");
    set_flag(&mut args, "--base-url", &front.url);
    (job, front, input, args)
}

/// Runs `dbprov run INPUT ARGS` with these environment variables, and no other that
/// names certificates.
async fn run_with_env(input: &str, args: &[String], env: &[(&str, &str)]) -> Finished {
    let words = line(&["run", input], args);
    let mut command = command(&words);
    command
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR");
    for (name, value) in env {
        command.env(name, value);
    }
    run_to_end(command).await
}

#[tokio::test]
async fn rows_are_created_through_https_with_ca_cert() {
    let (job, front, input, mut args) = behind_tls(5).await;
    let ca = job.dir.write("ca.pem", &front.ca_pem);
    args.extend(["--ca-cert".to_owned(), ca.clone()]);
    args.extend(["--summary-json".to_owned(), job.path("summary.json")]);
    let run = run_with_env(&input, &args, &[]).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let rows = job.rows();
    assert_one_row_per_input_row(&rows, 5);
    assert_eq!(tally(&rows), expect(&[("created", 5)]));
    assert_eq!(rows[0]["_target"], front.url, "the API reached through TLS");
    assert_eq!(job.api.workspace_names().await.len(), 5);
    let summary = read_json(&job.dir.path("summary.json"));
    assert_eq!(summary["exit_code"], 0);
}

#[tokio::test]
async fn rows_are_created_through_https_with_ssl_cert_file_or_dir() {
    for variable in ["SSL_CERT_FILE", "SSL_CERT_DIR"] {
        let (job, front, input, args) = behind_tls(3).await;
        let ca = job.dir.write("ca.pem", &front.ca_pem);
        let value = match variable {
            "SSL_CERT_FILE" => ca,
            _ => job.dir.path("").to_str().unwrap().to_owned(),
        };
        let run = run_with_env(&input, &args, &[(variable, &value)]).await;
        assert_eq!(run.exit, 0, "{variable}: {}", run.stderr);
        assert_eq!(tally(&job.rows()), expect(&[("created", 3)]), "{variable}");
    }
}

#[tokio::test]
async fn an_untrusted_certificate_is_its_own_error_naming_the_option() {
    // With the list first (the default) and without it: the first request meets it either
    // way. An authority that signed something else is no better than none.
    for (preflight, other_ca) in [(true, false), (false, false), (true, true)] {
        let (job, _front, input, mut args) = behind_tls(20).await;
        let mut env = Vec::new();
        let unrelated = job.dir.write("other-ca.pem", &unrelated_authority());
        if other_ca {
            env.push(("SSL_CERT_FILE", unrelated.as_str()));
        }
        if !preflight {
            args.push("--no-preflight".to_owned());
        }
        args.extend(["--summary-json".to_owned(), job.path("summary.json")]);
        let case = format!("preflight {preflight}, another CA {other_ca}");
        let run = run_with_env(&input, &args, &env).await;
        assert_eq!(run.exit, 3, "{case}: {}", run.stderr);
        assert!(
            run.stderr.contains("TLS certificate was refused")
                && run
                    .stderr
                    .contains("certificate authority this job does not trust")
                && run.stderr.contains("--ca-cert"),
            "{case}: {}",
            run.stderr
        );
        for outage in [
            "could not be reached",
            "kept refusing",
            "(429)",
            "max-outage",
        ] {
            assert!(
                !run.stderr.contains(outage),
                "{case}: {outage}: {}",
                run.stderr
            );
        }
        assert_eq!(job.requests().await, 0, "{case}: nothing reached the API");
        let rows = job.rows();
        assert_one_row_per_input_row(&rows, 20);
        for row in &rows {
            assert_eq!(row["_status"], "skipped", "{case}: {row:?}");
            assert_eq!(row["_attempts"], "0", "{case}: {row:?}");
            assert!(
                row["_error_message"].contains("certificate"),
                "{case}: {row:?}"
            );
        }
        let summary = read_json(&job.dir.path("summary.json"));
        assert!(
            summary["next_step"].as_str().unwrap().contains("--ca-cert"),
            "{case}: {summary}"
        );
    }
}

#[tokio::test]
async fn a_ca_cert_that_cannot_be_used_stops_before_any_request() {
    let (job, _front, input, mut args) = behind_tls(2).await;
    let not_pem = job.dir.write("ca.pem", "just text\n");
    args.extend(["--ca-cert".to_owned(), not_pem]);
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("holds no PEM certificate"),
        "{}",
        run.stderr
    );
    assert_eq!(job.requests().await, 0);
    let damaged = job.dir.write(
        "damaged.pem",
        "-----BEGIN CERTIFICATE-----\nMIIBkTCB+wIJAKHBfpegPjMCMA0GCSqGSIb3DQEBBQUAMBQxEjAQBgNVBAMMCWxv\n-----END CERTIFICATE-----\n",
    );
    set_flag(&mut args, "--ca-cert", &damaged);
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("--ca-cert") && run.stderr.contains("damaged.pem"),
        "the option and the file are named: {}",
        run.stderr
    );
    let both = dbprov_with(
        &["run", &input, "--sandbox", "--ca-cert", "x.pem", "-o", "-"],
        &[],
    )
    .await;
    assert_eq!(
        both.exit, 2,
        "--ca-cert means nothing to the sandbox: {}",
        both.stderr
    );
}

#[tokio::test]
async fn an_authority_certificate_served_as_the_servers_own_is_said_in_words() {
    let job = Job::new().await;
    let front = TlsFront::start_as_authority(&job.sandbox.url()).await;
    let input = job.input(&tenants("t", 2));
    let mut args = job.args("results.csv");
    set_flag(&mut args, "--base-url", &front.url);
    let ca = job.dir.write("ca.pem", &front.ca_pem);
    args.extend(["--ca-cert".to_owned(), ca]);
    let run = run_with_env(&input, &args, &[]).await;
    assert_eq!(run.exit, 3, "{}", run.stderr);
    assert!(run.stderr.contains("(CA:TRUE)"), "{}", run.stderr);
    assert!(!run.stderr.contains("OtherError"), "{}", run.stderr);
    assert_eq!(job.requests().await, 0);
}
