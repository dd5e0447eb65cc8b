//! `cargo xtask setup`: idempotent installs of everything the tests need.
//!
//! Each step says what it did, or that it was already done. Nothing is installed by hand
//! anywhere else: a new machine (or CI) gets the same state from this one command.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::util::{self, Result};

const WASM_TARGET: &str = "wasm32-unknown-unknown";
const STAMP: &str = ".tidings-setup.stamp";

/// Debian's Chromium, driven headless by `cargo xtask test-browser`.
pub(crate) const CHROMIUM: &str = "/usr/bin/chromium";

/// Runs every setup step in order.
pub(crate) fn run(root: &Path) -> Result {
    let peers = util::peers_dir(root);
    println!(
        "[setup] peers dir: {} (override with TIDINGS_PEERS_DIR)",
        peers.display()
    );
    wasm_target()?;
    cargo_tool("cargo-deny", "deny")?;
    cargo_tool("cargo-nextest", "nextest")?;
    cargo_tool("cargo-fuzz", "fuzz")?;
    wasm_bindgen_cli(root)?;
    python_venv(root, &peers)?;
    node_peers(root, &peers)?;
    chromium()?;
    mdbook()?;
    println!("[setup] done");
    Ok(())
}

fn wasm_target() -> Result {
    let installed = util::capture(
        Command::new("rustup").args(["target", "list", "--installed"]),
        std::time::Duration::from_secs(60),
    )?;
    if !installed.success() {
        return Err(format!(
            "`rustup target list --installed` failed: {}",
            installed.stderr.trim()
        ));
    }
    if installed.stdout.lines().any(|l| l.trim() == WASM_TARGET) {
        println!("[setup] rust target {WASM_TARGET}: already installed");
        return Ok(());
    }
    util::run(Command::new("rustup").args(["target", "add", WASM_TARGET]))?;
    println!("[setup] rust target {WASM_TARGET}: installed");
    Ok(())
}

/// Installs `krate` with `cargo install --locked` unless `cargo <sub> --version` already works.
fn cargo_tool(krate: &str, sub: &str) -> Result {
    if let Some(version) = util::first_line(util::cargo().args([sub, "--version"])) {
        println!("[setup] {krate}: already installed ({version})");
        return Ok(());
    }
    util::run(util::cargo().args(["install", krate, "--locked"]))?;
    println!("[setup] {krate}: installed");
    Ok(())
}

/// `wasm-bindgen-cli` at exactly the version of the `wasm-bindgen` crate in Cargo.lock: the
/// CLI refuses to process a module built by another version of the crate.
fn wasm_bindgen_cli(root: &Path) -> Result {
    let wanted = util::locked_version(root, "wasm-bindgen")?;
    let found = util::first_line(Command::new("wasm-bindgen").arg("--version"));
    if found.as_deref() == Some(&format!("wasm-bindgen {wanted}")) {
        println!("[setup] wasm-bindgen-cli {wanted}: already installed (as in Cargo.lock)");
        return Ok(());
    }
    let why = match &found {
        Some(other) => format!("found `{other}`, Cargo.lock has {wanted}"),
        None => "not installed".to_owned(),
    };
    println!("[setup] wasm-bindgen-cli {wanted}: installing ({why})");
    // `--version X` is exact for `cargo install`. `--locked` uses the CLI's own lock file,
    // which can name a dependency release the registry does not serve (seen here: webpki-roots
    // 1.0.11 for 0.2.130); then the newest compatible releases are the only way to build it.
    let install = |locked: bool| {
        let mut cmd = util::cargo();
        cmd.args(["install", "wasm-bindgen-cli", "--version", &wanted]);
        if locked {
            cmd.arg("--locked");
        }
        util::run(&mut cmd)
    };
    if let Err(e) = install(true) {
        println!(
            "[setup] wasm-bindgen-cli {wanted}: WARNING: the install with its lock file failed \
             ({e}); retrying without --locked (same CLI version, dependencies resolved anew)"
        );
        install(false)?;
    }
    println!("[setup] wasm-bindgen-cli {wanted}: installed");
    Ok(())
}

/// The mdBook major.minor `cargo xtask docs` is written for (its renderer and include syntax).
const MDBOOK_SERIES: &str = "mdbook v0.5.";

/// mdBook for `cargo xtask docs`, unless a 0.5 release is on PATH. No default features: the
/// `serve`/`watch` (tokio, axum, notify) and `search` parts are not needed to build and check
/// the book, and leaving them out keeps the install short.
fn mdbook() -> Result {
    let found = util::first_line(Command::new("mdbook").arg("--version"));
    if let Some(v) = found.as_deref().filter(|v| v.starts_with(MDBOOK_SERIES)) {
        println!("[setup] mdbook: already installed ({v})");
        return Ok(());
    }
    let why = found.map_or_else(|| "not installed".to_owned(), |v| format!("found `{v}`"));
    println!("[setup] mdbook: installing ({why})");
    let started = std::time::Instant::now();
    util::run(util::cargo().args([
        "install",
        "mdbook",
        "--version",
        "^0.5",
        "--locked",
        "--no-default-features",
    ]))?;
    println!(
        "[setup] mdbook: installed ({})",
        util::secs(started.elapsed())
    );
    Ok(())
}

/// Debian's `chromium` (about 500 MB), unless [`CHROMIUM`] exists already.
fn chromium() -> Result {
    if Path::new(CHROMIUM).exists() {
        let version = util::first_line(Command::new(CHROMIUM).arg("--version"))
            .unwrap_or_else(|| "its --version printed nothing".to_owned());
        println!("[setup] chromium: already installed ({version})");
        return Ok(());
    }
    println!("[setup] chromium: installing Debian's package with apt-get");
    // No prompt may wait for an answer: CI has no terminal.
    let apt = |args: &[&str]| {
        let mut cmd = Command::new("apt-get");
        cmd.args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(std::process::Stdio::null());
        cmd
    };
    util::run(&mut apt(&["update", "-q"]))?;
    util::run(&mut apt(&["install", "-y", "-q", "chromium"]))?;
    if !Path::new(CHROMIUM).exists() {
        return Err(format!(
            "apt-get installed chromium but {CHROMIUM} does not exist"
        ));
    }
    println!("[setup] chromium: installed");
    Ok(())
}

/// Python peers: a venv at `<peers>/venv` holding `tests/peers/python/requirements.txt`.
///
/// The venv is rebuilt from scratch only when requirements.txt changed (its hash is kept in a
/// stamp file inside the venv) or when the venv's interpreter no longer runs.
fn python_venv(root: &Path, peers: &Path) -> Result {
    let requirements = root.join("tests/peers/python/requirements.txt");
    let content = read(&requirements)?;
    let hash = util::fnv1a64(&[&content]);
    let venv = peers.join("venv");
    let python = venv.join("bin").join("python");
    let stamp = venv.join(STAMP);

    let python_runs = util::succeeds(Command::new(&python).args(["-c", "import sys"]));
    if python_runs && stamp_matches(&stamp, &hash) {
        println!(
            "[setup] python venv {}: already up to date (requirements.txt {hash})",
            venv.display()
        );
        return Ok(());
    }
    let why = if !python_runs && venv.exists() {
        "its interpreter does not run"
    } else if venv.join(STAMP).exists() {
        "requirements.txt changed"
    } else if venv.exists() {
        "no stamp: an earlier install did not finish"
    } else {
        "it does not exist"
    };
    println!(
        "[setup] python venv {}: (re)creating, {why}",
        venv.display()
    );
    if venv.exists() {
        fs::remove_dir_all(&venv).map_err(|e| format!("removing {}: {e}", venv.display()))?;
    }
    create_dir(peers)?;
    util::run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    util::run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "-q",
                "-r",
            ])
            .arg(&requirements),
    )?;
    write(&stamp, &hash)?;
    println!(
        "[setup] python venv {}: installed requirements.txt ({hash})",
        venv.display()
    );
    Ok(())
}

/// Node peers: `tests/peers/node/package{,-lock}.json` copied to `<peers>/node` and
/// installed there with `npm ci`, again only when those files changed.
fn node_peers(root: &Path, peers: &Path) -> Result {
    let source = root.join("tests/peers/node");
    let files = ["package.json", "package-lock.json"];
    let contents = files
        .iter()
        .map(|f| read(&source.join(f)))
        .collect::<Result<Vec<_>>>()?;
    let parts: Vec<&[u8]> = contents.iter().map(Vec::as_slice).collect();
    let hash = util::fnv1a64(&parts);
    let dir = peers.join("node");
    let stamp = dir.join(STAMP);
    let node_modules = dir.join("node_modules");

    if node_modules.is_dir() && stamp_matches(&stamp, &hash) {
        println!(
            "[setup] node peers {}: already up to date (package-lock.json {hash})",
            dir.display()
        );
        return Ok(());
    }
    println!(
        "[setup] node peers {}: installing with npm ci",
        dir.display()
    );
    create_dir(&dir)?;
    let _ = fs::remove_file(&stamp);
    for (file, content) in files.iter().zip(&contents) {
        let dest = dir.join(file);
        fs::write(&dest, content).map_err(|e| format!("writing {}: {e}", dest.display()))?;
    }
    util::run(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir),
    )?;
    write(&stamp, &hash)?;
    println!("[setup] node peers {}: installed ({hash})", dir.display());
    Ok(())
}

fn stamp_matches(stamp: &Path, hash: &str) -> bool {
    fs::read_to_string(stamp).is_ok_and(|s| s.trim() == hash)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

fn write(path: &Path, hash: &str) -> Result {
    fs::write(path, format!("{hash}\n")).map_err(|e| format!("writing {}: {e}", path.display()))
}

fn create_dir(dir: &Path) -> Result {
    fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))
}
