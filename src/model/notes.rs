//! The words our own notes in a results row are read back by. Server text never holds
//! them (`api::text::clean` breaks them up): only our notes do.

/// Said in the message of a row that did not succeed after an attempt, of its run or an
/// earlier one, may have created the workspace unseen; read back by the next run.
pub const MAY_EXIST: &str = "an earlier attempt got no clear answer: the workspace may exist";

/// The same for a delete: a later `DELETE` that finds nothing means it was done.
pub const MAY_BE_DELETED: &str =
    "an earlier attempt got no clear answer: the workspace may be deleted already";

/// How the message of an attempt that could not connect begins: nothing was sent, so a
/// rerun must not take it for a lost answer.
pub const NOT_CONNECTED: &str = "could not connect, nothing was sent";

/// Said in the message of a row whose workspace may have been created unseen, when the
/// preflight list showed that it did not exist before the run: a later run that finds it
/// listed knows the run created it.
pub const NOT_LISTED: &str = "it was not listed before the run";

/// The message of a row whose request was in flight when the process died: the record a
/// row gets just before its request goes out, which its final record supersedes.
pub const IN_FLIGHT: &str =
    "the job ended while this row's request was in flight: it may have been sent";

/// Said after [`IN_FLIGHT`] when that request was a `PUT`: the workspace may hold the
/// values sent before it or those it sent.
pub const VALUES_UNKNOWN: &str = "a PUT: which values the workspace holds is unknown";

/// The words a results row is read back by. Server text never holds them (see
/// `client::clean`): only our notes do.
pub const READ_BACK: [&str; 5] = [
    MAY_EXIST,
    MAY_BE_DELETED,
    NOT_LISTED,
    NOT_CONNECTED,
    VALUES_UNKNOWN,
];
