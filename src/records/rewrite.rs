//! Rewriting a results file whole, atomically (a temporary file beside it, then a rename):
//! into input order at the end of a job, and into today's columns before a job continues
//! an older file.

use std::fs::File;
use std::hash::BuildHasher;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use csv::ByteRecord;

use super::format::ResultColumns;
use super::layout::{BOM, Layout};
use super::markers::row_operation;
use super::prior::PriorResults;
use crate::input::lines::CsvLines;
use crate::model::cells::{escape, unescape};
use crate::model::{Operation, RESULT_COLUMNS};
use crate::report::signals;

/// Rewrites a results file into today's columns, in dbprov's order: a file written before
/// `_target` was recorded (an empty `_target`, which counts as any target) or before
/// `_operation` was (each row's is read from its status and message as before, else
/// `operation`), or one whose columns a spreadsheet moved. Every cell a spreadsheet would
/// run as a formula is written as text. Atomically (see [`rewrite`]), keeping its
/// delimiter and byte-order mark.
pub fn upgrade_legacy(
    prior: &PriorResults,
    real_path: &Path,
    operation: Operation,
) -> std::io::Result<()> {
    let file = File::open(real_path)?;
    let mut lines = CsvLines::new(file.take(prior.valid_len)).with_delimiter(Some(prior.delimiter));
    let mut record = ByteRecord::new();
    let Some(_) = lines.read(&mut record)? else {
        return Ok(());
    };
    let carried: Vec<usize> = record
        .iter()
        .enumerate()
        .filter(|(_, h)| !RESULT_COLUMNS.contains(&String::from_utf8_lossy(h).trim()))
        .map(|(i, _)| i)
        .collect();
    let width = record.len();
    lines.width = Some(width);
    rewrite(real_path, |file| {
        if prior.bom {
            file.write_all(b"\xef\xbb\xbf")?;
        }
        let mut csv = csv::WriterBuilder::new()
            .delimiter(prior.delimiter)
            .from_writer(file);
        let mut header = ByteRecord::from(RESULT_COLUMNS.to_vec());
        header.extend(&prior.carried_names);
        csv.write_byte_record(&header)?;
        let mut upgraded = ByteRecord::new();
        while lines.read(&mut record)?.is_some() {
            if record.len() != width {
                csv.write_byte_record(&record)?;
                continue;
            }
            upgraded.clear();
            let columns = &prior.columns;
            let recorded = columns.operation(&record).or_else(|| {
                let message = columns.message(&record);
                row_operation(columns.status(&record), message)
            });
            let results = columns.results(&record);
            for (i, cell) in results.iter().enumerate() {
                match RESULT_COLUMNS[i] {
                    "_operation" => {
                        let operation = recorded.unwrap_or(operation);
                        upgraded.push_field(operation.as_str().as_bytes());
                    }
                    _ => upgraded.push_field(&escape(cell)),
                }
            }
            for &i in &carried {
                upgraded.push_field(&escape(unescape(&record[i])));
            }
            csv.write_byte_record(&upgraded)?;
        }
        csv.flush()
    })
}

/// Replaces the file at `real_path` (symbolic links already resolved) with what `fill`
/// writes, atomically: a temporary file in the same folder with the file's mode, fsync,
/// rename. A failure leaves the file as it was.
pub fn rewrite(
    real_path: &Path,
    fill: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut temp = temp_beside(real_path)?;
    signals::rewriting(Some(temp.path()));
    let result = (|| {
        if let Ok(meta) = std::fs::metadata(real_path) {
            temp.as_file().set_permissions(meta.permissions())?;
        }
        fill(temp.as_file_mut())?;
        temp.as_file().sync_all()?;
        temp.persist(real_path).map_err(|e| e.error)
    })();
    signals::rewriting(None);
    result.map(drop)
}

/// A temporary file in the folder of `path`, where a rename over `path` is atomic.
pub fn temp_beside(path: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    tempfile::Builder::new()
        .prefix(".dbprov-")
        .suffix(".tmp")
        .tempfile_in(folder)
}

/// The most bytes of a results file copied at once in a rewrite.
const COPY_PIECE: u64 = 1 << 20;

/// Which rows of a results file are this run's.
#[derive(Clone, Copy)]
pub(crate) struct Ours<'a> {
    /// Those from this byte on: what this run appended.
    pub from: u64,
    /// Before it, those the ledger says this run kept where they were.
    pub in_place: Option<&'a PriorResults>,
    /// Every row before `from` is this run's, from the byte `.0` on, in order, the last
    /// numbered `.1`: if the rows appended come after it, they are all that moves.
    pub prefix: Option<(u64, u64)>,
}

impl<'a> Ours<'a> {
    /// This run's rows in a file where it appended (`appended`) from byte `from` on, and
    /// that continued `prior`, if any. `None` when the file holds them as they should be:
    /// every record kept where it was, in order, and nothing added.
    /// The file's records kept whole must be laid out as `layout` (not so when `--excel`
    /// continues a plain file): the rewrite puts them so.
    pub(crate) fn of(
        (from, appended): (u64, bool),
        prior: Option<&'a PriorResults>,
        layout: Layout,
    ) -> Option<Self> {
        let kept = prior.map(PriorResults::in_place);
        let laid_out = |p: &PriorResults| p.crlf == layout.crlf && p.bom == layout.bom;
        let kept_whole = prior
            .filter(|p| kept.is_some_and(|k| k.all && !k.renumbered) && p.in_order && laid_out(p));
        if kept_whole.is_some() && !appended {
            return None;
        }
        Some(Ours {
            from,
            in_place: prior.filter(|_| kept.is_some_and(|k| k.any)),
            prefix: kept_whole.map(|p| (p.rows_from, p.last_row().unwrap_or(0))),
        })
    }
}

/// Rewrites the results file at `real_path` (symbolic links resolved) to `header` and
/// this run's rows ([`Ours`]), sorted by `_row` (rows of one number keep their order),
/// then the records at `kept_before`, atomically, keeping the file's mode. Holds 24 bytes
/// per row that moves: where it starts in the file, and its number and name beside its
/// place. With `always` false, a file already in order is left as it is.
pub(crate) fn in_input_order(
    real_path: &std::path::Path,
    header: &ByteRecord,
    ours: Ours<'_>,
    kept_before: &[u64],
    layout: Layout,
    always: bool,
) -> std::io::Result<()> {
    let Ours {
        from,
        in_place,
        prefix,
    } = ours;
    let file = std::fs::File::open(real_path)?;
    let end = file.metadata()?.len();
    let start = match prefix {
        Some(_) => from,
        None => in_place.map_or(from, |prior| prior.rows_from.min(from)),
    };
    let Places {
        mut starts,
        mut order,
        names,
        first_appended,
    } = rows_from(&file, start, header, layout, (from, in_place))?;
    starts.push(end);
    let name = |place: u32| match place.checked_sub(first_appended) {
        Some(i) => names[i as usize],
        None => 0,
    };
    // Already one row per number, in order: nothing to do for a file this run created.
    if !always && order.windows(2).all(|pair| pair[0].0 < pair[1].0) {
        return Ok(());
    }
    // By number, then place: as a stable sort would, without its buffer.
    order.sort_unstable();
    // A row recorded twice (in flight, then final) keeps its last record: the same
    // number and name. Rows of one number with other names (a retry of a file that keeps
    // records of names an input lost) are different rows.
    order.dedup_by(|later, earlier| {
        let same = later.0 == earlier.0 && name(later.1) == name(earlier.1) && name(later.1) != 0;
        if same {
            *earlier = *later;
        }
        same
    });
    // The rows appended come after those kept in place: they move, and nothing else does.
    let prefix = match prefix {
        Some((rows_from, last)) if order.first().is_none_or(|r| u64::from(r.0) > last) => {
            Some((rows_from, from))
        }
        Some(_) => {
            let ours = Ours {
                prefix: None,
                ..ours
            };
            return in_input_order(real_path, header, ours, kept_before, layout, always);
        }
        None => None,
    };
    let kept = record_spans(&file, kept_before, layout.delimiter)?;
    rewrite(real_path, |out| {
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
        if layout.bom {
            out.write_all(BOM)?;
        }
        let mut csv = layout.writer(&mut out);
        csv.write_byte_record(header)?;
        csv.flush()?;
        drop(csv);
        let mut bytes = Vec::new();
        let pieces = order.iter().map(|&(row, place)| {
            let (start, end) = (starts[place as usize], starts[place as usize + 1]);
            (start, end, (start < from).then_some(row))
        });
        let prefix = prefix.map(|(start, end)| (start, end, None));
        let kept = kept.iter().map(|&(start, end)| (start, end, None));
        for (start, end, row) in prefix.into_iter().chain(pieces).chain(kept) {
            copy(&file, &mut out, (start, end), row, layout, &mut bytes)?;
        }
        out.flush()
    })
}

/// Copies the bytes from `start` to `end` of `file` into `out`, a piece at a time (the
/// rows kept in place may be most of the file). With `row`, they are one record kept in
/// place, whose `_row` (first, written as digits) becomes `row`, and which ends with the
/// line end of `layout` (and no blank line after it).
fn copy(
    file: &File,
    out: &mut impl Write,
    (mut start, end): (u64, u64),
    row: Option<u32>,
    layout: Layout,
    bytes: &mut Vec<u8>,
) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    if let Some(row) = row {
        bytes.resize((end - start) as usize, 0);
        file.read_exact_at(bytes, start)?;
        // The record alone, without the line end and whatever blank lines follow it.
        let record_ends = bytes.len()
            - bytes
                .iter()
                .rev()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
        let number_ends = bytes.iter().position(|b| *b == layout.delimiter);
        out.write_all(row.to_string().as_bytes())?;
        out.write_all(&bytes[number_ends.unwrap_or(record_ends).min(record_ends)..record_ends])?;
        return out.write_all(if layout.crlf { b"\r\n" } else { b"\n" });
    }
    while start < end {
        bytes.resize((end - start).min(COPY_PIECE) as usize, 0);
        file.read_exact_at(bytes, start)?;
        out.write_all(bytes)?;
        start += bytes.len() as u64;
    }
    Ok(())
}

/// Where each record from byte `start` on starts, in file order (`starts`); and, of those
/// that are this run's (from byte `from` on, and before it those `in_place` says), the
/// number and the place in that order (`order`). A number past u32 (a hand-edited
/// `_row`, or none) sorts last. Of the rows appended (from place `first_appended` on), the
/// name too (a hash of it; 0 without one): a row recorded in flight, then final, is two
/// records of one number and name. 12 bytes per record kept in place, 20 per row appended.
struct Places {
    starts: Vec<u64>,
    order: Vec<(u32, u32)>,
    names: Vec<u64>,
    first_appended: u32,
}

fn rows_from(
    file: &File,
    start: u64,
    header: &ByteRecord,
    layout: Layout,
    (from, in_place): (u64, Option<&PriorResults>),
) -> std::io::Result<Places> {
    let mut reading = file.try_clone()?;
    reading.seek(SeekFrom::Start(start))?;
    let mut lines = CsvLines::at(reading, start).with_delimiter(Some(layout.delimiter));
    lines.width = Some(header.len());
    let columns = ResultColumns::find(header).ok();
    let hasher = std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default();
    let mut places = Places {
        starts: Vec::new(),
        order: Vec::new(),
        names: Vec::new(),
        first_appended: u32::MAX,
    };
    let (mut record, mut near) = (ByteRecord::new(), 0);
    while lines.read(&mut record)?.is_some() {
        let place = u32::try_from(places.starts.len()).map_err(std::io::Error::other)?;
        let at = record.position().map_or(from, |p| p.byte());
        places.starts.push(at);
        let row = match (at < from, in_place.zip(columns.as_ref())) {
            (true, Some((prior, c))) => {
                let identity = (c.identity(&record), c.row(&record));
                match prior.kept_in_place(identity, at, &mut near) {
                    Some(row) => Some(row),
                    None => continue, // superseded, or not in this input: not one of its rows
                }
            }
            (true, None) => continue,
            (false, _) => std::str::from_utf8(&record[0])
                .ok()
                .and_then(|r| r.parse().ok()),
        };
        if at >= from {
            places.first_appended = places.first_appended.min(place);
            let name = columns.as_ref().and_then(|c| c.name(&record));
            places
                .names
                .push(name.map_or(0, |name| hasher.hash_one(name) | 1));
        }
        places.order.push((row.unwrap_or(u32::MAX), place));
    }
    Ok(places)
}

/// Where each record that starts at one of `offsets` (ascending) ends: one pass over the
/// file from the first of them.
fn record_spans(file: &File, offsets: &[u64], delimiter: u8) -> std::io::Result<Vec<(u64, u64)>> {
    let mut spans = Vec::with_capacity(offsets.len());
    let Some(&first) = offsets.first() else {
        return Ok(spans);
    };
    let mut reading = file.try_clone()?;
    reading.seek(SeekFrom::Start(first))?;
    let mut lines =
        CsvLines::at(std::io::BufReader::new(reading), first).with_delimiter(Some(delimiter));
    let mut record = ByteRecord::new();
    let mut wanted = offsets.iter().copied().peekable();
    while wanted.peek().is_some() && lines.read(&mut record)?.is_some() {
        let start = record.position().map_or(u64::MAX, |p| p.byte());
        // An offset no record starts at (none should be) is passed over.
        while wanted.next_if(|&w| w < start).is_some() {}
        if wanted.next_if_eq(&start).is_some() {
            let end = lines.next_offset().ok_or_else(|| {
                std::io::Error::other(format!("no record ends after byte {start}"))
            })?;
            spans.push((start, end));
        }
    }
    Ok(spans)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::model::Shard;

    fn write(contents: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(contents.as_bytes()).unwrap();
        file
    }

    const HEADER: &str = "_row,_status,_error_code,_error_message,_http_status,_attempts,_latency_ms,_finished_at,Name,team\n";

    #[test]
    fn a_file_from_before_targets_is_upgraded_in_place() {
        let file = write(&format!(
            "{HEADER}1,created,,,200,1,3,t,a,ops\n2,invalid,MISSING_NAME,x,,0,,t,,ops\n"
        ));
        let prior = PriorResults::scan(file.path(), "x", Shard::ALL)
            .unwrap()
            .unwrap();
        assert!(prior.columns.is_legacy());
        assert!(prior.get(Some("a"), 0).unwrap().success, "no target is any");
        upgrade_legacy(&prior, file.path(), Operation::Create).unwrap();
        assert_eq!(
            std::fs::read_to_string(file.path()).unwrap(),
            "_row,_status,_error_code,_error_message,_http_status,_attempts,_latency_ms,_finished_at,_target,_operation,Name,team\n1,created,,,200,1,3,t,,create,a,ops\n2,invalid,MISSING_NAME,x,,0,,t,,create,,ops\n"
        );
        let prior = PriorResults::scan(file.path(), "x", Shard::ALL)
            .unwrap()
            .unwrap();
        assert!(!prior.columns.is_legacy());
        assert!(prior.get(Some("a"), 0).unwrap().success);
    }

    #[test]
    fn an_upgrade_reads_each_rows_operation_and_writes_formulas_as_text() {
        let file = write(&format!(
            "{HEADER}1,deleted,,,200,1,3,t,a,ops\n2,failed,HTTP_500,delete: boom,500,5,9,t,b,=cmd\n3,updated,,,200,1,3,t,c,\n"
        ));
        let prior = PriorResults::scan(file.path(), "x", Shard::ALL)
            .unwrap()
            .unwrap();
        upgrade_legacy(&prior, file.path(), Operation::Update).unwrap();
        let text = std::fs::read_to_string(file.path()).unwrap();
        let rows: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(
            rows,
            [
                "1,deleted,,,200,1,3,t,,delete,a,ops",
                "2,failed,HTTP_500,delete: boom,500,5,9,t,,delete,b,'=cmd",
                "3,updated,,,200,1,3,t,,update,c,",
            ]
        );
        let prior = PriorResults::scan(file.path(), "x", Shard::ALL)
            .unwrap()
            .unwrap();
        assert!(prior.columns.has_operation() && prior.columns.in_place());
    }
}
