//! Integration tests: one binary, a module per behaviour, real HTTP on loopback.
//!
//! To find a test, look up the behaviour's name: `signals` (Ctrl-C, SIGTERM, kill -9),
//! `reruns` (resume, retry), `pacing` (rate limits, 429s, outages), `rollback`, ...

// Helpers shared by the tests.
mod common;
mod fault_server;
mod fixture;
mod hostile;
mod ports;
mod process;
mod tls_front;

// Behaviours.
mod answers;
mod architecture;
mod cli;
mod counts;
mod deploy;
mod encodings;
mod headers;
mod input;
mod ledger;
mod ledger_edges;
mod ledger_property;
mod logs;
mod lost_answers;
mod max_failures;
mod metrics;
mod output_file;
mod pacing;
mod plan;
mod preflight;
mod proxies;
mod read_only;
mod readme;
mod reruns;
mod retry_hint;
mod rollback;
mod run;
mod sandbox_api;
mod sandbox_faults;
mod sandbox_rate_limit;
mod secrets;
mod shards;
mod signals;
mod spreadsheets;
mod summary_file;
mod terminal;
mod tls;
mod update_delete;
