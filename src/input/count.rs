//! The input's rows counted before the job, quickly (for the progress bar and
//! `--max-failures P%`), and the whole file checked to be the text it claims to be.

use csv::ByteRecord;

use super::decode::{self, CsvFormat, DecodeError, Decoded};
use super::header::parse_header;
use super::lines::CsvLines;
use super::reader::InputError;
use super::row::{name_cell, values};
use super::shard::shard_of;
use crate::api::workspace::is_name_column;
use crate::model::{Input, Shard};

/// Counts the data rows of an input in `shard`, quickly: no validation, except that a
/// file read as UTF-8 must be UTF-8 throughout (a byte that is not refuses it before any
/// request, as [`decode`] does at the start of any input). `None` when the input is
/// not a regular file (stdin, a pipe, a FIFO): it cannot be read twice. Stops early, with
/// `None`, once `stop` is set (a signal during the count).
pub fn count_rows(
    input: &Input,
    format: CsvFormat,
    shard: Shard,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<Option<u64>, InputError> {
    let counted = count_rows_to_send(input, format, shard, stop, |_, _, _| false)?;
    Ok(counted.map(|c| c.rows))
}

/// The rows of an input in its shard, and whether any of them may need a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    /// Data rows in the shard.
    pub rows: u64,
    /// Some row with a name is not `done`: it may need a request. (One without a name
    /// is invalid, and never sent.)
    pub to_send: bool,
}

/// [`count_rows`], and whether any row with a name is not `done(name, row, values)`
/// (recorded done, or refused as it is, by the results file a job continues, say):
/// `values` gives the hash of the row's values ([`values`]) when asked.
pub fn count_rows_to_send(
    input: &Input,
    format: CsvFormat,
    shard: Shard,
    stop: &std::sync::atomic::AtomicBool,
    mut done: impl FnMut(&str, u64, &dyn Fn() -> u64) -> bool,
) -> Result<Option<Counted>, InputError> {
    let Input::File(path) = input else {
        return Ok(None);
    };
    let unreadable = |source| InputError::Unreadable {
        input: input.to_string(),
        source,
    };
    // Looked at before it is opened: opening a FIFO would take the writer's data away
    // from the real read.
    if !std::fs::metadata(path).map_err(unreadable)?.is_file() {
        return Ok(None);
    }
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let (file, decoded) = decode::utf8_reader(Box::new(file), format.encoding, &input.to_string())?;
    let mut lines = CsvLines::new(file).with_delimiter(format.delimiter);
    let mut record = ByteRecord::new();
    let read_error = |line, source| InputError::Read {
        input: input.to_string(),
        line,
        source,
    };
    if lines
        .read(&mut record)
        .map_err(|e| read_error(0, e))?
        .is_none()
    {
        return Ok(Some(Counted {
            rows: 0,
            to_send: false,
        }));
    }
    lines.width = Some(record.len());
    let header = parse_header(&record, &input.to_string(), lines.delimiter()).ok();
    let name = record
        .iter()
        .position(|h| is_name_column(String::from_utf8_lossy(h).trim()));
    let (mut rows, mut in_shard, mut to_send) = (0, 0, false);
    while lines
        .read(&mut record)
        .map_err(|e| read_error(rows, e))?
        .is_some()
    {
        rows += 1;
        if matches!(decoded, Decoded::Utf8 { .. })
            && let Err(error) = std::str::from_utf8(record.as_slice())
        {
            return Err(DecodeError::NotUtf8 {
                input: input.to_string(),
                line: record.position().map_or(0, |p| p.line()),
                byte: record.as_slice()[error.valid_up_to()],
            }
            .into());
        }
        let name = name.and_then(|i| name_cell(&record, i));
        if shard.count == 1 || shard_of(name, rows, shard.count) == shard.index {
            in_shard += 1;
            let values = || {
                header.as_ref().map_or(0, |header| {
                    values(header, |i| {
                        record.get(i).and_then(|c| std::str::from_utf8(c).ok())
                    })
                })
            };
            to_send = to_send || name.is_some_and(|name| !done(name, rows, &values));
        }
        if rows % 4096 == 0 && stop.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(None);
        }
    }
    Ok(Some(Counted {
        rows: in_shard,
        to_send,
    }))
}
