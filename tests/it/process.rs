//! Running the `dbprov` binary: to its end or in the background, fed on its standard input,
//! signalled, under resource limits, and waited for within a deadline.

#![allow(dead_code)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{Api, writes};

/// What a finished `dbprov` process left.
#[derive(Debug)]
pub struct Finished {
    pub exit: i32,
    pub stderr: String,
    pub stdout: String,
}

/// Taken (shared) while a child process is started, and (exclusively) by a test that closes
/// a socket, a pipe or a locked file and counts on it being closed at once: a child between
/// its fork and its exec holds a copy of every descriptor of this process (those of the tests
/// running beside it too), so a descriptor closed meanwhile stays open until that exec.
static STARTING: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Starts `command`, with no descriptor being [closed at once](close_at_once) meanwhile.
pub fn start(command: &mut tokio::process::Command) -> tokio::process::Child {
    let _starting = STARTING.read().unwrap_or_else(|e| e.into_inner());
    // Returns once the child has reached its exec (or failed to).
    command.spawn().unwrap()
}

/// [`start`] for a `std::process::Command`.
pub fn start_std(command: &mut std::process::Command) -> std::io::Result<std::process::Child> {
    let _starting = STARTING.read().unwrap_or_else(|e| e.into_inner());
    command.spawn()
}

/// Runs `close` (a sandbox going down, a pipe or a locked file dropped) while no child
/// process is being started, so that what it closes is closed at once rather than left open
/// in a child that has not reached its exec yet.
pub fn close_at_once<T>(close: impl FnOnce() -> T) -> T {
    let _alone = STARTING.write().unwrap_or_else(|e| e.into_inner());
    close()
}

/// Runs the `dbprov` binary to its end, without blocking the runtime the sandbox lives on.
pub async fn dbprov(args: &[&str]) -> Finished {
    let output = start(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_dbprov"))
            .args(args)
            .env_remove("DATABRAIN_API_KEY")
            .env_remove("DATABRAIN_BASE_URL")
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped()),
    )
    .wait_with_output()
    .await
    .unwrap();
    Finished {
        exit: output.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
    }
}

/// Sends a signal to a child process.
pub fn signal(child: &tokio::process::Child, signal: i32) {
    let pid = child.id().expect("the child is running") as i32;
    // SAFETY: kill(2) with a pid we own and a valid signal number has no memory effects.
    let sent = unsafe { libc::kill(pid, signal) };
    assert_eq!(sent, 0, "kill({pid}, {signal})");
}

/// Starts `dbprov` without waiting for it.
pub fn spawn_dbprov(args: &[&str]) -> tokio::process::Child {
    start(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_dbprov"))
            .args(args)
            .env_remove("DATABRAIN_API_KEY")
            .env_remove("DATABRAIN_BASE_URL")
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped()),
    )
}

/// Waits until the sandbox has received at least `n` requests (polling its stats), or
/// the process has ended.
pub async fn until_requests(api: &Api, child: &mut tokio::process::Child, n: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if api.stats().await["requests_total"].as_u64().unwrap() >= n {
            return;
        }
        if child.try_wait().unwrap().is_some() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {n} requests within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs `dbprov` with `command` followed by `extra`.
pub async fn dbprov_with(command: &[&str], extra: &[String]) -> Finished {
    dbprov(&line(command, extra)).await
}

/// Runs a command that dbprov printed (its words, `dbprov` first).
pub async fn run_printed(words: &[String]) -> Finished {
    assert_eq!(words[0], "dbprov", "{words:?}");
    let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    dbprov(&args).await
}

pub const BIN: &str = env!("CARGO_BIN_EXE_dbprov");

/// How long any one process of these tests may take before the test gives up on it.
pub const PROCESS_DEADLINE: Duration = Duration::from_secs(90);

/// A `dbprov` command with the environment of the other tests, killed if the test drops it.
pub fn command(args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(BIN);
    command
        .args(args)
        .env_remove("DATABRAIN_API_KEY")
        .env_remove("DATABRAIN_BASE_URL")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Starts `dbprov` with a pipe on its standard input, for the test to write into.
pub fn spawn_fed(args: &[&str]) -> (tokio::process::Child, tokio::process::ChildStdin) {
    let mut child = start(command(args).stdin(Stdio::piped()));
    let stdin = child.stdin.take().unwrap();
    (child, stdin)
}

/// Waits for a child's end, within [`PROCESS_DEADLINE`].
pub async fn finish(child: tokio::process::Child) -> Finished {
    finish_within(child, PROCESS_DEADLINE).await
}

/// Waits for a child's end, within `deadline` (the child is killed if it is not over).
pub async fn finish_within(child: tokio::process::Child, deadline: Duration) -> Finished {
    let output = tokio::time::timeout(deadline, child.wait_with_output())
        .await
        .expect("dbprov ends within the deadline")
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    Finished {
        exit: output
            .status
            .code()
            .unwrap_or_else(|| 128 + output.status.signal().unwrap_or(0)),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
    }
}

/// Runs a command to its end, within [`PROCESS_DEADLINE`].
pub async fn run_to_end(mut command: tokio::process::Command) -> Finished {
    finish(start(&mut command)).await
}

/// Polls until the sandbox has received `n` writes; fails if the child ends first.
pub async fn until_writes(api: &Api, child: &mut tokio::process::Child, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while writes(api).await < n {
        assert!(
            child.try_wait().unwrap().is_none(),
            "dbprov ended before {n} requests"
        );
        assert!(Instant::now() < deadline, "no {n} requests within 60 s");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Sets a resource limit (soft and hard) in the child, between fork and exec.
pub fn limit(
    command: &mut tokio::process::Command,
    resource: libc::__rlimit_resource_t,
    value: u64,
) {
    // SAFETY: setrlimit is async-signal-safe; the closure allocates nothing.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: value,
                rlim_max: value,
            };
            if libc::setrlimit(resource, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// `head` followed by `args`: the fast flags of the fixtures, less `--no-preflight` for
/// the commands that never list (and refuse it).
pub fn line<'a>(head: &[&'a str], args: &'a [String]) -> Vec<&'a str> {
    let mut all = head.to_vec();
    all.extend(args.iter().map(String::as_str).filter(|arg| {
        *arg != "--no-preflight" || !never_lists(head.first().copied().unwrap_or(""))
    }));
    all
}

/// `update`, `delete` and `rollback` send every row, a plan always lists: `--preflight`
/// means nothing to them.
fn never_lists(command: &str) -> bool {
    matches!(command, "update" | "delete" | "rollback" | "plan")
}
