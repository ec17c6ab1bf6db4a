//! What a job checks of its outputs before it sends anything: that no output is an
//! input, and that a results file already there is continued only as it may be (by
//! `--resume` or `retry`, by the command that wrote it, never by a dry run).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use super::running::Running;
use super::summary_file;
use crate::cli::JobArgs;
use crate::model::{Input, Operation, Output, Shard};
use crate::records::file::holder;
use crate::records::ledger::refuse_continuing;
use crate::records::rewrite::upgrade_legacy;
use crate::records::{FileId, OutputFile, PriorResults, ResumeError, Sink, same_file};

/// What to do with a results file that already records sent requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Continuing {
    /// Continue it: keep its successes, append, compact (`--resume`, `retry`).
    Resume,
    /// Replace it (`--overwrite`).
    Overwrite,
    /// Refuse: its rows may be the only record of workspaces created.
    Refuse,
}

/// How a command opens its results file.
pub(crate) struct Opening<'a> {
    /// What to do with a file of sent outcomes already there.
    pub(crate) continuing: Continuing,
    /// Nothing will be sent.
    pub(crate) dry_run: bool,
    /// This run's `_target`.
    pub(crate) target: &'a str,
    /// What this job appends (a file another command wrote is not continued), if known.
    pub(crate) operation: Option<Operation>,
    /// The command running, for the advice of a refusal.
    pub(crate) running: Running,
    /// This run's shard (a file is continued only by the shard that wrote it).
    pub(crate) shard: Option<Shard>,
}

/// Opens and locks the results file, and reads what it holds before any request: the
/// earlier results to continue, if any. Refuses to replace a file of sent outcomes without
/// `--overwrite`, a dry run over one at all, and a rewrite that could not be done.
///
/// A file that another command wrote is not continued (a run's `created` rows are no
/// update's successes), nor one of another API or shard. A refusal advises only the
/// options of the command running.
pub(crate) fn open_output(
    output: &Output,
    opening: Opening<'_>,
) -> anyhow::Result<(Sink, Option<Arc<PriorResults>>)> {
    let Opening {
        continuing,
        dry_run,
        target,
        operation,
        running,
        shard,
    } = opening;
    let shard = shard.unwrap_or(Shard::ALL);
    let path = match output {
        Output::Stdout if continuing == Continuing::Resume => {
            anyhow::bail!("--resume continues a results file: give -o PATH, not stdout")
        }
        Output::Stdout => return Ok((Sink::Stdout, None)),
        Output::File(path) => path,
    };
    let file = OutputFile::lock(path)?;
    let Some(prior) = scan_existing(&file, path, target, continuing, running, shard)? else {
        return Ok((Sink::File(file), None));
    };
    let shown = path.display();
    // A retry of a dry run's own results, in place, plans their rows again: nothing in
    // that file was sent, so nothing is lost. It is the retry a dry run's summary prints.
    let in_place = running == (Running::Retry { in_place: true });
    let replanning = in_place && !prior.sent;
    if dry_run && (prior.sent || (continuing == Continuing::Resume && !replanning)) {
        let what = if running == Running::Plan {
            "a plan"
        } else {
            "a dry run"
        };
        anyhow::bail!(
            "{what} does not change the earlier results in {shown}: give -o a new file for it"
        );
    }
    match continuing {
        Continuing::Resume => {
            let (file, prior) = continue_file(file, path, prior, target, operation, running)?;
            Ok((Sink::File(file), Some(Arc::new(prior))))
        }
        Continuing::Refuse if prior.sent => anyhow::bail!(
            "{shown} records requests that were sent. Use --resume to continue it (only the rows that did not succeed are sent), --overwrite to replace it, or give another -o"
        ),
        Continuing::Refuse | Continuing::Overwrite => Ok((Sink::File(file), None)),
    }
}

/// What a results file already at the path holds; `None` if it holds nothing (or is to be
/// overwritten whatever it is). A file that is no results file is refused, saying what to
/// do instead.
fn scan_existing(
    file: &OutputFile,
    path: &Path,
    target: &str,
    continuing: Continuing,
    running: Running,
    shard: Shard,
) -> anyhow::Result<Option<PriorResults>> {
    let shown = path.display();
    // Without -o, a retry's results file is its input too.
    let in_place = running == (Running::Retry { in_place: true });
    match PriorResults::scan(&file.real_path, target, shard) {
        Ok(prior) => Ok(prior),
        Err(error @ ResumeError::Io { .. }) => Err(error.into()),
        Err(_) if continuing == Continuing::Overwrite => Ok(None),
        Err(ResumeError::NotResults { missing, .. }) if in_place => {
            anyhow::bail!(not_results_input(&shown.to_string(), &missing, running))
        }
        // A file to continue says itself what is wrong with it.
        Err(error) if in_place || continuing == Continuing::Resume => Err(error.into()),
        Err(error) => {
            let overwrite = match (running.has_overwrite(), continuing) {
                (false, _) => "",
                (true, Continuing::Resume) => ", or --overwrite instead of --resume to replace it",
                (true, _) => ", or --overwrite to replace it",
            };
            let why = match error {
                ResumeError::NotResults { missing, .. } => format!("its header lacks {missing}"),
                ResumeError::NotUtf8 { what, .. } => format!("it is not UTF-8: {what}"),
                other => other.to_string(),
            };
            anyhow::bail!(
                "{shown} exists and is not a dbprov results file ({why}): give another -o{overwrite}"
            )
        }
    }
}

/// Readies a results file to be continued: written by the command that continues it, in
/// today's columns, and rewritable at the end.
fn continue_file(
    mut file: OutputFile,
    path: &Path,
    mut prior: PriorResults,
    target: &str,
    operation: Option<Operation>,
    running: Running,
) -> anyhow::Result<(OutputFile, PriorResults)> {
    let shown = path.display();
    if let Some(operation) = operation
        && !prior.written_by.agrees_with(operation)
    {
        let by = prior.written_by.describe();
        let this = if let Running::Retry { .. } = running {
            format!(
                "this retry re-sends rows of `dbprov {}`",
                operation.command()
            )
        } else {
            format!("this is `dbprov {}`", running.name())
        };
        anyhow::bail!("{shown} holds the results of `dbprov {by}`, and {this}: give another -o");
    }
    if prior.columns.is_legacy() || !prior.columns.in_place() {
        let missing = match (prior.columns.is_legacy(), prior.columns.has_operation()) {
            (true, _) => Some("_target and _operation"),
            (false, false) => Some("_operation"),
            (false, true) => None,
        };
        match missing {
            Some(missing) => {
                tracing::info!("{shown} was written before {missing} were recorded: adding them")
            }
            // A spreadsheet moved them: the rows this run appends must line up.
            None => tracing::info!(
                "the result columns of {shown} are not first, in dbprov's order: putting them back"
            ),
        }
        // Each row's own operation where it says one, else what wrote the file, else what
        // continues it.
        let fill = match (prior.written_by.operation(), operation) {
            (Ok(written), _) => written,
            (Err(_), Some(operation)) => operation,
            (Err(_), None) => Operation::Create,
        };
        upgrade_legacy(&prior, &file.real_path, fill)
            .with_context(|| format!("cannot rewrite {shown}"))?;
        // The rewrite is a new file: the lock must be on it.
        drop(file);
        file = OutputFile::lock(path)?;
        prior = PriorResults::scan(&file.real_path, target, prior.shard)?
            .ok_or_else(|| anyhow::anyhow!("{shown} became empty while it was read"))?;
    }
    if let Some(refusal) = refuse_continuing(&prior, &shown.to_string(), target) {
        anyhow::bail!(refusal);
    }
    let unrecorded = prior.written_by.unrecorded;
    anyhow::ensure!(
        unrecorded == 0,
        "{shown} has {unrecorded} rows whose _operation is empty or not one of create, update, delete: which command wrote them cannot be told, and continuing the file would stamp them with this one's. Write it back (create for run, update, delete), or give another -o"
    );
    file.check_rewrite().with_context(|| {
        format!("{shown} is rewritten at the end of the run, and its folder does not allow that")
    })?;
    prior.path = path.to_owned();
    Ok((file, prior))
}

/// Reads the results file that `retry` or `rollback` takes as its input; a file that is no
/// results file is refused with what the command needs instead.
pub(crate) fn scan_input(
    path: &Path,
    target: &str,
    running: Running,
) -> anyhow::Result<Option<PriorResults>> {
    match PriorResults::scan(path, target, Shard::ALL) {
        Err(ResumeError::NotResults { missing, .. }) => {
            anyhow::bail!(not_results_input(
                &path.display().to_string(),
                &missing,
                running
            ))
        }
        other => Ok(other?),
    }
}

/// Why a file given to `retry` or `rollback` as its results file cannot be, and what to
/// give instead.
fn not_results_input(shown: &str, missing: &str, running: Running) -> String {
    let instead = match running {
        Running::Rollback => "rollback deletes what a results file records as created. Give the results file of the run to undo".to_owned(),
        _ => format!(
            "retry re-sends the failed rows of a results file (what run, update or delete wrote). To send the rows of a tenant CSV, use dbprov run {shown}"
        ),
    };
    format!("{shown} is not a dbprov results file (its header lacks {missing}): {instead}")
}

/// No output may be an input (the tenant list, the key file), by any path or hard link,
/// and the results and the summary must be two files. The advice is for the command
/// `running`.
pub(crate) fn refuse_clobbering(
    inputs_given: &[&Input],
    output: &Output,
    args: &JobArgs,
    running: Running,
) -> anyhow::Result<()> {
    if let Some(url) = &args.pushgateway {
        super::metrics::check_pushgateway(url)?;
    }
    let mut outputs: Vec<(&str, &Path)> = Vec::new();
    if let Output::File(path) = output {
        outputs.push(("the results file", path));
    }
    if let Some(path) = &args.summary_json {
        outputs.push(("the --summary-json file", path));
    }
    if let Some(path) = &args.metrics_file {
        outputs.push(("the --metrics-file", path));
    }
    let mut inputs: Vec<(&str, &Path)> = inputs_given
        .iter()
        .filter_map(|input| match input {
            Input::File(path) => Some(("the input", path.as_path())),
            Input::Stdin => None,
        })
        .collect();
    if let Some(path) = &args.api_key_file {
        inputs.push(("the API key file", path));
    }
    if let Some(path) = &args.ca_cert {
        inputs.push(("the --ca-cert file", path));
    }
    // What to do instead of writing the results over the input.
    let not_over_the_input = match running {
        Running::Rollback => "",
        Running::Retry { .. } => " (or none: without -o, retry updates its results file)",
        Running::Rows(_) | Running::Plan => {
            " (to re-send a results file's failures, use dbprov retry)"
        }
    };
    for (i, (what, path)) in outputs.iter().enumerate() {
        let earlier_outputs = outputs[..i].iter();
        for (other, other_path) in inputs.iter().chain(earlier_outputs) {
            anyhow::ensure!(
                !same_file(path, other_path),
                "{what} {} is {other} itself ({}): writing it would destroy it. Give another path{}",
                path.display(),
                other_path.display(),
                if *other == "the input" && *what == "the results file" {
                    not_over_the_input
                } else {
                    ""
                }
            );
        }
    }
    // Standard input has no path to compare: compare what it reads (`run - -o X < X`).
    if inputs_given.contains(&&Input::Stdin)
        && let Some(stdin) = FileId::of_stdin()
    {
        for (what, path) in &outputs {
            anyhow::ensure!(
                FileId::at(path) != Some(stdin),
                "{what} {} is what standard input reads: writing it would destroy the input. Give another path",
                path.display()
            );
        }
    }
    if let (Output::Stdout, Some(path)) = (output, &args.summary_json)
        && let Some(stdout) = FileId::of_stdout()
    {
        anyhow::ensure!(
            FileId::at(path) != Some(stdout),
            "the --summary-json file {} is standard output, where the results go: give another path",
            path.display()
        );
    }
    // A terminal or a pipe is no file to rename metrics over: /dev/stdout replaced by a
    // file would be the machine's loss, not only the job's.
    if let Some(path) = &args.metrics_file {
        let at = FileId::at(path);
        anyhow::ensure!(
            at.is_none() || (at != FileId::of_stdout() && at != FileId::of_stderr()),
            "the --metrics-file {} is where this command's output goes: give a file in the textfile collector's folder",
            path.display()
        );
    }
    if let Some(path) = &args.summary_json {
        summary_file::claim(path)?;
    }
    super::metrics::file_cleared();
    Ok(())
}

/// Locks a results file that a job reads (`rollback`, `retry -o`), shared, so that no job
/// writes it meanwhile (rows still being added would be missed, and the rewrite at the
/// end would move it), while other readers (a rollback's shards) may read it too. Refused,
/// naming the holder, while a job writes it.
pub(crate) fn hold_input(path: &Path) -> anyhow::Result<Option<std::fs::File>> {
    let Ok(file) = std::fs::File::open(path) else {
        return Ok(None); // said by the read that follows
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "{} is being written by another dbprov process ({}): read it once that job has ended",
            path.display(),
            holder(&file)
        ),
        // A file system without locks: nothing to wait for.
        Err(std::fs::TryLockError::Error(_)) => Ok(None),
    }
}
