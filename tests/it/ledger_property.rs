//! The ledger's property, tried on random sequences of commands against a faulty sandbox:
//! runs and reruns of two shards, with rows changed, dropped and added between them,
//! `--on-exists update`, retries, and processes killed with `kill -9` mid-run. After every
//! command, each results file agrees with the sandbox (every workspace a file calls
//! `created` or `updated` exists with the values recorded; no workspace that existed
//! before the first run is called `created`), and at the end a rollback of the files
//! returns the sandbox to the workspaces it held before the first run.
//!
//! `cargo test` runs a few sequences; `cargo test --test it -- --ignored ledger_property`
//! runs many (`LEDGER_SEQUENCES`, 200 by default).

use std::collections::{BTreeMap, BTreeSet};

use dbprov::sandbox::{FaultConfig, Sandbox};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::common::{Api, JobDir, ResultRow, holding_seeded, job_args, set_flag};
use crate::process::{dbprov_with, signal, spawn_dbprov, until_requests};

/// Names a sequence draws its rows from; the first few exist before the first run.
const POOL: usize = 24;
const EXISTING: usize = 4;
const THEMES: [&str; 3] = ["default", "dark", "corporate"];

/// One sequence's world.
struct World {
    sandbox: Sandbox,
    api: Api,
    dir: JobDir,
    rng: StdRng,
    /// Each name's theme in the input now, when the name is in it.
    input: BTreeMap<String, &'static str>,
    before: BTreeSet<String>,
    log: Vec<String>,
}

impl World {
    async fn new(seed: u64) -> World {
        let existing: Vec<String> = (0..EXISTING).map(name).collect();
        let faults = FaultConfig {
            fail_rate: 0.05,
            fail_after_commit_rate: 0.1,
            drop_rate: 0.05,
            ..FaultConfig::default()
        };
        let sandbox = holding_seeded(&existing, faults, seed).await;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut input = BTreeMap::new();
        for i in 0..POOL {
            if rng.random_bool(0.7) {
                input.insert(name(i), THEMES[rng.random_range(0..3)]);
            }
        }
        World {
            api: Api::new(&sandbox),
            sandbox,
            dir: JobDir::new(),
            rng,
            input,
            before: existing.into_iter().collect(),
            log: Vec::new(),
        }
    }

    /// Changes the input as a tenant list changes: a few rows dropped, added, or given
    /// another theme.
    fn change_input(&mut self) {
        for i in 0..POOL {
            let roll = self.rng.random_range(0..100);
            let name = name(i);
            match (roll, self.input.contains_key(&name)) {
                (0..8, true) => {
                    self.input.remove(&name);
                }
                (0..15, false) => {
                    self.input.insert(name, THEMES[self.rng.random_range(0..3)]);
                }
                (15..25, true) => {
                    self.input.insert(name, THEMES[self.rng.random_range(0..3)]);
                }
                _ => {}
            }
        }
        self.log
            .push(format!("input now {} rows", self.input.len()));
    }

    fn write_input(&self) -> String {
        let mut csv = String::from("name,connectionType,themeName\n");
        for (name, theme) in &self.input {
            csv.push_str(&format!("{name},MULTI_DATASOURCE,{theme}\n"));
        }
        self.dir.write("in.csv", &csv)
    }

    /// The flags of every command: the shard's own file, fast backoff, enough attempts
    /// that the list before a run comes through the faults.
    fn args(&self, shard: u64) -> Vec<String> {
        let mut args = job_args(&self.sandbox, &self.dir, &file(shard));
        args.retain(|a| a != "--no-preflight");
        set_flag(&mut args, "--backoff-max", "5ms");
        args.extend(["--max-attempts", "12", "--shard"].map(str::to_owned));
        args.push(format!("{shard}/2"));
        args
    }

    /// One random step; returns what it was, for the failure message.
    async fn step(&mut self) {
        if self.rng.random_bool(0.4) {
            self.change_input();
        }
        let input = self.write_input();
        let shard = self.rng.random_range(0..2u64);
        let args = self.args(shard);
        let exists = self.dir.path(&file(shard)).exists();
        match self.rng.random_range(0..10) {
            0..4 => {
                self.finish(&["run", &input, "--resume"], &args, shard)
                    .await
            }
            4..6 => {
                let command = ["run", &input, "--resume", "--on-exists", "update"];
                self.finish(&command, &args, shard).await;
            }
            6..8 if exists => {
                let results = self.dir.path(&file(shard));
                let path = results.to_string_lossy().into_owned();
                self.finish(&["retry", &path], &args[2..], shard).await;
            }
            _ => self.kill_midway(&input, &args, shard).await,
        }
    }

    async fn finish(&mut self, command: &[&str], args: &[String], shard: u64) {
        let done = dbprov_with(command, args).await;
        self.log.push(format!(
            "shard {shard}: {} -> exit {}",
            command[..command.len().min(1)].join(" ") + &command[2..].join(" "),
            done.exit
        ));
        assert!(
            [0, 1].contains(&done.exit),
            "{}\n{}",
            self.log.join("\n"),
            done.stderr
        );
    }

    /// A run killed with `kill -9` once it has sent a few requests.
    async fn kill_midway(&mut self, input: &str, args: &[String], shard: u64) {
        let mut args = args.to_vec();
        set_flag(&mut args, "--rate", "200/s");
        let mut command: Vec<&str> = vec!["run", input, "--resume"];
        command.extend(args.iter().map(String::as_str));
        let requests = self.api.stats().await["requests_total"].as_u64().unwrap();
        let mut child = spawn_dbprov(&command);
        let after = requests + self.rng.random_range(1..6);
        until_requests(&self.api, &mut child, after).await;
        // It may have ended first (nothing left to send): then there is nothing to kill.
        if child.try_wait().unwrap().is_none() {
            signal(&child, libc::SIGKILL);
        }
        let _ = child.wait().await;
        self.log.push(format!(
            "shard {shard}: run --resume killed after {after} requests"
        ));
    }

    /// Every results file agrees with the sandbox.
    async fn check(&self) {
        let held: BTreeMap<String, Value> = self
            .api
            .get("/_sandbox/workspaces")
            .await
            .as_array()
            .unwrap()
            .iter()
            .map(|w| (w["name"].as_str().unwrap().to_owned(), w.clone()))
            .collect();
        for shard in 0..2 {
            if !self.dir.path(&file(shard)).exists() {
                continue;
            }
            for row in self.dir.results(&file(shard)).1 {
                self.check_row(&row, &held);
            }
        }
    }

    fn check_row(&self, row: &ResultRow, held: &BTreeMap<String, Value>) {
        let name = &row["name"];
        let said = |what: &str| format!("{what}: {row:?}\n{}", self.log.join("\n"));
        match row["_status"].as_str() {
            "created" => assert!(!self.before.contains(name), "{}", said("claimed")),
            "updated" => {}
            _ => return,
        }
        let workspace = held
            .get(name)
            .unwrap_or_else(|| panic!("{}", said("missing")));
        assert_eq!(
            workspace["themeName"].as_str().unwrap_or("default"),
            row["themeName"],
            "{}",
            said("values")
        );
    }

    /// Rolls every file back, faults off, and compares with the start.
    async fn roll_back(&self) {
        self.sandbox.set_fault_rates(0.0, 0.0, 0.0).unwrap();
        for shard in 0..2 {
            let results = self.dir.path(&file(shard));
            if !results.exists() {
                continue;
            }
            let path = results.to_string_lossy().into_owned();
            let undo = self.dir.path(&format!("undo-{shard}.csv"));
            let mut args = self.args(shard);
            args.drain(..2);
            let command = ["rollback", &path, "--yes", "-o", &undo.to_string_lossy()];
            let done = dbprov_with(&command, &args).await;
            assert!(
                [0].contains(&done.exit),
                "{}\n{}",
                self.log.join("\n"),
                done.stderr
            );
        }
        let left: BTreeSet<String> = self.api.workspace_names().await.into_iter().collect();
        let extra: Vec<&String> = left.difference(&self.before).collect();
        assert!(
            extra.is_empty(),
            "left after the rollback: {extra:?}\n{}\nwhat the files say of them:\n{}",
            self.log.join("\n"),
            self.records_of(&extra)
        );
        assert_eq!(left, self.before, "{}", self.log.join("\n"));
    }

    /// Every record of these names in the files of the sequence, for a failure message.
    fn records_of(&self, names: &[&String]) -> String {
        let mut said = String::new();
        for file in ["shard-0.csv", "shard-1.csv", "undo-0.csv", "undo-1.csv"] {
            let Ok(text) = std::fs::read_to_string(self.dir.path(file)) else {
                continue;
            };
            for line in text.lines() {
                if names.iter().any(|n| line.contains(n.as_str())) {
                    said.push_str(&format!("{file}: {line}\n"));
                }
            }
        }
        said
    }
}

fn name(i: usize) -> String {
    format!("w-{i:02}")
}

fn file(shard: u64) -> String {
    format!("shard-{shard}.csv")
}

async fn sequence(seed: u64, steps: usize) {
    let mut world = World::new(seed).await;
    for _ in 0..steps {
        world.step().await;
        world.check().await;
    }
    world.roll_back().await;
}

#[tokio::test]
async fn the_ledger_agrees_with_the_api_after_random_reruns_kills_and_a_rollback() {
    for seed in 1..=3 {
        sequence(seed, 6).await;
    }
}

#[tokio::test]
#[ignore = "long: run it with --ignored (LEDGER_SEQUENCES sets how many)"]
async fn ledger_property_over_many_sequences() {
    let sequences: u64 = std::env::var("LEDGER_SEQUENCES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    for seed in 100..100 + sequences {
        sequence(seed, 15).await;
    }
}
