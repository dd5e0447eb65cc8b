//! `tidings new NAME`: scaffolds an axum + Leptos app (server-rendered page, tidings hub at `/ws` and `/sse`) that builds and runs with `cargo run`.

use std::path::{Path, PathBuf};

use crate::error::CliError;
use crate::out::Out;

const CARGO_TOML: &str = include_str!("../templates/app/Cargo.toml.tmpl");
const MAIN_RS: &str = include_str!("../templates/app/main.rs.tmpl");
const PAGE_RS: &str = include_str!("../templates/app/page.rs.tmpl");
const APP_JS: &str = include_str!("../templates/app/app.js.tmpl");
const README: &str = include_str!("../templates/app/README.md.tmpl");

/// The version of `tidings` a project depends on when no `--tidings-path` is given.
pub const TIDINGS_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Checks `name` is a usable package name: ASCII letters, digits, `-` and `_`, starting with a
/// letter, at most 64 characters.
pub fn check_name(name: &str) -> Result<(), CliError> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(CliError::BadArgument(format!(
            "{name:?} is not a package name: use ASCII letters, digits, '-' and '_', starting with a letter"
        )))
    }
}

/// Where the `tidings` facade crate is under `path`: the crate itself or a tidings workspace
/// root (its `crates/tidings`), and that workspace's Cargo.lock when there is one.
fn locate(path: &Path) -> Result<(PathBuf, Option<PathBuf>), CliError> {
    let path = path
        .canonicalize()
        .map_err(|e| CliError::io(format!("--tidings-path {}", path.display()), e))?;
    let (facade, root) = if path.join("crates/tidings/Cargo.toml").is_file() {
        (path.join("crates/tidings"), path.clone())
    } else if path.join("Cargo.toml").is_file() && path.ends_with("crates/tidings") {
        let root = path
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_else(|| path.clone());
        (path.clone(), root)
    } else {
        return Err(CliError::BadArgument(format!(
            "--tidings-path {}: neither a tidings workspace (crates/tidings/Cargo.toml) nor its crates/tidings",
            path.display()
        )));
    };
    let lock = root.join("Cargo.lock");
    Ok((facade, lock.is_file().then_some(lock)))
}

/// A TOML basic string holding `s`.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn write(path: &Path, content: &str) -> Result<(), CliError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| CliError::io(format!("creating {}", parent.display()), e))?;
    }
    std::fs::write(path, content)
        .map_err(|e| CliError::io(format!("writing {}", path.display()), e))
}

/// Writes the project `name` into `dir` (default `./NAME`).
pub fn run(
    name: &str,
    dir: Option<&Path>,
    tidings_path: Option<&Path>,
    out: &mut Out,
) -> Result<(), CliError> {
    check_name(name)?;
    let dir = dir.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    if dir.exists() {
        return Err(CliError::Exists(dir));
    }
    let (dep, lock) = match tidings_path {
        Some(p) => {
            let (facade, lock) = locate(p)?;
            let facade = facade
                .to_str()
                .ok_or_else(|| CliError::BadArgument(format!("{}: not UTF-8", facade.display())))?;
            (format!("path = {}", toml_string(facade)), lock)
        }
        None => (format!("version = \"{TIDINGS_VERSION}\""), None),
    };
    let fill = |t: &str| t.replace("{{name}}", name).replace("{{tidings_dep}}", &dep);
    write(&dir.join("Cargo.toml"), &fill(CARGO_TOML))?;
    write(&dir.join("src/main.rs"), &fill(MAIN_RS))?;
    write(&dir.join("src/page.rs"), &fill(PAGE_RS))?;
    write(&dir.join("src/app.js"), &fill(APP_JS))?;
    write(&dir.join("README.md"), &fill(README))?;
    write(&dir.join(".gitignore"), "/target\n")?;
    if let Some(lock) = lock {
        std::fs::copy(&lock, dir.join("Cargo.lock"))
            .map_err(|e| CliError::io(format!("copying {} into the project", lock.display()), e))?;
    }
    out.line(&format!("created {name} in {}", dir.display()))?;
    out.line(&format!("next: cd {} && cargo run", dir.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("my-app").is_ok());
        assert!(check_name("app_2").is_ok());
        assert!(check_name("2app").is_err());
        assert!(check_name("").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_name("caf\u{e9}").is_err());
    }

    #[test]
    fn toml_strings_escape() {
        assert_eq!(toml_string(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
