//! dbprov writes nothing but the paths it is given (DESIGN.md, "Beyond one machine"): it
//! runs in a container whose root filesystem is read-only, from a working directory it
//! cannot write, with `TMPDIR` pointing nowhere, and a home it cannot write either.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::common::{JobDir, tenants};
use crate::fixture::Job;
use crate::process::{BIN, Finished, run_to_end};

/// The user the job runs as when the tests run as root (whom permissions do not stop).
const NOBODY: u32 = 65534;

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The folders of the test: `bin` (the binary), `ro` (the working directory and home,
/// read-only), `data` (the input, the results: writable), the key in the environment.
struct Container {
    dir: JobDir,
}

impl Container {
    fn new() -> Container {
        let dir = JobDir::new();
        chmod(dir.dir.path(), 0o755);
        for (name, mode) in [("bin", 0o755), ("ro", 0o555), ("data", 0o777)] {
            std::fs::create_dir(dir.path(name)).unwrap();
            chmod(&dir.path(name), mode);
        }
        let bin = dir.path("bin/dbprov");
        if std::fs::hard_link(BIN, &bin).is_err() {
            std::fs::copy(BIN, &bin).unwrap();
        }
        Container { dir }
    }

    fn data(&self, name: &str) -> String {
        self.dir
            .path("data")
            .join(name)
            .to_str()
            .unwrap()
            .to_owned()
    }

    /// Runs `dbprov ARGS` from the read-only folder, as a user it does not belong to when
    /// the tests run as root.
    async fn run(&self, job: &Job, args: &[&str]) -> Finished {
        let mut command = tokio::process::Command::new(self.dir.path("bin/dbprov"));
        command
            .args(args)
            .current_dir(self.dir.path("ro"))
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", self.dir.path("ro"))
            .env("TMPDIR", "/nonexistent/tmp")
            .env("DATABRAIN_API_KEY", job.sandbox.api_key())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        if running_as_root() {
            command.uid(NOBODY).gid(NOBODY);
        }
        run_to_end(command).await
    }
}

#[tokio::test]
async fn the_job_runs_from_a_read_only_folder_with_no_usable_tmpdir() {
    let job = Job::new().await;
    let container = Container::new();
    let input = container.data("tenants.csv");
    std::fs::write(&input, tenants("t", 6)).unwrap();
    chmod(Path::new(&input), 0o644);
    let (results, summary, prom) = (
        container.data("results.csv"),
        container.data("summary.json"),
        container.data("dbprov.prom"),
    );
    let url = job.sandbox.url();
    let base = [
        "-o",
        &results,
        "--base-url",
        &url,
        "--summary-json",
        &summary,
        "--metrics-file",
        &prom,
        "--rate",
        "unlimited",
    ];
    // First a check that the folder is read-only to the job: a results file there fails.
    let refused = container
        .run(
            &job,
            &["run", &input, "-o", "results.csv", "--base-url", &url],
        )
        .await;
    assert_eq!(
        refused.exit, 2,
        "the working directory is writable: {}",
        refused.stderr
    );
    assert_eq!(job.requests().await, 0);

    let mut first: Vec<&str> = vec!["run", &input];
    first.extend(base);
    let run = container.run(&job, &first).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    // A rerun with a new tenant first: the results are rewritten (a temporary file beside
    // them, renamed), the summary and the metrics replaced.
    let all = tenants("t", 6);
    let (header, rows) = all.split_once('\n').unwrap();
    std::fs::write(&input, format!("{header}\nnew,MULTI_DATAMART,,\n{rows}")).unwrap();
    let mut rerun = first.clone();
    rerun.push("--resume");
    let run = container.run(&job, &rerun).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    let (_, rows) = crate::common::parse_rows(csv::Reader::from_path(&results).unwrap());
    assert_eq!(rows.len(), 7);
    assert_eq!(rows[0]["name"], "new");
    assert_eq!(rows[0]["_row"], "1");
    assert_eq!(job.writes().await, 7);
    assert!(
        std::fs::read_to_string(&prom)
            .unwrap()
            .contains("dbprov_exit_code 0")
    );
    assert!(
        std::fs::read_to_string(&summary)
            .unwrap()
            .contains("\"exit_code\": 0")
    );
    // Nothing else was written anywhere the job could reach.
    let mut left: Vec<String> = std::fs::read_dir(container.dir.path("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["dbprov.prom", "results.csv", "summary.json", "tenants.csv"]
    );
    assert_eq!(
        std::fs::read_dir(container.dir.path("ro")).unwrap().count(),
        0
    );
}
