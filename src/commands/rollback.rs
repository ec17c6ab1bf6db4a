//! `rollback`: deletes what a results file records as created on this API (and what its
//! lost answers may have created there), once the operator has said so; the same job as
//! `delete`, over the rows of that file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::confirm::{Said, confirm};
use super::guard::{Continuing, Opening, hold_input, open_output, refuse_clobbering, scan_input};
use super::job::{Exit, Rows, run_job};
use super::running::Running;
use super::target::{Target, target_of};
use crate::cli::RollbackArgs;
use crate::job::Source;
use crate::model::{Input, Operation, Output};
use crate::records::PriorResults;
use crate::report::{logging, signals};

/// `rollback`: deletes what a results file records as created on this API, and nothing
/// else, once the operator has said so.
pub(crate) async fn rollback_command(args: RollbackArgs) -> anyhow::Result<Exit> {
    signals::take_over();
    anyhow::ensure!(
        args.results != "-",
        "rollback reads a results file, not stdin: give its path"
    );
    anyhow::ensure!(
        !args.sandbox || args.dry_run,
        "rollback --sandbox would talk to a new, empty sandbox: the workspaces of a run with --sandbox went with its process. To rehearse a rollback, run a sandbox (dbprov sandbox), and run and roll back against it with --base-url"
    );
    let results = PathBuf::from(&args.results);
    // Beside the results: tenants.results.csv → tenants.rollback.csv.
    let stem = results.file_stem().unwrap_or_default().to_string_lossy();
    let named =
        results.with_file_name(stem.strip_suffix(".results").unwrap_or(&stem).to_owned() + ".csv");
    let output = Input::File(named)
        .results_path(args.output.as_deref(), args.job.shard, "rollback")
        .map_err(anyhow::Error::msg)?;
    refuse_clobbering(
        &[&Input::File(results.clone())],
        &output,
        &args.job,
        Running::Rollback,
    )?;
    let held = hold_input(&results)?;
    let target = Target::new(args.dry_run, Running::Rollback, args.sandbox, &args.job).await?;
    // The API whose rows are rolled back: the one this rollback talks to, or would.
    let on = match (args.dry_run, args.sandbox) {
        (false, _) => target.name.clone(),
        (true, true) => "sandbox".to_owned(),
        (true, false) => target_of(&args.job.base_url),
    };
    let Some(source) = what_to_undo(&args, &results, &on)? else {
        return Ok(Exit::Success);
    };
    let continuing = match (args.resume, args.overwrite) {
        (true, _) => Continuing::Resume,
        (false, true) => Continuing::Overwrite,
        (false, false) => Continuing::Refuse,
    };
    let (sink, output_log) = open_output(
        &output,
        Opening {
            continuing,
            dry_run: args.dry_run,
            target: &target.name,
            operation: Some(Operation::Delete),
            running: Running::Rollback,
            shard: args.job.shard,
        },
    )?;
    if let Some(undo) = &output_log
        && let Err(error) = refuse_another_rollbacks(undo, &source, &args.results, &output)
    {
        sink.discard_if_unused();
        return Err(error);
    }
    let created = source.created();
    if !args.dry_run && !args.yes {
        let said = ask(&args, created, &on).await;
        if said != Said::Yes {
            sink.discard_if_unused();
            return Ok(match said {
                Said::Interrupted => Exit::Interrupted,
                Said::Yes | Said::No => Exit::Usage,
            });
        }
    }
    let rows = Rows {
        source: Source::Created(Arc::new(source)),
        total: args.job.shard.is_none().then_some(created),
        output,
        sink,
        output_log,
        operation: Operation::Delete,
        preflight: false,
        to_send: true,
    };
    let exit = run_job(rows, target, &args.job).await;
    drop(held);
    exit
}

/// The results file to undo, read; `None` when it records nothing created on `on` (said),
/// and refused when it cannot say what was created there.
fn what_to_undo(
    args: &RollbackArgs,
    results: &Path,
    on: &str,
) -> anyhow::Result<Option<PriorResults>> {
    let source = scan_input(results, on, Running::Rollback)?.ok_or_else(|| {
        anyhow::anyhow!("{} is empty: there is nothing to roll back", args.results)
    })?;
    anyhow::ensure!(
        !source.columns.is_legacy(),
        "{} was written before dbprov recorded which API each row came from (_target): a rollback cannot tell whether its workspaces were created on {on}. Delete them with `dbprov delete` on a file of their names",
        args.results
    );
    anyhow::ensure!(
        !source.written_by.deleted(),
        "{} records deletions (the results of a delete or of a rollback), not what a run created: there is nothing in it to roll back. To create those workspaces again, run their tenant CSV",
        args.results
    );
    if source.created() > 0 {
        return Ok(Some(source));
    }
    let (elsewhere, other) = &source.elsewhere;
    anyhow::ensure!(
        *elsewhere == 0 || other != "sandbox",
        "{} records no workspace created on {on}; {elsewhere} of its rows were recorded against an in-process sandbox (run --sandbox), which went with its process: there is nothing left to roll back",
        args.results
    );
    anyhow::ensure!(
        *elsewhere == 0,
        "{} records no workspace created on {on}; {elsewhere} of its rows were recorded against {other}: give --base-url {other} to roll those back",
        args.results
    );
    logging::notice(
        tracing::Level::INFO,
        &format!(
            "{} records no workspace created on {on}: nothing to roll back",
            args.results
        ),
    );
    Ok(None)
}

/// A rollback's results continued by another rollback of a later run would keep the
/// earlier deletions as done, and delete nothing of what the later run created.
fn refuse_another_rollbacks(
    undo: &PriorResults,
    source: &PriorResults,
    results: &str,
    output: &Output,
) -> anyhow::Result<()> {
    if let Some(unreadable) = undo
        .unreadable_time
        .as_ref()
        .or(source.unreadable_time.as_ref())
    {
        anyhow::bail!(
            "{unreadable}. A rollback's --resume compares the times of both files, to be sure {output} is this rollback's"
        );
    }
    if let (Some(done), Some(created)) = (undo.oldest_done_at, source.newest_created_at)
        && done < created
    {
        anyhow::bail!(
            "{output} records deletions from before {results} recorded its latest creation ({}): it belongs to an earlier rollback, and continuing it would take those deletions for this one's. Give another -o, or --overwrite to replace it",
            humantime::format_rfc3339_millis(created)
        );
    }
    Ok(())
}

/// Asks the operator to confirm the deletions.
async fn ask(args: &RollbackArgs, created: u64, on: &str) -> Said {
    let which = match args.job.shard {
        Some(shard) => format!(
            "the workspaces of shard {}/{} among the {created}",
            shard.index, shard.count
        ),
        None => format!("the {created} workspaces"),
    };
    let question = format!(
        "Delete {which} that {} records as created on {on}?",
        args.results
    );
    confirm(&question).await
}
