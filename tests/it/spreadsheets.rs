//! Files as Excel and other spreadsheets write them (`samples/spreadsheets/`): each ends with
//! the right names on the sandbox, or with exit 2 and a message that says what to do, before
//! any request. Never a row silently wrong.

use crate::common::{
    Api, JobDir, SPREADSHEET_NAMES, assert_one_row_per_input_row, job_args, names_on, parse_rows,
    plain_sandbox, row_numbers, run_job, sample, sandbox_with, sorted, tenants, workspace,
};
use crate::process::{Finished, dbprov, dbprov_with, signal, spawn_dbprov, until_requests};

#[tokio::test]
async fn a_semicolon_file_with_bom_and_crlf_gives_the_right_names() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = sample("excel-semicolon-utf8.csv");
    let run = dbprov_with(&["run", &input], &job_args(&sandbox, &dir, "out.csv")).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    assert_eq!(names_on(&api).await, sorted(&SPREADSHEET_NAMES));
    let (header, rows) = dir.results("out.csv");
    assert_eq!(
        header[9..],
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
}

#[tokio::test]
async fn windows_1252_is_refused_unless_named_then_read_right() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = sample("excel-windows-1252.csv");
    let refused = dbprov_with(&["run", &input], &job_args(&sandbox, &dir, "out.csv")).await;
    assert_eq!(refused.exit, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("is not UTF-8 (line 2"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("--encoding windows-1252"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("CSV UTF-8"), "{}", refused.stderr);
    assert_eq!(api.stats().await["requests_total"], 0, "nothing sent");
    assert!(!dir.path("out.csv").exists(), "no results file left behind");

    let validate = dbprov(&["validate", &input]).await;
    assert_eq!(validate.exit, 2, "{}", validate.stderr);

    let mut args = job_args(&sandbox, &dir, "out.csv");
    args.extend(["--encoding", "windows-1252"].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    assert_eq!(names_on(&api).await, sorted(&SPREADSHEET_NAMES));
    let (_, rows) = dir.results("out.csv");
    assert_eq!(rows[0]["Name"], "Café Zürich", "the results are UTF-8");
}

#[tokio::test]
async fn a_legacy_encoding_given_for_a_utf8_file_is_refused() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let mut args = job_args(&sandbox, &dir, "out.csv");
    args.extend(["--encoding", "latin1"].map(str::to_owned));
    // (A file with a byte-order mark is read by its mark, whatever --encoding says.)
    let input = dir.write("in.csv", "name,connectionType\nCafé,MULTI_DATAMART\n");
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 2, "{}", run.stderr);
    assert!(run.stderr.contains("UTF-8 already"), "{}", run.stderr);
    assert_eq!(api.stats().await["requests_total"], 0);
}

#[tokio::test]
async fn excel_unicode_text_is_read_by_its_mark() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = sample("excel-unicode-text.txt");
    let run = dbprov_with(&["run", &input], &job_args(&sandbox, &dir, "out.csv")).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let mut expected = SPREADSHEET_NAMES.to_vec();
    expected.push("東京 Analytics");
    assert_eq!(names_on(&api).await, sorted(&expected));
    let (_, rows) = dir.results("out.csv");
    assert_eq!(row_numbers(&rows), [1, 2, 3, 4, 5, 6]);
}

#[tokio::test]
async fn a_broken_utf16_row_is_malformed_not_sent_with_a_replacement_character() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let mut bytes = vec![0xff, 0xfe];
    let mut units: Vec<u16> = "name\tconnectionType\r\nGood\tMULTI_DATAMART\r\nBad"
        .encode_utf16()
        .collect();
    units.push(0xd800); // half of a surrogate pair
    units.extend("\tMULTI_DATAMART\r\n".encode_utf16());
    bytes.extend(units.iter().flat_map(|u| u.to_le_bytes()));
    let input = dir.path("unicode.txt");
    std::fs::write(&input, bytes).unwrap();
    let run = dbprov_with(
        &["run", input.to_str().unwrap()],
        &job_args(&sandbox, &dir, "out.csv"),
    )
    .await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    assert_eq!(names_on(&api).await, ["Good"]);
    let (_, rows) = dir.results("out.csv");
    assert_eq!(rows[1]["_status"], "invalid");
    assert_eq!(rows[1]["_error_code"], "MALFORMED_ROW");
    assert!(
        rows[1]["_error_message"].contains("line 3: column 1"),
        "{rows:?}"
    );
}

#[tokio::test]
async fn utf16_without_its_mark_is_refused() {
    let dir = JobDir::new();
    let bytes: Vec<u8> = "name,connectionType\nA,MULTI_DATAMART\n"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    std::fs::write(dir.path("in.csv"), bytes).unwrap();
    let validate = dbprov(&["validate", dir.path("in.csv").to_str().unwrap()]).await;
    assert_eq!(validate.exit, 2, "{}", validate.stderr);
    assert!(
        validate.stderr.contains("--encoding utf-16le"),
        "{}",
        validate.stderr
    );
    assert!(!validate.stderr.contains('\0'), "no raw NULs printed");
}

#[tokio::test]
async fn another_delimiter_is_named_or_refused_with_the_flag_to_give() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write("pipes.csv", "name|connectionType\nPiped|MULTI_DATAMART\n");
    let refused = dbprov_with(&["run", &input], &job_args(&sandbox, &dir, "out.csv")).await;
    assert_eq!(refused.exit, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("--delimiter"), "{}", refused.stderr);
    let mut args = job_args(&sandbox, &dir, "out.csv");
    args.extend(["--delimiter", "|"].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    assert_eq!(names_on(&api).await, ["Piped"]);
    // A delimiter given wins over the header's: a tab file read with ',' has no name column.
    let tabs = dir.write("tabs.csv", "name\tconnectionType\nT\tMULTI_DATAMART\n");
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
        let sandbox = plain_sandbox().await;
        let api = Api::new(&sandbox);
        for name in ["North Wind", "East Wind"] {
            api.create(&workspace(name)).await;
        }
        let dir = JobDir::new();
        let saved = saved_results(&dir, &sandbox.url(), semicolons);
        let mut args = job_args(&sandbox, &dir, "unused.csv");
        args.drain(0..2); // no -o: the file itself is updated
        let retry = dbprov_with(&["retry", &saved], &args).await;
        assert_eq!(retry.exit, 0, "semicolons {semicolons}: {}", retry.stderr);
        let stats = api.stats().await;
        assert_eq!(
            stats["requests_total"],
            2 + 3,
            "only rows 2, 4 and 5 are sent"
        );
        assert_eq!(
            names_on(&api).await,
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
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = sample("excel-semicolon-utf8.csv");
    let mut args = job_args(&sandbox, &dir, "out.csv");
    args.push("--excel".into());
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let bytes = std::fs::read(dir.path("out.csv")).unwrap();
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
    assert_eq!(
        api.stats().await["requests_total"],
        5,
        "the resume sent nothing"
    );
    assert_eq!(names_on(&api).await, sorted(&SPREADSHEET_NAMES));
    assert_eq!(
        std::fs::read_to_string(dir.path("out.csv")).unwrap(),
        text,
        "unchanged"
    );
}

#[tokio::test]
async fn results_are_in_input_order_whatever_the_order_rows_finish_in() {
    let sandbox = sandbox_with(dbprov::sandbox::FaultConfig {
        latency: std::time::Duration::from_millis(1),
        jitter: std::time::Duration::from_millis(20),
        fail_rate: 0.3,
        ..Default::default()
    })
    .await;
    let dir = JobDir::new();
    let input = dir.write("in.csv", &tenants("order", 60));
    let mut args = job_args(&sandbox, &dir, "out.csv");
    args.extend(["--concurrency", "8", "--max-attempts", "1"].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert!(run.exit <= 1, "{}", run.stderr);
    let (_, rows) = dir.results("out.csv");
    assert_eq!(row_numbers(&rows), (1..=60).collect::<Vec<_>>());
    // A retry of the failures puts them back in their places too.
    let failed = rows.iter().filter(|r| r["_status"] == "failed").count();
    assert!(failed > 0, "the faults leave failures to retry");
    args.drain(0..2);
    let out = dir.path("out.csv");
    let retry = dbprov_with(&["retry", out.to_str().unwrap()], &args).await;
    assert!(retry.exit <= 1, "{}", retry.stderr);
    let (_, rows) = dir.results("out.csv");
    assert_eq!(row_numbers(&rows), (1..=60).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_file_with_a_legacy_byte_far_from_its_start_is_refused_before_any_request() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    // 3 000 rows of ASCII names, then one in Windows-1252: far past what decode looks at.
    let mut bytes = tenants("ascii", 3000).into_bytes();
    bytes.extend_from_slice(b"Caf\xe9,MULTI_DATAMART,,\n");
    let input = dir.path("late.csv");
    std::fs::write(&input, bytes).unwrap();
    let run = dbprov_with(
        &["run", input.to_str().unwrap()],
        &job_args(&sandbox, &dir, "out.csv"),
    )
    .await;
    assert_eq!(run.exit, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("line 3002 has the byte 0xE9"),
        "{}",
        run.stderr
    );
    assert_eq!(api.stats().await["requests_total"], 0);
}

#[tokio::test]
async fn a_results_file_saved_without_a_last_line_break_keeps_its_last_row() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write(
        "in.csv",
        "name,connectionType\ngs-1,MULTI_DATAMART\ngs-2,BOGUS\ngs-3,MULTI_DATAMART\n",
    );
    let run = run_job(&["run", &input], &sandbox, &dir, Some("res.csv")).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    // Saved again without the line break after the last row, as Google Sheets does.
    let res = dir.path("res.csv");
    let text = std::fs::read_to_string(&res).unwrap();
    std::fs::write(&res, text.trim_end()).unwrap();
    let retry = run_job(&["retry", res.to_str().unwrap()], &sandbox, &dir, None).await;
    assert_eq!(retry.exit, 1, "{}", retry.stderr);
    let (_, rows) = dir.results("res.csv");
    assert_eq!(row_numbers(&rows), [1, 2, 3], "no row lost");
    assert_eq!(rows[2]["_status"], "created");
    let rollback = run_job(
        &["rollback", res.to_str().unwrap(), "--yes"],
        &sandbox,
        &dir,
        Some("undo.csv"),
    )
    .await;
    assert_eq!(rollback.exit, 0, "{}", rollback.stderr);
    assert!(names_on(&api).await.is_empty(), "both workspaces deleted");
}

#[tokio::test]
async fn a_value_that_could_not_be_read_is_never_sent_on_a_retry() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let mut bytes = vec![0xff, 0xfe];
    let mut units: Vec<u16> = "name,connectionType\r\nZo".encode_utf16().collect();
    units.push(0xd800);
    units.extend("e,MULTI_DATAMART\r\nFine,MULTI_DATAMART\r\n".encode_utf16());
    bytes.extend(units.iter().flat_map(|u| u.to_le_bytes()));
    std::fs::write(dir.path("in.csv"), bytes).unwrap();
    let input = dir.path("in.csv");
    let run = run_job(
        &["run", input.to_str().unwrap()],
        &sandbox,
        &dir,
        Some("res.csv"),
    )
    .await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let res = dir.path("res.csv");
    let retry = run_job(&["retry", res.to_str().unwrap()], &sandbox, &dir, None).await;
    assert_eq!(retry.exit, 1, "{}", retry.stderr);
    assert_eq!(names_on(&api).await, ["Fine"], "no garbled name created");
    let (_, rows) = dir.results("res.csv");
    assert_eq!(rows[0]["_error_code"], "MALFORMED_ROW");
}

#[tokio::test]
async fn a_results_file_saved_in_another_encoding_is_refused_before_any_request() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write(
        "in.csv",
        "name,connectionType\nSociété Générale,MULTI_DATAMART\n",
    );
    let run = run_job(&["run", &input], &sandbox, &dir, Some("res.csv")).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let res = dir.path("res.csv");
    let text = std::fs::read_to_string(&res).unwrap();
    // Excel's plain "CSV" (Windows-1252), then its "Unicode Text" (UTF-16, tabs).
    let cp1252: Vec<u8> = text
        .chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap())
        .collect();
    let mut utf16 = vec![0xff, 0xfe];
    utf16.extend(
        text.replace(',', "\t")
            .encode_utf16()
            .flat_map(u16::to_le_bytes),
    );
    for saved in [cp1252, utf16] {
        std::fs::write(&res, &saved).unwrap();
        let before = api.stats().await["requests_total"].as_u64().unwrap();
        for command in [
            vec!["retry", res.to_str().unwrap()],
            vec!["rollback", res.to_str().unwrap(), "--yes"],
        ] {
            let output = (command[0] == "rollback").then_some("undo.csv");
            let refused = run_job(&command, &sandbox, &dir, output).await;
            assert_eq!(refused.exit, 2, "{command:?}: {}", refused.stderr);
            assert!(
                refused.stderr.contains("is not UTF-8"),
                "{}",
                refused.stderr
            );
            assert!(refused.stderr.contains("CSV UTF-8"), "{}", refused.stderr);
            assert!(
                !refused.stderr.contains("--overwrite"),
                "{}",
                refused.stderr
            );
            assert!(!refused.stderr.contains("--encoding"), "{}", refused.stderr);
        }
        assert_eq!(
            api.stats().await["requests_total"].as_u64().unwrap(),
            before
        );
        assert_eq!(std::fs::read(&res).unwrap(), saved, "left as it was");
    }
    assert_eq!(names_on(&api).await, ["Société Générale"]);
}

#[tokio::test]
async fn a_legacy_encoding_over_utf8_letters_far_from_the_start_is_refused() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let mut text = tenants("ascii", 1500);
    text.push_str("Café Müller,MULTI_DATAMART,,\n");
    let input = dir.write("late.csv", &text);
    let mut args = job_args(&sandbox, &dir, "out.csv");
    args.extend(["--encoding", "windows-1252"].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("UTF-8 already (line 1502"),
        "{}",
        run.stderr
    );
    assert_eq!(api.stats().await["requests_total"], 0);
}

#[tokio::test]
async fn numbers_a_spreadsheet_rewrote_read_back_and_garbage_is_refused() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write("in.csv", "name,connectionType\nn-1,MULTI_DATAMART\n,MULTI_DATAMART\n,MULTI_DATAMART\nn-4,MULTI_DATAMART\n");
    let run = run_job(&["run", &input], &sandbox, &dir, Some("res.csv")).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let res = dir.path("res.csv");
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
    let refused = run_job(&["run", &input], &sandbox, &dir, Some("res.csv")).await;
    assert_eq!(refused.exit, 2, "{}", refused.stderr);
    let retry = run_job(&["retry", res.to_str().unwrap()], &sandbox, &dir, None).await;
    assert_eq!(retry.exit, 1, "{}", retry.stderr);
    let (_, rows) = dir.results("res.csv");
    assert_eq!(
        row_numbers(&rows),
        [1, 2, 3, 4],
        "every row, each at its number"
    );
    assert_eq!(rows[1]["_error_code"], "MISSING_NAME");
    assert_eq!(rows[2]["_error_code"], "MISSING_NAME");
    assert_eq!(
        api.stats().await["requests_total"],
        2,
        "the retry sent nothing"
    );
    // A number cell that is not one stops a rerun, naming the line.
    let text = std::fs::read_to_string(&res)
        .unwrap()
        .replacen("\n1,", "\nabc,", 1);
    std::fs::write(&res, text).unwrap();
    let garbage = run_job(&["retry", res.to_str().unwrap()], &sandbox, &dir, None).await;
    assert_eq!(garbage.exit, 2, "{}", garbage.stderr);
    assert!(
        garbage.stderr.contains("line 2: _row is 'abc'"),
        "{}",
        garbage.stderr
    );
}

#[tokio::test]
async fn a_rollback_resume_refuses_times_a_spreadsheet_rewrote() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write(
        "in.csv",
        "name,connectionType\nfa-A,MULTI_DATAMART\nfa-B,MULTI_DATAMART\n",
    );
    assert_eq!(
        run_job(&["run", &input], &sandbox, &dir, Some("res.csv"))
            .await
            .exit,
        0
    );
    let res = dir.path("res.csv");
    let res = res.to_str().unwrap();
    let undo = run_job(
        &["rollback", res, "--yes"],
        &sandbox,
        &dir,
        Some("undo.csv"),
    )
    .await;
    assert_eq!(undo.exit, 0, "{}", undo.stderr);
    let mut args = job_args(&sandbox, &dir, "res.csv");
    args.push("--overwrite".into());
    assert_eq!(dbprov_with(&["run", &input], &args).await.exit, 0);
    // The run's file, re-saved with the spreadsheet's own date format.
    let text = std::fs::read_to_string(res).unwrap();
    let mut rewritten = String::new();
    for (i, line) in text.lines().enumerate() {
        let mut cells: Vec<&str> = line.split(',').collect();
        if i > 0 {
            cells[7] = "11/29/2026 03:56:32";
        }
        rewritten.push_str(&cells.join(","));
        rewritten.push('\n');
    }
    std::fs::write(res, rewritten).unwrap();
    let resumed = run_job(
        &["rollback", res, "--yes", "--resume"],
        &sandbox,
        &dir,
        Some("undo.csv"),
    )
    .await;
    assert_eq!(resumed.exit, 2, "{}", resumed.stderr);
    assert!(
        resumed
            .stderr
            .contains("_finished_at is '11/29/2026 03:56:32'"),
        "{}",
        resumed.stderr
    );
    assert_eq!(names_on(&api).await, ["fa-A", "fa-B"]);
}

#[tokio::test]
async fn validate_refuses_a_file_that_is_not_utf8_wherever_the_byte_is() {
    let dir = JobDir::new();
    let mut bytes = tenants("ascii", 3000).into_bytes();
    bytes.extend_from_slice(b"Caf\xe9,MULTI_DATAMART,,\n");
    std::fs::write(dir.path("late.csv"), bytes).unwrap();
    let validate = dbprov(&["validate", dir.path("late.csv").to_str().unwrap()]).await;
    assert_eq!(validate.exit, 2, "{}", validate.stderr);
    assert!(
        validate.stderr.contains("--encoding windows-1252"),
        "{}",
        validate.stderr
    );
}

/// Runs `dbprov` with `args`, `input` on its standard input.
async fn dbprov_fed(args: &[&str], input: Vec<u8>) -> Finished {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_dbprov"))
        .args(args)
        .env_remove("DATABRAIN_API_KEY")
        .env_remove("DATABRAIN_BASE_URL")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The process may stop reading early (a refusal): a closed pipe is no failure here.
    let _ = stdin.write_all(&input).await;
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    Finished {
        exit: output.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
    }
}

#[tokio::test]
async fn a_legacy_encoding_over_utf8_on_stdin_sends_no_garbled_name() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let mut text = tenants("ascii", 1500);
    text.push_str("Café Müller,MULTI_DATAMART,,\n");
    let mut args = vec!["run", "-"];
    let job = job_args(&sandbox, &dir, "out.csv");
    args.extend(job.iter().map(String::as_str));
    args.extend(["--encoding", "windows-1252"]);
    let run = dbprov_fed(&args, text.into_bytes()).await;
    assert_ne!(run.exit, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("UTF-8 already (line 1502"),
        "{}",
        run.stderr
    );
    let names = api.workspace_names().await;
    assert!(
        names.iter().all(|n| n.is_ascii()),
        "no garbled name: {names:?}"
    );
    // Whatever was sent before the refusal is recorded.
    let recorded = match dir.path("out.csv").exists() {
        true => dir.results("out.csv").1.len(),
        false => 0,
    };
    assert_eq!(recorded, names.len());
}

#[tokio::test]
async fn a_last_row_whose_quoted_cell_spans_lines_is_kept_without_its_line_break() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let input = dir.write(
        "in.csv",
        "name,connectionType,notes\nq1,MULTI_DATAMART,plain\nq2,MULTI_DATAMART,\"line1\nline2\"\n",
    );
    assert_eq!(
        run_job(&["run", &input], &sandbox, &dir, Some("res.csv"))
            .await
            .exit,
        0
    );
    let res = dir.path("res.csv");
    let text = std::fs::read_to_string(&res).unwrap();
    std::fs::write(&res, text.trim_end()).unwrap();
    let mut args = job_args(&sandbox, &dir, "res.csv");
    args.push("--resume".into());
    let resumed = dbprov_with(&["run", &input], &args).await;
    assert_eq!(resumed.exit, 0, "{}", resumed.stderr);
    assert_eq!(api.stats().await["requests_total"], 2, "nothing sent again");
    let (_, rows) = dir.results("res.csv");
    assert_eq!(row_numbers(&rows), [1, 2]);
    assert_eq!(rows[1]["_status"], "created");
    assert_eq!(rows[1]["notes"], "line1\nline2");
    let undo = run_job(
        &["rollback", res.to_str().unwrap(), "--yes"],
        &sandbox,
        &dir,
        Some("undo.csv"),
    )
    .await;
    assert_eq!(undo.exit, 0, "{}", undo.stderr);
    assert!(names_on(&api).await.is_empty());
}

#[tokio::test]
async fn columns_a_spreadsheet_moved_are_put_back_before_rows_are_appended() {
    let sandbox = sandbox_with(dbprov::sandbox::FaultConfig {
        latency: std::time::Duration::from_millis(20),
        ..Default::default()
    })
    .await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let first = dir.write("first.csv", &tenants("m", 5));
    assert_eq!(
        run_job(&["run", &first], &sandbox, &dir, Some("res.csv"))
            .await
            .exit,
        0
    );
    // `_status` moved to the end, as a spreadsheet user may drag it.
    let res = dir.path("res.csv");
    let mut reader = csv::Reader::from_path(&res).unwrap();
    let mut writer = csv::Writer::from_path(dir.path("moved.csv")).unwrap();
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
    std::fs::rename(dir.path("moved.csv"), &res).unwrap();
    // A resume over 30 rows, killed mid-way, then resumed to its end.
    let all = dir.write("all.csv", &tenants("m", 30));
    let mut args = job_args(&sandbox, &dir, "res.csv");
    args.extend(["--resume", "--concurrency", "2"].map(str::to_owned));
    let mut line = vec!["run", all.as_str()];
    line.extend(args.iter().map(String::as_str));
    let mut child = spawn_dbprov(&line);
    until_requests(&api, &mut child, 15).await;
    signal(&child, libc::SIGKILL);
    child.wait().await.unwrap();
    let resumed = dbprov_with(&["run", &all], &args).await;
    assert_eq!(resumed.exit, 0, "{}", resumed.stderr);
    let (header, rows) = dir.results("res.csv");
    assert_eq!(header[1], "_status", "the columns are back in place");
    assert_one_row_per_input_row(&rows, 30);
    let created = rows.iter().filter(|r| r["_status"] == "created").count();
    let in_flight = rows.iter().filter(|r| r["_status"] == "exists").count();
    assert!(
        in_flight <= 2,
        "at most the rows in flight at the kill: {rows:?}"
    );
    assert_eq!(created + in_flight, 30);
    assert_eq!(names_on(&api).await.len(), 30);
}

#[tokio::test]
async fn overwrite_replaces_a_results_file_that_cannot_be_read_back() {
    let sandbox = plain_sandbox().await;
    let dir = JobDir::new();
    let input = dir.write("in.csv", &tenants("w", 2));
    assert_eq!(
        run_job(&["run", &input], &sandbox, &dir, Some("res.csv"))
            .await
            .exit,
        0
    );
    let res = dir.path("res.csv");
    let mut bytes = std::fs::read(&res).unwrap();
    bytes.extend_from_slice(
        b"3,created,,,200,1,3,2026-11-29T00:00:00Z,x,K\xf6ln,MULTI_DATAMART,,\n",
    );
    std::fs::write(&res, &bytes).unwrap();
    let refused = run_job(&["run", &input], &sandbox, &dir, Some("res.csv")).await;
    assert_eq!(refused.exit, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("give another -o, or --overwrite"),
        "{}",
        refused.stderr
    );
    let mut args = job_args(&sandbox, &dir, "res.csv");
    args.push("--overwrite".into());
    let replaced = dbprov_with(&["run", &input], &args).await;
    assert_eq!(replaced.exit, 0, "{}", replaced.stderr);
    // A header that is not UTF-8 is told as such, with no flag retry lacks.
    let header = std::fs::read_to_string(&res)
        .unwrap()
        .replacen("name", "Gr\u{f6}\u{df}e", 1);
    let latin1: Vec<u8> = header
        .chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap())
        .collect();
    std::fs::write(&res, latin1).unwrap();
    let retry = run_job(&["retry", res.to_str().unwrap()], &sandbox, &dir, None).await;
    assert_eq!(retry.exit, 2, "{}", retry.stderr);
    assert!(
        retry.stderr.contains("its header has the byte 0xF6"),
        "{}",
        retry.stderr
    );
    assert!(!retry.stderr.contains("--encoding"), "{}", retry.stderr);
}

#[tokio::test]
async fn a_results_file_re_saved_as_latin1_is_refused_wherever_its_letters_are() {
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    // Letters beyond ASCII at the end of every row: latin-1 makes each a lone byte there.
    let input = dir.write(
        "j.csv",
        "name,connectionType,owner\nj1,MULTI_DATAMART,José\nj2,MULTI_DATAMART,René\n",
    );
    assert_eq!(
        run_job(&["run", &input], &sandbox, &dir, Some("jr.csv"))
            .await
            .exit,
        0
    );
    let res = dir.path("jr.csv");
    let text = std::fs::read_to_string(&res).unwrap();
    let latin1: Vec<u8> = text
        .chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap())
        .collect();
    std::fs::write(&res, &latin1).unwrap();
    let path = res.to_str().unwrap();
    let rollback = run_job(
        &["rollback", path, "--yes"],
        &sandbox,
        &dir,
        Some("undo.csv"),
    )
    .await;
    assert_eq!(rollback.exit, 2, "{}", rollback.stderr);
    assert!(
        rollback.stderr.contains("is not UTF-8"),
        "{}",
        rollback.stderr
    );
    for extra in [&[][..], &["--dry-run"][..], &["--resume"][..]] {
        let mut args = job_args(&sandbox, &dir, "jr.csv");
        args.extend(extra.iter().map(|a| a.to_string()));
        let refused = dbprov_with(&["run", &input], &args).await;
        assert_eq!(refused.exit, 2, "{extra:?}: {}", refused.stderr);
    }
    assert_eq!(std::fs::read(&res).unwrap(), latin1, "the record is intact");
    assert_eq!(names_on(&api).await, ["j1", "j2"]);
}

#[tokio::test]
async fn input_that_fails_after_requests_were_sent_stops_as_an_abort_and_resume_completes() {
    use tokio::io::AsyncWriteExt;
    let sandbox = plain_sandbox().await;
    let api = Api::new(&sandbox);
    let dir = JobDir::new();
    let mut args = vec!["run".to_owned(), "-".to_owned()];
    args.extend(job_args(&sandbox, &dir, "out.csv"));
    args.extend(["--encoding", "windows-1252"].map(str::to_owned));
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_dbprov"))
        .args(&args)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let all = tenants("e", 8) + "Zoë,MULTI_DATAMART,,\n";
    let (head, tail) = all.split_at(all.find("e-0006").unwrap());
    stdin.write_all(head.as_bytes()).await.unwrap();
    stdin.flush().await.unwrap();
    until_requests(&api, &mut child, 5).await;
    let _ = stdin.write_all(tail.as_bytes()).await;
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(3),
        "an abort, not a usage error: {stderr}"
    );
    assert!(stderr.contains("UTF-8 already"), "{stderr}");
    assert!(stderr.contains("--resume"), "{stderr}");
    let (_, rows) = dir.results("out.csv");
    assert_eq!(
        rows.len(),
        api.workspace_names().await.len(),
        "every request recorded"
    );
    // Without the wrong --encoding, a resume completes the file.
    let mut args = job_args(&sandbox, &dir, "out.csv");
    args.push("--resume".into());
    let mut line = vec!["run", "-"];
    line.extend(args.iter().map(String::as_str));
    let resumed = dbprov_fed(&line, all.into_bytes()).await;
    assert_eq!(resumed.exit, 0, "{}", resumed.stderr);
    let (_, rows) = dir.results("out.csv");
    assert_one_row_per_input_row(&rows, 9);
    assert!(names_on(&api).await.contains(&"Zoë".to_owned()));
}

#[tokio::test]
async fn a_latin1_letter_in_a_last_row_without_a_line_break_is_refused_not_cut() {
    let sandbox = plain_sandbox().await;
    let dir = JobDir::new();
    let input = dir.write("in.csv", &tenants("l", 3));
    assert_eq!(
        run_job(&["run", &input], &sandbox, &dir, Some("res.csv"))
            .await
            .exit,
        0
    );
    let res = dir.path("res.csv");
    let mut bytes = std::fs::read(&res).unwrap();
    bytes.pop(); // the last line break
    bytes.extend_from_slice(b"\xe9"); // "é" in Latin-1, after the last cell
    std::fs::write(&res, &bytes).unwrap();
    let mut args = job_args(&sandbox, &dir, "res.csv");
    args.push("--resume".into());
    let resumed = dbprov_with(&["run", &input], &args).await;
    assert_eq!(resumed.exit, 2, "{}", resumed.stderr);
    assert!(
        resumed.stderr.contains("is not UTF-8"),
        "{}",
        resumed.stderr
    );
    assert_eq!(std::fs::read(&res).unwrap(), bytes, "the record is intact");
}
