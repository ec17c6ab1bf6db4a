//! `retry`: re-sends the rows of a results file that did not succeed, as the command that
//! wrote them sent them; in place, or into a new file.

use std::path::PathBuf;
use std::sync::Arc;

use super::guard::{Continuing, Opening, hold_input, open_output, refuse_clobbering, scan_input};
use super::job::{Exit, Rows, run_job};
use super::running::Running;
use super::target::Target;
use crate::cli::RetryArgs;
use crate::job::Source;
use crate::model::{Input, Operation, Output};
use crate::records::{PriorResults, Sink};
use crate::report::signals;

pub(super) async fn retry_command(args: RetryArgs) -> anyhow::Result<Exit> {
    signals::take_over();
    anyhow::ensure!(
        args.results != "-",
        "retry reads a results file, not stdin: give its path"
    );
    let running = Running::Retry {
        in_place: args.output.is_none(),
    };
    let target = Target::new(args.dry_run, running, args.sandbox, &args.job).await?;
    // Without -o the results file itself is the log, read once for both roles, and locked
    // before it is read; with -o, a file left by an interrupted retry is carried on, and
    // the input is locked all the same while it is read.
    let opened = match args.output.as_deref() {
        None => in_place(&args, &target.name)?,
        Some(path) => into_another(&args, path, &target.name)?,
    };
    let (input, operation) = (opened.input, opened.operation);
    let (elsewhere, other) = &input.elsewhere;
    anyhow::ensure!(
        operation != Operation::Delete || *elsewhere == 0 || args.dry_run,
        "{} records deletions, and {elsewhere} of its rows were recorded against {other}, not {}: a retry deletes only on the API its rows were meant for. Give --base-url {other} (or --sandbox for `sandbox`); to delete those names here, run dbprov delete on them",
        args.results,
        target.name
    );
    if operation != Operation::Create {
        tracing::info!(
            "{} records the rows of `dbprov {}`: they are sent again as such",
            args.results,
            operation.command()
        );
    }
    let total = args.job.shard.is_none().then(|| input.len() as u64);
    let to_send = input.has_unfinished();
    let rows = Rows {
        source: Source::Results(input),
        total,
        output: opened.output,
        sink: opened.sink,
        output_log: opened.output_log,
        operation,
        preflight: args.job.preflight.on(),
        to_send,
    };
    let exit = run_job(rows, target, &args.job).await;
    drop(opened.held);
    exit
}

/// The files of a retry, opened and locked.
struct Opened {
    /// The results file whose rows are re-sent.
    input: Arc<PriorResults>,
    output: Output,
    sink: Sink,
    /// The results file this retry continues, if any.
    output_log: Option<Arc<PriorResults>>,
    /// What the rows are re-sent as: the operation that wrote them.
    operation: Operation,
    /// The input's shared lock, when it is not the output.
    held: Option<std::fs::File>,
}

/// A retry without -o: the results file is its input and its output.
fn in_place(args: &RetryArgs, target: &str) -> anyhow::Result<Opened> {
    let running = Running::Retry { in_place: true };
    let output = Output::File(PathBuf::from(&args.results));
    refuse_clobbering(&[], &output, &args.job, running)?;
    let (sink, log) = open_output(
        &output,
        Opening {
            continuing: Continuing::Resume,
            dry_run: args.dry_run,
            target,
            operation: None,
            running,
            shard: args.job.shard,
        },
    )?;
    let log = log.ok_or_else(|| nothing_to_retry(args))?;
    let operation = operation_of(args, &log)?;
    Ok(Opened {
        input: log.clone(),
        output,
        sink,
        output_log: Some(log),
        operation,
        held: None,
    })
}

/// A retry into another file (`-o PATH`, or `-o -`): one left by an interrupted retry is
/// carried on.
fn into_another(args: &RetryArgs, path: &str, target: &str) -> anyhow::Result<Opened> {
    let running = Running::Retry { in_place: false };
    let results = PathBuf::from(&args.results);
    let output = if path == "-" {
        Output::Stdout
    } else {
        Output::File(path.into())
    };
    refuse_clobbering(
        &[&Input::File(results.clone())],
        &output,
        &args.job,
        running,
    )?;
    let held = hold_input(&results)?;
    let input = scan_input(&results, target, running)?.ok_or_else(|| nothing_to_retry(args))?;
    let operation = operation_of(args, &input)?;
    let continuing = match output {
        Output::File(_) => Continuing::Resume,
        Output::Stdout => Continuing::Refuse,
    };
    let (sink, log) = open_output(
        &output,
        Opening {
            continuing,
            dry_run: args.dry_run,
            target,
            operation: Some(operation),
            running,
            shard: args.job.shard,
        },
    )?;
    Ok(Opened {
        input: Arc::new(input),
        output,
        sink,
        output_log: log,
        operation,
        held,
    })
}

fn nothing_to_retry(args: &RetryArgs) -> anyhow::Error {
    anyhow::anyhow!("{} is empty: there is nothing to retry", args.results)
}

/// The rows are re-sent as the command that wrote them sent them: a delete's are deleted
/// again, never created.
fn operation_of(args: &RetryArgs, log: &PriorResults) -> anyhow::Result<Operation> {
    let unrecorded = log.written_by.unrecorded;
    anyhow::ensure!(
        unrecorded == 0,
        "{} has {unrecorded} rows whose _operation is empty or not one of create, update, delete: retry sends each row as its _operation says, and will not guess. Write it back (the command that wrote the file: create for run, update, delete)",
        args.results
    );
    log.written_by.operation().map_err(|both| {
        anyhow::anyhow!(
            "{} holds rows of {both}: retry cannot tell which to send. Split the file, or send the rows again with the command they are for",
            args.results
        )
    })
}
