//! A results file read as input (`retry`, `rollback`): each name's latest record is a row,
//! under its own `_row`, with what the file recorded of it; `rollback` reads only the rows
//! recorded as created on its target.

use std::io::Read;
use std::sync::Arc;

use csv::ByteRecord;

use super::prior::PriorResults;
use crate::input::{Admitted, CsvFormat, InputError, InputReader, Recorded};
use crate::model::Earlier;

/// Reads the results log `log` as input rows: rows that a later row of the same name
/// supersedes are passed over, and each row keeps its `_row`. Reading stops at the log's
/// last whole row, so rows appended meanwhile are not read back. With `only_created`, only
/// the rows the log records as `created` on its target are read, as new rows (their
/// earlier outcome is what is undone, not one to keep).
pub fn read_log(log: Arc<PriorResults>, only_created: bool) -> Result<InputReader, InputError> {
    let source = log.path.display().to_string();
    let file = std::fs::File::open(&log.path).map_err(|e| InputError::Unreadable {
        input: source.clone(),
        source: e,
    })?;
    let format = CsvFormat {
        delimiter: Some(log.delimiter),
        encoding: None,
    };
    let reader = InputReader::from_reader(Box::new(file.take(log.valid_len)), source, format)?;
    Ok(reader.with_recorded(Box::new(LogRows { log, only_created })))
}

/// Said of a row recorded as malformed that a retry keeps refused.
const MALFORMED_ADVICE: &str =
    "recorded as malformed: mend its cells, then clear its _error_code, to send it";

/// The ledger's view of a results file read as input.
struct LogRows {
    log: Arc<PriorResults>,
    only_created: bool,
}

impl Recorded for LogRows {
    fn admit(&self, record: &ByteRecord, offset: u64, whole: bool) -> Option<Admitted> {
        let columns = &self.log.columns;
        let mut earlier = whole.then(|| Earlier {
            results: columns.results(record),
            prior: columns.prior(record, offset, &self.log.target),
        });
        let latest = self.log.get(columns.identity(record), columns.row(record));
        if latest.is_some_and(|p| p.offset != offset) {
            return None;
        }
        // The log remembers a lost answer of any earlier row of the name.
        if let (Some(earlier), Some(latest)) = (earlier.as_mut(), latest) {
            earlier.prior.maybe_created |= latest.maybe_created;
            earlier.prior.absent_before |= latest.absent_before;
            earlier.prior.created = latest.created;
        }
        if self.only_created {
            if !earlier.as_ref().is_some_and(|e| e.prior.created) {
                return None;
            }
            earlier = None;
        }
        // A malformed row's cells are what fitted of its line: sent as they are, they would
        // be another row. It stays refused until its code is cleared (its cells mended).
        let refused = (columns.code(record) == "MALFORMED_ROW").then(|| {
            let message = columns.message(record);
            match message.contains(MALFORMED_ADVICE) {
                true => message.to_owned(),
                false => format!("{message} ({MALFORMED_ADVICE})"),
            }
        });
        Some(Admitted {
            row: Some(columns.row(record)),
            earlier,
            refused,
        })
    }

    fn still_duplicate(&self, record: &ByteRecord, name: &str) -> bool {
        self.log.columns.is_duplicate(record) && self.log.get(Some(name), 0).is_some()
    }
}
