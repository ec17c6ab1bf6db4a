//! CSV → rows, one row at a time: header mapping, per-row validation and duplicate
//! detection. Nothing here holds more than one row; the only state that grows is a set of
//! 64-bit name hashes (duplicate detection).

use std::io::Read;

use csv::ByteRecord;

use super::decode::{self, CsvFormat, DecodeError, Decoded};
use super::header::{Header, HeaderError, parse_header};
use super::lines::{CsvLines, Kind};
use super::names::NamesSeen;
use super::row::{DUPLICATE_IN_INPUT, RowError, RowRules, line_text, name_cell, parse_row};
use super::shard::shard_of;
use crate::api::RowRequest;
use crate::api::workspace::Field;
use crate::model::cells::unescape;
use crate::model::{Earlier, Input, Prior, Shard};

/// Why the input cannot be read at all. Each of these stops the job before any request.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file cannot be opened.
    #[error("cannot open {input}")]
    Unreadable {
        /// The input, as given.
        input: String,
        /// Why.
        source: std::io::Error,
    },
    /// The header cannot be used.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// The text cannot be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Reading failed midway (a disk error, not a malformed row).
    #[error("cannot read {input} after line {line}")]
    Read {
        /// The input, as given.
        input: String,
        /// The last line read.
        line: u64,
        /// Why.
        source: std::io::Error,
    },
}

/// One data row of the input.
#[derive(Debug, Clone)]
pub struct InputRow {
    /// 1-based number among the data rows (the header is not counted).
    pub row: u64,
    /// Line in the file where the record starts.
    pub line: u64,
    /// The name cell, trimmed, when the row has one (for logs).
    pub name: Option<String>,
    /// The carried cells, verbatim, one per carried column.
    pub cells: ByteRecord,
    /// The request to send, or why there is none.
    pub request: Result<RowRequest, RowError>,
    /// A hash of the values the request is made of (`row::values`); 0 for a row that
    /// sends only its name, or has no request.
    pub values: u64,
    /// `retry`: the outcome the results file records for the row.
    pub earlier: Option<Earlier>,
    /// What the results file the job continues recorded last of the row's name (see
    /// [`InputReader::with_logbook`]).
    pub logged: Option<Prior>,
}

/// A results file's cells as the values they hold: a formula's `'` taken off (see
/// `model::cells`), the record's place kept.
/// A row whose extra or missing cells are only empty trailing ones, read as if it had the
/// header's `width` (a spreadsheet's ragged export). Other extra cells stay: the row is
/// malformed. (A results file's short line is a write cut short, and is not mended.)
fn fit_to_width(record: &mut ByteRecord, width: usize) {
    let extra_empty = record
        .iter()
        .skip(width)
        .all(|cell| cell.trim_ascii().is_empty());
    if record.len() > width && extra_empty {
        record.truncate(width);
    }
    while record.len() < width {
        record.push_field(b"");
    }
}

fn unescape_cells(record: &mut ByteRecord) {
    if !record.iter().any(|cell| cell.first() == Some(&b'\'')) {
        return;
    }
    let position = record.position().cloned();
    let unescaped: ByteRecord = record.iter().map(unescape).collect();
    *record = unescaped;
    record.set_position(position);
}

/// A results file read as input (`retry`, `rollback`): the ledger, which knows the file,
/// says which of its records are input rows, under which number, and what it recorded of
/// each. Implemented in `records`; a tenant CSV has none.
pub trait Recorded: Send {
    /// The record at byte `offset` (`whole` when it has the header's width): `None` to pass
    /// it over (a later record of its name supersedes it, or it is not one to read).
    fn admit(&self, record: &ByteRecord, offset: u64, whole: bool) -> Option<Admitted>;

    /// Whether a record refused as a second row of its name stays refused: the first row
    /// of that name is still in the file, whichever of the two comes first in it.
    fn still_duplicate(&self, record: &ByteRecord, name: &str) -> bool;
}

/// The results file a job continues, in which the reader looks each row up once as it
/// reads it: what the file recorded last of the row's name (for the job), and whether an
/// earlier row of this input had the name (so that duplicates need no set of their own
/// for the names the file has). Implemented in `records`.
pub trait Logbook: Send + Sync {
    /// What the file recorded last of the identity (the name, or `row` without one).
    /// `near` is where the last one was found: rows mostly come in the file's order.
    fn look_up(&self, name: Option<&str>, row: u64, near: &mut usize) -> Option<Prior>;

    /// Notes that a row of the input has the name of `prior` (one `look_up` gave); says
    /// whether it is the first to.
    fn first_read(&self, prior: &Prior) -> bool;
}

/// A record of a results file that is an input row.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// Its `_row`, when the record has one.
    pub row: Option<u64>,
    /// What the file recorded of it, when that is to be kept or built on.
    pub earlier: Option<Earlier>,
    /// Why the row stays refused whatever its cells now say: a malformed row's cells are
    /// what was left of its line (the message holds it whole).
    pub refused: Option<String>,
}

/// Reads an input CSV one row at a time.
pub struct InputReader {
    lines: CsvLines<Box<dyn Read + Send>>,
    /// What the record just read is.
    kind: Kind,
    header: Header,
    source: String,
    record: ByteRecord,
    rows: u64,
    /// The names of this input the results file does not have.
    names_seen: NamesSeen,
    /// `retry`, `rollback`: the input is a results file, and the ledger says which of its
    /// records are rows.
    recorded: Option<Box<dyn Recorded>>,
    /// The results file the job continues, if any, and where in it the last row was.
    logbook: Option<std::sync::Arc<dyn Logbook>>,
    near: usize,
    /// Only rows of this shard are read.
    shard: Shard,
    /// Only the name is read and checked (a delete); names are exact (update, delete);
    /// the name cell carried is the name as sent (a rollback of a run that trimmed it).
    names_only: bool,
    exact_names: bool,
    names_as_sent: bool,
    /// What the text was decoded from.
    decoded: Decoded,
}

impl InputReader {
    /// Opens the input and reads its header.
    pub fn open(input: &Input, format: CsvFormat) -> Result<InputReader, InputError> {
        let source = input.to_string();
        let reader: Box<dyn Read + Send> = match input {
            Input::Stdin => Box::new(std::io::stdin()),
            Input::File(path) => {
                Box::new(
                    std::fs::File::open(path).map_err(|e| InputError::Unreadable {
                        input: source.clone(),
                        source: e,
                    })?,
                )
            }
        };
        Self::from_reader(reader, source, format)
    }

    /// Reads CSV from any reader; `source` names it in messages.
    pub fn from_reader(
        reader: Box<dyn Read + Send>,
        source: String,
        format: CsvFormat,
    ) -> Result<InputReader, InputError> {
        let (reader, decoded) = decode::utf8_reader(reader, format.encoding, &source)?;
        let mut lines = CsvLines::new(reader).with_delimiter(format.delimiter);
        let mut raw = ByteRecord::new();
        let read = lines.read(&mut raw).map_err(|e| InputError::Read {
            input: source.clone(),
            line: 0,
            source: e,
        })?;
        if read.is_none() {
            return Err(HeaderError::Empty { input: source }.into());
        }
        let header = parse_header(&raw, &source, lines.delimiter())?;
        lines.width = Some(header.width);
        Ok(InputReader {
            lines,
            kind: Kind::Whole,
            header,
            source,
            record: ByteRecord::new(),
            rows: 0,
            names_seen: NamesSeen::default(),
            recorded: None,
            logbook: None,
            near: 0,
            shard: Shard::ALL,
            names_only: false,
            exact_names: false,
            names_as_sent: false,
            decoded,
        })
    }

    /// Looks each row up in the results file the job continues (see [`Logbook`]).
    pub fn with_logbook(mut self, logbook: Option<std::sync::Arc<dyn Logbook>>) -> InputReader {
        self.logbook = logbook;
        self
    }

    /// Reads only the rows of `shard`; the others are passed over (their numbers stay
    /// taken, so `_row` still counts every data row of the input).
    pub fn with_shard(mut self, shard: Shard) -> InputReader {
        self.shard = shard;
        self
    }

    /// Reads and checks only each row's name: a delete needs nothing else.
    pub fn names_only(mut self, names_only: bool) -> InputReader {
        self.names_only = names_only;
        self
    }

    /// Takes each name as exactly the workspace's (`update`, `delete`): a name with
    /// spaces at its start or end is `INVALID_NAME`, not trimmed into another one.
    pub fn exact_names(mut self, exact_names: bool) -> InputReader {
        self.exact_names = exact_names;
        self.names_seen.exact |= exact_names;
        self
    }

    /// Carries each row's name cell as the name the row sends (trimmed), rather than as it
    /// was written: a rollback's record then names the workspace it deleted exactly, and a
    /// retry of it (which takes names exactly) deletes that one.
    pub fn names_as_sent(mut self, names_as_sent: bool) -> InputReader {
        self.names_as_sent = names_as_sent;
        self.names_seen.exact |= names_as_sent;
        self
    }

    /// Reads the input as a results file, whose rows `recorded` picks and numbers.
    pub fn with_recorded(mut self, recorded: Box<dyn Recorded>) -> InputReader {
        self.recorded = Some(recorded);
        self
    }

    /// The field separator: given, or the one the header line uses.
    pub fn delimiter(&self) -> u8 {
        self.lines.delimiter()
    }

    /// The input's columns.
    /// Whether the input is a spreadsheet's file (`;` between fields, an encoding other
    /// than UTF-8, or a UTF-8 byte-order mark): its results are written for a spreadsheet
    /// unless told otherwise.
    pub fn from_a_spreadsheet(&self) -> bool {
        self.lines.delimiter() == b';' || self.decoded != Decoded::Utf8 { marked: false }
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The next data row, or `None` at the end. Only I/O errors are errors: a malformed
    /// record is a row with `MALFORMED_ROW`.
    pub fn next_row(&mut self) -> Result<Option<InputRow>, InputError> {
        loop {
            match self.lines.read(&mut self.record) {
                Ok(None) => return Ok(None),
                Ok(Some(kind)) => self.kind = kind,
                Err(e) => {
                    return Err(InputError::Read {
                        input: self.source.clone(),
                        line: self.record.position().map_or(0, |p| p.line()),
                        source: e,
                    });
                }
            }
            self.rows += 1;
            if self.header.from_results {
                unescape_cells(&mut self.record);
            } else if self.kind == Kind::Whole {
                fit_to_width(&mut self.record, self.header.width);
            }
            if let Some(row) = self.current_row() {
                return Ok(Some(row));
            }
        }
    }

    /// The record just read as an input row; `None` if it is not one of this job's rows
    /// (another shard's, or one a later record of a results file supersedes).
    fn current_row(&mut self) -> Option<InputRow> {
        let position = self
            .record
            .position()
            .cloned()
            .unwrap_or_else(csv::Position::new);
        let line = position.line();
        let (row, earlier, refused) = self.admit(position.byte())?;
        if !self.in_shard(row) {
            return None;
        }
        let rules = RowRules {
            names_only: self.names_only,
            exact_names: self.exact_names,
            decoded: self.decoded,
            delimiter: self.lines.delimiter(),
        };
        let parsed = match self.kind {
            Kind::Whole => parse_row(&self.header, &self.record, line, rules),
            Kind::OpenQuote => super::row::Parsed {
                name: None,
                request: Err(RowError::new(
                    "MALFORMED_ROW",
                    format!(
                        "line {line}: a quote opens a field and is never closed; the lines after it are read as rows of their own; the line as read: {}",
                        line_text(&self.record, rules.delimiter)
                    ),
                )),
                values: 0,
            },
        };
        let logged = self.logbook.as_ref().and_then(|book| {
            let name = parsed.name.as_deref();
            book.look_up(name, row, &mut self.near).or_else(|| {
                // A name in another Unicode form than the file records it (decomposed
                // here, composed there) is the same name, for a command that creates.
                let name = name.filter(|name| !name.is_ascii() && !self.names_seen.exact)?;
                let nfc: String = unicode_normalization::UnicodeNormalization::nfc(name).collect();
                (nfc != name).then(|| book.look_up(Some(&nfc), row, &mut self.near))?
            })
        });
        let request = match refused {
            Some(message) => Err(RowError::new("MALFORMED_ROW", message)),
            None => {
                self.refuse_duplicate((line, row), parsed.name.as_deref(), logged, parsed.request)
            }
        };
        let cells = self.carried_cells(parsed.name.as_deref());
        Some(InputRow {
            row,
            line,
            name: parsed.name,
            cells,
            values: parsed.values,
            request,
            earlier,
            logged,
        })
    }

    /// The record's row number, what a results file read as input recorded of it, and
    /// why it stays refused if it does; `None` when the file's ledger passes it over.
    fn admit(&self, offset: u64) -> Option<(u64, Option<Earlier>, Option<String>)> {
        let Some(recorded) = &self.recorded else {
            return Some((self.rows, None, None));
        };
        // Only a retry reads a results file as a log; `run` given one just sends its rows.
        let whole = self.kind == Kind::Whole && self.record.len() == self.header.width;
        let admitted = recorded.admit(&self.record, offset, whole)?;
        let row = admitted.row.filter(|r| *r > 0).unwrap_or(self.rows);
        Some((row, admitted.earlier, admitted.refused))
    }

    /// Whether the row falls in this job's shard.
    fn in_shard(&self, row: u64) -> bool {
        if self.shard == Shard::ALL {
            return true;
        }
        let name = self
            .header
            .index(Field::Name)
            .and_then(|i| name_cell(&self.record, i));
        shard_of(name, row, self.shard.count) == self.shard.index
    }

    /// The carried cells, verbatim, except that bytes which are not UTF-8 become U+FFFD:
    /// the results file stays readable text, and the row says which column was broken.
    /// With [`InputReader::names_as_sent`], the name cell is `name`, as it was sent.
    fn carried_cells(&self, name: Option<&str>) -> ByteRecord {
        let record = &self.record;
        let name_column = self
            .header
            .index(Field::Name)
            .filter(|_| self.names_as_sent);
        let mut cells =
            ByteRecord::with_capacity(record.as_slice().len(), self.header.carried.len());
        for &i in &self.header.carried {
            match name {
                Some(name) if Some(i) == name_column => cells.push_field(name.as_bytes()),
                _ => cells.push_field(
                    String::from_utf8_lossy(record.get(i).unwrap_or_default()).as_bytes(),
                ),
            }
        }
        cells
    }

    /// A second row of a name is refused as such. In a results file read as input, a row
    /// refused so stays refused while the first row of its name is still in the file.
    fn refuse_duplicate(
        &mut self,
        (line, row): (u64, u64),
        name: Option<&str>,
        logged: Option<Prior>,
        request: Result<RowRequest, RowError>,
    ) -> Result<RowRequest, RowError> {
        let Some(name) = name else {
            return request;
        };
        // As written: quoted, so that spaces at either end show.
        let written = self
            .header
            .index(Field::Name)
            .and_then(|i| self.record.get(i))
            .map(|cell| String::from_utf8_lossy(cell).into_owned())
            .unwrap_or_else(|| name.to_owned());
        let duplicate = |first: Option<u32>| {
            let earlier = match first {
                Some(row) => format!("row {row}"),
                None => "an earlier row".to_owned(),
            };
            Err(RowError::new(
                DUPLICATE_IN_INPUT,
                format!(
                    "line {line}: name \"{written}\" repeats the name of {earlier} of the input; remove this row, or give it a name of its own"
                ),
            ))
        };
        if let Some(recorded) = &self.recorded
            && recorded.still_duplicate(&self.record, name)
        {
            return duplicate(None);
        }
        // A name taken exactly that is refused for its spaces is another name than the
        // same without them: it takes no name for the rows after it.
        let spaced = self.exact_names && matches!(&request, Err(e) if e.code == "INVALID_NAME");
        // A name the results file has is marked there; only the others take room here.
        let first = match (&self.logbook, logged) {
            _ if spaced => None,
            // A name the results file holds is also looked for among the others when it is
            // not ASCII: its NFC twin, new to the file, is the same name.
            (Some(book), Some(prior)) if !name.is_ascii() => {
                let seen = self.names_seen.seen_before(name, &written, row);
                match book.first_read(&prior) {
                    true => seen,
                    false => Some(seen.flatten()),
                }
            }
            (Some(book), Some(prior)) => (!book.first_read(&prior)).then_some(None),
            _ => self.names_seen.seen_before(name, &written, row),
        };
        match first {
            Some(row) => request.and(duplicate(row)),
            None => request,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::workspace::ConnectionType;

    fn read(csv: &str) -> Result<Vec<InputRow>, InputError> {
        let mut reader = InputReader::from_reader(
            Box::new(std::io::Cursor::new(csv.to_owned())),
            "t.csv".into(),
            CsvFormat::default(),
        )?;
        let mut rows = Vec::new();
        while let Some(row) = reader.next_row()? {
            rows.push(row);
        }
        Ok(rows)
    }

    fn codes(csv: &str) -> Vec<&'static str> {
        read(csv)
            .unwrap()
            .iter()
            .map(|r| r.request.as_ref().err().map_or("ok", |e| e.code))
            .collect()
    }

    #[test]
    fn headers_match_ignoring_case_underscores_dashes_and_spaces() {
        let rows = read(
            "\u{feff}Name, Connection Type ,datasource-name,THEME_NAME,owner\n Acme ,datasource, postgres-main ,dark,ops\n",
        )
        .unwrap();
        let request = rows[0].request.as_ref().unwrap().settings().unwrap();
        assert_eq!(request.name, "Acme");
        assert_eq!(request.connection_type, ConnectionType::Datasource);
        assert_eq!(request.datasource_name.as_deref(), Some("postgres-main"));
        assert_eq!(request.theme_name.as_deref(), Some("dark"));
        // Carried verbatim, untrimmed.
        assert_eq!(&rows[0].cells[0], b" Acme ");
        assert_eq!(rows[0].cells.len(), 5);
    }

    #[test]
    fn unknown_columns_are_carried_and_listed_but_result_columns_are_dropped() {
        let mut reader = InputReader::from_reader(
            Box::new(std::io::Cursor::new(
                "_row,_status,name,connectionType,owner\n1,failed,a,MULTI_DATAMART,ops\n",
            )),
            "t".into(),
            CsvFormat::default(),
        )
        .unwrap();
        assert_eq!(reader.header().ignored, ["owner"]);
        assert_eq!(
            reader.header().carried_names(),
            &ByteRecord::from(vec!["name", "connectionType", "owner"])
        );
        let row = reader.next_row().unwrap().unwrap();
        assert_eq!(
            row.cells,
            ByteRecord::from(vec!["a", "MULTI_DATAMART", "ops"])
        );
    }

    #[test]
    fn local_validation_codes() {
        let csv = "name,connectionType,datasourceName,datamartName,isEnableMetricSummary,summaryType\n\
                   ,DATASOURCE,pg,,,\n\
                   a,,pg,,,\n\
                   b,DATASORCE,pg,,,\n\
                   c,DATASOURCE,,,,\n\
                   d,DATAMART,,,,\n\
                   e,MULTI_DATAMART,,,yes,\n\
                   f,MULTI_DATAMART,,,,haiku\n\
                   g,multi_datamart,,,TRUE,forecastandtrendanalysis\n\
                   g,MULTI_DATAMART,,,,\n\
                   h,MULTI_DATAMART,,,,,surplus\n\
                   ,,,,,\n\
                   \x20\x20\n\
                   i,MULTI_DATAMART,,\n\
                   j,MULTI_DATAMART,,,,,,\n\
                   ,,,,,,,\n";
        assert_eq!(
            codes(csv),
            [
                "MISSING_NAME",
                "MISSING_CONNECTION_TYPE",
                "INVALID_CONNECTION_TYPE",
                "MISSING_DATASOURCE_NAME",
                "MISSING_DATAMART_NAME",
                "INVALID_FIELD",
                "INVALID_FIELD",
                "ok",
                "DUPLICATE_IN_INPUT",
                "MALFORMED_ROW",
                // ,,,,, and a line of spaces are not rows; empty cells short of the
                // header's width, or beyond it, are read as if it had that width.
                "ok",
                "ok",
            ]
        );
    }

    #[test]
    fn messages_name_the_line_and_the_value() {
        let rows = read("name,connectionType\nx,DATASORCE\n").unwrap();
        let error = rows[0].request.as_ref().unwrap_err();
        assert_eq!(
            error.message,
            "line 2: connectionType 'DATASORCE' is not one of DATASOURCE, DATAMART, MULTI_DATASOURCE, MULTI_DATAMART"
        );
    }

    /// A header of `columns` and a last column with a 70 KB name, so that the rows after
    /// it (each with an empty last cell) are past the start that `decode` checks.
    fn past_the_start(columns: &str) -> Vec<u8> {
        format!("{columns},{}\n", "p".repeat(70 * 1024)).into_bytes()
    }

    #[test]
    fn a_delete_reads_only_the_name() {
        // A byte that is not UTF-8 at the start of the input refuses it (see `decode`):
        // a long header puts this one past the start.
        let mut bytes = past_the_start("name,connectionType,owner");
        bytes.extend_from_slice(b"a,,\xff,\n,DATAMART,,\na,,,\n");
        bytes.extend_from_slice(b"b,nonsense,x,\n");
        let mut reader = InputReader::from_reader(
            Box::new(std::io::Cursor::new(bytes)),
            "t".into(),
            CsvFormat::default(),
        )
        .unwrap()
        .names_only(true);
        let mut results = Vec::new();
        while let Some(row) = reader.next_row().unwrap() {
            results.push(row.request.map_err(|e| e.code));
        }
        assert_eq!(
            results,
            [
                Ok(RowRequest::Name("a".into())),
                Err("MISSING_NAME"),
                Err(DUPLICATE_IN_INPUT),
                Ok(RowRequest::Name("b".into())),
            ]
        );
    }

    #[test]
    fn invalid_utf8_is_a_malformed_row_and_reading_goes_on() {
        let mut bytes = past_the_start("name,connectionType");
        bytes.extend_from_slice(b"a\xff,MULTI_DATAMART,\n");
        bytes.extend_from_slice(b"b,MULTI_DATAMART,\n");
        let mut reader = InputReader::from_reader(
            Box::new(std::io::Cursor::new(bytes)),
            "t".into(),
            CsvFormat::default(),
        )
        .unwrap();
        let first = reader.next_row().unwrap().unwrap();
        assert_eq!(first.request.unwrap_err().code, "MALFORMED_ROW");
        let second = reader.next_row().unwrap().unwrap();
        assert_eq!(second.row, 2);
        assert_eq!(second.line, 3);
        assert!(second.request.is_ok());
    }

    #[test]
    fn copilot_lists_split_on_commas_semicolons_and_bars() {
        let rows = read("name,connectionType,aiCopilotLlms\na,MULTI_DATAMART,\"gpt-4o, claude-sonnet;gemini-pro\"\n").unwrap();
        assert_eq!(
            rows[0]
                .request
                .as_ref()
                .unwrap()
                .settings()
                .unwrap()
                .ai_copilot_llms,
            Some(vec![
                "gpt-4o".into(),
                "claude-sonnet".into(),
                "gemini-pro".into()
            ])
        );
    }

    #[test]
    fn an_open_quote_is_one_malformed_row_and_the_rows_after_it_are_read() {
        let rows = read("name,connectionType\na,MULTI_DATAMART\n\"b,MULTI_DATAMART\nc,MULTI_DATAMART\nd,MULTI_DATAMART\n").unwrap();
        let names: Vec<_> = rows.iter().map(|r| r.name.as_deref()).collect();
        assert_eq!(names, [Some("a"), None, Some("c"), Some("d")]);
        let error = rows[1].request.as_ref().unwrap_err();
        assert_eq!(error.code, "MALFORMED_ROW");
        assert!(
            error.message.starts_with("line 3: a quote"),
            "{}",
            error.message
        );
        assert_eq!((rows[2].row, rows[2].line), (3, 4));
    }

    #[test]
    fn line_numbers_are_the_same_for_any_line_ending() {
        let lf = read("name,connectionType\na,MULTI_DATAMART\nb,X\n").unwrap();
        let crlf = read("name,connectionType\r\na,MULTI_DATAMART\r\nb,X\r\n").unwrap();
        assert_eq!(lf[1].line, 3);
        assert_eq!(crlf[1].line, 3);
    }

    #[test]
    fn fatal_header_problems() {
        assert!(matches!(
            read(""),
            Err(InputError::Header(HeaderError::Empty { .. }))
        ));
        assert!(matches!(
            read("Acme,DATASOURCE,postgres-main\n"),
            Err(InputError::Header(HeaderError::NoNameColumn { .. }))
        ));
        assert!(matches!(
            read("name,Name\n"),
            Err(InputError::Header(HeaderError::DuplicateColumn { .. }))
        ));
        assert_eq!(read("name,connectionType\n").unwrap().len(), 0);
    }

    #[test]
    fn names_of_existing_workspaces_are_taken_exactly() {
        let read_exact = |csv: &str| {
            let reader = InputReader::from_reader(
                Box::new(std::io::Cursor::new(csv.to_owned())),
                "t.csv".into(),
                CsvFormat::default(),
            )
            .unwrap()
            .names_only(true)
            .exact_names(true);
            let mut reader = reader;
            let mut codes = Vec::new();
            while let Some(row) = reader.next_row().unwrap() {
                codes.push(row.request.err().map(|e| e.code));
            }
            codes
        };
        assert_eq!(
            read_exact("name\n\"Globex \"\n\" Trail Co\"\nAcme\n"),
            [Some("INVALID_NAME"), Some("INVALID_NAME"), None]
        );
        let long = format!("name\n{}\n", "n".repeat(5000));
        assert_eq!(read_exact(&long), [Some("INVALID_NAME")]);
        // A run trims, as it always did.
        let run = codes("name,connectionType\n\"Globex \",MULTI_DATASOURCE\n");
        assert_eq!(run, ["ok"]);
    }

    #[test]
    fn values_change_with_what_is_sent_and_not_with_letter_case_or_spaces() {
        let values_of = |csv: &str| read(csv).unwrap()[0].values;
        let header = "name,connectionType,themeName,owner\n";
        let dark = values_of(&format!("{header}a,MULTI_DATASOURCE,dark,x\n"));
        assert_eq!(
            dark,
            values_of(&format!("{header}b, multi_datasource , dark ,y\n"))
        );
        assert_ne!(
            dark,
            values_of(&format!("{header}a,MULTI_DATASOURCE,corporate,x\n"))
        );
        assert_ne!(dark, 0);
    }
}
