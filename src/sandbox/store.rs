//! The sandbox's state and decisions, without any HTTP: the workspaces, the catalog of
//! things that exist, the seeded fault plan, the per-client rate-limit windows, stats and
//! request log.
//!
//! Everything here runs under one mutex held for microseconds, so a create is atomic:
//! of 64 concurrent creates of one name exactly one wins.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::limit::{WindowState, Windows};
use super::{Catalog, FaultConfig};
use crate::workspace::{ConnectionType, Envelope, ErrorCode, SummaryType, WorkspaceRequest};

/// Which endpoint a request hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum WriteMethod {
    /// Create.
    Post,
    /// Update.
    Put,
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

/// The answer to a write, decided under the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Answer with this status and envelope.
    Respond {
        /// HTTP status.
        status: u16,
        /// Body.
        envelope: Envelope,
    },
    /// Close the connection without answering.
    Drop,
}

/// How many times each fault fired.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FaultCounts {
    /// `--fail-rate` hits.
    pub fail: u64,
    /// `--fail-after-commit-rate` hits that really committed.
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
    /// `POST` or `PUT`.
    pub method: WriteMethod,
    /// The client the request was counted against (see `GET /_sandbox/stats`).
    pub client: String,
    /// The workspace name, when the body had one.
    pub name: Option<String>,
    /// The status answered; `None` when the connection was dropped.
    pub status: Option<u16>,
    /// The fault injected, if any.
    pub fault: Option<Fault>,
}

/// The whole mutable state of a sandbox.
pub struct Store {
    api_key: String,
    catalog: CatalogSets,
    faults: FaultConfig,
    rng: StdRng,
    /// Created workspaces in creation order (updates replace in place).
    workspaces: Vec<WorkspaceRequest>,
    index: HashMap<String, usize>,
    stats: Stats,
    log: Vec<LoggedRequest>,
    log_capacity: usize,
    /// Requests per client in the current window; `None` without a rate limit.
    windows: Option<Windows>,
}

struct CatalogSets {
    datasources: HashSet<String>,
    datamarts: HashSet<String>,
    llms: HashSet<String>,
    themes: HashSet<String>,
}

impl Store {
    /// A store with no workspaces. `seed` fixes the fault sequence.
    pub fn new(
        api_key: String,
        catalog: &Catalog,
        faults: FaultConfig,
        seed: u64,
        log_capacity: usize,
    ) -> Store {
        let set = |names: &[String]| names.iter().cloned().collect::<HashSet<_>>();
        let windows = faults.rate_limit.map(Windows::new);
        Store {
            api_key,
            catalog: CatalogSets {
                datasources: set(&catalog.datasources),
                datamarts: set(&catalog.datamarts),
                llms: set(&catalog.llms),
                themes: set(&catalog.themes),
            },
            faults,
            rng: StdRng::seed_from_u64(seed),
            workspaces: Vec::new(),
            index: HashMap::new(),
            stats: Stats::default(),
            log: Vec::new(),
            log_capacity,
            windows,
        }
    }

    /// Admits a request from `client` arriving `at` after start: counts it in the
    /// client's window, then either refuses it (over the limit) or gives it its fault plan.
    ///
    /// The plan draws the same three random numbers for every admitted request, so the
    /// n-th admitted request gets the same fault for the same seed, whatever it carries.
    pub fn admit(&mut self, at: Duration, client: &str) -> Admission {
        // Counted on arrival, so a test can see requests still waiting on `--latency`.
        self.stats.requests_total += 1;
        *self
            .stats
            .requests_by_client
            .entry(client.to_owned())
            .or_default() += 1;
        let counted = self.windows.as_mut().map(|w| w.count(at, client));
        let window = counted.map(|(state, _)| state);
        if counted.is_some_and(|(_, over)| over) {
            return Admission { window, plan: None };
        }
        Admission {
            window,
            plan: Some(self.plan()),
        }
    }

    /// The next fault plan of the seeded sequence.
    fn plan(&mut self) -> Plan {
        let pick: f64 = self.rng.random();
        let half: bool = self.rng.random();
        let spread: f64 = self.rng.random();
        let f = &self.faults;
        let fault = if pick < f.fail_rate {
            Some(Fault::Fail)
        } else if pick < f.fail_rate + f.fail_after_commit_rate {
            Some(Fault::FailAfterCommit)
        } else if pick < f.fail_rate + f.fail_after_commit_rate + f.drop_rate {
            Some(if half {
                Fault::DropAfterCommit
            } else {
                Fault::DropBeforeCommit
            })
        } else {
            None
        };
        Plan {
            fault,
            delay: f.latency + f.jitter.mul_f64(spread),
        }
    }

    /// Records a request from `client` refused by the rate limit. A write (`method` and
    /// the body's `name`) is logged; another method on the workspace path is only counted.
    pub fn record_rate_limited(
        &mut self,
        at: Duration,
        method: Option<WriteMethod>,
        name: Option<String>,
        client: &str,
    ) {
        self.stats.faults_injected.rate_limited += 1;
        *self
            .stats
            .rate_limited_by_client
            .entry(client.to_owned())
            .or_default() += 1;
        match method {
            Some(method) => self.record(
                at,
                method,
                name,
                client,
                Some(429),
                Some(Fault::RateLimited),
            ),
            None => self.record_status(429),
        }
    }

    /// Counts an answer that the log does not list: not a write (a 405 on the workspace
    /// path, say).
    pub fn record_status(&mut self, status: u16) {
        *self.stats.by_status.entry(status).or_default() += 1;
    }

    /// Handles an admitted write: authentication, the planned fault, validation, commit.
    ///
    /// `authorization` is the raw header; `body` is the parsed request or why it could
    /// not be parsed (an `INVALID_REQUEST_BODY` or `413` answer prepared by the caller).
    pub fn write(
        &mut self,
        at: Duration,
        method: WriteMethod,
        client: &str,
        authorization: Option<&str>,
        body: Result<WorkspaceRequest, (u16, Envelope)>,
        plan: Plan,
    ) -> Reply {
        let name = body.as_ref().ok().map(|b| b.name.clone());
        let (reply, fault) = self.decide(method, authorization, body, plan.fault);
        match (&reply, fault) {
            (_, Some(Fault::Fail)) => self.stats.faults_injected.fail += 1,
            (_, Some(Fault::FailAfterCommit)) => self.stats.faults_injected.fail_after_commit += 1,
            (_, Some(Fault::DropBeforeCommit)) => {
                self.stats.faults_injected.drop_before_commit += 1
            }
            (_, Some(Fault::DropAfterCommit)) => self.stats.faults_injected.drop_after_commit += 1,
            _ => {}
        }
        let status = match &reply {
            Reply::Respond { status, .. } => Some(*status),
            Reply::Drop => None,
        };
        self.record(at, method, name, client, status, fault);
        reply
    }

    fn decide(
        &mut self,
        method: WriteMethod,
        authorization: Option<&str>,
        body: Result<WorkspaceRequest, (u16, Envelope)>,
        fault: Option<Fault>,
    ) -> (Reply, Option<Fault>) {
        let authorized = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .is_some_and(|key| key.trim() == self.api_key);
        if !authorized {
            let envelope = Envelope::err(
                ErrorCode::InvalidDataAppApiKey,
                "invalid or missing API key: send 'Authorization: Bearer <key>'",
            );
            return (respond(envelope), None);
        }
        match fault {
            Some(Fault::Fail) => return (internal_error(), fault),
            Some(Fault::DropBeforeCommit) => return (Reply::Drop, fault),
            _ => {}
        }
        let outcome = match body {
            Ok(request) => self.apply(method, request),
            Err((status, envelope)) => Err((status, envelope)),
        };
        match (outcome, fault) {
            (_, Some(Fault::DropAfterCommit)) => (Reply::Drop, fault),
            (Ok(_), Some(Fault::FailAfterCommit)) => (internal_error(), fault),
            (Ok(name), _) => (
                Reply::Respond {
                    status: 200,
                    envelope: Envelope::ok(name),
                },
                None,
            ),
            (Err((status, envelope)), _) => (Reply::Respond { status, envelope }, None),
        }
    }

    /// Validates and commits one write; returns the workspace name or the error answer.
    fn apply(
        &mut self,
        method: WriteMethod,
        request: WorkspaceRequest,
    ) -> Result<String, (u16, Envelope)> {
        self.validate(&request)
            .map_err(|(code, message)| (code.http_status(), Envelope::err(code, message)))?;
        let name = request.name.clone();
        match (method, self.index.get(&name)) {
            (WriteMethod::Post, Some(_)) => Err(error(
                ErrorCode::WorkspaceNameAlreadyExists,
                format!("a workspace named '{name}' already exists"),
            )),
            (WriteMethod::Post, None) => {
                self.index.insert(name.clone(), self.workspaces.len());
                self.workspaces.push(request);
                self.stats.workspaces += 1;
                Ok(name)
            }
            (WriteMethod::Put, Some(&at)) => {
                self.workspaces[at] = request;
                Ok(name)
            }
            (WriteMethod::Put, None) => Err(error(
                ErrorCode::WorkspaceDoesNotExist,
                format!("no workspace named '{name}' exists"),
            )),
        }
    }

    fn validate(&self, r: &WorkspaceRequest) -> Result<(), (ErrorCode, String)> {
        let invalid = |message: &str| Err((ErrorCode::InvalidRequestBody, message.to_owned()));
        if r.name.trim().is_empty() {
            return invalid("name must not be empty");
        }
        let required = match r.connection_type {
            ConnectionType::Datasource => Some(("datasourceName", &r.datasource_name)),
            ConnectionType::Datamart => Some(("datamartName", &r.datamart_name)),
            _ => None,
        };
        if let Some((field, value)) = required
            && value.as_deref().is_none_or(|v| v.trim().is_empty())
        {
            return invalid(&format!(
                "{field} is required when connectionType is {}",
                r.connection_type
            ));
        }
        if r.is_enable_metric_summary == Some(true) && r.summary_type.is_none() {
            return invalid("summaryType is required when isEnableMetricSummary is true");
        }
        if r.summary_type == Some(SummaryType::Custom)
            && r.custom_summary_prompt
                .as_deref()
                .is_none_or(|p| p.trim().is_empty())
        {
            return invalid("customSummaryPrompt is required when summaryType is custom");
        }
        let unknown = |code: ErrorCode, what: &str, name: &str| {
            Err((code, format!("{what} '{name}' does not exist")))
        };
        let c = &self.catalog;
        match (r.connection_type, &r.datasource_name, &r.datamart_name) {
            (ConnectionType::Datasource, Some(ds), _) if !c.datasources.contains(ds) => {
                return unknown(ErrorCode::InvalidDatasourceName, "datasource", ds);
            }
            (ConnectionType::Datamart, _, Some(dm)) if !c.datamarts.contains(dm) => {
                return unknown(ErrorCode::InvalidDatamartName, "datamart", dm);
            }
            _ => {}
        }
        if let Some(llm) = &r.llm_name
            && !c.llms.contains(llm)
        {
            return unknown(ErrorCode::InvalidLlmName, "LLM", llm);
        }
        if let Some(llm) = r
            .ai_copilot_llms
            .iter()
            .flatten()
            .find(|l| !c.llms.contains(*l))
        {
            return unknown(ErrorCode::InvalidAiCopilotLlms, "AI-Copilot LLM", llm);
        }
        if let Some(theme) = &r.theme_name
            && !c.themes.contains(theme)
        {
            return unknown(ErrorCode::InvalidThemeName, "theme", theme);
        }
        Ok(())
    }

    fn record(
        &mut self,
        at: Duration,
        method: WriteMethod,
        name: Option<String>,
        client: &str,
        status: Option<u16>,
        fault: Option<Fault>,
    ) {
        if let Some(status) = status {
            self.record_status(status);
        }
        if self.log.len() < self.log_capacity {
            self.log.push(LoggedRequest {
                at_us: at.as_micros() as u64,
                method,
                client: client.to_owned(),
                name,
                status,
                fault,
            });
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.stats.clone()
    }

    /// The created workspaces' current bodies, in creation order.
    pub fn workspaces(&self) -> &[WorkspaceRequest] {
        &self.workspaces
    }

    /// The request log (at most `log_capacity` entries, the earliest ones).
    pub fn log(&self) -> &[LoggedRequest] {
        &self.log
    }
}

fn error(code: ErrorCode, message: String) -> (u16, Envelope) {
    (code.http_status(), Envelope::err(code, message))
}

fn respond(envelope: Envelope) -> Reply {
    let status = envelope
        .error
        .as_ref()
        .and_then(|e| e.status)
        .unwrap_or(200);
    Reply::Respond { status, envelope }
}

fn internal_error() -> Reply {
    respond(Envelope::err(
        ErrorCode::InternalServerError,
        "internal server error (injected by the sandbox)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::WindowLimit;

    fn store(faults: FaultConfig) -> Store {
        Store::new("k".into(), &Catalog::default(), faults, 7, 1000)
    }

    fn body(json: serde_json::Value) -> Result<WorkspaceRequest, (u16, Envelope)> {
        Ok(serde_json::from_value(json).unwrap())
    }

    fn code(reply: &Reply) -> Option<&str> {
        match reply {
            Reply::Respond { envelope, .. } => envelope.error.as_ref().map(|e| e.code.as_str()),
            Reply::Drop => Some("DROP"),
        }
    }

    const NO_FAULT: Plan = Plan {
        fault: None,
        delay: Duration::ZERO,
    };

    #[test]
    fn fault_sequence_depends_only_on_the_seed() {
        let faults = FaultConfig {
            fail_rate: 0.3,
            drop_rate: 0.3,
            jitter: Duration::from_millis(10),
            ..FaultConfig::default()
        };
        let draw = |seed| {
            let mut s = Store::new("k".into(), &Catalog::default(), faults.clone(), seed, 0);
            (0..200)
                .map(|_| s.admit(Duration::ZERO, "c").plan.unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
    }

    #[test]
    fn fault_rates_are_roughly_honoured() {
        let mut s = store(FaultConfig {
            fail_rate: 0.25,
            drop_rate: 0.5,
            ..FaultConfig::default()
        });
        let plans: Vec<_> = (0..10_000)
            .map(|_| s.admit(Duration::ZERO, "c").plan.unwrap().fault)
            .collect();
        let count = |f| plans.iter().filter(|p| **p == Some(f)).count();
        assert!((2_200..2_800).contains(&count(Fault::Fail)));
        assert!((2_200..2_800).contains(&count(Fault::DropBeforeCommit)));
        assert!((2_200..2_800).contains(&count(Fault::DropAfterCommit)));
    }

    #[test]
    fn rate_limit_refuses_above_the_limit_within_one_window_per_client() {
        let mut s = store(FaultConfig {
            rate_limit: Some(WindowLimit {
                requests: 3,
                window: Duration::from_secs(2),
            }),
            ..FaultConfig::default()
        });
        let at = Duration::from_millis(1500);
        let admitted = (0..5).filter(|_| s.admit(at, "a").plan.is_some()).count();
        assert_eq!(admitted, 3);
        let refused = s.admit(at, "a");
        assert_eq!(refused.plan, None);
        assert_eq!(
            refused.window,
            Some(WindowState {
                limit: 3,
                remaining: 0,
                reset_after: Duration::from_millis(500),
                window: Duration::from_secs(2),
            })
        );
        assert!(s.admit(at, "b").plan.is_some(), "another client");
        assert!(s.admit(Duration::from_millis(2001), "a").plan.is_some());
        let stats = s.stats();
        assert_eq!(stats.requests_by_client["a"], 7);
        assert_eq!(stats.requests_by_client["b"], 1);
        // Refusals are counted when recorded, with the answer.
        assert!(stats.rate_limited_by_client.is_empty());
    }

    #[test]
    fn without_a_limit_there_is_no_window() {
        let mut s = store(FaultConfig::default());
        let admission = s.admit(Duration::ZERO, "a");
        assert_eq!(admission.window, None);
        assert!(admission.plan.is_some());
    }

    #[test]
    fn validation_codes() {
        let mut s = store(FaultConfig::default());
        let mut w = |json| {
            let reply = s.write(
                Duration::ZERO,
                WriteMethod::Post,
                "c",
                Some("Bearer k"),
                body(json),
                NO_FAULT,
            );
            code(&reply).map(str::to_owned)
        };
        use serde_json::json;
        assert_eq!(
            w(json!({"name":" ","connectionType":"MULTI_DATAMART"})).as_deref(),
            Some("INVALID_REQUEST_BODY")
        );
        assert_eq!(
            w(json!({"name":"a","connectionType":"DATASOURCE"})).as_deref(),
            Some("INVALID_REQUEST_BODY")
        );
        assert_eq!(
            w(json!({"name":"a","connectionType":"DATAMART"})).as_deref(),
            Some("INVALID_REQUEST_BODY")
        );
        assert_eq!(
            w(json!({"name":"a","connectionType":"DATASOURCE","datasourceName":"nope"})).as_deref(),
            Some("INVALID_DATASOURCE_NAME")
        );
        assert_eq!(
            w(json!({"name":"a","connectionType":"DATAMART","datamartName":"nope"})).as_deref(),
            Some("INVALID_DATAMART_NAME")
        );
        assert_eq!(
            w(json!({"name":"a","connectionType":"MULTI_DATASOURCE","llmName":"nope"})).as_deref(),
            Some("INVALID_LLM_NAME")
        );
        assert_eq!(w(json!({"name":"a","connectionType":"MULTI_DATASOURCE","aiCopilotLlms":["gpt-4o","nope"]})).as_deref(), Some("INVALID_AI_COPILOT_LLMS"));
        assert_eq!(
            w(json!({"name":"a","connectionType":"MULTI_DATASOURCE","themeName":"nope"}))
                .as_deref(),
            Some("INVALID_THEME_NAME")
        );
        assert_eq!(
            w(json!({"name":"a","connectionType":"MULTI_DATASOURCE","isEnableMetricSummary":true}))
                .as_deref(),
            Some("INVALID_REQUEST_BODY")
        );
        assert_eq!(
            w(json!({"name":"a","connectionType":"MULTI_DATASOURCE","summaryType":"custom"}))
                .as_deref(),
            Some("INVALID_REQUEST_BODY")
        );
        assert_eq!(
            w(json!({"name":"a","connectionType":"DATASOURCE","datasourceName":"postgres-main"})),
            None
        );
        assert_eq!(
            w(json!({"name":"a","connectionType":"MULTI_DATAMART"})).as_deref(),
            Some("WORKSPACE_NAME_ALREADY_EXISTS")
        );
        assert_eq!(s.stats().workspaces, 1);
    }

    #[test]
    fn fail_after_commit_leaves_the_workspace_and_answers_500() {
        let mut s = store(FaultConfig::default());
        let plan = Plan {
            fault: Some(Fault::FailAfterCommit),
            delay: Duration::ZERO,
        };
        let json = serde_json::json!({"name":"a","connectionType":"MULTI_DATAMART"});
        let reply = s.write(
            Duration::ZERO,
            WriteMethod::Post,
            "c",
            Some("Bearer k"),
            body(json),
            plan,
        );
        assert_eq!(code(&reply), Some("INTERNAL_SERVER_ERROR"));
        assert_eq!(s.workspaces().len(), 1);
        assert_eq!(s.stats().faults_injected.fail_after_commit, 1);
    }
}
