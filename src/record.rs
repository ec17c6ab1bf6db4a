//! The results file's format: its columns, the statuses, and how a results row reads
//! back. The reader (`input`), the writer (`results`) and the log (`resume`) all use this.

use std::fmt;

use csv::ByteRecord;

use crate::retry::may_have_applied;
use crate::workspace::is_name_column;

/// The result columns, in order; the input's columns follow them.
pub const RESULT_COLUMNS: [&str; 9] = [
    "_row",
    "_status",
    "_error_code",
    "_error_message",
    "_http_status",
    "_attempts",
    "_latency_ms",
    "_finished_at",
    "_target",
];

/// The result columns of files written before `_target` was recorded.
pub const LEGACY_COLUMNS: usize = 8;

/// Said in the message of a row that did not succeed after an attempt, of its run or an
/// earlier one, may have created the workspace unseen; read back by the next run.
pub const MAY_EXIST: &str = "an earlier attempt got no clear answer: the workspace may exist";

/// The same for a delete: a later `DELETE` that finds nothing means it was done.
pub const MAY_BE_DELETED: &str =
    "an earlier attempt got no clear answer: the workspace may be deleted already";

/// How the message of an attempt that could not connect begins: nothing was sent, so a
/// rerun must not take it for a lost answer.
pub const NOT_CONNECTED: &str = "could not connect, nothing was sent";

/// Said in the message of a row whose workspace may have been created unseen, when the
/// preflight list showed that it did not exist before the run: a later run that finds it
/// listed knows the run created it.
pub const NOT_LISTED: &str = "it was not listed before the run";

/// The words a results row is read back by. Server text never holds them (see
/// `client::clean`): only our notes do.
pub const READ_BACK: [&str; 4] = [MAY_EXIST, MAY_BE_DELETED, NOT_LISTED, NOT_CONNECTED];

/// The code of a row whose name an earlier row of the same input already has.
pub const DUPLICATE_IN_INPUT: &str = "DUPLICATE_IN_INPUT";

/// The final status of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// `POST` answered 200.
    Created,
    /// `PUT` answered 200 (`update`, or `--on-exists update`).
    Updated,
    /// The name was taken, and `--on-exists skip` counts that as success.
    Exists,
    /// `DELETE` answered 200 (`delete`, `rollback`).
    Deleted,
    /// `DELETE` of a name that does not exist: the workspace is gone, as asked.
    Absent,
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
    pub const ALL: [Status; 9] = [
        Status::Created,
        Status::Updated,
        Status::Exists,
        Status::Deleted,
        Status::Absent,
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
            Status::Deleted => "deleted",
            Status::Absent => "absent",
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
        matches!(
            self,
            Status::Created | Status::Updated | Status::Exists | Status::Deleted | Status::Absent
        )
    }

    /// Whether this row counts as a success for the exit code (`planned` in a dry run).
    pub fn is_success(self) -> bool {
        self.is_done() || self == Status::Planned
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The latest row of one identity in a results log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prior {
    /// Where the row starts in the file.
    pub offset: u64,
    /// Its status says the workspace is in place (created, updated, exists), on the API
    /// this run talks to.
    pub success: bool,
    /// An attempt of that run may have created the workspace without learning it (a
    /// timeout, a lost connection, a 5xx): a later `WORKSPACE_NAME_ALREADY_EXISTS` is ours.
    pub maybe_created: bool,
    /// The preflight list of that run showed that the workspace did not exist before it
    /// (said only with `maybe_created`): if it exists now, that run created it.
    pub absent_before: bool,
    /// Its status is `created`, on the API this run talks to: what a rollback deletes.
    pub created: bool,
}

impl Prior {
    /// The offset in the high 60 bits, the flags in the low four.
    pub(crate) fn pack(self) -> u64 {
        (self.offset << 4)
            | (u64::from(self.created) << 3)
            | (u64::from(self.absent_before) << 2)
            | (u64::from(self.success) << 1)
            | u64::from(self.maybe_created)
    }

    pub(crate) fn unpack(packed: u64) -> Prior {
        Prior {
            offset: packed >> 4,
            created: packed & 8 != 0,
            absent_before: packed & 4 != 0,
            success: packed & 2 != 0,
            maybe_created: packed & 1 != 0,
        }
    }
}

/// Where the result columns and the name are in a results file's header.
#[derive(Debug, Clone)]
pub struct ResultColumns {
    name: Option<usize>,
    row: usize,
    status: usize,
    code: usize,
    message: usize,
    http_status: usize,
    attempts: usize,
    target: Option<usize>,
    /// Indices of the result columns, in `RESULT_COLUMNS` order; `None` for a `_target`
    /// that a file written before targets were recorded lacks.
    all: [Option<usize>; RESULT_COLUMNS.len()],
}

impl ResultColumns {
    /// Finds every result column, or names the first one missing (`_target` may be: files
    /// written before it was recorded lack it).
    pub fn find(header: &ByteRecord) -> Result<ResultColumns, String> {
        let names: Vec<String> = header
            .iter()
            .map(|h| String::from_utf8_lossy(h).trim().to_owned())
            .collect();
        let mut all = [None; RESULT_COLUMNS.len()];
        for (i, (slot, column)) in all.iter_mut().zip(RESULT_COLUMNS).enumerate() {
            *slot = names.iter().position(|n| n == column);
            if slot.is_none() && i < LEGACY_COLUMNS {
                return Err(column.to_owned());
            }
        }
        let required = |i: usize| all[i].unwrap_or_default();
        Ok(ResultColumns {
            name: names
                .iter()
                .position(|n| !RESULT_COLUMNS.contains(&n.as_str()) && is_name_column(n)),
            row: required(0),
            status: required(1),
            code: required(2),
            message: required(3),
            http_status: required(4),
            attempts: required(5),
            target: all[8],
            all,
        })
    }

    /// Whether the file was written before `_target` was recorded.
    pub fn is_legacy(&self) -> bool {
        self.target.is_none()
    }

    /// Whether the result columns come first, in the order dbprov writes them: rows
    /// appended to the file line up with its header only then.
    pub fn in_place(&self) -> bool {
        self.all.iter().enumerate().all(|(i, at)| *at == Some(i))
    }

    /// The trimmed name, if any.
    pub fn name<'r>(&self, record: &'r ByteRecord) -> Option<&'r str> {
        let cell = record.get(self.name?)?;
        let name = std::str::from_utf8(cell).ok()?.trim();
        (!name.is_empty()).then_some(name)
    }

    /// The name a row is known by in a log, or `None` when it goes by its `_row`: rows
    /// without a name, and `DUPLICATE_IN_INPUT` rows, which must neither hide nor be hidden
    /// by the first row of their name (they may be written before it).
    pub fn identity<'r>(&self, record: &'r ByteRecord) -> Option<&'r str> {
        if text(record, self.code) == DUPLICATE_IN_INPUT {
            return None;
        }
        self.name(record)
    }

    /// Whether the row was refused as a second row of its name.
    pub fn is_duplicate(&self, record: &ByteRecord) -> bool {
        text(record, self.code) == DUPLICATE_IN_INPUT
    }

    /// `_row`, or 0 if it does not parse.
    pub fn row(&self, record: &ByteRecord) -> u64 {
        number(text(record, self.row)).unwrap_or(0)
    }

    /// The first number cell (`_row`, `_attempts`, `_http_status`) that does not read as a
    /// whole number, with its column: a spreadsheet that re-saved the file may have
    /// written `1.0` (which reads) or something else (which does not). Only `_http_status`
    /// may be empty.
    pub fn unreadable_number<'r>(&self, record: &'r ByteRecord) -> Option<(&'static str, &'r str)> {
        [
            (self.row, "_row", false),
            (self.attempts, "_attempts", false),
            (self.http_status, "_http_status", true),
        ]
        .into_iter()
        .map(|(i, column, may_be_empty)| (column, text(record, i), may_be_empty))
        .find(|(_, cell, may_be_empty)| {
            !(cell.is_empty() && *may_be_empty) && number(cell).is_none()
        })
        .map(|(column, cell, _)| (column, cell))
    }

    /// `_status`, if it is one.
    pub fn status(&self, record: &ByteRecord) -> Option<Status> {
        Status::parse(text(record, self.status))
    }

    /// `_error_message`, trimmed.
    pub fn message<'r>(&self, record: &'r ByteRecord) -> &'r str {
        text(record, self.message)
    }

    /// `_finished_at` as written (RFC 3339, UTC, which sorts as text), or empty.
    pub fn finished_at<'r>(&self, record: &'r ByteRecord) -> &'r str {
        self.all[7].map_or("", |i| text(record, i))
    }

    /// `_target`, or empty where the file has none.
    pub fn target<'r>(&self, record: &'r ByteRecord) -> &'r str {
        self.target.map_or("", |i| text(record, i))
    }

    /// `_attempts`, or 0 if it does not parse.
    pub fn attempts(&self, record: &ByteRecord) -> u32 {
        number(text(record, self.attempts)).map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// The result cells, in `RESULT_COLUMNS` order (an empty `_target` where the file has
    /// none).
    pub fn results(&self, record: &ByteRecord) -> ByteRecord {
        self.all
            .iter()
            .map(|i| i.and_then(|i| record.get(i)).unwrap_or_default())
            .collect()
    }

    /// The row as an earlier outcome starting at `offset`, for a run against `target`. A
    /// success counts only if it was obtained from that target: a rehearsal's successes
    /// do not count against production. A row without a target was written before
    /// targets were recorded, and counts.
    pub fn prior(&self, record: &ByteRecord, offset: u64, target: &str) -> Prior {
        let attempts = self.attempts(record);
        let http_status =
            number(text(record, self.http_status)).and_then(|n| u16::try_from(n).ok());
        let recorded = self.target(record);
        let same_target = recorded.is_empty() || same_target(recorded, target);
        let message = text(record, self.message);
        Prior {
            offset,
            success: same_target && self.status(record).is_some_and(Status::is_done),
            maybe_created: same_target
                && (shows_unknown_outcome(attempts, http_status, message)
                    || message.contains(MAY_EXIST)
                    || message.contains(MAY_BE_DELETED)),
            absent_before: same_target && message.contains(NOT_LISTED),
            // A rollback deletes only what a row says it created there: a row without a
            // target (a file written before targets were recorded) says nothing of where.
            created: !recorded.is_empty()
                && same_target
                && self.status(record) == Some(Status::Created),
        }
    }
}

/// Whether a row's own cells say its last attempt may have created the workspace unseen:
/// no answer (a timeout, a lost connection; not a connection that was never made), or an
/// answer that hides the outcome (a 5xx).
/// Where they do not, a row that may have created it says [`MAY_EXIST`] in its message.
pub fn shows_unknown_outcome(attempts: u32, http_status: Option<u16>, message: &str) -> bool {
    match http_status {
        Some(status) => attempts > 0 && may_have_applied(status),
        None => {
            let (_, message) = crate::operation::Operation::strip_marker(message);
            attempts > 0 && !message.starts_with(NOT_CONNECTED)
        }
    }
}

/// Whether a recorded `_target` is `target`: as text, or once both are parsed as URLs
/// (files edited by hand, or written with the URL spelled another way).
pub fn same_target(recorded: &str, target: &str) -> bool {
    let parsed = |text: &str| {
        reqwest::Url::parse(text)
            .ok()
            .map(|url| String::from(url).trim_end_matches('/').to_owned())
    };
    recorded == target || parsed(recorded).is_some_and(|r| Some(r) == parsed(target))
}

/// A whole number as dbprov writes it (`12`), or as a spreadsheet may re-save it (`12.0`).
pub fn number(text: &str) -> Option<u64> {
    let text = text.trim();
    if let Ok(n) = text.parse() {
        return Some(n);
    }
    // `1.0`, or `1,0` where the decimal mark is a comma (a `;` file).
    let (whole, fraction) = text.split_once(['.', ','])?;
    let whole_digits = !whole.is_empty() && whole.bytes().all(|b| b.is_ascii_digit());
    (whole_digits && !fraction.is_empty() && fraction.bytes().all(|b| b == b'0'))
        .then(|| whole.parse().ok())
        .flatten()
}

/// A result cell as trimmed text; empty when absent or not UTF-8.
pub fn text(record: &ByteRecord, i: usize) -> &str {
    record
        .get(i)
        .and_then(|c| std::str::from_utf8(c).ok())
        .unwrap_or("")
        .trim()
}

#[cfg(test)]
mod tests {
    use super::number;

    #[test]
    fn numbers_read_as_written_or_as_a_spreadsheet_rewrites_them() {
        assert_eq!(number("12"), Some(12));
        assert_eq!(number(" 12 "), Some(12));
        assert_eq!(number("12.0"), Some(12));
        assert_eq!(number("12.00"), Some(12));
        assert_eq!(number("12,0"), Some(12));
        for wrong in ["", "12.5", "1e3", "-1", "abc", ".0", "12."] {
            assert_eq!(number(wrong), None, "{wrong:?}");
        }
    }
}
