//! What a results file records of a row, as later runs read it back: where its latest
//! record is, and the few facts a rerun decides by.

use csv::ByteRecord;

use super::status::Status;

/// The latest row of one identity in a results log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Prior {
    /// Where the row starts in the file.
    pub offset: u64,
    /// Its status, when it is one.
    pub status: Option<Status>,
    /// Its status says the workspace is in place (created, updated, exists), on the API
    /// this run talks to.
    pub success: bool,
    /// An attempt of that run may have created the workspace without learning it (a
    /// timeout, a lost connection, a 5xx): a later `WORKSPACE_NAME_ALREADY_EXISTS` is ours.
    pub maybe_created: bool,
    /// The preflight list of that run showed that the workspace did not exist before it
    /// (said only with `maybe_created`): if it exists now, that run created it.
    pub absent_before: bool,
    /// Its status is `created`, on the API this run talks to: what a rollback deletes.
    pub created: bool,
    /// The row has a name (rows without one go by their `_row`).
    pub named: bool,
    /// A hash of the request values the row was sent with (see `input::row::values`);
    /// 0 where they cannot be read. Not packed.
    pub values: u64,
    /// Where the ledger keeps it, for marks that follow without looking it up again.
    /// Not packed.
    pub entry: u32,
}

impl Prior {
    /// The offset in the high 55 bits, the status in the next four, the flags in the low
    /// five.
    pub fn pack(self) -> u64 {
        let status = self
            .status
            .and_then(|s| Status::ALL.iter().position(|a| *a == s))
            .map_or(0, |i| i as u64 + 1);
        (self.offset << 9)
            | (status << 5)
            | (u64::from(self.named) << 4)
            | (u64::from(self.created) << 3)
            | (u64::from(self.absent_before) << 2)
            | (u64::from(self.success) << 1)
            | u64::from(self.maybe_created)
    }

    /// What [`Prior::pack`] packed.
    pub fn unpack(packed: u64) -> Prior {
        let status = ((packed >> 5) & 0xf) as usize;
        Prior {
            values: 0,
            entry: 0,
            offset: packed >> 9,
            status: status.checked_sub(1).map(|i| Status::ALL[i]),
            named: packed & 16 != 0,
            created: packed & 8 != 0,
            absent_before: packed & 4 != 0,
            success: packed & 2 != 0,
            maybe_created: packed & 1 != 0,
        }
    }

    /// Whether a row whose values hash to `values()` needs no request over this record:
    /// it is a success, or it was refused before any request (`invalid`) and its values
    /// have not changed since, so it would be refused again.
    pub fn stands_without_a_request(&self, values: impl FnOnce() -> u64) -> bool {
        self.success
            || (self.status == Some(Status::Invalid) && self.values != 0 && self.values == values())
    }

    /// The record says what the API did to the workspace (`created`, `updated`, `deleted`):
    /// only another outcome the API gave for it may replace it (the ledger's rule).
    pub fn is_strong(&self) -> bool {
        self.success
            && matches!(
                self.status,
                Some(Status::Created | Status::Updated | Status::Deleted)
            )
    }
}

/// The outcome a results file, read as input (`retry`), records for a row.
#[derive(Debug, Clone)]
pub struct Earlier {
    /// The result cells, in `RESULT_COLUMNS` order.
    pub results: ByteRecord,
    /// Success, and whether an attempt may have created the workspace unseen.
    pub prior: Prior,
}
