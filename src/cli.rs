//! The command line, as clap reads it: the one module that knows clap's types, seen by
//! `main` and `commands` alone. Its values become the plain settings of `model` (the
//! conversions are at the end) and are checked further before any work.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::input::decode::{parse_delimiter, parse_encoding};
use crate::model::{MaxFailures, RateLimit, Shard};
use crate::sandbox::{DEFAULT_API_KEY, RateLimitHeaders, WindowLimit};

mod checks;
mod settings;
mod values;

pub use values::MAX_CONCURRENCY;
use values::{above_zero, api_root, concurrency, metrics_job};

/// Help headings: a command's options in groups, the global ones last.
mod heading {
    pub const INPUT: &str = "Input";
    pub const RESULTS: &str = "Results";
    pub const API: &str = "API";
    pub const ROWS: &str = "Rows";
    pub const SENDING: &str = "Sending";
    pub const REPORTING: &str = "Reporting";
    pub const LOGGING: &str = "Logging";
    pub const FAULTS: &str = "Faults";
    pub const CATALOG: &str = "What exists";
}

/// Bulk-provisions DataBrain workspaces from a CSV of tenants.
#[derive(Debug, Parser)]
#[command(name = "dbprov", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// More log detail on stderr: -v debug, -vv trace.
    #[arg(short, long, action = clap::ArgAction::Count, global = true, help_heading = heading::LOGGING)]
    pub verbose: u8,
    /// Less log detail: -q warnings and errors only, -qq errors only.
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "verbose", help_heading = heading::LOGGING)]
    pub quiet: u8,
    /// Log lines as text, or as JSON objects for a log collector.
    #[arg(long, value_enum, default_value_t = LogFormatArg::Text, global = true, help_heading = heading::LOGGING)]
    pub log_format: LogFormatArg,
}

impl Cli {
    /// The command line's definition: clap's, with each command's unused options hidden.
    pub fn definition() -> clap::Command {
        checks::hide_unused(<Cli as clap::CommandFactory>::command())
    }

    /// The process's command line, as clap checks it, and then as clap cannot (an option
    /// the command does not use, `--sandbox` with a `--base-url` given).
    pub fn from_command_line() -> Result<Cli, clap::Error> {
        let mut command = Cli::definition();
        let matches = command.try_get_matches_from_mut(std::env::args_os())?;
        checks::refuse(&command, &matches)?;
        <Cli as clap::FromArgMatches>::from_arg_matches(&matches)
            .map_err(|e| e.format(&mut command))
    }
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormatArg {
    /// One line of text per event.
    Text,
    /// One JSON object per event.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Provision a workspace for every row of a tenant CSV and record each outcome.
    Run(RunArgs),
    /// Re-send only the rows of a results file that did not succeed (as the command that
    /// wrote it: a delete's rows are deleted again, an update's updated).
    Retry(RetryArgs),
    /// Show what `run` would do, from local checks and one list of the workspaces that
    /// exist; sends no write.
    Plan(PlanArgs),
    /// PUT every row's settings over its existing workspace, and record each outcome.
    #[command(mut_arg("output", |arg| arg.help(
        "Results file; `-` writes stdout. Default: `<input stem>.update.csv` beside the input"
    )))]
    Update(RowsArgs),
    /// Delete every row's workspace by name (only a `name` column is needed).
    #[command(mut_arg("output", |arg| arg.help(
        "Results file; `-` writes stdout. Default: `<input stem>.delete.csv` beside the input"
    )))]
    Delete(DeleteArgs),
    /// Delete the workspaces a results file records as created on this API (and those its
    /// lost answers may have created there).
    Rollback(RollbackArgs),
    /// Check a tenant CSV without sending anything: exit 0 only if every row is valid.
    Validate(ValidateArgs),
    /// Serve a local DataBrain-compatible workspace API, with optional fault injection.
    Sandbox(SandboxArgs),
    /// Print a shell completion script: dbprov completions bash > /etc/bash_completion.d/dbprov
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `dbprov validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The tenant CSV; `-` reads stdin.
    pub input: String,
    /// How the CSV is written.
    #[command(flatten)]
    pub csv: CsvArgs,
}

/// How an input CSV is written: its delimiter and its encoding. Both are found out when not
/// given.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct CsvArgs {
    /// The input's field separator: `,` `;` `tab` or `|`. Default: what an Excel `sep=`
    /// first line says, else whichever of `,` `;` and tab the header line has most of.
    #[arg(long, value_name = "C", value_parser = parse_delimiter, help_heading = heading::INPUT)]
    pub delimiter: Option<u8>,
    /// The input's text encoding when it has no byte-order mark: `windows-1252` for
    /// Excel's plain "CSV" on Windows, or another name (`latin1`, `utf-16le`, ...).
    /// Default UTF-8. A file with a byte-order mark (UTF-8, UTF-16) is read by its mark.
    #[arg(long, value_name = "NAME", value_parser = parse_encoding, help_heading = heading::INPUT)]
    pub encoding: Option<&'static encoding_rs::Encoding>,
}

/// `dbprov sandbox`.
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Address to listen on; port 0 picks a free one. Binds loopback unless told otherwise.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The Bearer token the sandbox accepts.
    #[arg(long, default_value = DEFAULT_API_KEY)]
    pub api_key: String,
    /// Seed of the fault sequence: the same seed gives the same faults in the same order.
    #[arg(long, help_heading = heading::FAULTS)]
    pub seed: Option<u64>,
    /// Delay before each answer (e.g. 10ms).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s", help_heading = heading::FAULTS)]
    pub latency: Duration,
    /// Extra random delay, uniform between 0 and this.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s", help_heading = heading::FAULTS)]
    pub jitter: Duration,
    /// Share of requests answered 500 INTERNAL_SERVER_ERROR without any effect (0 to 1).
    #[arg(long, default_value_t = 0.0, help_heading = heading::FAULTS)]
    pub fail_rate: f64,
    /// Share of requests whose write (create, update, delete) is applied, then answered 500
    /// (the ambiguous case); a list gets a plain 500.
    #[arg(long, default_value_t = 0.0, help_heading = heading::FAULTS)]
    pub fail_after_commit_rate: f64,
    /// Share of requests whose connection is closed without an answer; half of them after
    /// the write was applied.
    #[arg(long, default_value_t = 0.0, help_heading = heading::FAULTS)]
    pub drop_rate: f64,
    /// A fixed window per client IP like the vendor's: N requests per window W (500/2m,
    /// 50/s); over it, 429 with Retry-After to the window's end.
    #[arg(long, value_name = "N/W", help_heading = heading::FAULTS)]
    pub rate_limit: Option<WindowLimit>,
    /// Which rate-limit headers every answer carries: draft6 (RateLimit-Limit/-Remaining/
    /// -Reset and RateLimit-Policy), draft7 (RateLimit and RateLimit-Policy), legacy
    /// (X-RateLimit-Limit/-Remaining/-Reset, the reset a Unix time) or none.
    #[arg(long, value_enum, default_value_t, requires = "rate_limit", help_heading = heading::FAULTS)]
    pub rate_limit_headers: RateLimitHeaders,
    /// Answer 429s without Retry-After: a limit that says nothing.
    #[arg(long, requires = "rate_limit", help_heading = heading::FAULTS)]
    pub no_retry_after: bool,
    /// Datasources that exist, comma-separated (replaces the default set).
    #[arg(long, value_delimiter = ',', help_heading = heading::CATALOG)]
    pub datasources: Option<Vec<String>>,
    /// Datamarts that exist, comma-separated (replaces the default set).
    #[arg(long, value_delimiter = ',', help_heading = heading::CATALOG)]
    pub datamarts: Option<Vec<String>>,
    /// LLMs that exist, comma-separated (replaces the default set).
    #[arg(long, value_delimiter = ',', help_heading = heading::CATALOG)]
    pub llms: Option<Vec<String>>,
    /// Themes that exist, comma-separated (replaces the default set).
    #[arg(long, value_delimiter = ',', help_heading = heading::CATALOG)]
    pub themes: Option<Vec<String>>,
}

/// `dbprov run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The input, the results file, and how they are sent.
    #[command(flatten)]
    pub rows: RowsArgs,
}

/// `--preflight` / `--no-preflight`.
#[derive(Debug, Clone, Copy, Args)]
pub struct PreflightArgs {
    /// List the workspaces that exist before sending a run's rows (the default): rows of
    /// those names are `exists` without a request (or go straight to PUT with
    /// --on-exists update). Updates and deletes send every row.
    #[arg(long, overrides_with = "no_preflight", help_heading = heading::ROWS)]
    pub preflight: bool,
    /// Send every row without listing first.
    #[arg(long, overrides_with = "preflight", help_heading = heading::ROWS)]
    pub no_preflight: bool,
}

impl PreflightArgs {
    /// Whether to list first.
    pub fn on(self) -> bool {
        !self.no_preflight
    }
}

/// `dbprov plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The tenant CSV; `-` reads stdin.
    pub input: String,
    /// How the CSV is written.
    #[command(flatten)]
    pub csv: CsvArgs,
    /// The plan, a results file of what `run` would do; `-` writes stdout. Default:
    /// `<input stem>.plan.csv` beside the input.
    #[arg(short, long, help_heading = heading::RESULTS)]
    pub output: Option<String>,
    /// Plan against a local sandbox started in-process (empty: every row is new).
    #[arg(long, help_heading = heading::API)]
    pub sandbox: bool,
    /// The API, and what a taken name means.
    #[command(flatten)]
    pub job: JobArgs,
}

/// `dbprov rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// A results file of `run` (or `retry`): the rows it records as created on this API
    /// are deleted, and the unsuccessful rows whose lost answer may have created a workspace
    /// that the list had not shown before the run; no other.
    pub results: String,
    /// The rollback's own results file; `-` writes stdout. Default: `<results stem>.rollback.csv`.
    #[arg(short, long, help_heading = heading::RESULTS)]
    pub output: Option<String>,
    /// Do not ask: needed without a terminal.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Run against a local sandbox started in-process (no key needed).
    #[arg(long, help_heading = heading::API)]
    pub sandbox: bool,
    /// Write the rows that would be deleted as `planned`; send nothing.
    #[arg(long, help_heading = heading::API)]
    pub dry_run: bool,
    /// If the rollback's results file exists, keep its successful rows and send only the
    /// others.
    #[arg(long, help_heading = heading::RESULTS)]
    pub resume: bool,
    /// Replace a rollback's results file that records sent requests.
    #[arg(long, conflicts_with = "resume", help_heading = heading::RESULTS)]
    pub overwrite: bool,
    /// How requests are sent and the job reported.
    #[command(flatten)]
    pub job: JobArgs,
}

/// The input, output and sending options of `run`, `update` and `delete`.
#[derive(Debug, Args)]
pub struct RowsArgs {
    /// The tenant CSV (a header row, one workspace per data row); `-` reads stdin.
    pub input: String,
    /// How the CSV is written.
    #[command(flatten)]
    pub csv: CsvArgs,
    /// Results file; `-` writes stdout. Default: `<input stem>.results.csv` beside the input.
    #[arg(short, long, help_heading = heading::RESULTS)]
    pub output: Option<String>,
    /// Start a local sandbox in-process and run against it (no key needed): a demo or a
    /// rehearsal of a real CSV.
    #[arg(long, help_heading = heading::API)]
    pub sandbox: bool,
    /// Validate and write every row as `planned`; send nothing. With -v, log the body each
    /// row would send.
    #[arg(long, help_heading = heading::API)]
    pub dry_run: bool,
    /// If the results file exists, keep its successful rows and send only the others.
    #[arg(long, help_heading = heading::RESULTS)]
    pub resume: bool,
    /// Replace a results file that records sent requests (refused otherwise: its rows may
    /// be the only record of workspaces created).
    #[arg(long, conflicts_with = "resume", help_heading = heading::RESULTS)]
    pub overwrite: bool,
    /// How requests are sent and the job reported.
    #[command(flatten)]
    pub job: JobArgs,
}

/// `dbprov delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The input, the results file, and how they are sent.
    #[command(flatten)]
    pub rows: RowsArgs,
    /// Do not ask: needed without a terminal (and with the input on standard input).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// `dbprov retry`.
#[derive(Debug, Args)]
pub struct RetryArgs {
    /// A results file of an earlier run. Its successful rows are carried over unchanged;
    /// every other row is validated again and re-sent (edit a failed row to fix it first).
    pub results: String,
    /// Write to a new file instead of updating RESULTS in place.
    #[arg(short, long, help_heading = heading::RESULTS)]
    pub output: Option<String>,
    /// Run against a local sandbox started in-process (no key needed).
    #[arg(long, help_heading = heading::API)]
    pub sandbox: bool,
    /// Validate and write the rows to re-send as `planned`; send nothing.
    #[arg(long, help_heading = heading::API)]
    pub dry_run: bool,
    /// How requests are sent and the job reported.
    #[command(flatten)]
    pub job: JobArgs,
}

/// `--concurrency` when not given.
pub const DEFAULT_CONCURRENCY: usize = 8;
/// `--rate` when not given.
pub const DEFAULT_RATE: &str = "10/s";
/// `--burst` when not given.
pub const DEFAULT_BURST: u32 = 1;
/// `--max-attempts` when not given.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// `--backoff-base` when not given.
pub const DEFAULT_BACKOFF_BASE: &str = "500ms";
/// `--backoff-max` when not given.
pub const DEFAULT_BACKOFF_MAX: &str = "30s";
/// `--timeout` when not given.
pub const DEFAULT_TIMEOUT: &str = "30s";
/// `--max-retry-after` when not given.
pub const DEFAULT_MAX_RETRY_AFTER: &str = "15m";
/// `--max-outage` when not given.
pub const DEFAULT_MAX_OUTAGE: &str = "5m";
/// `--base-url` when not given.
pub const DEFAULT_BASE_URL: &str = "https://api.usedatabrain.com";

/// Options of `run` and `retry`.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// API root: the cloud or a self-hosted install (`https://host`; a trailing `/api/v2`,
    /// as the vendor's pages write it, is dropped: dbprov adds it). Not with --sandbox.
    #[arg(long, env = "DATABRAIN_BASE_URL", default_value = DEFAULT_BASE_URL, value_parser = api_root, help_heading = heading::API)]
    pub base_url: String,
    /// File holding the service token (else the DATABRAIN_API_KEY environment variable).
    #[arg(long, value_name = "PATH", help_heading = heading::API)]
    pub api_key_file: Option<std::path::PathBuf>,
    /// Requests in flight at most.
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY, value_parser = concurrency, help_heading = heading::SENDING)]
    pub concurrency: usize,
    /// The most the job sends, every attempt included: 10/s, 600/m, 2.5/s, or `unlimited`.
    /// Below it the job paces itself to the API's rate limit (its headers, or its 429s).
    #[arg(long, default_value = DEFAULT_RATE, help_heading = heading::SENDING)]
    pub rate: RateLimit,
    /// Requests that may go out back to back.
    #[arg(long, default_value_t = DEFAULT_BURST, help_heading = heading::SENDING)]
    pub burst: u32,
    /// Attempts per row for retryable failures (500, 502, 503, 504, 408, 429, timeouts,
    /// connection errors).
    #[arg(long, default_value_t = DEFAULT_MAX_ATTEMPTS, help_heading = heading::SENDING)]
    pub max_attempts: u32,
    /// First backoff ceiling; doubles each attempt (full jitter).
    #[arg(long, value_parser = humantime::parse_duration, default_value = DEFAULT_BACKOFF_BASE, help_heading = heading::SENDING)]
    pub backoff_base: Duration,
    /// Largest backoff ceiling.
    #[arg(long, value_parser = humantime::parse_duration, default_value = DEFAULT_BACKOFF_MAX, help_heading = heading::SENDING)]
    pub backoff_max: Duration,
    /// Limit per attempt.
    #[arg(long, value_parser = humantime::parse_duration, default_value = DEFAULT_TIMEOUT, help_heading = heading::SENDING)]
    pub timeout: Duration,
    /// The longest the job waits on the API's rate limit: a Retry-After beyond it (or 429s
    /// without a success for that long) stops the job; the rest are skipped, exit 3.
    #[arg(long, value_parser = humantime::parse_duration, default_value = DEFAULT_MAX_RETRY_AFTER, help_heading = heading::SENDING)]
    pub max_retry_after: Duration,
    /// How long an API that answered earlier may be unreachable (paused, probing one
    /// request at a time) before the job stops; the rest are skipped, exit 3. An API that
    /// never answered stops the job within seconds.
    #[arg(long, value_parser = humantime::parse_duration, default_value = DEFAULT_MAX_OUTAGE, help_heading = heading::SENDING)]
    pub max_outage: Duration,
    /// What a taken name means: success (`exists`), failure, or PUT the row's settings
    /// (`updated`).
    #[arg(long, value_enum, default_value_t = OnExistsArg::Skip, help_heading = heading::ROWS)]
    pub on_exists: OnExistsArg,
    /// Stop dispatching once more rows than this have failed: a count (50) or a share of
    /// the input's rows (2%). The rest are written `skipped`; exit 3.
    #[arg(long, value_name = "N|P%", help_heading = heading::ROWS)]
    pub max_failures: Option<MaxFailures>,
    /// Process only the rows whose name hashes into shard I of N (I from 0). `--shard N`
    /// takes I from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job).
    #[arg(long, value_name = "I/N", help_heading = heading::ROWS)]
    pub shard: Option<Shard>,
    /// A progress bar on a terminal (auto), always, or never; without a bar (and always
    /// with --log-format json), a log line every 10 s.
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto, help_heading = heading::REPORTING)]
    pub progress: ProgressArg,
    /// Without a bar, how often the progress line is logged. Hidden: the contract is every
    /// 10 s; tests and demos want it sooner.
    #[arg(long, value_parser = above_zero, default_value = "10s", hide = true)]
    pub progress_every: Duration,
    /// Write the results for a spreadsheet: a UTF-8 byte-order mark, CRLF line ends, and
    /// `;` between fields if the input used `;`, so that Excel opens them right. The
    /// default for an input a spreadsheet wrote (`;`, not UTF-8, or a UTF-8 byte-order
    /// mark).
    #[arg(long, overrides_with = "no_excel", help_heading = heading::RESULTS)]
    pub excel: bool,
    /// Write plain results (`,`, LF, no byte-order mark) whatever the input.
    #[arg(long, overrides_with = "excel", help_heading = heading::RESULTS)]
    pub no_excel: bool,
    /// Also write the end-of-job summary as JSON to this file. It is emptied when the
    /// command starts; a command that ends without a summary writes its exit code and error.
    #[arg(long, value_name = "PATH", help_heading = heading::REPORTING)]
    pub summary_json: Option<std::path::PathBuf>,
    /// At the end, push the run's metrics to this Prometheus Pushgateway: a POST to
    /// /metrics/job/<--metrics-job> (/shard/<I> with --shard). A push that fails is a
    /// warning; it never changes the exit code.
    #[arg(long, value_name = "URL", help_heading = heading::REPORTING)]
    pub pushgateway: Option<String>,
    /// The `job` of the Pushgateway's grouping key.
    #[arg(long, value_name = "NAME", default_value = "dbprov", value_parser = metrics_job, help_heading = heading::REPORTING)]
    pub metrics_job: String,
    /// Also write the run's metrics to this file, atomically, for node_exporter's
    /// textfile collector (a name ending in .prom).
    #[arg(long, value_name = "PATH", help_heading = heading::REPORTING)]
    pub metrics_file: Option<std::path::PathBuf>,
    /// Whether a run's rows list the workspaces that exist first.
    #[command(flatten)]
    pub preflight: PreflightArgs,
    /// Allow plain http:// to a host other than this machine (the key would cross the
    /// network unencrypted).
    #[arg(long, help_heading = heading::API)]
    pub allow_insecure_http: bool,
    /// Also trust the certificate authorities of this PEM file: a self-hosted API behind a
    /// private CA. SSL_CERT_FILE and SSL_CERT_DIR are read too, beside the built-in roots.
    #[arg(long, value_name = "PATH", conflicts_with = "sandbox", help_heading = heading::API)]
    pub ca_cert: Option<std::path::PathBuf>,
}

/// `--progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressArg {
    /// A bar when stderr is a terminal, log lines otherwise.
    Auto,
    /// A bar, terminal or not.
    Always,
    /// No bar: log lines.
    Never,
}

/// `--on-exists`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnExistsArg {
    /// A taken name is a success: status `exists`.
    Skip,
    /// A taken name is a failure: status `failed`, code `WORKSPACE_NAME_ALREADY_EXISTS`.
    Fail,
    /// Send the row again as `PUT`: status `updated`.
    Update,
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        // Catches at test time what clap would otherwise panic on at the first run: a
        // mut_arg of an id that is not there, two flags of one name, ...
        super::Cli::definition().debug_assert();
    }
}
