//! `tidings new` output builds and runs: scaffold a project against this workspace, `cargo build` it on the shared target directory (copied Cargo.lock, so little is rebuilt), start it, fetch its page and publish to it with `tidings send`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use common::run;

/// The workspace root (two levels above this crate).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/tidings-cli sits two levels below the workspace")
        .to_path_buf()
}

/// The target directory the tests were built in (`<target>/debug/tidings` → `<target>`), so the
/// scaffolded project reuses every dependency already compiled there.
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_tidings"))
        .ancestors()
        .nth(2)
        .expect("the binary is in <target>/<profile>/")
        .to_path_buf()
}

#[test]
fn a_new_app_builds_runs_and_serves_tidings() {
    let dir = std::env::temp_dir().join(format!("tidings-new-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let project = dir.join("demo-app");
    let (status, out, err) = run(&[
        "new",
        "demo-app",
        "--dir",
        project.to_str().unwrap(),
        "--tidings-path",
        workspace().to_str().unwrap(),
    ]);
    assert!(status.success(), "{out} {err}");
    assert!(out.contains("created demo-app"), "{out}");
    for file in [
        "Cargo.toml",
        "Cargo.lock",
        "src/main.rs",
        "src/page.rs",
        "src/app.js",
        "README.md",
    ] {
        assert!(project.join(file).is_file(), "{file} missing");
    }

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let started = Instant::now();
    let build = Command::new(&cargo)
        .args(["build", "--offline", "--quiet"])
        .env("CARGO_TARGET_DIR", target_dir())
        .current_dir(&project)
        .status()
        .expect("cargo starts");
    assert!(build.success(), "the scaffolded project does not build");
    // The cost of the check, for the CI budget (printed, not asserted).
    println!(
        "scaffolded project built in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let mut app = Command::new(target_dir().join("debug/demo-app"))
        .env("ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the app starts");
    let mut first = String::new();
    BufReader::new(app.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();

    // The Leptos page, rendered by the server.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let page = rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(
            format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).await.unwrap();
        body
    });
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("<h1>demo-app</h1>"), "{page}");
    assert!(page.contains("/app.js"), "{page}");

    // Its tidings endpoint, through the CLI.
    let ws = format!("ws://{addr}/ws");
    let (status, out, err) = run(&["send", &ws, "room:lobby", r#"{"text":"hi"}"#]);
    let _ = app.kill();
    let _ = app.wait();
    assert!(status.success(), "{out} {err}");
    let _ = std::fs::remove_dir_all(&dir);
}
