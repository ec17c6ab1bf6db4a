//! Server text made fit for a CSV cell and a log line: one line, no control characters,
//! none of the words our own notes are read back by, and never the key.

use crate::model::ApiKey;
use crate::model::notes::READ_BACK;

/// Server text made fit for a CSV cell and a log line: one line, no control characters,
/// and never the key, even from a server that echoes the request's headers.
pub fn clean(text: &str, key: &ApiKey) -> String {
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    defang(&redact(&text, key))
}

/// Server text without the words our own notes are read back by (that an earlier
/// attempt may have created the workspace, that the list did not show it...): a server
/// that wrote them into its message would make the next run, or a rollback, believe
/// them. Each becomes the same words joined by `_`, still readable.
fn defang(text: &str) -> String {
    let mut text = text.to_owned();
    for words in READ_BACK {
        if text.contains(words) {
            text = text.replace(words, &words.replace(' ', "_"));
        }
    }
    text
}

/// `text` without the key: as it is, or percent-encoded in a URL (hex in either case, a
/// space as `%20` or `+`).
pub(crate) fn redact(text: &str, key: &ApiKey) -> String {
    let key = key.expose();
    if key.is_empty() {
        return text.to_owned();
    }
    let encode = |upper: bool, plus: bool| -> String {
        key.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    char::from(b).to_string()
                }
                b' ' if plus => "+".to_owned(),
                _ if upper => format!("%{b:02X}"),
                _ => format!("%{b:02x}"),
            })
            .collect()
    };
    // Servers print keys in another case too (a UUID in lower case, a header echoed
    // lower-cased): letters match whatever their case.
    // A key too short to be a real one would match inside ordinary words in any case.
    let replace = |text: &str, needle: &str| {
        if key.len() >= 8 {
            replace_any_case(text, needle)
        } else {
            text.replace(needle, "<redacted>")
        }
    };
    let mut text = replace(text, key);
    for (upper, plus) in [(true, false), (false, false), (true, true), (false, true)] {
        text = replace(&text, &encode(upper, plus));
    }
    text
}

/// `text` with every occurrence of `needle`, ASCII letters in any case, made `<redacted>`.
fn replace_any_case(text: &str, needle: &str) -> String {
    if needle.is_empty() {
        return text.to_owned();
    }
    // Lower-casing ASCII keeps every byte where it was, so positions carry over.
    let (lower_text, lower_needle) = (text.to_ascii_lowercase(), needle.to_ascii_lowercase());
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(found) = lower_text[at..].find(&lower_needle) {
        out.push_str(&text[at..at + found]);
        out.push_str("<redacted>");
        at += found + lower_needle.len();
    }
    out.push_str(&text[at..]);
    out
}

/// An error code from a server: letters, digits and `_ - .` only, at most 64 of them;
/// `HTTP_<status>` if nothing is left, or if what is left still shows the key.
pub(crate) fn clean_code(code: &str, status: u16, key: &ApiKey) -> String {
    let code: String = redact(code, key)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .take(64)
        .collect();
    let shows_key = !key.expose().is_empty() && code.contains(key.expose());
    if code.is_empty() || shows_key {
        format!("HTTP_{status}")
    } else {
        code
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_text_loses_control_characters_and_the_key() {
        let key = ApiKey::new("canary-key");
        assert_eq!(
            clean("bad\r\n2026 INFO forged Bearer canary-key\t!", &key),
            "bad  2026 INFO forged Bearer <redacted> !"
        );
        assert_eq!(clean_code("BAD\r\nINFO: x", 400, &key), "BADINFOx");
        assert_eq!(clean_code("\r\n", 400, &key), "HTTP_400");
        assert_eq!(clean_code("Bearer canary-key", 400, &key), "Bearerredacted");
        let spaced = ApiKey::new("can ary");
        assert_eq!(clean_code("can ary", 401, &spaced), "redacted");
        assert_eq!(clean("a can%20ary b", &spaced), "a <redacted> b");
        assert_eq!(
            clean("taken (it was not listed before the run)", &key),
            "taken (it_was_not_listed_before_the_run)",
            "a server cannot write our notes"
        );
        let uuid = ApiKey::new("9F3A6C1E-Key");
        assert_eq!(
            clean(
                "authorization: bearer 9f3a6c1e-key; again 9F3A6C1E-KEY",
                &uuid
            ),
            "authorization: bearer <redacted>; again <redacted>"
        );
        let odd = ApiKey::new("dbn+live/KEY 12");
        for encoded in [
            "dbn%2Blive%2FKEY%2012",
            "dbn%2blive%2fKEY%2012",
            "dbn%2blive%2fKEY+12",
        ] {
            assert_eq!(clean(encoded, &odd), "<redacted>", "{encoded}");
        }
    }
}
