//! The commands: each one turns its options into a job (or, for `validate` and
//! `sandbox`, into its own work), and every job goes the same way ([`job`]): from the
//! target to the exit codes of `DESIGN.md`.

mod confirm;
mod guard;
mod job;
mod metrics;
mod plan;
mod retry;
mod rollback;
mod rows;
mod running;
mod sandbox;
mod summary_file;
mod target;
mod validate;

use crate::cli::{Cli, Command};
use crate::model::Operation;
use crate::records::same_file;
use crate::report::error_line;
use crate::report::metrics::RunFigures;
pub use job::Exit;
use metrics::MetricsOut;

/// Runs one command to its end.
pub async fn run(cli: Cli) -> anyhow::Result<Exit> {
    let started = std::time::Instant::now();
    // The job's options, and the file the command reads, which --summary-json must never be.
    let (job_args, read) = match &cli.command {
        Command::Run(args) => (Some(&args.rows.job), args.rows.input.clone()),
        Command::Update(args) => (Some(&args.job), args.input.clone()),
        Command::Delete(args) => (Some(&args.rows.job), args.rows.input.clone()),
        Command::Retry(args) => (Some(&args.job), args.results.clone()),
        Command::Plan(args) => (Some(&args.job), args.input.clone()),
        Command::Rollback(args) => (Some(&args.job), args.results.clone()),
        Command::Validate(_) | Command::Sandbox(_) | Command::Completions { .. } => {
            (None, String::new())
        }
    };
    let metrics = job_args.map(MetricsOut::of);
    let summary_json = job_args
        .and_then(|args| args.summary_json.clone())
        .filter(|path| read == "-" || !same_file(path, std::path::Path::new(&read)));
    let ended = run_command(cli).await;
    let (code, error) = match &ended {
        Ok(exit) => (*exit as u8, None),
        Err(error) => (Exit::Usage as u8, Some(error_line(error))),
    };
    summary_file::settle(code, error.clone());
    if let Some(path) = summary_json {
        summary_file::settle_unclaimed(&path, code, error);
    }
    // A command that ended before its job's summary: its exit code, and when it ran.
    if let Some(metrics) = metrics
        && !MetricsOut::sent()
    {
        let figures = RunFigures {
            exit_code: code,
            duration: started.elapsed(),
            finished_at: Some(std::time::SystemTime::now()),
            ..RunFigures::default()
        };
        metrics.send(&figures).await;
    }
    ended
}

/// The command itself.
async fn run_command(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Run(args) => rows::rows_command(args.rows, Operation::Create, true).await,
        Command::Update(args) => rows::rows_command(args, Operation::Update, true).await,
        Command::Delete(args) => rows::rows_command(args.rows, Operation::Delete, args.yes).await,
        Command::Retry(args) => retry::retry_command(args).await,
        Command::Plan(args) => plan::plan_command(args).await,
        Command::Rollback(args) => rollback::rollback_command(args).await,
        Command::Validate(args) => validate::validate_command(args).await,
        Command::Sandbox(args) => sandbox::sandbox_command(args).await,
        Command::Completions { shell } => {
            let mut command = Cli::definition();
            clap_complete::generate(shell, &mut command, "dbprov", &mut std::io::stdout());
            Ok(Exit::Success)
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::input::{CsvFormat, InputReader};
    use crate::model::Input;
    use crate::report::error_line;

    fn missing_file() -> std::io::Error {
        std::fs::File::open("/nonexistent/dbprov/tenants.csv").unwrap_err()
    }

    #[test]
    fn an_os_error_is_told_once_with_the_next_step() {
        let input = Input::from_arg("/nonexistent/dbprov/tenants.csv");
        let error: anyhow::Error = crate::job::JobError::from(
            InputReader::open(&input, CsvFormat::default())
                .err()
                .unwrap(),
        )
        .into();
        assert_eq!(
            error_line(&error),
            "cannot open /nonexistent/dbprov/tenants.csv: No such file or directory (os error 2); check the path"
        );
        let context = anyhow::Error::new(missing_file()).context("cannot read the API key file k");
        assert_eq!(
            error_line(&context),
            "cannot read the API key file k: No such file or directory (os error 2); check the path"
        );
    }
}
