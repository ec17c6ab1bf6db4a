//! dbprov: bulk-provisions DataBrain workspaces from a CSV of tenants.
//!
//! The modules follow a row's journey; `sandbox` stands apart and shares only the API
//! types of `workspace`.

mod attempt;
pub mod cli;
pub mod client;
pub mod csv_lines;
pub mod decode;
pub mod header;
pub mod input;
pub mod job;
pub mod logging;
pub mod operation;
pub mod output;
pub mod pacing;
pub mod preflight;
pub mod record;
pub mod recording;
pub mod report;
pub mod results;
pub mod resume;
pub mod retry;
pub mod sandbox;
pub mod settings;
pub mod signals;
mod triage;
pub mod workspace;

mod commands;
mod guard;
mod rollback;
mod summary_file;
mod target;

pub use commands::{Exit, error_line, run};
