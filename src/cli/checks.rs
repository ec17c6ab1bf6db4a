//! What clap cannot check by itself: options a command has, through the groups it shares
//! with the others, but does not use (hidden from its `--help`, and refused), and
//! `--sandbox` beside a `--base-url` given on the command line.

use clap::parser::ValueSource;
use clap::{ArgMatches, Command};

/// The options each command has but does not use.
const NOT_FOR: [(&str, &[&str]); 4] = [
    // A plan lists once and sends no write: no rows in flight, none that fail.
    (
        "plan",
        &[
            "preflight",
            "no_preflight",
            "concurrency",
            "burst",
            "max_failures",
        ],
    ),
    // An update, a delete and a rollback send every row, and a taken name means nothing
    // to them.
    ("update", &["on_exists", "preflight", "no_preflight"]),
    ("delete", &["on_exists", "preflight", "no_preflight"]),
    ("rollback", &["on_exists", "preflight", "no_preflight"]),
];

/// `command` with each subcommand's unused options hidden from its `--help`.
pub(super) fn hide_unused(mut command: Command) -> Command {
    for (name, ids) in NOT_FOR {
        command = command.mut_subcommand(name, |sub| {
            ids.iter()
                .fold(sub, |sub, id| sub.mut_arg(*id, |arg| arg.hide(true)))
        });
    }
    command
}

/// Refuses what clap let through: an option the command does not use, and `--sandbox`
/// with a `--base-url` given on the command line (not one from `DATABRAIN_BASE_URL`,
/// which a rehearsal in the shell of the real job would otherwise trip on).
pub(super) fn refuse(command: &Command, matches: &ArgMatches) -> Result<(), clap::Error> {
    let Some((name, given)) = matches.subcommand() else {
        return Ok(());
    };
    let on_the_line = |id: &str| {
        // Asked only of the commands that have it (clap panics on an unknown id).
        given.try_contains_id(id).unwrap_or(false)
            && given.value_source(id) == Some(ValueSource::CommandLine)
    };
    let mut sub = command
        .find_subcommand(name)
        .cloned()
        .unwrap_or_else(|| command.clone());
    let unused = NOT_FOR
        .iter()
        .filter(|(command, _)| *command == name)
        .flat_map(|(_, ids)| ids.iter())
        .find(|id| on_the_line(id));
    if let Some(id) = unused {
        let message = format!(
            "--{} does not apply to `dbprov {name}`, which does nothing with it: drop it",
            id.replace('_', "-")
        );
        return Err(sub.error(clap::error::ErrorKind::ArgumentConflict, message));
    }
    let sandbox = given.try_get_one::<bool>("sandbox").ok().flatten() == Some(&true);
    if sandbox && on_the_line("base_url") {
        return Err(sub.error(
            clap::error::ErrorKind::ArgumentConflict,
            "--sandbox runs the job against a sandbox in this process, so --base-url cannot be given with it: drop one of them",
        ));
    }
    Ok(())
}
