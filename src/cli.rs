//! The command line, as clap reads it. Checked further in `settings` before any work.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::sandbox::DEFAULT_API_KEY;
use crate::settings::Rate;

/// Bulk-provisions DataBrain workspaces from a CSV of tenants.
#[derive(Debug, Parser)]
#[command(name = "dbprov", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a local DataBrain-compatible workspace API, with optional fault injection.
    Sandbox(SandboxArgs),
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
    #[arg(long)]
    pub seed: Option<u64>,
    /// Delay before each answer (e.g. 10ms).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub latency: Duration,
    /// Extra random delay, uniform between 0 and this.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub jitter: Duration,
    /// Share of requests answered 500 INTERNAL_SERVER_ERROR without any effect (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// Share of requests whose workspace is created, then answered 500 (the ambiguous case).
    #[arg(long, default_value_t = 0.0)]
    pub fail_after_commit_rate: f64,
    /// Share of requests whose connection is closed without an answer; half of them after
    /// the workspace was created.
    #[arg(long, default_value_t = 0.0)]
    pub drop_rate: f64,
    /// Answer 429 with Retry-After above this many requests per second (e.g. 50/s).
    #[arg(long)]
    pub rate_limit: Option<Rate>,
    /// Datasources that exist, comma-separated (replaces the default set).
    #[arg(long, value_delimiter = ',')]
    pub datasources: Option<Vec<String>>,
    /// Datamarts that exist, comma-separated (replaces the default set).
    #[arg(long, value_delimiter = ',')]
    pub datamarts: Option<Vec<String>>,
    /// LLMs that exist, comma-separated (replaces the default set).
    #[arg(long, value_delimiter = ',')]
    pub llms: Option<Vec<String>>,
    /// Themes that exist, comma-separated (replaces the default set).
    #[arg(long, value_delimiter = ',')]
    pub themes: Option<Vec<String>>,
}
