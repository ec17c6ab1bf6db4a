//! Reading the input: `validate`, rows that are invalid or malformed, inputs that are
//! missing or empty, and inputs that are not regular files (a FIFO, standard input).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::common::{JobDir, assert_one_row_per_input_row, by_row, tenants, workspace_counts};
use crate::fixture::Job;
use crate::process::{command, dbprov, finish, finish_within, line, spawn_fed, start};

#[tokio::test]
async fn a_missing_input_is_told_once_with_the_next_step() {
    let dir = JobDir::new();
    let missing = dir.path("nope.csv");
    let missing = missing.to_str().unwrap();
    let results = dir.path("r.csv");
    for command in [
        vec!["validate", missing],
        vec!["run", missing, "--dry-run", "-o", results.to_str().unwrap()],
    ] {
        let run = dbprov(&command).await;
        assert_eq!(run.exit, 2, "{command:?}: {}", run.stderr);
        assert_eq!(
            run.stderr,
            format!(
                "error: cannot open {missing}: No such file or directory (os error 2); check the path\n"
            ),
            "{command:?}"
        );
    }
    assert!(
        !results.exists(),
        "no results file for a job that never started"
    );
}

#[tokio::test]
async fn input_errors_stop_the_job_with_exit_2_before_any_request() {
    let job = Job::new().await;
    let cases = [
        (
            job.dir.path("missing.csv").to_str().unwrap().to_owned(),
            "cannot open",
        ),
        (job.dir.write("empty.csv", ""), "is empty"),
        (
            job.dir
                .write("headless.csv", "Acme,DATASOURCE,postgres-main\n"),
            "no 'name' column",
        ),
        (
            job.dir.write("twice.csv", "name,Name\na,b\n"),
            "both mean name",
        ),
    ];
    for (input, message) in &cases {
        let run = job.run(&["run", input]).await;
        assert_eq!(run.exit, 2, "{input}: {}", run.stderr);
        assert!(run.stderr.contains(message), "{input}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"));
    }
    let input = job.dir.write("ok.csv", &tenants("t", 3));
    let output = job.dir.path("r.csv");
    let no_key = dbprov(&[
        "run",
        &input,
        "-o",
        output.to_str().unwrap(),
        "--base-url",
        &job.sandbox.url(),
    ])
    .await;
    assert_eq!(no_key.exit, 2);
    assert!(
        no_key.stderr.contains("DATABRAIN_API_KEY"),
        "{}",
        no_key.stderr
    );
    assert_eq!(job.requests().await, 0);
}

#[tokio::test]
async fn malformed_records_are_invalid_rows_and_the_job_goes_on() {
    let job = Job::new().await;
    let mut bytes =
        b"name,connectionType,team\na,MULTI_DATAMART,x\nb,MULTI_DATAMART,y,surplus\n".to_vec();
    // (A byte that is not UTF-8 refuses the file when it is near the start: `spreadsheets`.)
    bytes.extend_from_slice(b"\"c,MULTI_DATAMART,z\nd,MULTI_DATAMART,w\n");
    let input = job.dir.path("in.csv");
    std::fs::write(&input, bytes).unwrap();
    let run = job.run(&["run", input.to_str().unwrap()]).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let rows = job.rows();
    let rows = by_row(&rows);
    assert_eq!(rows[&1]["_status"], "created");
    assert_eq!(rows[&2]["_error_code"], "MALFORMED_ROW");
    assert_eq!(
        rows[&2]["_error_message"],
        "line 3: has 4 fields, the header has 3; the line as read: b,MULTI_DATAMART,y,surplus"
    );
    assert_eq!(
        rows[&2]["team"], "y",
        "its cells are kept, as far as the header goes"
    );
    assert_eq!(rows[&3]["_error_code"], "MALFORMED_ROW");
    assert!(rows[&3]["_error_message"].starts_with("line 4:"));
    assert_eq!(rows[&4]["_status"], "created");
}

#[tokio::test]
async fn a_stray_quote_in_an_input_makes_one_row_malformed() {
    let job = Job::new().await;
    let csv = tenants("t", 30).replace("\nt-0003,", "\n\"t-0003,");
    let input = job.input(&csv);
    let run = job.run(&["run", &input]).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let rows = job.rows();
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
    assert_eq!(workspace_counts(&job.api).await.len(), 29);
}

#[tokio::test]
async fn a_fifo_input_streams() {
    // Five rounds: a writer meets the first process that opens the FIFO, so a job that
    // opens it twice (to look at it, then to read it) loses the rows in some of them.
    for round in 1..=5 {
        let job = Job::new().await;
        let fifo = job.dir.path("in.fifo");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string and mode.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::write(fifo, tenants("f", 20)))
        };
        let args = job.args("results.csv");
        let mut child = start(&mut command(&line(&["run", fifo.to_str().unwrap()], &args)));
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
        let rows = job.rows();
        assert_one_row_per_input_row(&rows, 20);
        assert!(rows.iter().all(|r| r["_status"] == "created"));
        assert_eq!(job.writes().await, 20);
    }
}

#[tokio::test]
async fn dev_stdin_as_the_input_path_streams() {
    let job = Job::new().await;
    let args = job.args("results.csv");
    let (child, mut stdin) = spawn_fed(&line(&["run", "/dev/stdin"], &args));
    stdin.write_all(tenants("s", 20).as_bytes()).await.unwrap();
    drop(stdin);
    let run = finish_within(child, Duration::from_secs(20)).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let rows = job.rows();
    assert_one_row_per_input_row(&rows, 20);
    assert!(rows.iter().all(|r| r["_status"] == "created"));
    assert_eq!(job.writes().await, 20);
}

#[tokio::test]
async fn validate_lists_each_invalid_row_and_exits_0_only_when_all_are_valid() {
    let run = dbprov(&["validate", "samples/tenants.csv"]).await;
    assert_eq!(run.exit, 1);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", run.stdout);
    assert_eq!(
        lines[0],
        "row 16 (line 17), name 'Finance Without Mart': MISSING_DATAMART_NAME: datamartName is empty; connectionType DATAMART needs one"
    );
    assert!(
        lines.iter().all(|l| l.matches("line ").count() == 1),
        "the line is said once: {}",
        run.stdout
    );
    assert!(lines[1].contains("name 'Globex Analytics': DUPLICATE_IN_INPUT"));
    assert!(run.stderr.contains("51 rows: 47 valid, 4 invalid"));

    // A results file's message keeps its line: it has no column of its own for it.
    let dir = JobDir::new();
    let planned = dir.path("planned.csv");
    let dry_run = dbprov(&[
        "run",
        "samples/tenants.csv",
        "--dry-run",
        "-o",
        planned.to_str().unwrap(),
    ])
    .await;
    assert_eq!(dry_run.exit, 1, "{}", dry_run.stderr);
    let (_, rows) = dir.results("planned.csv");
    assert_eq!(
        rows[15]["_error_message"],
        "line 17: datamartName is empty; connectionType DATAMART needs one"
    );

    let good = dir.write("good.csv", &tenants("t", 10));
    let valid = dbprov(&["validate", &good]).await;
    assert_eq!(valid.exit, 0, "{}", valid.stderr);
    assert!(valid.stdout.is_empty());
    let missing = dbprov(&["validate", dir.path("nope.csv").to_str().unwrap()]).await;
    assert_eq!(missing.exit, 2);
}

#[tokio::test]
async fn validate_knows_the_api_rules_of_the_metric_summary() {
    let job = Job::new().await;
    let input = job.dir.write(
        "summaries.csv",
        "name,connectionType,isEnableMetricSummary,summaryType,customSummaryPrompt\n\
         on-without-type,MULTI_DATAMART,true,,\n\
         custom-without-prompt,MULTI_DATAMART,TRUE,Custom,\n\
         custom-while-off,MULTI_DATAMART,,custom,\n\
         unknown-type,MULTI_DATAMART,true,haiku,\n\
         not-a-boolean,MULTI_DATAMART,yes,custom,Be brief\n\
         custom,MULTI_DATAMART,true,CUSTOM,Be brief\n\
         type-while-off,MULTI_DATAMART,false,forecastAndTrendAnalysis,\n\
         prompt-alone,MULTI_DATAMART,,,Be brief\n",
    );
    let run = dbprov(&["validate", &input]).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "row 1 (line 2), name 'on-without-type': INVALID_FIELD: isEnableMetricSummary is true but summaryType is empty; give one of technicalAndInsightSummary, forecastAndTrendAnalysis, comparativeAndAnomalyDetection, custom, or set isEnableMetricSummary to false",
            "row 2 (line 3), name 'custom-without-prompt': INVALID_FIELD: summaryType is custom but customSummaryPrompt is empty; write the prompt in customSummaryPrompt, or choose another summaryType",
            "row 3 (line 4), name 'custom-while-off': INVALID_FIELD: summaryType is custom but customSummaryPrompt is empty; write the prompt in customSummaryPrompt, or choose another summaryType",
            "row 4 (line 5), name 'unknown-type': INVALID_FIELD: summaryType 'haiku' is not one of technicalAndInsightSummary, forecastAndTrendAnalysis, comparativeAndAnomalyDetection, custom; give one of them, or leave it empty",
            "row 5 (line 6), name 'not-a-boolean': INVALID_FIELD: isEnableMetricSummary 'yes' is not true or false; write one of them, or leave it empty for false",
        ],
        "the last three rows are valid: {}",
        run.stdout
    );
    assert!(
        run.stderr.contains("8 rows: 3 valid, 5 invalid"),
        "{}",
        run.stderr
    );

    // `run` checks the same: only the valid rows reach the API, summary types in the
    // API's spelling, and a type given while the summary is off is sent as it is.
    let ran = job.run(&["run", &input]).await;
    assert_eq!(ran.exit, 1, "{}", ran.stderr);
    assert_eq!(job.requests().await, 3);
    let sent = job.api.get("/_sandbox/workspaces").await;
    let sent: BTreeMap<&str, &Value> = sent
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["name"].as_str().unwrap(), w))
        .collect();
    assert_eq!(sent["custom"]["summaryType"], "custom");
    assert_eq!(
        sent["type-while-off"]["summaryType"],
        "forecastAndTrendAnalysis"
    );
    assert_eq!(sent["type-while-off"]["isEnableMetricSummary"], false);
    assert_eq!(sent["prompt-alone"]["customSummaryPrompt"], "Be brief");
}
