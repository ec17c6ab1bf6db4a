//! The names an input has had so far, to find a name given twice: names equal after
//! Unicode NFC are one name, and names that differ only in letter case or inner spaces are
//! told apart but warned of.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

use unicode_normalization::UnicodeNormalization;

use crate::report::terminal::for_terminal;

/// The names read so far (those the results file does not hold: it marks its own): by the
/// hash of their folded form (NFC, lower case, inner spaces as one), 32 bits of the hash
/// of their NFC form (told apart only among names whose folded forms are alike) and the
/// row that had it first: 16 bytes a name.
#[derive(Default)]
pub(super) struct NamesSeen {
    seen: HashMap<u64, (u32, u32)>,
    hasher: RandomState,
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
        let nfc: Cow<str> = match name.is_ascii() {
            true => name.into(), // ASCII is in NFC already
            false => name.nfc().collect::<String>().into(),
        };
        let folded: Vec<String> = nfc.split_whitespace().map(str::to_lowercase).collect();
        let (folded, exact) = (
            self.hasher.hash_one(folded.join(" ")),
            self.hasher.hash_one(nfc.as_ref()) as u32,
        );
        let row = u32::try_from(row).unwrap_or(u32::MAX);
        match self.seen.entry(folded) {
            std::collections::hash_map::Entry::Vacant(vacant) => {
                vacant.insert((exact, row));
                None
            }
            std::collections::hash_map::Entry::Occupied(seen) => {
                let (first_exact, first_row) = *seen.get();
                if first_exact == exact {
                    return Some(Some(first_row));
                }
                tracing::warn!(
                    "row {row}: name \"{}\" differs from row {first_row}'s only in letter case or spaces: both are sent, as two workspaces",
                    for_terminal(written)
                );
                None
            }
        }
    }
}
