//! A local, DataBrain-compatible workspace API with fault injection.
//!
//! It shares only the API types of [`crate::api::workspace`] with the client side. Start it
//! from the command line (`dbprov sandbox`) or in-process with [`spawn`], which binds a
//! free loopback port and returns a [`Sandbox`] handle.

mod config;
mod limit;
mod query;
mod replies;
mod server;
mod store;
mod workspaces;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;

pub use config::{Catalog, DEFAULT_API_KEY, FaultConfig, MAX_BODY_BYTES, SandboxConfig};
pub use limit::{RateLimitHeaders, WindowLimit, WindowState};
pub use replies::{Fault, FaultCounts, LoggedRequest, Method, Stats};

/// A running sandbox. Dropping it stops the server and closes its connections.
pub struct Sandbox {
    addr: SocketAddr,
    api_key: String,
    seed: u64,
    state: Arc<server::Shared>,
    /// The listener and connections being served; `None` while down.
    serving: Mutex<Option<server::Serving>>,
}

impl Sandbox {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The accepted key.
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// The seed in force (given or picked).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The counters, as `GET /_sandbox/stats` shows them.
    pub fn stats(&self) -> Stats {
        self.state.lock().stats()
    }

    /// Changes `--fail-rate`, `--fail-after-commit-rate` and `--drop-rate` from the next
    /// request on, for a test that wants one run to meet faults and the next none. Refuses
    /// rates that the command line would.
    pub fn set_fault_rates(
        &self,
        fail: f64,
        fail_after_commit: f64,
        drop: f64,
    ) -> Result<(), String> {
        FaultConfig {
            fail_rate: fail,
            fail_after_commit_rate: fail_after_commit,
            drop_rate: drop,
            ..FaultConfig::default()
        }
        .validate()?;
        self.state
            .lock()
            .set_fault_rates(fail, fail_after_commit, drop);
        Ok(())
    }

    /// Stops accepting and closes every connection.
    pub fn shutdown(&self) {
        self.go_down();
    }

    /// An outage, for testing a client against one: closes the listening socket at once
    /// (a new connection is refused) and every open connection, keeping the workspaces,
    /// stats and rate-limit windows for [`Sandbox::come_back`].
    pub fn go_down(&self) {
        if let Some(serving) = self.serving().take() {
            serving.stop();
        }
    }

    /// Ends an outage: listens on the same address again and serves the same state.
    /// Does nothing while the sandbox is up.
    pub async fn come_back(&self) -> std::io::Result<()> {
        if !self.is_down() {
            return Ok(());
        }
        let listener = TcpListener::bind(self.addr).await?;
        let serving = server::Serving::start(listener, self.state.clone());
        // Two calls racing here cannot both serve: the second bind fails.
        *self.serving() = Some(serving);
        Ok(())
    }

    /// Whether the sandbox is in an outage ([`Sandbox::go_down`]) or shut down.
    pub fn is_down(&self) -> bool {
        self.serving().is_none()
    }

    fn serving(&self) -> std::sync::MutexGuard<'_, Option<server::Serving>> {
        // Nothing can panic while it is held; a poisoned lock is taken as is.
        self.serving.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Starts a sandbox on `127.0.0.1`, on a free port, in the current tokio runtime.
pub async fn spawn(config: SandboxConfig) -> std::io::Result<Sandbox> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    serve(listener, config)
}

/// Starts a sandbox on an already bound listener, in the current tokio runtime. Refuses
/// (`InvalidInput`) impossible faults, and starting workspaces that a create would refuse.
pub fn serve(listener: TcpListener, config: SandboxConfig) -> std::io::Result<Sandbox> {
    let invalid = |e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    config.faults.validate().map_err(invalid)?;
    let addr = listener.local_addr()?;
    let seed = config.seed.unwrap_or_else(rand::random);
    let mut store = store::Store::new(
        config.api_key.clone(),
        &config.catalog,
        config.faults.clone(),
        seed,
        config.request_log_capacity,
    );
    store.preload(config.workspaces).map_err(invalid)?;
    let state = Arc::new(server::Shared::new(store, &config.faults));
    let serving = server::Serving::start(listener, state.clone());
    Ok(Sandbox {
        addr,
        api_key: config.api_key,
        seed,
        state,
        serving: Mutex::new(Some(serving)),
    })
}
