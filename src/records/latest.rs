//! The latest record of each identity in a results file, compactly: 24 bytes per identity
//! in one sorted array (its identity's hash, its [`Prior`] packed, and a word of values and
//! flags), not a hash map, whose buckets would take twice that and more while it grows.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::Prior;

/// The bits of an entry's word that hold the hash of the values its record was sent with.
pub(super) const VALUES: u64 = (1 << 60) - 1;
/// This run wrote a record of the identity.
pub(super) const WRITTEN: u64 = 1 << 63;
/// While the file is read: the record says all its run knew (a `PUT` whose values are
/// unknown), so earlier records of its identity add nothing to it.
const COMPLETE: u64 = 1 << 61;
/// While the file is read: the record was obtained from this run's target.
const ON_TARGET: u64 = 1 << 60;

/// Identities and their latest records: pushed in file order while the file is read,
/// then [`Latest::settle`]d once.
#[derive(Default)]
pub(super) struct Latest {
    entries: Vec<Entry>,
}

struct Entry {
    key: u64,
    packed: u64,
    word: AtomicU64,
}

/// What one record of the file says, as [`Latest::push`] takes it.
pub(super) struct Record {
    pub(super) key: u64,
    pub(super) prior: Prior,
    pub(super) values: u64,
    /// See [`COMPLETE`].
    pub(super) complete: bool,
    pub(super) on_target: bool,
}

impl Latest {
    /// Takes in one record, after those before it in the file.
    pub(super) fn push(&mut self, record: Record) {
        let prior = record.prior;
        let flags = if record.complete { COMPLETE } else { 0 }
            | if record.on_target { ON_TARGET } else { 0 };
        self.entries.push(Entry {
            key: record.key,
            packed: prior.pack(),
            word: AtomicU64::new((record.values & VALUES) | flags),
        });
    }

    /// Keeps the latest record of each identity, with what its earlier records said of
    /// lost answers: the last record wins, but a lost answer of any earlier record still
    /// counts (a later run that sent nothing, or got a refusal, did not undo it), unless
    /// the later record says all its run knew. Returns where the records start that are
    /// `created` only by what came before them (a rollback would delete their workspace).
    pub(super) fn settle(&mut self) -> Vec<u64> {
        // Offsets grow in file order: sorted by both, each identity's records keep it.
        self.entries
            .sort_unstable_by_key(|e| (e.key, Prior::unpack(e.packed).offset));
        let mut became_created = Vec::new();
        let mut kept = 0;
        for at in 0..self.entries.len() {
            let word = self.entries[at].word.load(Ordering::Relaxed);
            let mut prior = Prior::unpack(self.entries[at].packed);
            let same = kept > 0 && self.entries[kept - 1].key == self.entries[at].key;
            if same && word & COMPLETE == 0 {
                let earlier = Prior::unpack(self.entries[kept - 1].packed);
                prior.maybe_created |= earlier.maybe_created;
                prior.absent_before |= earlier.absent_before;
                if !prior.created && becomes_created(&prior, word & ON_TARGET != 0) {
                    prior.created = true;
                    became_created.push(prior.offset);
                }
            }
            let slot = if same { kept - 1 } else { kept };
            self.entries[slot] = Entry {
                key: self.entries[at].key,
                packed: prior.pack(),
                word: AtomicU64::new(word & !(COMPLETE | ON_TARGET)),
            };
            if !same {
                kept += 1;
            }
        }
        self.entries.truncate(kept);
        self.entries.shrink_to_fit();
        became_created
    }

    /// The latest record of the identity `key`, and its word.
    pub(super) fn get(&self, key: u64) -> Option<(Prior, &AtomicU64)> {
        let entry = &self.entries[self.find(key)?];
        Some((Prior::unpack(entry.packed), &entry.word))
    }

    /// Each identity's latest record, and its word.
    pub(super) fn iter(&self) -> impl Iterator<Item = (Prior, &AtomicU64)> + '_ {
        self.entries
            .iter()
            .map(|e| (Prior::unpack(e.packed), &e.word))
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Where `key` is. The keys are hashes, spread evenly over `u64`: its place is about
    /// `key / 2^64` of the way along, so the search starts there and widens until it has
    /// the key between its bounds (a few steps), rather than halving the whole array (20
    /// steps, each a miss of the cache, for a million).
    fn find(&self, key: u64) -> Option<usize> {
        let len = self.entries.len();
        if len == 0 {
            return None;
        }
        let guess = ((u128::from(key) * len as u128) >> 64) as usize;
        let (mut low, mut high, mut step) = (guess, guess + 1, 16);
        while low > 0 && self.entries[low].key > key {
            low = low.saturating_sub(step);
            step *= 2;
        }
        while high < len && self.entries[high - 1].key < key {
            high = (high + step).min(len);
            step *= 2;
        }
        let window = &self.entries[low..high];
        let at = window.partition_point(|e| e.key < key);
        (window.get(at)?.key == key).then_some(low + at)
    }
}

/// A record not created as far as it says, but an attempt of it may have created the
/// workspace, which the list before that run did not show: if it exists, it is ours, and a
/// rollback deletes it (absent, if that attempt made none).
pub(super) fn becomes_created(prior: &Prior, on_target: bool) -> bool {
    !prior.success && prior.maybe_created && prior.absent_before && on_target
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prior(offset: u64) -> Prior {
        Prior {
            offset,
            status: None,
            named: true,
            values: 0,
            success: false,
            maybe_created: false,
            absent_before: false,
            created: false,
        }
    }

    #[test]
    fn every_key_is_found_and_no_other() {
        use std::hash::{BuildHasher, RandomState};
        let hasher = RandomState::new();
        let mut latest = Latest::default();
        for i in 0..50_000u64 {
            latest.push(Record {
                key: hasher.hash_one(i),
                prior: prior(i),
                values: i + 1,
                complete: false,
                on_target: true,
            });
        }
        latest.settle();
        assert_eq!(latest.len(), 50_000);
        for i in 0..50_000u64 {
            let (found, word) = latest.get(hasher.hash_one(i)).unwrap();
            assert_eq!(found.offset, i);
            assert_eq!(word.load(Ordering::Relaxed), i + 1);
        }
        for i in 50_000..60_000u64 {
            assert!(latest.get(hasher.hash_one(i)).is_none());
        }
        for key in [0, 1, u64::MAX] {
            assert_eq!(
                latest.get(key).is_some(),
                (0..50_000u64).any(|i| hasher.hash_one(i) == key)
            );
        }
    }

    #[test]
    fn the_last_record_wins_and_keeps_the_lost_answers_before_it() {
        let mut latest = Latest::default();
        let lost = Prior {
            maybe_created: true,
            absent_before: true,
            created: true,
            ..prior(10)
        };
        for (prior, complete) in [(lost, false), (prior(20), false), (prior(30), false)] {
            latest.push(Record {
                key: 7,
                prior,
                values: 1,
                complete,
                on_target: true,
            });
        }
        latest.push(Record {
            key: 9,
            prior: lost,
            values: 1,
            complete: false,
            on_target: true,
        });
        latest.push(Record {
            key: 9,
            prior: prior(40),
            values: 2,
            complete: true,
            on_target: true,
        });
        // The first record of 7 was created already, as its own flags say; the later
        // ones become so by what came before them.
        assert_eq!(latest.settle(), [20, 30]);
        let (seven, _) = latest.get(7).unwrap();
        assert_eq!(
            (seven.offset, seven.maybe_created, seven.created),
            (30, true, true)
        );
        let (nine, word) = latest.get(9).unwrap();
        assert_eq!((nine.offset, nine.maybe_created), (40, false));
        assert_eq!(word.load(Ordering::Relaxed), 2);
        assert_eq!(latest.len(), 2);
    }
}
