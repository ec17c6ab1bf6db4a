//! What a results file records of a row, as later runs read it back: where its latest
//! record is, and the few facts a rerun decides by.

use csv::ByteRecord;

/// The latest row of one identity in a results log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prior {
    /// Where the row starts in the file.
    pub offset: u64,
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
}

impl Prior {
    /// The offset in the high 60 bits, the flags in the low four.
    pub fn pack(self) -> u64 {
        (self.offset << 4)
            | (u64::from(self.created) << 3)
            | (u64::from(self.absent_before) << 2)
            | (u64::from(self.success) << 1)
            | u64::from(self.maybe_created)
    }

    pub fn unpack(packed: u64) -> Prior {
        Prior {
            offset: packed >> 4,
            created: packed & 8 != 0,
            absent_before: packed & 4 != 0,
            success: packed & 2 != 0,
            maybe_created: packed & 1 != 0,
        }
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
