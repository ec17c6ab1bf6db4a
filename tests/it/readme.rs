//! The README's examples run from a fresh clone.
//!
//! Which examples run (README.md says the same under "Set-up"):
//!
//! - A command is a line of a ```` ```sh ```` (or `bash`, `shell`) block of README.md,
//!   samples/README.md or docs/*.md that starts with `dbprov`, `target/release/dbprov` or
//!   `cargo run [--release] -- `. A line ending in `\` goes on on the next line; `#` starts
//!   a comment. Other lines (`export`, `cargo test`, `docker`, `curl`) and other blocks
//!   (```` ```text ````: output) are not commands.
//! - A command that names a `my-…` file is a placeholder for the reader's own file and
//!   API: it is not run.
//! - Every other command runs, in order, with the binary cargo built. Each block runs in a
//!   fresh directory holding a copy of the repository's tracked `samples/` (what a fresh
//!   clone has), so a command can read what an earlier one of its block wrote. No key is
//!   set and `DATABRAIN_BASE_URL` is a closed local port.
//! - A command that sends (anything but `validate`, `completions`, `--help` and
//!   `--dry-run`) must say `--sandbox`: the test refuses it, naming its line, without
//!   running it.
//! - It must exit 0, or the code its comment names as `exits N`; never 2 (a usage or input
//!   error) nor a panic, and it must leave every repository file unchanged.
//! - `dbprov sandbox` serves until stopped: it runs on a free port until it prints its URL.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::process::start_std;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

const BIN: &str = env!("CARGO_BIN_EXE_dbprov");

/// The most one example may take (the samples' 51 rows take some 6 s at the default rate).
const COMMAND_DEADLINE: Duration = Duration::from_secs(120);

/// Where a command that slipped through would send: nothing listens on the discard port.
const NOWHERE: &str = "http://127.0.0.1:9";

/// One command of a code block.
#[derive(Debug, Clone, PartialEq)]
struct Example {
    /// `README.md:12`: where it starts.
    place: String,
    /// The command as written (continuations joined).
    text: String,
    /// The arguments after `dbprov` (or after `cargo run … --`).
    args: Vec<String>,
    /// The exit code its comment names (`exits 1`), else 0.
    expected: i32,
}

impl Example {
    /// The subcommand: the first argument that is not a global option.
    fn subcommand(&self) -> Option<&str> {
        let mut args = self.args.iter();
        while let Some(arg) = args.next() {
            if arg == "--log-format" {
                args.next();
            } else if !arg.starts_with('-') {
                return Some(arg);
            }
        }
        None
    }

    fn has(&self, flag: &str) -> bool {
        self.args.iter().any(|a| a == flag)
    }

    /// Whether it would send a request anywhere but to an in-process sandbox.
    fn sends(&self) -> bool {
        let local = ["--help", "-h", "--version", "-V", "--dry-run"]
            .iter()
            .any(|flag| self.has(flag));
        match self.subcommand() {
            None | Some("validate" | "completions" | "help" | "sandbox") => false,
            Some(_) => !local,
        }
    }

    fn is_server(&self) -> bool {
        self.subcommand() == Some("sandbox") && !self.has("--help") && !self.has("-h")
    }

    /// Whether an argument names a file of the repository's samples.
    fn names_a_sample(&self) -> bool {
        self.args.iter().any(|a| a.starts_with("samples/"))
    }
}

/// The runnable commands of one code block.
#[derive(Debug)]
struct Block {
    place: String,
    commands: Vec<Example>,
}

/// What a document's code blocks hold: runnable blocks, placeholders skipped, and lines the
/// rules refuse.
#[derive(Debug, Default)]
struct Extracted {
    blocks: Vec<Block>,
    placeholders: usize,
    refused: Vec<String>,
}

const PROGRAMS: [&str; 3] = ["dbprov", "target/release/dbprov", "./target/release/dbprov"];

fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit())
    })
}

/// Whether a line (of a shell block) is a dbprov command at all.
fn is_command(line: &str) -> bool {
    let mut words = line.split_whitespace().skip_while(|w| is_assignment(w));
    match words.next() {
        Some("cargo") => words.next() == Some("run"),
        Some(program) => PROGRAMS.contains(&program),
        None => false,
    }
}

/// Splits a line as a POSIX shell would for the simple commands examples use: words,
/// quotes, backslashes and a trailing comment. Anything else of the shell (pipes,
/// redirections, variables, globs) is refused: the test runs commands without a shell.
fn shell_words(line: &str) -> Result<(Vec<String>, String), String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '#' if !in_word => return Ok((words, chars.as_str().trim().to_owned())),
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("a ' is not closed".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("a \" is not closed".into()),
                        },
                        Some(c @ ('$' | '`')) => {
                            return Err(format!("`{c}` in double quotes: the test runs no shell"));
                        }
                        Some(c) => word.push(c),
                        None => return Err("a \" is not closed".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    word.push(c);
                }
            }
            '|' | '&' | ';' | '<' | '>' | '(' | ')' | '`' | '$' | '*' | '?' | '[' | '{' => {
                return Err(format!(
                    "shell syntax `{c}`: the test runs no shell; quote it, or make the example a placeholder"
                ));
            }
            '~' if !in_word => return Err("`~`: the test runs no shell".into()),
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok((words, String::new()))
}

/// The exit code a comment names (`… exits 1: …`), if any.
fn expected_code(comment: &str) -> Result<Option<i32>, String> {
    let Some((_, rest)) = comment.split_once("exits ") else {
        return Ok(None);
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits
        .parse()
        .map(Some)
        .map_err(|_| format!("`exits` is not followed by a code in `# {comment}`"))
}

/// The arguments a command line passes to dbprov, and the code it should exit with.
fn parse_command(line: &str) -> Result<(Vec<String>, i32), String> {
    let (words, comment) = shell_words(line)?;
    let mut words = words.into_iter().skip_while(|w| is_assignment(w));
    let program = words.next().unwrap_or_default();
    let args: Vec<String> = if program == "cargo" {
        let mut rest = words.skip_while(|w| w != "--");
        if rest.next().is_none() {
            return Err("`cargo run` without `--` before dbprov's arguments".into());
        }
        rest.collect()
    } else {
        words.collect()
    };
    let expected = expected_code(&comment)?.unwrap_or(0);
    if expected == 2 {
        return Err("an example that exits 2 is a usage or input error: fix the example".into());
    }
    Ok((args, expected))
}

/// A placeholder names a `my-…` file: the reader's own, for the real API.
fn is_placeholder(args: &[String]) -> bool {
    args.iter().any(|arg| {
        let value = arg.split_once('=').map_or(arg.as_str(), |(_, v)| v);
        Path::new(value)
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("my-"))
    })
}

/// The commands of a Markdown document's shell blocks.
fn extract(file: &str, markdown: &str) -> Extracted {
    let mut out = Extracted::default();
    let mut lines = markdown.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        let Some(info) = line.trim_start().strip_prefix("```") else {
            continue;
        };
        let shell = matches!(
            info.split_whitespace().next(),
            Some("sh" | "bash" | "shell")
        );
        let mut block = Block {
            place: format!("{file}:{}", i + 1),
            commands: Vec::new(),
        };
        let mut pending: Option<(usize, String)> = None;
        for (j, line) in lines.by_ref() {
            if line.trim_start().starts_with("```") {
                break;
            }
            if !shell {
                continue;
            }
            let (start, mut text) = pending.take().unwrap_or((j, String::new()));
            let trimmed = line.trim_end();
            if let Some(head) = trimmed.strip_suffix('\\') {
                text.push_str(head);
                text.push(' ');
                pending = Some((start, text));
                continue;
            }
            text.push_str(trimmed);
            if !is_command(&text) {
                continue;
            }
            let place = format!("{file}:{}", start + 1);
            match parse_command(text.trim()) {
                Err(why) => out
                    .refused
                    .push(format!("{place}: `{}`: {why}", text.trim())),
                Ok((args, _)) if is_placeholder(&args) => out.placeholders += 1,
                Ok((args, expected)) => {
                    let example = Example {
                        place: place.clone(),
                        text: text.trim().to_owned(),
                        args,
                        expected,
                    };
                    if example.sends() && !example.has("--sandbox") {
                        out.refused.push(format!(
                            "{place}: `{}` would send to a real API: add --sandbox, or name a my-… file if it is meant for the reader's own",
                            example.text
                        ));
                    } else {
                        block.commands.push(example);
                    }
                }
            }
        }
        if !block.commands.is_empty() {
            out.blocks.push(block);
        }
    }
    out
}

/// README.md, samples/README.md, then docs/*.md in name order.
fn documents() -> Vec<(String, String)> {
    let root = Path::new(ROOT);
    let mut docs: Vec<PathBuf> = fs::read_dir(root.join("docs"))
        .map(|dir| {
            dir.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "md"))
                .collect()
        })
        .unwrap_or_default();
    docs.sort();
    [root.join("README.md"), root.join("samples/README.md")]
        .into_iter()
        .chain(docs)
        .map(|path| {
            let name = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, text)
        })
        .collect()
}

/// The files of `samples/` a fresh clone has: git's tracked files, or, without git, every
/// file but results files (which `.gitignore` keeps out).
fn tracked_samples() -> Vec<PathBuf> {
    let listed = start_std(
        Command::new("git")
            .args(["ls-files", "-z", "--", "samples"])
            .current_dir(ROOT)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    )
    .and_then(|git| git.wait_with_output());
    if let Ok(output) = listed
        && output.status.success()
        && !output.stdout.is_empty()
    {
        return output
            .stdout
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned()))
            .collect();
    }
    fn walk(dir: &Path, root: &Path, found: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, root, found);
            } else if !path.to_string_lossy().ends_with(".results.csv") {
                found.push(path.strip_prefix(root).unwrap().to_owned());
            }
        }
    }
    let mut found = Vec::new();
    walk(
        &Path::new(ROOT).join("samples"),
        Path::new(ROOT),
        &mut found,
    );
    found
}

/// A fresh clone's samples in a new directory, and what each file holds.
fn fresh_copy(files: &[PathBuf]) -> (tempfile::TempDir, Vec<(PathBuf, Vec<u8>)>) {
    let dir = tempfile::tempdir().unwrap();
    let mut copied = Vec::new();
    for file in files {
        let bytes = fs::read(Path::new(ROOT).join(file)).unwrap();
        let to = dir.path().join(file);
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::write(&to, &bytes).unwrap();
        copied.push((file.clone(), bytes));
    }
    (dir, copied)
}

fn dbprov(args: &[String], cwd: &Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .current_dir(cwd)
        .env_remove("DATABRAIN_API_KEY")
        .env_remove("RUST_LOG")
        .env("DATABRAIN_BASE_URL", NOWHERE)
        .stdin(Stdio::null());
    command
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n    ")
}

/// Runs one example to its end; `Err` says what went wrong.
fn run_example(example: &Example, cwd: &Path, logs: &Path) -> Result<(), String> {
    let out_path = logs.join("stdout");
    let err_path = logs.join("stderr");
    let mut child = start_std(
        dbprov(&example.args, cwd)
            .stdout(fs::File::create(&out_path).unwrap())
            .stderr(fs::File::create(&err_path).unwrap()),
    )
    .map_err(|e| format!("cannot start {BIN}: {e}"))?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > COMMAND_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("still running after {COMMAND_DEADLINE:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = fs::read_to_string(&err_path).unwrap_or_default();
    let code = status.code();
    if stderr.contains("panicked") || code == Some(101) {
        return Err(format!("panicked:\n    {}", tail(&stderr)));
    }
    if code != Some(example.expected) {
        return Err(format!(
            "exited {code:?}, not {} (say `exits N` in its comment if that is meant):\n    {}",
            example.expected,
            tail(&stderr)
        ));
    }
    Ok(())
}

/// Starts `dbprov sandbox` on a free port and stops it once it has printed its URL.
fn run_server(example: &Example, cwd: &Path, logs: &Path) -> Result<(), String> {
    let mut args = Vec::new();
    let mut given = example.args.iter();
    while let Some(arg) = given.next() {
        if arg == "--listen" {
            given.next();
        } else if !arg.starts_with("--listen=") {
            args.push(arg.clone());
        }
    }
    args.extend(["--listen".to_owned(), "127.0.0.1:0".to_owned()]);
    let err_path = logs.join("stderr");
    let mut child = start_std(
        dbprov(&args, cwd)
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&err_path).unwrap()),
    )
    .map_err(|e| format!("cannot start {BIN}: {e}"))?;
    let stdout = child.stdout.take().unwrap();
    let (sender, first_line) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = sender.send(line);
        // Keep reading until the sandbox is stopped: a pipe closed after the first line would
        // fail its next one (the key), and it would exit on its own before it is checked.
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    let line = first_line.recv_timeout(Duration::from_secs(30));
    let exited = child.try_wait().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    match line {
        Ok(line) if line.starts_with("http://") && exited.is_none() => Ok(()),
        _ => Err(format!(
            "the sandbox did not start and print its URL (exit {:?}):\n    {}",
            exited.and_then(|s| s.code()),
            tail(&fs::read_to_string(&err_path).unwrap_or_default())
        )),
    }
}

/// Runs a block's commands in order in a fresh copy; one line per failure.
fn run_block(block: &Block, files: &[PathBuf]) -> Vec<String> {
    let (dir, copied) = fresh_copy(files);
    let logs = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for example in &block.commands {
        let outcome = if example.is_server() {
            run_server(example, dir.path(), logs.path())
        } else {
            run_example(example, dir.path(), logs.path())
        };
        if let Err(why) = outcome {
            failures.push(format!("{}: `{}`: {why}", example.place, example.text));
        }
        for (file, bytes) in &copied {
            if fs::read(dir.path().join(file)).ok().as_ref() != Some(bytes) {
                failures.push(format!(
                    "{}: `{}` changed or removed the repository's {}: examples must write elsewhere",
                    example.place,
                    example.text,
                    file.display()
                ));
            }
        }
        if failures.iter().any(|f| f.contains("changed or removed")) {
            break;
        }
    }
    failures
}

#[test]
fn every_example_runs_from_a_fresh_clone() {
    let mut extracted = Extracted::default();
    for (name, text) in documents() {
        let found = extract(&name, &text);
        extracted.blocks.extend(found.blocks);
        extracted.placeholders += found.placeholders;
        extracted.refused.extend(found.refused);
    }
    let commands: Vec<&Example> = extracted.blocks.iter().flat_map(|b| &b.commands).collect();
    let naming_samples = commands.iter().filter(|e| e.names_a_sample()).count();
    let spreadsheets = commands
        .iter()
        .filter(|e| {
            e.args
                .iter()
                .any(|a| a.starts_with("samples/spreadsheets/"))
        })
        .count();
    // Enough found that the test cannot pass by reading nothing.
    assert!(
        commands.len() >= 20 && naming_samples >= 15 && spreadsheets >= 4,
        "found only {} commands ({naming_samples} naming samples/, {spreadsheets} a spreadsheet): has the README's format changed?",
        commands.len()
    );
    assert!(
        extracted.placeholders >= 5,
        "the README's placeholders (my-… files) went missing"
    );

    let files = tracked_samples();
    assert!(
        files.iter().any(|f| f == Path::new("samples/tenants.csv")),
        "{files:?}"
    );
    let mut failures = extracted.refused.clone();
    std::thread::scope(|scope| {
        let running: Vec<_> = extracted
            .blocks
            .iter()
            .map(|block| {
                let files = &files;
                scope.spawn(move || run_block(block, files))
            })
            .collect();
        for (block, run) in extracted.blocks.iter().zip(running) {
            let found = run
                .join()
                .unwrap_or_else(|_| vec![format!("{}: the block's runner panicked", block.place)]);
            failures.extend(found);
        }
    });
    assert!(
        failures.is_empty(),
        "{} of {} README and docs commands do not run from a fresh clone:\n{}",
        failures.len(),
        commands.len(),
        failures.join("\n")
    );
}

#[test]
fn the_set_up_is_one_command_for_the_job_and_one_for_the_tests() {
    let readme = fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let set_up = readme
        .split("\n## ")
        .find(|s| s.starts_with("Set-up"))
        .expect("a Set-up section");
    let block = set_up
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a sh block in Set-up");
    let lines: Vec<&str> = block
        .lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("cargo run --release -- run samples/")
            && lines[0].contains("--sandbox"),
        "{lines:?}"
    );
    assert_eq!(lines[1], "cargo test");
}

#[test]
fn extraction_follows_the_rules() {
    let markdown = "\
intro
```sh
export DATABRAIN_API_KEY=...
dbprov run samples/tenants.csv --sandbox \\
    -o 'a b.csv'   # exits 1: rows wrong on purpose
cargo run --release -- validate samples/tenants.csv   # exits 1
dbprov run my-tenants.csv -o my-results.csv
dbprov retry results.csv --sandbox --excel
cargo test
```
```text
dbprov run samples/tenants.csv
```
```sh
dbprov run samples/tenants.csv -o results.csv
dbprov run samples/tenants.csv --dry-run
dbprov run samples/tenants.csv --sandbox > out.csv
dbprov sandbox --listen 127.0.0.1:8080
```
";
    let found = extract("T.md", markdown);
    assert_eq!(found.placeholders, 1);
    assert_eq!(found.blocks.len(), 2);
    let first = &found.blocks[0].commands;
    assert_eq!(first.len(), 3, "{first:?}");
    assert_eq!(first[0].place, "T.md:4");
    assert_eq!(
        first[0].args,
        ["run", "samples/tenants.csv", "--sandbox", "-o", "a b.csv"]
    );
    assert_eq!(first[0].expected, 1);
    assert_eq!(first[1].args, ["validate", "samples/tenants.csv"]);
    assert_eq!((first[2].expected, first[2].names_a_sample()), (0, false));
    let second = &found.blocks[1].commands;
    assert_eq!(second.len(), 2, "{second:?}");
    assert!(second[0].has("--dry-run") && !second[0].sends());
    assert!(second[1].is_server());
    assert_eq!(found.refused.len(), 2, "{:?}", found.refused);
    assert!(
        found.refused[0].starts_with("T.md:15:"),
        "{:?}",
        found.refused
    );
    assert!(found.refused[0].contains("real API"));
    assert!(found.refused[1].contains("shell syntax `>`"));
    assert_eq!(
        parse_command("dbprov run x.csv --sandbox   # exits 2").unwrap_err(),
        "an example that exits 2 is a usage or input error: fix the example"
    );
    assert_eq!(
        shell_words(r#"dbprov "a \"b\"" 'c d' e\ f # note"#).unwrap(),
        (
            vec![
                "dbprov".to_owned(),
                "a \"b\"".to_owned(),
                "c d".to_owned(),
                "e f".to_owned()
            ],
            "note".to_owned()
        )
    );
}
