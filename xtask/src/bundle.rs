//! The chat front end's browser bundle (examples/chat-web, built by examples/build.rs) for `cargo xtask bench`'s report: its files raw and gzipped.
//!
//! Gzip is the system's `gzip -9 -n` (Debian's essential `gzip` package), not a crate: xtask has
//! no dependencies on purpose, and no deflate crate is in the workspace's lock file. `-9` is what
//! a server precompressing static files uses; `-n` leaves out the name and time stamp, so the
//! figure depends on the bytes only.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::util::{self, Result};

/// The package whose build script makes the bundle.
const PACKAGE: &str = "tidings-examples";
/// The bundle's files under `<target>/chat-web/pkg`: the JavaScript bindings and the module.
const FILES: [&str; 2] = ["tidings_chat_web.js", "tidings_chat_web_bg.wasm"];

/// One file of the bundle.
struct Sized {
    name: &'static str,
    raw: u64,
    gzip: u64,
}

/// Builds the bundle if needed (a no-op when it is up to date) and renders its section of the
/// report: the plain-text table and the markdown.
pub(crate) fn report(root: &Path) -> Result<(String, String)> {
    util::run(
        util::cargo()
            .args(["build", "--locked", "--package", PACKAGE, "--lib"])
            .current_dir(root),
    )?;
    let pkg = util::target_dir(root).join("chat-web").join("pkg");
    let mut files = Vec::new();
    for name in FILES {
        let path = pkg.join(name);
        let raw = fs::metadata(&path)
            .map_err(|e| format!("{}: {e} (built by examples/build.rs)", path.display()))?
            .len();
        files.push(Sized {
            name,
            raw,
            gzip: gzip_len(&path)?,
        });
    }
    let built = fs::read_to_string(pkg.join("build.txt")).unwrap_or_default();
    Ok(render(&files, built.trim()))
}

/// The size of `path` compressed with `gzip -9 -n`.
fn gzip_len(path: &Path) -> Result<u64> {
    let out = Command::new("gzip")
        .args(["-9", "-n", "-c"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("could not run gzip (Debian package `gzip`): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "gzip -9 -n -c {} failed ({}): {}",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out.stdout.len() as u64)
}

fn kib(bytes: u64) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

fn render(files: &[Sized], built: &str) -> (String, String) {
    let total_raw: u64 = files.iter().map(|f| f.raw).sum();
    let total_gzip: u64 = files.iter().map(|f| f.gzip).sum();
    let mut text = String::new();
    let mut md = String::new();
    let _ = writeln!(
        text,
        "\nchat front end bundle (Leptos 0.8, wasm32, profile wasm-release)"
    );
    let _ = writeln!(text, "{:<28}  {:>11}  {:>11}", "file", "raw", "gzip -9");
    for f in files {
        let _ = writeln!(
            text,
            "{:<28}  {:>11}  {:>11}",
            f.name,
            kib(f.raw),
            kib(f.gzip)
        );
    }
    let _ = writeln!(
        text,
        "{:<28}  {:>11}  {:>11}",
        "total",
        kib(total_raw),
        kib(total_gzip)
    );
    let _ = writeln!(md, "\n## Chat front end bundle\n");
    let _ = writeln!(
        md,
        "The Leptos 0.8 front end of the chat example (`examples/chat-web`, `hydrate`), built \
         by `examples/build.rs` for `wasm32-unknown-unknown` with profile `wasm-release` \
         (`opt-level = \"z\"`, fat LTO, one codegen unit) and bound by wasm-bindgen \
         (`--target web`); gzip is `gzip -9 -n`.\n"
    );
    let _ = writeln!(md, "| file | raw | gzip -9 |");
    let _ = writeln!(md, "|---|---:|---:|");
    for f in files {
        let _ = writeln!(
            md,
            "| `{}` | {} ({} B) | {} ({} B) |",
            f.name,
            kib(f.raw),
            f.raw,
            kib(f.gzip),
            f.gzip
        );
    }
    let _ = writeln!(
        md,
        "| **total** | {} ({total_raw} B) | **{}** ({total_gzip} B) |",
        kib(total_raw),
        kib(total_gzip)
    );
    if !built.is_empty() {
        let _ = writeln!(md, "\nLast run of `examples/build.rs`: {built}.");
    }
    (text, md)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_and_rows() {
        let files = [
            Sized {
                name: "a.js",
                raw: 2048,
                gzip: 1024,
            },
            Sized {
                name: "a_bg.wasm",
                raw: 10240,
                gzip: 4096,
            },
        ];
        let (text, md) = render(&files, "nested cargo build 1.0 s");
        assert!(text.contains("12.0 KiB"), "{text}");
        assert!(
            md.contains("| **total** | 12.0 KiB (12288 B) | **5.0 KiB** (5120 B) |"),
            "{md}"
        );
        assert!(
            md.contains("| `a.js` | 2.0 KiB (2048 B) | 1.0 KiB (1024 B) |"),
            "{md}"
        );
    }
}
