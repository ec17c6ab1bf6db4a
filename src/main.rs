use std::process::ExitCode;

use clap::Parser;
use dbprov::Exit;
use dbprov::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    dbprov::report::init_logging(cli.verbose, cli.quiet, cli.log_format);
    match dbprov::run(cli).await {
        Ok(exit) => exit.into(),
        Err(error) => {
            eprintln!("error: {error:#}");
            Exit::Usage.into()
        }
    }
}
