//! `plan`: what `run` would do, from local checks and one list; no write is sent.

use super::guard::{Continuing, Opening, open_output, refuse_clobbering};
use super::job::{Exit, Rows, count_rows, run_job};
use super::running::Running;
use super::target::Target;
use crate::cli::PlanArgs;
use crate::input::CsvFormat;
use crate::job::Source;
use crate::model::{Input, Operation};
use crate::report::signals;

/// `plan`: what `run` would do, from local checks and one list; no write is sent.
pub(super) async fn plan_command(args: PlanArgs) -> anyhow::Result<Exit> {
    signals::take_over();
    let input = Input::from_arg(&args.input);
    let output = input
        .results_path(args.output.as_deref(), args.job.shard, "plan")
        .map_err(anyhow::Error::msg)?;
    refuse_clobbering(&[&input], &output, &args.job, Running::Plan)?;
    let target = Target::new(false, Running::Plan, args.sandbox, &args.job).await?;
    let (sink, _) = open_output(
        &output,
        Opening {
            continuing: Continuing::Refuse,
            dry_run: true,
            target: &target.name,
            operation: Some(Operation::Create),
            running: Running::Plan,
            shard: args.job.shard,
        },
    )?;
    let format = CsvFormat::from(args.csv);
    let counted = count_rows(&input, format, args.job.shard, sink, None).await?;
    let rows = Rows {
        source: Source::Csv(input, format),
        total: counted.total,
        output,
        sink: counted.sink,
        output_log: None,
        operation: Operation::Create,
        preflight: true,
        to_send: true,
    };
    run_job(rows, target, &args.job).await
}
