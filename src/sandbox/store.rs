//! The sandbox's state and decisions, without any HTTP: the workspaces, the catalog of
//! things that exist, the seeded fault plan, the per-client rate-limit windows, stats and
//! request log.
//!
//! Everything here runs under one mutex, held for microseconds (longer only to list every
//! workspace at once), so a create is atomic: of 64 concurrent creates of one name exactly
//! one wins.

use std::collections::HashSet;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::config::{Catalog, FaultConfig};
use super::limit::Windows;
use super::replies::{
    Admission, Deleted, Done, Fault, Listing, LoggedRequest, Method, Named, Operation, Parsed,
    Plan, Reply, Stats, Success,
};
use super::workspaces::{Workspaces, slug, updated};
use crate::api::workspace::{
    ConnectionType, Envelope, ErrorCode, SettingsProblem, WorkspaceRequest,
};

/// The whole mutable state of a sandbox.
pub struct Store {
    api_key: String,
    catalog: CatalogSets,
    faults: FaultConfig,
    rng: StdRng,
    /// Workspaces that exist, in creation order (updates replace in place).
    workspaces: Workspaces,
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
            workspaces: Workspaces::new(),
            stats: Stats::default(),
            log: Vec::new(),
            log_capacity,
            windows,
        }
    }

    /// Adds workspaces as if created, without a request: each must be one a create would
    /// accept, and no name may be taken.
    pub fn preload(&mut self, workspaces: Vec<WorkspaceRequest>) -> Result<(), String> {
        for workspace in workspaces {
            let name = workspace.name.clone();
            if let Err((code, message)) = self.validate(&workspace) {
                return Err(format!("starting workspace '{name}': {code}: {message}"));
            }
            if !self.workspaces.insert(workspace) {
                return Err(format!("starting workspace '{name}' is given twice"));
            }
        }
        Ok(())
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

    /// Changes the share of requests answered 500, committed then answered 500, and
    /// dropped (the rest of the faults stay as started).
    pub fn set_fault_rates(&mut self, fail: f64, fail_after_commit: f64, drop: f64) {
        self.faults.fail_rate = fail;
        self.faults.fail_after_commit_rate = fail_after_commit;
        self.faults.drop_rate = drop;
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

    /// Records a request from `client` refused by the rate limit. A request the path
    /// serves (`method`, and the `name` it carried) is logged; another method on the
    /// workspace path is only counted.
    pub fn record_rate_limited(
        &mut self,
        at: Duration,
        method: Option<Method>,
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

    /// Counts an answer that the log does not list: a 405 on the workspace path, say.
    pub fn record_status(&mut self, status: u16) {
        *self.stats.by_status.entry(status).or_default() += 1;
    }

    /// Handles an admitted request: authentication, the planned fault, validation, commit.
    ///
    /// `authorization` is the raw header; `operation` carries the parsed body or query, or
    /// why it could not be parsed (an `INVALID_REQUEST_BODY` or `413` answer prepared by
    /// the caller).
    pub fn handle(
        &mut self,
        at: Duration,
        client: &str,
        authorization: Option<&str>,
        operation: Operation,
        plan: Plan,
    ) -> Reply {
        let (method, name) = (operation.method(), operation.name());
        let (reply, fault) = self.decide(authorization, operation, plan.fault);
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
            Reply::Listed(_) | Reply::Deleted(_) => Some(200),
            Reply::Drop => None,
        };
        self.record(at, method, name, client, status, fault);
        reply
    }

    fn decide(
        &mut self,
        authorization: Option<&str>,
        operation: Operation,
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
        let fault = match (&operation, fault) {
            // A list commits nothing: its after-commit 500 is a plain one.
            (Operation::List(_), Some(Fault::FailAfterCommit)) => Some(Fault::Fail),
            _ => fault,
        };
        match fault {
            Some(Fault::Fail) => return (internal_error(), fault),
            Some(Fault::DropBeforeCommit) => return (Reply::Drop, fault),
            _ => {}
        }
        match (self.apply(operation), fault) {
            (_, Some(Fault::DropAfterCommit)) => (Reply::Drop, fault),
            (Ok(_), Some(Fault::FailAfterCommit)) => (internal_error(), fault),
            (Ok(done), _) => (done.into(), None),
            (Err((status, envelope)), _) => (Reply::Respond { status, envelope }, None),
        }
    }

    /// Validates and carries out one request; returns what it did or the error answer.
    fn apply(&mut self, operation: Operation) -> Parsed<Done> {
        match operation {
            Operation::Create(request) => self.create(request?),
            Operation::Update(request) => self.update(request?),
            Operation::List(listing) => Ok(Done::Listed(self.list(listing?))),
            Operation::Delete(name) => self.delete(name?),
        }
    }

    fn create(&mut self, request: WorkspaceRequest) -> Parsed<Done> {
        self.validate(&request)
            .map_err(|(code, message)| error(code, message))?;
        let name = request.name.clone();
        if self.workspaces.insert(request) {
            Ok(Done::Written(name))
        } else {
            Err(error(
                ErrorCode::WorkspaceNameAlreadyExists,
                format!("a workspace named '{name}' already exists"),
            ))
        }
    }

    fn update(&mut self, request: WorkspaceRequest) -> Parsed<Done> {
        self.validate(&request)
            .map_err(|(code, message)| error(code, message))?;
        let name = request.name.clone();
        let Some(current) = self.workspaces.get(&name) else {
            return Err(does_not_exist(&name));
        };
        // The settings the PUT does not name stay; the whole must still hold together.
        let updated = updated(current, request);
        self.validate(&updated)
            .map_err(|(code, message)| error(code, message))?;
        self.workspaces.replace(updated);
        Ok(Done::Written(name))
    }

    /// The body of a list's answer: the page asked for, or every workspace.
    fn list(&self, listing: Listing) -> Vec<u8> {
        fn named(w: &WorkspaceRequest) -> Named<'_> {
            Named { name: &w.name }
        }
        let data: Vec<Named<'_>> = match listing {
            Listing::All => self.workspaces.iter().map(named).collect(),
            Listing::Page(number) => self.workspaces.page(number).map(named).collect(),
        };
        // Strings and a null: nothing here can fail to serialise.
        serde_json::to_vec(&Success::new(data)).unwrap_or_default()
    }

    fn delete(&mut self, name: String) -> Parsed<Done> {
        match self.workspaces.remove(&name) {
            Some(_) => {
                self.stats.deleted += 1;
                Ok(Done::Deleted(Deleted {
                    id: slug(&name),
                    message: Deleted::MESSAGE.to_owned(),
                }))
            }
            None => Err(does_not_exist(&name)),
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
        // The rule is the client's too: one function, so the two cannot drift apart.
        match r.settings_problem() {
            Some(SettingsProblem::SummaryTypeMissing) => {
                return invalid("summaryType is required when isEnableMetricSummary is true");
            }
            Some(SettingsProblem::CustomPromptMissing) => {
                return invalid("customSummaryPrompt is required when summaryType is custom");
            }
            None => {}
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
        method: Method,
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
        Stats {
            workspaces: self.workspaces.len() as u64,
            ..self.stats.clone()
        }
    }

    /// The current bodies of the workspaces that exist, in creation order.
    pub fn workspaces(&self) -> impl Iterator<Item = &WorkspaceRequest> {
        self.workspaces.iter()
    }

    /// The request log (at most `log_capacity` entries, the earliest ones).
    pub fn log(&self) -> &[LoggedRequest] {
        &self.log
    }
}

fn error(code: ErrorCode, message: String) -> (u16, Envelope) {
    (code.http_status(), Envelope::err(code, message))
}

/// The answer to an update or a delete of a name that does not exist.
fn does_not_exist(name: &str) -> (u16, Envelope) {
    error(
        ErrorCode::WorkspaceDoesNotExist,
        format!("no workspace named '{name}' exists"),
    )
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
    use std::num::NonZeroU64;

    use super::*;
    use crate::sandbox::limit::{WindowLimit, WindowState};
    use crate::sandbox::replies::FaultCounts;

    fn store(faults: FaultConfig) -> Store {
        Store::new("k".into(), &Catalog::default(), faults, 7, 1000)
    }

    fn body(json: serde_json::Value) -> Result<WorkspaceRequest, (u16, Envelope)> {
        Ok(serde_json::from_value(json).unwrap())
    }

    fn code(reply: &Reply) -> Option<&str> {
        match reply {
            Reply::Respond { envelope, .. } => envelope.error.as_ref().map(|e| e.code.as_str()),
            Reply::Listed(_) | Reply::Deleted(_) => None,
            Reply::Drop => Some("DROP"),
        }
    }

    /// Sends `operation` with the right key and this fault.
    fn call(s: &mut Store, operation: Operation, fault: Option<Fault>) -> Reply {
        let plan = Plan {
            fault,
            delay: Duration::ZERO,
        };
        s.handle(Duration::ZERO, "c", Some("Bearer k"), operation, plan)
    }

    fn create(s: &mut Store, name: &str) -> Reply {
        let json = serde_json::json!({"name": name, "connectionType": "MULTI_DATAMART"});
        call(s, Operation::Create(body(json)), None)
    }

    fn delete(s: &mut Store, name: &str, fault: Option<Fault>) -> Reply {
        call(s, Operation::Delete(Ok(name.to_owned())), fault)
    }

    fn names(s: &Store) -> Vec<String> {
        s.workspaces().map(|w| w.name.clone()).collect()
    }

    /// The names of a list's answer.
    fn listed(reply: Reply) -> Vec<String> {
        let Reply::Listed(body) = reply else {
            panic!("not a list: {reply:?}")
        };
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], serde_json::Value::Null);
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["name"].as_str().unwrap().to_owned())
            .collect()
    }

    fn page(n: u64) -> Operation {
        Operation::List(Ok(Listing::Page(NonZeroU64::new(n).unwrap())))
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
            let reply = s.handle(
                Duration::ZERO,
                "c",
                Some("Bearer k"),
                Operation::Create(body(json)),
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
        let reply = s.handle(
            Duration::ZERO,
            "c",
            Some("Bearer k"),
            Operation::Create(body(json)),
            plan,
        );
        assert_eq!(code(&reply), Some("INTERNAL_SERVER_ERROR"));
        assert_eq!(s.workspaces().count(), 1);
        assert_eq!(s.stats().faults_injected.fail_after_commit, 1);
    }

    #[test]
    fn deleting_10_000_of_20_000_keeps_the_others_in_creation_order() {
        let mut s = store(FaultConfig::default());
        let all: Vec<String> = (0..20_000).map(|i| format!("w{i:05}")).collect();
        for name in &all {
            assert_eq!(code(&create(&mut s, name)), None, "{name}");
        }
        // Every other one: the second half backwards, then the first: tombstones everywhere.
        let doomed: Vec<&String> = all.iter().skip(1).step_by(2).collect();
        let (first, second) = doomed.split_at(doomed.len() / 2);
        for name in second.iter().rev().chain(first) {
            let reply = delete(&mut s, name, None);
            assert_eq!(
                reply,
                Reply::Deleted(Deleted {
                    id: name.to_string(),
                    message: "Workspace deleted successfully".to_owned()
                })
            );
        }
        let kept: Vec<String> = all.iter().step_by(2).cloned().collect();
        assert_eq!(names(&s), kept);
        let stats = s.stats();
        assert_eq!((stats.workspaces, stats.deleted), (10_000, 10_000));
        assert_eq!(listed(call(&mut s, page(1), None)), kept[..10]);
        assert_eq!(listed(call(&mut s, page(1000), None)), kept[9_990..]);
        assert!(listed(call(&mut s, page(1001), None)).is_empty());
        assert_eq!(
            listed(call(&mut s, Operation::List(Ok(Listing::All)), None)),
            kept
        );
        // A deleted name is free again, and comes last.
        assert_eq!(code(&create(&mut s, "w00001")), None);
        assert_eq!(names(&s).last().map(String::as_str), Some("w00001"));
        assert_eq!(s.stats().workspaces, 10_001);
    }

    #[test]
    fn starting_workspaces_are_created_without_a_request_if_a_create_would_accept_them() {
        let w = |json| serde_json::from_value::<WorkspaceRequest>(json).unwrap();
        use serde_json::json;
        let a = w(json!({"name": "a", "connectionType": "MULTI_DATAMART"}));
        let b = w(json!({"name": "b", "connectionType": "DATAMART", "datamartName": "sales-mart"}));
        let mut s = store(FaultConfig::default());
        s.preload(vec![a.clone(), b.clone()]).unwrap();
        assert_eq!(names(&s), ["a", "b"]);
        let stats = s.stats();
        assert_eq!((stats.workspaces, stats.requests_total), (2, 0));
        assert!(s.log().is_empty());
        assert_eq!(
            code(&create(&mut s, "a")),
            Some("WORKSPACE_NAME_ALREADY_EXISTS")
        );

        let twice = store(FaultConfig::default()).preload(vec![a.clone(), a.clone()]);
        assert_eq!(twice.unwrap_err(), "starting workspace 'a' is given twice");
        let unknown = w(json!({"name": "c", "connectionType": "DATAMART", "datamartName": "x"}));
        let refused = store(FaultConfig::default()).preload(vec![unknown]);
        assert_eq!(
            refused.unwrap_err(),
            "starting workspace 'c': INVALID_DATAMART_NAME: datamart 'x' does not exist"
        );
    }

    #[test]
    fn a_delete_of_a_name_that_does_not_exist_is_400_workspace_does_not_exist() {
        let mut s = store(FaultConfig::default());
        create(&mut s, "Acme");
        assert!(matches!(delete(&mut s, "Acme", None), Reply::Deleted(_)));
        let Reply::Respond { status, envelope } = delete(&mut s, "Acme", None) else {
            panic!("answered")
        };
        assert_eq!(status, 400);
        let error = envelope.error.unwrap();
        assert_eq!(error.code, "WORKSPACE_DOES_NOT_EXIST");
        assert_eq!(error.message, "no workspace named 'Acme' exists");
        // Exact and case-sensitive, like the other endpoints.
        create(&mut s, "Acme");
        assert_eq!(
            code(&delete(&mut s, "acme", None)),
            Some("WORKSPACE_DOES_NOT_EXIST")
        );
        let stats = s.stats();
        assert_eq!((stats.workspaces, stats.deleted), (1, 1));
        let log: Vec<_> = s.log().iter().map(|r| (r.method, r.status)).collect();
        assert_eq!(
            log,
            [
                (Method::Post, Some(200)),
                (Method::Delete, Some(200)),
                (Method::Delete, Some(400)),
                (Method::Post, Some(200)),
                (Method::Delete, Some(400)),
            ]
        );
    }

    #[test]
    fn faults_on_a_delete_act_as_on_a_write() {
        let mut s = store(FaultConfig::default());
        for name in ["a", "b", "c", "d"] {
            create(&mut s, name);
        }
        let fail = delete(&mut s, "a", Some(Fault::Fail));
        assert_eq!(code(&fail), Some("INTERNAL_SERVER_ERROR"));
        let after = delete(&mut s, "b", Some(Fault::FailAfterCommit));
        assert_eq!(code(&after), Some("INTERNAL_SERVER_ERROR"));
        assert_eq!(
            delete(&mut s, "c", Some(Fault::DropBeforeCommit)),
            Reply::Drop
        );
        assert_eq!(
            delete(&mut s, "d", Some(Fault::DropAfterCommit)),
            Reply::Drop
        );
        assert_eq!(names(&s), ["a", "c"]);
        // An after-commit fault on a delete that found nothing commits nothing: a plain 400.
        let missing = delete(&mut s, "b", Some(Fault::FailAfterCommit));
        assert_eq!(code(&missing), Some("WORKSPACE_DOES_NOT_EXIST"));
        let stats = s.stats();
        assert_eq!(stats.deleted, 2);
        assert_eq!(
            stats.faults_injected,
            FaultCounts {
                fail: 1,
                fail_after_commit: 1,
                drop_before_commit: 1,
                drop_after_commit: 1,
                rate_limited: 0,
            }
        );
    }

    #[test]
    fn a_list_has_nothing_to_commit_so_its_after_commit_fault_is_a_plain_500() {
        let mut s = store(FaultConfig::default());
        create(&mut s, "a");
        let all = || Operation::List(Ok(Listing::All));
        let reply = call(&mut s, all(), Some(Fault::FailAfterCommit));
        assert_eq!(code(&reply), Some("INTERNAL_SERVER_ERROR"));
        assert_eq!(
            call(&mut s, all(), Some(Fault::DropAfterCommit)),
            Reply::Drop
        );
        assert_eq!(
            s.stats().faults_injected,
            FaultCounts {
                fail: 1,
                drop_after_commit: 1,
                ..FaultCounts::default()
            }
        );
        let faults: Vec<_> = s.log().iter().skip(1).map(|r| r.fault).collect();
        assert_eq!(faults, [Some(Fault::Fail), Some(Fault::DropAfterCommit)]);
        // The answer itself: names only, in the envelope.
        let Reply::Listed(body) = call(&mut s, all(), None) else {
            panic!("a list")
        };
        assert_eq!(body, br#"{"data":[{"name":"a"}],"error":null}"#);
        // Without the key, nothing.
        let plan = NO_FAULT;
        let refused = s.handle(Duration::ZERO, "c", Some("Bearer x"), all(), plan);
        assert_eq!(code(&refused), Some("INVALID_DATA_APP_API_KEY"));
    }
}
