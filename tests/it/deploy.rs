//! `deploy/` builds the image the README names, and its manifests run that image.

use std::fs;
use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

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

    // The runtime: only that binary, CA certificates, a user that is not root.
    let runtime = stages.last().unwrap();
    let base = instruction(runtime, "FROM").remove(0);
    assert!(
        !base.starts_with("rust:"),
        "a slim runtime, not the toolchain: {base}"
    );
    let codename = image.rsplit('-').next().unwrap();
    assert!(
        base.contains(codename),
        "the runtime ({base}) is the builder's Debian release ({image}): the binary needs its glibc"
    );
    assert!(
        instruction(runtime, "RUN")
            .iter()
            .any(|r| r.contains("ca-certificates")),
        "the runtime installs CA certificates"
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
    let users = instruction(runtime, "USER");
    let user = users.last().expect("a USER");
    let who = user.split(':').next().unwrap();
    assert!(who != "root" && who != "0", "not root: {user}");
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

    let mut manifests = 0;
    for entry in fs::read_dir(root.join("deploy")).unwrap().flatten() {
        let path = entry.path();
        if !path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            continue;
        }
        let text = fs::read_to_string(&path).unwrap();
        let images: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("image:"))
            .map(|v| v.split('#').next().unwrap().trim().trim_matches('"'))
            .collect();
        assert!(!images.is_empty(), "{} names no image", path.display());
        for named in images {
            assert_eq!(
                named,
                image,
                "{} runs another image than the README builds",
                path.display()
            );
        }
        manifests += 1;
    }
    assert!(manifests >= 2, "the CronJob and the Indexed Job");
}
