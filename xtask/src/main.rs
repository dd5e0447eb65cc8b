//! `cargo xtask`: the project's own automation — setup, ci, test, test-browser, docs, tidy, bench, load.
//!
//! Plain Rust with no dependencies, driving cargo, rustup, python and npm through
//! `std::process::Command`. Run `cargo xtask help` for the list of subcommands.

mod bench;
mod browser;
mod bundle;
mod ci;
mod docs;
mod json;
mod layers;
mod load;
mod setup;
mod tidy;
mod util;

use std::process::ExitCode;

const USAGE: &str = "\
Usage: cargo xtask <COMMAND> [ARGS]

Commands:
  setup   Install what the tests need, idempotently: the wasm32-unknown-unknown target,
          cargo-deny, cargo-nextest, cargo-fuzz, wasm-bindgen-cli (the version of the
          wasm-bindgen crate in Cargo.lock), the Python peers venv (<peers>/venv, from
          tests/peers/python/requirements.txt), the Node peers with playwright-core
          (<peers>/node, npm ci of tests/peers/node/package-lock.json) and Debian's chromium
          (apt-get, unless /usr/bin/chromium exists), mdbook (cargo install mdbook --locked
          --no-default-features, unless mdbook 0.5 is on PATH). <peers> is $TIDINGS_PEERS_DIR,
          else <workspace>/target/peers.
  ci      setup, then in order, stopping at the first failure: cargo fmt --check, clippy
          (-D warnings), cargo deny (bans licenses sources; advisories when the database can
          be fetched, else a loud SKIPPED line), nextest (TIDINGS_REQUIRE_PEERS=1), doctests,
          cargo doc (-D warnings), docs (the guide), wasm32 builds, test-browser, cargo-fuzz (20 s per decoder
          target in fuzz/, RUSTC_BOOTSTRAP=1 on stable), tidy. Ends with a summary table.
          --keep-going: run every step even after a failure (still exits non-zero).
  test    setup, nextest and doctests only (same environment as ci; --keep-going too).
  test-browser
          The Rust wasm clients in headless Chromium (tests/browser): builds the wasm test
          module (bound by wasm-bindgen into <target>/browser/pkg) and the browser-server, then
          tests/browser/driver/main.mjs drives /usr/bin/chromium with playwright-core: WebSocket
          round trips (JSON, binary codec), SSE, offline and back, server restart, two contexts
          in one room, an oversized frame, console errors; and the chat example's Leptos front
          end served by the `chat` binary (SSR + hydration without mismatch, two contexts in
          one room, unmount closes the WebSocket). Prints each scenario with the
          Chromium version; screenshots in <target>/browser/out. Fails when Chromium cannot
          start or a known client bug shows again (TIDINGS_BROWSER_STRICT=0: report only).
  docs    The guide (docs/guide, mdBook): checks that every {{#include}} names an existing
          file and anchor (docs/guide/samples, a workspace crate, so every sample compiles),
          builds it into <target>/guide and checks every internal link and anchor of the
          rendered HTML (zero broken, or it fails).
  tidy    Source rules: no todo!/unimplemented!/dbg! in library code, no print macros in
          libraries, every .rs file starts with `//!`, every crate has README.md and a
          description; crate dependencies point down the layers (xtask/src/layers.rs), no
          tokio in tidings-protocol, and docs/architecture.md's crate graph matches the
          manifests. --fix: rewrite that graph first.
  bench   cargo bench -p tidings-benches [ARGS], then a report (mean, median, ratio to
          `tokio-tungstenite`, throughput, and the chat front end's wasm bundle raw and
          gzipped) printed and written to <target>/bench-report.md.
          --report-only: skip running, report the results already in <target>/criterion.
  load    Load test on loopback, server and generator in separate processes (release build of
          benches/src/bin/tidings-load): tidings, its WsServer alone (raw_echo), raw
          tokio-tungstenite and fastwebsockets at N connections (default 10,000): closed-loop
          and paced echo (p50/p99/p99.9, msg/s), server KiB per idle/busy connection, CPU s
          per 1M messages, fan-out 1 -> N, a run with the real tidings Client, and a leak
          check (100,000 connect/disconnect cycles). Appends a Load section to
          <target>/bench-report.md. --conns N, --secs S (measured echo window, default 10),
          --quick (500 connections, 3 s, 10,000 cycles: < 1 min), --leak-cycles N,
          --real-conns N, --rounds N (interleaved runs per server, the least disturbed by
          other processes is reported; default 2, 1 with --quick), --only tidings,tidings-ws-raw,tokio-tungstenite,fastwebsockets,
          client,leak,profile,backends (publish -> deliver through memory and Redis at
          TIDINGS_REDIS_URL, msg/s and p50/p99: tidings-test-node's tidings-backend-load), --profile (the tidings server under perf record too; writes
          <target>/load-profile.txt), --report-only (render <target>/load-results.txt again).
  help    This text.

Environment:
  TIDINGS_PEERS_DIR      where setup installs the peers and tests find them
  TIDINGS_REQUIRE_PEERS  set to 1 by ci/test: tests must fail, not skip, without peers
  TIDINGS_REQUIRE_SERVICES set to 1 by ci/test: backend tests must fail, not skip, without
                         PostgreSQL / Redis / NATS (TIDINGS_POSTGRES_URL, _REDIS_URL, _NATS_URL)
  CARGO_TARGET_DIR       respected by bench and load (criterion results, bench-report.md)
                         and test-browser (<target>/browser)
  TIDINGS_BROWSER_STRICT set to 0: test-browser reports known client bugs without failing
";

/// `ci` and `test` take one optional flag, `--keep-going`.
fn keep_going(args: &[String]) -> util::Result<bool> {
    match args {
        [] => Ok(false),
        [flag] if flag == "--keep-going" => Ok(true),
        _ => Err(format!(
            "unexpected arguments {args:?} (only `--keep-going` is accepted)"
        )),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = util::workspace_root();
    let rest = args.get(1..).unwrap_or_default();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup::run(&root),
        Some("ci") => keep_going(rest).and_then(|k| ci::ci(&root, k)),
        Some("test") => keep_going(rest).and_then(|k| ci::test(&root, k)),
        Some("tidy") => tidy::run(&root, rest),
        Some("docs") if rest.is_empty() => docs::run(&root).map(|_| ()),
        Some("docs") => Err(format!("docs takes no arguments, got {rest:?}")),
        Some("test-browser") if rest.is_empty() => browser::run(&root).map(|result| {
            println!("test-browser: {result}");
        }),
        Some("test-browser") => Err(format!("test-browser takes no arguments, got {rest:?}")),
        Some("bench") => bench::run(&root, rest),
        Some("load") => load::run(&root, rest),
        Some("help" | "-h" | "--help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("xtask: unknown command `{other}`\n");
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
        None => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("\nxtask: error: {error}");
            ExitCode::FAILURE
        }
    }
}
