//! Tests of peer discovery, skipping and the peer-script runner (real child processes).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use tidings_test::peers::{self, NO_ARGS, NO_ENV, PeerError};
use tidings_test::require_peer;

const TIMEOUT: Duration = Duration::from_secs(30);

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("scripts")
        .join(name)
}

fn sh() -> &'static Path {
    Path::new("/bin/sh")
}

#[test]
fn peer_paths_are_under_the_peers_dir() {
    let dir = peers::peers_dir();
    match peers::python() {
        Ok(p) => assert!(p.starts_with(&dir) && p.is_file()),
        Err(e) => assert!(e.to_string().contains("venv"), "{e}"),
    }
    match peers::node_modules() {
        Ok(p) => assert!(p.starts_with(&dir) && p.is_dir()),
        Err(e) => assert!(e.to_string().contains("node_modules"), "{e}"),
    }
    if let Ok(node) = peers::node() {
        assert!(node.ends_with("node"));
    }
}

#[tokio::test]
async fn run_script_captures_output() {
    let out = peers::run_script(
        sh(),
        &script("ok.sh"),
        ["one", "two"],
        [("TIDINGS_TEST_VALUE", "42")],
        TIMEOUT,
    )
    .await
    .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout, "args: one two\nenv: 42\n");
    assert_eq!(String::from_utf8(out.stderr).unwrap(), "to stderr\n");
}

#[tokio::test]
async fn run_script_failure_includes_both_streams() {
    let err = peers::run_script(sh(), &script("fail.sh"), NO_ARGS, NO_ENV, TIMEOUT)
        .await
        .unwrap_err();
    let msg = err.to_string();
    println!("{msg}");
    assert!(matches!(&err, PeerError::Failed { status, .. } if status.code() == Some(3)));
    assert!(msg.contains("partial progress"), "{msg}");
    assert!(msg.contains("something broke"), "{msg}");
}

#[tokio::test]
async fn run_script_kills_on_timeout() {
    let err = peers::run_script(
        sh(),
        &script("hang.sh"),
        NO_ARGS,
        NO_ENV,
        Duration::from_millis(500),
    )
    .await
    .unwrap_err();
    let PeerError::Timeout { stdout, .. } = &err else {
        panic!("expected a timeout, got {err}");
    };
    // The output written before the kill is kept, and the process is gone.
    let pid = stdout.trim().strip_prefix("pid ").unwrap();
    assert!(
        !Path::new("/proc").join(pid).exists(),
        "peer process {pid} still exists"
    );
    assert!(err.to_string().contains("timed out"));
}

#[tokio::test]
async fn run_script_timeout_returns_even_if_a_grandchild_holds_the_pipes() {
    let err = peers::run_script(
        sh(),
        &script("hang_with_grandchild.sh"),
        NO_ARGS,
        NO_ENV,
        Duration::from_millis(500),
    )
    .await
    .unwrap_err();
    let PeerError::Timeout { stdout, .. } = &err else {
        panic!("expected a timeout, got {err}");
    };
    assert_eq!(stdout, "started\n");
}

#[tokio::test]
async fn run_script_reports_missing_script_and_interpreter() {
    let err = peers::run_script(sh(), &script("nope.sh"), NO_ARGS, NO_ENV, TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, PeerError::ScriptNotFound { .. }), "{err}");

    let err = peers::run_script(
        Path::new("/nonexistent/interpreter"),
        &script("ok.sh"),
        NO_ARGS,
        NO_ENV,
        TIMEOUT,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, PeerError::Spawn { .. }), "{err}");
}

#[tokio::test]
async fn python_peer_runs() {
    let python = require_peer!(peers::python());
    let out = peers::run_script(&python, &script("version.py"), NO_ARGS, NO_ENV, TIMEOUT)
        .await
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("python 3."), "{stdout}");
}

#[tokio::test]
async fn node_peer_runs() -> Result<(), PeerError> {
    let node = require_peer!(peers::node(), Ok(()));
    let _modules = require_peer!(peers::node_modules(), Ok(()));
    let out = peers::run_script(&node, &script("version.mjs"), NO_ARGS, NO_ENV, TIMEOUT).await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("node v"), "{stdout}");
    Ok(())
}
