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

/// The words a results row is read back by. Server text never holds them (see
/// `client::clean`): only our notes do.
pub const READ_BACK: [&str; 4] = [MAY_EXIST, MAY_BE_DELETED, NOT_LISTED, NOT_CONNECTED];
