//! The names an input has had so far, to find a name given twice: names equal after
//! Unicode NFC are one name (for a command that creates), and names that differ only in
//! letter case or inner spaces are told apart but warned of.

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, RandomState};

use unicode_normalization::UnicodeNormalization;

use crate::report::terminal::for_terminal;

/// Near-duplicates warned of one by one; the rest in one line.
const WARNED_AT_MOST: u32 = 20;

/// The names read so far (those the results file does not hold: it marks its own): by the
/// hash of their folded form (NFC, lower case, inner spaces as one), 32 bits of the hash
/// of their exact form (told apart only among names whose folded forms are alike) and the
/// row that had it first: 16 bytes a name. A second spelling of a folded form, and any
/// after it, are kept beside.
#[derive(Default)]
pub(super) struct NamesSeen {
    seen: HashMap<u64, (u32, u32)>,
    spellings: HashMap<(u64, u32), u32>,
    hasher: RandomState,
    warned: u32,
    /// Names are taken as they are written, not after NFC: an update, a delete and a
    /// rollback name workspaces that exist, and the API tells the two forms apart.
    pub(super) exact: bool,
}

impl NamesSeen {
    /// The row that had this name first, if one did: `Some(Some(row))` for a repeat,
    /// `None` for a first. A name that differs from an earlier one only in letter case or
    /// inner spaces is no repeat, but is warned of, naming both rows (`written`: the name
    /// as the file has it): two workspaces will be made where one may have been meant.
    pub(super) fn seen_before(
        &mut self,
        name: &str,
        written: &str,
        row: u64,
    ) -> Option<Option<u32>> {
        let nfc: Cow<str> = match self.exact || name.is_ascii() {
            true => name.into(), // ASCII is in NFC already
            false => name.nfc().collect::<String>().into(),
        };
        // One string a row: its words in lower case, one space between them.
        let mut folded = String::with_capacity(nfc.len());
        for word in nfc.split_whitespace() {
            if !folded.is_empty() {
                folded.push(' ');
            }
            folded.extend(word.chars().flat_map(char::to_lowercase));
        }
        let (folded, exact) = (
            self.hasher.hash_one(&folded),
            self.hasher.hash_one(nfc.as_ref()) as u32,
        );
        let row = u32::try_from(row).unwrap_or(u32::MAX);
        let first_row = match self.seen.entry(folded) {
            Entry::Vacant(vacant) => {
                vacant.insert((exact, row));
                return None;
            }
            Entry::Occupied(seen) => {
                let (first_exact, first_row) = *seen.get();
                if first_exact == exact {
                    return Some(Some(first_row));
                }
                first_row
            }
        };
        // Another spelling: a repeat of itself, or new (and warned of).
        match self.spellings.entry((folded, exact)) {
            Entry::Occupied(spelled) => return Some(Some(*spelled.get())),
            Entry::Vacant(vacant) => {
                vacant.insert(row);
            }
        }
        self.warned += 1;
        match self.warned {
            ..=WARNED_AT_MOST => tracing::warn!(
                "row {row}: name \"{}\" differs from row {first_row}'s only in letter case or spaces: both are sent, as two workspaces (if one was meant, remove the other row)",
                for_terminal(written)
            ),
            n if n == WARNED_AT_MOST + 1 => tracing::warn!(
                "more names differ from earlier ones only in letter case or spaces; they are not listed one by one"
            ),
            _ => {}
        }
        None
    }
}
