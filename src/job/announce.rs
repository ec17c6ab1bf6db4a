//! What a job says of its input before the first request: the columns it will not send,
//! and what each `PUT` will change.

use super::shared::Mode;
use crate::api::workspace::Field;
use crate::input::header::Header;
use crate::model::{OnExists, Operation};

/// Says, once the header is read: the columns that are no request fields (each with the
/// field it resembles), and, for a job that may `PUT`, which settings a PUT sets (the
/// file's columns) and which it leaves as they are.
pub(super) fn announce(header: &Header, operation: Operation, mode: &Mode) {
    if !header.ignored.is_empty() {
        tracing::warn!(
            "columns {} are not request fields: carried to the results, never sent",
            header.ignored_described(operation.names_only())
        );
    }
    let puts = operation == Operation::Update
        || (operation == Operation::Create
            && mode
                .sender()
                .is_some_and(|sender| sender.on_exists == OnExists::Update));
    if !puts {
        return;
    }
    let (set, kept): (Vec<Field>, Vec<Field>) = Field::ALL
        .into_iter()
        .filter(|field| *field != Field::Name)
        .partition(|field| header.index(*field).is_some());
    let names = |fields: &[Field]| {
        let keys: Vec<&str> = fields.iter().map(|field| field.key()).collect();
        keys.join(", ")
    };
    let kept = match kept.is_empty() {
        true => String::new(),
        false => format!(
            "; the file has no column for {}, which they leave as they are",
            names(&kept)
        ),
    };
    tracing::warn!(
        "each PUT sets {} as the file's rows say (an empty cell sends nothing){kept}. A PUT of the connection (connectionType, datasourceName, datamartName) repoints every metric of its workspace",
        names(&set)
    );
}
