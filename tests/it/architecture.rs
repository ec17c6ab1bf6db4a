//! The crate's shape, as `ARCHITECTURE.md` states it: every module imports only its own
//! layer and the layers below it, no modules import each other in a circle, and no
//! function or file grows past the size where its steps want names.
//!
//! The source is read as text: comments and literals are blanked, then every `crate::`,
//! `super::` and `self::` path (in `use` trees too) is resolved to the module file it
//! names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A layer that stands apart: the only layers it may import (besides the order's rule),
/// and the only ones that may import it.
struct Apart {
    layer: &'static str,
    imports: Option<&'static [&'static str]>,
    imported_by: &'static [&'static str],
}

/// `ARCHITECTURE.md`: the sandbox shares only the API's types, and clap's types stop at
/// the command layer.
const APART: [Apart; 2] = [
    Apart {
        layer: "sandbox",
        imports: Some(&["api"]),
        imported_by: &["cli", "commands", "lib"],
    },
    Apart {
        layer: "cli",
        imports: None,
        imported_by: &["commands", "main", "lib"],
    },
];

/// The longest a function may be, in lines, outside tests.
const LONGEST_FUNCTION: usize = 100;
/// The longest a source file may be, in lines, before its test module.
const LONGEST_FILE: usize = 500;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The layers, top first, as the table of `ARCHITECTURE.md` lists them.
fn layers() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let (_, table) = text.split_once("<!-- layers: begin -->").unwrap();
    let (table, _) = table.split_once("<!-- layers: end -->").unwrap();
    table
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|line| line.split_once('`'))
        .map(|(layer, _)| layer.to_owned())
        .collect()
}

/// One file of `src/`, its module path, and its code with comments and literals blanked.
struct Source {
    path: String,
    /// `["job", "run"]` for `src/job/run.rs`; empty for `lib.rs` (and `main.rs`, which is a
    /// crate of its own and names the library `dbprov`).
    module: Vec<String>,
    is_main: bool,
    code: String,
    /// Where its `#[cfg(test)]` module begins, or its length.
    tests_at: usize,
}

impl Source {
    fn layer(&self) -> String {
        match (self.is_main, self.module.first()) {
            (true, _) => "main".to_owned(),
            (false, None) => "lib".to_owned(),
            (false, Some(first)) => first.clone(),
        }
    }
}

fn sources() -> Vec<Source> {
    let mut files = Vec::new();
    collect(&root().join("src"), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let relative = file.strip_prefix(root().join("src")).unwrap();
            let mut module: Vec<String> = relative
                .with_extension("")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(
                module.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                module.pop();
            }
            let code = blank(&std::fs::read_to_string(&file).unwrap());
            let tests_at = code.find("\n#[cfg(test)]").unwrap_or(code.len());
            Source {
                path: relative.display().to_string(),
                is_main: relative == Path::new("main.rs"),
                module,
                code,
                tests_at,
            }
        })
        .collect()
}

fn collect(folder: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// The code with comments, strings and character literals blanked to spaces (line
/// breaks kept, so that line numbers stay), lifetimes left alone.
fn blank(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blanked = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < chars.len() {
        let rest = &chars[i..];
        let end = if rest.starts_with(&['/', '/']) {
            i + rest.iter().position(|&c| c == '\n').unwrap_or(rest.len())
        } else if rest.starts_with(&['/', '*']) {
            i + 2 + find(&rest[2..], &['*', '/']).map_or(rest.len() - 2, |at| at + 2)
        } else if let Some(hashes) = raw_string_start(rest, i == 0 || !ident(chars[i - 1])) {
            let close: Vec<char> = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let open = hashes + 2 + usize::from(rest[0] == 'b');
            i + open + find(&rest[open..], &close).map_or(rest.len() - open, |at| at + close.len())
        } else if rest[0] == '"' {
            let mut j = 1;
            while j < rest.len() && rest[j] != '"' {
                j += if rest[j] == '\\' { 2 } else { 1 };
            }
            i + (j + 1).min(rest.len())
        } else if rest[0] == '\'' {
            i + char_literal_len(rest).unwrap_or(0)
        } else {
            i
        };
        if end == i {
            out.push(chars[i]);
            i += 1;
        } else {
            out.extend(chars[i..end].iter().map(|&c| blanked(c)));
            i = end;
        }
    }
    out
}

fn find(haystack: &[char], needle: &[char]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `r"`, `r#"`, `br"`...: the number of `#`.
fn raw_string_start(rest: &[char], at_word_start: bool) -> Option<usize> {
    if !at_word_start {
        return None;
    }
    let after = match rest {
        ['b', 'r', ..] => &rest[2..],
        ['r', ..] => &rest[1..],
        _ => return None,
    };
    let hashes = after.iter().take_while(|&&c| c == '#').count();
    (after.get(hashes) == Some(&'"')).then_some(hashes)
}

/// The length of a character literal at the start of `rest`, if it is one (not a
/// lifetime).
fn char_literal_len(rest: &[char]) -> Option<usize> {
    if rest.get(1) == Some(&'\\') {
        let close = rest.iter().skip(2).take(12).position(|&c| c == '\'')?;
        return Some(close + 3);
    }
    (rest.get(2) == Some(&'\'')).then_some(3)
}

fn ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every path the code names from `crate` (or, in `main.rs`, from `dbprov`), `super`,
/// `self`, or a module declared in the file's own module (`pacer::Pacer` in
/// `pacing/mod.rs`), expanded from `use` trees, resolved against the module the code is
/// in: whole paths from the crate's root, with the byte offset they were found at.
fn paths(source: &Source, modules: &BTreeSet<Vec<String>>) -> Vec<(usize, Vec<String>)> {
    let code: Vec<char> = source.code.chars().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < code.len() {
        let at_word = i == 0 || !(ident(code[i - 1]) || code[i - 1] == ':');
        let word: String = code[i..].iter().take_while(|&&c| ident(c)).collect();
        let followed = code[i + word.chars().count()..].starts_with(&[':', ':']);
        // In the test module, `super` is the file's own module.
        let here = if i >= source.tests_at {
            let mut tests = source.module.clone();
            tests.push("tests".to_owned());
            tests
        } else {
            source.module.clone()
        };
        let child = || {
            let mut child = here.clone();
            child.push(word.clone());
            !source.is_main && modules.contains(&child)
        };
        let start = match word.as_str() {
            "dbprov" if source.is_main => Some("dbprov"),
            "crate" | "super" | "self" if !source.is_main => Some(word.as_str()),
            _ if child() => Some("self"),
            _ => None,
        };
        let Some(start) = start.filter(|_| at_word && followed && !word.is_empty()) else {
            i += word.chars().count().max(1);
            continue;
        };
        let mut trees = Vec::new();
        let mut j = i;
        tree(&code, &mut j, Vec::new(), &mut trees);
        for path in trees {
            let path = if start == "self" && word != "self" {
                std::iter::once("self".to_owned()).chain(path).collect()
            } else {
                path
            };
            if let Some(resolved) = resolve(&here, &path, start) {
                found.push((i, resolved));
            }
        }
        i = j.max(i + 1);
    }
    found
}

/// Reads a path, or a `use` tree, from `code[*i..]` into whole paths after `prefix`.
fn tree(code: &[char], i: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    loop {
        skip_space(code, i);
        if code.get(*i) == Some(&'{') {
            *i += 1;
            loop {
                skip_space(code, i);
                match code.get(*i) {
                    Some('}') | None => {
                        *i += 1;
                        return;
                    }
                    Some(',') => *i += 1,
                    _ => tree(code, i, path.clone(), out),
                }
            }
        }
        let word: String = code[*i..].iter().take_while(|&&c| ident(c)).collect();
        if word.is_empty() {
            // `*`, or the end of the path.
            if code.get(*i) == Some(&'*') {
                *i += 1;
            }
            out.push(path);
            return;
        }
        *i += word.chars().count();
        if word != "self" || path.is_empty() {
            path.push(word);
        }
        skip_space(code, i);
        if code[*i..].starts_with(&[':', ':']) && code.get(*i + 2) != Some(&'<') {
            *i += 2;
            continue;
        }
        // `as alias`: the alias names nothing new.
        out.push(path);
        return;
    }
}

fn skip_space(code: &[char], i: &mut usize) {
    while code.get(*i).is_some_and(|c| c.is_whitespace()) {
        *i += 1;
    }
}

/// A path from `here` made whole from the crate's root.
fn resolve(here: &[String], path: &[String], start: &str) -> Option<Vec<String>> {
    let mut whole: Vec<String> = match start {
        "crate" | "dbprov" => Vec::new(),
        _ => here.to_vec(),
    };
    for (n, segment) in path.iter().enumerate() {
        match segment.as_str() {
            "crate" | "dbprov" if n == 0 => {}
            "self" if n == 0 => {}
            "super" => {
                whole.pop()?;
            }
            other => whole.push(other.to_owned()),
        }
    }
    Some(whole)
}

/// The module of each file, and each file's imports: the module files its paths name
/// (the longest module path that starts them), other than itself.
fn imports(sources: &[Source]) -> BTreeMap<String, BTreeSet<String>> {
    let modules: BTreeMap<Vec<String>, &Source> = sources
        .iter()
        .filter(|s| !s.is_main)
        .map(|s| (s.module.clone(), s))
        .collect();
    let names: BTreeSet<Vec<String>> = modules.keys().cloned().collect();
    let mut graph = BTreeMap::new();
    for source in sources {
        let mut to = BTreeSet::new();
        for (_, path) in paths(source, &names) {
            let file = (0..=path.len())
                .rev()
                .find_map(|n| modules.get(&path[..n]))
                .expect("the crate's root is a module");
            if file.path != source.path {
                to.insert(file.path.clone());
            }
        }
        graph.insert(source.path.clone(), to);
    }
    graph
}

#[test]
fn every_module_is_in_a_layer_of_architecture_md() {
    let layers = layers();
    assert_eq!(
        layers.first().map(String::as_str),
        Some("main"),
        "{layers:?}"
    );
    for source in sources() {
        assert!(
            layers.contains(&source.layer()),
            "src/{} is in no layer of ARCHITECTURE.md ({layers:?}): add its layer to the table",
            source.path
        );
    }
}

#[test]
fn modules_import_only_their_own_layer_and_those_below() {
    let layers = layers();
    let sources = sources();
    let layer_of: BTreeMap<String, String> = sources
        .iter()
        .map(|s| (s.path.clone(), s.layer()))
        .collect();
    let rank = |layer: &str| layers.iter().position(|l| l == layer).unwrap();
    let mut wrong = Vec::new();
    for (from, to) in imports(&sources) {
        let from_layer = &layer_of[&from];
        for to in to {
            let to_layer = &layer_of[&to];
            if from_layer == to_layer {
                continue;
            }
            let apart_from = APART.iter().find(|a| a.layer == from_layer);
            let apart_to = APART.iter().find(|a| a.layer == to_layer);
            let apart = apart_from
                .and_then(|a| a.imports)
                .is_none_or(|imports| imports.contains(&to_layer.as_str()))
                && apart_to.is_none_or(|a| a.imported_by.contains(&from_layer.as_str()));
            if rank(to_layer) < rank(from_layer) || !apart {
                wrong.push(format!(
                    "src/{from} ({from_layer}) imports src/{to} ({to_layer})"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that run up a layer, or into a layer apart (ARCHITECTURE.md):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_modules_import_each_other_in_a_circle() {
    let graph = imports(&sources());
    // Depth-first: a file met again while it is on the path closes a circle.
    fn visit(
        file: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        circles: &mut Vec<String>,
    ) {
        if let Some(at) = path.iter().position(|f| f == file) {
            let mut circle = path[at..].to_vec();
            circle.push(file.to_owned());
            circles.push(circle.join(" -> "));
            return;
        }
        if !done.insert(file.to_owned()) {
            return;
        }
        path.push(file.to_owned());
        for next in &graph[file] {
            visit(next, graph, path, done, circles);
        }
        path.pop();
    }
    let (mut done, mut circles) = (BTreeSet::new(), Vec::new());
    for file in graph.keys() {
        visit(file, &graph, &mut Vec::new(), &mut done, &mut circles);
    }
    circles.truncate(10);
    assert!(
        circles.is_empty(),
        "modules that import each other in a circle (the first ten):\n{}",
        circles.join("\n")
    );
}

#[test]
fn no_function_or_file_outgrows_its_steps() {
    let mut long = Vec::new();
    for source in sources() {
        let code = &source.code[..source.tests_at];
        let lines = code.lines().count();
        if lines > LONGEST_FILE {
            long.push(format!(
                "src/{}: {lines} lines before its tests",
                source.path
            ));
        }
        for (name, lines) in functions(code) {
            if lines > LONGEST_FUNCTION {
                long.push(format!("src/{}: fn {name} has {lines} lines", source.path));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {LONGEST_FUNCTION} lines or files over {LONGEST_FILE} (split them into named steps):\n{}",
        long.join("\n")
    );
}

/// Each function with a body, and its length in lines from `fn` to its closing brace.
fn functions(code: &str) -> Vec<(String, usize)> {
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("fn ").map(|at| at + from) {
        from = at + 3;
        if at > 0 && ident(char::from(bytes[at - 1])) {
            continue;
        }
        let name: String = code[at + 3..].chars().take_while(|&c| ident(c)).collect();
        // The body starts at the first `{` after the signature; a `;` first means none.
        let Some(open) = code[at..].find(['{', ';']).map(|o| o + at) else {
            break;
        };
        if bytes[open] == b';' {
            continue;
        }
        let mut depth = 0;
        let mut close = open;
        for (i, &b) in bytes.iter().enumerate().skip(open) {
            depth += i32::from(b == b'{') - i32::from(b == b'}');
            if depth == 0 {
                close = i;
                break;
            }
        }
        let lines = code[at..=close].lines().count();
        found.push((name, lines));
    }
    found
}

#[test]
fn the_reader_of_paths_sees_what_the_compiler_sees() {
    let source = Source {
        path: "job/run.rs".to_owned(),
        module: vec!["job".to_owned(), "run".to_owned()],
        is_main: false,
        code: blank(
            "use super::shared::{Mode, self};\nuse crate::{api::{Client, list::*}, model};\n// crate::report::x\nlet s = \"crate::cli\"; let c = '\"'; fn f<'a>() { crate::records::writer::Final::Outcome(x); inner::g(); tokio::spawn() }\n#[cfg(test)]\nmod tests { use super::*; }\n",
        ),
        tests_at: 0,
    };
    let source = Source {
        tests_at: source.code.find("\n#[cfg(test)]").unwrap(),
        ..source
    };
    let modules: BTreeSet<Vec<String>> = [
        vec![],
        vec!["job"],
        vec!["job", "run"],
        vec!["job", "run", "inner"],
    ]
    .iter()
    .map(|m| m.iter().map(|s| s.to_string()).collect())
    .collect();
    let named: Vec<String> = paths(&source, &modules)
        .into_iter()
        .map(|(_, p)| p.join("::"))
        .collect();
    assert_eq!(
        named,
        [
            "job::shared::Mode",
            "job::shared",
            "api::Client",
            "api::list",
            "model",
            "records::writer::Final::Outcome",
            "job::run::inner::g",
            "job::run",
        ]
    );
    assert_eq!(
        functions("fn a() {\n  if x { y }\n}\nfn b();\nfn c() { }\n"),
        [("a".to_owned(), 3), ("c".to_owned(), 1)]
    );
}
