//! Integration tests: one binary, a module per area, real HTTP on loopback.

mod common;
mod job;
mod reruns;
mod sandbox;
