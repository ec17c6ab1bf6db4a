//! Integration tests: one binary, a module per area, real HTTP on loopback.

mod architecture;
mod common;
mod counts;
mod faults;
mod job;
mod lifecycle;
mod lifecycle_edges;
mod messages;
mod operator;
mod pacing;
mod readme;
mod records;
mod reruns;
mod sandbox;
mod spreadsheets;
mod summary;
