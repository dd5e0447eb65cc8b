//! `cargo xtask tidy`: cheap source-level rules that keep the tree clean.
//!
//! - library code (`crates/*/src/**/*.rs`) has no `todo!(`, `unimplemented!(`, `dbg!(`, and —
//!   except in `crates/tidings-test` and in binaries (`src/main.rs`, `src/bin/`) — no
//!   `println!(`, `eprintln!(`, `print!(`, `eprint!(`; comment lines (doc examples) are exempt;
//! - every `.rs` file in the repository (outside `target/`) starts with a `//!` line;
//! - every `crates/*/` has a README.md and a `description` in its Cargo.toml;
//! - dependencies between crates point down the layers (`layers.rs`), the protocol layer has no
//!   tokio, and docs/architecture.md shows the crate graph as the manifests have it
//!   (`cargo xtask tidy --fix` rewrites that block).

use std::fs;
use std::path::{Path, PathBuf};

use crate::layers;
use crate::util::{self, Result};

/// Crates whose library code may print (test harnesses talk to the person running them).
const MAY_PRINT: &[&str] = &["tidings-test"];

/// Directories never scanned, wherever they are.
const SKIP_DIRS: &[&str] = &["target", "node_modules", ".git"];

/// Macros never allowed in library code.
const FORBIDDEN: &[&str] = &["todo", "unimplemented", "dbg"];

/// Macros allowed only where printing is the job.
const PRINTING: &[&str] = &["println", "eprintln", "print", "eprint"];

/// `cargo xtask tidy [--fix]` as a command; `--fix` rewrites the crate graph of
/// docs/architecture.md first.
pub(crate) fn run(root: &Path, args: &[String]) -> Result {
    match args {
        [] => {}
        [flag] if flag == "--fix" => fix_graph(root)?,
        _ => return Err(format!("unexpected arguments {args:?} (only `--fix`)")),
    }
    check(root)?;
    println!("tidy: ok");
    Ok(())
}

/// Runs every rule and prints every offence as `path:line: what`.
pub(crate) fn check(root: &Path) -> Result {
    let mut offences = Vec::new();

    let mut files = Vec::new();
    walk(root, root, &mut files);
    files.sort();
    for file in &files {
        let rel = util::rel(root, file);
        let text = match fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) => {
                offences.push(format!("{rel}: cannot read: {e}"));
                continue;
            }
        };
        if !text.lines().next().is_some_and(|l| l.starts_with("//!")) {
            offences.push(format!("{rel}:1: first line must be a `//!` doc comment"));
        }
        if let Some(krate) = library_crate(&rel) {
            let binary = is_binary(&rel);
            let may_print = binary || MAY_PRINT.contains(&krate);
            for (number, line) in text.lines().enumerate() {
                if line.trim_start().starts_with("//") {
                    continue;
                }
                for name in macros_in(line) {
                    let forbidden = FORBIDDEN.contains(&name);
                    if forbidden || (!may_print && PRINTING.contains(&name)) {
                        let why = if forbidden {
                            "not allowed in library code"
                        } else {
                            "library code must not print (use tracing)"
                        };
                        offences.push(format!("{rel}:{}: `{name}!(` {why}", number + 1));
                    }
                }
            }
        }
    }

    check_crates(root, &mut offences);
    check_layers(root, &mut offences);

    if offences.is_empty() {
        println!("tidy: {} .rs files checked, no offence", files.len());
        Ok(())
    } else {
        for offence in &offences {
            println!("tidy: {offence}");
        }
        Err(format!(
            "tidy found {} offence(s), listed above",
            offences.len()
        ))
    }
}

/// Where the generated crate graph lives.
const ARCHITECTURE: &str = "docs/architecture.md";

/// The layer rule, and the crate graph of docs/architecture.md against the manifests.
fn check_layers(root: &Path, offences: &mut Vec<String>) {
    let crates = layers::crates(root);
    offences.extend(layers::check(&crates));
    let expected = layers::graph(&crates);
    match fs::read_to_string(root.join(ARCHITECTURE)) {
        Err(e) => offences.push(format!("{ARCHITECTURE}: cannot read: {e}")),
        Ok(doc) => match layers::current_block(&doc) {
            None => offences.push(format!(
                "{ARCHITECTURE}: no crate graph block (`{}` … `{}`): run `cargo xtask tidy --fix`",
                layers::GRAPH_START,
                layers::GRAPH_END
            )),
            Some(block) if block != expected => offences.push(format!(
                "{ARCHITECTURE}: the crate graph is out of date with the manifests: run `cargo xtask tidy --fix`"
            )),
            Some(_) => {}
        },
    }
}

/// Rewrites the generated crate graph block of docs/architecture.md.
fn fix_graph(root: &Path) -> Result {
    let path = root.join(ARCHITECTURE);
    let doc = fs::read_to_string(&path).map_err(|e| format!("{ARCHITECTURE}: {e}"))?;
    let expected = layers::graph(&layers::crates(root));
    let Some(block) = layers::current_block(&doc) else {
        return Err(format!(
            "{ARCHITECTURE}: add the markers `{}` and `{}` where the graph goes",
            layers::GRAPH_START,
            layers::GRAPH_END
        ));
    };
    let new = doc.replacen(block, &expected, 1);
    if new != doc {
        fs::write(&path, new).map_err(|e| format!("{ARCHITECTURE}: {e}"))?;
        println!("tidy: rewrote the crate graph in {ARCHITECTURE}");
    }
    Ok(())
}

/// Every `crates/*/` needs a README.md and a Cargo.toml with a `description`.
fn check_crates(root: &Path, offences: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(root.join("crates")) else {
        offences.push("crates/: missing".to_owned());
        return;
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let rel = util::rel(root, &dir);
        if !contains_file(&dir) {
            // Git does not track empty folders: this is someone's work in progress, not a crate.
            println!("tidy: note: {rel}/ has no files yet, skipped");
            continue;
        }
        if !dir.join("README.md").is_file() {
            offences.push(format!("{rel}/README.md: missing"));
        }
        match fs::read_to_string(dir.join("Cargo.toml")) {
            Err(_) => offences.push(format!("{rel}/Cargo.toml: missing")),
            Ok(manifest) => {
                if !has_description(&manifest) {
                    offences.push(format!("{rel}/Cargo.toml: no `description` in [package]"));
                }
            }
        }
    }
}

/// Whether `[package]` of a manifest sets `description` (directly or from the workspace).
fn has_description(manifest: &str) -> bool {
    let mut in_package = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package {
            let key = line.split(['=', '.']).next().unwrap_or_default().trim();
            if key == "description" {
                return true;
            }
        }
    }
    false
}

fn contains_file(dir: &Path) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries
        .filter_map(|e| e.ok())
        .any(|e| e.path().is_file() || (e.path().is_dir() && contains_file(&e.path())))
}

/// Collects every `.rs` file under `dir`, skipping build output and dependencies.
fn walk(root: &Path, dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let target = util::target_dir(root);
    for entry in entries.filter_map(|e| e.ok()) {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if !SKIP_DIRS.contains(&name.as_ref()) && path != target {
                walk(root, &path, files);
            }
        } else if kind.is_file() && name.ends_with(".rs") {
            files.push(path);
        }
    }
}

/// The crate name when `rel` is library code: `crates/<name>/src/**.rs`.
fn library_crate(rel: &str) -> Option<&str> {
    let mut parts = rel.split(['/', '\\']);
    if parts.next() != Some("crates") {
        return None;
    }
    let krate = parts.next()?;
    (parts.next() == Some("src")).then_some(krate)
}

/// `crates/<name>/src/main.rs` and `crates/<name>/src/bin/**` are binaries, not libraries.
fn is_binary(rel: &str) -> bool {
    let parts: Vec<&str> = rel.split(['/', '\\']).collect();
    matches!(parts.get(3), Some(&"main.rs") | Some(&"bin"))
}

/// Names of the macros `name!(` invoked on a line (whole identifiers only, so `eprintln!(`
/// is `eprintln`, never `println`).
fn macros_in(line: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let bytes = line.as_bytes();
    let mut search = 0;
    while let Some(pos) = line[search..].find("!(") {
        let bang = search + pos;
        let mut start = bang;
        while start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
            start -= 1;
        }
        let name = &line[start..bang];
        if FORBIDDEN.contains(&name) || PRINTING.contains(&name) {
            found.push(name);
        }
        search = bang + 2;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_whole_macro_names() {
        assert_eq!(
            macros_in(r#"eprintln!("x"); print!("y")"#),
            ["eprintln", "print"]
        );
        assert_eq!(macros_in("std::dbg!(x) + my_todo!()"), ["dbg"]);
        assert!(macros_in("assert!(x != y)").is_empty());
    }

    #[test]
    fn library_paths() {
        assert_eq!(
            library_crate("crates/tidings-protocol/src/lib.rs"),
            Some("tidings-protocol")
        );
        assert_eq!(library_crate("crates/tidings-protocol/tests/a.rs"), None);
        assert_eq!(library_crate("xtask/src/main.rs"), None);
        assert!(is_binary("crates/tidings-cli/src/main.rs"));
        assert!(is_binary("crates/tidings-cli/src/bin/x.rs"));
        assert!(!is_binary("crates/tidings-cli/src/lib.rs"));
    }

    #[test]
    fn description_in_package_only() {
        assert!(has_description(
            "[package]\nname = \"a\"\ndescription = \"b\"\n"
        ));
        assert!(has_description("[package]\ndescription.workspace = true\n"));
        assert!(!has_description(
            "[package]\nname = \"a\"\n[features]\ndescription = []\n"
        ));
    }
}
