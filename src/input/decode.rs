//! Files as spreadsheets write them, read as the UTF-8 text the CSV reader parses.
//!
//! The byte-order mark decides the encoding (UTF-8, UTF-16 LE or BE); without one,
//! `--encoding`, else UTF-8. Transcoding is `encoding_rs`'s. A file that is not UTF-8 and
//! names no encoding is refused before any request, saying how to read or save it, rather
//! than sent with names gone wrong. The delimiter is chosen in `csv_lines`.

use std::io::Read;

use encoding_rs::{Encoding, UTF_8};

/// How an input CSV is written, as far as given: what is not given is found out.
#[derive(Debug, Clone, Copy, Default)]
pub struct CsvFormat {
    /// The field separator; `None` to take the one the header line uses.
    pub delimiter: Option<u8>,
    /// The encoding of a file without a byte-order mark; `None` for UTF-8.
    pub encoding: Option<&'static Encoding>,
}

/// `--delimiter`: `,` `;` `tab` (or a tab itself), `|`.
pub fn parse_delimiter(text: &str) -> Result<u8, String> {
    match text {
        "," | "comma" => Ok(b','),
        ";" | "semicolon" => Ok(b';'),
        "\t" | "\\t" | "tab" | "TAB" => Ok(b'\t'),
        "|" | "pipe" => Ok(b'|'),
        _ => Err(format!("'{text}' is not one of ',' ';' 'tab' '|'")),
    }
}

/// `--encoding`: any WHATWG label (`windows-1252`, `cp1252`, `latin1`, `utf-16le`, ...).
pub fn parse_encoding(text: &str) -> Result<&'static Encoding, String> {
    let encoding = Encoding::for_label(text.trim().as_bytes()).ok_or_else(|| {
        format!(
            "'{text}' is not an encoding dbprov knows: try windows-1252, latin1, utf-16le or utf-8"
        )
    })?;
    // `for_label` maps the UTF-16 labels to themselves, but a few labels name an encoding
    // that only decodes to replacement characters.
    if encoding == encoding_rs::REPLACEMENT {
        return Err(format!(
            "'{text}' cannot be decoded; save the file as CSV UTF-8"
        ));
    }
    Ok(encoding)
}

/// Why an input cannot be read as text.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Bytes that are not UTF-8, and no `--encoding`.
    #[error(
        "{input} is not UTF-8 (line {line} has the byte 0x{byte:02X}). If Excel saved it as plain \"CSV\", give --encoding windows-1252; or save it from Excel as \"CSV UTF-8\""
    )]
    NotUtf8 {
        /// The input, as given.
        input: String,
        /// The first line with a byte that is not UTF-8.
        line: u64,
        /// That byte.
        byte: u8,
    },
    /// NUL bytes between the letters: UTF-16 without its byte-order mark.
    #[error(
        "{input} looks like UTF-16 without a byte-order mark: give --encoding utf-16le (or utf-16be), or save it from Excel as \"CSV UTF-8\""
    )]
    Utf16WithoutBom {
        /// The input, as given.
        input: String,
    },
    /// `--encoding` names a legacy encoding, but the file is UTF-8 with letters beyond
    /// ASCII: decoding it again would garble every such name.
    #[error(
        "{input} is UTF-8 already (line {line} has letters beyond ASCII in UTF-8), but --encoding says {encoding}: leave --encoding out"
    )]
    AlreadyUtf8 {
        /// The input, as given.
        input: String,
        /// The first line with such letters.
        line: u64,
        /// The encoding given.
        encoding: &'static str,
    },
    /// Reading failed.
    #[error("cannot read {input}")]
    Io {
        /// The input, as given.
        input: String,
        /// Why.
        source: std::io::Error,
    },
}

/// What the text of an input was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// UTF-8, read as it is; `marked` when it begins with a byte-order mark (as Excel's
    /// "CSV UTF-8" does).
    Utf8 {
        /// It begins with a UTF-8 byte-order mark.
        marked: bool,
    },
    /// Another encoding, transcoded: a cell with U+FFFD had bytes that encoding cannot
    /// hold.
    From(&'static Encoding),
}

/// The input as UTF-8 text (see the module's documentation). Looks at the start of the
/// input only: a byte that is not UTF-8 further on makes its row malformed, unless the
/// input is a file, which is checked whole before the job (`input::count_rows`).
pub fn utf8_reader(
    reader: Box<dyn Read + Send>,
    encoding: Option<&'static Encoding>,
    input: &str,
) -> Result<(Box<dyn Read + Send>, Decoded), DecodeError> {
    let mut reader = reader;
    let start = read_start(&mut reader).map_err(|source| DecodeError::Io {
        input: input.to_owned(),
        source,
    })?;
    let by_bom = Encoding::for_bom(&start).map(|(encoding, _)| encoding);
    let encoding = match (by_bom, encoding) {
        (Some(by_bom), _) => by_bom,
        (None, Some(given)) if given != UTF_8 => {
            if let Some(line) = first_line_beyond_ascii(&start) {
                return Err(DecodeError::AlreadyUtf8 {
                    input: input.to_owned(),
                    line,
                    encoding: given.name(),
                });
            }
            given
        }
        (None, _) => {
            check_utf8(&start, input)?;
            UTF_8
        }
    };
    // What was looked at is read again, then the rest.
    let reader: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(start).chain(reader));
    if encoding == UTF_8 {
        // The reader of CSV lines drops a UTF-8 byte-order mark itself, and finds a byte
        // that is not UTF-8 in the row it spoils.
        let marked = by_bom == Some(UTF_8);
        return Ok((Box::new(reader), Decoded::Utf8 { marked }));
    }
    // A legacy encoding given for text that turns out to be UTF-8 (past the start) stops
    // the reading there: every row before it was ASCII, the same in both.
    let reader: Box<dyn Read + Send> = match by_bom.is_none() && encoding.is_ascii_compatible() {
        true => Box::new(Utf8Watch {
            inner: reader,
            pending: Vec::new(),
            line: 1,
            done: false,
            encoding,
            input: input.to_owned(),
        }),
        false => Box::new(reader),
    };
    let decoder = encoding_rs_io::DecodeReaderBytesBuilder::new()
        .encoding(Some(encoding))
        .build(reader);
    Ok((Box::new(decoder), Decoded::From(encoding)))
}

/// Watches the bytes of an input read in a legacy `encoding` until its first character
/// beyond ASCII: if that is a UTF-8 sequence, the input is UTF-8 after all, and reading
/// fails with [`DecodeError::AlreadyUtf8`] before any row holding it is decoded. A file
/// meets it before the job, when its rows are counted; standard input, where it is.
struct Utf8Watch<R> {
    inner: R,
    /// The bytes of a character beyond ASCII, as far as read.
    pending: Vec<u8>,
    line: u64,
    /// The first such character was seen: nothing more to watch.
    done: bool,
    encoding: &'static Encoding,
    input: String,
}

impl<R: Read> Read for Utf8Watch<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        if self.done {
            return Ok(read);
        }
        if read == 0 {
            self.done = true; // a character cut by the end: not UTF-8
            return Ok(0);
        }
        for &byte in &buffer[..read] {
            if self.pending.is_empty() && byte.is_ascii() {
                self.line += u64::from(byte == b'\n');
                continue;
            }
            self.pending.push(byte);
            match std::str::from_utf8(&self.pending) {
                Ok(_) => {
                    let error = DecodeError::AlreadyUtf8 {
                        input: self.input.clone(),
                        line: self.line,
                        encoding: self.encoding.name(),
                    };
                    return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, error));
                }
                Err(error) if error.error_len().is_none() => {}
                Err(_) => {
                    self.done = true;
                    return Ok(read);
                }
            }
        }
        Ok(read)
    }
}

/// The start of the input that is looked at: what the first reads give, at least the 4
/// bytes a byte-order mark may take (a pipe may give fewer at first), at most 64 KiB.
fn read_start(reader: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut start = vec![0; 64 * 1024];
    let mut filled = 0;
    while filled < 4 {
        match reader.read(&mut start[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    start.truncate(filled);
    Ok(start)
}

/// Refuses a start of input that is not UTF-8 (a sequence cut at the buffer's end is not
/// counted), or that looks like UTF-16 without its mark.
fn check_utf8(start: &[u8], input: &str) -> Result<(), DecodeError> {
    let nuls = start.iter().filter(|&&b| b == 0).count();
    if nuls > 0 && nuls * 4 >= start.len() {
        return Err(DecodeError::Utf16WithoutBom {
            input: input.to_owned(),
        });
    }
    match std::str::from_utf8(start) {
        Ok(_) => Ok(()),
        Err(error) if error.error_len().is_none() => Ok(()), // cut at the buffer's end
        Err(error) => {
            let at = error.valid_up_to();
            Err(DecodeError::NotUtf8 {
                input: input.to_owned(),
                line: line_of(start, at),
                byte: start[at],
            })
        }
    }
}

/// The line of the first character beyond ASCII, if the bytes are UTF-8 and have one.
fn first_line_beyond_ascii(start: &[u8]) -> Option<u64> {
    let valid = match std::str::from_utf8(start) {
        Ok(text) => text,
        Err(error) if error.error_len().is_none() => {
            std::str::from_utf8(&start[..error.valid_up_to()]).ok()?
        }
        Err(_) => return None,
    };
    let at = valid.bytes().position(|b| !b.is_ascii())?;
    Some(line_of(start, at))
}

/// The 1-based line number of byte `at`.
fn line_of(bytes: &[u8], at: usize) -> u64 {
    1 + bytes[..at].iter().filter(|&&b| b == b'\n').count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8], encoding: Option<&'static Encoding>) -> Result<String, String> {
        let (mut reader, _) = utf8_reader(
            Box::new(std::io::Cursor::new(bytes.to_vec())),
            encoding,
            "t",
        )
        .map_err(|e| e.to_string())?;
        let mut text = Vec::new();
        reader.read_to_end(&mut text).unwrap();
        Ok(String::from_utf8(text).unwrap())
    }

    #[test]
    fn utf8_is_read_as_it_is_with_or_without_its_mark() {
        assert_eq!(
            decode(b"name\nCaf\xc3\xa9\n", None).unwrap(),
            "name\nCafé\n"
        );
        assert_eq!(
            decode(b"\xef\xbb\xbfname\n", None).unwrap(),
            "\u{feff}name\n",
            "the CSV reader drops the mark"
        );
    }

    #[test]
    fn utf16_is_read_by_its_mark() {
        let mut le = vec![0xff, 0xfe];
        le.extend(
            "name\tx\r\nCafé\t東京\r\n"
                .encode_utf16()
                .flat_map(u16::to_le_bytes),
        );
        assert_eq!(decode(&le, None).unwrap(), "name\tx\r\nCafé\t東京\r\n");
        let mut be = vec![0xfe, 0xff];
        be.extend("name\n".encode_utf16().flat_map(u16::to_be_bytes));
        assert_eq!(decode(&be, None).unwrap(), "name\n");
    }

    #[test]
    fn windows_1252_needs_to_be_named() {
        let bytes = b"name\nok\nCaf\xe9\n";
        let refused = decode(bytes, None).unwrap_err();
        assert!(refused.contains("line 3"), "{refused}");
        assert!(refused.contains("--encoding windows-1252"), "{refused}");
        assert!(refused.contains("CSV UTF-8"), "{refused}");
        let cp1252 = parse_encoding("windows-1252").unwrap();
        assert_eq!(decode(bytes, Some(cp1252)).unwrap(), "name\nok\nCafé\n");
    }

    #[test]
    fn a_legacy_encoding_over_utf8_is_refused() {
        let cp1252 = parse_encoding("cp1252").unwrap();
        let refused = decode("name\nCafé\n".as_bytes(), Some(cp1252)).unwrap_err();
        assert!(refused.contains("UTF-8 already"), "{refused}");
        // Plain ASCII reads the same in both.
        assert_eq!(
            decode(b"name\nCafe\n", Some(cp1252)).unwrap(),
            "name\nCafe\n"
        );
    }

    #[test]
    fn a_whole_utf8_file_under_a_legacy_encoding_is_refused_wherever_its_letters_are() {
        let cp1252 = parse_encoding("windows-1252").unwrap();
        let read = |bytes: &[u8]| {
            let (mut reader, _) = utf8_reader(
                Box::new(std::io::Cursor::new(bytes.to_vec())),
                Some(cp1252),
                "t",
            )
            .map_err(|e| e.to_string())?;
            let mut text = String::new();
            reader.read_to_string(&mut text).map_err(|e| e.to_string())
        };
        let mut text = "name\n".repeat(30_000);
        text.push_str("Caf\u{e9}\n");
        let refused = read(text.as_bytes()).unwrap_err();
        assert!(refused.contains("line 30001"), "{refused}");
        // A multi-byte letter cut by the buffer's end is still UTF-8.
        let cut = format!("{}\u{e9}\n", "x".repeat(64 * 1024 - 1));
        assert!(read(cut.as_bytes()).is_err());
        assert!(read(&b"name\nCaf\xe9\n"[..]).is_ok());
        assert!(read(&b"name\nCafe\n"[..]).is_ok());
    }

    #[test]
    fn a_mark_that_comes_a_byte_at_a_time_is_still_seen() {
        /// A pipe that gives one byte per read.
        struct Trickle(std::vec::IntoIter<u8>);
        impl Read for Trickle {
            fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
                match (self.0.next(), buffer.first_mut()) {
                    (Some(byte), Some(slot)) => {
                        *slot = byte;
                        Ok(1)
                    }
                    _ => Ok(0),
                }
            }
        }
        let mut bytes = vec![0xff, 0xfe];
        bytes.extend("name\nCafé\n".encode_utf16().flat_map(u16::to_le_bytes));
        let (mut reader, decoded) =
            utf8_reader(Box::new(Trickle(bytes.into_iter())), None, "t").unwrap();
        assert_eq!(decoded, Decoded::From(encoding_rs::UTF_16LE));
        let mut text = String::new();
        reader.read_to_string(&mut text).unwrap();
        assert_eq!(text, "name\nCafé\n");
    }

    #[test]
    fn a_legacy_encoding_over_utf8_stops_reading_where_the_first_letter_is() {
        let cp1252 = parse_encoding("windows-1252").unwrap();
        let mut text = "name\n".repeat(20_000); // past the start that is looked at
        text.push_str("Zo\u{eb}\n");
        let (mut reader, _) = utf8_reader(
            Box::new(std::io::Cursor::new(text.into_bytes())),
            Some(cp1252),
            "stdin",
        )
        .unwrap();
        let mut out = String::new();
        let error = reader.read_to_string(&mut out).unwrap_err();
        assert!(
            error.to_string().contains("UTF-8 already (line 20001"),
            "{error}"
        );
        // Windows-1252 itself reads on.
        let mut bytes = b"name\n".repeat(20_000);
        bytes.extend_from_slice(b"Zo\xeb\nCaf\xc3\xa9\n");
        let (mut reader, _) =
            utf8_reader(Box::new(std::io::Cursor::new(bytes)), Some(cp1252), "stdin").unwrap();
        let mut out = String::new();
        reader.read_to_string(&mut out).unwrap();
        assert!(out.ends_with("Zo\u{eb}\nCaf\u{c3}\u{a9}\n"));
    }

    #[test]
    fn utf16_without_its_mark_is_refused() {
        let bytes: Vec<u8> = "name\nx\n"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let refused = decode(&bytes, None).unwrap_err();
        assert!(refused.contains("--encoding utf-16le"), "{refused}");
        let utf16le = parse_encoding("utf-16le").unwrap();
        assert_eq!(decode(&bytes, Some(utf16le)).unwrap(), "name\nx\n");
    }

    #[test]
    fn delimiters_and_encodings_parse_by_their_usual_names() {
        assert_eq!(parse_delimiter("tab"), Ok(b'\t'));
        assert_eq!(parse_delimiter(";"), Ok(b';'));
        assert!(parse_delimiter("::").is_err());
        assert_eq!(parse_encoding("latin1").unwrap().name(), "windows-1252");
        assert!(parse_encoding("klingon").is_err());
    }
}
