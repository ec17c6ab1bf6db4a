//! The engine: one job, whatever the command. A reader streams rows ([`run`]), the
//! dispatcher decides each row's fate before any request ([`triage`]) and hands the rows
//! to send to workers ([`dispatch`]), each of which attempts its row until the outcome is
//! final ([`attempt`]) under the pacer; one writer thread records every outcome
//! ([`writer`]). A run may list the workspaces first ([`preflight`]). What all of them
//! share is in [`shared`].

mod announce;
mod attempt;
mod dispatch;
mod preflight;
mod progress;
pub mod run;
pub mod shared;
mod trail;
mod triage;
mod writer;

pub use run::{Job, JobError, JobReport, Listed, Source, run};
pub use shared::{Mode, Sender, StopReason};
