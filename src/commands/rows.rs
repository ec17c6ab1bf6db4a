//! `run`, `update` and `delete`: one job over a tenant CSV, with another request.

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
pub(super) async fn rows_command(args: RowsArgs, operation: Operation) -> anyhow::Result<Exit> {
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
