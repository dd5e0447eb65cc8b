//! `cargo xtask`: the project's own automation — setup, ci, test, tidy, bench.
//!
//! Plain Rust with no dependencies, driving cargo, rustup, python and npm through
//! `std::process::Command`. Run `cargo xtask help` for the list of subcommands.

mod bench;
mod ci;
mod json;
mod setup;
mod tidy;
mod util;

use std::process::ExitCode;

const USAGE: &str = "\
Usage: cargo xtask <COMMAND> [ARGS]

Commands:
  setup   Install what the tests need, idempotently: the wasm32-unknown-unknown target,
          cargo-deny, cargo-nextest, the Python peers venv (<peers>/venv, from
          tests/peers/python/requirements.txt) and the Node peers (<peers>/node, npm ci of
          tests/peers/node/package-lock.json). <peers> is $TIDINGS_PEERS_DIR, else
          <workspace>/target/peers.
  ci      setup, then in order, stopping at the first failure: cargo fmt --check, clippy
          (-D warnings), cargo deny (bans licenses sources; advisories when the database can
          be fetched, else a loud SKIPPED line), nextest (TIDINGS_REQUIRE_PEERS=1), doctests,
          cargo doc (-D warnings), wasm32 builds, tidy. Ends with a summary table.
          --keep-going: run every step even after a failure (still exits non-zero).
  test    setup, nextest and doctests only (same environment as ci; --keep-going too).
  tidy    Source rules: no todo!/unimplemented!/dbg! in library code, no print macros in
          libraries, every .rs file starts with `//!`, every crate has README.md and a
          description.
  bench   cargo bench -p tidings-benches [ARGS], then a report (mean, median, ratio to
          `tokio-tungstenite`, throughput) printed and written to <target>/bench-report.md.
          --report-only: skip running, report the results already in <target>/criterion.
  help    This text.

Environment:
  TIDINGS_PEERS_DIR      where setup installs the peers and tests find them
  TIDINGS_REQUIRE_PEERS  set to 1 by ci/test: tests must fail, not skip, without peers
  CARGO_TARGET_DIR       respected by bench (criterion results, bench-report.md)
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
        Some("tidy") => tidy::run(&root),
        Some("bench") => bench::run(&root, rest),
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
