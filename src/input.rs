//! CSV → rows: header mapping, per-row validation and duplicate detection, one row at a
//! time. Nothing here holds more than one row; the only state that grows is a set of
//! 64-bit name hashes (duplicate detection).

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::io::Read;
use std::sync::Arc;

use csv::ByteRecord;

use crate::csv_lines::{CsvLines, Kind};
use crate::decode::{CsvFormat, DecodeError, Decoded};
use crate::header::{Header, HeaderError, parse_header};
use crate::operation::RowRequest;
use crate::record::{DUPLICATE_IN_INPUT, Prior};
use crate::resume::PriorResults;
use crate::settings::Input;
use crate::settings::Shard;
use crate::workspace::{ConnectionType, Field, SummaryType, WorkspaceRequest};

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

/// Why one row will not be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// A local code of `DESIGN.md`: `MISSING_NAME`, `MALFORMED_ROW`, ...
    pub code: &'static str,
    /// What is wrong, naming the column and value.
    pub message: String,
}

impl RowError {
    fn new(code: &'static str, message: impl Into<String>) -> RowError {
        RowError {
            code,
            message: message.into(),
        }
    }
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
    /// `retry`: the outcome the results file records for the row.
    pub earlier: Option<Earlier>,
}

/// The outcome a results file, read as input, records for a row.
#[derive(Debug, Clone)]
pub struct Earlier {
    /// The eight result cells.
    pub results: ByteRecord,
    /// Success, and whether an attempt may have created the workspace unseen.
    pub prior: Prior,
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
    names_seen: HashSet<u64>,
    hasher: RandomState,
    /// `retry`: the input is a results log; only each identity's latest row is an input
    /// row, and it keeps its `_row`.
    log: Option<Arc<PriorResults>>,
    /// Only rows of this shard are read.
    shard: Shard,
    /// Only the name is read and checked (a delete).
    names_only: bool,
    /// What the text was decoded from.
    decoded: Decoded,
    /// `rollback`: only the rows the log records as `created` on its target are read, as
    /// new rows (their earlier outcome is what is undone, not one to keep).
    only_created: bool,
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
        let (reader, decoded) = crate::decode::utf8_reader(reader, format.encoding, &source)?;
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
            names_seen: HashSet::new(),
            hasher: RandomState::new(),
            log: None,
            shard: Shard::ALL,
            names_only: false,
            decoded,
            only_created: false,
        })
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

    /// Reads only the rows of a results log recorded as `created` on its target: what a
    /// rollback deletes.
    pub fn only_created(mut self) -> InputReader {
        self.only_created = true;
        self
    }

    /// Reads the input as a results log (for `retry`): rows that a later row of the same
    /// name supersedes are passed over, and each row keeps its `_row`. Reading stops at the
    /// log's last whole row, so rows appended meanwhile are not read back.
    pub fn open_log(log: Arc<PriorResults>) -> Result<InputReader, InputError> {
        let source = log.path.display().to_string();
        let file = std::fs::File::open(&log.path).map_err(|e| InputError::Unreadable {
            input: source.clone(),
            source: e,
        })?;
        let format = CsvFormat {
            delimiter: Some(log.delimiter),
            encoding: None,
        };
        let mut reader = Self::from_reader(Box::new(file.take(log.valid_len)), source, format)?;
        reader.log = Some(log);
        Ok(reader)
    }

    /// The field separator: given, or the one the header line uses.
    pub fn delimiter(&self) -> u8 {
        self.lines.delimiter()
    }

    /// The input's columns.
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
            if let Some(row) = self.current_row() {
                return Ok(Some(row));
            }
        }
    }

    /// The record just read as an input row; `None` if a later row supersedes it.
    fn current_row(&mut self) -> Option<InputRow> {
        let header = &self.header;
        let record = &self.record;
        let position = record
            .position()
            .cloned()
            .unwrap_or_else(csv::Position::new);
        let line = position.line();
        // Only a retry reads a results file as a log; `run` given one just sends its rows.
        let whole = self.kind == Kind::Whole && record.len() == header.width;
        let mut earlier = match (&self.log, &header.results) {
            (Some(log), Some(columns)) if whole => Some(Earlier {
                results: columns.results(record),
                prior: columns.prior(record, position.byte(), &log.target),
            }),
            _ => None,
        };
        let mut row = self.rows;
        if let (Some(log), Some(columns)) = (&self.log, &header.results) {
            row = Some(columns.row(record)).filter(|r| *r > 0).unwrap_or(row);
            let latest = log.get(columns.identity(record), columns.row(record));
            if latest.is_some_and(|p| p.offset != position.byte()) {
                return None;
            }
            // The log remembers a lost answer of any earlier row of the name.
            if let (Some(earlier), Some(latest)) = (earlier.as_mut(), latest) {
                earlier.prior.maybe_created |= latest.maybe_created;
                earlier.prior.absent_before |= latest.absent_before;
                earlier.prior.created = latest.created;
            }
        }
        if self.only_created {
            if !earlier.as_ref().is_some_and(|e| e.prior.created) {
                return None;
            }
            earlier = None;
        }
        if self.shard != Shard::ALL {
            let name = header.index(Field::Name).and_then(|i| name_cell(record, i));
            if shard_of(name, row, self.shard.count) != self.shard.index {
                return None;
            }
        }
        // Verbatim, except that bytes which are not UTF-8 become U+FFFD: the results file
        // stays readable text, and the row says which column was broken.
        let mut cells = ByteRecord::with_capacity(record.as_slice().len(), header.carried.len());
        for &i in &header.carried {
            let cell = record.get(i).unwrap_or_default();
            cells.push_field(String::from_utf8_lossy(cell).as_bytes());
        }
        let (name, request) = match self.kind {
            Kind::Whole => parse_row(header, record, line, self.names_only, self.decoded),
            Kind::OpenQuote => (
                None,
                Err(RowError::new(
                    "MALFORMED_ROW",
                    format!(
                        "line {line}: a quote opens a field and is never closed; the lines after it are read as rows of their own"
                    ),
                )),
            ),
        };
        // Retry: a row refused as a second row of its name stays refused while the first
        // row of that name is still in the file, whichever of the two comes first in it.
        let still_duplicate = match (&self.log, &header.results, &name) {
            (Some(log), Some(columns), Some(name)) => {
                columns.is_duplicate(record) && log.get(Some(name), 0).is_some()
            }
            _ => false,
        };
        if still_duplicate {
            let message = format!(
                "line {line}: name '{}' already appeared earlier in the input",
                name.as_deref().unwrap_or_default()
            );
            let error = RowError::new(DUPLICATE_IN_INPUT, message);
            return Some(InputRow {
                row,
                line,
                name,
                cells,
                request: Err(error),
                earlier,
            });
        }
        let request = match (&name, request) {
            (Some(name), request) if !self.names_seen.insert(self.hasher.hash_one(name)) => request
                .and(Err(RowError::new(
                    DUPLICATE_IN_INPUT,
                    format!("line {line}: name '{name}' already appeared earlier in the input"),
                ))),
            (_, request) => request,
        };
        Some(InputRow {
            row,
            line,
            name,
            cells,
            request,
            earlier,
        })
    }
}

/// The trimmed name in a record, if it has one that is text.
fn name_cell(record: &ByteRecord, index: usize) -> Option<&str> {
    let name = std::str::from_utf8(record.get(index)?).ok()?.trim();
    (!name.is_empty()).then_some(name)
}

/// The shard of a row: a stable hash of its name, or its row number when it has none,
/// modulo the shard count. Stable across runs, machines and versions.
///
/// The hash is 64-bit FNV-1a followed by MurmurHash3's 64-bit finaliser. FNV-1a alone
/// leaves its low bits depending only on the low bits of each byte, so names over a small
/// alphabet could all fall into one shard of a power-of-two count; the finaliser mixes
/// every bit of the hash into every bit of the result.
pub fn shard_of(name: Option<&str>, row: u64, count: u64) -> u64 {
    let hash = match name {
        Some(name) => {
            let fnv = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
                (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
            });
            fmix64(fnv)
        }
        None => row,
    };
    hash % count
}

/// MurmurHash3's 64-bit finaliser: every input bit affects every output bit.
fn fmix64(mut hash: u64) -> u64 {
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

/// Counts the data rows of an input in `shard`, quickly: no validation, except that a
/// file read as UTF-8 must be UTF-8 throughout (a byte that is not refuses it before any
/// request, as [`crate::decode`] does at the start of any input). `None` when the input is
/// not a regular file (stdin, a pipe, a FIFO): it cannot be read twice. Stops early, with
/// `None`, once `stop` is set (a signal during the count).
pub fn count_rows(
    input: &Input,
    format: CsvFormat,
    shard: Shard,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<Option<u64>, InputError> {
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
    let (file, decoded) =
        crate::decode::utf8_reader(Box::new(file), format.encoding, &input.to_string())?;
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
        return Ok(Some(0));
    }
    lines.width = Some(record.len());
    let name = record
        .iter()
        .position(|h| crate::workspace::is_name_column(String::from_utf8_lossy(h).trim()));
    let (mut rows, mut in_shard) = (0, 0);
    while lines
        .read(&mut record)
        .map_err(|e| read_error(rows, e))?
        .is_some()
    {
        rows += 1;
        if decoded == Decoded::Utf8
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
        }
        if rows % 4096 == 0 && stop.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(None);
        }
    }
    Ok(Some(in_shard))
}

/// Validates one record into a request; also returns its trimmed name, if any.
fn parse_row(
    header: &Header,
    record: &ByteRecord,
    line: u64,
    names_only: bool,
    decoded: Decoded,
) -> (Option<String>, Result<RowRequest, RowError>) {
    if record.len() != header.width {
        let error = RowError::new(
            "MALFORMED_ROW",
            format!(
                "line {line}: has {} fields, the header has {}",
                record.len(),
                header.width
            ),
        );
        return (None, Err(error));
    }
    let name_column = header.index(Field::Name);
    let mut texts = Vec::with_capacity(record.len());
    for (i, cell) in record.iter().enumerate() {
        match std::str::from_utf8(cell) {
            Ok(text) => texts.push(text),
            // A delete reads no other column: a broken one is carried, not refused.
            Err(_) if names_only && Some(i) != name_column => texts.push(""),
            Err(_) => {
                let error = RowError::new(
                    "MALFORMED_ROW",
                    format!(
                        "line {line}: column {} is not valid UTF-8 (if Excel saved the file as plain \"CSV\", give --encoding windows-1252)",
                        i + 1
                    ),
                );
                return (None, Err(error));
            }
        }
    }
    // U+FFFD stands for bytes that could not be read (a decoder's, or a spreadsheet's):
    // a value holding it is not the one meant, and is never sent. Text this run decoded
    // is checked whole: any such mark is the decoder's, and says the row lost characters.
    let sent = |field: &Field| !names_only || *field == Field::Name;
    let garbled = match decoded {
        Decoded::From(_) => (0..texts.len()).find(|&i| texts[i].contains('\u{FFFD}')),
        Decoded::Utf8 => Field::ALL
            .iter()
            .filter(|field| sent(field))
            .filter_map(|field| header.index(*field))
            .find(|&i| texts[i].contains('\u{FFFD}')),
    };
    if let Some(i) = garbled {
        let message = match decoded {
            Decoded::From(encoding) => format!(
                "line {line}: column {} has bytes that are not {}",
                i + 1,
                encoding.name()
            ),
            Decoded::Utf8 => format!(
                "line {line}: column {} holds \u{FFFD} (U+FFFD), which stands for characters that could not be read: write the value again",
                i + 1
            ),
        };
        return (None, Err(RowError::new("MALFORMED_ROW", message)));
    }
    let cell = |field: Field| {
        header
            .index(field)
            .map(|i| texts[i].trim())
            .filter(|text| !text.is_empty())
    };
    let name = cell(Field::Name).map(str::to_owned);
    let request = match &name {
        Some(name) if names_only => Ok(RowRequest::Name(name.clone())),
        None if names_only => Err(RowError::new("MISSING_NAME", "name is empty")),
        _ => build_request(cell).map(RowRequest::Settings),
    };
    (
        name,
        request.map_err(|mut e| {
            e.message = format!("line {line}: {}", e.message);
            e
        }),
    )
}

/// The request a row's cells describe, checked as far as it can be without the server.
fn build_request<'a>(
    cell: impl Fn(Field) -> Option<&'a str>,
) -> Result<WorkspaceRequest, RowError> {
    let name = cell(Field::Name).ok_or_else(|| RowError::new("MISSING_NAME", "name is empty"))?;
    let connection_type = match cell(Field::ConnectionType) {
        None => {
            return Err(RowError::new(
                "MISSING_CONNECTION_TYPE",
                "connectionType is empty",
            ));
        }
        Some(text) => ConnectionType::parse(text).ok_or_else(|| {
            RowError::new(
                "INVALID_CONNECTION_TYPE",
                format!(
                    "connectionType '{text}' is not one of {}",
                    ConnectionType::ALL.map(|t| t.as_str()).join(", ")
                ),
            )
        })?,
    };
    let datasource_name = cell(Field::DatasourceName);
    let datamart_name = cell(Field::DatamartName);
    if connection_type == ConnectionType::Datasource && datasource_name.is_none() {
        return Err(RowError::new(
            "MISSING_DATASOURCE_NAME",
            "datasourceName is empty; connectionType DATASOURCE needs one",
        ));
    }
    if connection_type == ConnectionType::Datamart && datamart_name.is_none() {
        return Err(RowError::new(
            "MISSING_DATAMART_NAME",
            "datamartName is empty; connectionType DATAMART needs one",
        ));
    }
    let boolean = |field: Field| -> Result<Option<bool>, RowError> {
        cell(field)
            .map(|text| match text.to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(RowError::new(
                    "INVALID_FIELD",
                    format!(
                        "{} '{text}' is not true or false; write one of them, or leave it empty for false",
                        field.key()
                    ),
                )),
            })
            .transpose()
    };
    let summary_type = cell(Field::SummaryType)
        .map(|text| {
            SummaryType::parse(text).ok_or_else(|| {
                RowError::new(
                    "INVALID_FIELD",
                    format!(
                        "summaryType '{text}' is not one of {}; give one of them, or leave it empty",
                        SummaryType::ALL.map(|t| t.as_str()).join(", ")
                    ),
                )
            })
        })
        .transpose()?;
    let owned = |field: Field| cell(field).map(str::to_owned);
    let request = WorkspaceRequest {
        name: name.to_owned(),
        connection_type,
        datasource_name: datasource_name.map(str::to_owned),
        datamart_name: datamart_name.map(str::to_owned),
        llm_name: owned(Field::LlmName),
        ai_copilot_llms: cell(Field::AiCopilotLlms).map(|list| {
            list.split([',', ';', '|'])
                .map(str::trim)
                .filter(|llm| !llm.is_empty())
                .map(str::to_owned)
                .collect()
        }),
        is_enable_metric_suggestions: boolean(Field::IsEnableMetricSuggestions)?,
        is_enable_metric_summary: boolean(Field::IsEnableMetricSummary)?,
        summary_type,
        custom_summary_prompt: owned(Field::CustomSummaryPrompt),
        theme_name: owned(Field::ThemeName),
    };
    match request.settings_problem() {
        Some(problem) => Err(RowError::new("INVALID_FIELD", problem.to_string())),
        None => Ok(request),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                   h,MULTI_DATAMART,,\n";
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
    fn shards_are_stable_and_cover_every_row_once() {
        // The hash of "Acme": fixed, so shards do not move between versions.
        let acme = fmix64(0x84d1_d48b_0b85_7def);
        assert_eq!(shard_of(Some("Acme"), 1, u64::MAX), acme % u64::MAX);
        assert_eq!(shard_of(Some("Acme"), 1, 4), acme % 4);
        assert_eq!(
            shard_of(None, 7, 4),
            3,
            "a row without a name goes by its number"
        );
        let names: Vec<String> = (0..1000).map(|i| format!("tenant-{i}")).collect();
        let mut seen = vec![0; names.len()];
        for index in 0..7 {
            for (i, name) in names.iter().enumerate() {
                if shard_of(Some(name), i as u64, 7) == index {
                    seen[i] += 1;
                }
            }
        }
        assert!(seen.iter().all(|n| *n == 1));
    }

    #[test]
    fn shards_balance_names_over_a_small_alphabet() {
        // a, e, i, m, q, u share their two low bits: FNV-1a alone put all in one shard of 4.
        let alphabet = ['a', 'e', 'i', 'm', 'q', 'u'];
        let mut per_shard = [0; 4];
        for i in 0..2000usize {
            let name: String = (0..5).map(|d| alphabet[i / 6usize.pow(d) % 6]).collect();
            per_shard[shard_of(Some(&name), 0, 4) as usize] += 1;
        }
        assert!(per_shard.iter().all(|n| *n > 400), "{per_shard:?}");
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
}
