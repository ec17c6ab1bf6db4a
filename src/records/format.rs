//! The results file's format, read back: where its result columns and name are, and what a
//! row's cells say (its status, its target, whether an attempt may have created the
//! workspace unseen). The writer, the log and the reader of a results file as input all
//! read it through this.

use csv::ByteRecord;

use super::markers::strip_marker;
use crate::api::retry::may_have_applied;
use crate::api::workspace::is_name_column;
use crate::input::DUPLICATE_IN_INPUT;
use crate::model::cells::{unescape, unescape_str};
use crate::model::notes::{MAY_BE_DELETED, MAY_EXIST, NOT_CONNECTED, NOT_LISTED, VALUES_UNKNOWN};
use crate::model::{LEGACY_COLUMNS, Operation, Prior, RESULT_COLUMNS, Status};

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
    operation: Option<usize>,
    /// Indices of the result columns, in `RESULT_COLUMNS` order; `None` for a `_target` or
    /// an `_operation` that a file written before they were recorded lacks.
    all: [Option<usize>; RESULT_COLUMNS.len()],
    /// Indices of the input's columns, after the result columns.
    carried: Vec<usize>,
}

impl ResultColumns {
    /// Finds every result column, or names the first one missing (`_target` and
    /// `_operation` may be: files written before they were recorded lack them).
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
            operation: all[9],
            all,
            carried: (0..names.len())
                .filter(|i| !RESULT_COLUMNS.contains(&names[*i].as_str()))
                .collect(),
        })
    }

    /// Whether the file was written before `_target` was recorded.
    pub fn is_legacy(&self) -> bool {
        self.target.is_none()
    }

    /// Whether the file records each row's `_operation`: then that, and never a message,
    /// says which command a row is for.
    pub fn has_operation(&self) -> bool {
        self.operation.is_some()
    }

    /// Whether the result columns come first, in the order dbprov writes them: rows
    /// appended to the file line up with its header only then.
    pub fn in_place(&self) -> bool {
        self.all.iter().enumerate().all(|(i, at)| *at == Some(i))
    }

    /// The trimmed name, if any.
    pub fn name<'r>(&self, record: &'r ByteRecord) -> Option<&'r str> {
        let name = text(record, self.name?);
        (!name.is_empty()).then_some(name)
    }

    /// The name cell as written (but for a formula's `'`), spaces and all: what `update`
    /// and `delete` must find exactly.
    pub fn exact_name<'r>(&self, record: &'r ByteRecord) -> Option<&'r str> {
        let cell = record.get(self.name?)?;
        Some(unescape_str(std::str::from_utf8(cell).ok()?))
    }

    /// `_operation`, where the file records it and the cell says one.
    pub fn operation(&self, record: &ByteRecord) -> Option<Operation> {
        Operation::parse(text(record, self.operation?))
    }

    /// The input's cells, after the result columns, as the values they hold.
    pub fn carried(&self, record: &ByteRecord) -> ByteRecord {
        self.carried
            .iter()
            .map(|&i| unescape(record.get(i).unwrap_or_default()))
            .collect()
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

    /// `_row` when its cell is written as dbprov writes it (`12`, not `12.0` or `012`).
    pub fn row_as_written(&self, record: &ByteRecord) -> Option<u64> {
        let cell = record.get(self.row)?;
        let row = self.row(record);
        (row > 0 && cell == row.to_string().as_bytes()).then_some(row)
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

    /// `_error_code`, trimmed.
    pub fn code<'r>(&self, record: &'r ByteRecord) -> &'r str {
        text(record, self.code)
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

    /// The result cells, in `RESULT_COLUMNS` order, as the values they hold (an empty
    /// `_target` or `_operation` where the file has none).
    pub fn results(&self, record: &ByteRecord) -> ByteRecord {
        self.all
            .iter()
            .map(|i| unescape(i.and_then(|i| record.get(i)).unwrap_or_default()))
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
        let status = self.status(record);
        Prior {
            entry: 0,
            offset,
            status,
            named: self.identity(record).is_some(),
            success: same_target && status.is_some_and(Status::is_done),
            maybe_created: same_target
                && (shows_unknown_outcome(attempts, http_status, message)
                    || message.contains(MAY_EXIST)
                    || message.contains(MAY_BE_DELETED)),
            absent_before: same_target && message.contains(NOT_LISTED),
            // A rollback deletes only what a row says it created there: a row without a
            // target (a file written before targets were recorded) says nothing of where.
            created: !recorded.is_empty() && same_target && status == Some(Status::Created),
            values: 0,
        }
    }
}

/// Whether a row's own cells say its last attempt may have created the workspace unseen:
/// no answer (a timeout, a lost connection; not a connection that was never made), or an
/// answer that hides the outcome (a 5xx).
/// Where they do not, a row that may have created it says [`MAY_EXIST`] in its message.
pub fn shows_unknown_outcome(attempts: u32, http_status: Option<u16>, message: &str) -> bool {
    // The last request was a PUT: it created nothing, whatever became of it.
    if message.contains(VALUES_UNKNOWN) {
        return false;
    }
    match http_status {
        Some(status) => attempts > 0 && may_have_applied(status),
        None => {
            let (_, message) = strip_marker(message);
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

/// A cell as the trimmed text it holds (without a formula's `'`); empty when absent or
/// not UTF-8.
pub fn text(record: &ByteRecord, i: usize) -> &str {
    let cell = record.get(i).and_then(|c| std::str::from_utf8(c).ok());
    unescape_str(cell.unwrap_or("")).trim()
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
