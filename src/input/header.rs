//! The input's header: which columns are request fields, and which are carried to the
//! results (all but the result columns of an input that is itself a results file).

use csv::ByteRecord;

use crate::api::workspace::{Field, normalise};
use crate::model::{LEGACY_COLUMNS, RESULT_COLUMNS};
use crate::report::terminal::for_terminal;

/// Why a header cannot be used. Each of these stops the job before any request.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    /// No header row.
    #[error(
        "{input} is empty: it needs a header row (name,connectionType,datasourceName,...; a delete needs only name) and one row per workspace"
    )]
    Empty {
        /// The input, as given.
        input: String,
    },
    /// The header has no column that means `name`.
    #[error(
        "{input} has no 'name' column; its header, read with {delimiter} between fields, is '{first_line}'. The first line must name the columns (e.g. name,connectionType,datasourceName); give --delimiter if the file separates them with another character"
    )]
    NoNameColumn {
        /// The input, as given.
        input: String,
        /// The header as read, its fields joined with the delimiter.
        first_line: String,
        /// The delimiter, described.
        delimiter: &'static str,
    },
    /// The header has no column that means `connectionType`, which every row needs.
    #[error(
        "{input} has no 'connectionType' column{hint}: every row needs one (DATASOURCE, DATAMART, MULTI_DATASOURCE or MULTI_DATAMART), so nothing is sent. Name the column connectionType (or connection_type, Connection Type)"
    )]
    NoConnectionTypeColumn {
        /// The input, as given.
        input: String,
        /// ` ('type' may be meant)`, when a column resembles it.
        hint: String,
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
}

/// The input's columns: which ones are request fields, and which are carried to the results.
#[derive(Debug, Clone)]
pub struct Header {
    /// Index in the input record of each [`Field`], in `Field::ALL` order.
    fields: [Option<usize>; Field::ALL.len()],
    /// Indices of the columns carried to the results: all but earlier result columns.
    pub carried: Vec<usize>,
    /// The carried columns' names, verbatim.
    carried_names: ByteRecord,
    /// Number of columns in the header.
    pub width: usize,
    /// Carried columns that are not request fields (never sent).
    pub ignored: Vec<String>,
    /// The input is a results file: its cells are read as the values they hold (a
    /// formula's `'` taken off).
    pub from_results: bool,
}

impl Header {
    /// The names of the columns carried to the results, verbatim and in input order.
    pub fn carried_names(&self) -> &ByteRecord {
        &self.carried_names
    }

    /// The column of a request field, if the input has one.
    pub fn index(&self, field: Field) -> Option<usize> {
        self.fields[Field::ALL.iter().position(|f| *f == field).unwrap_or(0)]
    }
}

/// Maps a header record to request fields and carried columns; `source` names the input,
/// `delimiter` separated its fields.
pub fn parse_header(raw: &ByteRecord, source: &str, delimiter: u8) -> Result<Header, HeaderError> {
    let names: Vec<String> = raw
        .iter()
        .map(|h| String::from_utf8_lossy(h).trim().to_owned())
        .collect();
    if names.iter().all(String::is_empty) {
        return Err(HeaderError::Empty {
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
                    return Err(HeaderError::DuplicateColumn {
                        input: source.to_owned(),
                        first: names[first].clone(),
                        second: name.clone(),
                        field: field.key(),
                    });
                }
                *slot = Some(i);
            }
            // A header's trailing delimiter names no column: nothing to warn of.
            None if names[i..].iter().all(String::is_empty) => {}
            None => ignored.push(name.clone()),
        }
    }
    let header = Header {
        fields,
        carried,
        carried_names,
        width: names.len(),
        ignored,
        from_results: RESULT_COLUMNS[..LEGACY_COLUMNS]
            .iter()
            .all(|column| names.iter().any(|n| n == column)),
    };
    if header.index(Field::Name).is_none() {
        let first_line: String = names
            .join(&char::from(delimiter).to_string())
            .chars()
            .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
            .take(200)
            .collect();
        return Err(HeaderError::NoNameColumn {
            input: source.to_owned(),
            first_line,
            delimiter: describe_delimiter(delimiter),
        });
    }
    Ok(header)
}

impl Header {
    /// Refuses a header without a `connectionType` column: every row would be refused for
    /// the same reason (a delete, which needs only names, does not ask).
    pub fn require_connection_type(&self, source: &str) -> Result<(), HeaderError> {
        if self.index(Field::ConnectionType).is_some() {
            return Ok(());
        }
        let hint = self
            .ignored
            .iter()
            .find(|column| resembled_field(column) == Some(Field::ConnectionType))
            .map(|column| format!(" ('{column}' may be meant)"))
            .unwrap_or_default();
        Err(HeaderError::NoConnectionTypeColumn {
            input: source.to_owned(),
            hint,
        })
    }

    /// The columns that are not request fields, each with the field it most resembles
    /// (`'datasource' (datasourceName?)`) unless only names are sent (`names_only`), for
    /// the one warning that names them.
    pub fn ignored_described(&self, names_only: bool) -> String {
        let described: Vec<String> = self
            .ignored
            .iter()
            .map(|column| (for_terminal(column), resembled_field(column)))
            .map(|(column, field)| match field {
                Some(field) if !names_only => {
                    format!("'{column}' (did you mean {}?)", field.key())
                }
                _ => format!("'{column}'"),
            })
            .collect();
        described.join(", ")
    }
}

/// The request field a column that is none most resembles, if one does: a field whose
/// name begins or ends with the column's (`datasource`, `llm`, `theme`, `type`), or one
/// spelled nearly alike (`datasorceName`). Compared as headers are matched.
pub fn resembled_field(column: &str) -> Option<Field> {
    let column = normalise(column);
    if column.len() < 2 {
        return None;
    }
    let score = |field: &Field| {
        let key = normalise(field.key());
        let affix = column.len() >= 3 && (key.starts_with(&column) || key.ends_with(&column));
        let near = strsim::jaro_winkler(&column, &key);
        if affix { 1.0 + near } else { near }
    };
    Field::ALL
        .iter()
        .map(|field| (score(field), *field))
        .filter(|(score, _)| *score >= 0.88)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, field)| field)
}

/// A delimiter as a message names it: `','`, `';'`, `tab`.
pub fn describe_delimiter(delimiter: u8) -> &'static str {
    match delimiter {
        b',' => "','",
        b';' => "';'",
        b'\t' => "tab",
        b'|' => "'|'",
        _ => "another character",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_column_that_is_no_field_is_told_the_field_it_resembles() {
        for (column, field) in [
            ("datasource", Field::DatasourceName),
            ("llm", Field::LlmName),
            ("theme", Field::ThemeName),
            ("type", Field::ConnectionType),
            ("Connection", Field::ConnectionType),
            ("datasorceName", Field::DatasourceName),
            ("data mart", Field::DatamartName),
            ("copilot_llms", Field::AiCopilotLlms),
        ] {
            assert_eq!(resembled_field(column), Some(field), "{column}");
        }
        for column in [
            "owner", "notes", "region", "tier", "plan", "email", "id", "", "x",
        ] {
            assert_eq!(resembled_field(column), None, "{column}");
        }
    }
}
