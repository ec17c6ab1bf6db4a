//! The DataBrain workspace API's types: request body, response envelope and error codes.
//!
//! Pure data, no I/O. Both the client side (row → request) and the sandbox (request →
//! response) use these, so the two cannot drift apart. The JSON key names of the optional
//! AI / theme settings are guesses (see `API.md`); they live only in [`WorkspaceRequest`].

use std::fmt;

use serde::{Deserialize, Serialize};

/// The path of the create (`POST`) and update (`PUT`) endpoints.
pub const WORKSPACE_PATH: &str = "/api/v2/workspace";

/// How a workspace reaches its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConnectionType {
    /// One datasource, named by `datasourceName`.
    Datasource,
    /// One datamart, named by `datamartName`.
    Datamart,
    /// Several datasources, configured later.
    MultiDatasource,
    /// Several datamarts, configured later.
    MultiDatamart,
}

impl ConnectionType {
    /// Every value, in the order the API documents them.
    pub const ALL: [ConnectionType; 4] = [
        ConnectionType::Datasource,
        ConnectionType::Datamart,
        ConnectionType::MultiDatasource,
        ConnectionType::MultiDatamart,
    ];

    /// The wire spelling, e.g. `MULTI_DATASOURCE`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionType::Datasource => "DATASOURCE",
            ConnectionType::Datamart => "DATAMART",
            ConnectionType::MultiDatasource => "MULTI_DATASOURCE",
            ConnectionType::MultiDatamart => "MULTI_DATAMART",
        }
    }

    /// Parses a value case-insensitively (`datasource`, `Multi_Datamart`).
    pub fn parse(value: &str) -> Option<ConnectionType> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(value))
    }
}

impl fmt::Display for ConnectionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of summary the metric-summary feature writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SummaryType {
    /// `technicalAndInsightSummary`
    TechnicalAndInsightSummary,
    /// `forecastAndTrendAnalysis`
    ForecastAndTrendAnalysis,
    /// `comparativeAndAnomalyDetection`
    ComparativeAndAnomalyDetection,
    /// `custom`: needs `customSummaryPrompt`.
    Custom,
}

impl SummaryType {
    /// Every value, in the order the API documents them.
    pub const ALL: [SummaryType; 4] = [
        SummaryType::TechnicalAndInsightSummary,
        SummaryType::ForecastAndTrendAnalysis,
        SummaryType::ComparativeAndAnomalyDetection,
        SummaryType::Custom,
    ];

    /// The wire spelling, e.g. `forecastAndTrendAnalysis`.
    pub fn as_str(self) -> &'static str {
        match self {
            SummaryType::TechnicalAndInsightSummary => "technicalAndInsightSummary",
            SummaryType::ForecastAndTrendAnalysis => "forecastAndTrendAnalysis",
            SummaryType::ComparativeAndAnomalyDetection => "comparativeAndAnomalyDetection",
            SummaryType::Custom => "custom",
        }
    }

    /// Parses a value case-insensitively.
    pub fn parse(value: &str) -> Option<SummaryType> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(value))
    }
}

/// The body of `POST` / `PUT /api/v2/workspace`.
///
/// Unknown keys are refused when this is read (the sandbox answers them with
/// `INVALID_REQUEST_BODY`), so a misspelt key in the client fails loudly in every test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkspaceRequest {
    /// Unique in the organisation; identifies the workspace for `PUT`.
    pub name: String,
    /// How the workspace reaches its data.
    pub connection_type: ConnectionType,
    /// Required for [`ConnectionType::Datasource`]; must exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datasource_name: Option<String>,
    /// Required for [`ConnectionType::Datamart`]; must exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datamart_name: Option<String>,
    /// The primary LLM; must exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_name: Option<String>,
    /// The AI-Copilot LLMs; each must exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ai_copilot_llms: Option<Vec<String>>,
    /// AI metric suggestions; `false` when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_enable_metric_suggestions: Option<bool>,
    /// Metric summary; `false` when omitted. Needs `summaryType` when true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_enable_metric_summary: Option<bool>,
    /// The kind of metric summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary_type: Option<SummaryType>,
    /// The prompt for a `custom` summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_summary_prompt: Option<String>,
    /// The theme; must exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theme_name: Option<String>,
}

impl WorkspaceRequest {
    /// The first rule between the optional settings that this request breaks, if any: a
    /// metric summary needs a summary type, and a `custom` summary needs its prompt
    /// (`API.md`). A summary type or a prompt given while the metric summary is off is no
    /// breach: the API documents no rule against it, so it is sent as it is.
    pub fn settings_problem(&self) -> Option<SettingsProblem> {
        if self.is_enable_metric_summary == Some(true) && self.summary_type.is_none() {
            return Some(SettingsProblem::SummaryTypeMissing);
        }
        let no_prompt = self
            .custom_summary_prompt
            .as_deref()
            .is_none_or(|prompt| prompt.trim().is_empty());
        if self.summary_type == Some(SummaryType::Custom) && no_prompt {
            return Some(SettingsProblem::CustomPromptMissing);
        }
        None
    }
}

/// A rule between optional settings that a request breaks: the API refuses such a body
/// with `INVALID_REQUEST_BODY`. Displayed for the operator, saying what to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingsProblem {
    /// `isEnableMetricSummary` is true and `summaryType` is absent.
    SummaryTypeMissing,
    /// `summaryType` is `custom` and `customSummaryPrompt` is absent.
    CustomPromptMissing,
}

impl fmt::Display for SettingsProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingsProblem::SummaryTypeMissing => write!(
                f,
                "isEnableMetricSummary is true but summaryType is empty; give one of {}, or set isEnableMetricSummary to false",
                SummaryType::ALL.map(SummaryType::as_str).join(", ")
            ),
            SettingsProblem::CustomPromptMissing => f.write_str(
                "summaryType is custom but customSummaryPrompt is empty; write the prompt in customSummaryPrompt, or choose another summaryType",
            ),
        }
    }
}

/// A request field a CSV column can map to. The wire names live in [`WorkspaceRequest`];
/// these only match header names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
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
    /// Every field, in the order of the request body.
    pub const ALL: [Field; 11] = [
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
    pub fn key(self) -> &'static str {
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
    pub fn from_header(header: &str) -> Option<Field> {
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

/// A header as it is matched: lower case, without `_`, `-` and spaces.
pub fn normalise(header: &str) -> String {
    header
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The response body of every workspace call: exactly one of `data` and `error` is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The workspace, on success.
    pub data: Option<WorkspaceRef>,
    /// What went wrong, on failure.
    pub error: Option<ApiError>,
}

impl Envelope {
    /// A success envelope naming the workspace.
    pub fn ok(name: impl Into<String>) -> Envelope {
        Envelope {
            data: Some(WorkspaceRef { name: name.into() }),
            error: None,
        }
    }

    /// A failure envelope, with the code's usual HTTP status.
    pub fn err(code: ErrorCode, message: impl Into<String>) -> Envelope {
        Envelope::err_with_status(code, code.http_status(), message)
    }

    /// A failure envelope answered with another HTTP status than the code's usual one
    /// (a 413 for an oversized body is still `INVALID_REQUEST_BODY`).
    pub fn err_with_status(code: ErrorCode, status: u16, message: impl Into<String>) -> Envelope {
        Envelope {
            data: None,
            error: Some(ApiError {
                code: code.as_str().to_owned(),
                message: message.into(),
                status: Some(status),
            }),
        }
    }
}

/// `data` of a success envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceRef {
    /// The workspace's name.
    pub name: String,
}

/// `error` of a failure envelope. `code` stays a string: a real server may send codes we
/// do not know, and the results file must carry them verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// Machine-readable code, e.g. `INVALID_DATASOURCE_NAME`.
    pub code: String,
    /// Human-readable text.
    #[serde(default)]
    pub message: String,
    /// The HTTP status, repeated (the vendor's other endpoints include it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

/// The error codes the API documents (`API.md`), plus `TOO_MANY_REQUESTS` from the proxies
/// in front of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 400: missing or invalid parameters.
    InvalidRequestBody,
    /// 400: the name is taken.
    WorkspaceNameAlreadyExists,
    /// 400: datasource not found.
    InvalidDatasourceName,
    /// 400: datamart not found.
    InvalidDatamartName,
    /// 400: unknown LLM.
    InvalidLlmName,
    /// 400: unknown LLM in the copilot list.
    InvalidAiCopilotLlms,
    /// 400: unknown theme.
    InvalidThemeName,
    /// 401: invalid or missing key.
    InvalidDataAppApiKey,
    /// 400: `PUT` on a name that does not exist (documented); the sandbox also answers it
    /// to a `DELETE` of such a name, whose code the vendor does not show.
    WorkspaceDoesNotExist,
    /// 500: server error.
    InternalServerError,
    /// 429: too many requests. Not the API's own: proxies in front of it send this.
    TooManyRequests,
}

impl ErrorCode {
    /// The wire spelling, e.g. `INVALID_THEME_NAME`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequestBody => "INVALID_REQUEST_BODY",
            ErrorCode::WorkspaceNameAlreadyExists => "WORKSPACE_NAME_ALREADY_EXISTS",
            ErrorCode::InvalidDatasourceName => "INVALID_DATASOURCE_NAME",
            ErrorCode::InvalidDatamartName => "INVALID_DATAMART_NAME",
            ErrorCode::InvalidLlmName => "INVALID_LLM_NAME",
            ErrorCode::InvalidAiCopilotLlms => "INVALID_AI_COPILOT_LLMS",
            ErrorCode::InvalidThemeName => "INVALID_THEME_NAME",
            ErrorCode::InvalidDataAppApiKey => "INVALID_DATA_APP_API_KEY",
            ErrorCode::WorkspaceDoesNotExist => "WORKSPACE_DOES_NOT_EXIST",
            ErrorCode::InternalServerError => "INTERNAL_SERVER_ERROR",
            ErrorCode::TooManyRequests => "TOO_MANY_REQUESTS",
        }
    }

    /// The HTTP status the API answers this code with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidDataAppApiKey => 401,
            ErrorCode::InternalServerError => 500,
            ErrorCode::TooManyRequests => 429,
            _ => 400,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_type_parses_any_case() {
        assert_eq!(
            ConnectionType::parse("multi_datamart"),
            Some(ConnectionType::MultiDatamart)
        );
        assert_eq!(
            ConnectionType::parse("DataSource"),
            Some(ConnectionType::Datasource)
        );
        assert_eq!(ConnectionType::parse("DATASORCE"), None);
    }

    #[test]
    fn request_serialises_camel_case_and_skips_absent_fields() {
        let body = WorkspaceRequest {
            name: "Acme".into(),
            connection_type: ConnectionType::Datasource,
            datasource_name: Some("postgres-main".into()),
            datamart_name: None,
            llm_name: None,
            ai_copilot_llms: None,
            is_enable_metric_suggestions: Some(true),
            is_enable_metric_summary: None,
            summary_type: Some(SummaryType::ForecastAndTrendAnalysis),
            custom_summary_prompt: None,
            theme_name: None,
        };
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "name": "Acme",
                "connectionType": "DATASOURCE",
                "datasourceName": "postgres-main",
                "isEnableMetricSuggestions": true,
                "summaryType": "forecastAndTrendAnalysis"
            })
        );
    }

    fn summary(enabled: Option<bool>, kind: Option<SummaryType>, prompt: &str) -> WorkspaceRequest {
        WorkspaceRequest {
            name: "Acme".into(),
            connection_type: ConnectionType::MultiDatamart,
            datasource_name: None,
            datamart_name: None,
            llm_name: None,
            ai_copilot_llms: None,
            is_enable_metric_suggestions: None,
            is_enable_metric_summary: enabled,
            summary_type: kind,
            custom_summary_prompt: Some(prompt.to_owned()).filter(|p| !p.is_empty()),
            theme_name: None,
        }
    }

    #[test]
    fn a_metric_summary_needs_its_type_and_a_custom_one_its_prompt() {
        use SettingsProblem::*;
        use SummaryType::*;
        let cases = [
            (Some(true), None, "", Some(SummaryTypeMissing)),
            (Some(true), None, "write it short", Some(SummaryTypeMissing)),
            (Some(true), Some(ForecastAndTrendAnalysis), "", None),
            (Some(true), Some(Custom), "", Some(CustomPromptMissing)),
            (Some(true), Some(Custom), "  ", Some(CustomPromptMissing)),
            (Some(true), Some(Custom), "write it short", None),
            // The prompt is required whenever the type is custom, summary on or not.
            (None, Some(Custom), "", Some(CustomPromptMissing)),
            (Some(false), Some(Custom), "", Some(CustomPromptMissing)),
            // Nothing forbids a type or a prompt while the summary is off: they are sent.
            (Some(false), Some(ComparativeAndAnomalyDetection), "", None),
            (None, Some(TechnicalAndInsightSummary), "", None),
            (None, None, "a prompt alone", None),
            (Some(false), None, "", None),
            (None, None, "", None),
        ];
        for (enabled, kind, prompt, problem) in cases {
            assert_eq!(
                summary(enabled, kind, prompt).settings_problem(),
                problem,
                "{enabled:?} {kind:?} {prompt:?}"
            );
        }
    }

    #[test]
    fn settings_problems_say_what_to_give() {
        assert_eq!(
            SettingsProblem::SummaryTypeMissing.to_string(),
            "isEnableMetricSummary is true but summaryType is empty; give one of technicalAndInsightSummary, forecastAndTrendAnalysis, comparativeAndAnomalyDetection, custom, or set isEnableMetricSummary to false"
        );
        assert!(
            SettingsProblem::CustomPromptMissing
                .to_string()
                .contains("write the prompt in customSummaryPrompt")
        );
    }

    #[test]
    fn summary_types_parse_any_case_and_only_the_four() {
        assert_eq!(SummaryType::parse("CUSTOM"), Some(SummaryType::Custom));
        assert_eq!(
            SummaryType::parse("forecastandtrendanalysis"),
            Some(SummaryType::ForecastAndTrendAnalysis)
        );
        assert_eq!(SummaryType::parse("forecast"), None);
        assert_eq!(SummaryType::parse("haiku"), None);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = serde_json::from_str::<WorkspaceRequest>(
            r#"{"name":"a","connectionType":"DATAMART","colour":"red"}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }

    #[test]
    fn an_unknown_workspace_is_a_400_workspace_does_not_exist() {
        let code = ErrorCode::WorkspaceDoesNotExist;
        assert_eq!(code.as_str(), "WORKSPACE_DOES_NOT_EXIST");
        assert_eq!(code.http_status(), 400);
    }

    #[test]
    fn error_envelope_carries_code_message_and_status() {
        let json = serde_json::to_value(Envelope::err(ErrorCode::InvalidThemeName, "no")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "data": null,
                "error": {"code": "INVALID_THEME_NAME", "message": "no", "status": 400}
            })
        );
    }
}
