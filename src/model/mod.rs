//! Plain types that every layer shares: what a row came to ([`Status`], [`RowOutcome`]),
//! what a job does ([`Operation`]), what a results file recorded ([`Prior`]), and the
//! settings the command line was turned into. Nothing here does I/O, and nothing here
//! imports another module of the crate.

pub mod cells;
pub mod notes;
pub mod operation;
pub mod outcome;
pub mod prior;
pub mod settings;
pub mod status;

pub use operation::Operation;
pub use outcome::{LEGACY_COLUMNS, RESULT_COLUMNS, RowOutcome};
pub use prior::{Earlier, Prior};
pub use settings::{
    ApiKey, Input, LogFormat, MaxFailures, OnExists, Output, ProgressMode, Rate, RateLimit, Shard,
};
pub use status::Status;

/// `1 row`, `2 rows`: a count and its noun, in the number the count asks for.
pub fn counted(n: u64, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}
