//! Builds the chat's Leptos front end for the browser, so that `cargo run -p tidings-examples --bin chat` serves it from a fresh clone: a nested `cargo rustc` of `examples/chat-web` for `wasm32-unknown-unknown`, then wasm-bindgen (the `wasm-bindgen-cli-support` library, no CLI) into `$OUT_DIR/pkg`.
//!
//! * The nested build has its own target directory, `<target>/chat-web`, so it never waits for
//!   the lock of the outer build's directory, and it is shared by every profile and command
//!   (`check`, `clippy`, `build`, `test`): after the first time it is a no-op of about a second.
//! * Profile `wasm-release` (root `Cargo.toml`): `opt-level = "z"`, fat LTO, one codegen unit:
//!   the smallest bundle, paid once per change of the front end.
//! * `rerun-if-changed` lists every source file of the workspace the bundle was built from (read
//!   from the nested build's dep-info file), their manifests, the root manifest and the lock file.
//! * A missing `wasm32-unknown-unknown` target fails the build with what to run; nothing is ever
//!   served without its bundle.
//! * The bundle is also copied to `<target>/chat-web/pkg` for `cargo xtask bench`, which reports
//!   its gzip size.

use std::collections::BTreeSet;
use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const PACKAGE: &str = "tidings-chat-web";
/// The library's file stem (the package name with `_`).
const STEM: &str = "tidings_chat_web";
const WASM_TARGET: &str = "wasm32-unknown-unknown";
const PROFILE: &str = "wasm-release";
/// The version of the `wasm-bindgen-cli-support` build-dependency: it must be exactly the
/// `wasm-bindgen` of Cargo.lock (the bindgen format is checked per version).
const BINDGEN_VERSION: &str = "0.2.130";

fn main() {
    if let Err(e) = run() {
        eprintln!(
            "\nerror: building the chat's Leptos front end (examples/chat-web) failed:\n{e}\n"
        );
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let started = Instant::now();
    let manifest_dir = PathBuf::from(var("CARGO_MANIFEST_DIR")?);
    let root = manifest_dir
        .parent()
        .ok_or("examples/ has no parent directory")?
        .to_path_buf();
    let out_dir = PathBuf::from(var("OUT_DIR")?);
    println!("cargo:rerun-if-changed=build.rs");
    for file in [root.join("Cargo.toml"), root.join("Cargo.lock")] {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        manifest_dir.join("chat-web").display()
    );

    check_bindgen_version(&root)?;
    check_wasm_target()?;

    let target_dir = outer_target_dir(&out_dir).join("chat-web");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["rustc", "--locked", "--package", PACKAGE, "--lib"])
        .args(["--target", WASM_TARGET, "--profile", PROFILE])
        .args(["--features", "hydrate", "--crate-type", "cdylib"])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // The outer build's settings are for its own target: clippy's wrapper, the host's
        // flags and target directory must not leak into the browser build.
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .current_dir(&root);
    let status = build
        .status()
        .map_err(|e| format!("could not start cargo for the nested build: {e}"))?;
    if !status.success() {
        return Err(format!(
            "`cargo rustc -p {PACKAGE} --target {WASM_TARGET} --profile {PROFILE} --features hydrate` \
             failed ({status}); its errors are above"
        ));
    }
    let artifacts = target_dir.join(WASM_TARGET).join(PROFILE);
    let wasm = artifacts.join(format!("{STEM}.wasm"));
    track_sources(&root, &artifacts.join(format!("{STEM}.d")))?;
    let compiled = started.elapsed();

    let pkg = out_dir.join("pkg");
    fs::create_dir_all(&pkg).map_err(|e| format!("creating {}: {e}", pkg.display()))?;
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&wasm)
        .web(true)
        .map_err(|e| format!("wasm-bindgen: {e:#}"))?
        .typescript(false)
        .remove_name_section(true)
        .remove_producers_section(true)
        .generate(&pkg)
        .map_err(|e| format!("wasm-bindgen on {}: {e:#}", wasm.display()))?;

    // A copy where tools can find it without knowing this build script's OUT_DIR.
    let shared = target_dir.join("pkg");
    fs::create_dir_all(&shared).map_err(|e| format!("creating {}: {e}", shared.display()))?;
    for file in [format!("{STEM}.js"), format!("{STEM}_bg.wasm")] {
        let tmp = shared.join(format!(".{file}.{}", std::process::id()));
        fs::copy(pkg.join(&file), &tmp).map_err(|e| format!("copying {file}: {e}"))?;
        fs::rename(&tmp, shared.join(&file)).map_err(|e| format!("renaming {file}: {e}"))?;
    }
    let info = format!(
        "nested cargo build {:.1} s, wasm-bindgen {:.1} s\n",
        compiled.as_secs_f64(),
        (started.elapsed() - compiled).as_secs_f64()
    );
    let _ = fs::write(shared.join("build.txt"), info);
    Ok(())
}

fn var(name: &str) -> Result<String, String> {
    env::var(name).map_err(|_| format!("cargo did not set {name}"))
}

/// The `wasm-bindgen` version in Cargo.lock must be the bindgen library's.
fn check_bindgen_version(root: &Path) -> Result<(), String> {
    let lock = fs::read_to_string(root.join("Cargo.lock"))
        .map_err(|e| format!("reading Cargo.lock: {e}"))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasm-bindgen\"" {
            let version = lines
                .next()
                .and_then(|l| l.strip_prefix("version = \""))
                .and_then(|l| l.strip_suffix('"'))
                .ok_or("Cargo.lock: no version after name = \"wasm-bindgen\"")?;
            if version != BINDGEN_VERSION {
                return Err(format!(
                    "Cargo.lock has wasm-bindgen {version}, the build-dependency \
                     wasm-bindgen-cli-support is {BINDGEN_VERSION}: set `wasm-bindgen-cli-support = \
                     \"={version}\"` in the root Cargo.toml and BINDGEN_VERSION in examples/build.rs"
                ));
            }
            return Ok(());
        }
    }
    Err("Cargo.lock has no wasm-bindgen package".to_owned())
}

/// The `wasm32-unknown-unknown` standard library must be installed for the toolchain cargo
/// runs this build with.
fn check_wasm_target() -> Result<(), String> {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("could not run rustc --print sysroot: {e}"))?;
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let lib = Path::new(&sysroot)
        .join("lib/rustlib")
        .join(WASM_TARGET)
        .join("lib");
    if out.status.success() && lib.is_dir() {
        return Ok(());
    }
    Err(format!(
        "the Rust target {WASM_TARGET} is not installed (no {}): run `cargo xtask setup` \
         (or `rustup target add {WASM_TARGET}`), then build again. The chat server embeds the \
         Leptos front end compiled for that target and is not built without it.",
        lib.display()
    ))
}

/// `<target>` of the outer build, from `OUT_DIR` = `<target>[/<triple>]/<profile>/build/<pkg>-<hash>/out`
/// (else a directory beside `OUT_DIR`).
fn outer_target_dir(out_dir: &Path) -> PathBuf {
    let triple = env::var("TARGET").unwrap_or_default();
    let from_layout = out_dir
        .ancestors()
        .find(|dir| dir.file_name().is_some_and(|n| n == "build"))
        .and_then(Path::parent) // <profile>
        .and_then(Path::parent) // <target> or <target>/<triple>
        .map(|dir| match dir.file_name() {
            Some(name) if !triple.is_empty() && name == triple.as_str() => {
                dir.parent().unwrap_or(dir).to_path_buf()
            }
            _ => dir.to_path_buf(),
        });
    from_layout.unwrap_or_else(|| out_dir.join("nested"))
}

/// `rerun-if-changed` for every workspace source file the bundle was built from (from the
/// nested build's dep-info, `target: dep dep ...`) and for the manifest of each of their crates.
fn track_sources(root: &Path, dep_info: &Path) -> Result<(), String> {
    let text = fs::read_to_string(dep_info)
        .map_err(|e| format!("reading the nested build's {}: {e}", dep_info.display()))?;
    let mut manifests = BTreeSet::new();
    for line in text.lines() {
        let Some((_, deps)) = line.split_once(": ") else {
            continue;
        };
        // Paths are separated by spaces; a space inside a path is written `\ `.
        let deps = deps.replace("\\ ", "\u{0}");
        for dep in deps.split(' ').filter(|d| !d.is_empty()) {
            let path = PathBuf::from(dep.replace('\u{0}', " "));
            if !path.starts_with(root) || path.components().any(|c| c.as_os_str() == "target") {
                continue;
            }
            println!("cargo:rerun-if-changed={}", path.display());
            if let Some(manifest) = path
                .ancestors()
                .map(|a| a.join("Cargo.toml"))
                .find(|m| m.is_file())
            {
                manifests.insert(manifest);
            }
        }
    }
    for manifest in manifests {
        println!("cargo:rerun-if-changed={}", manifest.display());
    }
    Ok(())
}
