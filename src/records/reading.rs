//! A results file opened for reading: its header read and checked, and where its last
//! whole line ends.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use csv::ByteRecord;

use super::format::ResultColumns;
use crate::input::lines::CsvLines;

/// Why earlier results cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// The file cannot be read.
    #[error("cannot read the earlier results {path}")]
    Io {
        /// The results file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a results file.
    #[error("{path} is not a dbprov results file: its header lacks {missing}")]
    NotResults {
        /// The file.
        path: String,
        /// The missing column.
        missing: String,
    },
    /// The file is not UTF-8: re-saved by a spreadsheet in another encoding.
    #[error(
        "{path} is not UTF-8 ({what}): a spreadsheet saved it in another encoding. dbprov reads results files in UTF-8 only: save it as \"CSV UTF-8\", or use the results file dbprov wrote"
    )]
    NotUtf8 {
        /// The file.
        path: String,
        /// Where, or what it is instead.
        what: String,
    },
    /// A cell that dbprov reads back does not hold what it wrote.
    #[error(
        "{path}, line {line}: {column} is '{value}', which dbprov cannot read back ({expected}). A spreadsheet may have changed the column: restore it from the results file dbprov wrote"
    )]
    Unreadable {
        /// The file.
        path: String,
        /// The line of the row.
        line: u64,
        /// The column.
        column: &'static str,
        /// The cell.
        value: String,
        /// What the column holds.
        expected: &'static str,
    },
}

/// A results file opened for reading, its header read and checked.
pub(super) struct Opened {
    pub(super) lines: CsvLines<std::io::Take<File>>,
    pub(super) header: ByteRecord,
    pub(super) columns: ResultColumns,
    /// It starts with a UTF-8 byte-order mark.
    pub(super) bom: bool,
    pub(super) file_len: u64,
    /// Its length up to its last line break.
    pub(super) whole_len: u64,
}

pub(super) fn io_error(path: &Path) -> impl Fn(std::io::Error) -> ResumeError + '_ {
    move |source| ResumeError::Io {
        path: path.display().to_string(),
        source,
    }
}

pub(super) fn not_utf8(path: &Path, what: String) -> ResumeError {
    ResumeError::NotUtf8 {
        path: path.display().to_string(),
        what,
    }
}

/// Opens a results file and reads its header: `None` if it holds none (empty, or a torn
/// header); refused if it is not UTF-8 or not a results file.
pub(super) fn open(path: &Path) -> Result<Option<Opened>, ResumeError> {
    let io = io_error(path);
    let mut file = File::open(path).map_err(&io)?;
    let file_len = file.metadata().map_err(&io)?.len();
    let whole_len = whole_lines_len(&mut file).map_err(&io)?;
    if whole_len == 0 {
        return Ok(None);
    }
    file.seek(SeekFrom::Start(0)).map_err(&io)?;
    let mut start = [0; 3];
    let read = file.read(&mut start).map_err(&io)?;
    let start = &start[..read];
    let bom = start == b"\xef\xbb\xbf";
    if start.starts_with(b"\xff\xfe") || start.starts_with(b"\xfe\xff") {
        return Err(not_utf8(
            path,
            "it is UTF-16, Excel's \"Unicode Text\"".into(),
        ));
    }
    file.seek(SeekFrom::Start(0)).map_err(&io)?;
    let mut lines = CsvLines::new(file.try_clone().map_err(&io)?.take(file_len));
    let mut header = ByteRecord::new();
    if lines.read(&mut header).map_err(&io)?.is_none() {
        return Ok(None);
    }
    if let Err(error) = std::str::from_utf8(header.as_slice()) {
        let byte = header.as_slice()[error.valid_up_to()];
        return Err(not_utf8(
            path,
            format!("its header has the byte 0x{byte:02X}"),
        ));
    }
    lines.width = Some(header.len());
    let columns = ResultColumns::find(&header).map_err(|missing| ResumeError::NotResults {
        path: path.display().to_string(),
        missing,
    })?;
    Ok(Some(Opened {
        lines,
        header,
        columns,
        bom,
        file_len,
        whole_len,
    }))
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
        // A `\r` alone ends a line too (what Excel for Mac writes).
        if let Some(i) = buf.iter().rposition(|&b| b == b'\n' || b == b'\r') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Whether the line before byte `rows_from` of the file (its header) ends with CRLF.
pub(super) fn header_ends_in_crlf(path: &Path, rows_from: u64) -> Result<bool, ResumeError> {
    use std::os::unix::fs::FileExt;
    let mut end = [0u8; 2];
    let file = std::fs::File::open(path).map_err(io_error(path))?;
    Ok(rows_from >= 2 && file.read_exact_at(&mut end, rows_from - 2).is_ok() && &end == b"\r\n")
}
