//! The crate's shape, checked: layers only point down; the command line
//! (clap, indicatif) lives in the binary alone, so a notebook's `:dep lab`
//! compiles neither; no file or function grows past what a reader takes in.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The layers from the bottom. A module is named by its path below `src/`
/// (`client/produce.rs` is `client`'s); it may import its own layer or lower.
/// `src/lib.rs` says the same in words.
const LAYERS: &[&[&str]] = &[
    &["error", "local", "metrics", "record", "support"],
    &[
        "client",
        "clean",
        "broker_version",
        "connection",
        "semantics",
        "stats",
        "cluster",
        "liveness",
        "produce",
        "consume",
        "group_protocol",
        "offset_store",
        "effective",
        "read",
        "recovery",
        "sink",
    ],
    &["audit", "outcome"],
    &["faults", "run"],
    &["experiments"],
    &["charts"],
    &["exercise"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its unit tests (they may reach anywhere) and
/// without comments (a doc link is not an import).
fn code(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => &text,
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The crate's top-level modules a piece of code names: `crate::x::...`, and
/// every name in `use crate::{x, y::z}`.
fn imported_modules(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut name = String::new();
            for ch in group.chars() {
                match ch {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 || (depth == 1 && ch == ',') {
                    out.insert(first_segment(&name));
                    name.clear();
                    if depth == 0 {
                        break;
                    }
                } else {
                    name.push(ch);
                }
            }
        } else {
            out.insert(first_segment(rest));
        }
    }
    out.retain(|m| {
        m.chars().next().is_some_and(|c| c.is_ascii_lowercase()) && m != "self"
    });
    out
}

fn first_segment(path: &str) -> String {
    path.trim()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// `client/produce.rs` -> "client"; `audit.rs` -> "audit"; `lib.rs` -> None.
fn module_of(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src()).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    match first.strip_suffix(".rs") {
        Some("lib") => None,
        Some(name) => Some(name.to_string()),
        None => Some(first),
    }
}

#[test]
fn every_module_imports_only_its_own_layer_or_lower_ones() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut upward = Vec::new();
    for file in &files {
        let Some(module) = module_of(file) else {
            continue;
        };
        if module == "bin" {
            continue; // the binary is above every layer
        }
        let own = layer_of(&module).unwrap_or_else(|| {
            panic!("{module} (in {file:?}) is in no layer: add it to LAYERS")
        });
        for imported in imported_modules(&code(file)) {
            // A client module names its siblings through the re-exports at the root.
            let Some(theirs) = layer_of(&imported) else {
                panic!("{file:?} imports crate::{imported}, which is in no layer: add it to LAYERS");
            };
            if theirs > own {
                upward.push(format!(
                    "{} (layer {own}) imports crate::{imported} (layer {theirs})",
                    file.strip_prefix(src()).unwrap().display()
                ));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that point up a layer (move the shared piece down, or the caller up):\n  {}",
        upward.join("\n  ")
    );
}

#[test]
fn the_command_line_crates_are_used_by_the_binary_alone() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| module_of(f).as_deref() != Some("bin"))
        .filter(|f| {
            let code = code(f);
            code.contains("clap::") || code.contains("indicatif::")
        })
        .map(|f| f.strip_prefix(src()).unwrap().display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "clap or indicatif outside src/bin (the library must not need them): {offenders:?}"
    );
}

#[test]
fn the_import_reader_sees_grouped_and_nested_imports() {
    let found = imported_modules(
        "use crate::{audit::{self, Counts}, cluster::Cluster};\nlet x = crate::faults::die_now();",
    );
    let want: BTreeSet<String> =
        ["audit", "cluster", "faults"].map(String::from).into();
    assert_eq!(found, want);
}

/// Lines a file of the library may have, its unit tests aside.
const MAX_FILE_LINES: usize = 800;
/// Lines a function may have, unless a comment `// long: why` stands on the
/// line above it (or above its attributes and doc comment).
const MAX_FN_LINES: usize = 80;

/// The file's lines up to its unit tests.
fn lines_before_tests(path: &Path) -> Vec<String> {
    let text = fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => &text,
    };
    text.lines().map(String::from).collect()
}

/// Every function of `lines` longer than `max`: (name, first line, length).
/// The code is rustfmt's, so a body ends at the first `}` at its `fn`'s indent.
fn long_functions(lines: &[String], max: usize) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let code = line.trim_start();
        let indent = line.len() - code.len();
        let Some(name) = fn_name(code) else { continue };
        if code.ends_with(';') {
            continue; // a declaration in a trait, no body
        }
        let closing = format!("{}}}", " ".repeat(indent));
        let end = (i..lines.len())
            .find(|&j| lines[j] == closing)
            .unwrap_or(lines.len() - 1);
        let length = end - i + 1;
        if length > max && !explained(lines, i) {
            out.push((name, i + 1, length));
        }
    }
    out
}

fn fn_name(code: &str) -> Option<String> {
    let mut rest = code;
    for prefix in [
        "pub(crate) ",
        "pub(super) ",
        "pub ",
        "const ",
        "unsafe ",
        "async ",
    ] {
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
    }
    let rest = rest.strip_prefix("fn ")?;
    Some(
        rest.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect(),
    )
}

/// A `// long: ...` comment above the function, its doc and its attributes.
fn explained(lines: &[String], fn_line: usize) -> bool {
    lines[..fn_line]
        .iter()
        .rev()
        .map(|l| l.trim_start())
        .take_while(|l| l.starts_with("//") || l.starts_with("#["))
        .any(|l| l.starts_with("// long:"))
}

#[test]
fn no_file_or_function_is_longer_than_a_reader_takes_in() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut problems = Vec::new();
    for file in &files {
        let lines = lines_before_tests(file);
        let name = file.strip_prefix(src()).unwrap().display().to_string();
        if lines.len() > MAX_FILE_LINES {
            problems.push(format!(
                "{name}: {} lines (at most {MAX_FILE_LINES}; split it by concern)",
                lines.len()
            ));
        }
        for (function, line, length) in long_functions(&lines, MAX_FN_LINES) {
            problems.push(format!(
                "{name}:{line}: fn {function} is {length} lines (at most {MAX_FN_LINES}, \
                 or say why in a `// long:` comment above it)"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "too long:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_length_check_finds_a_long_function_and_accepts_a_reason() {
    let body = |n: usize| (0..n).map(|i| format!("    let x{i} = {i};"));
    let mut lines: Vec<String> = vec!["pub fn long_one() {".into()];
    lines.extend(body(90));
    lines.push("}".into());
    lines.push("fn short_one() {".into());
    lines.extend(body(3));
    lines.push("}".into());
    assert_eq!(
        long_functions(&lines, 80),
        [("long_one".to_string(), 1, 92)]
    );
    lines.insert(0, "// long: one table, row by row".into());
    lines.insert(1, "#[allow(clippy::too_many_lines)]".into());
    assert!(long_functions(&lines, 80).is_empty());
}
