use std::process::ExitCode;

use clap::Parser;
use dbprov::Exit;
use dbprov::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    dbprov::signals::install();
    // A file size limit (ulimit -f) then fails the write with an error the job reports,
    // instead of killing the process between a request and its record.
    // SAFETY: setting a signal's disposition to SIG_IGN has no memory effects.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
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
