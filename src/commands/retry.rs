//! `retry`: re-sends the rows of a results file that did not succeed, as the command that
//! wrote them sent them; in place, or into a new file.

use std::path::PathBuf;
use std::sync::Arc;

use super::guard::{Continuing, hold_input, open_output, refuse_clobbering, scan_input};
use super::job::{Exit, Rows, run_job};
use super::running::Running;
use super::target::Target;
use crate::cli::RetryArgs;
use crate::job::Source;
use crate::model::{Input, Operation, Output};
use crate::records::PriorResults;
use crate::report::signals;

pub(super) async fn retry_command(args: RetryArgs) -> anyhow::Result<Exit> {
    signals::take_over();
    anyhow::ensure!(
        args.results != "-",
        "retry reads a results file, not stdin: give its path"
    );
    let results = PathBuf::from(&args.results);
    let (in_place, into) = (
        Running::Retry { in_place: true },
        Running::Retry { in_place: false },
    );
    let running = if args.output.is_none() {
        in_place
    } else {
        into
    };
    let target = Target::new(args.dry_run, running, args.sandbox, &args.job).await?;
    let empty = || anyhow::anyhow!("{} is empty: there is nothing to retry", args.results);
    // The rows are re-sent as the command that wrote them sent them: a delete's are
    // deleted again, never created.
    let operation_of = |log: &PriorResults| {
        log.written_by.operation().map_err(|both| {
            anyhow::anyhow!(
                "{} holds rows of {both}: retry cannot tell which to send. Split the file, or send the rows again with the command they are for",
                args.results
            )
        })
    };
    // Without -o the results file itself is the log, read once for both roles, and locked
    // before it is read; with -o, a file left by an interrupted retry is carried on, and
    // the input is locked all the same while it is read.
    let mut held = None;
    let (input, output, sink, output_log, operation) = match args.output.as_deref() {
        None => {
            let output = Output::File(results);
            refuse_clobbering(&[], &output, &args.job, in_place)?;
            let (sink, log) = open_output(
                &output,
                Continuing::Resume,
                args.dry_run,
                &target.name,
                None,
                in_place,
            )?;
            let log = log.ok_or_else(empty)?;
            let operation = operation_of(&log)?;
            (log.clone(), output, sink, Some(log), operation)
        }
        Some(path) => {
            let output = if path == "-" {
                Output::Stdout
            } else {
                Output::File(path.into())
            };
            refuse_clobbering(&[&Input::File(results.clone())], &output, &args.job, into)?;
            held = hold_input(&results)?;
            let input = scan_input(&results, &target.name, into)?.ok_or_else(empty)?;
            let operation = operation_of(&input)?;
            let continuing = match output {
                Output::File(_) => Continuing::Resume,
                Output::Stdout => Continuing::Refuse,
            };
            let (sink, log) = open_output(
                &output,
                continuing,
                args.dry_run,
                &target.name,
                Some(operation),
                into,
            )?;
            (Arc::new(input), output, sink, log, operation)
        }
    };
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
    let rows = Rows {
        source: Source::Results(input),
        total,
        output,
        sink,
        output_log,
        operation,
        preflight: args.job.preflight.on(),
    };
    let exit = run_job(rows, target, &args.job).await;
    drop(held);
    exit
}
