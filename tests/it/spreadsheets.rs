//! Files as Excel and other spreadsheets write them (`samples/spreadsheets/`): semicolons, byte
//! order marks, CR and CRLF, quoted cells, results files re-saved with their own numbers,
//! dates and column order. Each ends with the right names on the sandbox, or with a message
//! that says what to do, before any request.

use crate::common::{
    JobDir, SPREADSHEET_NAMES, assert_one_row_per_input_row, names_on, parse_rows, row_numbers,
    sample, sorted, tenants, workspace,
};
use crate::fixture::Job;
use crate::process::{dbprov, dbprov_with, signal, spawn_dbprov, until_requests};

#[tokio::test]
async fn a_semicolon_file_with_bom_and_crlf_gives_the_right_names() {
    let job = Job::new().await;
    let input = sample("excel-semicolon-utf8.csv");
    let run = dbprov_with(&["run", &input], &job.args("out.csv")).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    assert_eq!(names_on(&job.api).await, sorted(&SPREADSHEET_NAMES));
    // A spreadsheet's file gets a spreadsheet's results, unless told otherwise: a
    // byte-order mark, CRLF, and its `;`.
    let bytes = std::fs::read(job.dir.path("out.csv")).unwrap();
    assert!(
        bytes.starts_with(b"\xEF\xBB\xBF_row;_status;"),
        "{:?}",
        &bytes[..20]
    );
    assert!(bytes.ends_with(b"\r\n") && !bytes.windows(2).any(|w| w[0] != b'\r' && w[1] == b'\n'));
    let (header, rows) = parse_rows(
        csv::ReaderBuilder::new()
            .delimiter(b';')
            .from_reader(&bytes[3..]),
    );
    assert_eq!(
        header[10..],
        [
            "Name",
            "Connection Type",
            "Datasource Name",
            "Datamart Name",
            "Owner e-mail"
        ]
    );
    assert_eq!(row_numbers(&rows), [1, 2, 3, 4, 5], "input order");
    // A `;` inside a quoted cell stays in its cell, and the carried column is verbatim.
    assert_eq!(rows[3]["Name"], "Crème; Brûlée");
    assert_eq!(rows[3]["Owner e-mail"], "a;b@creme.example");
    assert!(rows.iter().all(|r| r["_status"] == "created"), "{rows:?}");
    // --no-excel writes plain results whatever the input.
    let mut args = job.args("plain.csv");
    args.push("--no-excel".to_owned());
    let run = dbprov_with(&["run", &input, "--dry-run"], &args).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let plain = std::fs::read(job.dir.path("plain.csv")).unwrap();
    assert!(plain.starts_with(b"_row,_status,") && !plain.contains(&b'\r'));
}

#[tokio::test]
async fn another_delimiter_is_named_or_refused_with_the_flag_to_give() {
    let job = Job::new().await;
    let input = job
        .dir
        .write("pipes.csv", "name|connectionType\nPiped|MULTI_DATAMART\n");
    let refused = dbprov_with(&["run", &input], &job.args("out.csv")).await;
    assert_eq!(refused.exit, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("--delimiter"), "{}", refused.stderr);
    let mut args = job.args("out.csv");
    args.extend(["--delimiter", "|"].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    assert_eq!(names_on(&job.api).await, ["Piped"]);
    // A delimiter given wins over the header's: a tab file read with ',' has no name column.
    let tabs = job
        .dir
        .write("tabs.csv", "name\tconnectionType\nT\tMULTI_DATAMART\n");
    let forced = dbprov(&["validate", &tabs, "--delimiter", ","]).await;
    assert_eq!(forced.exit, 2, "{}", forced.stderr);
    let sniffed = dbprov(&["validate", &tabs]).await;
    assert_eq!(sniffed.exit, 0, "{}", sniffed.stderr);
}

#[tokio::test]
async fn line_numbers_are_the_same_for_lf_crlf_and_cr() {
    let dir = JobDir::new();
    let mut outputs = Vec::new();
    for (name, end) in [("lf.csv", "\n"), ("crlf.csv", "\r\n"), ("cr.csv", "\r")] {
        let text = [
            "name,connectionType,notes",
            "A,MULTI_DATAMART,",
            "B,BOGUS,\"two",
            "lines\"",
            "",
            "C,,",
        ]
        .join(end)
            + end;
        let path = dir.write(name, &text);
        let validate = dbprov(&["validate", &path]).await;
        assert_eq!(validate.exit, 1, "{}", validate.stderr);
        outputs.push(validate.stdout);
    }
    assert!(outputs[0].contains("row 2 (line 3)"), "{}", outputs[0]);
    assert!(outputs[0].contains("row 3 (line 6)"), "{}", outputs[0]);
    assert_eq!(outputs[0], outputs[1], "CRLF");
    assert_eq!(outputs[0], outputs[2], "CR");
}

/// The committed results file re-saved by a spreadsheet (every cell quoted, CRLF, its own
/// date format), pointed at `url`, in `dir`; `semicolons` as Excel in Europe saves it (`;`
/// and a byte-order mark).
fn saved_results(dir: &JobDir, url: &str, semicolons: bool) -> String {
    let mut text = std::fs::read_to_string(sample("saved-results.csv"))
        .unwrap()
        .replace("\"sandbox\"", &format!("\"{url}\""));
    if semicolons {
        text = format!("\u{feff}{}", text.replace("\",\"", "\";\""));
    }
    dir.write("saved.csv", &text)
}

#[tokio::test]
async fn a_results_file_saved_by_a_spreadsheet_is_retried_in_place() {
    for semicolons in [false, true] {
        let job = Job::new().await;
        for name in ["North Wind", "East Wind"] {
            job.api.create(&workspace(name)).await;
        }
        let saved = saved_results(&job.dir, &job.sandbox.url(), semicolons);
        // No -o: the file itself is updated.
        let retry = job.run_to(None, &["retry", &saved]).await;
        assert_eq!(retry.exit, 0, "semicolons {semicolons}: {}", retry.stderr);
        let stats = job.api.stats().await;
        assert_eq!(
            stats["requests_total"],
            2 + 3,
            "only rows 2, 4 and 5 are sent"
        );
        assert_eq!(
            names_on(&job.api).await,
            sorted(&[
                "North Wind",
                "South Wind",
                "East Wind",
                "West Wind",
                "Zéphyr Öst"
            ])
        );
        let bytes = std::fs::read(&saved).unwrap();
        assert_eq!(
            bytes.starts_with(b"\xef\xbb\xbf"),
            semicolons,
            "the mark is kept"
        );
        let delimiter = if semicolons { b';' } else { b',' };
        let reader = csv::ReaderBuilder::new().delimiter(delimiter).from_reader(
            bytes
                .strip_prefix(b"\xef\xbb\xbf".as_slice())
                .unwrap_or(&bytes),
        );
        let (header, rows) = parse_rows(reader);
        assert_eq!(header[0], "_row", "one delimiter throughout: {header:?}");
        assert_eq!(
            row_numbers(&rows),
            [1, 2, 3, 4, 5],
            "input order, not retried rows last"
        );
        assert!(rows.iter().all(|r| r["_status"] == "created"), "{rows:?}");
        assert_eq!(rows[1]["notes"], "second, with comma");
        assert_eq!(rows[4]["notes"], "quote \"here\"");
        assert_eq!(
            rows[0]["_finished_at"], "2026-11-29 03:30:49",
            "kept rows are verbatim"
        );
    }
}

#[tokio::test]
async fn excel_results_have_a_mark_crlf_and_the_inputs_semicolon_and_read_back() {
    let job = Job::new().await;
    let input = sample("excel-semicolon-utf8.csv");
    let mut args = job.args("out.csv");
    args.push("--excel".into());
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let bytes = std::fs::read(job.dir.path("out.csv")).unwrap();
    assert!(
        bytes.starts_with(b"\xef\xbb\xbf_row;_status;"),
        "{:?}",
        &bytes[..20]
    );
    let text = String::from_utf8(bytes).unwrap();
    assert_eq!(
        text.matches("\r\n").count(),
        6,
        "CRLF after the header and each row"
    );
    assert_eq!(text.matches('\n').count(), 6, "no bare LF");
    // The file reads back: a resume keeps every row and sends nothing.
    args.push("--resume".into());
    let resumed = dbprov_with(&["run", &input], &args).await;
    assert_eq!(resumed.exit, 0, "{}", resumed.stderr);
    assert_eq!(job.requests().await, 5, "the resume sent nothing");
    assert_eq!(names_on(&job.api).await, sorted(&SPREADSHEET_NAMES));
    assert_eq!(
        std::fs::read_to_string(job.dir.path("out.csv")).unwrap(),
        text,
        "unchanged"
    );
}

#[tokio::test]
async fn a_results_file_saved_without_a_last_line_break_keeps_its_last_row() {
    let job = Job::new().await;
    let input =
        job.input("name,connectionType\ngs-1,MULTI_DATAMART\ngs-2,BOGUS\ngs-3,MULTI_DATAMART\n");
    let run = job.run_to(Some("res.csv"), &["run", &input]).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    // Saved again without the line break after the last row, as Google Sheets does.
    let res = job.dir.path("res.csv");
    let text = std::fs::read_to_string(&res).unwrap();
    std::fs::write(&res, text.trim_end()).unwrap();
    let retry = job.run_to(None, &["retry", res.to_str().unwrap()]).await;
    assert_eq!(retry.exit, 1, "{}", retry.stderr);
    let rows = job.rows_of("res.csv");
    assert_eq!(row_numbers(&rows), [1, 2, 3], "no row lost");
    assert_eq!(rows[2]["_status"], "created");
    let rollback = job
        .run_to(
            Some("undo.csv"),
            &["rollback", res.to_str().unwrap(), "--yes"],
        )
        .await;
    assert_eq!(rollback.exit, 0, "{}", rollback.stderr);
    assert!(
        names_on(&job.api).await.is_empty(),
        "both workspaces deleted"
    );
}

#[tokio::test]
async fn numbers_a_spreadsheet_rewrote_read_back_and_garbage_is_refused() {
    let job = Job::new().await;
    let input = job.input("name,connectionType\nn-1,MULTI_DATAMART\n,MULTI_DATAMART\n,MULTI_DATAMART\nn-4,MULTI_DATAMART\n");
    let run = job.run_to(Some("res.csv"), &["run", &input]).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let res = job.dir.path("res.csv");
    let original = std::fs::read_to_string(&res).unwrap();
    // Every number as "N.0", every cell quoted, the rows in another order.
    let mut lines: Vec<String> = original
        .lines()
        .map(|line| {
            line.split(',')
                .enumerate()
                .map(|(i, cell)| match i {
                    0 | 4 | 5 if !cell.is_empty() && !cell.starts_with('_') => {
                        format!("\"{cell}.0\"")
                    }
                    _ => format!("\"{cell}\""),
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    lines[1..].reverse();
    std::fs::write(&res, lines.join("\r\n") + "\r\n").unwrap();
    // A run over it without --overwrite still sees the sent requests it records.
    let refused = job.run_to(Some("res.csv"), &["run", &input]).await;
    assert_eq!(refused.exit, 2, "{}", refused.stderr);
    let retry = job.run_to(None, &["retry", res.to_str().unwrap()]).await;
    assert_eq!(retry.exit, 1, "{}", retry.stderr);
    let rows = job.rows_of("res.csv");
    assert_eq!(
        row_numbers(&rows),
        [1, 2, 3, 4],
        "every row, each at its number"
    );
    assert_eq!(rows[1]["_error_code"], "MISSING_NAME");
    assert_eq!(rows[2]["_error_code"], "MISSING_NAME");
    assert_eq!(job.requests().await, 2, "the retry sent nothing");
    // A number cell that is not one stops a rerun, naming the line.
    let text = std::fs::read_to_string(&res)
        .unwrap()
        .replacen("\n1,", "\nabc,", 1);
    std::fs::write(&res, text).unwrap();
    let garbage = job.run_to(None, &["retry", res.to_str().unwrap()]).await;
    assert_eq!(garbage.exit, 2, "{}", garbage.stderr);
    assert!(
        garbage.stderr.contains("line 2: _row is 'abc'"),
        "{}",
        garbage.stderr
    );
}

#[tokio::test]
async fn a_rollback_resume_refuses_times_a_spreadsheet_rewrote() {
    let job = Job::new().await;
    let input = job.input("name,connectionType\nfa-A,MULTI_DATAMART\nfa-B,MULTI_DATAMART\n");
    assert_eq!(job.run_to(Some("res.csv"), &["run", &input]).await.exit, 0);
    let res = job.path("res.csv");
    let undo = job
        .run_to(Some("undo.csv"), &["rollback", &res, "--yes"])
        .await;
    assert_eq!(undo.exit, 0, "{}", undo.stderr);
    let mut args = job.args("res.csv");
    args.push("--overwrite".into());
    assert_eq!(dbprov_with(&["run", &input], &args).await.exit, 0);
    // The run's file, re-saved with the spreadsheet's own date format.
    let text = std::fs::read_to_string(&res).unwrap();
    let mut rewritten = String::new();
    for (i, line) in text.lines().enumerate() {
        let mut cells: Vec<&str> = line.split(',').collect();
        if i > 0 {
            cells[7] = "11/29/2026 03:56:32";
        }
        rewritten.push_str(&cells.join(","));
        rewritten.push('\n');
    }
    std::fs::write(&res, rewritten).unwrap();
    let resumed = job
        .run_to(Some("undo.csv"), &["rollback", &res, "--yes", "--resume"])
        .await;
    assert_eq!(resumed.exit, 2, "{}", resumed.stderr);
    assert!(
        resumed
            .stderr
            .contains("_finished_at is '11/29/2026 03:56:32'"),
        "{}",
        resumed.stderr
    );
    assert_eq!(names_on(&job.api).await, ["fa-A", "fa-B"]);
}

#[tokio::test]
async fn a_last_row_whose_quoted_cell_spans_lines_is_kept_without_its_line_break() {
    let job = Job::new().await;
    let input = job.input(
        "name,connectionType,notes\nq1,MULTI_DATAMART,plain\nq2,MULTI_DATAMART,\"line1\nline2\"\n",
    );
    assert_eq!(job.run_to(Some("res.csv"), &["run", &input]).await.exit, 0);
    let res = job.dir.path("res.csv");
    let text = std::fs::read_to_string(&res).unwrap();
    std::fs::write(&res, text.trim_end()).unwrap();
    let mut args = job.args("res.csv");
    args.push("--resume".into());
    let resumed = dbprov_with(&["run", &input], &args).await;
    assert_eq!(resumed.exit, 0, "{}", resumed.stderr);
    assert_eq!(job.requests().await, 2, "nothing sent again");
    let rows = job.rows_of("res.csv");
    assert_eq!(row_numbers(&rows), [1, 2]);
    assert_eq!(rows[1]["_status"], "created");
    assert_eq!(rows[1]["notes"], "line1\nline2");
    let undo = job
        .run_to(
            Some("undo.csv"),
            &["rollback", res.to_str().unwrap(), "--yes"],
        )
        .await;
    assert_eq!(undo.exit, 0, "{}", undo.stderr);
    assert!(names_on(&job.api).await.is_empty());
}

#[tokio::test]
async fn columns_a_spreadsheet_moved_are_put_back_before_rows_are_appended() {
    let job = Job::with_faults(dbprov::sandbox::FaultConfig {
        latency: std::time::Duration::from_millis(20),
        ..Default::default()
    })
    .await;
    let first = job.dir.write("first.csv", &tenants("m", 5));
    assert_eq!(job.run_to(Some("res.csv"), &["run", &first]).await.exit, 0);
    // `_status` moved to the end, as a spreadsheet user may drag it.
    let res = job.dir.path("res.csv");
    let mut reader = csv::Reader::from_path(&res).unwrap();
    let mut writer = csv::Writer::from_path(job.dir.path("moved.csv")).unwrap();
    let move_status = |r: &csv::StringRecord| {
        let mut cells: Vec<String> = r.iter().map(str::to_owned).collect();
        let status = cells.remove(1);
        cells.push(status);
        cells
    };
    writer
        .write_record(move_status(reader.headers().unwrap()))
        .unwrap();
    for record in reader.records() {
        writer.write_record(move_status(&record.unwrap())).unwrap();
    }
    writer.flush().unwrap();
    std::fs::rename(job.dir.path("moved.csv"), &res).unwrap();
    // A resume over 30 rows, killed mid-way, then resumed to its end.
    let all = job.dir.write("all.csv", &tenants("m", 30));
    let mut args = job.args("res.csv");
    args.extend(["--resume", "--concurrency", "2"].map(str::to_owned));
    let mut line = vec!["run", all.as_str()];
    line.extend(args.iter().map(String::as_str));
    let mut child = spawn_dbprov(&line);
    until_requests(&job.api, &mut child, 15).await;
    signal(&child, libc::SIGKILL);
    child.wait().await.unwrap();
    let resumed = dbprov_with(&["run", &all], &args).await;
    assert_eq!(resumed.exit, 0, "{}", resumed.stderr);
    let (header, rows) = job.dir.results("res.csv");
    assert_eq!(header[1], "_status", "the columns are back in place");
    assert_one_row_per_input_row(&rows, 30);
    let created = rows.iter().filter(|r| r["_status"] == "created").count();
    let in_flight = rows.iter().filter(|r| r["_status"] == "exists").count();
    assert!(
        in_flight <= 2,
        "at most the rows in flight at the kill: {rows:?}"
    );
    assert_eq!(created + in_flight, 30);
    assert_eq!(names_on(&job.api).await.len(), 30);
}
