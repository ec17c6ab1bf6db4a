//! CSV → rows: header mapping, per-row validation and duplicate detection, one row at a
//! time. Nothing here holds more than one row; the only state that grows is a set of
//! 64-bit name hashes (duplicate detection).

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::io::Read;
use std::sync::Arc;

use csv::ByteRecord;

use crate::cli::Shard;
use crate::results::RESULT_COLUMNS;
use crate::resume::{Prior, PriorResults, ResultColumns};
use crate::settings::Input;
use crate::workspace::{ConnectionType, SummaryType, WorkspaceRequest};

/// Why the input cannot be read at all. Each of these stops the job before any request.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file cannot be opened.
    #[error("cannot open {input}: {source}")]
    Unreadable {
        /// The input, as given.
        input: String,
        /// Why.
        source: std::io::Error,
    },
    /// No header row.
    #[error(
        "{input} is empty: it needs a header row (name,connectionType,datasourceName,...) and one row per workspace"
    )]
    Empty {
        /// The input, as given.
        input: String,
    },
    /// The header has no column that means `name`.
    #[error(
        "{input} has no 'name' column; its first line is '{first_line}'. dbprov needs a header row naming the columns, e.g. name,connectionType,datasourceName"
    )]
    NoNameColumn {
        /// The input, as given.
        input: String,
        /// The header as read.
        first_line: String,
    },
    /// Two columns map to the same request field.
    #[error("{input}: columns '{first}' and '{second}' both mean {field}; keep one of them")]
    DuplicateColumn {
        /// The input, as given.
        input: String,
        /// The earlier column.
        first: String,
        /// The later column.
        second: String,
        /// The request field.
        field: &'static str,
    },
    /// Reading failed midway (a disk error, not a malformed row).
    #[error("cannot read {input} after line {line}: {source}")]
    Read {
        /// The input, as given.
        input: String,
        /// The last line read.
        line: u64,
        /// Why.
        source: csv::Error,
    },
}

/// A request field a column can map to. The wire names live in [`WorkspaceRequest`]; these
/// are only used to match header names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Name,
    ConnectionType,
    DatasourceName,
    DatamartName,
    LlmName,
    AiCopilotLlms,
    IsEnableMetricSuggestions,
    IsEnableMetricSummary,
    SummaryType,
    CustomSummaryPrompt,
    ThemeName,
}

impl Field {
    const ALL: [Field; 11] = [
        Field::Name,
        Field::ConnectionType,
        Field::DatasourceName,
        Field::DatamartName,
        Field::LlmName,
        Field::AiCopilotLlms,
        Field::IsEnableMetricSuggestions,
        Field::IsEnableMetricSummary,
        Field::SummaryType,
        Field::CustomSummaryPrompt,
        Field::ThemeName,
    ];

    /// The request's JSON key; also the column name, before normalisation.
    fn key(self) -> &'static str {
        match self {
            Field::Name => "name",
            Field::ConnectionType => "connectionType",
            Field::DatasourceName => "datasourceName",
            Field::DatamartName => "datamartName",
            Field::LlmName => "llmName",
            Field::AiCopilotLlms => "aiCopilotLlms",
            Field::IsEnableMetricSuggestions => "isEnableMetricSuggestions",
            Field::IsEnableMetricSummary => "isEnableMetricSummary",
            Field::SummaryType => "summaryType",
            Field::CustomSummaryPrompt => "customSummaryPrompt",
            Field::ThemeName => "themeName",
        }
    }

    /// The field a header name means: case, `_`, `-` and spaces do not matter.
    fn from_header(header: &str) -> Option<Field> {
        let wanted = normalise(header);
        Field::ALL
            .into_iter()
            .find(|f| normalise(f.key()) == wanted)
    }
}

/// Whether a header names the `name` field (any case, with or without `_`, `-`, spaces).
pub fn is_name_column(header: &str) -> bool {
    Field::from_header(header) == Some(Field::Name)
}

fn normalise(header: &str) -> String {
    header
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The input's columns: which ones are request fields, and which are carried to the results.
#[derive(Debug, Clone)]
pub struct Header {
    /// Index in the input record of each [`Field`], in `Field::ALL` order.
    fields: [Option<usize>; Field::ALL.len()],
    /// Indices of the columns carried to the results: all but earlier result columns.
    carried: Vec<usize>,
    /// The carried columns' names, verbatim.
    carried_names: ByteRecord,
    /// Number of columns in the header.
    width: usize,
    /// Carried columns that are not request fields (never sent).
    pub ignored: Vec<String>,
    /// Where the result columns are, when the input is itself a results file.
    results: Option<ResultColumns>,
}

impl Header {
    /// The names of the columns carried to the results, verbatim and in input order.
    pub fn carried_names(&self) -> &ByteRecord {
        &self.carried_names
    }

    fn index(&self, field: Field) -> Option<usize> {
        self.fields[Field::ALL.iter().position(|f| *f == field).unwrap_or(0)]
    }
}

/// The code of a row whose name an earlier row of the same input already has.
pub const DUPLICATE_IN_INPUT: &str = "DUPLICATE_IN_INPUT";

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
    pub request: Result<WorkspaceRequest, RowError>,
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
    csv: csv::Reader<Box<dyn Read + Send>>,
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
}

impl InputReader {
    /// Opens the input and reads its header.
    pub fn open(input: &Input) -> Result<InputReader, InputError> {
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
        Self::from_reader(reader, source)
    }

    /// Reads CSV from any reader; `source` names it in messages.
    pub fn from_reader(
        reader: Box<dyn Read + Send>,
        source: String,
    ) -> Result<InputReader, InputError> {
        let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
        let raw = csv.byte_headers().map_err(|e| match e.kind() {
            csv::ErrorKind::Io(_) => InputError::Read {
                input: source.clone(),
                line: 0,
                source: e,
            },
            _ => InputError::Empty {
                input: source.clone(),
            },
        })?;
        let header = parse_header(raw, &source)?;
        Ok(InputReader {
            csv,
            header,
            source,
            record: ByteRecord::new(),
            rows: 0,
            names_seen: HashSet::new(),
            hasher: RandomState::new(),
            log: None,
            shard: Shard::ALL,
        })
    }

    /// Reads only the rows of `shard`; the others are passed over (their numbers stay
    /// taken, so `_row` still counts every data row of the input).
    pub fn with_shard(mut self, shard: Shard) -> InputReader {
        self.shard = shard;
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
        let mut reader = Self::from_reader(Box::new(file.take(log.valid_len)), source)?;
        reader.log = Some(log);
        Ok(reader)
    }

    /// The input's columns.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The next data row, or `None` at the end. Only I/O errors are errors: a malformed
    /// record is a row with `MALFORMED_ROW`.
    pub fn next_row(&mut self) -> Result<Option<InputRow>, InputError> {
        loop {
            match self.csv.read_byte_record(&mut self.record) {
                Ok(false) => return Ok(None),
                Ok(true) => {}
                Err(e) => {
                    return Err(InputError::Read {
                        input: self.source.clone(),
                        line: self.csv.position().line(),
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
        let log_columns = self.log.as_ref().and(header.results.as_ref());
        let earlier = log_columns.and_then(|columns| {
            (record.len() == header.width).then(|| Earlier {
                results: columns.results(record),
                prior: columns.prior(record, position.byte()),
            })
        });
        let mut row = self.rows;
        if let (Some(log), Some(columns)) = (&self.log, &header.results) {
            row = Some(columns.row(record)).filter(|r| *r > 0).unwrap_or(row);
            let latest = log.get(columns.identity(record), columns.row(record));
            if latest.is_some_and(|p| p.offset != position.byte()) {
                return None;
            }
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
        let (name, request) = parse_row(header, record, line);
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

/// The shard of a row: a stable hash (64-bit FNV-1a) of its name, or its row number when
/// it has none, modulo the shard count. Stable across runs, machines and versions.
pub fn shard_of(name: Option<&str>, row: u64, count: u64) -> u64 {
    let hash = match name {
        Some(name) => name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        }),
        None => row,
    };
    hash % count
}

/// Counts the data rows of a file input in `shard`, quickly: no validation. `None` for
/// stdin, which cannot be read twice.
pub fn count_rows(input: &Input, shard: Shard) -> Result<Option<u64>, InputError> {
    let Input::File(path) = input else {
        return Ok(None);
    };
    let read_error = |line, source| InputError::Read {
        input: input.to_string(),
        line,
        source,
    };
    let file = std::fs::File::open(path).map_err(|e| InputError::Unreadable {
        input: input.to_string(),
        source: e,
    })?;
    let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(file);
    let name = csv
        .byte_headers()
        .map_err(|e| read_error(0, e))?
        .iter()
        .position(|h| is_name_column(String::from_utf8_lossy(h).trim()));
    let mut record = ByteRecord::new();
    let (mut rows, mut in_shard) = (0, 0);
    while csv
        .read_byte_record(&mut record)
        .map_err(|e| read_error(rows, e))?
    {
        rows += 1;
        let name = name.and_then(|i| name_cell(&record, i));
        if shard.count == 1 || shard_of(name, rows, shard.count) == shard.index {
            in_shard += 1;
        }
    }
    Ok(Some(in_shard))
}

fn parse_header(raw: &ByteRecord, source: &str) -> Result<Header, InputError> {
    let names: Vec<String> = raw
        .iter()
        .map(|h| String::from_utf8_lossy(h).trim().to_owned())
        .collect();
    if names.iter().all(String::is_empty) {
        return Err(InputError::Empty {
            input: source.to_owned(),
        });
    }
    let mut fields: [Option<usize>; Field::ALL.len()] = [None; Field::ALL.len()];
    let mut carried = Vec::new();
    let mut carried_names = ByteRecord::new();
    let mut ignored = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if RESULT_COLUMNS.contains(&name.as_str()) {
            continue;
        }
        carried.push(i);
        carried_names.push_field(&raw[i]);
        match Field::from_header(name) {
            Some(field) => {
                let slot = &mut fields[Field::ALL.iter().position(|f| *f == field).unwrap_or(0)];
                if let Some(first) = *slot {
                    return Err(InputError::DuplicateColumn {
                        input: source.to_owned(),
                        first: names[first].clone(),
                        second: name.clone(),
                        field: field.key(),
                    });
                }
                *slot = Some(i);
            }
            None => ignored.push(name.clone()),
        }
    }
    let header = Header {
        fields,
        carried,
        carried_names,
        width: names.len(),
        ignored,
        results: ResultColumns::find(raw).ok(),
    };
    if header.index(Field::Name).is_none() {
        return Err(InputError::NoNameColumn {
            input: source.to_owned(),
            first_line: names.join(","),
        });
    }
    Ok(header)
}

/// Validates one record into a request; also returns its trimmed name, if any.
fn parse_row(
    header: &Header,
    record: &ByteRecord,
    line: u64,
) -> (Option<String>, Result<WorkspaceRequest, RowError>) {
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
    let mut texts = Vec::with_capacity(record.len());
    for (i, cell) in record.iter().enumerate() {
        match std::str::from_utf8(cell) {
            Ok(text) => texts.push(text),
            Err(_) => {
                let error = RowError::new(
                    "MALFORMED_ROW",
                    format!("line {line}: column {} is not valid UTF-8", i + 1),
                );
                return (None, Err(error));
            }
        }
    }
    let cell = |field: Field| {
        header
            .index(field)
            .map(|i| texts[i].trim())
            .filter(|text| !text.is_empty())
    };
    let name = cell(Field::Name).map(str::to_owned);
    (
        name,
        build_request(cell).map_err(|mut e| {
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
                    format!("{} '{text}' is not true or false", field.key()),
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
                        "summaryType '{text}' is not one of {}",
                        SummaryType::ALL.map(|t| t.as_str()).join(", ")
                    ),
                )
            })
        })
        .transpose()?;
    let owned = |field: Field| cell(field).map(str::to_owned);
    Ok(WorkspaceRequest {
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(csv: &str) -> Result<Vec<InputRow>, InputError> {
        let mut reader = InputReader::from_reader(
            Box::new(std::io::Cursor::new(csv.to_owned())),
            "t.csv".into(),
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
        let request = rows[0].request.as_ref().unwrap();
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
                   g,multi_datamart,,,TRUE,custom\n\
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

    #[test]
    fn invalid_utf8_is_a_malformed_row_and_reading_goes_on() {
        let mut bytes = b"name,connectionType\na\xff,MULTI_DATAMART\n".to_vec();
        bytes.extend_from_slice(b"b,MULTI_DATAMART\n");
        let mut reader =
            InputReader::from_reader(Box::new(std::io::Cursor::new(bytes)), "t".into()).unwrap();
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
            rows[0].request.as_ref().unwrap().ai_copilot_llms,
            Some(vec![
                "gpt-4o".into(),
                "claude-sonnet".into(),
                "gemini-pro".into()
            ])
        );
    }

    #[test]
    fn shards_are_stable_and_cover_every_row_once() {
        // FNV-1a of "Acme": fixed forever, so shards do not move between versions.
        assert_eq!(shard_of(Some("Acme"), 1, u64::MAX), 0x84d1_d48b_0b85_7def);
        assert_eq!(shard_of(Some("Acme"), 1, 4), 0x84d1_d48b_0b85_7def % 4);
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
    fn fatal_header_problems() {
        assert!(matches!(read(""), Err(InputError::Empty { .. })));
        assert!(matches!(
            read("Acme,DATASOURCE,postgres-main\n"),
            Err(InputError::NoNameColumn { .. })
        ));
        assert!(matches!(
            read("name,Name\n"),
            Err(InputError::DuplicateColumn { .. })
        ));
        assert_eq!(read("name,connectionType\n").unwrap().len(), 0);
    }
}
