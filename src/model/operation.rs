//! What a job does to each row's workspace. `run`, `update`, `delete` and `rollback` are
//! one job with another [`Operation`]; the request each one sends is decided in
//! `api::request`, and how a results file says which operation wrote it in `records`.

/// What a job does to each row's workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `run`: `POST` (then `PUT` with `--on-exists update`).
    Create,
    /// `update`: `PUT` the row's settings over an existing workspace.
    Update,
    /// `delete` and `rollback`: `DELETE` the workspace by name.
    Delete,
}

impl Operation {
    /// The command that runs it, as a person types it.
    pub fn command(self) -> &'static str {
        match self {
            Operation::Create => "run",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }

    /// The spelling in the results file's `_operation`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }

    /// Reads the spelling of `_operation`.
    pub fn parse(text: &str) -> Option<Operation> {
        [Operation::Create, Operation::Update, Operation::Delete]
            .into_iter()
            .find(|o| o.as_str() == text)
    }

    /// Whether a row needs only its name (a delete): no other column is read or checked.
    pub fn names_only(self) -> bool {
        self == Operation::Delete
    }
}
