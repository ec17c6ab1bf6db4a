//! The latest record of each identity in a results file, compactly: about 40 bytes per
//! identity (its identity's hash, its [`Prior`] packed, the hash of its values, its `_row`
//! and flags, and its place in an index sorted by hash), not a hash map, whose buckets
//! would take twice that and more while it grows. The records stay in file order: the
//! rows of an input mostly come in that order too, so each one is looked for first just
//! after the last one found.

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
/// A later record of the identity supersedes this one.
const SUPERSEDED: u32 = 64;
/// Kept in place, the record is of another row of this run's input than its `_row` says
/// (rows were added or removed before it): the rewrite at the end numbers it anew.
pub(super) const RENUMBERED: u32 = 128;

/// Identities and their latest records: pushed in file order while the file is read,
/// then [`Latest::settle`]d once.
#[derive(Default)]
pub(super) struct Latest {
    /// In file order, the superseded ones among them (see [`SUPERSEDED`]).
    entries: Vec<Entry>,
    /// The places of the latest entries, sorted by key.
    by_key: Vec<u32>,
    /// Where the places of the keys that begin with each run of `bits` bits start in
    /// `by_key` (and, last, its end): a key is among the two or so of its bucket. 2 to 4
    /// bytes per entry.
    starts: Vec<u32>,
    bits: u32,
}

struct Entry {
    key: u64,
    packed: u64,
    values: u64,
    /// The record's `_row` (`u32::MAX` past it, or none, or not written as dbprov writes
    /// it); once this run keeps the record in place, the row it is of this run's input.
    row: AtomicU32,
    flags: AtomicU32,
}

impl Default for Entry {
    fn default() -> Entry {
        Entry {
            key: 0,
            packed: 0,
            values: 0,
            row: AtomicU32::new(0),
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
            row: AtomicU32::new(u32::try_from(record.row).unwrap_or(u32::MAX)),
            flags: AtomicU32::new(flags),
        });
    }

    /// Keeps the latest record of each identity, with what its earlier records said of
    /// lost answers: the last record wins, but a lost answer of any earlier record still
    /// counts (a later run that sent nothing, or got a refusal, did not undo it), unless
    /// the later record says all its run knew. Returns where the records start that are
    /// `created` only by what came before them (a rollback would delete their workspace).
    pub(super) fn settle(&mut self) -> Vec<u64> {
        self.sort_by_key();
        let mut became_created = Vec::new();
        let mut superseded = false;
        for i in 1..self.by_key.len() {
            let (earlier, at) = (self.by_key[i - 1] as usize, self.by_key[i] as usize);
            if self.entries[earlier].key != self.entries[at].key {
                continue;
            }
            superseded = true;
            let earlier_entry = &self.entries[earlier];
            earlier_entry.flags.fetch_or(SUPERSEDED, Ordering::Relaxed);
            let earlier = Prior::unpack(earlier_entry.packed);
            let entry = &mut self.entries[at];
            if *entry.flags.get_mut() & COMPLETE != 0 {
                continue;
            }
            let mut prior = Prior::unpack(entry.packed);
            prior.maybe_created |= earlier.maybe_created;
            prior.absent_before |= earlier.absent_before;
            if !prior.created && becomes_created(&prior, *entry.flags.get_mut() & ON_TARGET != 0) {
                prior.created = true;
                became_created.push(prior.offset);
            }
            entry.packed = prior.pack();
        }
        for entry in &mut self.entries {
            *entry.flags.get_mut() &= !(COMPLETE | ON_TARGET);
        }
        if superseded {
            // Only the latest of each identity is looked for.
            let mut by_key = std::mem::take(&mut self.by_key);
            by_key.retain(|at| self.flags(*at) & SUPERSEDED == 0);
            self.starts =
                self.bucket_starts(by_key.iter().map(|at| self.entries[*at as usize].key));
            self.by_key = by_key;
        }
        became_created
    }

    /// Sorts the places of the entries by key into [`Latest::by_key`], with
    /// [`Latest::starts`]: the keys are hashes, spread evenly, so each place goes
    /// straight to the bucket of its key's first bits (a bucket per two entries or so),
    /// and only the few in a bucket are sorted. Places of one key keep file order.
    fn sort_by_key(&mut self) {
        let len = self.entries.len();
        self.bits = (len / 2).max(1).ilog2() + 1;
        let starts = self.bucket_starts(self.entries.iter().map(|e| e.key));
        let mut next = starts.clone();
        let mut by_key = vec![0u32; len];
        for (at, entry) in self.entries.iter().enumerate() {
            let slot = &mut next[self.bucket(entry.key)];
            by_key[*slot as usize] = at as u32;
            *slot += 1;
        }
        for bucket in starts.windows(2) {
            let places = &mut by_key[bucket[0] as usize..bucket[1] as usize];
            places.sort_unstable_by_key(|at| (self.entries[*at as usize].key, *at));
        }
        (self.by_key, self.starts) = (by_key, starts);
    }

    /// Where the keys of each bucket start among `keys` sorted (see [`Latest::starts`]).
    fn bucket_starts(&self, keys: impl Iterator<Item = u64>) -> Vec<u32> {
        let mut starts = vec![0u32; (1 << self.bits) + 1];
        for key in keys {
            starts[self.bucket(key) + 1] += 1;
        }
        for bucket in 1..starts.len() {
            starts[bucket] += starts[bucket - 1];
        }
        starts
    }

    /// The key of the `i`th entry in key order.
    fn key_at(&self, i: usize) -> u64 {
        self.entries[self.by_key[i] as usize].key
    }

    fn flags(&self, at: u32) -> u32 {
        self.entries[at as usize].flags.load(Ordering::Relaxed)
    }

    fn bucket(&self, key: u64) -> usize {
        (key >> (64 - self.bits)) as usize
    }

    /// The latest record of the identity `key`, with its values and its place among the
    /// entries (see [`Prior::entry`]). `near` is where to look first, and becomes the
    /// place after the one found: rows that come in the file's order are found at once.
    pub(super) fn get(&self, key: u64, near: &mut usize) -> Option<Prior> {
        let at = match self.entries.get(*near) {
            Some(entry) if entry.key == key && self.flags(*near as u32) & SUPERSEDED == 0 => *near,
            _ => self.find(key)?,
        };
        *near = at + 1;
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

    /// Records that the record at `at` is this run's row `row` (see [`Entry::row`]).
    pub(super) fn renumber(&self, at: u32, row: u32) {
        if let Some(entry) = self.entries.get(at as usize) {
            entry.row.store(row, Ordering::Relaxed);
        }
    }

    /// The `_row` of the record at `at`, and its flags.
    pub(super) fn row_and_flags(&self, at: u32) -> (u32, u32) {
        self.entries.get(at as usize).map_or((u32::MAX, 0), |e| {
            (
                e.row.load(Ordering::Relaxed),
                e.flags.load(Ordering::Relaxed),
            )
        })
    }

    /// Each identity's latest record, and its flags, in file order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (Prior, u32)> + '_ {
        (0..self.entries.len())
            .map(|at| (self.prior_at(at), self.flags(at as u32)))
            .filter(|(_, flags)| flags & SUPERSEDED == 0)
    }

    pub(super) fn len(&self) -> usize {
        self.by_key.len()
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
        let at = from + (from..to).take_while(|i| self.key_at(*i) < key).count();
        (at < to && self.key_at(at) == key).then(|| self.by_key[at] as usize)
    }
}

/// What a run kept in place of the records of the file it continued.
#[derive(Debug, Clone, Copy)]
pub struct InPlace {
    /// Some record.
    pub any: bool,
    /// Every record (of every identity).
    pub all: bool,
    /// Some of them under another `_row` than they have.
    pub renumbered: bool,
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
            let found = latest.get(hasher.hash_one(i), &mut 0).unwrap();
            assert_eq!(found.offset, i);
            assert_eq!(found.values, i + 1);
            assert_eq!(
                latest.row_and_flags(found.entry),
                (i as u32 + 1, HAS_OPERATION)
            );
        }
        // In file order, each is found where the last one left off; out of it, by key.
        let mut near = 0;
        for i in (0..50_000u64).chain([7, 3, 49_999, 0]) {
            let found = latest.get(hasher.hash_one(i), &mut near).unwrap();
            assert_eq!((found.offset, near), (i, i as usize + 1));
        }
        for i in 50_000..60_000u64 {
            assert!(latest.get(hasher.hash_one(i), &mut 0).is_none());
        }
        for key in [0, 1, u64::MAX] {
            assert_eq!(
                latest.get(key, &mut 0).is_some(),
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
        let seven = latest.get(7, &mut 0).unwrap();
        assert_eq!(
            (seven.offset, seven.maybe_created, seven.created),
            (30, true, true)
        );
        let nine = latest.get(9, &mut 0).unwrap();
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
