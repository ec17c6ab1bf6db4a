//! The commands: each one turns its options into a job (or, for `validate` and
//! `sandbox`, into its own work), and every job goes the same way ([`job`]): from the
//! target to the exit codes of `DESIGN.md`.

mod guard;
mod job;
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
pub use job::Exit;

/// Runs one command to its end.
pub async fn run(cli: Cli) -> anyhow::Result<Exit> {
    // The --summary-json file, and the file the command reads, which it must never be.
    let (summary_json, read) = match &cli.command {
        Command::Run(args) => (&args.rows.job.summary_json, args.rows.input.clone()),
        Command::Update(args) | Command::Delete(args) => {
            (&args.job.summary_json, args.input.clone())
        }
        Command::Retry(args) => (&args.job.summary_json, args.results.clone()),
        Command::Plan(args) => (&args.job.summary_json, args.input.clone()),
        Command::Rollback(args) => (&args.job.summary_json, args.results.clone()),
        Command::Validate(_) | Command::Sandbox(_) | Command::Completions { .. } => {
            (&None, String::new())
        }
    };
    let summary_json = summary_json
        .clone()
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
    ended
}

/// The command itself.
async fn run_command(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Run(args) => rows::rows_command(args.rows, Operation::Create).await,
        Command::Update(args) => rows::rows_command(args, Operation::Update).await,
        Command::Delete(args) => rows::rows_command(args, Operation::Delete).await,
        Command::Retry(args) => retry::retry_command(args).await,
        Command::Plan(args) => plan::plan_command(args).await,
        Command::Rollback(args) => rollback::rollback_command(args).await,
        Command::Validate(args) => validate::validate_command(args).await,
        Command::Sandbox(args) => sandbox::sandbox_command(args).await,
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
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
