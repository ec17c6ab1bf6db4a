//! Integration tests: one binary, a module per area, real HTTP on loopback.

mod common;
mod job;
mod operator;
mod reruns;
mod sandbox;
