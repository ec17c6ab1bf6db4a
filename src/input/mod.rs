//! CSV → rows: the text as spreadsheets write it ([`decode`]), records read line by line
//! so that an open quote spoils one row only ([`lines`]), the header ([`header`]), each
//! row's validation into a request ([`row`]), and the reader that streams rows to the job
//! ([`reader`]). A results file read as input is read here too; which of its records are
//! rows, the ledger (`records`) says through [`reader::Recorded`].

pub mod count;
pub mod decode;
pub mod header;
pub mod lines;
mod names;
pub mod reader;
pub mod row;
pub mod shard;

pub use count::{Counted, count_rows, count_rows_to_send};
pub use decode::CsvFormat;
pub use header::Header;
pub use reader::{Admitted, InputError, InputReader, InputRow, Logbook, Recorded};
pub use row::{DUPLICATE_IN_INPUT, RowError};
pub use shard::shard_of;
