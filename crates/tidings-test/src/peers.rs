//! Locating and running the independent test peers (Python venv, Node modules, `node`) installed by `cargo xtask setup`.
//!
//! `cargo xtask setup` installs the peers under one directory, the *peers
//! directory*: `$TIDINGS_PEERS_DIR` if set, else `<workspace root>/target/peers`.
//! Inside it:
//!
//! * `venv/` — a Python virtual environment ([`python`] is its `bin/python`);
//! * `node/node_modules/` — the Node packages ([`node_modules`]).
//!
//! The `node` binary itself comes from `PATH` ([`node`]).
//!
//! A test that needs a peer asks for it with [`require_peer!`](crate::require_peer)
//! (or [`require`]): if the peer is present the test gets its path; if it is
//! missing the test prints a loud `SKIPPED:` line and returns early, unless
//! `TIDINGS_REQUIRE_PEERS=1` is set, in which case it panics (CI must not
//! silently skip).
//!
//! [`run_script`] runs a peer script as a child process with a hard timeout,
//! capturing its output.

use std::env;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// Environment variable overriding the peers directory.
pub const PEERS_DIR_ENV: &str = "TIDINGS_PEERS_DIR";

/// Environment variable that turns a missing peer from a skip into a failure
/// when set to `1`.
pub const REQUIRE_PEERS_ENV: &str = "TIDINGS_REQUIRE_PEERS";

/// An empty argument list for [`run_script`].
pub const NO_ARGS: [&str; 0] = [];

/// An empty extra environment for [`run_script`].
pub const NO_ENV: [(&str, &str); 0] = [];

/// How long [`run_script`] keeps collecting output after the child exited or
/// was killed (a grandchild may still hold the pipes open).
const OUTPUT_GRACE: Duration = Duration::from_secs(1);

/// A peer that is not installed or not found.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PeerMissing {
    /// An installed file or directory is absent.
    #[error("{peer} missing: {} does not exist", .path.display())]
    NotInstalled {
        /// What the peer is, e.g. `python venv`.
        peer: &'static str,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A program is not on `PATH`.
    #[error("{peer} missing: `{program}` not found on PATH")]
    NotOnPath {
        /// What the peer is, e.g. `node`.
        peer: &'static str,
        /// The program name searched for.
        program: &'static str,
    },
}

impl PeerMissing {
    /// What the missing peer is, e.g. `python venv`.
    pub fn peer(&self) -> &'static str {
        match self {
            PeerMissing::NotInstalled { peer, .. } | PeerMissing::NotOnPath { peer, .. } => peer,
        }
    }

    /// Why it counts as missing, without the peer's name.
    pub fn reason(&self) -> String {
        match self {
            PeerMissing::NotInstalled { path, .. } => format!("{} does not exist", path.display()),
            PeerMissing::NotOnPath { program, .. } => format!("`{program}` not found on PATH"),
        }
    }
}

/// Running a peer script failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// The script file does not exist.
    #[error("peer script {} does not exist", .script.display())]
    ScriptNotFound {
        /// The script path.
        script: PathBuf,
    },
    /// The interpreter could not be started.
    #[error("could not start `{} {}`: {source}", .interpreter.display(), .script.display())]
    Spawn {
        /// The interpreter.
        interpreter: PathBuf,
        /// The script.
        script: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Waiting for the child failed.
    #[error("waiting for peer script {} failed: {source}", .script.display())]
    Wait {
        /// The script.
        script: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The script ran longer than its timeout and was killed.
    #[error(
        "peer script {} timed out after {timeout:?} and was killed\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        .script.display()
    )]
    Timeout {
        /// The script.
        script: PathBuf,
        /// The timeout that expired.
        timeout: Duration,
        /// Output captured before the kill (lossy UTF-8).
        stdout: String,
        /// Error output captured before the kill (lossy UTF-8).
        stderr: String,
    },
    /// The script exited unsuccessfully.
    #[error(
        "peer script {} failed ({status})\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        .script.display()
    )]
    Failed {
        /// The script.
        script: PathBuf,
        /// Its exit status.
        status: ExitStatus,
        /// Its output (lossy UTF-8).
        stdout: String,
        /// Its error output (lossy UTF-8).
        stderr: String,
    },
}

/// The workspace root: `CARGO_MANIFEST_DIR` of this crate, two levels up.
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .map_or_else(|| manifest.join("../.."), Path::to_path_buf)
}

/// The peers directory: `$TIDINGS_PEERS_DIR`, else `<workspace root>/target/peers`.
pub fn peers_dir() -> PathBuf {
    match env::var_os(PEERS_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join("target").join("peers"),
    }
}

/// The Python interpreter of the peers venv (`<peers dir>/venv/bin/python`).
pub fn python() -> Result<PathBuf, PeerMissing> {
    let path = peers_dir().join("venv").join("bin").join("python");
    // `is_file` follows the venv's symlink, so a dangling link counts as missing.
    if path.is_file() {
        Ok(path)
    } else {
        Err(PeerMissing::NotInstalled {
            peer: "python venv",
            path,
        })
    }
}

/// The Node packages directory (`<peers dir>/node/node_modules`).
pub fn node_modules() -> Result<PathBuf, PeerMissing> {
    let path = peers_dir().join("node").join("node_modules");
    if path.is_dir() {
        Ok(path)
    } else {
        Err(PeerMissing::NotInstalled {
            peer: "node_modules",
            path,
        })
    }
}

/// The `node` binary, searched on `PATH`.
pub fn node() -> Result<PathBuf, PeerMissing> {
    find_on_path("node").ok_or(PeerMissing::NotOnPath {
        peer: "node",
        program: "node",
    })
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// Whether `TIDINGS_REQUIRE_PEERS=1` is set.
pub fn peers_required() -> bool {
    env::var_os(REQUIRE_PEERS_ENV).is_some_and(|v| v == "1")
}

/// The running test's name: libtest names each test's thread after the test.
fn current_test_name() -> String {
    std::thread::current()
        .name()
        .filter(|name| *name != "main")
        .unwrap_or("<unknown test>")
        .to_owned()
}

/// Gates a test on a peer: returns the peer if present. If it is missing,
/// panics when `TIDINGS_REQUIRE_PEERS=1`, else prints
/// `SKIPPED: <test> needs <peer>: <reason> (run cargo xtask setup)` to stderr
/// and returns `None` (the test should return early; [`require_peer!`](crate::require_peer)
/// does that for you).
#[track_caller]
pub fn require<T>(found: Result<T, PeerMissing>) -> Option<T> {
    decide(found, peers_required(), &current_test_name())
}

#[track_caller]
fn decide<T>(found: Result<T, PeerMissing>, required: bool, test: &str) -> Option<T> {
    match found {
        Ok(peer) => Some(peer),
        Err(missing) if required => panic!(
            "{test} needs {}: {}; {REQUIRE_PEERS_ENV}=1 makes a missing peer a failure: run `cargo xtask setup`",
            missing.peer(),
            missing.reason(),
        ),
        Err(missing) => {
            eprintln!(
                "SKIPPED: {test} needs {}: {} (run cargo xtask setup)",
                missing.peer(),
                missing.reason(),
            );
            None
        }
    }
}

/// Gets a peer or ends the test early: `let py = require_peer!(peers::python());`.
///
/// Expands to a `match` on [`peers::require`](crate::peers::require) that
/// `return`s from the enclosing function when the peer is missing (after
/// printing the `SKIPPED:` line, or panicking under `TIDINGS_REQUIRE_PEERS=1`).
/// In a test returning a value, give it: `require_peer!(peers::node(), Ok(()))`.
#[macro_export]
macro_rules! require_peer {
    ($found:expr $(,)?) => {
        match $crate::peers::require($found) {
            ::core::option::Option::Some(peer) => peer,
            ::core::option::Option::None => return,
        }
    };
    ($found:expr, $ret:expr $(,)?) => {
        match $crate::peers::require($found) {
            ::core::option::Option::Some(peer) => peer,
            ::core::option::Option::None => return $ret,
        }
    };
}

/// Runs `interpreter script args...` with `env` added to the inherited
/// environment, stdin closed and stdout/stderr captured, and kills it if it
/// runs longer than `timeout`.
///
/// Returns the output on a zero exit status; otherwise a [`PeerError`] whose
/// message includes both stdout and stderr. Use [`NO_ARGS`] / [`NO_ENV`] for
/// empty lists. Must be called within a tokio runtime.
pub async fn run_script<I, S, E, K, V>(
    interpreter: &Path,
    script: &Path,
    args: I,
    env: E,
    timeout: Duration,
) -> Result<Output, PeerError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
    E: IntoIterator<Item = (K, V)>,
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    if !script.is_file() {
        return Err(PeerError::ScriptNotFound {
            script: script.to_path_buf(),
        });
    }
    let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let mut child = Command::new(interpreter)
        .arg(script)
        .args(&args)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| PeerError::Spawn {
            interpreter: interpreter.to_path_buf(),
            script: script.to_path_buf(),
            source,
        })?;
    tracing::debug!(interpreter = %interpreter.display(), script = %script.display(), ?args, "peer script started");

    let child_stdout = child.stdout.take();
    let child_stderr = child.stderr.take();
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();

    let waited = {
        let wait = async {
            match tokio::time::timeout(timeout, child.wait()).await {
                Ok(status) => Some(status),
                Err(_elapsed) => {
                    if let Err(e) = child.kill().await {
                        tracing::debug!(error = %e, "killing timed-out peer script failed");
                    }
                    None
                }
            }
        };
        let drain = async {
            tokio::join!(
                drain_into(child_stdout, &mut stdout),
                drain_into(child_stderr, &mut stderr)
            )
        };
        tokio::pin!(wait, drain);
        let mut drained = false;
        let waited = loop {
            tokio::select! {
                w = &mut wait => break w,
                _ = &mut drain, if !drained => drained = true,
            }
        };
        if !drained {
            let _ = tokio::time::timeout(OUTPUT_GRACE, &mut drain).await;
        }
        waited
    };

    let lossy = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    match waited {
        None => Err(PeerError::Timeout {
            script: script.to_path_buf(),
            timeout,
            stdout: lossy(&stdout),
            stderr: lossy(&stderr),
        }),
        Some(Err(source)) => Err(PeerError::Wait {
            script: script.to_path_buf(),
            source,
        }),
        Some(Ok(status)) if status.success() => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        Some(Ok(status)) => Err(PeerError::Failed {
            script: script.to_path_buf(),
            status,
            stdout: lossy(&stdout),
            stderr: lossy(&stderr),
        }),
    }
}

/// Appends everything readable from `pipe` to `out`, keeping what was read if
/// cancelled.
async fn drain_into(pipe: Option<impl AsyncRead + Unpin>, out: &mut Vec<u8>) {
    let Some(mut pipe) = pipe else { return };
    let mut chunk = [0_u8; 8192];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn missing() -> Result<PathBuf, PeerMissing> {
        Err(PeerMissing::NotInstalled {
            peer: "python venv",
            path: PathBuf::from("/nonexistent/venv/bin/python"),
        })
    }

    #[test]
    fn present_peer_is_returned() {
        let found = decide(Ok(PathBuf::from("/x")), true, "t");
        assert_eq!(found, Some(PathBuf::from("/x")));
    }

    #[test]
    fn missing_peer_skips_when_not_required() {
        assert_eq!(decide(missing(), false, "peers::tests::skip"), None);
    }

    #[test]
    #[should_panic(expected = "run `cargo xtask setup`")]
    fn missing_peer_panics_when_required() {
        let _ = decide(missing(), true, "peers::tests::required");
    }

    #[test]
    fn test_name_comes_from_the_thread() {
        assert!(current_test_name().contains("test_name_comes_from_the_thread"));
    }

    #[test]
    fn reason_and_peer() {
        let m = missing().unwrap_err();
        assert_eq!(m.peer(), "python venv");
        assert_eq!(m.reason(), "/nonexistent/venv/bin/python does not exist");
        assert!(m.to_string().starts_with("python venv missing: "));
    }

    #[test]
    fn workspace_root_holds_the_workspace_manifest() {
        let root = workspace_root();
        assert!(root.join("Cargo.toml").is_file());
        assert!(root.join("crates").join("tidings-test").is_dir());
    }

    #[test]
    fn finds_sh_on_path() {
        assert!(find_on_path("sh").is_some());
        assert!(find_on_path("definitely-not-a-program-tidings").is_none());
    }
}
