//! dbprov: bulk-provisions DataBrain workspaces from a CSV of tenants.
//!
//! The modules are layers, each importing only the layers below it (`ARCHITECTURE.md`
//! lists them; `tests/it/architecture.rs` keeps them so), from the command line down to
//! the plain types every layer shares. `sandbox` stands apart and shares only the API's
//! types.

pub mod api;
pub mod cli;
mod commands;
pub mod input;
pub mod job;
pub mod model;
pub mod pacing;
pub mod records;
pub mod report;
pub mod sandbox;

pub use commands::{Exit, run};
