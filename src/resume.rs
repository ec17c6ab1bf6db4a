//! Earlier results: what `run --resume` and `retry` keep, and the log they append to.
//!
//! A results file read back is a log: when a name occurs more than once, its last row wins.
//! What is kept of it is compact: per identity (the name, or `_row` for a row without
//! one) the byte offset of its latest row and two flags. Never whole rows.

use std::collections::HashMap;
use std::fs::File;
use std::hash::{BuildHasher, RandomState};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use csv::ByteRecord;

use crate::input::{DUPLICATE_IN_INPUT, is_name_column};
use crate::results::{RESULT_COLUMNS, Status};
use crate::retry::may_have_applied;

/// Why earlier results cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// The file cannot be read.
    #[error("cannot read the earlier results {path}: {source}")]
    Io {
        /// The results file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a results file.
    #[error(
        "{path} is not a dbprov results file: its header lacks {missing}. Give another -o, or remove it"
    )]
    NotResults {
        /// The file.
        path: String,
        /// The missing column.
        missing: String,
    },
}

/// The latest row of one identity in a results log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prior {
    /// Where the row starts in the file.
    pub offset: u64,
    /// Its status says the workspace is in place (created, updated, exists).
    pub success: bool,
    /// An attempt of that run may have created the workspace without learning it (a
    /// timeout, a lost connection, a 5xx): a later `WORKSPACE_NAME_ALREADY_EXISTS` is ours.
    pub maybe_created: bool,
}

impl Prior {
    /// The offset in the high 62 bits, the flags in the low two.
    fn pack(self) -> u64 {
        (self.offset << 2) | (u64::from(self.success) << 1) | u64::from(self.maybe_created)
    }

    fn unpack(packed: u64) -> Prior {
        Prior {
            offset: packed >> 2,
            success: packed & 2 != 0,
            maybe_created: packed & 1 != 0,
        }
    }
}

/// The latest row of each identity in a results file.
pub struct PriorResults {
    /// Per identity hash, its latest [`Prior`] packed into one word (see [`Prior::pack`]):
    /// 17 bytes a name in the table instead of 25.
    latest: HashMap<u64, u64>,
    hasher: RandomState,
    /// Bytes of whole rows: a torn last line (a crash mid-write) is not counted.
    pub valid_len: u64,
    /// The input columns the file carries, after the result columns.
    pub carried_names: ByteRecord,
    /// Where its result columns are.
    pub columns: ResultColumns,
    /// The file.
    pub path: PathBuf,
}

impl PriorResults {
    /// Reads a results file. `Ok(None)` if it is empty (or holds only a torn header).
    pub fn scan(path: &Path) -> Result<Option<PriorResults>, ResumeError> {
        let io = |source| ResumeError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut file = File::open(path).map_err(io)?;
        let valid_len = whole_lines_len(&mut file).map_err(io)?;
        if valid_len == 0 {
            return Ok(None);
        }
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        let mut csv = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(file.take(valid_len));
        let header = csv.byte_headers().map_err(|e| io(e.into()))?.clone();
        let columns = ResultColumns::find(&header).map_err(|missing| ResumeError::NotResults {
            path: path.display().to_string(),
            missing,
        })?;
        let mut prior = PriorResults {
            latest: HashMap::new(),
            hasher: RandomState::new(),
            valid_len,
            carried_names: header
                .iter()
                .filter(|h| !RESULT_COLUMNS.contains(&String::from_utf8_lossy(h).trim()))
                .collect(),
            path: path.to_owned(),
            columns: columns.clone(),
        };
        let mut record = ByteRecord::new();
        while csv
            .read_byte_record(&mut record)
            .map_err(|e| io(e.into()))?
        {
            if record.len() != header.len() {
                continue;
            }
            let offset = record.position().map_or(0, |p| p.byte());
            let key = prior.key(columns.identity(&record), columns.row(&record));
            prior
                .latest
                .insert(key, columns.prior(&record, offset).pack());
        }
        Ok(Some(prior))
    }

    /// How many identities (distinct names, or rows without one) the file records.
    pub fn len(&self) -> usize {
        self.latest.len()
    }

    /// Whether the file records no row.
    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    /// The identity of a row: its name, or its `_row` when it has none.
    pub fn key(&self, name: Option<&str>, row: u64) -> u64 {
        match name {
            Some(name) => self.hasher.hash_one(("name", name)),
            None => self.hasher.hash_one(("row", row)),
        }
    }

    /// The latest row of this identity, if the file has one.
    pub fn get(&self, name: Option<&str>, row: u64) -> Option<Prior> {
        self.latest
            .get(&self.key(name, row))
            .map(|packed| Prior::unpack(*packed))
    }
}

/// Where the result columns and the name are in a results file's header.
#[derive(Debug, Clone)]
pub struct ResultColumns {
    name: Option<usize>,
    row: usize,
    status: usize,
    code: usize,
    http_status: usize,
    attempts: usize,
    /// Indices of the eight result columns, in `RESULT_COLUMNS` order.
    all: [usize; RESULT_COLUMNS.len()],
}

impl ResultColumns {
    /// Finds every result column, or names the first one missing.
    pub fn find(header: &ByteRecord) -> Result<ResultColumns, String> {
        let names: Vec<String> = header
            .iter()
            .map(|h| String::from_utf8_lossy(h).trim().to_owned())
            .collect();
        let mut all = [0; RESULT_COLUMNS.len()];
        for (slot, column) in all.iter_mut().zip(RESULT_COLUMNS) {
            *slot = names
                .iter()
                .position(|n| n == column)
                .ok_or_else(|| column.to_owned())?;
        }
        Ok(ResultColumns {
            name: names
                .iter()
                .position(|n| !RESULT_COLUMNS.contains(&n.as_str()) && is_name_column(n)),
            row: all[0],
            status: all[1],
            code: all[2],
            http_status: all[4],
            attempts: all[5],
            all,
        })
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
        text(record, self.row).parse().unwrap_or(0)
    }

    /// `_status`, if it is one.
    pub fn status(&self, record: &ByteRecord) -> Option<Status> {
        Status::parse(text(record, self.status))
    }

    /// The eight result cells, in `RESULT_COLUMNS` order.
    pub fn results(&self, record: &ByteRecord) -> ByteRecord {
        self.all
            .iter()
            .map(|&i| record.get(i).unwrap_or_default())
            .collect()
    }

    /// The row as an earlier outcome starting at `offset`.
    pub fn prior(&self, record: &ByteRecord, offset: u64) -> Prior {
        let attempts: u32 = text(record, self.attempts).parse().unwrap_or(0);
        let http_status = text(record, self.http_status).parse::<u16>().ok();
        Prior {
            offset,
            success: self.status(record).is_some_and(Status::is_done),
            // No status means no answer: a timeout or a lost connection.
            maybe_created: attempts > 0 && http_status.is_none_or(may_have_applied),
        }
    }
}

fn text(record: &ByteRecord, i: usize) -> &str {
    record
        .get(i)
        .and_then(|c| std::str::from_utf8(c).ok())
        .unwrap_or("")
        .trim()
}

/// The length of the file up to and including its last line break.
fn whole_lines_len(file: &mut File) -> std::io::Result<u64> {
    let mut end = file.seek(SeekFrom::End(0))?;
    let mut chunk = vec![0; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let buf = &mut chunk[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(buf)?;
        if let Some(i) = buf.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Rewrites `path` to its header plus the rows from `from` on, atomically: a temporary
/// file in the same folder, fsync, rename.
pub fn compact(path: &Path, header: &ByteRecord, from: u64) -> std::io::Result<()> {
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(folder)?;
    {
        let mut csv = csv::Writer::from_writer(&mut temp);
        csv.write_byte_record(header)?;
        csv.flush()?;
    }
    let mut log = File::open(path)?;
    log.seek(SeekFrom::Start(from))?;
    std::io::copy(&mut log, &mut temp)?;
    temp.flush()?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(contents: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(contents.as_bytes()).unwrap();
        file
    }

    const HEADER: &str = "_row,_status,_error_code,_error_message,_http_status,_attempts,_latency_ms,_finished_at,Name,team\n";

    #[test]
    fn the_last_row_of_a_name_wins_and_a_torn_line_is_ignored() {
        let file = write(&format!(
            "{HEADER}1,failed,HTTP_500,x,500,5,9,t,a,ops\n2,created,,,200,1,3,t,b,ops\n1,created,,,200,1,3,t,a,ops\n3,created,,,200,1,3,t,c,o"
        ));
        let prior = PriorResults::scan(file.path()).unwrap().unwrap();
        assert!(prior.get(Some("a"), 0).unwrap().success);
        assert!(prior.get(Some("b"), 0).unwrap().success);
        assert_eq!(prior.get(Some("c"), 0), None, "the torn row does not count");
        assert_eq!(
            prior.valid_len as usize,
            std::fs::read(file.path()).unwrap().len() - 25
        );
        assert_eq!(prior.carried_names, ByteRecord::from(vec!["Name", "team"]));
    }

    #[test]
    fn a_duplicate_row_neither_hides_nor_is_hidden_by_the_first_row_of_its_name() {
        let file = write(&format!(
            "{HEADER}24,invalid,DUPLICATE_IN_INPUT,x,,0,,t,a,\n2,created,,,200,1,3,t,a,\n"
        ));
        let prior = PriorResults::scan(file.path()).unwrap().unwrap();
        assert!(prior.get(Some("a"), 2).unwrap().success);
        assert!(!prior.get(None, 24).unwrap().success);
        assert_eq!(prior.len(), 2);
    }

    #[test]
    fn an_unknown_outcome_is_remembered() {
        let file = write(&format!(
            "{HEADER}1,failed,TIMEOUT,x,,5,9,t,a,\n2,failed,INVALID_THEME_NAME,x,400,1,9,t,b,\n3,skipped,INTERRUPTED,x,503,2,9,t,c,\n4,failed,HTTP_429,x,429,5,9,t,d,\n5,invalid,MISSING_NAME,x,,0,,t,,\n"
        ));
        let prior = PriorResults::scan(file.path()).unwrap().unwrap();
        let maybe = |name| prior.get(Some(name), 0).unwrap().maybe_created;
        assert!(maybe("a"));
        assert!(!maybe("b"));
        assert!(maybe("c"));
        assert!(!maybe("d"));
        assert!(
            !prior.get(None, 5).unwrap().maybe_created,
            "nameless rows go by _row"
        );
    }

    #[test]
    fn a_prior_packs_into_one_word() {
        for prior in [
            Prior {
                offset: 0,
                success: false,
                maybe_created: false,
            },
            Prior {
                offset: 123_456_789_012,
                success: true,
                maybe_created: false,
            },
            Prior {
                offset: (1 << 62) - 1,
                success: true,
                maybe_created: true,
            },
        ] {
            assert_eq!(Prior::unpack(prior.pack()), prior);
        }
    }

    #[test]
    fn files_that_are_not_results_are_refused() {
        let file = write("name,connectionType\na,DATAMART\n");
        let error = PriorResults::scan(file.path()).err().unwrap();
        assert!(
            error.to_string().contains("not a dbprov results file"),
            "{error}"
        );
        assert!(PriorResults::scan(write("").path()).unwrap().is_none());
        assert!(
            PriorResults::scan(write("_row,_sta").path())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn compaction_keeps_the_header_and_the_rows_from_an_offset() {
        let file = write("old header\nold row\nnew row 1\nnew row 2\n");
        compact(file.path(), &ByteRecord::from(vec!["h1", "h2"]), 19).unwrap();
        assert_eq!(
            std::fs::read_to_string(file.path()).unwrap(),
            "h1,h2\nnew row 1\nnew row 2\n"
        );
    }
}
