//! The input as spreadsheets and people make it: misspelled headers are told the field
//! they resemble, a missing `connectionType` column is one header error, and rows a
//! spreadsheet leaves ragged or empty are read as meant.

use crate::common::{assert_one_row_per_input_row, by_row, expect, tally};
use crate::fixture::Job;
use crate::process::dbprov;

#[tokio::test]
async fn misspelled_headers_are_told_the_field_they_resemble_in_validate_and_run() {
    let job = Job::new().await;
    let input = job.input(
        "name,connectionType,datasource,llm,theme,owner\n\
         a,MULTI_DATAMART,,gpt-4o,default,ops\n",
    );
    let validate = dbprov(&["validate", &input]).await;
    assert_eq!(validate.exit, 0, "{}", validate.stderr);
    let lines: Vec<&str> = validate.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        3,
        "one line per misspelled column: {}",
        validate.stdout
    );
    for (column, field) in [
        ("datasource", "datasourceName"),
        ("llm", "llmName"),
        ("theme", "themeName"),
    ] {
        assert!(
            lines.iter().any(|l| l.contains(&format!("'{column}'"))
                && l.contains(&format!("did you mean {field}?"))),
            "{column}: {}",
            validate.stdout
        );
    }
    assert!(
        !validate.stdout.contains("owner"),
        "a column carried on purpose is no problem"
    );
    let run = job.run(&["run", &input]).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let warning = run
        .stderr
        .lines()
        .find(|l| l.contains("not request fields"))
        .unwrap_or_else(|| panic!("{}", run.stderr));
    assert!(
        warning.contains("'llm' (did you mean llmName?)"),
        "{warning}"
    );
    assert!(
        warning.contains("'owner'") && !warning.contains("'owner' (did"),
        "{warning}"
    );
}

#[tokio::test]
async fn a_missing_connection_type_column_is_one_header_error_before_any_request() {
    let job = Job::new().await;
    let input = job.input("name,type\na,MULTI_DATAMART\nb,DATAMART\n");
    for command in ["run", "plan", "validate"] {
        let run = match command {
            "validate" => dbprov(&[command, &input]).await,
            _ => job.run(&[command, &input]).await,
        };
        assert_eq!(run.exit, 2, "{command}: {}", run.stderr);
        assert!(
            run.stderr
                .contains("no 'connectionType' column ('type' may be meant)"),
            "{command}: {}",
            run.stderr
        );
    }
    assert_eq!(job.requests().await, 0);
    // A delete needs only names.
    let delete = job.run(&["delete", "--yes", &input]).await;
    assert_eq!(delete.exit, 0, "{}", delete.stderr);
}

#[tokio::test]
async fn rows_a_spreadsheet_leaves_ragged_or_empty_are_read_as_meant() {
    let job = Job::new().await;
    // A header with a trailing delimiter, a row short of a trailing cell, one with an
    // extra empty one, a line of spaces, and the rows of commas a spreadsheet leaves.
    let input = job.input(
        "name,connectionType,datamartName,\n\
         a,MULTI_DATAMART,,\n\
         b,MULTI_DATAMART\n\
         \x20\x20\n\
         c,DATAMART,sales-mart,,\n\
         ,,,\n\
         d,MULTI_DATAMART,,\n\
         ,,,\n\
         ,,,\n",
    );
    let run = job.run(&["run", &input]).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    assert!(
        !run.stderr.contains("not request fields"),
        "no column named '': {}",
        run.stderr
    );
    let rows = job.rows();
    assert_one_row_per_input_row(&rows, 4);
    assert_eq!(tally(&rows), expect(&[("created", 4)]));
    let rows = by_row(&rows);
    assert_eq!(rows[&1]["name"], "a");
    assert_eq!(rows[&2]["name"], "b");
    assert_eq!(rows[&3]["name"], "c", "a line of spaces is no row");
    assert_eq!(rows[&4]["name"], "d", "nor is a row of commas");
    assert_eq!(job.writes().await, 4);
    // A rerun reads it the same way: nothing to send.
    let rerun = job.run(&["run", &input, "--resume"]).await;
    assert_eq!(rerun.exit, 0, "{}", rerun.stderr);
    assert_eq!(job.writes().await, 4);
}

#[tokio::test]
async fn near_duplicates_are_warned_of_and_names_equal_after_nfc_are_one() {
    let job = Job::new().await;
    let input = job.input(
        "name,connectionType\n\
         Acme Corp,MULTI_DATAMART\n\
         ACME CORP,MULTI_DATAMART\n\
         Acme  Corp,MULTI_DATAMART\n\
         Caf\u{e9},MULTI_DATAMART\n\
         Cafe\u{301},MULTI_DATAMART\n\
         \"Acme Corp \",MULTI_DATAMART\n",
    );
    let validate = dbprov(&["validate", &input]).await;
    assert_eq!(validate.exit, 1, "{}", validate.stderr);
    for near in [2, 3] {
        assert!(
            validate.stderr.contains(&format!("row {near}: name"))
                && validate
                    .stderr
                    .contains("differs from row 1's only in letter case or spaces"),
            "row {near}: {}",
            validate.stderr
        );
    }
    assert!(
        validate
            .stdout
            .contains("DUPLICATE_IN_INPUT: name \"Cafe\u{301}\" repeats the name of row 4"),
        "{}",
        validate.stdout
    );
    assert!(
        validate
            .stdout
            .contains("name \"Acme Corp \" repeats the name of row 1"),
        "the name as written, its space visible: {}",
        validate.stdout
    );
    let run = job.run(&["run", &input]).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("differs from row 1's"),
        "{}",
        run.stderr
    );
    let rows = job.rows();
    assert_eq!(tally(&rows), expect(&[("created", 4), ("invalid", 2)]));
}

#[tokio::test]
async fn a_repeat_of_a_second_spelling_is_a_duplicate_of_that_row() {
    let job = Job::new().await;
    let input = job.input("name,connectionType\nAcme Co,MULTI_DATAMART\nACME CO,MULTI_DATAMART\nACME CO,MULTI_DATAMART\n");
    let validate = dbprov(&["validate", &input]).await;
    assert_eq!(validate.exit, 1, "{}", validate.stderr);
    assert!(
        validate
            .stdout
            .contains("name \"ACME CO\" repeats the name of row 2"),
        "{}",
        validate.stdout
    );
}

#[tokio::test]
async fn an_nfc_twin_of_a_name_the_results_file_holds_is_a_duplicate_on_a_rerun() {
    for order in [
        ["Caf\u{e9} Zed", "Cafe\u{301} Zed"],
        ["Cafe\u{301} Zed", "Caf\u{e9} Zed"],
    ] {
        let job = Job::new().await;
        let first = job.input("name,connectionType\nCaf\u{e9} Zed,MULTI_DATAMART\n");
        assert_eq!(job.run(&["run", &first]).await.exit, 0);
        let both = job.dir.write(
            "both.csv",
            &format!(
                "name,connectionType\n{},MULTI_DATAMART\n{},MULTI_DATAMART\n",
                order[0], order[1]
            ),
        );
        let rerun = job.run(&["run", &both, "--resume"]).await;
        assert_eq!(rerun.exit, 1, "{order:?}: {}", rerun.stderr);
        assert_eq!(
            job.api.workspace_names().await.len(),
            1,
            "{order:?}: one workspace"
        );
        let rows = job.rows();
        assert_eq!(
            rows.iter()
                .filter(|r| r["_error_code"] == "DUPLICATE_IN_INPUT")
                .count(),
            1,
            "{order:?}: {rows:?}"
        );
    }
}

#[tokio::test]
async fn a_rollback_deletes_each_spelling_it_records_created() {
    // An older version created both forms of one name: the API holds two workspaces, and
    // the ledger records both created. A rollback takes names exactly, as the API does.
    let (nfc, nfd) = ("Zo\u{eb} Ltd", "Zoe\u{308} Ltd");
    let job = Job::holding(&[nfc, nfd]).await;
    let url = job.sandbox.url();
    let ledger = job.dir.write(
        "old.csv",
        &format!(
            "_row,_status,_error_code,_error_message,_http_status,_attempts,_latency_ms,_finished_at,_target,_operation,name,connectionType\n\
             1,created,,,200,1,5,2026-12-01T00:00:00.000Z,{url},create,{nfc},MULTI_DATAMART\n\
             2,created,,,200,1,5,2026-12-01T00:00:00.000Z,{url},create,{nfd},MULTI_DATAMART\n"
        ),
    );
    let undo = job
        .run_to(Some("undo.csv"), &["rollback", &ledger, "--yes"])
        .await;
    assert_eq!(undo.exit, 0, "{}", undo.stderr);
    assert!(job.api.workspace_names().await.is_empty(), "both deleted");
}

#[tokio::test]
async fn quoted_empty_rows_are_no_rows_and_a_blank_column_amid_others_is_warned_of() {
    let job = Job::new().await;
    let input = job.input(
        "name,,connectionType\na,x,MULTI_DATAMART\n\"\",\"\",\"\"\n\" \",,\nb,,MULTI_DATAMART\n",
    );
    let run = job.run(&["run", &input]).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    assert_one_row_per_input_row(&job.rows(), 2);
    assert!(
        run.stderr.contains("columns '' are not request fields"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn validate_says_every_mistake_of_a_file_once_with_its_row_and_what_to_do() {
    let job = Job::new().await;
    let input = job.input(
        "name,connectionType,datasource,llm,theme,\n\
         Acme Corp,MULTI_DATAMART,,,,\n\
         ACME CORP,MULTI_DATAMART,,,\n\
         Caf\u{e9},MULTI_DATAMART,,,,,\n\
         Cafe\u{301},MULTI_DATAMART,,,,\n\
         \x20\x20\n\
         \"Acme Corp \",MULTI_DATAMART,,,,\n\
         evil\u{202e}gpj,BOGUS,,,,\n\
         ,,,,,\n\
         ,,,,,\n",
    );
    let validate = dbprov(&["validate", &input]).await;
    assert_eq!(
        validate.exit, 1,
        "rows that would not be sent: {}",
        validate.stderr
    );
    let stdout: Vec<&str> = validate.stdout.lines().collect();
    let warnings: Vec<&str> = validate
        .stderr
        .lines()
        .filter(|l| l.contains("WARN"))
        .collect();
    // Three misspelled headers, two repeats, one unknown connectionType; one near-duplicate.
    assert_eq!(stdout.len(), 6, "{}", validate.stdout);
    assert_eq!(warnings.len(), 1, "{}", validate.stderr);
    for line in &stdout[..3] {
        assert!(
            line.starts_with("header: column ") && line.contains("did you mean"),
            "{line}"
        );
    }
    for line in &stdout[3..] {
        assert!(line.starts_with("row "), "each names its row: {line}");
    }
    assert!(
        stdout
            .iter()
            .any(|l| l.contains("remove this row, or give it a name of its own"))
    );
    assert!(
        stdout
            .iter()
            .any(|l| l.contains("is not one of DATASOURCE"))
    );
    assert!(warnings[0].contains("row 2: name") && warnings[0].contains("remove the other row"));
    assert!(!validate.stdout.contains('\u{202e}'));
    assert!(
        validate.stderr.contains("6 rows: 3 valid, 3 invalid"),
        "{}",
        validate.stderr
    );
}
