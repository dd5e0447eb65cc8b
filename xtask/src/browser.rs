//! `cargo xtask test-browser`: the Rust wasm clients in headless Chromium against a real server.
//!
//! 1. builds the wasm test module (`tests/browser`, lib, `wasm32-unknown-unknown`) and binds it
//!    with `wasm-bindgen --target web` into `<target>/browser/pkg`;
//! 2. builds the native `browser-server` (the facade `tidings` with ws, sse, channels, axum) and
//!    the chat example's `chat` binary (whose build script builds the Leptos front end);
//! 3. runs the Node driver `tests/browser/driver/main.mjs` (playwright-core from the node peers),
//!    which starts both servers on ephemeral ports, drives Debian's Chromium and prints a line
//!    per scenario. Screenshots and the server's log land in `<target>/browser/out`.
//!
//! Dev builds: a release build of the wasm module and the server costs more compile time than the
//! whole run takes, and the scenarios are bound by timeouts and network, not by code speed.
//!
//! Nothing is skipped: a missing Chromium, wasm-bindgen of another version than Cargo.lock's, or
//! missing node peers fail the step with what to run (`cargo xtask setup`).

use std::fs;
use std::io::{BufRead, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::setup::CHROMIUM;
use crate::util::{self, Result};

const PACKAGE: &str = "tidings-browser-tests";
const WASM_TARGET: &str = "wasm32-unknown-unknown";
/// The library's file name as cargo writes it (the package name with `_`).
const WASM_FILE: &str = "tidings_browser_tests.wasm";
const SERVER_BIN: &str = "browser-server";
/// The chat example, whose Leptos front end the `leptos-*` scenarios drive.
const CHAT_PACKAGE: &str = "tidings-examples";
const CHAT_BIN: &str = "chat";

/// `cargo xtask test-browser`; returns the driver's closing `RESULT:` line.
pub(crate) fn run(root: &Path) -> Result<String> {
    let started = Instant::now();
    let target = util::target_dir(root);
    let node_modules = util::peers_dir(root).join("node").join("node_modules");
    preflight(root, &node_modules)?;

    let t = Instant::now();
    util::run(
        util::cargo()
            .args([
                "build",
                "--locked",
                "--package",
                PACKAGE,
                "--lib",
                "--target",
            ])
            .arg(WASM_TARGET)
            .current_dir(root),
    )?;
    let wasm = target.join(WASM_TARGET).join("debug").join(WASM_FILE);
    let browser = target.join("browser");
    let pkg = browser.join("pkg");
    util::run(
        Command::new("wasm-bindgen")
            .args(["--target", "web", "--no-typescript", "--out-dir"])
            .arg(&pkg)
            .arg(&wasm),
    )?;
    let wasm_bytes = fs::metadata(pkg.join("tidings_browser_tests_bg.wasm"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "[test-browser] wasm module built and bound in {} ({} KiB, dev build)",
        util::secs(t.elapsed()),
        wasm_bytes / 1024
    );

    let t = Instant::now();
    util::run(
        util::cargo()
            .args([
                "build",
                "--locked",
                "--package",
                PACKAGE,
                "--bin",
                SERVER_BIN,
            ])
            .current_dir(root),
    )?;
    println!(
        "[test-browser] {SERVER_BIN} built in {}",
        util::secs(t.elapsed())
    );

    // The chat example's own binary: its build script builds the Leptos front end's wasm
    // bundle (examples/build.rs), so this is also the build a fresh clone's `cargo run` does.
    let t = Instant::now();
    util::run(
        util::cargo()
            .args([
                "build",
                "--locked",
                "--package",
                CHAT_PACKAGE,
                "--bin",
                CHAT_BIN,
            ])
            .current_dir(root),
    )?;
    println!(
        "[test-browser] {CHAT_BIN} (with the Leptos front end's bundle) built in {}",
        util::secs(t.elapsed())
    );

    let out = browser.join("out");
    if out.exists() {
        fs::remove_dir_all(&out).map_err(|e| format!("removing {}: {e}", out.display()))?;
    }
    let t = Instant::now();
    let mut node = Command::new("node");
    node.arg(root.join("tests/browser/driver/main.mjs"))
        .arg("--server")
        .arg(target.join("debug").join(SERVER_BIN))
        .arg("--chat")
        .arg(target.join("debug").join(CHAT_BIN))
        .arg("--pages")
        .arg(root.join("tests/browser/static"))
        .arg("--pkg")
        .arg(&pkg)
        .arg("--out")
        .arg(&out)
        .args(["--chromium", CHROMIUM])
        .env("TIDINGS_NODE_MODULES", &node_modules)
        .current_dir(root);
    let result = run_driver(&mut node)?;
    println!(
        "[test-browser] scenarios ran in {}; total {}; screenshots and server.log in {}",
        util::secs(t.elapsed()),
        util::secs(started.elapsed()),
        util::rel(root, &out)
    );
    Ok(result)
}

/// What `cargo xtask setup` installs, checked before two builds are spent on a run that cannot
/// start.
fn preflight(root: &Path, node_modules: &Path) -> Result {
    let setup = "run `cargo xtask setup`";
    if !Path::new(CHROMIUM).exists() {
        return Err(format!("{CHROMIUM} does not exist: {setup}"));
    }
    let wanted = util::locked_version(root, "wasm-bindgen")?;
    match util::first_line(Command::new("wasm-bindgen").arg("--version")) {
        Some(v) if v == format!("wasm-bindgen {wanted}") => {}
        Some(v) => {
            return Err(format!(
                "`wasm-bindgen --version` prints `{v}`, Cargo.lock has wasm-bindgen {wanted} \
                 (the CLI must match the crate exactly): {setup}"
            ));
        }
        None => return Err(format!("wasm-bindgen (the CLI) does not run: {setup}")),
    }
    if !node_modules.join("playwright-core").is_dir() {
        return Err(format!(
            "{} has no playwright-core: {setup}",
            node_modules.display()
        ));
    }
    Ok(())
}

/// Runs the driver with its output streamed through, keeping its closing `RESULT:` line; a
/// non-zero exit fails with that line.
fn run_driver(cmd: &mut Command) -> Result<String> {
    let line = util::display(cmd);
    println!("$ {line}");
    let _ = std::io::stdout().flush();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start `{line}`: {e}"))?;
    let mut result = None;
    if let Some(stdout) = child.stdout.take() {
        let mut out = std::io::stdout();
        for l in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            let _ = writeln!(out, "{l}");
            if let Some(rest) = l.strip_prefix("RESULT: ") {
                result = Some(rest.to_owned());
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for `{line}`: {e}"))?;
    let result = result.unwrap_or_else(|| "the driver printed no RESULT line".to_owned());
    if status.success() {
        Ok(result)
    } else {
        Err(format!("browser tests failed ({status}): {result}"))
    }
}
