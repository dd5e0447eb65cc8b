//! Shared helpers: workspace paths, running commands, timing, hashing.

use std::env;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Errors of xtask are plain messages meant for a person.
pub(crate) type Result<T = ()> = std::result::Result<T, String>;

/// The workspace root: the parent of xtask's `CARGO_MANIFEST_DIR`.
///
/// `cargo run` sets `CARGO_MANIFEST_DIR` for the running binary too; the value baked in at
/// compile time is the fallback (e.g. when the binary is run directly).
pub(crate) fn workspace_root() -> PathBuf {
    let manifest_dir = env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.join("Cargo.toml").is_file() && dir.ends_with("xtask"))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or(manifest_dir)
}

/// Turns a path from the environment into an absolute one (relative means relative to the
/// workspace root, where every command of xtask runs).
fn absolutize(root: &Path, path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        path
    } else {
        root.join(path)
    }
}

/// Where the independent test peers live: `$TIDINGS_PEERS_DIR`, else `<workspace>/target/peers`.
pub(crate) fn peers_dir(root: &Path) -> PathBuf {
    match env::var_os("TIDINGS_PEERS_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => absolutize(root, PathBuf::from(dir)),
        None => root.join("target").join("peers"),
    }
}

/// The version of `package` recorded in the workspace's Cargo.lock (the only one: a lock file
/// holding two versions of it is an error, since callers need one exact version).
pub(crate) fn locked_version(root: &Path, package: &str) -> Result<String> {
    let path = root.join("Cargo.lock");
    let lock =
        std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let versions = lock_versions(&lock, package);
    match versions.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(format!("{} has no package `{package}`", path.display())),
        many => Err(format!(
            "{} has {} versions of `{package}` ({}); expected exactly one",
            path.display(),
            many.len(),
            many.join(", ")
        )),
    }
}

/// Every `version` of the `[[package]]` entries named `package` in a Cargo.lock text.
fn lock_versions(lock: &str, package: &str) -> Vec<String> {
    let quoted = |line: &str, key: &str| {
        let rest = line
            .strip_prefix(key)?
            .trim_start()
            .strip_prefix('=')?
            .trim();
        Some(rest.strip_prefix('"')?.strip_suffix('"')?.to_owned())
    };
    let mut versions = Vec::new();
    let mut name_matches = false;
    for line in lock.lines().map(str::trim) {
        if line == "[[package]]" {
            name_matches = false;
        } else if let Some(name) = quoted(line, "name") {
            name_matches = name == package;
        } else if let Some(version) = quoted(line, "version").filter(|_| name_matches) {
            versions.push(version);
        }
    }
    versions
}

/// Cargo's target directory: `$CARGO_TARGET_DIR`, else `<workspace>/target`.
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => absolutize(root, PathBuf::from(dir)),
        None => root.join("target"),
    }
}

/// The cargo that runs us (`$CARGO`), else `cargo` from `PATH`.
pub(crate) fn cargo() -> Command {
    let program = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    Command::new(program)
}

/// Renders a command line for logs.
pub(crate) fn display(cmd: &Command) -> String {
    let mut line = String::new();
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            let _ = write!(
                line,
                "{}={} ",
                key.to_string_lossy(),
                value.to_string_lossy()
            );
        }
    }
    let program = cmd.get_program();
    if env::var_os("CARGO").is_some_and(|cargo| cargo == program) {
        line.push_str("cargo");
    } else {
        line.push_str(&program.to_string_lossy());
    }
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&quote(arg));
    }
    line
}

fn quote(arg: &OsStr) -> String {
    let arg = arg.to_string_lossy();
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=./:,+@".contains(c))
    {
        arg.into_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// Runs a command with inherited stdio, echoing it first; fails on a non-zero exit.
pub(crate) fn run(cmd: &mut Command) -> Result {
    let line = display(cmd);
    println!("$ {line}");
    let status = cmd
        .status()
        .map_err(|e| format!("could not start `{line}`: {e}"))?;
    check_status(&line, status)
}

fn check_status(line: &str, status: ExitStatus) -> Result {
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{line}` failed ({status})"))
    }
}

/// Runs a command quietly and tells whether it succeeded (false when it cannot start).
pub(crate) fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// What a captured command did.
pub(crate) struct Captured {
    /// Exit status, `None` when the command was killed after its time ran out.
    pub(crate) status: Option<ExitStatus>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Captured {
    pub(crate) fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

/// Runs a command with captured output, killing it after `timeout`.
pub(crate) fn capture(cmd: &mut Command, timeout: Duration) -> Result<Captured> {
    let line = display(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start `{line}`: {e}"))?;
    let stdout = child.stdout.take().map(reader);
    let stderr = child.stderr.take().map(reader);
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("waiting for `{line}`: {e}")),
        }
    };
    let join =
        |h: Option<thread::JoinHandle<String>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
    Ok(Captured {
        status,
        stdout: join(stdout),
        stderr: join(stderr),
    })
}

fn reader(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// First line of a command's stdout, trimmed (for version strings).
pub(crate) fn first_line(cmd: &mut Command) -> Option<String> {
    let out = capture(cmd, Duration::from_secs(60)).ok()?;
    if !out.success() {
        return None;
    }
    out.stdout.lines().next().map(|l| l.trim().to_owned())
}

/// 64-bit FNV-1a: a stable hash for stamp files (std's hasher is not stable across releases).
pub(crate) fn fnv1a64(parts: &[&[u8]]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        // Length-prefix each part so ("ab", "c") and ("a", "bc") differ.
        for byte in (part.len() as u64).to_le_bytes().iter().chain(part.iter()) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// Formats a duration as seconds with one decimal.
pub(crate) fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// Path relative to the workspace root, for messages.
pub(crate) fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_a_lock_file() {
        let lock = "version = 4\n\n[[package]]\nname = \"wasm-bindgen\"\nversion = \"0.2.130\"\n\
                    dependencies = [\n \"cfg-if\",\n]\n\n[[package]]\nname = \"wasm-bindgen-futures\"\n\
                    version = \"0.4.80\"\n";
        assert_eq!(lock_versions(lock, "wasm-bindgen"), ["0.2.130"]);
        assert_eq!(lock_versions(lock, "wasm-bindgen-futures"), ["0.4.80"]);
        assert!(lock_versions(lock, "cfg-if").is_empty());
    }
}
