//! What the sandbox's state is asked and answers, without any HTTP: the requests it
//! parses into operations, the replies it decides, and the figures it keeps.

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::time::Duration;

use serde::Serialize;

use super::limit::WindowState;
use crate::api::workspace::{Envelope, WorkspaceRequest};

/// Which endpoint a request hit: its method on the workspace path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// Create.
    Post,
    /// Update.
    Put,
    /// List.
    Get,
    /// Delete.
    Delete,
}

/// What HTTP made of a request, or the 4xx answer that says why it could make nothing.
pub type Parsed<T> = Result<T, (u16, Envelope)>;

/// A request to the workspace path, as HTTP read it: the body of a write, the query of a
/// list or a delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// `POST`: the body.
    Create(Parsed<WorkspaceRequest>),
    /// `PUT`: the body.
    Update(Parsed<WorkspaceRequest>),
    /// `GET`: which part of the list.
    List(Parsed<Listing>),
    /// `DELETE`: the `name` of the query.
    Delete(Parsed<String>),
}

impl Operation {
    /// The method it came with.
    pub fn method(&self) -> Method {
        match self {
            Operation::Create(_) => Method::Post,
            Operation::Update(_) => Method::Put,
            Operation::List(_) => Method::Get,
            Operation::Delete(_) => Method::Delete,
        }
    }

    /// The workspace it names, if it names one (a list names none).
    pub fn name(&self) -> Option<String> {
        match self {
            Operation::Create(Ok(request)) | Operation::Update(Ok(request)) => {
                Some(request.name.clone())
            }
            Operation::Delete(Ok(name)) => Some(name.clone()),
            _ => None,
        }
    }
}

/// Which workspaces a list asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// Every one (`isPagination=false`, the default).
    All,
    /// Page n (1-based) of ten (`isPagination=true&pageNumber=n`).
    Page(NonZeroU64),
}

/// What a delete answers: `{"id": "sales-analytics", "message": "Workspace deleted
/// successfully"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deleted {
    /// The workspace's id: a slug of its name.
    pub id: String,
    /// Always [`Deleted::MESSAGE`].
    pub message: String,
}

impl Deleted {
    /// The message of every successful delete.
    pub const MESSAGE: &str = "Workspace deleted successfully";
}

/// A success envelope whose `data` is not a [`crate::api::workspace::WorkspaceRef`]: a list,
/// a delete's answer. `error` is always `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Success<T> {
    /// What the call returns.
    pub data: T,
    /// Always `None`, written `null`.
    pub error: Option<()>,
}

impl<T> Success<T> {
    /// `{"data": data, "error": null}`.
    pub fn new(data: T) -> Success<T> {
        Success { data, error: None }
    }
}

/// One entry of a list's `data`.
#[derive(Serialize)]
pub(super) struct Named<'a> {
    pub(super) name: &'a str,
}

/// A fault the plan assigned to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// 500 without touching state.
    Fail,
    /// Apply the write, then answer 500.
    FailAfterCommit,
    /// Close the connection without applying the write.
    DropBeforeCommit,
    /// Apply the write, then close the connection without an answer.
    DropAfterCommit,
    /// 429 with `Retry-After`: over the rate limit.
    RateLimited,
}

/// The rate limit's verdict on one arriving request, and its fault plan if admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// The client's window with this request counted; `None` without a rate limit.
    pub window: Option<WindowState>,
    /// The fault plan; `None` when the request is over the limit (answer 429).
    pub plan: Option<Plan>,
}

/// What the plan decided for one admitted request, before any work is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Fault to inject, if any.
    pub fault: Option<Fault>,
    /// How long to wait before answering.
    pub delay: Duration,
}

/// The answer to a request on the workspace path, decided under the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Answer with this status and envelope: a write's success, and every error.
    Respond {
        /// HTTP status.
        status: u16,
        /// Body.
        envelope: Envelope,
    },
    /// Answer 200 with this JSON: a list's [`Success`], serialised under the lock because
    /// it borrows the names.
    Listed(Vec<u8>),
    /// Answer 200 with `{"data": deleted, "error": null}`.
    Deleted(Deleted),
    /// Close the connection without answering.
    Drop,
}

/// What a request did, when it did what it asked.
pub(super) enum Done {
    /// Created or updated the workspace of this name.
    Written(String),
    /// Listed: the answer's body.
    Listed(Vec<u8>),
    /// Deleted.
    Deleted(Deleted),
}

impl From<Done> for Reply {
    fn from(done: Done) -> Reply {
        match done {
            Done::Written(name) => Reply::Respond {
                status: 200,
                envelope: Envelope::ok(name),
            },
            Done::Listed(body) => Reply::Listed(body),
            Done::Deleted(deleted) => Reply::Deleted(deleted),
        }
    }
}

/// How many times each fault fired.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FaultCounts {
    /// `--fail-rate` hits, and `--fail-after-commit-rate` hits on a list (nothing to
    /// commit: a plain 500).
    pub fail: u64,
    /// `--fail-after-commit-rate` hits that really committed (a create, update or delete).
    pub fail_after_commit: u64,
    /// `--drop-rate` hits that dropped before committing.
    pub drop_before_commit: u64,
    /// `--drop-rate` hits that dropped after the write was applied (or refused).
    pub drop_after_commit: u64,
    /// Requests answered 429 by `--rate-limit`.
    pub rate_limited: u64,
}

/// `GET /_sandbox/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Every request to the workspace endpoints, counted on arrival, whatever became of it.
    pub requests_total: u64,
    /// Answered requests by HTTP status (dropped ones are not answered).
    pub by_status: BTreeMap<u16, u64>,
    /// Workspaces that exist now.
    pub workspaces: u64,
    /// Workspaces deleted so far.
    pub deleted: u64,
    /// How many times each fault fired.
    pub faults_injected: FaultCounts,
    /// Requests counted against each client (IP address, as the rate limit names it).
    pub requests_by_client: BTreeMap<String, u64>,
    /// Requests answered 429 by `--rate-limit`, by client.
    pub rate_limited_by_client: BTreeMap<String, u64>,
}

/// One line of `GET /_sandbox/requests`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoggedRequest {
    /// Arrival, in microseconds since the sandbox started.
    pub at_us: u64,
    /// `POST`, `PUT`, `GET` or `DELETE`.
    pub method: Method,
    /// The client the request was counted against (see `GET /_sandbox/stats`).
    pub client: String,
    /// The workspace name: a write's body's, a delete's query's; none for a list.
    pub name: Option<String>,
    /// The status answered; `None` when the connection was dropped.
    pub status: Option<u16>,
    /// The fault injected, if any.
    pub fault: Option<Fault>,
}
