//! The results file: one row per input row, written and flushed as soon as it is final.

use std::fmt;
use std::io::Write;
use std::time::SystemTime;

use csv::ByteRecord;

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

    /// Whether this row needs no further run.
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

/// Writes results rows, flushing each one.
pub struct ResultsWriter {
    csv: csv::Writer<Box<dyn Write + Send>>,
    record: ByteRecord,
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
        };
        let mut header = ByteRecord::from(RESULT_COLUMNS.to_vec());
        header.extend(carried_names);
        writer.csv.write_byte_record(&header)?;
        writer.csv.flush()?;
        Ok(writer)
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
