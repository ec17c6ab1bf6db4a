//! The final status of a row, as the results file spells it.

use std::fmt;

/// The final status of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// `POST` answered 200.
    Created,
    /// `PUT` answered 200 (`update`, or `--on-exists update`).
    Updated,
    /// The name was taken, and `--on-exists skip` counts that as success.
    Exists,
    /// `DELETE` answered 200 (`delete`, `rollback`).
    Deleted,
    /// `DELETE` of a name that does not exist: the workspace is gone, as asked.
    Absent,
    /// The API refused it, or retries ran out.
    Failed,
    /// Never sent: the row does not describe a valid request.
    Invalid,
    /// Never finished: the job stopped before it.
    Skipped,
    /// Dry run: would be sent.
    Planned,
}

impl Status {
    /// Every status, in the order summaries list them.
    pub const ALL: [Status; 9] = [
        Status::Created,
        Status::Updated,
        Status::Exists,
        Status::Deleted,
        Status::Absent,
        Status::Failed,
        Status::Invalid,
        Status::Skipped,
        Status::Planned,
    ];

    /// The spelling in the results file.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Updated => "updated",
            Status::Exists => "exists",
            Status::Deleted => "deleted",
            Status::Absent => "absent",
            Status::Failed => "failed",
            Status::Invalid => "invalid",
            Status::Skipped => "skipped",
            Status::Planned => "planned",
        }
    }

    /// Reads the spelling of the results file.
    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the workspace is in place, so a rerun sends nothing for it. Unlike
    /// [`Status::is_success`], a `planned` row still has everything to do.
    pub fn is_done(self) -> bool {
        matches!(
            self,
            Status::Created | Status::Updated | Status::Exists | Status::Deleted | Status::Absent
        )
    }

    /// Whether this row counts as a success for the exit code (`planned` in a dry run).
    pub fn is_success(self) -> bool {
        self.is_done() || self == Status::Planned
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
