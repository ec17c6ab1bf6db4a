//! The command line itself: help and completions, and flag values refused with exit 2 before
//! anything starts.

use std::process::Stdio;

use crate::common::{set_flag, tenants};
use crate::fixture::Job;
use crate::process::{command, dbprov, dbprov_with, line, run_to_end};

#[tokio::test]
async fn absurd_rates_are_refused_with_exit_2_not_a_panic() {
    let job = Job::new().await;
    let mut args = job.args("results.csv");
    let input = job.input(&tenants("t", 3));
    for rate in ["1e-20/s", "0.0000001/h"] {
        set_flag(&mut args, "--rate", rate);
        let run = dbprov_with(&["run", &input], &args).await;
        assert_eq!(run.exit, 2, "--rate {rate}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        assert!(run.stderr.contains("--rate"), "{}", run.stderr);
    }
    assert_eq!(job.writes().await, 0);
}

#[tokio::test]
async fn a_base_url_with_a_query_and_a_summary_on_stdout_are_refused() {
    let job = Job::new().await;
    let input = job.input(&tenants("t", 2));
    let mut args = job.args("results.csv");
    set_flag(
        &mut args,
        "--base-url",
        &format!("{}/?a=b", job.sandbox.url()),
    );
    let query = dbprov_with(&["run", &input], &args).await;
    assert_eq!(query.exit, 2, "{}", query.stderr);
    assert!(query.stderr.contains("?query"), "{}", query.stderr);

    let mut args = job.args("results.csv");
    set_flag(&mut args, "-o", "-");
    let mut cmd = command(&line(
        &["run", &input, "--summary-json", "/dev/stdout"],
        &args,
    ));
    cmd.stdout(Stdio::piped());
    let stdout = run_to_end(cmd).await;
    assert_eq!(stdout.exit, 2, "{}", stdout.stderr);
    assert!(
        stdout.stderr.contains("standard output"),
        "{}",
        stdout.stderr
    );
    assert_eq!(job.writes().await, 0);
}

#[tokio::test]
async fn help_groups_the_options_and_each_command_speaks_only_of_itself() {
    let run = dbprov(&["run", "--help"]).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let help = &run.stdout;
    let flags_under = |heading: &str| -> Vec<String> {
        let start = help
            .find(&format!("\n{heading}:\n"))
            .unwrap_or_else(|| panic!("no {heading} heading: {help}"));
        help[start + heading.len() + 3..]
            .lines()
            .take_while(|line| line.is_empty() || line.starts_with(' '))
            // `-v, --verbose...` or `--log-format <LOG_FORMAT>`, not `- text: ...`
            .filter_map(|line| {
                let line = line.trim_start();
                let long = match line.as_bytes() {
                    [b'-', short, b',', b' ', ..] if short.is_ascii_alphabetic() => &line[4..],
                    _ => line,
                };
                long.starts_with("--")
                    .then(|| long.split_whitespace().next().unwrap().to_owned())
            })
            .collect()
    };
    // The global options in a group of their own, after the run's.
    assert_eq!(
        flags_under("Logging"),
        ["--verbose...", "--quiet...", "--log-format"],
        "{help}"
    );
    assert!(help.find("\nLogging:\n") > help.find("\nReporting:\n"));
    assert_eq!(
        flags_under("Input"),
        ["--delimiter", "--encoding"],
        "{help}"
    );
    assert!(
        flags_under("Results").contains(&"--excel".to_owned()),
        "{help}"
    );
    for heading in ["API", "Sending", "Rows"] {
        assert!(!flags_under(heading).is_empty(), "{heading}: {help}");
    }
    for command in ["sandbox", "validate", "completions"] {
        let other = dbprov(&[command, "--help"]).await;
        assert_eq!(other.exit, 0, "{command}: {}", other.stderr);
        assert!(other.stdout.contains("\nLogging:\n"), "{}", other.stdout);
        let text = other.stdout.to_lowercase();
        assert!(
            !text.contains("dry run") && !text.contains("dry-run"),
            "{command}: {}",
            other.stdout
        );
    }
}

#[tokio::test]
async fn completions_are_generated_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let run = dbprov(&["completions", shell]).await;
        assert_eq!(run.exit, 0, "{shell}");
        assert!(
            run.stdout.contains("retry") && run.stdout.contains("max-failures"),
            "{shell}"
        );
    }
}

#[tokio::test]
async fn a_base_url_copied_with_api_v2_reaches_the_api_and_continues_its_ledger() {
    let job = Job::new().await;
    let root = job.sandbox.url();
    let input = job.input(&tenants("t", 3));
    let mut args = job.args("results.csv");
    set_flag(&mut args, "--base-url", &format!("{root}/api/v2/"));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let rows = job.rows();
    assert!(rows.iter().all(|r| r["_status"] == "created"), "{rows:?}");
    assert_eq!(rows[0]["_target"], root, "the root, as the API is named");
    // The same API spelled without it continues the same file.
    let more = job.input(&tenants("t", 4));
    set_flag(&mut args, "--base-url", &root);
    let rerun = dbprov_with(&["run", &more, "--resume"], &args).await;
    assert_eq!(rerun.exit, 0, "{}", rerun.stderr);
    assert_eq!(job.writes().await, 4);
}

#[tokio::test]
async fn sandbox_with_a_base_url_on_the_command_line_is_refused() {
    let job = Job::new().await;
    let input = job.input(&tenants("t", 2));
    for command_name in ["run", "plan", "update"] {
        let run = dbprov(&[
            command_name,
            &input,
            "--sandbox",
            "--base-url",
            "https://databrain.example.test",
            "-o",
            "-",
        ])
        .await;
        assert_eq!(run.exit, 2, "{command_name}: {}", run.stderr);
        assert!(
            run.stderr.contains("--sandbox") && run.stderr.contains("--base-url"),
            "{command_name}: {}",
            run.stderr
        );
    }
    let retry = dbprov(&[
        "retry",
        &input,
        "--sandbox",
        "--base-url=http://127.0.0.1:9",
    ])
    .await;
    assert_eq!(retry.exit, 2, "{}", retry.stderr);
    // DATABRAIN_BASE_URL, set for the real job in the same shell, does not stand in the way
    // of a rehearsal.
    let mut rehearsal = command(&["run", &input, "--sandbox", "-o", "-"]);
    rehearsal.env("DATABRAIN_BASE_URL", "https://databrain.example.test");
    let run = run_to_end(rehearsal).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    assert_eq!(run.stdout.matches(",created,").count(), 2, "{}", run.stdout);
}

#[tokio::test]
async fn a_key_put_in_the_base_urls_query_is_never_echoed() {
    let job = Job::new().await;
    let input = job.input(&tenants("t", 2));
    let key = job.sandbox.api_key().to_owned();
    for dry_run in [false, true] {
        let mut args = job.args("results.csv");
        set_flag(
            &mut args,
            "--base-url",
            &format!("{}/api/v2?key={key}", job.sandbox.url()),
        );
        let summary = job.path("summary.json");
        args.extend(["--summary-json".to_owned(), summary.clone()]);
        if dry_run {
            args.push("--dry-run".to_owned());
        }
        let run = dbprov_with(&["run", &input], &args).await;
        assert_eq!(run.exit, 2, "{}", run.stderr);
        assert!(run.stderr.contains("?query"), "{}", run.stderr);
        assert!(
            !run.stderr.contains(&key),
            "dry run {dry_run}: {}",
            run.stderr
        );
        let written = std::fs::read_to_string(&summary).unwrap();
        assert!(!written.contains(&key), "dry run {dry_run}: {written}");
    }
    assert_eq!(job.requests().await, 0);
}

/// The long options a command's `--help` lists.
async fn listed(command: &str) -> Vec<String> {
    let help = dbprov(&[command, "--help"]).await;
    assert_eq!(help.exit, 0, "{command}: {}", help.stderr);
    help.stdout
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| l.split([' ', ',', '=']).find(|w| w.starts_with("--")))
        .map(|w| w.trim_end_matches(['<', '>']).to_owned())
        .collect()
}

#[tokio::test]
async fn each_commands_help_lists_only_what_it_uses_and_the_rest_is_refused() {
    let job = Job::new().await;
    let input = job.input(&tenants("t", 2));
    // What each command does nothing with: not listed, and refused when given.
    let unused: [(&str, &[&str]); 5] = [
        (
            "plan",
            &[
                "--concurrency",
                "--burst",
                "--max-failures",
                "--preflight",
                "--no-preflight",
                "--yes",
                "--dry-run",
            ],
        ),
        (
            "update",
            &["--on-exists", "--preflight", "--no-preflight", "--yes"],
        ),
        ("delete", &["--on-exists", "--preflight", "--no-preflight"]),
        (
            "rollback",
            &["--on-exists", "--preflight", "--no-preflight"],
        ),
        ("run", &["--yes"]),
    ];
    for (command, options) in unused {
        let help = listed(command).await;
        assert!(
            help.contains(&"--base-url".to_owned()),
            "{command}: {help:?}"
        );
        for option in options {
            assert!(
                !help.contains(&option.to_string()),
                "{command} lists {option}: {help:?}"
            );
            let mut words = vec![command, input.as_str(), "--sandbox", "-o", "-", option];
            if ["--concurrency", "--burst", "--max-failures", "--on-exists"].contains(option) {
                words.push(if *option == "--on-exists" {
                    "update"
                } else {
                    "2"
                });
            }
            let run = dbprov(&words).await;
            assert_eq!(run.exit, 2, "{command} {option}: {}", run.stderr);
        }
    }
    // What they use stays: a run lists the sending options, a delete and a rollback --yes.
    let run = listed("run").await;
    for option in [
        "--on-exists",
        "--preflight",
        "--concurrency",
        "--max-failures",
        "--pushgateway",
        "--ca-cert",
    ] {
        assert!(run.contains(&option.to_owned()), "run: {option}: {run:?}");
    }
    for command in ["delete", "rollback"] {
        assert!(
            listed(command).await.contains(&"--yes".to_owned()),
            "{command}"
        );
    }
    // validate reads a file and sends nothing: none of a job's options.
    let validate = listed("validate").await;
    for option in ["--base-url", "--output", "--concurrency", "--summary-json"] {
        assert!(
            !validate.contains(&option.to_owned()),
            "validate: {option}: {validate:?}"
        );
    }
    assert_eq!(job.requests().await, 0);
}
