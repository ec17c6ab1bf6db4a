//! How a results file is laid out: `,` and LF for scripts; for a spreadsheet (`--excel`),
//! a UTF-8 byte-order mark and CRLF, and `;` when the input had it.

use std::io::Write;

/// How a results file is laid out: `,` and LF for scripts; for a spreadsheet
/// (`--excel`), a UTF-8 byte-order mark and CRLF, so that Excel reads it as UTF-8 and as
/// CSV, and `;` when the input had it (Excel in most of Europe splits on `;`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The field separator.
    pub delimiter: u8,
    /// Lines end with CRLF.
    pub crlf: bool,
    /// The file starts with a UTF-8 byte-order mark.
    pub bom: bool,
}

impl Layout {
    /// For scripts: `,`, LF, no mark.
    pub const PLAIN: Layout = Layout {
        delimiter: b',',
        crlf: false,
        bom: false,
    };

    /// A new results file's: plain, or for a spreadsheet with the input's `delimiter`
    /// when it is `;`.
    pub fn new(excel: bool, input_delimiter: u8) -> Layout {
        match excel {
            false => Layout::PLAIN,
            true => Layout {
                delimiter: if input_delimiter == b';' { b';' } else { b',' },
                crlf: true,
                bom: true,
            },
        }
    }

    /// A results file continued: it keeps its delimiter, line ends and byte-order mark, so
    /// that the rows appended read back like the ones before them.
    pub fn continuing(excel: bool, delimiter: u8, crlf: bool, bom: bool) -> Layout {
        Layout {
            delimiter,
            crlf: excel || crlf,
            bom: excel || bom,
        }
    }

    pub(crate) fn writer<W: Write>(self, out: W) -> csv::Writer<W> {
        let terminator = match self.crlf {
            true => csv::Terminator::CRLF,
            false => csv::Terminator::Any(b'\n'),
        };
        csv::WriterBuilder::new()
            .delimiter(self.delimiter)
            .terminator(terminator)
            .from_writer(out)
    }
}

/// The UTF-8 byte-order mark.
pub(crate) const BOM: &[u8] = b"\xef\xbb\xbf";
