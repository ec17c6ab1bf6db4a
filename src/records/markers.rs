//! How a results file tells which operation wrote it: the rows that leave something to do
//! begin their message with the operation's marker (`delete: `, `update: `; a run's
//! rows carry none), and the statuses say the rest. `retry` re-sends a file's rows as the
//! operation that wrote them, and a command never continues another's file.

use crate::model::{Operation, Status};

/// What begins the message of a row that did not succeed, so that a results file tells
/// which operation wrote it even when no row succeeded (`retry` must never `POST` the rows
/// of a delete). `run`'s rows have none, as they always had.
fn marker(operation: Operation) -> &'static str {
    match operation {
        Operation::Create => "",
        Operation::Update => "update: ",
        Operation::Delete => "delete: ",
    }
}

/// The marker `message` gets so that it cannot be read as another command's: a run's rows
/// carry none, unless the server's own words would pass for a marker (a message that
/// begins "delete: "), which then gets `run: ` before it.
pub fn marker_for(operation: Operation, message: &str) -> &'static str {
    match operation {
        // As it is read back: trimmed (Unicode whitespace, which `clean` leaves).
        Operation::Create if strip_marker(message.trim()).0.is_some() => "run: ",
        operation => marker(operation),
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

/// The operation a row of a file written before `_operation` was recorded is for, as far
/// as its status and message say (an `updated` row says nothing: a run's or an update's).
pub fn row_operation(status: Option<Status>, message: &str) -> Option<Operation> {
    match status? {
        Status::Created | Status::Exists => Some(Operation::Create),
        Status::Deleted | Status::Absent => Some(Operation::Delete),
        Status::Updated => None,
        Status::Planned | Status::Failed | Status::Invalid | Status::Skipped => {
            Some(strip_marker(message).0.unwrap_or(Operation::Create))
        }
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
    /// Rows of a file with an `_operation` column whose cell names none (an operator
    /// cleared it): `retry` cannot tell what to send them as.
    pub unrecorded: u64,
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
                match strip_marker(message).0 {
                    Some(Operation::Update) => self.update = true,
                    Some(Operation::Delete) => self.delete = true,
                    Some(Operation::Create) | None => self.create = true,
                }
            }
        }
    }

    /// Notes a row's `_operation`, in a file that records it: that, and never the
    /// message, says which command the row is for.
    pub fn note_recorded(&mut self, operation: Option<Operation>) {
        match operation {
            Some(Operation::Create) => self.create = true,
            Some(Operation::Update) => self.update = true,
            Some(Operation::Delete) => self.delete = true,
            None => self.unrecorded += 1,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_read_back() {
        assert_eq!(
            strip_marker("delete: HTTP 500"),
            (Some(Operation::Delete), "HTTP 500")
        );
        assert_eq!(strip_marker("update: x"), (Some(Operation::Update), "x"));
        assert_eq!(strip_marker("no such theme"), (None, "no such theme"));
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
}
