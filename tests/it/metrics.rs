//! Metrics for a scheduled job: a push to a Pushgateway (`POST /metrics/job/<job>[/shard/<I>]`)
//! and a file for node_exporter's textfile collector, in Prometheus' text format. Neither
//! changes the exit code; the last success is there only after a run that exited 0.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use prometheus_parse::{Scrape, Value};

use crate::common::tenants;
use crate::fixture::Job;
use crate::process::{dbprov, dbprov_with};

/// A push as the fake Pushgateway received it.
#[derive(Debug, Clone)]
struct Push {
    method: String,
    path: String,
    content_type: String,
    body: String,
}

/// A fake Pushgateway that records every request and answers `status`.
struct FakePushgateway {
    url: String,
    pushes: Arc<Mutex<Vec<Push>>>,
}

impl FakePushgateway {
    async fn start(status: StatusCode) -> FakePushgateway {
        let pushes: Arc<Mutex<Vec<Push>>> = Arc::default();
        let recorded = pushes.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: String| {
                let recorded = recorded.clone();
                async move {
                    let content_type = headers
                        .get("content-type")
                        .map(|v| v.to_str().unwrap_or("").to_owned())
                        .unwrap_or_default();
                    recorded.lock().unwrap().push(Push {
                        method: method.to_string(),
                        path: uri.path().to_owned(),
                        content_type,
                        body,
                    });
                    (status, "")
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakePushgateway { url, pushes }
    }

    fn pushes(&self) -> Vec<Push> {
        self.pushes.lock().unwrap().clone()
    }
}

/// A sample: its name, its labels sorted, its value.
type Sample = (String, Vec<(String, String)>, f64);

/// The samples of a text in Prometheus' format.
fn samples(text: &str) -> Vec<Sample> {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = Scrape::parse(lines).unwrap_or_else(|e| panic!("{e}: {text}"));
    scrape
        .samples
        .into_iter()
        .map(|s| {
            let value = match s.value {
                Value::Gauge(v) | Value::Counter(v) | Value::Untyped(v) => v,
                other => panic!("{other:?}"),
            };
            let mut labels: Vec<(String, String)> = s
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            labels.sort();
            (s.metric, labels, value)
        })
        .collect()
}

/// The value of the sample `name` whose labels include `label`, if there is one.
fn value(text: &str, name: &str, label: Option<(&str, &str)>) -> Option<f64> {
    samples(text)
        .into_iter()
        .find(|(metric, labels, _)| {
            metric == name
                && label.is_none_or(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, value)| value)
}

/// Four valid tenants and one without a name: exit 1.
fn four_and_one_invalid() -> String {
    let mut csv = tenants("t", 4);
    csv.push_str(",MULTI_DATAMART\n");
    csv
}

#[tokio::test]
async fn a_run_pushes_its_counts_without_a_last_success_when_rows_failed() {
    let gateway = FakePushgateway::start(StatusCode::OK).await;
    let job = Job::new().await;
    let input = job.input(&four_and_one_invalid());
    let mut args = job.args("results.csv");
    args.extend(
        [
            "--pushgateway",
            &gateway.url,
            "--metrics-job",
            "nightly-onboarding",
        ]
        .map(str::to_owned),
    );
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let pushes = gateway.pushes();
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    let push = &pushes[0];
    assert_eq!(
        push.method, "POST",
        "a POST keeps what the push does not name"
    );
    assert_eq!(push.path, "/metrics/job/nightly-onboarding");
    assert!(
        push.content_type.starts_with("text/plain; version=0.0.4"),
        "{push:?}"
    );
    let body = &push.body;
    assert_eq!(
        value(body, "dbprov_rows", Some(("status", "created"))),
        Some(4.0),
        "{body}"
    );
    assert_eq!(
        value(body, "dbprov_rows", Some(("status", "invalid"))),
        Some(1.0)
    );
    assert_eq!(
        value(body, "dbprov_rows", Some(("status", "failed"))),
        Some(0.0)
    );
    assert_eq!(
        value(body, "dbprov_requests", None),
        Some(4.0),
        "no list: four POSTs"
    );
    assert_eq!(value(body, "dbprov_responses_429", None), Some(0.0));
    assert_eq!(value(body, "dbprov_exit_code", None), Some(1.0));
    assert!(value(body, "dbprov_duration_seconds", None).is_some());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let last_run = value(body, "dbprov_last_run_timestamp_seconds", None).unwrap();
    assert!((now - last_run).abs() < 600.0, "{last_run} against {now}");
    assert_eq!(
        value(body, "dbprov_last_success_timestamp_seconds", None),
        None,
        "a failed night keeps the last success: {body}"
    );
}

#[tokio::test]
async fn a_successful_shard_pushes_to_its_group_with_the_last_success() {
    let gateway = FakePushgateway::start(StatusCode::OK).await;
    let job = Job::new().await;
    let input = job.input(&tenants("t", 20));
    let mut args = job.args("results.csv");
    args.extend(["--pushgateway", &gateway.url, "--shard", "1/2"].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let pushes = gateway.pushes();
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    assert_eq!(pushes[0].path, "/metrics/job/dbprov/shard/1");
    let body = &pushes[0].body;
    let created = value(body, "dbprov_rows", Some(("status", "created"))).unwrap();
    assert_eq!(created as usize, job.rows().len(), "{body}");
    assert!(
        value(body, "dbprov_last_success_timestamp_seconds", None).is_some(),
        "{body}"
    );
    assert_eq!(value(body, "dbprov_exit_code", None), Some(0.0));
}

#[tokio::test]
async fn a_pushgateway_that_is_down_or_refuses_leaves_the_exit_code_alone() {
    // A port that nothing listens on any more, and one that answers 500.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let refusing = FakePushgateway::start(StatusCode::INTERNAL_SERVER_ERROR).await;
    for (url, expected_exit, csv) in [
        (closed.as_str(), 0, tenants("t", 3)),
        (refusing.url.as_str(), 0, tenants("t", 3)),
        (closed.as_str(), 1, four_and_one_invalid()),
    ] {
        let job = Job::new().await;
        let input = job.input(&csv);
        let mut args = job.args("results.csv");
        args.extend(["--pushgateway".to_owned(), url.to_owned()]);
        let run = dbprov_with(&["run", &input], &args).await;
        assert_eq!(run.exit, expected_exit, "{url}: {}", run.stderr);
        assert!(
            run.stderr.contains("WARN") && run.stderr.contains("cannot push the metrics"),
            "{url}: {}",
            run.stderr
        );
    }
    assert_eq!(refusing.pushes().len(), 1);
}

#[tokio::test]
async fn the_metrics_file_holds_the_same_figures_labelled_by_shard() {
    let job = Job::new().await;
    let input = job.input(&four_and_one_invalid());
    let file = job.path("dbprov.prom");
    let mut args = job.args("results.csv");
    args.extend(["--metrics-file", &file, "--shard", "0/1"].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        value(&text, "dbprov_rows", Some(("status", "created"))),
        Some(4.0),
        "{text}"
    );
    assert_eq!(value(&text, "dbprov_exit_code", None), Some(1.0));
    assert_eq!(
        value(&text, "dbprov_last_success_timestamp_seconds", None),
        None
    );
    // A shard's file says which shard it is; a whole input's does not.
    let sharded = job.path("shard.prom");
    let mut args = job.args("shard-results.csv");
    args.extend(["--metrics-file", &sharded, "--shard", "1/3"].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert!(run.exit <= 1, "{}", run.stderr);
    let text = std::fs::read_to_string(&sharded).unwrap();
    assert!(
        samples(&text)
            .iter()
            .all(|(_, labels, _)| labels.contains(&("shard".to_owned(), "1".to_owned()))),
        "{text}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&sharded).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o644,
        "readable by a collector running as another user"
    );
}

#[tokio::test]
async fn a_command_that_stops_before_its_job_still_says_its_exit_code() {
    let gateway = FakePushgateway::start(StatusCode::OK).await;
    let job = Job::new().await;
    let file = job.path("dbprov.prom");
    let missing = job.path("no-such-input.csv");
    let run = dbprov(&[
        "run",
        &missing,
        "--sandbox",
        "-o",
        &job.path("results.csv"),
        "--metrics-file",
        &file,
        "--pushgateway",
        &gateway.url,
    ])
    .await;
    assert_eq!(run.exit, 2, "{}", run.stderr);
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(value(&text, "dbprov_exit_code", None), Some(2.0), "{text}");
    assert!(value(&text, "dbprov_last_run_timestamp_seconds", None).is_some());
    assert_eq!(
        value(&text, "dbprov_last_success_timestamp_seconds", None),
        None
    );
    let pushes = gateway.pushes();
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    assert_eq!(value(&pushes[0].body, "dbprov_exit_code", None), Some(2.0));
}

#[tokio::test]
async fn metrics_options_that_cannot_be_used_are_refused_before_any_request() {
    let job = Job::new().await;
    let input = job.input(&tenants("t", 2));
    for (flag, value) in [
        ("--pushgateway", "pushgateway:9091"),
        ("--pushgateway", "http://gw:9091/?x=1"),
        ("--metrics-job", "a/b"),
        ("--metrics-job", ".."),
        ("--metrics-file", input.as_str()),
    ] {
        let mut args = job.args("results.csv");
        args.extend([flag.to_owned(), value.to_owned()]);
        let run = dbprov_with(&["run", &input], &args).await;
        assert_eq!(run.exit, 2, "{flag} {value}: {}", run.stderr);
        assert!(run.stderr.contains(flag), "{flag} {value}: {}", run.stderr);
    }
    assert_eq!(job.requests().await, 0);
}

#[tokio::test]
async fn a_refused_metrics_file_is_never_written_and_no_one_elses_file_is_replaced() {
    let job = Job::new().await;
    let input = job.input(&tenants("t", 3));
    let run = job.run(&["run", &input]).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let results = job.path("results.csv");
    let ledger = std::fs::read(&results).unwrap();
    let read = std::fs::read(&input).unwrap();
    // The ledger and the input, named as the metrics file: refused, and left as they were
    // (the metrics of a command that stops before its job must not write them either).
    for (command, target) in [("retry", &results), ("run", &input)] {
        let mut words = vec![command, if command == "retry" { &results } else { &input }];
        let other = job.path("other.csv");
        if command == "run" {
            words.extend(["-o", &other]);
        }
        words.extend(["--sandbox", "--metrics-file", target]);
        let run = dbprov(&words).await;
        assert_eq!(run.exit, 2, "{command}: {}", run.stderr);
    }
    assert_eq!(
        std::fs::read(&results).unwrap(),
        ledger,
        "the ledger is intact"
    );
    assert_eq!(std::fs::read(&input).unwrap(), read, "the input is intact");
    // A file that holds anything but dbprov's metrics is someone's: a warning, no write.
    let notes = job.dir.write("notes.prom", "my own notes\n");
    let mut args = job.args("results-2.csv");
    args.extend(["--metrics-file".to_owned(), notes.clone()]);
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("something else than dbprov's metrics"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "my own notes\n");
}

#[tokio::test]
async fn a_metrics_file_keeps_the_last_success_through_a_failed_night() {
    let job = Job::new().await;
    let file = job.path("nightly.prom");
    let good = job.input(&tenants("t", 3));
    let mut args = job.args("results.csv");
    args.extend(["--metrics-file".to_owned(), file.clone()]);
    let run = dbprov_with(&["run", &good], &args).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let first = std::fs::read_to_string(&file).unwrap();
    let success = value(&first, "dbprov_last_success_timestamp_seconds", None).unwrap();
    // The next night fails: the file says so, and still when the last success was, so an
    // alert on its age fires (instead of finding no series).
    let bad = job.dir.write("bad.csv", &four_and_one_invalid());
    let mut args = job.args("results-2.csv");
    args.extend(["--metrics-file".to_owned(), file.clone()]);
    let run = dbprov_with(&["run", &bad], &args).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let second = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        value(&second, "dbprov_exit_code", None),
        Some(1.0),
        "{second}"
    );
    assert_eq!(
        value(&second, "dbprov_last_success_timestamp_seconds", None),
        Some(success),
        "{second}"
    );
}

#[tokio::test]
async fn the_push_of_a_command_refused_for_its_ca_cert_still_goes_out() {
    let gateway = FakePushgateway::start(StatusCode::OK).await;
    let job = Job::new().await;
    let input = job.input(&tenants("t", 2));
    let empty = job.dir.write("empty.pem", "");
    let mut args = job.args("results.csv");
    args.extend(["--ca-cert", &empty, "--pushgateway", &gateway.url].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 2, "{}", run.stderr);
    let pushes = gateway.pushes();
    assert_eq!(pushes.len(), 1, "{}", run.stderr);
    assert_eq!(value(&pushes[0].body, "dbprov_exit_code", None), Some(2.0));
}

#[tokio::test]
async fn a_refused_pushgateway_url_is_said_without_its_password_or_query() {
    let job = Job::new().await;
    let input = job.input(&tenants("t", 2));
    for url in [
        "http://user:s3cret-pw@gw.example.test:9091/?token=t0ken",
        "user:s3cret-pw@gw.example.test:9091",
    ] {
        let mut args = job.args("results.csv");
        args.extend(["--pushgateway".to_owned(), url.to_owned()]);
        let run = dbprov_with(&["run", &input], &args).await;
        assert_eq!(run.exit, 2, "{url}: {}", run.stderr);
        assert!(run.stderr.contains("--pushgateway"), "{}", run.stderr);
        assert!(
            !run.stderr.contains("s3cret-pw") && !run.stderr.contains("t0ken"),
            "{}",
            run.stderr
        );
    }
    assert_eq!(job.requests().await, 0);
}

#[tokio::test]
async fn a_metrics_file_that_is_standard_output_is_refused_and_nothing_is_renamed_over_it() {
    // A link like /dev/stdout, in the test's own folder: as root, a rename over the real
    // one would replace the machine's /dev/stdout with a file.
    let job = Job::new().await;
    let input = job.input(&tenants("t", 2));
    let link = job.path("stdout-link");
    std::os::unix::fs::symlink("/proc/self/fd/1", &link).unwrap();
    let redirected = job.path("redirected.txt");
    let mut args = job.args("results.csv");
    args.extend(["--metrics-file".to_owned(), link.clone()]);
    let words = crate::process::line(&["run", &input], &args);
    let mut command = crate::process::command(&words);
    command.stdout(std::fs::File::create(&redirected).unwrap());
    let run = crate::process::run_to_end(command).await;
    assert_eq!(run.exit, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("where this command's output goes"),
        "{}",
        run.stderr
    );
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::read_to_string(&redirected).unwrap(),
        "",
        "nothing written through it"
    );
    assert_eq!(job.requests().await, 0);
}

#[tokio::test]
async fn a_metrics_file_behind_a_link_is_written_through_it_and_a_loop_is_left_alone() {
    let job = Job::new().await;
    let input = job.input(&tenants("t", 2));
    std::fs::create_dir(job.path("collector")).unwrap();
    let dangling = job.path("dangling.prom");
    std::os::unix::fs::symlink(job.path("collector/dbprov.prom"), &dangling).unwrap();
    let (a, b) = (job.path("loop-a.prom"), job.path("loop-b.prom"));
    std::os::unix::fs::symlink(&b, &a).unwrap();
    std::os::unix::fs::symlink(&a, &b).unwrap();
    let big = job.dir.write(
        "big.prom",
        &format!("# HELP dbprov_rows x\n{}", "#".repeat(100 * 1024)),
    );
    for (path, written) in [(&dangling, true), (&a, false), (&big, false)] {
        let mut args = job.args(&format!("results-{written}-{}.csv", path.len()));
        args.extend(["--metrics-file".to_owned(), path.clone()]);
        let run = dbprov_with(&["run", &input], &args).await;
        assert_eq!(run.exit, 0, "{path}: {}", run.stderr);
        assert_eq!(
            run.stderr.contains("cannot write the metrics"),
            !written,
            "{path}: {}",
            run.stderr
        );
    }
    assert!(
        std::fs::symlink_metadata(&dangling)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let text = std::fs::read_to_string(job.path("collector/dbprov.prom")).unwrap();
    assert_eq!(value(&text, "dbprov_exit_code", None), Some(0.0), "{text}");
    assert!(
        std::fs::symlink_metadata(&a)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(std::fs::read_to_string(&big).unwrap().len() > 100 * 1024);
}

#[tokio::test]
async fn a_plan_or_a_dry_run_is_no_success_of_the_job() {
    let job = Job::new().await;
    let input = job.input(&tenants("t", 2));
    for command in [&["plan", &input][..], &["run", &input, "--dry-run"][..]] {
        let file = job.path(&format!("{}.prom", command.len()));
        let mut args = job.args(&format!("out-{}.csv", command.len()));
        args.extend(["--metrics-file".to_owned(), file.clone()]);
        let run = dbprov_with(command, &args).await;
        assert_eq!(run.exit, 0, "{command:?}: {}", run.stderr);
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(value(&text, "dbprov_exit_code", None), Some(0.0), "{text}");
        assert_eq!(
            value(&text, "dbprov_last_success_timestamp_seconds", None),
            None,
            "{command:?}: {text}"
        );
    }
}
