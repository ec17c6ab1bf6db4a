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

/// Validates one record into a request; also returns its trimmed name, if any.
pub(crate) fn parse_row(
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
    let texts = match texts(header, record, line, names_only) {
        Ok(texts) => texts,
        Err(error) => return (None, Err(error)),
    };
    if let Some(error) = garbled(header, &texts, line, names_only, decoded) {
        return (None, Err(error));
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
        Decoded::Utf8 => Field::ALL
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
        Decoded::Utf8 => format!(
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
