//! What one row asks of the API: the verb, and the body or name it sends.

use bytes::Bytes;

use super::workspace::WorkspaceRequest;
use crate::model::Operation;

/// `POST` creates, `PUT` updates, `DELETE` deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// Create.
    Post,
    /// Update (`update`, `--on-exists update`).
    Put,
    /// Delete by name (`delete`, `rollback`).
    Delete,
}

impl Verb {
    /// The first request of every row of a job doing `operation`.
    pub fn first_of(operation: Operation) -> Verb {
        match operation {
            Operation::Create => Verb::Post,
            Operation::Update => Verb::Put,
            Operation::Delete => Verb::Delete,
        }
    }
}

/// What one row asks for: a workspace's settings, or only its name (a delete).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowRequest {
    /// The body of a create or an update.
    Settings(WorkspaceRequest),
    /// The workspace to delete.
    Name(String),
}

impl RowRequest {
    /// The workspace's name.
    pub fn name(&self) -> &str {
        match self {
            RowRequest::Settings(request) => &request.name,
            RowRequest::Name(name) => name,
        }
    }

    /// The settings, when the row has them.
    pub fn settings(&self) -> Option<&WorkspaceRequest> {
        match self {
            RowRequest::Settings(request) => Some(request),
            RowRequest::Name(_) => None,
        }
    }

    /// The body a `verb` carries: the settings as JSON for `POST` and `PUT`, nothing for
    /// `DELETE` (the name goes in the query).
    pub fn body(&self, verb: Verb) -> Option<Bytes> {
        match (verb, self) {
            (Verb::Delete, _) | (_, RowRequest::Name(_)) => None,
            (Verb::Post | Verb::Put, RowRequest::Settings(request)) => Some(Bytes::from(
                serde_json::to_vec(request).expect("a request always serialises"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delete_has_no_body() {
        let name = RowRequest::Name("a".into());
        assert_eq!(name.body(Verb::Delete), None);
        assert_eq!(name.name(), "a");
    }
}
