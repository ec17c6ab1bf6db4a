//! The latest record of each identity in a results file, compactly: 32 bytes per identity
//! in one sorted array (its identity's hash, its [`Prior`] packed, the hash of its values,
//! its `_row` and flags), not a hash map, whose buckets would take twice that and more
//! while it grows.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::model::Prior;

/// This run wrote a record of the identity.
pub(super) const WRITTEN: u32 = 1;
/// This run kept the identity's record where it is, as it is (same `_row`, nothing to
/// add): the file's record is this run's row.
pub(super) const IN_PLACE: u32 = 2;
/// A row of this run's input had the name already (for the next one: a duplicate).
pub(super) const READ: u32 = 4;
/// The record has an `_operation`: kept as it is, it needs no cell added.
pub(super) const HAS_OPERATION: u32 = 8;
/// While the file is read: the record says all its run knew (a `PUT` whose values are
/// unknown), so earlier records of its identity add nothing to it.
const COMPLETE: u32 = 16;
/// While the file is read: the record was obtained from this run's target.
const ON_TARGET: u32 = 32;

/// Identities and their latest records: pushed in file order while the file is read,
/// then [`Latest::settle`]d once.
#[derive(Default)]
pub(super) struct Latest {
    entries: Vec<Entry>,
    /// Where the entries whose keys begin with each run of `bits` bits start (and, last,
    /// the end): a key is then among the two or so of its bucket, two misses of the cache
    /// away. 2 to 4 bytes per entry.
    starts: Vec<u32>,
    bits: u32,
}

struct Entry {
    key: u64,
    packed: u64,
    values: u64,
    /// The record's `_row` (`u32::MAX` past it, or none).
    row: u32,
    flags: AtomicU32,
}

impl Default for Entry {
    fn default() -> Entry {
        Entry {
            key: 0,
            packed: 0,
            values: 0,
            row: 0,
            flags: AtomicU32::new(0),
        }
    }
}

/// What one record of the file says, as [`Latest::push`] takes it.
pub(super) struct Record {
    pub(super) key: u64,
    pub(super) prior: Prior,
    pub(super) values: u64,
    pub(super) row: u64,
    /// See [`COMPLETE`].
    pub(super) complete: bool,
    pub(super) on_target: bool,
    pub(super) has_operation: bool,
}

impl Latest {
    /// Takes in one record, after those before it in the file.
    pub(super) fn push(&mut self, record: Record) {
        let flag = |set, flag| if set { flag } else { 0 };
        let flags = flag(record.complete, COMPLETE)
            | flag(record.on_target, ON_TARGET)
            | flag(record.has_operation, HAS_OPERATION);
        self.entries.push(Entry {
            key: record.key,
            packed: record.prior.pack(),
            values: record.values,
            row: u32::try_from(record.row).unwrap_or(u32::MAX),
            flags: AtomicU32::new(flags),
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
            let flags = self.entries[at].flags.load(Ordering::Relaxed);
            let mut prior = Prior::unpack(self.entries[at].packed);
            let same = kept > 0 && self.entries[kept - 1].key == self.entries[at].key;
            if same && flags & COMPLETE == 0 {
                let earlier = Prior::unpack(self.entries[kept - 1].packed);
                prior.maybe_created |= earlier.maybe_created;
                prior.absent_before |= earlier.absent_before;
                if !prior.created && becomes_created(&prior, flags & ON_TARGET != 0) {
                    prior.created = true;
                    became_created.push(prior.offset);
                }
            }
            let slot = if same { kept - 1 } else { kept };
            self.entries[slot] = Entry {
                packed: prior.pack(),
                flags: AtomicU32::new(flags & !(COMPLETE | ON_TARGET)),
                ..std::mem::take(&mut self.entries[at])
            };
            if !same {
                kept += 1;
            }
        }
        self.entries.truncate(kept);
        self.entries.shrink_to_fit();
        self.index();
        became_created
    }

    /// Builds [`Latest::starts`]: a bucket per two entries or so.
    fn index(&mut self) {
        let len = self.entries.len();
        self.bits = (len / 2).max(1).ilog2() + 1;
        let buckets = 1usize << self.bits;
        let mut starts = Vec::with_capacity(buckets + 1);
        let mut at = 0;
        for bucket in 0..buckets {
            while at < len && self.bucket(self.entries[at].key) < bucket {
                at += 1;
            }
            starts.push(at as u32);
        }
        starts.push(len as u32);
        self.starts = starts;
    }

    fn bucket(&self, key: u64) -> usize {
        (key >> (64 - self.bits)) as usize
    }

    /// The latest record of the identity `key`, with its values and its place among the
    /// entries (see [`Prior::entry`]).
    pub(super) fn get(&self, key: u64) -> Option<Prior> {
        let at = self.find(key)?;
        Some(self.prior_at(at))
    }

    fn prior_at(&self, at: usize) -> Prior {
        let entry = &self.entries[at];
        Prior {
            values: entry.values,
            entry: at as u32,
            ..Prior::unpack(entry.packed)
        }
    }

    /// Sets `flags` on the entry at `at` (see [`Prior::entry`]); returns those it had.
    pub(super) fn mark(&self, at: u32, flags: u32) -> u32 {
        self.entries
            .get(at as usize)
            .map_or(0, |e| e.flags.fetch_or(flags, Ordering::Relaxed))
    }

    /// The `_row` of the record at `at`, and its flags.
    pub(super) fn row_and_flags(&self, at: u32) -> (u32, u32) {
        self.entries
            .get(at as usize)
            .map_or((u32::MAX, 0), |e| (e.row, e.flags.load(Ordering::Relaxed)))
    }

    /// Each identity's latest record, and its flags.
    pub(super) fn iter(&self) -> impl Iterator<Item = (Prior, u32)> + '_ {
        (0..self.entries.len()).map(|at| {
            (
                self.prior_at(at),
                self.entries[at].flags.load(Ordering::Relaxed),
            )
        })
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Where `key` is: among the entries of its bucket.
    fn find(&self, key: u64) -> Option<usize> {
        if self.starts.is_empty() {
            return None;
        }
        let bucket = self.bucket(key);
        let (from, to) = (
            self.starts[bucket] as usize,
            self.starts[bucket + 1] as usize,
        );
        let at = from + self.entries[from..to].partition_point(|e| e.key < key);
        (self.entries.get(at)?.key == key && at < to).then_some(at)
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
            entry: 0,
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
                row: i + 1,
                complete: false,
                on_target: true,
                has_operation: true,
            });
        }
        latest.settle();
        assert_eq!(latest.len(), 50_000);
        for i in 0..50_000u64 {
            let found = latest.get(hasher.hash_one(i)).unwrap();
            assert_eq!(found.offset, i);
            assert_eq!(found.values, i + 1);
            assert_eq!(
                latest.row_and_flags(found.entry),
                (i as u32 + 1, HAS_OPERATION)
            );
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
                row: 1,
                complete,
                on_target: true,
                has_operation: true,
            });
        }
        latest.push(Record {
            key: 9,
            prior: lost,
            values: 1,
            row: 2,
            complete: false,
            on_target: true,
            has_operation: true,
        });
        latest.push(Record {
            key: 9,
            prior: prior(40),
            values: 2,
            row: 2,
            complete: true,
            on_target: true,
            has_operation: false,
        });
        // The first record of 7 was created already, as its own flags say; the later
        // ones become so by what came before them.
        assert_eq!(latest.settle(), [20, 30]);
        let seven = latest.get(7).unwrap();
        assert_eq!(
            (seven.offset, seven.maybe_created, seven.created),
            (30, true, true)
        );
        let nine = latest.get(9).unwrap();
        assert_eq!(
            (nine.offset, nine.maybe_created, nine.values),
            (40, false, 2)
        );
        assert_eq!(
            latest.row_and_flags(nine.entry),
            (2, 0),
            "the latest's flags"
        );
        assert_eq!(latest.len(), 2);
    }
}
