//! What the operator sees: log lines on stderr ([`logging`]), the progress bar
//! ([`progress`]) that shares stderr with them ([`stderr`]), the running counts
//! ([`tally`]), the summary at the end ([`summary`]), and Ctrl-C ([`signals`]), handled
//! from the first instant of the process.

pub mod logging;
pub mod metrics;
pub mod progress;
pub mod signals;
pub mod stderr;
pub mod summary;
pub mod tally;
pub mod terminal;

pub use logging::error_line;
pub use summary::Summary;
pub use tally::Tally;
