//! Earlier results: what `run --resume` and `retry` keep, and the log they append to.
//!
//! A results file read back is a log: when a name occurs more than once, its last row wins.
//! What is kept of it is compact: per identity (the name, or `_row` for a row without
//! one) where its latest row is, what that row says, and a few flags ([`super::latest`]).
//! Never whole rows.

use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use csv::ByteRecord;

use super::format::ResultColumns;
use super::format::same_target;
use super::latest::{
    HAS_OPERATION, IN_PLACE, InPlace, Latest, READ, RENUMBERED, Record, WRITTEN, becomes_created,
};
use super::markers::{OperationsSeen, strip_marker};
pub use super::reading::ResumeError;
use super::reading::{Opened, header_ends_in_crlf, io_error, not_utf8, open};
use crate::input::header::parse_header;
use crate::input::lines::Kind;
use crate::input::row::values;
use crate::input::{Header, shard_of};
use crate::model::cells::unescape;
use crate::model::notes::{NOT_CONNECTED, VALUES_UNKNOWN};
use crate::model::{Prior, RESULT_COLUMNS, Shard, Status};

/// The latest row of each identity in a results file.
pub struct PriorResults {
    /// Per identity, its latest [`Prior`] with the hash of the values it was sent with,
    /// and what this run did with it (wrote a row of it, kept it in place, read its name).
    latest: Latest,
    hasher: RandomState,
    /// Bytes of whole rows: a torn last line (a crash mid-write) is not counted.
    pub valid_len: u64,
    /// The input columns the file carries, after the result columns.
    pub carried_names: ByteRecord,
    /// Where its result columns are.
    pub columns: ResultColumns,
    /// The file.
    pub path: PathBuf,
    /// The API this run talks to: only successes obtained from it count.
    pub target: String,
    /// Whether any row records a request that was sent: such a file is not replaced
    /// without `--overwrite`.
    pub sent: bool,
    /// Rows obtained from another API than `target`, and one such API.
    pub elsewhere: (u64, String),
    /// Of those, the records of what was done there (successes) or of requests that
    /// reached it (some answer, or none in time): they tie the file to that API.
    pub reached_elsewhere: (u64, String),
    /// What the rows say of the operation that wrote them.
    pub written_by: OperationsSeen,
    /// The file's field separator, as its header shows it (a spreadsheet may have saved
    /// the file with `;`).
    pub delimiter: u8,
    /// The file starts with a UTF-8 byte-order mark (a spreadsheet's "CSV UTF-8").
    pub bom: bool,
    /// The last row has no line break after it (a spreadsheet saved the file so): rows
    /// appended must begin with one.
    pub unterminated: bool,
    /// The latest `_finished_at` of a row a rollback would delete (recorded `created` on
    /// the target, or possibly created by a lost answer); `None` if none.
    pub newest_created_at: Option<SystemTime>,
    /// The earliest `_finished_at` of a row that is done (its workspace in place, or gone
    /// as a delete asked); `None` if none.
    pub oldest_done_at: Option<SystemTime>,
    /// The first `_finished_at` that is not a time, as the error it makes where times are
    /// compared.
    pub unreadable_time: Option<ResumeError>,
    /// The shard the file is read for, and how many of its records fall in each shard of
    /// that many (empty for the whole input): a file is continued only by the shard that
    /// wrote it.
    pub shard: Shard,
    pub per_shard: Vec<u64>,
    /// The file's columns as a tenant CSV's, to hash each row's values.
    values_header: Option<Header>,
    /// Where the first row after the header starts.
    pub rows_from: u64,
    /// One whole record per identity, their `_row`s ascending through the file, and
    /// nothing else: a run that keeps every one of them in place leaves the file as it is.
    pub in_order: bool,
    /// The header line ends with CRLF (a spreadsheet saved the file, or `--excel` wrote
    /// it): rows appended end so too.
    pub crlf: bool,
    /// Records read, and the `_row` of the last one.
    records: u64,
    last_row: Option<u64>,
}

impl PriorResults {
    /// Reads a results file for a run against `target`. `Ok(None)` if it is empty (or
    /// holds only a torn header).
    pub fn scan(
        path: &Path,
        target: &str,
        shard: Shard,
    ) -> Result<Option<PriorResults>, ResumeError> {
        let Some(Opened {
            mut lines,
            header,
            columns,
            bom,
            file_len,
            whole_len,
        }) = open(path)?
        else {
            return Ok(None);
        };
        // Where the last whole row ends: a file may end without a line break after its
        // last row (a spreadsheet or an editor saved it so), or with a row torn by a crash.
        let mut whole_end = lines.next_offset().unwrap_or(whole_len);
        let mut last_was_whole = false;
        let mut prior = PriorResults {
            latest: Latest::default(),
            hasher: RandomState::new(),
            valid_len: whole_len,
            carried_names: header
                .iter()
                .filter(|h| !RESULT_COLUMNS.contains(&String::from_utf8_lossy(h).trim()))
                .collect(),
            path: path.to_owned(),
            columns,
            target: target.to_owned(),
            sent: false,
            elsewhere: (0, String::new()),
            reached_elsewhere: (0, String::new()),
            written_by: OperationsSeen::default(),
            delimiter: lines.delimiter(),
            bom,
            unterminated: false,
            newest_created_at: None,
            oldest_done_at: None,
            unreadable_time: None,
            shard,
            per_shard: vec![
                0;
                if shard.count > 1 {
                    shard.count as usize
                } else {
                    0
                }
            ],
            values_header: parse_header(&header, &path.display().to_string(), b',').ok(),
            rows_from: whole_end,
            in_order: true,
            crlf: false,
            records: 0,
            last_row: None,
        };
        let mut record = ByteRecord::new();
        let mut next = lines.next_offset();
        while let Some(kind) = lines.read(&mut record).map_err(io_error(path))? {
            let line = record.position().map_or(0, |p| p.line());
            let offset = record.position().map_or(0, |p| p.byte());
            // Nothing between two records (a blank line, say), as dbprov writes them.
            prior.in_order &= next == Some(offset);
            next = lines.next_offset();
            if last_was_whole {
                whole_end = offset;
            }
            // Not even a last row cut inside a character passes: a byte of another
            // encoding ends a row just so, and the writer cuts the rows it tears itself.
            if let Err(error) = std::str::from_utf8(record.as_slice()) {
                let byte = record.as_slice()[error.valid_up_to()];
                return Err(not_utf8(
                    path,
                    format!("line {line} has the byte 0x{byte:02X}"),
                ));
            }
            last_was_whole = kind == Kind::Whole && record.len() == header.len();
            if last_was_whole {
                prior.note(&record, line, offset)?;
            } else {
                prior.in_order = false;
            }
        }
        if last_was_whole {
            whole_end = file_len;
        }
        if whole_len < file_len {
            prior.valid_len = whole_end;
            prior.unterminated = whole_end == file_len;
        }
        let created_late = prior.latest.settle();
        prior.note_created_late(&created_late)?;
        prior.in_order &= prior.records == prior.latest.len() as u64 && !prior.unterminated;
        prior.crlf = header_ends_in_crlf(path, prior.rows_from)?;
        Ok(Some(prior))
    }

    /// Takes in the times of the records that are `created` only by what earlier records
    /// of their name said (rare: a lost answer, then a later run that settled nothing).
    fn note_created_late(&mut self, offsets: &[u64]) -> Result<(), ResumeError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let file = std::fs::File::open(&self.path).map_err(io_error(&self.path))?;
        for &offset in offsets {
            let mut file = &file;
            std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(offset))
                .map_err(io_error(&self.path))?;
            let mut lines = crate::input::lines::CsvLines::at(file, offset)
                .with_delimiter(Some(self.delimiter));
            let mut record = ByteRecord::new();
            if lines
                .read(&mut record)
                .map_err(io_error(&self.path))?
                .is_some()
            {
                let finished = humantime::parse_rfc3339_weak(self.columns.finished_at(&record));
                self.newest_created_at = self.newest_created_at.max(finished.ok());
            }
        }
        Ok(())
    }

    /// Takes in one whole row at `offset`: the file's figures, and the latest record of
    /// its identity.
    fn note(&mut self, record: &ByteRecord, line: u64, offset: u64) -> Result<(), ResumeError> {
        let finished = self.readable(record, line)?;
        let columns = &self.columns;
        let row = columns.row(record);
        self.records += 1;
        self.in_order &= row > 0 && self.last_row.is_none_or(|last| last < row);
        self.last_row = Some(row);
        self.sent |= columns.attempts(record) > 0;
        match columns.has_operation() {
            true => self.written_by.note_recorded(columns.operation(record)),
            false => self
                .written_by
                .note(columns.status(record), columns.message(record)),
        }
        if let Some(count) = self.per_shard.get_mut(shard_of(
            columns.name(record),
            columns.row(record),
            self.shard.count,
        ) as usize)
        {
            *count += 1;
        }
        let done = columns.status(record).is_some_and(Status::is_done);
        let on_target = self.note_target(record);
        if done && finished.is_some() {
            self.oldest_done_at = self.oldest_done_at.min(finished).or(finished);
        }
        self.note_latest(record, offset, on_target, finished);
        Ok(())
    }

    /// The row's time of finishing, once its cells are known to read back: a number that
    /// is not one refuses the file; a time that is not one is noted, for the one command
    /// that compares times.
    fn readable(
        &mut self,
        record: &ByteRecord,
        line: u64,
    ) -> Result<Option<SystemTime>, ResumeError> {
        let columns = &self.columns;
        let unreadable = |column, value: &str, expected| ResumeError::Unreadable {
            path: self.path.display().to_string(),
            line,
            column,
            value: value.to_owned(),
            expected,
        };
        if let Some((column, value)) = columns.unreadable_number(record) {
            return Err(unreadable(column, value, "a whole number"));
        }
        let finished_at = columns.finished_at(record);
        // Only a rollback's --resume compares times: a time a spreadsheet rewrote in its
        // own format stops that, and nothing else.
        let finished = humantime::parse_rfc3339_weak(finished_at).ok();
        if finished.is_none() && !finished_at.is_empty() && self.unreadable_time.is_none() {
            self.unreadable_time =
                Some(unreadable("_finished_at", finished_at, "an RFC 3339 time"));
        }
        Ok(finished)
    }

    /// Counts a row obtained from another API than this run's; says whether it was
    /// obtained from this run's.
    fn note_target(&mut self, record: &ByteRecord) -> bool {
        let columns = &self.columns;
        let recorded = columns.target(record);
        let on_target = !recorded.is_empty() && same_target(recorded, &self.target);
        if !recorded.is_empty() && !on_target {
            // A record of what was done there (a success, even one settled by the list
            // without a request), or of a request that reached it.
            let (_, message) = strip_marker(columns.message(record));
            let done = columns.status(record).is_some_and(Status::is_done);
            let reached =
                done || (columns.attempts(record) > 0 && !message.starts_with(NOT_CONNECTED));
            for (seen, count) in [
                (true, &mut self.elsewhere),
                (reached, &mut self.reached_elsewhere),
            ] {
                if seen {
                    count.0 += 1;
                    if count.1.is_empty() {
                        count.1 = recorded.to_owned();
                    }
                }
            }
        }
        on_target
    }

    /// Makes the row the latest record of its identity, with what earlier records of it
    /// said of lost answers.
    fn note_latest(
        &mut self,
        record: &ByteRecord,
        offset: u64,
        on_target: bool,
        finished: Option<SystemTime>,
    ) {
        let columns = &self.columns;
        let key = self.key(columns.identity(record), columns.row(record));
        let mut latest = columns.prior(record, offset, &self.target);
        // A record of a PUT cut short says all its run knew (a POST before it in that run
        // was answered: the name was taken), and stands alone; its values nobody knows:
        // they match no row's.
        let unknown = columns.message(record).contains(VALUES_UNKNOWN);
        latest.created |= becomes_created(&latest, on_target);
        // Whatever a rollback would delete for this row: `created`, or what a lost answer
        // may have created. (What earlier records of its name add, `settle` tells.)
        if latest.created {
            self.newest_created_at = self.newest_created_at.max(finished);
        }
        let values = match (&self.values_header, unknown) {
            (_, true) => u64::MAX,
            (None, false) => 0,
            (Some(header), false) => values(header, |i| {
                record
                    .get(i)
                    .and_then(|c| std::str::from_utf8(unescape(c)).ok())
            }),
        };
        self.latest.push(Record {
            key,
            prior: latest,
            values,
            row: columns.row_as_written(record).unwrap_or(u64::MAX),
            complete: unknown,
            on_target,
            has_operation: columns.operation(record).is_some(),
        });
    }

    /// How many identities (distinct names, or rows without one) the file records.
    pub fn len(&self) -> usize {
        self.latest.len()
    }

    /// How many identities are recorded `created` on the target, as their latest row.
    pub fn created(&self) -> u64 {
        self.latest
            .iter()
            .filter(|(prior, _)| prior.created)
            .count() as u64
    }

    /// Whether some identity's latest record is neither a success on the target nor
    /// refused before any request (`invalid`: sent again only if its cells were mended).
    pub fn has_unfinished(&self) -> bool {
        (self.latest.iter())
            .any(|(prior, _)| !prior.success && prior.status != Some(Status::Invalid))
    }

    /// The `_row` of the file's last record.
    pub fn last_row(&self) -> Option<u64> {
        self.last_row
    }

    /// Whether the file records no row.
    pub fn is_empty(&self) -> bool {
        self.latest.len() == 0
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
        self.get_near(name, row, &mut 0)
    }

    /// [`PriorResults::get`], looking first at `near`, which becomes the place after the
    /// record found: rows that come in the order of the file are found at once.
    pub fn get_near(&self, name: Option<&str>, row: u64, near: &mut usize) -> Option<Prior> {
        self.latest.get(self.key(name, row), near)
    }

    /// Notes that this run wrote a row of the name, if the file has a record of it.
    pub fn mark_written(&self, name: &str) {
        if let Some(prior) = self.get(Some(name), 0) {
            self.written(&prior);
        }
    }

    /// Notes that this run wrote a row of the identity of `prior` (one [`get`] gave).
    ///
    /// [`get`]: PriorResults::get
    pub fn written(&self, prior: &Prior) {
        self.latest.mark(prior.entry, WRITTEN);
    }

    /// Notes that a row of this run's input has the name of `prior` (one [`get`] gave):
    /// says whether it is the first.
    ///
    /// [`get`]: PriorResults::get
    pub fn first_read(&self, prior: &Prior) -> bool {
        self.latest.mark(prior.entry, READ) & READ == 0
    }

    /// Keeps the record of `prior` (one [`get`] gave) where it is, as this run's row
    /// `row`, if it can stand as that as it is but for its number: it has an `_operation`
    /// and its `_row` is written as dbprov writes it (the rewrite at the end numbers it
    /// anew if it must). Says whether it does.
    ///
    /// [`get`]: PriorResults::get
    pub fn keep_in_place(&self, prior: &Prior, row: u64) -> bool {
        let (recorded, flags) = self.latest.row_and_flags(prior.entry);
        let row = u32::try_from(row).unwrap_or(u32::MAX);
        let as_is = recorded != u32::MAX && row != u32::MAX && flags & HAS_OPERATION != 0;
        let marks = match (as_is, recorded == row) {
            (false, _) => WRITTEN,
            (true, true) => IN_PLACE | WRITTEN,
            (true, false) => {
                self.latest.renumber(prior.entry, row);
                IN_PLACE | WRITTEN | RENUMBERED
            }
        };
        self.latest.mark(prior.entry, marks);
        as_is
    }

    /// The row of this run's input that the record at `offset`, of this identity, is, if
    /// this run kept it in place. `near` as for [`PriorResults::get_near`]: a pass over
    /// the file finds each record at once.
    pub fn kept_in_place(
        &self,
        (name, row): (Option<&str>, u64),
        offset: u64,
        near: &mut usize,
    ) -> Option<u32> {
        let prior = self
            .get_near(name, row, near)
            .filter(|p| p.offset == offset)?;
        let (row, flags) = self.latest.row_and_flags(prior.entry);
        (flags & IN_PLACE != 0).then_some(row)
    }

    /// What this run kept in place.
    pub fn in_place(&self) -> InPlace {
        let mut kept = InPlace {
            any: false,
            all: true,
            renumbered: false,
        };
        for (_, flags) in self.latest.iter() {
            kept.any |= flags & IN_PLACE != 0;
            kept.all &= flags & IN_PLACE != 0;
            kept.renumbered |= flags & RENUMBERED != 0;
        }
        kept
    }

    /// Where the latest record of each name that this run wrote no row for starts.
    pub fn not_written(&self) -> impl Iterator<Item = u64> + '_ {
        self.latest
            .iter()
            .filter(|(prior, flags)| prior.named && flags & WRITTEN == 0)
            .map(|(prior, _)| prior.offset)
    }
}

impl crate::input::Logbook for PriorResults {
    fn look_up(&self, name: Option<&str>, row: u64, near: &mut usize) -> Option<Prior> {
        self.get_near(name, row, near)
    }

    fn first_read(&self, prior: &Prior) -> bool {
        PriorResults::first_read(self, prior)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn write(contents: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(contents.as_bytes()).unwrap();
        file
    }

    const HEADER: &str = "_row,_status,_error_code,_error_message,_http_status,_attempts,_latency_ms,_finished_at,Name,team\n";

    #[test]
    fn a_whole_last_row_without_a_line_break_counts() {
        // A torn row with every column cannot be told from it: the writer cuts a row that
        // a failed write tore (results::ResultsWriter), so only a crash of the machine
        // can leave one.
        let text = format!("{HEADER}1,created,,,200,1,3,t,a,ops\n2,created,,,200,1,3,t,\"b\",ops");
        let file = write(&text);
        let prior = PriorResults::scan(file.path(), "t", Shard::ALL)
            .unwrap()
            .unwrap();
        assert!(prior.get(Some("b"), 0).unwrap().success);
        assert!(prior.unterminated);
        assert_eq!(prior.valid_len as usize, text.len());
    }

    #[test]
    fn the_last_row_of_a_name_wins_and_a_torn_line_is_ignored() {
        let file = write(&format!(
            "{HEADER}1,failed,HTTP_500,x,500,5,9,t,a,ops\n2,created,,,200,1,3,t,b,ops\n1,created,,,200,1,3,t,a,ops\n3,created,,,200,1,3,t,c"
        ));
        let prior = PriorResults::scan(file.path(), "t", Shard::ALL)
            .unwrap()
            .unwrap();
        assert!(prior.get(Some("a"), 0).unwrap().success);
        assert!(prior.get(Some("b"), 0).unwrap().success);
        assert_eq!(prior.get(Some("c"), 0), None, "the torn row does not count");
        assert_eq!(
            prior.valid_len as usize,
            std::fs::read(file.path()).unwrap().len() - 23
        );
        assert_eq!(prior.carried_names, ByteRecord::from(vec!["Name", "team"]));
    }

    #[test]
    fn a_duplicate_row_neither_hides_nor_is_hidden_by_the_first_row_of_its_name() {
        let file = write(&format!(
            "{HEADER}24,invalid,DUPLICATE_IN_INPUT,x,,0,,t,a,\n2,created,,,200,1,3,t,a,\n"
        ));
        let prior = PriorResults::scan(file.path(), "t", Shard::ALL)
            .unwrap()
            .unwrap();
        assert!(prior.get(Some("a"), 2).unwrap().success);
        assert!(!prior.get(None, 24).unwrap().success);
        assert_eq!(prior.len(), 2);
    }

    #[test]
    fn an_unknown_outcome_is_remembered() {
        let file = write(&format!(
            "{HEADER}1,failed,TIMEOUT,x,,5,9,t,a,\n2,failed,INVALID_THEME_NAME,x,400,1,9,t,b,\n3,skipped,INTERRUPTED,x,503,2,9,t,c,\n4,failed,HTTP_429,x,429,5,9,t,d,\n5,invalid,MISSING_NAME,x,,0,,t,,\n"
        ));
        let prior = PriorResults::scan(file.path(), "t", Shard::ALL)
            .unwrap()
            .unwrap();
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
    fn a_success_counts_only_on_the_target_it_came_from() {
        const WITH_TARGET: &str = "_row,_status,_error_code,_error_message,_http_status,_attempts,_latency_ms,_finished_at,_target,name\n";
        let file = write(&format!(
            "{WITH_TARGET}1,created,,,200,1,3,t,sandbox,a\n2,created,,,200,1,3,t,https://api.example.com,b\n3,failed,TIMEOUT,x,,5,9,t,sandbox,c\n"
        ));
        let prior = PriorResults::scan(file.path(), "https://api.example.com", Shard::ALL)
            .unwrap()
            .unwrap();
        assert!(!prior.get(Some("a"), 0).unwrap().success, "a rehearsal's");
        assert!(prior.get(Some("b"), 0).unwrap().success);
        assert!(
            !prior.get(Some("c"), 0).unwrap().maybe_created,
            "a lost answer of the sandbox says nothing of production"
        );
        assert!(prior.sent);
        let rehearsal = PriorResults::scan(file.path(), "sandbox", Shard::ALL)
            .unwrap()
            .unwrap();
        assert!(rehearsal.get(Some("a"), 0).unwrap().success);
        assert!(rehearsal.get(Some("c"), 0).unwrap().maybe_created);
    }

    #[test]
    fn a_lost_answer_is_remembered_past_later_rows_that_sent_nothing() {
        let file = write(&format!(
            "{HEADER}1,failed,HTTP_500,x,500,1,9,t,a,\n1,skipped,ABORTED_UNAUTHORIZED,x,,0,,t,a,\n1,failed,HTTP_429,x,429,5,9,t,a,\n"
        ));
        let prior = PriorResults::scan(file.path(), "t", Shard::ALL)
            .unwrap()
            .unwrap();
        assert!(prior.get(Some("a"), 0).unwrap().maybe_created);
    }

    #[test]
    fn a_prior_packs_into_one_word() {
        for prior in [
            Prior {
                entry: 0,
                offset: 0,
                status: None,
                named: false,
                values: 0,
                success: false,
                maybe_created: false,
                absent_before: false,
                created: false,
            },
            Prior {
                entry: 0,
                offset: 123_456_789_012,
                status: Some(Status::Exists),
                named: true,
                values: 0,
                success: true,
                maybe_created: false,
                absent_before: false,
                created: false,
            },
            Prior {
                entry: 0,
                offset: (1 << 55) - 1,
                status: Some(Status::Planned),
                named: true,
                values: 0,
                success: true,
                maybe_created: true,
                absent_before: true,
                created: true,
            },
        ] {
            assert_eq!(Prior::unpack(prior.pack()), prior);
        }
    }

    #[test]
    fn files_that_are_not_results_are_refused() {
        let file = write("name,connectionType\na,DATAMART\n");
        let error = PriorResults::scan(file.path(), "t", Shard::ALL)
            .err()
            .unwrap();
        assert!(
            error.to_string().contains("not a dbprov results file"),
            "{error}"
        );
        assert!(
            PriorResults::scan(write("").path(), "t", Shard::ALL)
                .unwrap()
                .is_none()
        );
        assert!(
            PriorResults::scan(write("_row,_sta").path(), "t", Shard::ALL)
                .unwrap()
                .is_none()
        );
    }
}
