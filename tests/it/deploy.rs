//! `deploy/` builds the image the README names, and its manifests run that image the way
//! Kubernetes' batch conventions say (DESIGN.md, "Beyond one machine"). The files are read
//! as text: `.ci/run` checks them against Kubernetes' schemas (kubernetes-validate) and the
//! Dockerfile with hadolint; these tests check what a schema cannot.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::process::start_std;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

const BIN: &str = env!("CARGO_BIN_EXE_dbprov");

/// The container of the manifests that runs dbprov (the helper pod's is another).
const CONTAINER: &str = "dbprov";

/// Where a manifest's `--pushgateway` goes when the test runs its command: nothing
/// listens on the discard port.
const NOWHERE: &str = "http://127.0.0.1:9";

/// `deploy/Dockerfile` as (instruction, arguments), continuations joined, per stage.
fn dockerfile_stages(text: &str) -> Vec<Vec<(String, String)>> {
    let mut stages: Vec<Vec<(String, String)>> = Vec::new();
    let mut logical = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if (trimmed.starts_with('#') && logical.is_empty()) || trimmed.is_empty() {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            logical.push_str(head);
            logical.push(' ');
            continue;
        }
        logical.push_str(trimmed);
        let line = std::mem::take(&mut logical);
        let (keyword, rest) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        let keyword = keyword.to_ascii_uppercase();
        let rest = rest.split_whitespace().collect::<Vec<_>>().join(" ");
        if keyword == "FROM" {
            stages.push(Vec::new());
        }
        stages
            .last_mut()
            .expect("the Dockerfile starts with FROM")
            .push((keyword, rest));
    }
    stages
}

/// The number distroless names a Debian release by (`cc-debian13` is trixie).
fn debian_release(codename: &str) -> Option<u32> {
    match codename {
        "bookworm" => Some(12),
        "trixie" => Some(13),
        "forky" => Some(14),
        _ => None,
    }
}

/// The runtime's `USER`, numeric (`uid:gid`) so that Kubernetes' runAsNonRoot can check it
/// without the image's /etc/passwd.
fn image_user(dockerfile: &str) -> (u32, u32) {
    let stages = dockerfile_stages(dockerfile);
    let user = stages
        .last()
        .unwrap()
        .iter()
        .rev()
        .find(|(k, _)| k == "USER")
        .map(|(_, rest)| rest.clone())
        .expect("the runtime names its USER");
    let (uid, gid) = user
        .split_once(':')
        .unwrap_or_else(|| panic!("USER uid:gid, both: {user}"));
    let number = |n: &str| {
        n.parse::<u32>()
            .unwrap_or_else(|_| panic!("USER is numeric: {user}"))
    };
    (number(uid), number(gid))
}

#[test]
fn the_dockerfile_builds_the_binary_the_manifests_run() {
    let root = Path::new(ROOT);
    let dockerfile = fs::read_to_string(root.join("deploy/Dockerfile")).unwrap();
    let stages = dockerfile_stages(&dockerfile);
    assert!(stages.len() >= 2, "a builder and a runtime stage");
    let instruction = |stage: &[(String, String)], keyword: &str| -> Vec<String> {
        stage
            .iter()
            .filter(|(k, _)| k == keyword)
            .map(|(_, rest)| rest.clone())
            .collect()
    };

    // The builder: Rust 1.95, `cargo build --release --locked`.
    let builder = &stages[0];
    let from = instruction(builder, "FROM").remove(0);
    let (image, name) = from
        .split_once(" AS ")
        .or_else(|| from.split_once(" as "))
        .expect("the builder stage is named (FROM … AS name)");
    assert!(image.starts_with("rust:1.95"), "{image}");
    assert!(
        instruction(builder, "RUN")
            .iter()
            .any(|r| r == "cargo build --release --locked"),
        "the builder runs `cargo build --release --locked`: {builder:?}"
    );
    let workdir = instruction(builder, "WORKDIR")
        .pop()
        .expect("a WORKDIR to build in");
    // That command makes target/release/<the bin's name>.
    let manifest = fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let bin = manifest
        .split("[[bin]]")
        .nth(1)
        .and_then(|s| s.lines().find_map(|l| l.trim().strip_prefix("name = ")))
        .map(|n| n.trim_matches('"'))
        .expect("a [[bin]] with a name");
    assert_eq!(bin, "dbprov");
    let built = format!("{}/target/release/{bin}", workdir.trim_end_matches('/'));

    // The runtime: distroless, only that binary, a numeric user that is not root.
    let runtime = stages.last().unwrap();
    let base = instruction(runtime, "FROM").remove(0);
    let codename = image.rsplit('-').next().unwrap();
    let release = debian_release(codename)
        .unwrap_or_else(|| panic!("the builder ({image}) names a Debian release"));
    let (repository, tag) = base.split_once(':').unwrap_or((&base, ""));
    assert_eq!(
        repository,
        format!("gcr.io/distroless/cc-debian{release}"),
        "the runtime is distroless cc (glibc, libgcc, CA certificates, no shell) of the builder's \
         Debian release ({image}): the binary needs its glibc"
    );
    assert!(
        tag.starts_with("nonroot"),
        "the distroless variant whose user is nonroot: {base}"
    );
    assert_eq!(
        instruction(runtime, "RUN"),
        Vec::<String>::new(),
        "the runtime has no shell: nothing can RUN in it"
    );
    let copies: Vec<String> = instruction(runtime, "COPY")
        .into_iter()
        .chain(instruction(runtime, "ADD"))
        .collect();
    assert_eq!(
        copies.len(),
        1,
        "the runtime copies the binary only: {copies:?}"
    );
    let words: Vec<&str> = copies[0].split(' ').collect();
    assert_eq!(words[0], format!("--from={name}"), "{copies:?}");
    assert_eq!(words[1], built, "it copies what the build made");
    let installed = words[2];
    let (uid, gid) = image_user(&dockerfile);
    assert!(uid != 0 && gid != 0, "not root: {uid}:{gid}");
    let entrypoint = instruction(runtime, "ENTRYPOINT")
        .pop()
        .expect("an ENTRYPOINT");
    assert_eq!(
        entrypoint,
        format!("[\"{installed}\"]"),
        "the binary is the entrypoint"
    );

    let ignored = fs::read_to_string(root.join(".dockerignore")).unwrap();
    let ignored: Vec<&str> = ignored
        .lines()
        .map(|l| l.trim().trim_start_matches('/').trim_end_matches('/'))
        .collect();
    for needed in ["target", ".git"] {
        assert!(ignored.contains(&needed), ".dockerignore lists {needed}");
    }
}

#[test]
fn the_manifests_run_the_image_the_readme_builds() {
    let root = Path::new(ROOT);
    let readme = fs::read_to_string(root.join("README.md")).unwrap();
    let words_of = |prefix: &str| -> Vec<Vec<String>> {
        readme
            .lines()
            .filter(|l| l.trim_start().starts_with(prefix))
            .map(|l| {
                l.split('#')
                    .next()
                    .unwrap()
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect()
            })
            .collect()
    };
    let builds = words_of("docker build ");
    assert_eq!(
        builds.len(),
        1,
        "one build command in the README: {builds:?}"
    );
    let build = &builds[0];
    let after = |flag: &str| {
        build
            .iter()
            .position(|w| w == flag)
            .and_then(|i| build.get(i + 1))
            .unwrap_or_else(|| panic!("{flag} in {build:?}"))
    };
    assert_eq!(after("-f"), "deploy/Dockerfile");
    assert_eq!(
        build.last().unwrap(),
        ".",
        "built from the repository's root"
    );
    let image = after("-t");
    assert!(
        words_of("docker push ")
            .iter()
            .any(|p| p.get(2) == Some(image)),
        "the README pushes what it builds ({image})"
    );

    let mut jobs = 0;
    for (path, text) in manifests() {
        for container in containers(&text) {
            if container.name == CONTAINER {
                assert_eq!(
                    container.image,
                    *image,
                    "{} runs another image than the README builds",
                    path.display()
                );
                jobs += 1;
            } else {
                // A helper (deploy/data-pod.yaml): another image, but a fixed one.
                let (_, tag) = container.image.rsplit_once(':').unwrap_or_else(|| {
                    panic!("{}: {} names its tag", path.display(), container.image)
                });
                assert!(
                    !tag.is_empty() && tag != "latest" && !container.image.contains("dbprov"),
                    "{}: the helper {} runs a fixed image that is not dbprov's: {}",
                    path.display(),
                    container.name,
                    container.image
                );
            }
        }
    }
    assert!(jobs >= 2, "the CronJob and the Indexed Job run the image");
}

/// Every `deploy/*.yaml`, with its text.
fn manifests() -> Vec<(PathBuf, String)> {
    let mut found: Vec<(PathBuf, String)> = fs::read_dir(Path::new(ROOT).join("deploy"))
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .map(|path| {
            let text = fs::read_to_string(&path).unwrap();
            (path, text)
        })
        .collect();
    found.sort();
    found
}

/// A line's text without its comment (`#` after a space, or at its start).
fn uncommented(line: &str) -> &str {
    let cut = if line.trim_start().starts_with('#') {
        Some(line.len() - line.trim_start().len())
    } else {
        line.find(" #")
    };
    cut.map_or(line, |i| &line[..i]).trim_end()
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn unquoted(value: &str) -> String {
    value.trim().trim_matches('"').trim_matches('\'').to_owned()
}

/// The values of every `key: value` line (in a mapping, or first in a list item).
fn values(text: &str, key: &str) -> Vec<String> {
    text.lines()
        .map(uncommented)
        .filter_map(|line| {
            let line = line.trim_start().trim_start_matches("- ");
            line.strip_prefix(key)?.strip_prefix(':').map(unquoted)
        })
        .collect()
}

/// The one value of `key` in a manifest.
fn value(path: &Path, text: &str, key: &str) -> String {
    let found = values(text, key);
    assert_eq!(found.len(), 1, "{}: one {key}: {found:?}", path.display());
    found[0].clone()
}

/// The lines of the block under the (first) line `key:`, with the lines deeper than it.
fn block<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    let mut lines = text
        .lines()
        .map(uncommented)
        .skip_while(|line| line.trim_start().trim_start_matches("- ") != format!("{key}:"));
    let Some(head) = lines.next() else {
        return Vec::new();
    };
    let depth = indent(head);
    lines
        .filter(|line| !line.trim().is_empty())
        .take_while(|line| indent(line) > depth)
        .collect()
}

/// The items of a flow (`[1, 2]`) or block list.
fn list_items(value: &str, below: &[&str]) -> Vec<String> {
    match value
        .trim()
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
    {
        Some(inner) => inner.split(',').map(unquoted).collect(),
        None => below
            .iter()
            .filter_map(|l| l.trim_start().strip_prefix("- "))
            .map(unquoted)
            .collect(),
    }
}

#[derive(Debug)]
struct Container {
    name: String,
    image: String,
    /// Its args, as Kubernetes passes them (before it expands `$(VAR)`).
    args: Vec<String>,
}

/// The containers of a manifest: each `- name:` list item that has an `image:`.
fn containers(text: &str) -> Vec<Container> {
    let lines: Vec<&str> = text.lines().map(uncommented).collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(image) = line.trim_start().strip_prefix("image:") else {
            continue;
        };
        let depth = indent(line);
        let start = (0..i)
            .rev()
            .find(|&j| indent(lines[j]) + 2 == depth && lines[j].trim_start().starts_with("- "))
            .expect("an image in a list item");
        let end = (start + 1..lines.len())
            .find(|&j| !lines[j].trim().is_empty() && indent(lines[j]) < depth)
            .unwrap_or(lines.len());
        let item = lines[start..end].join("\n");
        let item = item.replacen("- ", "  ", 1);
        let name = values(&item, "name")
            .into_iter()
            .next()
            .expect("a container has a name");
        let args = values(&item, "args")
            .into_iter()
            .next()
            .map(|v| list_items(&v, &block(&item, "args")))
            .unwrap_or_default();
        found.push(Container {
            name,
            image: unquoted(image),
            args,
        });
    }
    found
}

/// One rule of a podFailurePolicy.
#[derive(Debug)]
struct Rule {
    action: String,
    container: Option<String>,
    exit_codes: Vec<i32>,
    conditions: Vec<String>,
}

fn pod_failure_rules(text: &str) -> Vec<Rule> {
    let lines = block(text, "podFailurePolicy");
    let mut rules: Vec<Vec<&str>> = Vec::new();
    for line in lines {
        if line.trim_start().starts_with("- action:") {
            rules.push(Vec::new());
        }
        if let Some(rule) = rules.last_mut() {
            rule.push(line);
        }
    }
    rules
        .into_iter()
        .map(|lines| {
            let text = lines.join("\n");
            let codes = values(&text, "values")
                .first()
                .map(|v| list_items(v, &block(&text, "values")))
                .unwrap_or_default();
            Rule {
                action: values(&text, "action").remove(0),
                container: values(&text, "containerName").into_iter().next(),
                exit_codes: codes.iter().map(|c| c.parse().unwrap()).collect(),
                conditions: values(&text, "type"),
            }
        })
        .collect()
}

#[test]
fn the_jobs_fail_on_what_a_restart_cannot_mend_and_retry_the_rest() {
    let mut checked = 0;
    for (path, text) in manifests() {
        if !containers(&text).iter().any(|c| c.name == CONTAINER) {
            continue;
        }
        let at = path.display();
        let kind = value(&path, &text, "kind");
        let indexed = values(&text, "completionMode") == ["Indexed"];
        assert!(
            kind == "CronJob" || (kind == "Job" && indexed),
            "{at}: {kind}"
        );

        // A failure is a new pod, judged by its exit code (DESIGN.md, "Exit codes").
        assert_eq!(value(&path, &text, "restartPolicy"), "Never", "{at}");
        assert_eq!(
            value(&path, &text, "podReplacementPolicy"),
            "Failed",
            "{at}"
        );
        let rules = pod_failure_rules(&text);
        let fail = if indexed { "FailIndex" } else { "FailJob" };
        let first_rule = |code: i32| rules.iter().position(|r| r.exit_codes.contains(&code));
        for code in [1, 2] {
            let rule = first_rule(code).unwrap_or_else(|| panic!("{at}: a rule for exit {code}"));
            assert_eq!(
                rules[rule].action, fail,
                "{at}: exit {code} cannot be mended by a restart"
            );
        }
        for code in [3, 4, 130] {
            if let Some(rule) = first_rule(code) {
                assert_eq!(
                    rules[rule].action, "Count",
                    "{at}: exit {code} is retried, with --resume"
                );
            }
        }
        for rule in rules.iter().filter(|r| !r.exit_codes.is_empty()) {
            assert_eq!(
                rule.container.as_deref(),
                Some(CONTAINER),
                "{at}: exit codes are dbprov's: {rule:?}"
            );
        }
        let disruption = rules
            .iter()
            .position(|r| r.conditions.iter().any(|c| c == "DisruptionTarget"))
            .unwrap_or_else(|| panic!("{at}: a rule for pods Kubernetes evicted"));
        assert_eq!(rules[disruption].action, "Ignore", "{at}");
        assert!(
            first_rule(130).is_none_or(|rule| disruption < rule),
            "{at}: an evicted pod (SIGTERM, exit 130) is not counted"
        );

        // Retries: per shard for the Indexed Job, so one shard never stops the others.
        if indexed {
            assert_eq!(values(&text, "backoffLimitPerIndex").len(), 1, "{at}");
            assert!(
                values(&text, "backoffLimit").is_empty(),
                "{at}: a budget per index only"
            );
            let completions: u32 = value(&path, &text, "completions").parse().unwrap();
            let most: u32 = value(&path, &text, "maxFailedIndexes").parse().unwrap();
            assert!(most <= completions, "{at}");
        } else {
            assert_eq!(values(&text, "backoffLimit").len(), 1, "{at}");
            assert_eq!(value(&path, &text, "concurrencyPolicy"), "Forbid", "{at}");
            assert_eq!(value(&path, &text, "timeZone"), "Etc/UTC", "{at}");
            for key in [
                "startingDeadlineSeconds",
                "successfulJobsHistoryLimit",
                "failedJobsHistoryLimit",
            ] {
                value(&path, &text, key);
            }
        }
        for key in ["activeDeadlineSeconds", "ttlSecondsAfterFinished"] {
            let seconds: u64 = value(&path, &text, key).parse().unwrap();
            assert!(seconds > 0, "{at}: {key}");
        }
        checked += 1;
    }
    assert_eq!(checked, 2, "the CronJob and the Indexed Job");
}

#[test]
fn every_pod_is_hardened_and_shares_the_images_user_and_the_volume() {
    let dockerfile = fs::read_to_string(Path::new(ROOT).join("deploy/Dockerfile")).unwrap();
    let (uid, gid) = image_user(&dockerfile);
    let manifests = manifests();
    let claims: Vec<String> = manifests
        .iter()
        .filter(|(path, text)| value(path, text, "kind") == "PersistentVolumeClaim")
        .map(|(_, text)| values(&block(text, "metadata").join("\n"), "name").remove(0))
        .collect();
    assert_eq!(claims, ["dbprov-data"], "deploy/pvc.yaml claims the volume");

    let mut pods = 0;
    for (path, text) in &manifests {
        if containers(text).is_empty() {
            continue;
        }
        let at = path.display();
        for (key, expected) in [
            ("runAsNonRoot", "true".to_owned()),
            ("runAsUser", uid.to_string()),
            ("runAsGroup", gid.to_string()),
            ("fsGroup", gid.to_string()),
            ("readOnlyRootFilesystem", "true".to_owned()),
            ("allowPrivilegeEscalation", "false".to_owned()),
            ("drop", "[ALL]".to_owned()),
            ("automountServiceAccountToken", "false".to_owned()),
            ("claimName", claims[0].clone()),
            ("mountPath", "/data".to_owned()),
        ] {
            assert_eq!(value(path, text, key), expected, "{at}: {key}");
        }
        assert_eq!(
            values(&block(text, "seccompProfile").join("\n"), "type"),
            ["RuntimeDefault"],
            "{at}"
        );
        let limits = block(text, "limits").join("\n");
        assert_eq!(values(&limits, "memory").len(), 1, "{at}: a memory limit");
        // With a ReadWriteOnce volume every pod of it runs on one node.
        let label = "dbprov-volume";
        let labelled = values(text, label);
        assert!(
            labelled.len() >= 2 && labelled.iter().all(|v| *v == claims[0]),
            "{at}: the pod's label and its affinity's: {labelled:?}"
        );
        let affinity = block(text, "podAffinity").join("\n");
        assert_eq!(values(&affinity, label), [claims[0].clone()], "{at}");

        // dbprov creates no directory: its files go straight into the volume.
        for container in containers(text) {
            for arg in container.args.iter().filter(|a| a.starts_with("/data/")) {
                assert!(
                    !arg["/data/".len()..].contains('/'),
                    "{at}: {arg} is in a folder that must exist first"
                );
            }
        }
        pods += 1;
    }
    assert_eq!(pods, 3, "the CronJob, the Indexed Job and the helper pod");
}

/// Each manifest's command, run as a dry run on a copy of the samples with /data a
/// temporary folder: its options exist, go together and write where the volume is.
#[test]
fn the_manifests_commands_run() {
    let samples = Path::new(ROOT).join("samples/tenants.csv");
    let mut ran = 0;
    for (path, text) in manifests() {
        for container in containers(&text)
            .into_iter()
            .filter(|c| c.name == CONTAINER)
        {
            let at = path.display();
            let data = tempfile::tempdir().unwrap();
            let dir = data.path().to_str().unwrap();
            let mut args: Vec<String> = container
                .args
                .iter()
                .map(|a| a.replace("$(JOB_COMPLETION_INDEX)", "0"))
                .map(|a| match a.strip_prefix("/data/") {
                    Some(file) => format!("{dir}/{file}"),
                    None => a,
                })
                .collect();
            if let Some(i) = args.iter().position(|a| a == "--pushgateway") {
                args[i + 1] = NOWHERE.to_owned();
            }
            args.push("--dry-run".to_owned());
            assert_eq!(args[0], "run", "{at}");
            fs::copy(&samples, &args[1]).unwrap();
            let output = start_std(
                Command::new(BIN)
                    .args(&args)
                    .env_remove("DATABRAIN_API_KEY")
                    .env_remove("DATABRAIN_BASE_URL")
                    .env_remove("RUST_LOG")
                    .env("JOB_COMPLETION_INDEX", "0")
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped()),
            )
            .unwrap()
            .wait_with_output()
            .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            // The samples hold invalid rows on purpose: exit 1.
            assert_eq!(output.status.code(), Some(1), "{at}: {args:?}\n{stderr}");
            for flag in ["-o", "--summary-json"] {
                let written = args
                    .iter()
                    .position(|a| a == flag)
                    .map(|i| &args[i + 1])
                    .unwrap_or_else(|| panic!("{at}: {flag}"));
                assert!(Path::new(written).is_file(), "{at}: {flag} {written}");
            }
            ran += 1;
        }
    }
    assert_eq!(ran, 2, "the CronJob's command and the Indexed Job's");
}
