//! The results file: one row per input row, written and flushed as soon as it is final.

use std::fmt;
use std::io::Write;
use std::time::SystemTime;

use csv::ByteRecord;

use crate::resume::{PriorResults, ResultColumns};
use crate::settings::Output;

/// The result columns, in order; the input's columns follow them.
pub const RESULT_COLUMNS: [&str; 8] = [
    "_row",
    "_status",
    "_error_code",
    "_error_message",
    "_http_status",
    "_attempts",
    "_latency_ms",
    "_finished_at",
];

/// The final status of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// `POST` answered 200.
    Created,
    /// `PUT` answered 200 (`--on-exists update`).
    Updated,
    /// The name was taken, and `--on-exists skip` counts that as success.
    Exists,
    /// The API refused it, or retries ran out.
    Failed,
    /// Never sent: the row does not describe a valid request.
    Invalid,
    /// Never finished: the job stopped before it.
    Skipped,
    /// Dry run: would be sent.
    Planned,
}

impl Status {
    /// Every status, in the order summaries list them.
    pub const ALL: [Status; 7] = [
        Status::Created,
        Status::Updated,
        Status::Exists,
        Status::Failed,
        Status::Invalid,
        Status::Skipped,
        Status::Planned,
    ];

    /// The spelling in the results file.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Updated => "updated",
            Status::Exists => "exists",
            Status::Failed => "failed",
            Status::Invalid => "invalid",
            Status::Skipped => "skipped",
            Status::Planned => "planned",
        }
    }

    /// Reads the spelling of the results file.
    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the workspace is in place, so a rerun sends nothing for it. Unlike
    /// [`Status::is_success`], a `planned` row still has everything to do.
    pub fn is_done(self) -> bool {
        matches!(self, Status::Created | Status::Updated | Status::Exists)
    }

    /// Whether this row counts as a success for the exit code (`planned` in a dry run).
    pub fn is_success(self) -> bool {
        matches!(
            self,
            Status::Created | Status::Updated | Status::Exists | Status::Planned
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
        /// The eight result cells of the earlier row.
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

/// Writes results rows, flushing each one.
pub struct ResultsWriter {
    csv: csv::Writer<Box<dyn Write + Send>>,
    record: ByteRecord,
    /// Set when appending to an earlier results file (`--resume`, `retry`).
    log: Option<Log>,
}

/// An earlier results file this run appends to, then compacts.
struct Log {
    path: std::path::PathBuf,
    /// Reads earlier rows back by offset.
    reader: csv::Reader<std::fs::File>,
    columns: ResultColumns,
    /// Where this run's rows begin.
    run_start: u64,
    header: ByteRecord,
}

impl ResultsWriter {
    /// Creates (or truncates) the results file and writes its header.
    pub fn create(output: &Output, carried_names: &ByteRecord) -> std::io::Result<ResultsWriter> {
        let sink: Box<dyn Write + Send> = match output {
            Output::Stdout => Box::new(std::io::stdout()),
            Output::File(path) => Box::new(std::fs::File::create(path)?),
        };
        let mut writer = ResultsWriter {
            csv: csv::Writer::from_writer(sink),
            record: ByteRecord::new(),
            log: None,
        };
        writer.csv.write_byte_record(&header(carried_names))?;
        writer.csv.flush()?;
        Ok(writer)
    }

    /// Appends to an earlier results file after its last whole row (a torn line left by a
    /// crash is cut off). [`ResultsWriter::finish`] then rewrites it to this run's rows.
    pub fn append(
        prior: &PriorResults,
        carried_names: &ByteRecord,
    ) -> std::io::Result<ResultsWriter> {
        let file = std::fs::OpenOptions::new().write(true).open(&prior.path)?;
        file.set_len(prior.valid_len)?;
        drop(file);
        let sink = std::fs::OpenOptions::new().append(true).open(&prior.path)?;
        let reader = csv::ReaderBuilder::new()
            .flexible(true)
            .from_path(&prior.path)
            .map_err(std::io::Error::other)?;
        Ok(ResultsWriter {
            csv: csv::Writer::from_writer(Box::new(sink)),
            record: ByteRecord::new(),
            log: Some(Log {
                path: prior.path.clone(),
                reader,
                columns: prior.columns.clone(),
                run_start: prior.valid_len,
                header: header(carried_names),
            }),
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
                let log = self.log.as_mut().ok_or_else(|| {
                    std::io::Error::other("a row was kept from a results log that is not open")
                })?;
                log.reader
                    .seek(csv::Position::new().set_byte(*offset).clone())
                    .map_err(std::io::Error::other)?;
                let mut earlier = ByteRecord::new();
                if !log
                    .reader
                    .read_byte_record(&mut earlier)
                    .map_err(std::io::Error::other)?
                {
                    return Err(std::io::Error::other(format!(
                        "the results log has no row at byte {offset}"
                    )));
                }
                let results = log.columns.results(&earlier);
                self.write_kept(*row, &results, cells)
            }
        }
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
        self.csv.flush()?;
        let status = results.get(1).and_then(|s| std::str::from_utf8(s).ok());
        Ok(status.and_then(Status::parse))
    }

    /// Ends the file: a log appended to is rewritten atomically to this run's rows, one per
    /// input row.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.csv.flush()?;
        drop(self.csv);
        if let Some(log) = self.log {
            crate::resume::compact(&log.path, &log.header, log.run_start)?;
        }
        Ok(())
    }

    /// Writes one row and flushes it to the operating system, so a crash of this process
    /// cannot lose it.
    pub fn write(&mut self, outcome: &RowOutcome) -> std::io::Result<()> {
        let record = &mut self.record;
        record.clear();
        record.push_field(outcome.row.to_string().as_bytes());
        record.push_field(outcome.status.as_str().as_bytes());
        record.push_field(outcome.error_code.as_bytes());
        record.push_field(one_line(&outcome.error_message).as_bytes());
        push_optional(record, outcome.http_status.map(u64::from));
        record.push_field(outcome.attempts.to_string().as_bytes());
        push_optional(record, outcome.latency_ms);
        let finished_at = humantime::format_rfc3339_millis(outcome.finished_at).to_string();
        record.push_field(finished_at.as_bytes());
        record.extend(&outcome.cells);
        self.csv.write_byte_record(record)?;
        self.csv.flush()
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

/// Messages go into one CSV cell and one log line: no line breaks.
fn one_line(message: &str) -> std::borrow::Cow<'_, str> {
    if message.contains(['\n', '\r']) {
        message.replace(['\n', '\r'], " ").into()
    } else {
        message.into()
    }
}
