//! One row's cells → the request it asks for, or why it asks for none. Only what can be
//! checked without the server is checked here.

use csv::ByteRecord;

use super::decode::Decoded;
use super::header::Header;
use crate::api::RowRequest;
use crate::api::workspace::{ConnectionType, Field, SummaryType, WorkspaceRequest};

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
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> RowError {
        RowError {
            code,
            message: message.into(),
        }
    }
}

/// The trimmed name in a record, if it has one that is text.
pub(crate) fn name_cell(record: &ByteRecord, index: usize) -> Option<&str> {
    let name = std::str::from_utf8(record.get(index)?).ok()?.trim();
    (!name.is_empty()).then_some(name)
}

/// How the rows of a job are read and checked.
#[derive(Debug, Clone, Copy)]
pub struct RowRules {
    /// Only the name is read and checked (a delete).
    pub names_only: bool,
    /// The name must be exactly the workspace's (`update`, `delete`): spaces at either end
    /// make it ambiguous, and the row `INVALID_NAME`.
    pub exact_names: bool,
    /// What the text was decoded from.
    pub decoded: Decoded,
    /// The input's field separator, to show a malformed line as it was.
    pub delimiter: u8,
}

/// The most bytes a name may take in a request URL once percent-encoded: a delete (and
/// a rollback) names the workspace in the URL, and servers and proxies refuse request
/// lines past a few KiB. A name longer than this could be created but never deleted.
pub const MAX_NAME_IN_URL: usize = 4096;

/// What one record came to: its trimmed name, its request or why there is none, and a
/// hash of the values it sends.
pub(crate) struct Parsed {
    pub(crate) name: Option<String>,
    pub(crate) request: Result<RowRequest, RowError>,
    /// See [`values`]; 0 for a row that sends only its name.
    pub(crate) values: u64,
}

/// Validates one record into a request.
pub(crate) fn parse_row(
    header: &Header,
    record: &ByteRecord,
    line: u64,
    rules: RowRules,
) -> Parsed {
    let refused = |error: RowError| Parsed {
        name: None,
        request: Err(error),
        values: 0,
    };
    if record.len() != header.width {
        return refused(RowError::new(
            "MALFORMED_ROW",
            format!(
                "line {line}: has {} fields, the header has {}; the line as read: {}",
                record.len(),
                header.width,
                line_text(record, rules.delimiter)
            ),
        ));
    }
    let texts = match texts(header, record, line, rules.names_only) {
        Ok(texts) => texts,
        Err(error) => return refused(error),
    };
    if let Some(error) = garbled(header, &texts, line, rules.names_only, rules.decoded) {
        return refused(error);
    }
    let cell = |field: Field| {
        header
            .index(field)
            .map(|i| texts[i].trim())
            .filter(|text| !text.is_empty())
    };
    let name = cell(Field::Name).map(str::to_owned);
    let raw_name = header.index(Field::Name).map_or("", |i| texts[i]);
    let request = match &name {
        Some(name) if rules.exact_names && raw_name != name => Err(spaced_name(raw_name, name)),
        Some(name) if encoded_len(name) > MAX_NAME_IN_URL => Err(RowError::new(
            "INVALID_NAME",
            format!(
                "name is {} bytes once encoded in a request URL; at most {MAX_NAME_IN_URL} can be sent (a delete or a rollback names the workspace in its URL)",
                encoded_len(name)
            ),
        )),
        Some(name) if rules.names_only => Ok(RowRequest::Name(name.clone())),
        None if rules.names_only => Err(RowError::new("MISSING_NAME", "name is empty")),
        _ => build_request(cell).map(RowRequest::Settings),
    };
    let values = match rules.names_only {
        true => 0,
        false => values(header, |i| texts.get(i).copied()),
    };
    Parsed {
        name,
        request: request.map_err(|mut e| {
            e.message = format!("line {line}: {}", e.message);
            e
        }),
        values,
    }
}

/// A name with spaces at its start or end, for a command that finds workspaces by name.
fn spaced_name(raw: &str, trimmed: &str) -> RowError {
    RowError::new(
        "INVALID_NAME",
        format!(
            "name '{raw}' has spaces at its start or end: which workspace it means is ambiguous ('{trimmed}' or '{raw}'); write the workspace's name exactly, without them"
        ),
    )
}

/// The length of a name percent-encoded in a URL's query.
fn encoded_len(name: &str) -> usize {
    name.bytes()
        .map(
            |b| match b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                true => 1,
                false => 3,
            },
        )
        .sum()
}

/// A record as its line read, its fields joined again by `delimiter` (quoted where they
/// need it), so that a malformed row's record keeps every cell of it.
pub(crate) fn line_text(record: &ByteRecord, delimiter: u8) -> String {
    let mut writer = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let _ = writer.write_byte_record(record);
    let bytes = writer.into_inner().unwrap_or_default();
    String::from_utf8_lossy(&bytes)
        .trim_end_matches('\n')
        .to_owned()
}

/// A hash of the values a row's request is made of (every request field but the name,
/// trimmed; letter case ignored where the request ignores it): a kept row whose values
/// hash otherwise than those it was sent with has changed since. Never 0, and below 2^60.
pub fn values<'a>(header: &Header, cell: impl Fn(usize) -> Option<&'a str>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    for field in Field::ALL.iter().filter(|f| **f != Field::Name) {
        let text = header.index(*field).and_then(&cell).unwrap_or("").trim();
        let any_case = matches!(
            field,
            Field::ConnectionType | Field::IsEnableMetricSuggestions | Field::IsEnableMetricSummary
        );
        match any_case {
            true => text.to_ascii_lowercase().hash(&mut hasher),
            false => text.hash(&mut hasher),
        }
    }
    // 60 bits: the ledger keeps flags beside it in the same word.
    (hasher.finish() >> 4).max(1)
}

/// The record's cells as text; a cell that is not UTF-8 makes the row malformed, unless
/// it is one a delete does not read.
fn texts<'r>(
    header: &Header,
    record: &'r ByteRecord,
    line: u64,
    names_only: bool,
) -> Result<Vec<&'r str>, RowError> {
    let name_column = header.index(Field::Name);
    let mut texts = Vec::with_capacity(record.len());
    for (i, cell) in record.iter().enumerate() {
        match std::str::from_utf8(cell) {
            Ok(text) => texts.push(text),
            // A delete reads no other column: a broken one is carried, not refused.
            Err(_) if names_only && Some(i) != name_column => texts.push(""),
            Err(_) => {
                return Err(RowError::new(
                    "MALFORMED_ROW",
                    format!(
                        "line {line}: column {} is not valid UTF-8 (if Excel saved the file as plain \"CSV\", give --encoding windows-1252)",
                        i + 1
                    ),
                ));
            }
        }
    }
    Ok(texts)
}

/// A value holding U+FFFD, which stands for bytes that could not be read (a decoder's,
/// or a spreadsheet's): it is not the one meant, and is never sent. Text this run decoded
/// is checked whole: any such mark is the decoder's, and says the row lost characters.
fn garbled(
    header: &Header,
    texts: &[&str],
    line: u64,
    names_only: bool,
    decoded: Decoded,
) -> Option<RowError> {
    let sent = |field: &Field| !names_only || *field == Field::Name;
    let i = match decoded {
        Decoded::From(_) => (0..texts.len()).find(|&i| texts[i].contains('\u{FFFD}')),
        Decoded::Utf8 { .. } => Field::ALL
            .iter()
            .filter(|field| sent(field))
            .filter_map(|field| header.index(*field))
            .find(|&i| texts[i].contains('\u{FFFD}')),
    }?;
    let message = match decoded {
        Decoded::From(encoding) => format!(
            "line {line}: column {} has bytes that are not {}",
            i + 1,
            encoding.name()
        ),
        Decoded::Utf8 { .. } => format!(
            "line {line}: column {} holds \u{FFFD} (U+FFFD), which stands for characters that could not be read: write the value again",
            i + 1
        ),
    };
    Some(RowError::new("MALFORMED_ROW", message))
}

/// The request a row's cells describe, checked as far as it can be without the server.
fn build_request<'a>(
    cell: impl Fn(Field) -> Option<&'a str>,
) -> Result<WorkspaceRequest, RowError> {
    let name = cell(Field::Name).ok_or_else(|| RowError::new("MISSING_NAME", "name is empty"))?;
    let connection_type = connection_type(cell(Field::ConnectionType))?;
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
    // Said before a boolean that does not parse, as it always was.
    let summary_type = summary_type(cell(Field::SummaryType))?;
    let owned = |field: Field| cell(field).map(str::to_owned);
    let request = WorkspaceRequest {
        name: name.to_owned(),
        connection_type,
        datasource_name: datasource_name.map(str::to_owned),
        datamart_name: datamart_name.map(str::to_owned),
        llm_name: owned(Field::LlmName),
        ai_copilot_llms: cell(Field::AiCopilotLlms).map(llm_list),
        is_enable_metric_suggestions: boolean(Field::IsEnableMetricSuggestions, &cell)?,
        is_enable_metric_summary: boolean(Field::IsEnableMetricSummary, &cell)?,
        summary_type,
        custom_summary_prompt: owned(Field::CustomSummaryPrompt),
        theme_name: owned(Field::ThemeName),
    };
    match request.settings_problem() {
        Some(problem) => Err(RowError::new("INVALID_FIELD", problem.to_string())),
        None => Ok(request),
    }
}

/// `connectionType`, required, in any letter case.
fn connection_type(text: Option<&str>) -> Result<ConnectionType, RowError> {
    let Some(text) = text else {
        return Err(RowError::new(
            "MISSING_CONNECTION_TYPE",
            "connectionType is empty",
        ));
    };
    ConnectionType::parse(text).ok_or_else(|| {
        RowError::new(
            "INVALID_CONNECTION_TYPE",
            format!(
                "connectionType '{text}' is not one of {}",
                ConnectionType::ALL.map(|t| t.as_str()).join(", ")
            ),
        )
    })
}

/// A boolean setting: `true` or `false` in any letter case, or empty.
fn boolean<'a>(
    field: Field,
    cell: impl Fn(Field) -> Option<&'a str>,
) -> Result<Option<bool>, RowError> {
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
}

/// `summaryType`, when given.
fn summary_type(text: Option<&str>) -> Result<Option<SummaryType>, RowError> {
    text.map(|text| {
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
    .transpose()
}

/// The AI-Copilot LLMs of one cell: separated by `,`, `;` or `|`, spaces dropped.
fn llm_list(list: &str) -> Vec<String> {
    list.split([',', ';', '|'])
        .map(str::trim)
        .filter(|llm| !llm.is_empty())
        .map(str::to_owned)
        .collect()
}
