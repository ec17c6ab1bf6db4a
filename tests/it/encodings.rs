//! Encodings: files that are not UTF-8 (Windows-1252, UTF-16 with or without its mark, a
//! results file re-saved as Latin-1) are read right when named, or refused with exit 2 and a
//! message that says what to do, before any request. Never a garbled name sent.

use crate::common::{
    JobDir, SPREADSHEET_NAMES, assert_one_row_per_input_row, names_on, row_numbers, sample, sorted,
    tenants,
};
use crate::fixture::Job;
use crate::process::{Finished, dbprov, dbprov_with, start, until_requests};

#[tokio::test]
async fn windows_1252_is_refused_unless_named_then_read_right() {
    let job = Job::new().await;
    let input = sample("excel-windows-1252.csv");
    let refused = dbprov_with(&["run", &input], &job.args("out.csv")).await;
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
    assert_eq!(job.requests().await, 0, "nothing sent");
    assert!(
        !job.dir.path("out.csv").exists(),
        "no results file left behind"
    );

    let validate = dbprov(&["validate", &input]).await;
    assert_eq!(validate.exit, 2, "{}", validate.stderr);

    let mut args = job.args("out.csv");
    args.extend(["--encoding", "windows-1252"].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    assert_eq!(names_on(&job.api).await, sorted(&SPREADSHEET_NAMES));
    let rows = job.rows_of("out.csv");
    assert_eq!(rows[0]["Name"], "Café Zürich", "the results are UTF-8");
    // With the byte-order mark and CRLF that let Excel read them back as UTF-8.
    let bytes = std::fs::read(job.dir.path("out.csv")).unwrap();
    assert!(bytes.starts_with(b"\xEF\xBB\xBF_row"), "{:?}", &bytes[..10]);
    assert!(bytes.ends_with(b"\r\n"));
}

#[tokio::test]
async fn a_legacy_encoding_given_for_a_utf8_file_is_refused() {
    let job = Job::new().await;
    let mut args = job.args("out.csv");
    args.extend(["--encoding", "latin1"].map(str::to_owned));
    // (A file with a byte-order mark is read by its mark, whatever --encoding says.)
    let input = job.input("name,connectionType\nCafé,MULTI_DATAMART\n");
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 2, "{}", run.stderr);
    assert!(run.stderr.contains("UTF-8 already"), "{}", run.stderr);
    assert_eq!(job.requests().await, 0);
}

#[tokio::test]
async fn excel_unicode_text_is_read_by_its_mark() {
    let job = Job::new().await;
    let input = sample("excel-unicode-text.txt");
    let run = dbprov_with(&["run", &input], &job.args("out.csv")).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let mut expected = SPREADSHEET_NAMES.to_vec();
    expected.push("東京 Analytics");
    assert_eq!(names_on(&job.api).await, sorted(&expected));
    let rows = job.rows_of("out.csv");
    assert_eq!(row_numbers(&rows), [1, 2, 3, 4, 5, 6]);
}

#[tokio::test]
async fn a_broken_utf16_row_is_malformed_not_sent_with_a_replacement_character() {
    let job = Job::new().await;
    let mut bytes = vec![0xff, 0xfe];
    let mut units: Vec<u16> = "name\tconnectionType\r\nGood\tMULTI_DATAMART\r\nBad"
        .encode_utf16()
        .collect();
    units.push(0xd800); // half of a surrogate pair
    units.extend("\tMULTI_DATAMART\r\n".encode_utf16());
    bytes.extend(units.iter().flat_map(|u| u.to_le_bytes()));
    let input = job.dir.path("unicode.txt");
    std::fs::write(&input, bytes).unwrap();
    let run = dbprov_with(&["run", input.to_str().unwrap()], &job.args("out.csv")).await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    assert_eq!(names_on(&job.api).await, ["Good"]);
    let rows = job.rows_of("out.csv");
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
async fn a_file_with_a_legacy_byte_far_from_its_start_is_refused_before_any_request() {
    let job = Job::new().await;
    // 3 000 rows of ASCII names, then one in Windows-1252: far past what decode looks at.
    let mut bytes = tenants("ascii", 3000).into_bytes();
    bytes.extend_from_slice(b"Caf\xe9,MULTI_DATAMART,,\n");
    let input = job.dir.path("late.csv");
    std::fs::write(&input, bytes).unwrap();
    let run = dbprov_with(&["run", input.to_str().unwrap()], &job.args("out.csv")).await;
    assert_eq!(run.exit, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("line 3002 has the byte 0xE9"),
        "{}",
        run.stderr
    );
    assert_eq!(job.requests().await, 0);
}

#[tokio::test]
async fn a_value_that_could_not_be_read_is_never_sent_on_a_retry() {
    let job = Job::new().await;
    let mut bytes = vec![0xff, 0xfe];
    let mut units: Vec<u16> = "name,connectionType\r\nZo".encode_utf16().collect();
    units.push(0xd800);
    units.extend("e,MULTI_DATAMART\r\nFine,MULTI_DATAMART\r\n".encode_utf16());
    bytes.extend(units.iter().flat_map(|u| u.to_le_bytes()));
    std::fs::write(job.dir.path("in.csv"), bytes).unwrap();
    let input = job.dir.path("in.csv");
    let run = job
        .run_to(Some("res.csv"), &["run", input.to_str().unwrap()])
        .await;
    assert_eq!(run.exit, 1, "{}", run.stderr);
    let res = job.dir.path("res.csv");
    let retry = job.run_to(None, &["retry", res.to_str().unwrap()]).await;
    assert_eq!(retry.exit, 1, "{}", retry.stderr);
    assert_eq!(
        names_on(&job.api).await,
        ["Fine"],
        "no garbled name created"
    );
    let rows = job.rows_of("res.csv");
    assert_eq!(rows[0]["_error_code"], "MALFORMED_ROW");
}

#[tokio::test]
async fn a_results_file_saved_in_another_encoding_is_refused_before_any_request() {
    let job = Job::new().await;
    let input = job.input("name,connectionType\nSociété Générale,MULTI_DATAMART\n");
    let run = job.run_to(Some("res.csv"), &["run", &input]).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let res = job.dir.path("res.csv");
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
        let before = job.requests().await;
        for command in [
            vec!["retry", res.to_str().unwrap()],
            vec!["rollback", res.to_str().unwrap(), "--yes"],
        ] {
            let output = (command[0] == "rollback").then_some("undo.csv");
            let refused = job.run_to(output, &command).await;
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
        assert_eq!(job.requests().await, before);
        assert_eq!(std::fs::read(&res).unwrap(), saved, "left as it was");
    }
    assert_eq!(names_on(&job.api).await, ["Société Générale"]);
}

#[tokio::test]
async fn a_legacy_encoding_over_utf8_letters_far_from_the_start_is_refused() {
    let job = Job::new().await;
    let mut text = tenants("ascii", 1500);
    text.push_str("Café Müller,MULTI_DATAMART,,\n");
    let input = job.dir.write("late.csv", &text);
    let mut args = job.args("out.csv");
    args.extend(["--encoding", "windows-1252"].map(str::to_owned));
    let run = dbprov_with(&["run", &input], &args).await;
    assert_eq!(run.exit, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("UTF-8 already (line 1502"),
        "{}",
        run.stderr
    );
    assert_eq!(job.requests().await, 0);
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
    let mut child = start(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_dbprov"))
            .args(args)
            .env_remove("DATABRAIN_API_KEY")
            .env_remove("DATABRAIN_BASE_URL")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped()),
    );
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
    let job = Job::new().await;
    let mut text = tenants("ascii", 1500);
    text.push_str("Café Müller,MULTI_DATAMART,,\n");
    let mut args = vec!["run", "-"];
    let fast_flags = job.args("out.csv");
    args.extend(fast_flags.iter().map(String::as_str));
    args.extend(["--encoding", "windows-1252"]);
    let run = dbprov_fed(&args, text.into_bytes()).await;
    assert_ne!(run.exit, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("UTF-8 already (line 1502"),
        "{}",
        run.stderr
    );
    let names = job.api.workspace_names().await;
    assert!(
        names.iter().all(|n| n.is_ascii()),
        "no garbled name: {names:?}"
    );
    // Whatever was sent before the refusal is recorded.
    let recorded = match job.dir.path("out.csv").exists() {
        true => job.rows_of("out.csv").len(),
        false => 0,
    };
    assert_eq!(recorded, names.len());
}

#[tokio::test]
async fn overwrite_replaces_a_results_file_that_cannot_be_read_back() {
    let job = Job::new().await;
    let input = job.input(&tenants("w", 2));
    assert_eq!(job.run_to(Some("res.csv"), &["run", &input]).await.exit, 0);
    let res = job.dir.path("res.csv");
    let mut bytes = std::fs::read(&res).unwrap();
    bytes.extend_from_slice(
        b"3,created,,,200,1,3,2026-11-29T00:00:00Z,x,K\xf6ln,MULTI_DATAMART,,\n",
    );
    std::fs::write(&res, &bytes).unwrap();
    let refused = job.run_to(Some("res.csv"), &["run", &input]).await;
    assert_eq!(refused.exit, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("give another -o, or --overwrite"),
        "{}",
        refused.stderr
    );
    let mut args = job.args("res.csv");
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
    let retry = job.run_to(None, &["retry", res.to_str().unwrap()]).await;
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
    let job = Job::new().await;
    // Letters beyond ASCII at the end of every row: latin-1 makes each a lone byte there.
    let input = job.dir.write(
        "j.csv",
        "name,connectionType,owner\nj1,MULTI_DATAMART,José\nj2,MULTI_DATAMART,René\n",
    );
    assert_eq!(job.run_to(Some("jr.csv"), &["run", &input]).await.exit, 0);
    let res = job.dir.path("jr.csv");
    let text = std::fs::read_to_string(&res).unwrap();
    let latin1: Vec<u8> = text
        .chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap())
        .collect();
    std::fs::write(&res, &latin1).unwrap();
    let path = res.to_str().unwrap();
    let rollback = job
        .run_to(Some("undo.csv"), &["rollback", path, "--yes"])
        .await;
    assert_eq!(rollback.exit, 2, "{}", rollback.stderr);
    assert!(
        rollback.stderr.contains("is not UTF-8"),
        "{}",
        rollback.stderr
    );
    for extra in [&[][..], &["--dry-run"][..], &["--resume"][..]] {
        let mut args = job.args("jr.csv");
        args.extend(extra.iter().map(|a| a.to_string()));
        let refused = dbprov_with(&["run", &input], &args).await;
        assert_eq!(refused.exit, 2, "{extra:?}: {}", refused.stderr);
    }
    assert_eq!(std::fs::read(&res).unwrap(), latin1, "the record is intact");
    assert_eq!(names_on(&job.api).await, ["j1", "j2"]);
}

#[tokio::test]
async fn input_that_fails_after_requests_were_sent_stops_as_an_abort_and_resume_completes() {
    use tokio::io::AsyncWriteExt;
    let job = Job::new().await;
    let mut args = vec!["run".to_owned(), "-".to_owned()];
    args.extend(job.args("out.csv"));
    args.extend(["--encoding", "windows-1252"].map(str::to_owned));
    let mut child = start(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_dbprov"))
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped()),
    );
    let mut stdin = child.stdin.take().unwrap();
    let all = tenants("e", 8) + "Zoë,MULTI_DATAMART,,\n";
    let (head, tail) = all.split_at(all.find("e-0006").unwrap());
    stdin.write_all(head.as_bytes()).await.unwrap();
    stdin.flush().await.unwrap();
    until_requests(&job.api, &mut child, 5).await;
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
    let rows = job.rows_of("out.csv");
    assert_eq!(
        rows.len(),
        job.api.workspace_names().await.len(),
        "every request recorded"
    );
    // Without the wrong --encoding, a resume completes the file.
    let mut args = job.args("out.csv");
    args.push("--resume".into());
    let mut line = vec!["run", "-"];
    line.extend(args.iter().map(String::as_str));
    let resumed = dbprov_fed(&line, all.into_bytes()).await;
    assert_eq!(resumed.exit, 0, "{}", resumed.stderr);
    let rows = job.rows_of("out.csv");
    assert_one_row_per_input_row(&rows, 9);
    assert!(names_on(&job.api).await.contains(&"Zoë".to_owned()));
}

#[tokio::test]
async fn a_latin1_letter_in_a_last_row_without_a_line_break_is_refused_not_cut() {
    let job = Job::new().await;
    let input = job.input(&tenants("l", 3));
    assert_eq!(job.run_to(Some("res.csv"), &["run", &input]).await.exit, 0);
    let res = job.dir.path("res.csv");
    let mut bytes = std::fs::read(&res).unwrap();
    bytes.pop(); // the last line break
    bytes.extend_from_slice(b"\xe9"); // "é" in Latin-1, after the last cell
    std::fs::write(&res, &bytes).unwrap();
    let mut args = job.args("res.csv");
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
