//! Rewriting a results file whole, atomically (a temporary file beside it, then a rename):
//! into input order at the end of a job, and into today's columns before a job continues
//! an older file.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use csv::ByteRecord;

use super::layout::{BOM, Layout};
use super::prior::PriorResults;
use crate::input::lines::CsvLines;
use crate::model::RESULT_COLUMNS;
use crate::report::signals;

/// Rewrites a results file into today's columns, in dbprov's order: a file written before
/// `_target` was recorded (an empty `_target`, which counts as any target), or one whose
/// columns a spreadsheet moved. Atomically (see [`rewrite`]), keeping its delimiter and
/// byte-order mark.
pub fn upgrade_legacy(prior: &PriorResults, real_path: &Path) -> std::io::Result<()> {
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
            upgraded.extend(&prior.columns.results(&record));
            upgraded.extend(carried.iter().map(|&i| &record[i]));
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

/// Rewrites the results file at `real_path` (symbolic links resolved) to `header` and
/// the rows from byte `from` on, sorted by `_row` (rows of one number keep their order),
/// atomically, keeping the file's mode. Holds 16 bytes per row: where it starts in the
/// file, and its number beside its place. With `always` false, a file already in order is
/// left as it is.
pub(crate) fn in_input_order(
    real_path: &std::path::Path,
    header: &ByteRecord,
    from: u64,
    layout: Layout,
    always: bool,
) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(real_path)?;
    let end = file.metadata()?.len();
    let mut reading = file.try_clone()?;
    reading.seek(SeekFrom::Start(from))?;
    let mut lines = CsvLines::at(reading, from).with_delimiter(Some(layout.delimiter));
    lines.width = Some(header.len());
    // Where each row starts, in file order, then where the last one ends; and each row's
    // number with its place in that order. A number past u32 (a hand-edited `_row`, or
    // none) sorts last.
    let (mut starts, mut order) = (Vec::<u64>::new(), Vec::<(u32, u32)>::new());
    let mut record = ByteRecord::new();
    while lines.read(&mut record)?.is_some() {
        let place = u32::try_from(starts.len()).map_err(std::io::Error::other)?;
        starts.push(record.position().map_or(from, |p| p.byte()));
        let row = std::str::from_utf8(&record[0])
            .ok()
            .and_then(|r| r.parse().ok());
        order.push((row.unwrap_or(u32::MAX), place));
    }
    starts.push(end);
    if !always && order.is_sorted_by_key(|r| r.0) {
        return Ok(());
    }
    order.sort_by_key(|r| r.0);
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
        for &(_, place) in &order {
            let (start, end) = (starts[place as usize], starts[place as usize + 1]);
            bytes.resize((end - start) as usize, 0);
            file.read_exact_at(&mut bytes, start)?;
            out.write_all(&bytes)?;
        }
        out.flush()
    })
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
    fn a_file_from_before_targets_is_upgraded_in_place() {
        let file = write(&format!(
            "{HEADER}1,created,,,200,1,3,t,a,ops\n2,invalid,MISSING_NAME,x,,0,,t,,ops\n"
        ));
        let prior = PriorResults::scan(file.path(), "x").unwrap().unwrap();
        assert!(prior.columns.is_legacy());
        assert!(prior.get(Some("a"), 0).unwrap().success, "no target is any");
        upgrade_legacy(&prior, file.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(file.path()).unwrap(),
            "_row,_status,_error_code,_error_message,_http_status,_attempts,_latency_ms,_finished_at,_target,Name,team\n1,created,,,200,1,3,t,,a,ops\n2,invalid,MISSING_NAME,x,,0,,t,,,ops\n"
        );
        let prior = PriorResults::scan(file.path(), "x").unwrap().unwrap();
        assert!(!prior.columns.is_legacy());
        assert!(prior.get(Some("a"), 0).unwrap().success);
    }
}
