//! Which command runs, so that what a shared step advises names only that command's own
//! options (`retry` has no `--resume`, `plan` no `--overwrite`, ...).

use crate::model::Operation;

/// The command running, so that what it advises names only its own options (`retry` has
/// no `--resume`, `plan` no `--overwrite`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Running {
    /// `run`, `update` or `delete`: a tenant CSV, with this operation.
    Rows(Operation),
    /// `retry` of a results file, in place or into `-o`.
    Retry {
        /// Without `-o`: the results file is both its input and its output.
        in_place: bool,
    },
    /// `plan`.
    Plan,
    /// `rollback`.
    Rollback,
}

impl Running {
    /// The command's name, as a person types it.
    pub fn name(self) -> &'static str {
        match self {
            Running::Rows(operation) => operation.command(),
            Running::Retry { .. } => "retry",
            Running::Plan => "plan",
            Running::Rollback => "rollback",
        }
    }

    /// Whether it has `--resume` and `--overwrite`.
    pub fn has_overwrite(self) -> bool {
        matches!(self, Running::Rows(_) | Running::Rollback)
    }
}
