//! The setup most job tests share, in one place: a sandbox on 127.0.0.1 (port 0), a client
//! for it, a temporary work folder, the input written there, `dbprov` run with the usual
//! fast flags, and the results read back.
//!
//! ```ignore
//! let job = Job::new().await;
//! let input = job.input(&tenants("t", 5));
//! let run = job.run(&["run", &input]).await;
//! assert_eq!(run.exit, 0, "{}", run.stderr);
//! assert_one_row_per_input_row(&job.rows(), 5);
//! ```

#![allow(dead_code)]

use dbprov::sandbox::{FaultConfig, Sandbox};
use serde_json::Value;

use crate::common::{
    Api, JobDir, ResultRow, args_for, assert_one_row_per_input_row, holding, job_args,
    plain_sandbox, read_json, requests, sandbox_with, tenants, workspace_counts, writes,
};
use crate::process::{Finished, dbprov_with};

/// Where a job writes its results unless a test says otherwise.
pub const RESULTS: &str = "results.csv";

/// One job's world: a sandbox, a client for it, and a work folder of its own.
pub struct Job {
    pub sandbox: Sandbox,
    pub api: Api,
    pub dir: JobDir,
}

impl Job {
    /// Against a sandbox without faults.
    pub async fn new() -> Job {
        Job::on(plain_sandbox().await)
    }

    /// Against a sandbox with these faults (and seed 1).
    pub async fn with_faults(faults: FaultConfig) -> Job {
        Job::on(sandbox_with(faults).await)
    }

    /// Against a sandbox that holds these workspaces from the start, without faults.
    pub async fn holding(names: &[impl AsRef<str>]) -> Job {
        Job::on(holding(names, FaultConfig::default()).await)
    }

    /// Against this sandbox.
    pub fn on(sandbox: Sandbox) -> Job {
        Job {
            api: Api::new(&sandbox),
            sandbox,
            dir: JobDir::new(),
        }
    }

    /// Writes `in.csv` into the work folder and returns its path.
    pub fn input(&self, csv: &str) -> String {
        self.dir.write("in.csv", csv)
    }

    /// The path of `name` in the work folder, as a string.
    pub fn path(&self, name: &str) -> String {
        self.dir.path(name).to_str().unwrap().to_owned()
    }

    /// The fast flags (no rate limit, millisecond backoff, no preflight) with the results
    /// in `output`: for a test that changes one of them before running.
    pub fn args(&self, output: &str) -> Vec<String> {
        job_args(&self.sandbox, &self.dir, output)
    }

    /// The fast flags with the preflight's list at its default (on), for the tests of what
    /// the list changes.
    pub fn args_with_preflight(&self, output: &str) -> Vec<String> {
        args_for(&self.sandbox, &self.dir, output)
    }

    /// Runs `dbprov` with `command` (`["run", &input, "--resume"]`), then the fast flags,
    /// the results in `results.csv`.
    pub async fn run(&self, command: &[&str]) -> Finished {
        self.run_to(Some(RESULTS), command).await
    }

    /// [`Job::run`] with the results in `output` of the work folder; `None` gives no `-o`
    /// (a retry updates its file in place, a rollback writes beside the file it reads).
    pub async fn run_to(&self, output: Option<&str>, command: &[&str]) -> Finished {
        let mut args = self.args(output.unwrap_or(RESULTS));
        if output.is_none() {
            args.drain(..2);
        }
        dbprov_with(command, &args).await
    }

    /// The rows of `results.csv`, each by column name.
    pub fn rows(&self) -> Vec<ResultRow> {
        self.rows_of(RESULTS)
    }

    /// The rows of the results file `name`, each by column name.
    pub fn rows_of(&self, name: &str) -> Vec<ResultRow> {
        self.dir.results(name).1
    }

    /// The summary `--summary-json` wrote to `summary.json` in the work folder (see
    /// [`with_summary`](crate::common::with_summary)).
    pub fn summary(&self) -> Value {
        read_json(&self.dir.path("summary.json"))
    }

    /// Every request the sandbox has received.
    pub async fn requests(&self) -> u64 {
        requests(&self.api).await
    }

    /// The writes (POST and PUT) the sandbox has received.
    pub async fn writes(&self) -> u64 {
        writes(&self.api).await
    }
}

/// Runs `n` valid tenants through a sandbox with `faults` and checks what every such test
/// wants: exit 0, one results row per input row, all `created`, each workspace once.
/// `--preflight` among `extra` lists the workspaces first (which a lost answer needs, for
/// the job to know the workspace it finds is its own).
pub async fn create_through_faults(
    faults: FaultConfig,
    n: usize,
    extra: &[&str],
) -> (Job, Vec<ResultRow>) {
    let job = Job::with_faults(faults).await;
    let input = job.input(&tenants("t", n));
    let mut command = vec!["run", input.as_str()];
    command.extend(extra);
    let mut args = job.args(RESULTS);
    if extra.contains(&"--preflight") {
        args.retain(|a| a != "--no-preflight");
    }
    let run = dbprov_with(&command, &args).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let rows = job.rows();
    assert_one_row_per_input_row(&rows, n);
    for row in &rows {
        assert_eq!(row["_status"], "created", "{row:?}");
    }
    let counts = workspace_counts(&job.api).await;
    assert_eq!(counts.len(), n);
    assert!(counts.values().all(|c| *c == 1), "no workspace twice");
    (job, rows)
}
