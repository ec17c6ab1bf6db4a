//! The ledger: the results file, which records what a job did to which workspace on
//! which API. Its rules, in one place ([`ledger`]: what a continued file keeps, replaces
//! and refuses); its format read back ([`format`], [`markers`]); what an earlier file
//! holds ([`prior`]); the writer that appends each final row ([`writer`]); the file itself
//! and its lock ([`file`]); its rewrites ([`rewrite`]); and the file read as a job's input
//! ([`as_input`]).

pub mod as_input;
pub mod file;
pub mod format;
mod latest;
pub mod layout;
pub mod ledger;
pub mod markers;
pub mod prior;
mod reading;
pub mod rewrite;
pub mod sink;
pub mod writer;

pub use file::{FileId, OutputError, OutputFile, same_file};
pub use layout::Layout;
pub use ledger::Final;
pub use markers::OperationsSeen;
pub use prior::{PriorResults, ResumeError};
pub use writer::{Finished, ResultsWriter, Sink};
