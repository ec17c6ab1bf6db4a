//! The results file: one row per input row, written and flushed as soon as it is final.

use std::io::{Seek, SeekFrom, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use csv::ByteRecord;

use super::file::{FileId, OutputFile};
use super::format::{ResultColumns, shows_unknown_outcome};
use super::layout::{BOM, Layout};
use super::ledger::{Final, Held, Kept};
use super::prior::PriorResults;
use super::rewrite::{Ours, in_input_order};
use super::sink::Counted;
pub use super::sink::Sink;
use crate::input::lines::CsvLines;
use crate::model::cells::escape;
use crate::model::notes::{MAY_BE_DELETED, MAY_EXIST, NOT_LISTED, VALUES_UNKNOWN};
use crate::model::{Operation, RESULT_COLUMNS, RowOutcome, Status};

/// How often the writer checks that its file is still at its path. Rows written meanwhile
/// are not lost: they are in the file, and a removed file is written back whole.
const LOOK_AGAIN: Duration = Duration::from_millis(100);

/// Writes results rows, flushing each one.
pub struct ResultsWriter {
    csv: csv::Writer<Counted>,
    /// The file's length after the last row that was written whole: a failed write cuts
    /// the file back to it, so that no torn row is left to pass for a whole one.
    whole_len: u64,
    record: ByteRecord,
    /// The header, and where this run's rows begin in the file: what the rewrite at the
    /// end puts in input order.
    header: ByteRecord,
    rows_start: u64,
    layout: Layout,
    /// The `_target` of this run's outcomes.
    target: String,
    /// The file, when the results go to one: held (and so locked) until the end.
    file: Option<OutputFile>,
    /// When the file was last seen at its path.
    seen_at: Instant,
    /// Set when appending to an earlier results file (`--resume`, `retry`).
    log: Option<Log>,
    /// What the job does: every row's `_operation`.
    operation: Operation,
    /// The row being written, its cells escaped (see `model::cells`).
    escaped: ByteRecord,
    /// Rows were recorded in flight: the file holds two records of them until the rewrite
    /// at the end.
    wrote_pending: bool,
}

/// An earlier results file this run appends to, then rewrites to this run's rows and the
/// records of names this run's input no longer has.
struct Log {
    /// Reads earlier rows back by offset.
    reader: Option<CsvLines<std::fs::File>>,
    columns: ResultColumns,
    /// The earlier rows' field separator.
    delimiter: u8,
    /// What the file held when the run began, and which of its names this run wrote.
    prior: Arc<PriorResults>,
}

/// How a results file ended.
#[derive(Debug, Clone, Copy, Default)]
pub struct Finished {
    /// Records of names that this run's input did not have, kept after its rows.
    pub not_in_input: u64,
}

impl ResultsWriter {
    /// Empties the results file and writes its header; `target` is this run's `_target`.
    pub fn create(
        sink: Sink,
        carried_names: &ByteRecord,
        target: &str,
        layout: Layout,
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
        let mut out = Counted::new(out);
        if layout.bom {
            out.write_all(BOM)?;
        }
        let header = header(carried_names);
        let mut writer = ResultsWriter {
            csv: layout.writer(out),
            whole_len: 0,
            record: ByteRecord::new(),
            header,
            rows_start: 0,
            layout,
            target: target.to_owned(),
            file,
            seen_at: Instant::now(),
            log: None,
            operation: Operation::Create,
            escaped: ByteRecord::new(),
            wrote_pending: false,
        };
        writer.csv.write_byte_record(&writer.header)?;
        writer.flush()?;
        writer.rows_start = writer.whole_len;
        Ok(writer)
    }

    /// Appends to an earlier results file after its last whole row (a torn line left by a
    /// crash is cut off). [`ResultsWriter::finish`] then rewrites it to this run's rows.
    pub fn append(
        output: OutputFile,
        prior: &Arc<PriorResults>,
        carried_names: &ByteRecord,
        target: &str,
        layout: Layout,
    ) -> std::io::Result<ResultsWriter> {
        output.file.set_len(prior.valid_len)?;
        let mut out = output.file.try_clone()?;
        let mut rows_start = out.seek(SeekFrom::End(0))?;
        if prior.unterminated {
            let line_end: &[u8] = if layout.crlf { b"\r\n" } else { b"\n" };
            out.write_all(line_end)?;
            rows_start += line_end.len() as u64;
        }
        let mut out = Counted::new(Box::new(out));
        out.written = rows_start;
        Ok(ResultsWriter {
            csv: layout.writer(out),
            whole_len: rows_start,
            record: ByteRecord::new(),
            header: header(carried_names),
            rows_start,
            layout,
            target: target.to_owned(),
            file: Some(output),
            seen_at: Instant::now(),
            log: Some(Log {
                reader: None,
                columns: prior.columns.clone(),
                delimiter: prior.delimiter,
                prior: prior.clone(),
            }),
            operation: Operation::Create,
            escaped: ByteRecord::new(),
            wrote_pending: false,
        })
    }

    /// Writes one final row; returns the status it records.
    pub fn write_final(&mut self, row: &Final) -> std::io::Result<Option<Status>> {
        let name = match row {
            Final::Outcome(outcome) => outcome.name.as_deref(),
            Final::Kept(kept) => kept.name.as_deref(),
        };
        if let (Some(log), Some(name), Final::Outcome(_)) = (self.log.as_ref(), name, row) {
            log.prior.mark_written(name);
        }
        match row {
            Final::Outcome(outcome) => self.write(outcome).map(|()| Some(outcome.status)),
            Final::Kept(kept) => self.write_kept(kept),
        }
    }

    /// The earlier row at `offset` in the log: its result cells and its input's cells, as
    /// the values they hold.
    fn read_back(&mut self, offset: u64) -> std::io::Result<(ByteRecord, ByteRecord)> {
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
                CsvLines::at(file, offset).with_delimiter(Some(log.delimiter))
            }
        };
        let reader = log.reader.insert(reader);
        let mut earlier = ByteRecord::new();
        if reader.read(&mut earlier)?.is_none() {
            return Err(std::io::Error::other(format!(
                "the results log has no row at byte {offset}"
            )));
        }
        Ok((log.columns.results(&earlier), log.columns.carried(&earlier)))
    }

    /// Writes a record the file held again, under this run's row number, with the values
    /// it was sent with; says why it stands if this run sent the row again.
    fn write_kept(&mut self, kept: &Kept) -> std::io::Result<Option<Status>> {
        let (results, cells) = match &kept.held {
            Held::At(prior) => {
                if let Some(log) = &self.log {
                    // The record as it stands is this run's row: it stays where it is.
                    if kept.note.is_none() && log.prior.keep_in_place(prior, kept.row) {
                        return Ok(prior.status);
                    }
                    log.prior.written(prior);
                }
                self.read_back(prior.offset)?
            }
            Held::Cells { results, cells } => {
                if let (Some(log), Some(name)) = (&self.log, &kept.name) {
                    log.prior.mark_written(name);
                }
                (results.clone(), cells.clone())
            }
        };
        let status = results.get(1).and_then(|s| std::str::from_utf8(s).ok());
        let status = status.and_then(Status::parse);
        let record = &mut self.record;
        record.clear();
        record.push_field(kept.row.to_string().as_bytes());
        for (i, cell) in results.iter().enumerate().skip(1) {
            match RESULT_COLUMNS[i] {
                "_error_message" => match &kept.note {
                    Some(note) => {
                        let message = String::from_utf8_lossy(cell);
                        // One note at a time: an earlier run's gives way to this one's.
                        let message = match message.rfind('[') {
                            Some(at) if message.ends_with(']') => message[..at].trim_end(),
                            _ => &message,
                        };
                        let noted = match message.is_empty() {
                            true => note.clone(),
                            false => format!("{message} {note}"),
                        };
                        record.push_field(noted.as_bytes());
                    }
                    None => record.push_field(cell),
                },
                // A file written before the column: the operation continuing it wrote it.
                "_operation" if cell.is_empty() => {
                    record.push_field(self.operation.as_str().as_bytes())
                }
                _ => record.push_field(cell),
            }
        }
        record.extend(&cells);
        self.put()?;
        Ok(status)
    }

    /// Ends the file: it is rewritten atomically to this run's rows, one per input row,
    /// in input order (standard output stays in completion order), then, in a file this
    /// run continued, the records of names its input did not have (a ledger never
    /// forgets). The lock is held until the rewrite is done.
    ///
    /// A file this run created holds one row per input row already: if it cannot be
    /// rewritten, it stays in completion order with a warning. A log appended to must be
    /// rewritten to drop the rows this run superseded: that failure is an error.
    pub fn finish(mut self) -> std::io::Result<Finished> {
        self.flush()?;
        drop(self.csv);
        let Some(output) = &self.file else {
            return Ok(Finished::default());
        };
        let not_in_input = self.log.as_ref().map(Log::not_in_input).unwrap_or_default();
        let finished = Finished {
            not_in_input: not_in_input.len() as u64,
        };
        let continued = self.log.is_some();
        let prior = self.log.as_ref().map(|log| &*log.prior);
        let appended = self.whole_len > self.rows_start;
        let Some(ours) = Ours::of((self.rows_start, appended), prior, self.layout) else {
            return Ok(finished); // the file is this run's results already
        };
        match in_input_order(
            &output.real_path,
            &self.header,
            ours,
            &not_in_input,
            self.layout,
            continued,
        ) {
            // Two records of a row are no results file: that is a failure too.
            Err(error) if !continued && !self.wrote_pending => {
                tracing::warn!(
                    "{} holds every row, in the order they finished: sorting it into input order failed: {error}",
                    output.path.display()
                );
                Ok(finished)
            }
            result => result.map(|()| finished),
        }
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

    /// Records `operation` as every row's `_operation`.
    pub fn for_operation(mut self, operation: Operation) -> ResultsWriter {
        self.operation = operation;
        self
    }

    /// Records a row whose request is about to go out, as the interrupted row it is until
    /// its final record comes (which supersedes it). Standard output, read by no rerun,
    /// gets none.
    pub fn write_pending(&mut self, pending: &Final) -> std::io::Result<()> {
        if self.file.is_none() {
            return Ok(());
        }
        self.wrote_pending = true;
        self.write_final(pending).map(drop)
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
        if outcome.values_unknown {
            message = match message.is_empty() {
                true => VALUES_UNKNOWN.to_owned(),
                false => format!("{message} ({VALUES_UNKNOWN})"),
            };
        }
        let unsaid = !shows_unknown_outcome(outcome.attempts, outcome.http_status, &message);
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
        record.push_field(message.as_bytes());
        push_optional(record, outcome.http_status.map(u64::from));
        record.push_field(outcome.attempts.to_string().as_bytes());
        push_optional(record, outcome.latency_ms);
        let finished_at = humantime::format_rfc3339_millis(outcome.finished_at).to_string();
        record.push_field(finished_at.as_bytes());
        record.push_field(self.target.as_bytes());
        // Every row says which command it is for, a dry run's too: `retry` sends the rows
        // that did not succeed again as that command.
        record.push_field(self.operation.as_str().as_bytes());
        record.extend(&outcome.cells);
        self.put()
    }

    /// Writes `record` (the one in `self.record`) and flushes it; a failure cuts off what
    /// of it reached the file.
    fn put(&mut self) -> std::io::Result<()> {
        self.escaped.clear();
        for cell in &self.record {
            self.escaped.push_field(&escape(cell));
        }
        if let Err(error) = self.csv.write_byte_record(&self.escaped) {
            self.cut_torn_row();
            return Err(error.into());
        }
        self.flush()
    }

    /// Flushes to the operating system, and checks (every [`LOOK_AGAIN`]) that the file is
    /// still the results file: rows written into a file removed from under the job are
    /// lost unless they are written back, and sending must stop.
    fn flush(&mut self) -> std::io::Result<()> {
        if self.seen_at.elapsed() < LOOK_AGAIN {
            return self.flush_whole();
        }
        self.check()
    }

    /// Flushes what is written so far, and marks it whole; a failure cuts it off.
    fn flush_whole(&mut self) -> std::io::Result<()> {
        if let Err(error) = self.csv.flush() {
            self.cut_torn_row();
            return Err(error);
        }
        self.whole_len = self.csv.get_ref().written;
        Ok(())
    }

    /// After a failed write (a full disk, a file size limit): cuts the part of a row
    /// that reached the file, which `--resume` could otherwise read as a whole row with
    /// its last cell cut short. Every write after this one fails.
    fn cut_torn_row(&mut self) {
        if let Some(output) = &self.file
            && self.csv.get_ref().written > self.whole_len
        {
            let _ = output.file.set_len(self.whole_len);
        }
    }

    /// Flushes, and checks now that the file is still the results file.
    pub fn check(&mut self) -> std::io::Result<()> {
        self.flush_whole()?;
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

impl Log {
    /// Where the file's records of names this run wrote no row for start, in file order.
    fn not_in_input(&self) -> Vec<u64> {
        let mut offsets: Vec<u64> = self.prior.not_written().collect();
        offsets.sort_unstable();
        offsets
    }
}
