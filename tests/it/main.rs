//! Integration tests: one binary, a module per behaviour, real HTTP on loopback.
//!
//! To find a test, look up the behaviour's name: `signals` (Ctrl-C, SIGTERM, kill -9),
//! `reruns` (resume, retry), `pacing` (rate limits, 429s, outages), `rollback`, ...

// Helpers shared by the tests.
mod common;
mod fault_server;
mod hostile;
mod process;

// Behaviours.
mod counts;
mod deploy;
mod encodings;
mod job;
mod ledger;
mod lifecycle_edges;
mod lost_answers;
mod messages;
mod operator;
mod output_file;
mod pacing;
mod plan;
mod preflight;
mod readme;
mod records;
mod reruns;
mod rollback;
mod sandbox_api;
mod sandbox_faults;
mod sandbox_rate_limit;
mod signals;
mod spreadsheets;
mod summary;
mod update_delete;
