//! `validate`: every invalid row on stdout with its line, name and reason; no network.

use std::io::Write;

use super::job::Exit;
use crate::cli::ValidateArgs;
use crate::input::{self, CsvFormat, InputReader};
use crate::model::{Input, Shard};
use crate::report::terminal::for_terminal;
use crate::report::{logging, signals};

/// `validate`: every invalid row on stdout with its line, name and reason.
pub(super) async fn validate_command(args: ValidateArgs) -> anyhow::Result<Exit> {
    let input = Input::from_arg(&args.input);
    let (rows, invalid) = tokio::task::spawn_blocking(move || {
        let format = CsvFormat::from(args.csv);
        // A file is checked whole, as a job checks it before sending.
        input::count_rows(&input, format, Shard::ALL, signals::interrupted_flag())?;
        let mut reader = InputReader::open(&input, format)?;
        reader.header().require_connection_type(&input.to_string())?;
        let mut stdout = std::io::stdout().lock();
        // A column carried on purpose (owner_email) is no problem; one that resembles a
        // request field is likely a misspelling whose values would never be sent.
        for column in &reader.header().ignored {
            if let Some(field) = input::header::resembled_field(column) {
                let _ = writeln!(
                    stdout,
                    "header: column '{}' is not a request field: did you mean {}? As it is, it is carried to the results and never sent",
                    for_terminal(column),
                    field.key()
                );
            }
        }
        let (mut rows, mut invalid) = (0u64, 0u64);
        while let Some(row) = reader.next_row()? {
            rows += 1;
            if let Err(error) = &row.request {
                invalid += 1;
                // One line per row, whatever the name holds, shown as it is written.
                let name = for_terminal(row.name.as_deref().unwrap_or(""));
                // The line is said once, before the name: not again as the message's own
                // prefix (which results files keep).
                let line_prefix = format!("line {}: ", row.line);
                let message = error
                    .message
                    .strip_prefix(&line_prefix)
                    .unwrap_or(&error.message);
                let line = format!(
                    "row {} (line {}), name '{name}': {}: {}",
                    row.row,
                    row.line,
                    error.code,
                    for_terminal(message)
                );
                if writeln!(stdout, "{line}").is_err() {
                    break; // a closed pipe (| head) is a normal end
                }
            }
        }
        Ok::<_, anyhow::Error>((rows, invalid))
    })
    .await
    .expect("validation does not panic")?;
    logging::notice(
        tracing::Level::INFO,
        &format!(
            "{}: {} valid, {invalid} invalid",
            crate::model::counted(rows, "row"),
            rows - invalid
        ),
    );
    Ok(if invalid == 0 {
        Exit::Success
    } else {
        Exit::SomeRowsFailed
    })
}
