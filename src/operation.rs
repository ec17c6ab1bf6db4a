//! What a job does to each row's workspace, and the request that does it: the one place
//! where a command's verb and body are decided. `run`, `update`, `delete` and `rollback`
//! are one job with another [`Operation`].

use bytes::Bytes;

use crate::client::{Answer, Verb};
use crate::record::Status;
use crate::workspace::WorkspaceRequest;

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

impl Operation {
    /// The command that runs it, as a person types it.
    pub fn command(self) -> &'static str {
        match self {
            Operation::Create => "run",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }

    /// The first request of every row.
    pub fn first_verb(self) -> Verb {
        match self {
            Operation::Create => Verb::Post,
            Operation::Update => Verb::Put,
            Operation::Delete => Verb::Delete,
        }
    }

    /// Whether a row needs only its name (a delete): no other column is read or checked.
    pub fn names_only(self) -> bool {
        self == Operation::Delete
    }

    /// What begins the message of a row that did not succeed, so that a results file
    /// tells which operation wrote it even when no row succeeded (`retry` must never
    /// `POST` the rows of a delete). `run`'s rows have none, as they always had.
    pub fn marker(self) -> &'static str {
        match self {
            Operation::Create => "",
            Operation::Update => "update: ",
            Operation::Delete => "delete: ",
        }
    }

    /// The marker `message` gets so that it cannot be read as another command's: a run's
    /// rows carry none, unless the server's own words would pass for a marker (a message
    /// that begins "delete: "), which then gets `run: ` before it.
    pub fn marker_for(self, message: &str) -> &'static str {
        match self {
            // As it is read back: trimmed (Unicode whitespace, which `clean` leaves).
            Operation::Create if Operation::strip_marker(message.trim()).0.is_some() => "run: ",
            operation => operation.marker(),
        }
    }

    /// The operation whose marker begins `message`, and the message without it.
    pub fn strip_marker(message: &str) -> (Option<Operation>, &str) {
        for (operation, marker) in [
            (Operation::Create, "run:"),
            (Operation::Update, "update:"),
            (Operation::Delete, "delete:"),
        ] {
            // A cell read back is trimmed: a marker alone has lost its space.
            if let Some(rest) = message.strip_prefix(marker)
                && (rest.is_empty() || rest.starts_with(' '))
            {
                return (Some(operation), rest.trim_start());
            }
        }
        (None, message)
    }
}

/// What the rows of a results file say of the operation that wrote it: `retry` must
/// re-send a delete's rows as deletes, and `rollback` must not undo a rollback.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OperationsSeen {
    create: bool,
    update: bool,
    delete: bool,
    /// An `updated` row: a run's (`--on-exists update`) or an update's; no delete's.
    updated: bool,
}

impl OperationsSeen {
    /// Notes what one row says: its status (`created` is a run's, `deleted` a delete's),
    /// or the marker of a row that did not succeed (none: a run's).
    pub fn note(&mut self, status: Option<Status>, message: &str) {
        match status {
            Some(Status::Created | Status::Exists) => self.create = true,
            Some(Status::Deleted | Status::Absent) => self.delete = true,
            // A run with --on-exists update, or an update.
            Some(Status::Updated) => self.updated = true,
            None => {}
            Some(Status::Planned | Status::Failed | Status::Invalid | Status::Skipped) => {
                match Operation::strip_marker(message).0 {
                    Some(Operation::Update) => self.update = true,
                    Some(Operation::Delete) => self.delete = true,
                    Some(Operation::Create) | None => self.create = true,
                }
            }
        }
    }

    /// Whether `operation` may continue the file: its rows are that operation's, or say
    /// nothing of one (none, or only `updated`).
    pub fn agrees_with(&self, operation: Operation) -> bool {
        let says_nothing = !self.create && !self.update && !self.delete;
        match operation {
            // `updated` rows are no delete's.
            Operation::Delete => {
                !self.updated && (says_nothing || self.delete) && !self.create && !self.update
            }
            Operation::Create | Operation::Update => {
                says_nothing || self.operation() == Ok(operation)
            }
        }
    }

    /// The command (or commands) that wrote the file, for messages.
    pub fn describe(&self) -> String {
        match self.operation() {
            Ok(Operation::Create) if self.updated && !self.create => {
                "update (or run --on-exists update)".to_owned()
            }
            Ok(operation) => operation.command().to_owned(),
            Err(several) => several,
        }
    }

    /// Whether any row records a deletion.
    pub fn deleted(&self) -> bool {
        self.delete
    }

    /// The operation, when the rows agree on one (a file of only `updated` rows, or an
    /// empty one, is a run's: nothing in it is re-sent anyway); `Err` naming those seen
    /// when they do not.
    pub fn operation(&self) -> Result<Operation, String> {
        let seen: Vec<&str> = [
            (self.create, Operation::Create),
            (self.update, Operation::Update),
            (self.delete, Operation::Delete),
        ]
        .iter()
        .filter(|(seen, _)| *seen)
        .map(|(_, operation)| operation.command())
        .collect();
        if self.delete && self.updated {
            return Err("update and delete".to_owned());
        }
        match seen.as_slice() {
            [] => Ok(Operation::Create),
            [_] if self.delete => Ok(Operation::Delete),
            [_] if self.update => Ok(Operation::Update),
            [_] => Ok(Operation::Create),
            several => Err(several.join(" and ")),
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

/// Whether a refusal of a `DELETE` says the workspace does not exist. The vendor
/// documents `WORKSPACE_DOES_NOT_EXIST` for a `PUT`; a delete's code is not visible to us,
/// so a code that says `NOT_EXIST` (or a workspace `NOT_FOUND`) counts, and so does a 400
/// in the API's envelope whose message says a workspace does not exist. Nothing else
/// does: a wrong `--base-url` or a proxy answers 404 (or a 400 "upstream not found") for
/// a path it does not know, and taking that for "already gone" would report workspaces
/// deleted while none was.
pub fn says_absent(answer: &Answer) -> bool {
    let Some(code) = &answer.code else {
        return false;
    };
    let from_the_api = !code.starts_with("HTTP_");
    let code = code.to_ascii_uppercase();
    let message = answer.message.to_ascii_lowercase();
    let said_by_code =
        code.contains("NOT_EXIST") || (code.contains("WORKSPACE") && code.contains("NOT_FOUND"));
    let said_by_message = answer.status == 400
        && message.contains("workspace")
        && [
            "does not exist",
            "doesn't exist",
            "not found",
            "no workspace",
        ]
        .iter()
        .any(|words| message.contains(words));
    from_the_api && matches!(answer.status, 400 | 404) && (said_by_code || said_by_message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::classify;

    #[test]
    fn markers_read_back() {
        assert_eq!(
            Operation::strip_marker("delete: HTTP 500"),
            (Some(Operation::Delete), "HTTP 500")
        );
        assert_eq!(
            Operation::strip_marker("update: x"),
            (Some(Operation::Update), "x")
        );
        assert_eq!(
            Operation::strip_marker("no such theme"),
            (None, "no such theme")
        );
    }

    #[test]
    fn absence_is_read_from_the_code_or_the_message() {
        let absent = |status, body: &str| {
            says_absent(&classify(Verb::Delete, status, body.as_bytes(), None))
        };
        assert!(absent(
            400,
            r#"{"data":null,"error":{"code":"WORKSPACE_DOES_NOT_EXIST","message":"x"}}"#
        ));
        assert!(absent(
            400,
            r#"{"data":null,"error":{"code":"INVALID_REQUEST_BODY","message":"Workspace not found"}}"#
        ));
        // A proxy's words, in its page or in an envelope of its own.
        assert!(!absent(400, "400 Bad Request: upstream not found"));
        assert!(!absent(
            400,
            r#"{"error":{"code":"BAD_REQUEST","message":"route not found"}}"#
        ));
        assert!(
            !absent(404, "Not Found"),
            "a proxy's 404 for a path it does not know"
        );
        assert!(!absent(
            404,
            r#"{"data":null,"error":{"code":"NOT_FOUND","message":"no such endpoint"}}"#
        ));
        assert!(absent(
            404,
            r#"{"data":null,"error":{"code":"WORKSPACE_NOT_FOUND","message":"x"}}"#
        ));
        assert!(!absent(
            400,
            r#"{"data":null,"error":{"code":"INVALID_REQUEST_BODY","message":"name is required"}}"#
        ));
        assert!(!absent(500, "not found"));
    }

    #[test]
    fn a_results_file_tells_its_operation() {
        let of = |rows: &[(Status, &str)]| {
            let mut seen = OperationsSeen::default();
            for (status, message) in rows {
                seen.note(Some(*status), message);
            }
            seen.operation()
        };
        assert_eq!(of(&[]), Ok(Operation::Create));
        assert_eq!(
            of(&[(Status::Skipped, "not sent: x")]),
            Ok(Operation::Create)
        );
        assert_eq!(
            of(&[(Status::Skipped, "delete: not sent: x")]),
            Ok(Operation::Delete)
        );
        assert_eq!(
            of(&[(Status::Updated, ""), (Status::Failed, "update: x")]),
            Ok(Operation::Update)
        );
        assert_eq!(of(&[(Status::Absent, "")]), Ok(Operation::Delete));
        assert_eq!(of(&[(Status::Updated, "")]), Ok(Operation::Create));
        assert_eq!(
            of(&[(Status::Created, ""), (Status::Deleted, "")]),
            Err("run and delete".to_owned())
        );
        let mut updates = OperationsSeen::default();
        updates.note(Some(Status::Updated), "");
        assert!(updates.agrees_with(Operation::Update) && updates.agrees_with(Operation::Create));
        assert!(
            !updates.agrees_with(Operation::Delete),
            "a delete into an update's file"
        );
    }

    #[test]
    fn a_delete_has_no_body() {
        let name = RowRequest::Name("a".into());
        assert_eq!(name.body(Verb::Delete), None);
        assert_eq!(name.name(), "a");
    }
}
