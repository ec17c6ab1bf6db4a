//! clap's enums and groups turned into `model`'s settings.

use super::{CsvArgs, LogFormatArg, OnExistsArg, ProgressArg};
use crate::input::CsvFormat;
use crate::model;

impl From<CsvArgs> for CsvFormat {
    fn from(args: CsvArgs) -> CsvFormat {
        CsvFormat {
            delimiter: args.delimiter,
            encoding: args.encoding,
        }
    }
}

impl From<OnExistsArg> for model::OnExists {
    fn from(arg: OnExistsArg) -> model::OnExists {
        match arg {
            OnExistsArg::Skip => model::OnExists::Skip,
            OnExistsArg::Fail => model::OnExists::Fail,
            OnExistsArg::Update => model::OnExists::Update,
        }
    }
}

impl From<ProgressArg> for model::ProgressMode {
    fn from(arg: ProgressArg) -> model::ProgressMode {
        match arg {
            ProgressArg::Auto => model::ProgressMode::Auto,
            ProgressArg::Always => model::ProgressMode::Always,
            ProgressArg::Never => model::ProgressMode::Never,
        }
    }
}

impl From<LogFormatArg> for model::LogFormat {
    fn from(arg: LogFormatArg) -> model::LogFormat {
        match arg {
            LogFormatArg::Text => model::LogFormat::Text,
            LogFormatArg::Json => model::LogFormat::Json,
        }
    }
}
