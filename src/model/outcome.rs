//! The final outcome of one row, and the columns it is written under.

use std::time::SystemTime;

use csv::ByteRecord;

use super::status::Status;

/// The result columns, in order; the input's columns follow them.
pub const RESULT_COLUMNS: [&str; 10] = [
    "_row",
    "_status",
    "_error_code",
    "_error_message",
    "_http_status",
    "_attempts",
    "_latency_ms",
    "_finished_at",
    "_target",
    "_operation",
];

/// The result columns every results file has: files written before `_target` (and
/// `_operation`) were recorded have only these.
pub const LEGACY_COLUMNS: usize = 8;

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
    /// Of those, the ones that sent the request before them again (after a retryable
    /// outcome, a 429 or a connection not made). Counted, not written.
    pub retries: u32,
    /// A POST met a taken name and the row was PUT (`--on-exists update`): a new request,
    /// not a retry. Counted, not written.
    pub put_after_taken: bool,
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
    /// The row's last request was a `PUT` whose outcome is not a success: which values
    /// the workspace holds is unknown (said in the message, so that a rerun knows).
    pub values_unknown: bool,
}
