use std::io::Write;

use dbprov::Exit;
use dbprov::cli::Cli;
use dbprov::report::{logging, signals};

#[tokio::main]
async fn main() {
    signals::install();
    // A file size limit (ulimit -f) then fails the write with an error the job reports,
    // instead of killing the process between a request and its record.
    // SAFETY: setting a signal's disposition to SIG_IGN has no memory effects.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let cli = Cli::from_command_line().unwrap_or_else(|error| logging::command_line_refused(error));
    logging::init(cli.verbose, cli.quiet, cli.log_format.into());
    let exit = match dbprov::run(cli).await {
        Ok(exit) => exit,
        Err(error) => {
            logging::fatal(&error);
            Exit::Usage
        }
    };
    // Exit here rather than return: dropping the runtime would wait for an input reader
    // still blocked on a pipe that gives no more rows.
    let _ = std::io::stdout().flush();
    std::process::exit(exit as i32);
}
