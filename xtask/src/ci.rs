//! `cargo xtask ci` and `cargo xtask test`: the gate every change must pass.
//!
//! Steps run in order and stop at the first failure; each prints its name and wall time, and
//! a summary table closes the run (passed, failed, skipped, not run).

use std::env;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{self, Result};
use crate::{browser, docs, setup, tidy};

/// Packages that must build for `wasm32-unknown-unknown`, with the cargo arguments that select
/// their wasm-capable features. A package listed here that is not in the workspace fails CI.
pub(crate) const WASM_PACKAGES: &[(&str, &[&str])] = &[
    ("tidings-protocol", &[]),
    ("tidings-runtime", &["--features", "wasm"]),
    ("tidings-codec", &[]),
    ("tidings-presence", &["--no-default-features"]),
    (
        "tidings-ws",
        &["--no-default-features", "--features", "client"],
    ),
    (
        "tidings-sse",
        &["--no-default-features", "--features", "client"],
    ),
    (
        "tidings-webtransport",
        &["--no-default-features", "--features", "client"],
    ),
    ("tidings-leptos", &[]),
    // The chat's Leptos front end as the browser gets it (its release bundle is built by
    // examples/build.rs; this is the dev build, with Leptos's debug checks).
    ("tidings-chat-web", &["--features", "hydrate"]),
    (
        "tidings-rpc",
        &["--no-default-features", "--features", "client"],
    ),
];

const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// How long `cargo deny fetch db` may try to reach the advisory database.
const ADVISORY_FETCH_TIMEOUT: Duration = Duration::from_secs(180);

/// How one step ended.
enum Outcome {
    Passed,
    /// Passed with a note worth showing in the summary (e.g. nextest's own summary line).
    PassedWith(String),
    Skipped(String),
    Failed(String),
}

type StepFn<'a> = Box<dyn FnOnce() -> Result<Outcome> + 'a>;

/// A named, ordered list of steps run with timing and a closing summary.
struct Pipeline<'a> {
    title: &'static str,
    /// Run every step even after a failure (`--keep-going`), to see all problems at once.
    keep_going: bool,
    steps: Vec<(String, StepFn<'a>)>,
}

impl<'a> Pipeline<'a> {
    fn new(title: &'static str, keep_going: bool) -> Self {
        Self {
            title,
            keep_going,
            steps: Vec::new(),
        }
    }

    fn step(&mut self, name: impl Into<String>, f: impl FnOnce() -> Result<Outcome> + 'a) {
        self.steps.push((name.into(), Box::new(f)));
    }

    fn run(self) -> Result {
        let started = Instant::now();
        let total = self.steps.len();
        let mut rows: Vec<(String, String, Option<Duration>)> = Vec::new();
        let mut failures: Vec<(String, String)> = Vec::new();
        let mut skipped = Vec::new();
        for (index, (name, f)) in self.steps.into_iter().enumerate() {
            if !failures.is_empty() && !self.keep_going {
                rows.push((name, "not run".to_owned(), None));
                continue;
            }
            println!();
            println!("==> [{}/{total}] {name}", index + 1);
            flush();
            let t = Instant::now();
            let outcome = f().unwrap_or_else(Outcome::Failed);
            let took = t.elapsed();
            let status = match outcome {
                Outcome::Passed => {
                    println!("<== {name}: ok ({})", util::secs(took));
                    "ok".to_owned()
                }
                Outcome::PassedWith(note) => {
                    println!("<== {name}: ok ({}) {note}", util::secs(took));
                    format!("ok: {note}")
                }
                Outcome::Skipped(why) => {
                    println!("<== {name}: SKIPPED ({}): {why}", util::secs(took));
                    skipped.push(name.clone());
                    format!("SKIPPED: {why}")
                }
                Outcome::Failed(error) => {
                    println!("<== {name}: FAILED ({}): {error}", util::secs(took));
                    failures.push((name.clone(), error));
                    "FAILED".to_owned()
                }
            };
            rows.push((name, status, Some(took)));
            flush();
        }
        print_summary(self.title, &rows, started.elapsed());
        if !skipped.is_empty() {
            println!(
                "WARNING: skipped step(s): {} (reason in the table above)",
                skipped.join(", ")
            );
        }
        match failures.as_slice() {
            [] => {
                println!(
                    "{}: OK, every step passed ({})",
                    self.title,
                    util::secs(started.elapsed())
                );
                Ok(())
            }
            [(name, error)] if !self.keep_going => Err(format!(
                "{} FAILED at step `{name}`: {error}\n(the steps after it were not run; scroll up to the `==> {name}` line for its output)",
                self.title
            )),
            many => {
                let names: Vec<&str> = many.iter().map(|(name, _)| name.as_str()).collect();
                Err(format!(
                    "{} FAILED at {} step(s): {} (scroll up to their `==>` lines for their output)",
                    self.title,
                    many.len(),
                    names.join(", ")
                ))
            }
        }
    }
}

fn print_summary(title: &str, rows: &[(String, String, Option<Duration>)], total: Duration) {
    let name_w = rows.iter().map(|r| r.0.len()).max().unwrap_or(4).max(4);
    println!();
    println!("{title} summary");
    println!("{:<name_w$}  {:>8}  result", "step", "time");
    println!(
        "{}  {}  {}",
        "-".repeat(name_w),
        "-".repeat(8),
        "-".repeat(40)
    );
    for (name, status, took) in rows {
        let time = took.map(util::secs).unwrap_or_else(|| "-".to_owned());
        println!("{name:<name_w$}  {time:>8}  {status}");
    }
    println!("{}  {}", "-".repeat(name_w), "-".repeat(8));
    println!("{:<name_w$}  {:>8}", "total", util::secs(total));
}

fn flush() {
    let _ = std::io::stdout().flush();
}

/// Runs a cargo command in the workspace root; a failure fails the step.
fn cargo_step(root: &Path, args: &[&str]) -> Result<Outcome> {
    util::run(util::cargo().args(args).current_dir(root))?;
    Ok(Outcome::Passed)
}

/// `cargo xtask ci`.
pub(crate) fn ci(root: &Path, keep_going: bool) -> Result {
    let mut p = Pipeline::new("ci", keep_going);
    p.step("setup", || setup::run(root).map(|()| Outcome::Passed));
    p.step("fmt", || {
        let mut args = vec!["fmt", "--all", "--", "--check"];
        // rustfmt colours its diff even into a pipe; follow cargo's colour setting.
        let color = env::var("CARGO_TERM_COLOR").unwrap_or_default();
        if let Some(color) = ["never", "always"].into_iter().find(|c| *c == color) {
            args.extend(["--color", color]);
        }
        cargo_step(root, &args)
    });
    p.step("clippy", || {
        cargo_step(
            root,
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--locked",
                "--",
                "-D",
                "warnings",
            ],
        )
    });
    p.step("deny (bans licenses sources)", || {
        cargo_step(
            root,
            &["deny", "--locked", "check", "bans", "licenses", "sources"],
        )
    });
    p.step("deny (advisories)", || advisories(root));
    add_test_steps(&mut p, root);
    p.step("doc", || {
        let mut flags = env::var_os("RUSTDOCFLAGS").unwrap_or_default();
        if !flags.is_empty() {
            flags.push(" ");
        }
        flags.push("-D warnings");
        util::run(
            util::cargo()
                .args(["doc", "--workspace", "--no-deps", "--locked"])
                .env("RUSTDOCFLAGS", flags)
                .current_dir(root),
        )?;
        Ok(Outcome::Passed)
    });
    p.step("docs (guide, links)", || {
        docs::run(root).map(Outcome::PassedWith)
    });
    for &(package, extra) in WASM_PACKAGES {
        p.step(format!("wasm32: {package}"), move || {
            let mut args = vec![
                "build",
                "--locked",
                "--target",
                WASM_TARGET,
                "--package",
                package,
            ];
            args.extend_from_slice(extra);
            cargo_step(root, &args)
        });
    }
    p.step("test-browser", || {
        browser::run(root).map(Outcome::PassedWith)
    });
    for &target in FUZZ_TARGETS {
        p.step(
            format!("fuzz: {target} ({}s)", FUZZ_SECONDS.as_secs()),
            move || fuzz(root, target),
        );
    }
    p.step("tidy", || tidy::check(root).map(|()| Outcome::Passed));
    p.run()
}

/// cargo-fuzz targets in `fuzz/` (its own workspace), one per decoder, and the
/// JSON codec's payload validator against serde_json.
const FUZZ_TARGETS: &[&str] = &[
    "decode_json",
    "decode_binary",
    "view_binary",
    "validate_json",
];

/// How long `ci` fuzzes each target (libFuzzer's `-max_total_time`).
const FUZZ_SECONDS: Duration = Duration::from_secs(20);

/// `cargo fuzz run <target> -- -max_total_time=20` on the stable toolchain.
///
/// cargo-fuzz passes nightly-only flags (`-Zsanitizer=address`, sancov);
/// `RUSTC_BOOTSTRAP=1` lets this stable rustc accept them. The corpus grows in
/// `fuzz/corpus/<target>`; a crash fails the step and leaves its input in
/// `fuzz/artifacts/<target>/` (replay: `cargo fuzz run <target> <file>`).
fn fuzz(root: &Path, target: &str) -> Result<Outcome> {
    let max_time = format!("-max_total_time={}", FUZZ_SECONDS.as_secs());
    let mut cmd = util::cargo();
    cmd.args([
        "fuzz",
        "run",
        target,
        "--",
        &max_time,
        "-print_final_stats=1",
    ])
    .env("RUSTC_BOOTSTRAP", "1")
    .current_dir(root);
    println!("$ {}", util::display(&cmd));
    // libFuzzer prints a line per corpus change: keep the log short, show it all on failure.
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("could not start cargo fuzz: {e}"))?;
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = log.lines().collect();
    if !out.status.success() {
        println!("{log}");
        return Err(format!(
            "fuzz target {target} failed ({}); crash input under fuzz/artifacts/{target}/",
            out.status
        ));
    }
    let done = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("Done "))
        .copied()
        .unwrap_or("done");
    for l in lines.iter().filter(|l| {
        l.starts_with("stat::number_of_executed_units") || l.starts_with("stat::peak_rss_mb")
    }) {
        println!("{l}");
    }
    Ok(Outcome::PassedWith(done.to_string()))
}

/// `cargo xtask test`: setup, nextest and doctests only.
pub(crate) fn test(root: &Path, keep_going: bool) -> Result {
    let mut p = Pipeline::new("test", keep_going);
    p.step("setup", || setup::run(root).map(|()| Outcome::Passed));
    add_test_steps(&mut p, root);
    p.run()
}

/// The environment every test run gets: peers and the shared services
/// (PostgreSQL, Redis, NATS) are required, and where `setup` put the peers.
fn test_env(root: &Path) -> [(&'static str, OsString); 3] {
    [
        ("TIDINGS_REQUIRE_PEERS", "1".into()),
        ("TIDINGS_REQUIRE_SERVICES", "1".into()),
        ("TIDINGS_PEERS_DIR", util::peers_dir(root).into_os_string()),
    ]
}

fn add_test_steps<'a>(p: &mut Pipeline<'a>, root: &'a Path) {
    p.step("nextest", move || {
        let mut cmd = util::cargo();
        cmd.args([
            "nextest",
            "run",
            "--workspace",
            "--locked",
            "--no-fail-fast",
        ])
        .envs(test_env(root))
        .current_dir(root);
        let summary = run_keeping_summary(&mut cmd)?;
        Ok(match summary {
            Some(line) => Outcome::PassedWith(line),
            None => Outcome::Passed,
        })
    });
    p.step("doctests", move || {
        util::run(
            util::cargo()
                .args(["test", "--doc", "--workspace", "--locked"])
                .envs(test_env(root))
                .current_dir(root),
        )?;
        Ok(Outcome::Passed)
    });
}

/// Runs nextest, streaming its stderr through while keeping its closing `Summary` line.
fn run_keeping_summary(cmd: &mut Command) -> Result<Option<String>> {
    let line = util::display(cmd);
    println!("$ {line}");
    flush();
    let mut child = cmd
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start `{line}`: {e}"))?;
    let stderr = child.stderr.take();
    let echo = thread::spawn(move || {
        let mut summary = None;
        if let Some(stderr) = stderr {
            let mut err = std::io::stderr();
            for l in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                let _ = writeln!(err, "{l}");
                let trimmed = l.trim();
                if trimmed.starts_with("Summary [") {
                    summary = Some(trimmed.split_whitespace().collect::<Vec<_>>().join(" "));
                }
            }
        }
        summary
    });
    let status = child
        .wait()
        .map_err(|e| format!("waiting for `{line}`: {e}"))?;
    let summary = echo.join().ok().flatten();
    if status.success() {
        Ok(summary)
    } else {
        Err(format!(
            "`{line}` failed ({status}){}",
            summary.map(|s| format!(": {s}")).unwrap_or_default()
        ))
    }
}

/// `cargo deny check advisories`, only when the advisory database can be fetched.
///
/// The RustSec database is a GitHub repository; where GitHub cannot be reached the check is
/// skipped loudly (never silently) with cargo-deny's exact error.
fn advisories(root: &Path) -> Result<Outcome> {
    let mut fetch = util::cargo();
    fetch.args(["deny", "fetch", "db"]).current_dir(root);
    println!("$ {}", util::display(&fetch));
    let out = util::capture(&mut fetch, ADVISORY_FETCH_TIMEOUT)?;
    if !out.success() {
        let error = match out.status {
            None => format!(
                "`cargo deny fetch db` did not finish within {}s",
                ADVISORY_FETCH_TIMEOUT.as_secs()
            ),
            Some(status) => {
                let text = if out.stderr.trim().is_empty() {
                    out.stdout.trim()
                } else {
                    out.stderr.trim()
                };
                if text.is_empty() {
                    format!("`cargo deny fetch db` failed ({status}) and printed nothing")
                } else {
                    text.to_owned()
                }
            }
        };
        let banner = "!".repeat(78);
        println!("{banner}");
        let mut lines = error.lines();
        println!("SKIPPED advisories: {}", lines.next().unwrap_or_default());
        for l in lines {
            println!("    {l}");
        }
        println!("{banner}");
        let reason = error
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("advisory database could not be fetched")
            .trim()
            .to_owned();
        return Ok(Outcome::Skipped(format!(
            "advisory database could not be fetched ({reason})"
        )));
    }
    cargo_step(root, &["deny", "--locked", "check", "advisories"])
}
