//! `run`, `update` and `delete`: one job over a tenant CSV, with another request.

use super::confirm::{Said, confirm};
use super::guard::{Continuing, Opening, open_output, refuse_clobbering};
use super::job::{Exit, Rows, count_rows, run_job};
use super::running::Running;
use super::target::Target;
use crate::cli::RowsArgs;
use crate::input::CsvFormat;
use crate::job::Source;
use crate::model::{Input, Operation};
use crate::report::signals;

/// `run`, `update` and `delete`: one job over a tenant CSV, with another request.
/// `confirmed`: a delete was confirmed with `--yes` (the others need no confirmation).
pub(super) async fn rows_command(
    args: RowsArgs,
    operation: Operation,
    confirmed: bool,
) -> anyhow::Result<Exit> {
    signals::take_over();
    let input = Input::from_arg(&args.input);
    let kind = match operation {
        Operation::Create => "results",
        Operation::Update => "update",
        Operation::Delete => "delete",
    };
    let output = input
        .results_path(args.output.as_deref(), args.job.shard, kind)
        .map_err(anyhow::Error::msg)?;
    refuse_clobbering(&[&input], &output, &args.job, Running::Rows(operation))?;
    let continuing = match (args.resume, args.overwrite) {
        (true, _) => Continuing::Resume,
        (false, true) => Continuing::Overwrite,
        (false, false) => Continuing::Refuse,
    };
    let target = Target::new(
        args.dry_run,
        Running::Rows(operation),
        args.sandbox,
        &args.job,
    )
    .await?;
    let (sink, output_log) = open_output(
        &output,
        Opening {
            continuing,
            dry_run: args.dry_run,
            target: &target.name,
            operation: Some(operation),
            running: Running::Rows(operation),
            shard: args.job.shard,
        },
    )?;
    let format = CsvFormat::from(args.csv);
    let counted = count_rows(&input, format, args.job.shard, sink, output_log.as_ref()).await?;
    // A delete asks, as a rollback does; a dry run, or the sandbox of this process (empty,
    // gone at the end), deletes nothing that lasts.
    // (Nor does a rerun that has nothing left to send.)
    if !(confirmed || args.dry_run || args.sandbox || !counted.to_send) {
        let which = match counted.total {
            Some(rows) => format!(
                "the workspaces named by {} of {input}",
                match rows {
                    1 => "the row".to_owned(),
                    n => format!("the {n} rows"),
                }
            ),
            None => format!("every workspace named in {input}"),
        };
        let said = confirm(&format!("Delete {which} on {}?", target.name)).await;
        if said != Said::Yes {
            counted.sink.discard_if_unused();
            return Ok(match said {
                Said::Interrupted => Exit::Interrupted,
                Said::Yes | Said::No => Exit::Usage,
            });
        }
    }
    let rows = Rows {
        source: Source::Csv(input, format),
        total: counted.total,
        output,
        sink: counted.sink,
        output_log,
        operation,
        preflight: args.job.preflight.on(),
        to_send: counted.to_send,
    };
    run_job(rows, target, &args.job).await
}
