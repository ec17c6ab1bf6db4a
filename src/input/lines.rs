//! CSV records read a physical line at a time, so that a quote left open is caught on the
//! line it opens: that one row is malformed, and the rows after it are read as rows, where
//! a plain CSV reader would fold every line up to the next quote into one field.
//!
//! The parsing itself is `csv_core`'s; this only decides which lines make a record, and
//! which delimiter separates fields: the one given, else the one the first line uses.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};

use csv::ByteRecord;

/// What a record read is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A whole record (it may span lines, inside a quoted field).
    Whole,
    /// A line whose quote is never closed: the record holds its fields read as if the
    /// quote closed at the line's end, and the lines after it are read on their own.
    OpenQuote,
}

/// One physical line and where it starts.
struct Line {
    bytes: Vec<u8>,
    number: u64,
    byte: u64,
}

/// Reads CSV records line by line (see the module's documentation).
pub struct CsvLines<R> {
    input: BufReader<R>,
    core: csv_core::Reader,
    /// The field separator; `None` until the first line shows it.
    delimiter: Option<u8>,
    /// Lines taken back after an open quote, to be read again.
    pending: VecDeque<Line>,
    /// Number and byte offset of the next line `input` gives.
    next_number: u64,
    next_byte: u64,
    /// Fields a record spanning lines must have to be taken as one: the header's, once
    /// known. A record that spans lines with another count is an open quote.
    pub width: Option<usize>,
    records: u64,
    /// The lines of the record being read, and where each starts (kept between records
    /// only to spare allocations).
    raw: Vec<u8>,
    lines: Vec<(usize, u64, u64)>,
    output: Vec<u8>,
    ends: Vec<usize>,
}

impl<R: Read> CsvLines<R> {
    /// Reads `input` from its start (a UTF-8 byte-order mark is skipped).
    pub fn new(input: R) -> CsvLines<R> {
        Self::at(input, 0)
    }

    /// Reads `input`, which starts at byte `byte` of its file (for byte offsets).
    pub fn at(input: R, byte: u64) -> CsvLines<R> {
        CsvLines {
            input: BufReader::with_capacity(64 * 1024, input),
            core: csv_core::Reader::new(),
            delimiter: None,
            pending: VecDeque::new(),
            next_number: 1,
            next_byte: byte,
            width: None,
            records: 0,
            raw: Vec::new(),
            lines: Vec::new(),
            output: vec![0; 1024],
            ends: vec![0; 32],
        }
    }

    /// Separates fields with `delimiter`; `None` takes the one the first line uses (see
    /// [`sniff`]).
    pub fn with_delimiter(mut self, delimiter: Option<u8>) -> CsvLines<R> {
        self.set_delimiter(delimiter);
        self
    }

    fn set_delimiter(&mut self, delimiter: Option<u8>) {
        self.delimiter = delimiter;
        if let Some(delimiter) = delimiter {
            self.core = csv_core::ReaderBuilder::new().delimiter(delimiter).build();
        }
    }

    /// The field separator: the one given, or the one the first line uses (`,` before
    /// any line is read).
    pub fn delimiter(&self) -> u8 {
        self.delimiter.unwrap_or(b',')
    }

    /// Reads the next record into `record`, with its position (line, byte offset, record
    /// number); `None` at the end of the input. Blank lines are passed over, and so are
    /// records after the header whose cells are all empty (`"",""`, as some writers quote
    /// every cell): they hold no row.
    pub fn read(&mut self, record: &mut ByteRecord) -> std::io::Result<Option<Kind>> {
        let (mut raw, mut lines) = (
            std::mem::take(&mut self.raw),
            std::mem::take(&mut self.lines),
        );
        let result = loop {
            lines.clear();
            let read = self.read_into(&mut raw, &mut lines, record);
            let empty = || record.iter().all(|cell| cell.trim_ascii().is_empty());
            match read {
                Ok(Some(Kind::Whole)) if self.records > 1 && empty() => self.records -= 1,
                read => break read,
            }
        };
        (self.raw, self.lines) = (raw, lines);
        result
    }

    /// `lines`: where each line of the record starts in `raw`, with its number and offset.
    fn read_into(
        &mut self,
        raw: &mut Vec<u8>,
        lines: &mut Vec<(usize, u64, u64)>,
        record: &mut ByteRecord,
    ) -> std::io::Result<Option<Kind>> {
        let (number, byte) = loop {
            raw.clear();
            match self.line(raw)? {
                None => return Ok(None),
                Some(_) if raw.iter().all(|b| matches!(b, b'\r' | b'\n')) => {}
                // Excel's hint line before the header: `sep=;`.
                Some(_) if self.records == 0 && sep_hint(raw).is_some() => {
                    if self.delimiter.is_none() {
                        self.set_delimiter(sep_hint(raw));
                    }
                }
                Some(start) => break start,
            }
        };
        lines.push((0, number, byte));
        if self.delimiter.is_none() {
            self.set_delimiter(Some(sniff(raw)));
        }
        let kind = loop {
            if self.parse(raw, record, false) {
                let spans_lines = lines.len() > 1;
                if spans_lines && self.width.is_some_and(|width| width != record.len()) {
                    break Kind::OpenQuote;
                }
                break Kind::Whole;
            }
            let start = raw.len();
            match self.line(raw)? {
                Some((number, byte)) => lines.push((start, number, byte)),
                None => break Kind::OpenQuote,
            }
        };
        if kind == Kind::OpenQuote {
            // The lines after the first are read again, on their own.
            let ends = lines.iter().skip(1).map(|l| l.0).chain([raw.len()]);
            let taken_back: Vec<Line> = lines
                .iter()
                .skip(1)
                .zip(ends.skip(1))
                .map(|(&(start, number, byte), end)| Line {
                    bytes: raw[start..end].to_vec(),
                    number,
                    byte,
                })
                .collect();
            for line in taken_back.into_iter().rev() {
                self.pending.push_front(line);
            }
            let first_end = lines.get(1).map_or(raw.len(), |l| l.0);
            let text = raw[..first_end].trim_ascii_end().to_vec();
            self.parse(&text, record, true);
        }
        self.records += 1;
        let mut position = csv::Position::new();
        position
            .set_byte(byte)
            .set_line(number)
            .set_record(self.records);
        record.set_position(Some(position));
        Ok(Some(kind))
    }

    /// The byte offset of the next record, when no line was taken back.
    pub fn next_offset(&self) -> Option<u64> {
        self.pending.is_empty().then_some(self.next_byte)
    }

    /// Appends the next physical line to `raw`, a taken-back one first; its number and
    /// byte offset, or `None` at the end.
    fn line(&mut self, raw: &mut Vec<u8>) -> std::io::Result<Option<(u64, u64)>> {
        if let Some(line) = self.pending.pop_front() {
            raw.extend_from_slice(&line.bytes);
            return Ok(Some((line.number, line.byte)));
        }
        let start = raw.len();
        let read = self.read_line(raw)?;
        if read == 0 {
            return Ok(None);
        }
        let (number, byte) = (self.next_number, self.next_byte);
        self.next_number += 1;
        self.next_byte += read as u64;
        if byte == 0 && raw[start..].starts_with(b"\xef\xbb\xbf") {
            raw.drain(start..start + 3);
        }
        Ok(Some((number, byte)))
    }

    /// Appends the input's next line to `raw`, its end included: `\n`, `\r\n`, or a `\r`
    /// alone (what Excel for Mac writes); the number of bytes read, 0 at the end.
    fn read_line(&mut self, raw: &mut Vec<u8>) -> std::io::Result<usize> {
        let (mut read, mut after_cr) = (0, false);
        loop {
            let buffer = self.input.fill_buf()?;
            if buffer.is_empty() {
                return Ok(read);
            }
            if after_cr {
                if buffer[0] == b'\n' {
                    raw.push(b'\n');
                    self.input.consume(1);
                    read += 1;
                }
                return Ok(read);
            }
            let end = buffer.iter().position(|&b| b == b'\n' || b == b'\r');
            let taken = end.map_or(buffer.len(), |end| end + 1);
            raw.extend_from_slice(&buffer[..taken]);
            let last = buffer[taken - 1];
            self.input.consume(taken);
            read += taken;
            match end {
                Some(_) if last == b'\r' => after_cr = true,
                Some(_) => return Ok(read),
                None => {}
            }
        }
    }

    /// Parses `raw` as one record; `false` if it ends inside a quoted field. `at_end`
    /// takes the end of `raw` as the end of the input, which closes an open quote.
    fn parse(&mut self, raw: &[u8], record: &mut ByteRecord, at_end: bool) -> bool {
        use csv_core::ReadRecordResult as Result;
        self.core.reset();
        let (mut input, mut out, mut end) = (raw, 0, 0);
        let mut line_end = !at_end && !raw.ends_with(b"\n") && !raw.ends_with(b"\r");
        loop {
            let (result, read, written, ended) =
                self.core
                    .read_record(input, &mut self.output[out..], &mut self.ends[end..]);
            input = &input[read..];
            out += written;
            end += ended;
            match result {
                Result::Record => break,
                Result::OutputFull => self.output.resize(self.output.len() * 2, 0),
                Result::OutputEndsFull => self.ends.resize(self.ends.len() * 2, 0),
                // A last line without a line break still ends its record, unless a quote
                // is open; at the end of the input, a quote closes.
                Result::InputEmpty if line_end => {
                    line_end = false;
                    input = b"\n";
                }
                Result::InputEmpty if at_end => input = b"",
                Result::InputEmpty | Result::End => return false,
            }
        }
        record.clear();
        let mut start = 0;
        for &field_end in &self.ends[..end] {
            record.push_field(&self.output[start..field_end]);
            start = field_end;
        }
        true
    }
}

/// The delimiter named by a line `sep=C`, which Excel reads (and some tools write) before
/// the header.
fn sep_hint(line: &[u8]) -> Option<u8> {
    // Only the line end is trimmed: the delimiter may be a tab.
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    match line.strip_suffix(b"\r").unwrap_or(line) {
        [b's', b'e', b'p', b'=', delimiter] => Some(*delimiter),
        _ => None,
    }
}

/// The delimiter a header line uses: whichever of `,` `;` and tab it has most of outside
/// quotes (`,` on a tie, or when it has none: a single column).
pub fn sniff(line: &[u8]) -> u8 {
    let (mut counts, mut quoted) = ([0usize; 3], false);
    for &byte in line {
        match byte {
            b'"' => quoted = !quoted,
            b',' if !quoted => counts[0] += 1,
            b';' if !quoted => counts[1] += 1,
            b'\t' if !quoted => counts[2] += 1,
            _ => {}
        }
    }
    let candidates = [b',', b';', b'\t'];
    let most = (0..3).fold(0, |best, i| if counts[i] > counts[best] { i } else { best });
    candidates[most]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &str, width: Option<usize>) -> Vec<(Kind, u64, Vec<String>)> {
        let mut lines = CsvLines::new(text.as_bytes());
        lines.width = width;
        let mut record = ByteRecord::new();
        let mut all = Vec::new();
        while let Some(kind) = lines.read(&mut record).unwrap() {
            let fields = record
                .iter()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect();
            all.push((kind, record.position().unwrap().line(), fields));
        }
        all
    }

    #[test]
    fn records_may_span_lines_inside_quotes() {
        let all = read_all("a,b\n\"x\ny\",2\n\n3,\"q\"\"uote\"\r\n4,5", Some(2));
        assert_eq!(
            all,
            [
                (Kind::Whole, 1, vec!["a".into(), "b".into()]),
                (Kind::Whole, 2, vec!["x\ny".into(), "2".into()]),
                (Kind::Whole, 5, vec!["3".into(), "q\"uote".into()]),
                (Kind::Whole, 6, vec!["4".into(), "5".into()]),
            ]
        );
    }

    #[test]
    fn an_open_quote_spoils_only_its_own_line() {
        let all = read_all("a,b,c\n1,\"2,3\n4,5,6\n7,8,9\n", Some(3));
        assert_eq!(all.len(), 4, "{all:?}");
        assert_eq!(all[1].0, Kind::OpenQuote);
        assert_eq!(all[1].1, 2);
        assert_eq!(all[1].2, ["1", "2,3"]);
        assert_eq!(
            all[2],
            (Kind::Whole, 3, vec!["4".into(), "5".into(), "6".into()])
        );
        assert_eq!(all[3].1, 4);
    }

    #[test]
    fn an_open_quote_on_the_last_line_ends_there() {
        let all = read_all("a,b\n1,\"2\n", Some(2));
        assert_eq!(all[1].0, Kind::OpenQuote);
        assert_eq!(all[1].2, ["1", "2"]);
    }

    #[test]
    fn the_delimiter_is_the_one_the_header_uses() {
        assert_eq!(sniff(b"name,connectionType\n"), b',');
        assert_eq!(sniff(b"Name;Connection Type;Datasource Name\r\n"), b';');
        assert_eq!(sniff(b"name\tconnectionType\r\n"), b'\t');
        assert_eq!(sniff(b"name\n"), b',');
        assert_eq!(
            sniff(b"name;\"a,b,c\";x\n"),
            b';',
            "quoted commas do not count"
        );
        assert_eq!(sniff(b"name;notes, misc;x\n"), b';');
        let all = read_all("Name;Type\r\n\"a;b\";c\r\n", None);
        assert_eq!(all[1].2, ["a;b", "c"]);
    }

    #[test]
    fn excels_sep_line_names_the_delimiter() {
        let all = read_all("sep=;\r\nname;x,y\r\na;1,2\r\n", None);
        assert_eq!(all[0], (Kind::Whole, 2, vec!["name".into(), "x,y".into()]));
        assert_eq!(all[1].2, ["a", "1,2"]);
        let tabs = read_all("sep=\t\nname\tx,y\n", None);
        assert_eq!(tabs[0].2, ["name", "x,y"]);
    }

    #[test]
    fn a_given_delimiter_wins_over_the_header() {
        let mut lines = CsvLines::new("a;b,c\n1;2,3\n".as_bytes()).with_delimiter(Some(b','));
        let mut record = ByteRecord::new();
        lines.read(&mut record).unwrap();
        assert_eq!(record.len(), 2);
        assert_eq!(lines.delimiter(), b',');
    }

    #[test]
    fn line_numbers_are_the_same_for_any_line_end() {
        for end in ["\n", "\r\n", "\r"] {
            let text = ["name,x", "a,1", "\"b", "c\",2", "", "d,3"].join(end) + end;
            let lines: Vec<u64> = read_all(&text, Some(2)).iter().map(|r| r.1).collect();
            assert_eq!(lines, [1, 2, 3, 6], "line end {end:?}");
        }
    }

    #[test]
    fn byte_offsets_point_at_each_record() {
        let text = "\u{feff}a,b\n1,2\n\"x\ny\",3\n";
        let mut lines = CsvLines::new(text.as_bytes());
        let mut record = ByteRecord::new();
        let mut offsets = Vec::new();
        while lines.read(&mut record).unwrap().is_some() {
            offsets.push(record.position().unwrap().byte());
        }
        assert_eq!(offsets, [0, 7, 11]);
    }
}
