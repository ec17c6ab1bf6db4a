//! Pacing: when the next request may go. The job asks [`Pacer::permit`] before every
//! attempt and tells [`Pacer::observe`] what came of it. Four things decide together:
//!
//! - `--rate`, the ceiling the operator sets (a governor limiter);
//! - a pause for everyone after a 429, until its `Retry-After`;
//! - the API's announced window ([`budget`]), when its answers carry rate-limit headers,
//!   or else a pace that adapts to 429s ([`adaptive`]);
//! - the outage breaker ([`breaker`]): one probe at a time while the API cannot be reached.

pub mod adaptive;
pub mod breaker;
pub mod budget;
pub mod pacer;
pub mod protocol;
mod state;

pub use pacer::Pacer;
pub use protocol::{Halt, Next, PacingReport, PacingSettings, Seen, Ticket};
