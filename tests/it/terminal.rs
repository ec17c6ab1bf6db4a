//! What a terminal shows of text from files and servers: a right-to-left override, a
//! zero-width character, an escape sequence are shown escaped, never acted on.

use crate::fixture::Job;
use crate::process::dbprov;

#[tokio::test]
async fn names_that_would_act_on_the_terminal_are_shown_escaped_in_every_command() {
    let job = Job::new().await;
    // U+202E shows the rest of a line reversed; ESC[31m turns it red; U+200B is invisible.
    let input = job.input(
        "name,connectionType,datasurce\n\
         \"evil\u{202e}gpj.exe\",BOGUS,\n\
         \"red\x1b[31m\",MULTI_DATAMART,\n\
         \"red\x1b[31m\",MULTI_DATAMART,\n\
         \"zero\u{200b}width\",DATASOURCE,\n",
    );
    let validate = dbprov(&["validate", &input]).await;
    let run = job.run(&["run", &input]).await;
    for (what, text) in [
        ("validate's stdout", &validate.stdout),
        ("validate's stderr", &validate.stderr),
        ("run's stderr", &run.stderr),
    ] {
        for raw in ['\u{202e}', '\x1b', '\u{200b}'] {
            assert!(!text.contains(raw), "{what} holds {raw:?}: {text}");
        }
    }
    assert!(
        validate.stdout.contains("name 'evil\\u{202e}gpj.exe'"),
        "{}",
        validate.stdout
    );
    assert!(
        validate.stdout.contains("red\\u{1b}[31m"),
        "{}",
        validate.stdout
    );
    assert!(run.stderr.contains("zero\\u{200b}width"), "{}", run.stderr);
    // The results file keeps the names as they are: it is data, not a terminal.
    let rows = job.rows();
    assert!(
        rows.iter().any(|r| r["name"] == "evil\u{202e}gpj.exe"),
        "{rows:?}"
    );
}
