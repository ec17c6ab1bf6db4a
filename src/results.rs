//! The results file: one row per input row, written and flushed as soon as it is final.

use std::io::{Seek, SeekFrom, Write};
use std::time::{Duration, Instant, SystemTime};

use csv::ByteRecord;

use crate::csv_lines::CsvLines;
use crate::operation::Operation;
use crate::output::{FileId, OutputFile};
use crate::record::{
    MAY_BE_DELETED, MAY_EXIST, NOT_LISTED, RESULT_COLUMNS, ResultColumns, Status,
    shows_unknown_outcome,
};
use crate::resume::PriorResults;

/// The final outcome of one row, as workers hand it to the writer.
#[derive(Debug, Clone)]
pub struct RowOutcome {
    /// 1-based data row number in the input.
    pub row: u64,
    /// The workspace name, when the row has one (for logs; the cells carry it too).
    pub name: Option<String>,
    /// The final status.
    pub status: Status,
    /// Empty on success; the API's code or a local one.
    pub error_code: String,
    /// The server's message or ours.
    pub error_message: String,
    /// Status of the last attempt, if any was made.
    pub http_status: Option<u16>,
    /// Requests sent for this row.
    pub attempts: u32,
    /// From the first attempt's start to the outcome, backoff included; `None` if no attempt.
    pub latency_ms: Option<u64>,
    /// When the outcome became final.
    pub finished_at: SystemTime,
    /// The input's carried cells, verbatim.
    pub cells: ByteRecord,
    /// An attempt, of this run or one before, may have created the workspace without
    /// learning it. Written into the message of a row that did not succeed, so that the
    /// next run knows it too (and so does the operator).
    pub maybe_created: bool,
    /// The preflight list showed that the workspace did not exist before the run (or
    /// before the earlier run that first sent it); said with `maybe_created`.
    pub absent_before: bool,
}

/// What the writer receives for each input row.
#[derive(Debug, Clone)]
pub enum Final {
    /// This run's outcome.
    Outcome(RowOutcome),
    /// A success of an earlier run, kept as it was, under this run's row number.
    Kept {
        /// Row number.
        row: u64,
        /// The result cells of the earlier row.
        results: ByteRecord,
        /// The input's carried cells.
        cells: ByteRecord,
    },
    /// A success of an earlier run found in the results log at `offset`.
    KeptAt {
        /// Row number.
        row: u64,
        /// Where the earlier row starts in the log.
        offset: u64,
        /// The input's carried cells.
        cells: ByteRecord,
    },
}

/// How often the writer checks that its file is still at its path. Rows written meanwhile
/// are not lost: they are in the file, and a removed file is written back whole.
const LOOK_AGAIN: Duration = Duration::from_millis(100);

/// Where the results go.
pub enum Sink {
    /// The results file, locked for this run.
    File(OutputFile),
    /// Standard output (`-o -`).
    Stdout,
}

impl Sink {
    /// Removes a results file that this run created and never wrote, when the job cannot
    /// start after all (its input cannot be read): nothing is left behind.
    pub fn discard_if_unused(self) {
        if let Sink::File(output) = self
            && output.file.metadata().is_ok_and(|m| m.len() == 0)
            && output.still_there()
        {
            let _ = std::fs::remove_file(&output.path);
        }
    }
}

/// Writes results rows, flushing each one.
pub struct ResultsWriter {
    csv: csv::Writer<Box<dyn Write + Send>>,
    record: ByteRecord,
    /// The `_target` of this run's outcomes.
    target: String,
    /// The file, when the results go to one: held (and so locked) until the end.
    file: Option<OutputFile>,
    /// When the file was last seen at its path.
    seen_at: Instant,
    /// Set when appending to an earlier results file (`--resume`, `retry`).
    log: Option<Log>,
    /// What the job does: the messages of rows that did not succeed say it.
    operation: Operation,
}

/// An earlier results file this run appends to, then compacts.
struct Log {
    /// Reads earlier rows back by offset.
    reader: Option<CsvLines<std::fs::File>>,
    columns: ResultColumns,
    /// Where this run's rows begin.
    run_start: u64,
    header: ByteRecord,
}

impl ResultsWriter {
    /// Empties the results file and writes its header; `target` is this run's `_target`.
    pub fn create(
        sink: Sink,
        carried_names: &ByteRecord,
        target: &str,
    ) -> std::io::Result<ResultsWriter> {
        let (out, file): (Box<dyn Write + Send>, _) = match sink {
            Sink::Stdout => (Box::new(std::io::stdout()), None),
            Sink::File(output) => {
                output.file.set_len(0)?;
                let mut out = output.file.try_clone()?;
                out.seek(SeekFrom::Start(0))?;
                (Box::new(out), Some(output))
            }
        };
        let mut writer = ResultsWriter {
            csv: csv::Writer::from_writer(out),
            record: ByteRecord::new(),
            target: target.to_owned(),
            file,
            seen_at: Instant::now(),
            log: None,
            operation: Operation::Create,
        };
        writer.csv.write_byte_record(&header(carried_names))?;
        writer.flush()?;
        Ok(writer)
    }

    /// Appends to an earlier results file after its last whole row (a torn line left by a
    /// crash is cut off). [`ResultsWriter::finish`] then rewrites it to this run's rows.
    pub fn append(
        output: OutputFile,
        prior: &PriorResults,
        carried_names: &ByteRecord,
        target: &str,
    ) -> std::io::Result<ResultsWriter> {
        output.file.set_len(prior.valid_len)?;
        let mut out = output.file.try_clone()?;
        out.seek(SeekFrom::End(0))?;
        Ok(ResultsWriter {
            csv: csv::Writer::from_writer(Box::new(out)),
            record: ByteRecord::new(),
            target: target.to_owned(),
            file: Some(output),
            seen_at: Instant::now(),
            log: Some(Log {
                reader: None,
                columns: prior.columns.clone(),
                run_start: prior.valid_len,
                header: header(carried_names),
            }),
            operation: Operation::Create,
        })
    }

    /// Writes one final row; returns its status.
    pub fn write_final(&mut self, row: &Final) -> std::io::Result<Option<Status>> {
        match row {
            Final::Outcome(outcome) => self.write(outcome).map(|()| Some(outcome.status)),
            Final::Kept {
                row,
                results,
                cells,
            } => self.write_kept(*row, results, cells),
            Final::KeptAt { row, offset, cells } => {
                let results = self.read_back(*offset)?;
                self.write_kept(*row, &results, cells)
            }
        }
    }

    /// The result cells of the earlier row at `offset` in the log.
    fn read_back(&mut self, offset: u64) -> std::io::Result<ByteRecord> {
        let (Some(log), Some(output)) = (self.log.as_mut(), self.file.as_ref()) else {
            return Err(std::io::Error::other(
                "a row was kept from a results log that is not open",
            ));
        };
        // Kept rows mostly come in the log's order: read on where the last one ended.
        let reader = match log.reader.take() {
            Some(reader) if reader.next_offset() == Some(offset) => reader,
            _ => {
                // A file of its own: the writer's shares its offset with the lock's.
                let mut file = std::fs::File::open(&output.real_path)?;
                file.seek(SeekFrom::Start(offset))?;
                CsvLines::at(file, offset)
            }
        };
        let reader = log.reader.insert(reader);
        let mut earlier = ByteRecord::new();
        if reader.read(&mut earlier)?.is_none() {
            return Err(std::io::Error::other(format!(
                "the results log has no row at byte {offset}"
            )));
        }
        Ok(log.columns.results(&earlier))
    }

    fn write_kept(
        &mut self,
        row: u64,
        results: &ByteRecord,
        cells: &ByteRecord,
    ) -> std::io::Result<Option<Status>> {
        let record = &mut self.record;
        record.clear();
        record.push_field(row.to_string().as_bytes());
        for cell in results.iter().skip(1) {
            record.push_field(cell);
        }
        record.extend(cells);
        self.csv.write_byte_record(record)?;
        self.flush()?;
        let status = results.get(1).and_then(|s| std::str::from_utf8(s).ok());
        Ok(status.and_then(Status::parse))
    }

    /// Ends the file: a log appended to is rewritten atomically to this run's rows, one per
    /// input row. The lock is held until the rewrite is done.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.flush()?;
        drop(self.csv);
        if let (Some(log), Some(output)) = (self.log, &self.file) {
            crate::resume::compact(&output.real_path, &log.header, log.run_start)?;
        }
        Ok(())
    }

    /// After a write failed: if the results file was removed or replaced under the job,
    /// writes what it held back. Says what became of the rows written so far, and what
    /// settles the rest: `rerun`, the command running's way to settle rows (`the same
    /// command with --resume`, ...).
    pub fn rescue(&self, rerun: &str) -> String {
        let Some(output) = self.file.as_ref() else {
            return String::new(); // stdout: nothing to rescue, nothing to resume
        };
        let settle = format!("{rerun} settles them");
        if output.still_there() {
            return settle;
        }
        let (path, real) = (output.path.display(), output.real_path.display());
        if FileId::at(&output.real_path) == Some(output.id()) {
            return format!(
                "{path} no longer leads to the results file, which is intact at {real}: point {path} at it again, then {settle}"
            );
        }
        match output.write_back() {
            Ok(to) if to == output.real_path => {
                format!(
                    "{path} was removed during the run; its rows were written back to it: {settle}"
                )
            }
            Ok(to) => format!(
                "{path} was replaced by another file during the run: this run's rows are in {}. Put them back into {path} (move the file over it, or merge the two) before {rerun}, which reads only {path}",
                to.display()
            ),
            Err(e) => {
                format!("{path} was removed during the run, and writing its rows back failed: {e}")
            }
        }
    }

    /// Marks the rows that do not succeed with what the job does (see
    /// [`Operation::marker`]).
    pub fn for_operation(mut self, operation: Operation) -> ResultsWriter {
        self.operation = operation;
        self
    }

    /// Writes one row and flushes it to the operating system, so a crash of this process
    /// cannot lose it.
    pub fn write(&mut self, outcome: &RowOutcome) -> std::io::Result<()> {
        let record = &mut self.record;
        record.clear();
        record.push_field(outcome.row.to_string().as_bytes());
        record.push_field(outcome.status.as_str().as_bytes());
        record.push_field(outcome.error_code.as_bytes());
        let mut message = one_line(&outcome.error_message).into_owned();
        let unsaid = !shows_unknown_outcome(
            outcome.attempts,
            outcome.http_status,
            &outcome.error_message,
        );
        let mut notes = Vec::new();
        if outcome.maybe_created && !outcome.status.is_done() {
            if unsaid {
                notes.push(match self.operation {
                    Operation::Delete => MAY_BE_DELETED,
                    Operation::Create | Operation::Update => MAY_EXIST,
                });
            }
            if outcome.absent_before {
                notes.push(NOT_LISTED);
            }
        }
        for note in notes {
            if message.is_empty() {
                message = note.to_owned();
            } else {
                message = format!("{message} ({note})");
            }
        }
        // Every row that leaves something to do says which command it is for, a dry run's
        // too: `retry` sends those rows again as that command.
        if !outcome.status.is_done() {
            let marker = self.operation.marker_for(&message);
            message.insert_str(0, marker);
        }
        record.push_field(message.as_bytes());
        push_optional(record, outcome.http_status.map(u64::from));
        record.push_field(outcome.attempts.to_string().as_bytes());
        push_optional(record, outcome.latency_ms);
        let finished_at = humantime::format_rfc3339_millis(outcome.finished_at).to_string();
        record.push_field(finished_at.as_bytes());
        record.push_field(self.target.as_bytes());
        record.extend(&outcome.cells);
        self.csv.write_byte_record(record)?;
        self.flush()
    }

    /// Flushes to the operating system, and checks (every [`LOOK_AGAIN`]) that the file is
    /// still the results file: rows written into a file removed from under the job are
    /// lost unless they are written back, and sending must stop.
    fn flush(&mut self) -> std::io::Result<()> {
        self.csv.flush()?;
        if self.seen_at.elapsed() < LOOK_AGAIN {
            return Ok(());
        }
        self.check()
    }

    /// Flushes, and checks now that the file is still the results file.
    pub fn check(&mut self) -> std::io::Result<()> {
        self.csv.flush()?;
        self.seen_at = Instant::now();
        match &self.file {
            Some(output) if !output.still_there() => Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "{} was removed or replaced during the run",
                    output.path.display()
                ),
            )),
            _ => Ok(()),
        }
    }
}

fn header(carried_names: &ByteRecord) -> ByteRecord {
    let mut header = ByteRecord::from(RESULT_COLUMNS.to_vec());
    header.extend(carried_names);
    header
}

fn push_optional(record: &mut ByteRecord, value: Option<u64>) {
    match value {
        Some(value) => record.push_field(value.to_string().as_bytes()),
        None => record.push_field(b""),
    }
}

/// Messages go into one CSV cell and one log line: no line breaks (server text is cleaned
/// before it gets here; this is for our own).
fn one_line(message: &str) -> std::borrow::Cow<'_, str> {
    if message.contains(['\n', '\r']) {
        message.replace(['\n', '\r'], " ").into()
    } else {
        message.into()
    }
}
