//! The DataBrain workspace API as dbprov speaks it: its types and codes
//! ([`workspace`]), one attempt and what came back ([`client`], [`answer`]), the list of
//! workspaces ([`list`]), the rate limit its headers announce ([`announced`]), and which
//! answers are worth another attempt ([`retry`]). No retries and no files here.

pub mod announced;
pub mod answer;
pub mod client;
pub mod list;
pub mod request;
pub mod retry;
pub mod text;
pub mod transport;
pub mod workspace;

pub use announced::Announced;
pub use answer::{Answer, NoAnswer, says_absent};
pub use client::Client;
pub use list::{Listed, Listing};
pub use request::{RowRequest, Verb};
pub use retry::RetryPolicy;
pub use transport::Transport;
