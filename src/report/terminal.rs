//! Text from files and servers, made safe to show on a terminal: a control character, a
//! bidirectional override (U+202E, which shows a name reversed), a zero-width or other
//! invisible format character is shown escaped (`\u{202e}`), never acted on.

use std::borrow::Cow;

/// Whether a terminal would act on `c`, or not show it: controls, the bidirectional
/// marks, embeddings, overrides and isolates, zero-width characters, line separators.
fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

/// `text` with every character a terminal would act on, or not show, escaped as Rust
/// escapes it (`\n`, `\u{202e}`); everything else, accents and combining marks
/// included, as it is.
pub fn for_terminal(text: &str) -> Cow<'_, str> {
    let shown_as_is = |c: char| !hidden(c);
    if text.chars().all(shown_as_is) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match shown_as_is(c) {
            true => shown.push(c),
            false => shown.extend(c.escape_debug()),
        }
    }
    Cow::Owned(shown)
}

#[cfg(test)]
mod tests {
    use super::for_terminal;

    #[test]
    fn controls_overrides_and_invisible_characters_are_escaped_and_the_rest_kept() {
        let plain = "Café 'Zürich' \"x\" a\\b 東京 Cafe\u{301}";
        assert_eq!(for_terminal(plain), plain);
        assert_eq!(for_terminal("evil\u{202e}gpj.exe"), "evil\\u{202e}gpj.exe");
        assert_eq!(
            for_terminal("a\u{200b}b\u{2066}c\td\ne\x1b[31m"),
            "a\\u{200b}b\\u{2066}c\\td\\ne\\u{1b}[31m"
        );
    }
}
