//! `cargo xtask load`: the server under test and a load generator as separate processes on loopback, for tidings, its WebSocket server alone (`raw_echo`) and the two baselines (raw tokio-tungstenite, fastwebsockets), one run, one report.
//!
//! Builds `tidings-load` (benches/src/bin/tidings-load) in release mode, then for each
//! server kind starts `tidings-load server` and `tidings-load gen` against it, reads the
//! generator's `RESULT {json}` line, and finally adds runs with the real
//! `tidings_ws::Client` and, beside it at the same count, the real
//! `tidings_webtransport::Client` against the tidings hub over WebTransport (fewer
//! connections; echo and fan-out), and the leak check (`tidings-load leak`:
//! connect/disconnect cycles against a tidings server with a short resume window). The
//! "Load" section goes to the end of `<target>/bench-report.md` (replacing the one of an
//! earlier load run; `cargo xtask bench` rewrites the file without it). The raw results
//! are kept in `<target>/load-results.txt`.
//!
//! The tidings server also serves `GET /metrics` (`tidings_axum::Metrics`, counters
//! only); after each tidings run the server is scraped over HTTP and the scraped counts
//! go beside the generator's own (publishes sent, messages received, connections set up)
//! in the report.
//!
//! `--profile` also runs the tidings server under `perf record` during a closed-loop
//! echo run and writes `perf report` to `<target>/load-profile.txt`.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write as _};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::json::{self, Value};
use crate::util::{self, Result};

/// The server kinds, in the order of the report's columns.
const KINDS: [&str; 4] = [
    "tidings",
    "tidings-ws-raw",
    "tokio-tungstenite",
    "fastwebsockets",
];

/// Marks the start of the load section in bench-report.md.
const MARKER: &str = "<!-- cargo xtask load -->";

/// What one `cargo xtask load` does.
#[derive(Clone, Debug)]
struct Plan {
    quick: bool,
    conns: u64,
    secs: f64,
    warmup: f64,
    paced_secs: f64,
    settle: f64,
    fanout_rounds: u64,
    real_conns: u64,
    leak_cycles: u64,
    leak_parallel: u64,
    leak_rounds: u64,
    /// Interleaved runs of every server kind; the least disturbed one is reported.
    rounds: u64,
    resume_ms: u64,
    only: Vec<String>,
    profile: bool,
}

impl Plan {
    fn parse(args: &[String]) -> Result<Self> {
        let quick = args.iter().any(|a| a == "--quick");
        let mut plan = if quick {
            Plan {
                quick,
                conns: 500,
                secs: 3.0,
                warmup: 1.0,
                paced_secs: 2.0,
                settle: 1.0,
                fanout_rounds: 3,
                real_conns: 50,
                leak_cycles: 10_000,
                leak_parallel: 16,
                leak_rounds: 4,
                rounds: 1,
                resume_ms: 1_000,
                only: Vec::new(),
                profile: false,
            }
        } else {
            Plan {
                quick,
                conns: 10_000,
                secs: 10.0,
                warmup: 2.0,
                paced_secs: 5.0,
                settle: 2.0,
                fanout_rounds: 5,
                real_conns: 200,
                leak_cycles: 100_000,
                leak_parallel: 32,
                leak_rounds: 5,
                rounds: 5,
                resume_ms: 1_000,
                only: Vec::new(),
                profile: false,
            }
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            let number = |name: &str, v: String| {
                v.parse::<f64>()
                    .ok()
                    .filter(|n| *n > 0.0)
                    .ok_or_else(|| format!("{name}: expected a positive number, got `{v}`"))
            };
            match arg.as_str() {
                "--quick" => {}
                "--profile" => plan.profile = true,
                "--conns" => plan.conns = number(arg, value(arg)?)? as u64,
                "--secs" => plan.secs = number(arg, value(arg)?)?,
                "--leak-cycles" => plan.leak_cycles = number(arg, value(arg)?)? as u64,
                "--real-conns" => plan.real_conns = number(arg, value(arg)?)? as u64,
                "--rounds" => plan.rounds = number(arg, value(arg)?)? as u64,
                "--only" => {
                    plan.only = value(arg)?.split(',').map(str::to_owned).collect();
                    if let Some(bad) = plan.only.iter().find(|k| {
                        !KINDS.contains(&k.as_str())
                            && !["client", "webtransport", "leak", "profile", "backends"]
                                .contains(&k.as_str())
                    }) {
                        return Err(format!(
                            "--only: unknown `{bad}` (tidings, tidings-ws-raw, tokio-tungstenite, fastwebsockets, client, webtransport, leak, profile, backends)"
                        ));
                    }
                }
                other => return Err(format!("unexpected argument `{other}`")),
            }
        }
        plan.profile |= plan.only.iter().any(|k| k == "profile");
        Ok(plan)
    }

    fn runs(&self, what: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|k| k == what)
    }
}

/// `cargo xtask load [--conns N] [--secs S] [--quick] [--profile] [--only K,...]`.
pub(crate) fn run(root: &Path, args: &[String]) -> Result {
    let target = util::target_dir(root);
    if args.iter().any(|a| a == "--report-only") {
        return report(&target);
    }
    let plan = Plan::parse(args)?;
    if plan.runs("backends") {
        run_backends(root, &target, &plan)?;
        if plan.only.iter().all(|k| k == "backends") {
            // Only the backends: put their table into the last full run's report.
            return match report(&target) {
                Ok(()) => Ok(()),
                Err(_) => Ok(()), // no full run yet: the table was printed
            };
        }
    }
    let started = Instant::now();
    let machine = machine_notes(plan.conns);
    for line in &machine {
        println!("load: {line}");
    }
    util::run(
        util::cargo()
            .args([
                "build",
                "--release",
                "--package",
                "tidings-benches",
                "--bin",
                "tidings-load",
            ])
            .current_dir(root),
    )?;
    let bin = target.join("release").join("tidings-load");
    let built = started.elapsed();
    let started = Instant::now();
    let mut results = Results::default();
    let mut raw_lines = String::new();

    // Other processes on this shared machine come and go: run every kind `rounds` times,
    // interleaved; the report shows the round with the median tidings ÷ tokio-tungstenite
    // throughput ratio and judges the targets on the medians of same-round ratios.
    for round in 1..=plan.rounds {
        for kind in KINDS {
            if !plan.runs(kind) {
                continue;
            }
            println!(
                "\nload: {kind}, {} connections (round {round} of {})",
                plan.conns, plan.rounds
            );
            let result = run_gen(&bin, kind, &[], &plan, &gen_args(&plan, plan.conns, false))?;
            let _ = writeln!(raw_lines, "{kind} round={round} {}", result.1);
            results.kinds.push((kind.to_owned(), result.0));
        }
    }
    if plan.runs("client") {
        println!(
            "\nload: tidings with the real tidings_ws::Client, {} connections",
            plan.real_conns
        );
        let result = run_gen(
            &bin,
            "tidings",
            &[],
            &plan,
            &gen_args(&plan, plan.real_conns, true),
        )?;
        let _ = writeln!(raw_lines, "tidings+Client {}", result.1);
        results.client = Some(result.0);
    }
    if plan.runs("webtransport") {
        println!(
            "\nload: tidings over WebTransport with the real tidings_webtransport::Client, {} connections",
            plan.real_conns
        );
        let result = run_gen(
            &bin,
            "tidings-wt",
            &[],
            &plan,
            &gen_args(&plan, plan.real_conns, true),
        )?;
        let _ = writeln!(raw_lines, "tidings-wt+Client {}", result.1);
        results.webtransport = Some(result.0);
    }
    if plan.runs("leak") {
        println!(
            "\nload: leak check, {} connect/disconnect cycles",
            plan.leak_cycles
        );
        let result = run_leak(&bin, &plan)?;
        let _ = writeln!(raw_lines, "leak {}", result.1);
        results.leak = Some(result.0);
    }
    let mut profile_note = None;
    if plan.profile {
        println!("\nload: profile of the tidings server (perf record)");
        profile_note = Some(run_profile(&bin, &plan, &target)?);
    }

    if results.kinds.is_empty()
        && results.client.is_none()
        && results.webtransport.is_none()
        && results.leak.is_none()
    {
        // A profile-only run: keep the report of the last full run.
        if let Some(note) = &profile_note {
            println!("{note}");
        }
        return Ok(());
    }
    println!(
        "load: build {}, runs {}",
        util::secs(built),
        util::secs(started.elapsed())
    );
    let mut header = format!(
        "# quick={} rounds={} took={:.1}\n",
        u8::from(plan.quick),
        plan.rounds,
        started.elapsed().as_secs_f64()
    );
    for line in &machine {
        let _ = writeln!(header, "# machine {line}");
    }
    fs::create_dir_all(&target).map_err(|e| format!("creating {}: {e}", target.display()))?;
    let raw = target.join("load-results.txt");
    fs::write(&raw, format!("{header}{raw_lines}"))
        .map_err(|e| format!("writing {}: {e}", raw.display()))?;
    report(&target)?;
    if let Some(note) = &profile_note {
        println!("{note}");
    }
    Ok(())
}

/// The backends' table of the last `--only backends` (or full) run.
const BACKENDS_FILE: &str = "load-backends.md";

/// Publish → deliver through each broker (memory, Redis at
/// `TIDINGS_REDIS_URL`, PostgreSQL at `TIDINGS_POSTGRES_URL`, NATS at
/// `TIDINGS_NATS_URL`) in one run: the `tidings-backend-load` binary of
/// `tidings-test-node`; its table goes to `<target>/load-backends.md` and the report.
fn run_backends(root: &Path, target: &Path, plan: &Plan) -> Result {
    util::run(
        util::cargo()
            .args([
                "build",
                "--release",
                "--package",
                "tidings-test-node",
                "--bin",
                "tidings-backend-load",
            ])
            .current_dir(root),
    )?;
    let bin = target.join("release").join("tidings-backend-load");
    let messages = if plan.quick { "20000" } else { "100000" };
    println!("\nload: backends, publish → deliver, {messages} messages each");
    let out = std::process::Command::new(&bin)
        .args(["--messages", messages, "--publishers", "16"])
        .output()
        .map_err(|e| format!("running {}: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(format!(
            "tidings-backend-load failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{table}");
    let section = format!(
        "### Backends: publish → deliver\n\nOne subscriber, 16 publishers awaiting each publish (durable brokers: under idempotency keys, as the hub's client publishes), 32-byte messages, same run.\n\n{table}"
    );
    fs::write(target.join(BACKENDS_FILE), section)
        .map_err(|e| format!("writing {BACKENDS_FILE}: {e}"))?;
    Ok(())
}

/// Renders `<target>/load-results.txt` (written by a run) into the load section of
/// `<target>/bench-report.md`, and prints it.
fn report(target: &Path) -> Result {
    let raw = target.join("load-results.txt");
    let text = fs::read_to_string(&raw).map_err(|e| format!("reading {}: {e}", raw.display()))?;
    let (meta, results) = parse_results(&text)?;
    let (plain, markdown) = render(&meta, &results);
    print!("\n{plain}");
    let markdown = match fs::read_to_string(target.join(BACKENDS_FILE)) {
        Ok(table) => format!("{markdown}\n\n{table}"),
        Err(_) => markdown,
    };
    let report = target.join("bench-report.md");
    let existing = fs::read_to_string(&report).unwrap_or_default();
    let kept = match existing.find(MARKER) {
        Some(at) => existing[..at].trim_end().to_owned(),
        None => existing.trim_end().to_owned(),
    };
    let combined = if kept.is_empty() {
        format!("# Benchmark report\n\n{markdown}")
    } else {
        format!("{kept}\n\n{markdown}")
    };
    fs::write(&report, combined).map_err(|e| format!("writing {}: {e}", report.display()))?;
    println!(
        "load: report written to {} (raw results: {})",
        report.display(),
        raw.display()
    );
    Ok(())
}

/// How the results were produced.
#[derive(Default)]
struct Meta {
    quick: bool,
    rounds: u64,
    /// The round (0-based) whose figures the table shows: the one with the median
    /// tidings ÷ tokio-tungstenite throughput ratio, when both ran.
    shown_round: Option<usize>,
    took_secs: f64,
    machine: Vec<String>,
}

/// Reads load-results.txt: `# ...` header lines, then `<kind> round=<n> {json}`,
/// `tidings+Client {json}` and `leak {json}`. Of several rounds, the one with the median
/// tidings ÷ tokio-tungstenite throughput ratio is kept for every kind (without that pair:
/// each kind's run least disturbed by other processes).
fn parse_results(text: &str) -> Result<(Meta, Results)> {
    let mut meta = Meta {
        rounds: 1,
        ..Meta::default()
    };
    let mut results = Results::default();
    let mut runs: Vec<(String, Vec<Value>)> = Vec::new();
    for line in text.lines() {
        if let Some(machine) = line.strip_prefix("# machine ") {
            meta.machine.push(machine.to_owned());
            continue;
        }
        if let Some(header) = line.strip_prefix("# ") {
            for field in header.split_whitespace() {
                match field.split_once('=') {
                    Some(("quick", v)) => meta.quick = v == "1",
                    Some(("rounds", v)) => meta.rounds = v.parse().unwrap_or(1),
                    Some(("took", v)) => meta.took_secs = v.parse().unwrap_or(0.0),
                    _ => {}
                }
            }
            continue;
        }
        let Some((name, rest)) = line.split_once(' ') else {
            continue;
        };
        let json_text = rest
            .split_once(' ')
            .filter(|(round, _)| round.starts_with("round="))
            .map_or(rest, |(_, json)| json);
        let value = json::parse(json_text)?;
        match name {
            "tidings+Client" => results.client = Some(value),
            "tidings-wt+Client" => results.webtransport = Some(value),
            "leak" => results.leak = Some(value),
            kind => match runs.iter_mut().find(|(k, _)| k == kind) {
                Some((_, list)) => list.push(value),
                None => runs.push((kind.to_owned(), vec![value])),
            },
        }
    }
    results.rounds = runs.clone();
    meta.shown_round = median_round(&results);
    for (kind, list) in runs {
        if let Some(run) = meta.shown_round.and_then(|r| list.get(r)) {
            results.kinds.push((kind, run.clone()));
            continue;
        }
        // Closed-loop figures (and memory, fan-out) from the run whose closed-loop window
        // was least disturbed; paced figures from the run whose paced window was.
        let least = |key: &str| {
            list.iter()
                .min_by(|a, b| {
                    let d = |v: &Value| num(v, key).unwrap_or(0.0);
                    d(a).total_cmp(&d(b))
                })
                .cloned()
        };
        let (Some(Value::Object(mut best)), Some(paced)) =
            (least("other_cpu_share"), least("paced_other_cpu_share"))
        else {
            continue;
        };
        if let Value::Object(paced) = paced {
            best.retain(|(k, _)| !k.starts_with("paced_"));
            best.extend(paced.into_iter().filter(|(k, _)| k.starts_with("paced_")));
        }
        results.kinds.push((kind, Value::Object(best)));
    }
    Ok((meta, results))
}

/// Kernel and process limits that bound the run, for the log and the report.
fn machine_notes(conns: u64) -> Vec<String> {
    let read = |p: &str| {
        fs::read_to_string(p)
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "?".to_owned())
    };
    let range = read("/proc/sys/net/ipv4/ip_local_port_range");
    let ports = {
        let parts: Vec<u64> = range.split(' ').filter_map(|p| p.parse().ok()).collect();
        match parts[..] {
            [lo, hi] if hi >= lo => Some(hi - lo + 1),
            _ => None,
        }
    };
    let nofile = fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .map(|l| {
                    l.split_whitespace()
                        .skip(3)
                        .take(2)
                        .collect::<Vec<_>>()
                        .join("/")
                })
        })
        .unwrap_or_else(|| "?".to_owned());
    let mut notes = vec![
        format!(
            "cores {}, load average {}",
            thread::available_parallelism().map_or(0, |n| n.get()),
            read("/proc/loadavg")
                .split(' ')
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        ),
        format!(
            "ip_local_port_range {range} ({} ports), tcp_tw_reuse {}, somaxconn {}, open files here (soft/hard) {nofile}; both load processes raise RLIMIT_NOFILE themselves",
            ports.map_or("?".to_owned(), |p| p.to_string()),
            read("/proc/sys/net/ipv4/tcp_tw_reuse"),
            read("/proc/sys/net/core/somaxconn"),
        ),
    ];
    if let Some(ports) = ports
        && ports < conns + 100
    {
        notes.push(format!(
            "WARNING: {conns} connections need more ephemeral ports than the {ports} available"
        ));
    }
    notes
}

fn gen_args(plan: &Plan, conns: u64, real: bool) -> Vec<String> {
    let mut args = vec![
        "--conns".to_owned(),
        conns.to_string(),
        "--secs".to_owned(),
        plan.secs.to_string(),
        "--warmup-secs".to_owned(),
        plan.warmup.to_string(),
        "--settle-secs".to_owned(),
        plan.settle.to_string(),
    ];
    if real {
        args.extend([
            "--real-client".to_owned(),
            "--fanout-rounds".to_owned(),
            plan.fanout_rounds.to_string(),
        ]);
    } else {
        args.extend([
            "--paced-secs".to_owned(),
            plan.paced_secs.to_string(),
            // One message per connection per second.
            "--rate".to_owned(),
            conns.to_string(),
            "--fanout-rounds".to_owned(),
            plan.fanout_rounds.to_string(),
        ]);
    }
    args
}

/// A running `tidings-load server`; it exits when its standard input closes.
struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    ws: String,
    control: String,
    pid: String,
    /// `host:port` of its `GET /metrics` (the tidings server only).
    metrics: Option<String>,
    /// The WebTransport kind's certificate hash (hex).
    hash: Option<String>,
}

impl Server {
    fn start(bin: &Path, kind: &str, extra: &[&str], wrapper: &[String]) -> Result<Self> {
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.args(["server", "--kind", kind])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let line = util::display(&cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("could not start `{line}`: {e}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or("no server stdout")?;
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            let _ = tx.send(first);
            // Keep draining so the server never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let first = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let field = |key: &str| {
            first
                .split_whitespace()
                .find_map(|t| t.strip_prefix(key))
                .map(str::to_owned)
        };
        let mut server = Server {
            child,
            stdin,
            ws: String::new(),
            control: String::new(),
            pid: String::new(),
            metrics: field("metrics="),
            hash: field("hash="),
        };
        match (field("ws="), field("control="), field("pid=")) {
            (Some(ws), Some(control), Some(pid)) => {
                server.ws = ws;
                server.control = control;
                server.pid = pid;
                Ok(server)
            }
            _ => Err(format!(
                "`{line}` did not report its address (first line: {first:?})"
            )),
        }
    }

    fn args(&self) -> Vec<String> {
        let mut args = vec![
            "--addr".to_owned(),
            self.ws.clone(),
            "--control".to_owned(),
            self.control.clone(),
            "--server-pid".to_owned(),
            self.pid.clone(),
        ];
        if let Some(hash) = &self.hash {
            args.extend(["--cert-hash".to_owned(), hash.clone()]);
        }
        args
    }

    /// Closes its standard input and waits for it (and, under perf, for perf) to exit.
    fn stop(mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            drop(self.stdin.take());
            thread::sleep(Duration::from_millis(200));
            if !matches!(self.child.try_wait(), Ok(Some(_))) {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

/// Runs a `tidings-load` client command (progress on our stderr), returns its RESULT.
fn run_client(bin: &Path, args: &[String], limit: Duration) -> Result<(Value, String)> {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let line = util::display(&cmd);
    println!("$ {line}");
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("could not start `{line}`: {e}"))?;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("waiting for `{line}`: {e}")),
        }
    };
    let out = reader.join().unwrap_or_default();
    let Some(status) = status else {
        return Err(format!("`{line}` took longer than {}", util::secs(limit)));
    };
    let result = out
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .ok_or_else(|| format!("`{line}` ({status}) printed no RESULT line"))?;
    let value = json::parse(result)?;
    Ok((value, result.to_owned()))
}

/// Time one generator run may take: connecting, the phases, fan-out, closing, and slack.
fn gen_limit(plan: &Plan) -> Duration {
    Duration::from_secs_f64(
        120.0 + plan.settle + plan.warmup + plan.secs + plan.paced_secs + 20.0 * 3.0,
    )
}

fn run_gen(
    bin: &Path,
    kind: &str,
    wrapper: &[String],
    plan: &Plan,
    args: &[String],
) -> Result<(Value, String)> {
    let server = Server::start(bin, kind, &[], wrapper)?;
    let mut full = vec!["gen".to_owned(), "--kind".to_owned(), kind.to_owned()];
    full.extend(server.args());
    full.extend(args.iter().cloned());
    let result = run_client(bin, &full, gen_limit(plan));
    let result = match (result, &server.metrics) {
        (Ok((_, text)), Some(addr)) => with_scraped(&text, addr),
        (other, _) => other,
    };
    server.stop();
    result
}

/// The counters of `/metrics` that the report compares with the run's own figures.
const SCRAPED: [&str; 10] = [
    "tidings_messages_received_total",
    "tidings_messages_sent_total",
    "tidings_connections_total",
    "tidings_sessions_total",
    "tidings_publishes_refused_total",
    "tidings_messages_dropped_total",
    "tidings_gaps_total",
    "tidings_slow_consumer_disconnects_total",
    "tidings_received_bytes_total",
    "tidings_sent_bytes_total",
];

/// Scrapes `http://addr/metrics` and adds the [`SCRAPED`] counters to the generator's
/// RESULT json (as `metrics_<name>`).
fn with_scraped(result: &str, addr: &str) -> Result<(Value, String)> {
    let body = scrape(addr)?;
    let mut extra = String::new();
    for name in SCRAPED {
        let value = body
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .ok_or_else(|| format!("/metrics of the tidings server has no {name}"))?;
        let value: f64 = value
            .trim()
            .parse()
            .map_err(|_| format!("/metrics: bad value for {name}: {value:?}"))?;
        let _ = write!(extra, r#","metrics_{name}":{value}"#);
    }
    let text = match result.trim_end().strip_suffix('}') {
        Some(head) => format!("{head}{extra}}}"),
        None => return Err(format!("RESULT is not a json object: {result}")),
    };
    println!("load: scraped http://{addr}/metrics");
    Ok((json::parse(&text)?, text))
}

/// `GET /metrics` over a plain TCP connection (HTTP/1.1, `Connection: close`).
fn scrape(addr: &str) -> Result<String> {
    let mut s = std::net::TcpStream::connect(addr)
        .map_err(|e| format!("connecting to /metrics at {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: load\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("GET /metrics: {e}"))?;
    let mut out = String::new();
    s.read_to_string(&mut out)
        .map_err(|e| format!("reading /metrics: {e}"))?;
    match out.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_owned()),
        _ => Err(format!(
            "GET /metrics at {addr}: {}",
            out.lines().next().unwrap_or("no answer")
        )),
    }
}

fn run_leak(bin: &Path, plan: &Plan) -> Result<(Value, String)> {
    let resume = plan.resume_ms.to_string();
    let server = Server::start(bin, "tidings", &["--resume-ms", &resume], &[])?;
    let mut args = vec!["leak".to_owned()];
    args.extend(server.args());
    args.extend([
        "--cycles".to_owned(),
        plan.leak_cycles.to_string(),
        "--parallel".to_owned(),
        plan.leak_parallel.to_string(),
        "--rounds".to_owned(),
        plan.leak_rounds.to_string(),
        "--resume-ms".to_owned(),
        resume.clone(),
        "--limit-secs".to_owned(),
        "150".to_owned(),
    ]);
    let result = run_client(bin, &args, Duration::from_secs(300));
    server.stop();
    result
}

/// Closed-loop echo against the tidings server running under `perf record`; returns the
/// top of `perf report`.
fn run_profile(bin: &Path, plan: &Plan, target: &Path) -> Result<String> {
    if !util::succeeds(Command::new("perf").arg("--version")) {
        return Err("--profile needs perf (apt-get install linux-perf)".into());
    }
    let data = target.join("load-perf.data");
    // No hardware counters on this kind of VM: sample the CPU clock. Release builds have no
    // frame pointers, so unwind with DWARF (line-tables-only debug info names the frames).
    let wrapper: Vec<String> = [
        "perf",
        "record",
        "-e",
        "cpu-clock",
        "-F",
        "499",
        "--call-graph",
        "dwarf,16384",
        "-o",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([data.display().to_string(), "--".to_owned()])
    .collect();
    let mut profile_plan = plan.clone();
    profile_plan.paced_secs = 0.0;
    profile_plan.fanout_rounds = 0;
    let args = gen_args(&profile_plan, plan.conns, false);
    run_gen(bin, "tidings", &wrapper, &profile_plan, &args)?;
    let report = target.join("load-profile.txt");
    let mut text = String::new();
    for (title, extra) in [
        ("self time by symbol", &["--no-children"][..]),
        ("inclusive time by symbol", &["--children"][..]),
    ] {
        let out = util::capture(
            Command::new("perf")
                .args(["report", "--stdio", "--no-demangle", "-i"])
                .arg(&data)
                .args(extra)
                .args(["--sort", "symbol", "-g", "none", "--percent-limit", "0.5"]),
            Duration::from_secs(600),
        )?;
        let _ = writeln!(text, "==== {title} ====\n{}", out.stdout);
    }
    fs::write(&report, &text).map_err(|e| format!("writing {}: {e}", report.display()))?;
    Ok(format!(
        "load: profile in {} (perf data: {})",
        report.display(),
        data.display()
    ))
}

#[derive(Default)]
struct Results {
    kinds: Vec<(String, Value)>,
    /// Every run of every kind, in round order (for same-round ratios).
    rounds: Vec<(String, Vec<Value>)>,
    client: Option<Value>,
    /// The real client over WebTransport (`tidings-wt+Client`).
    webtransport: Option<Value>,
    leak: Option<Value>,
}

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

/// How a figure compares: is more better?
#[derive(Clone, Copy, PartialEq)]
enum Better {
    More,
    Less,
}

struct Row {
    label: String,
    key: &'static str,
    better: Better,
    format: fn(f64) -> String,
}

fn int(v: f64) -> String {
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn us(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1} ms", v / 1e3)
    } else {
        format!("{v:.0} µs")
    }
}

fn one(v: f64) -> String {
    format!("{v:.1}")
}

fn two(v: f64) -> String {
    format!("{v:.2}")
}

fn ms(v: f64) -> String {
    format!("{v:.1} ms")
}

/// The load section: markdown for the report, plain text for the terminal.
fn render(meta: &Meta, results: &Results) -> (String, String) {
    let machine = &meta.machine;
    use Better::{Less, More};
    let mut md = String::new();
    let _ = writeln!(md, "{MARKER}");
    let _ = writeln!(
        md,
        "## Load (`cargo xtask load{}`)\n",
        if meta.quick { " --quick" } else { "" }
    );
    let _ = writeln!(
        md,
        "Server and load generator in separate processes on loopback, both on 2-worker tokio \
         runtimes sharing this machine's cores; 32-byte messages; tidings and \
         tokio-tungstenite with 4 KiB read / 16 KiB write buffers. Closed loop: every \
         connection keeps one message in flight (raw echo, or on tidings a publish to the \
         connection's own channel delivered back by the hub, with the client's `ack` every \
         64 messages or 1 s, as the real client does by default). Paced: one message per \
         connection per second. KiB per connection = (server RSS − RSS before the first \
         connection) / connections. CPU = \
         server utime+stime over the measured window / messages. `tidings-ws-raw` is tidings' \
         `WsServer` echoing on its tungstenite stream (`raw_echo`: no transport, pump or hub). Took {}.\n",
        util::secs(Duration::from_secs_f64(meta.took_secs))
    );
    for line in machine {
        let _ = writeln!(md, "- {line}");
    }
    if let (true, Some(r)) = (meta.rounds > 1, meta.shown_round) {
        let _ = writeln!(
            md,
            "- every server ran {} times, interleaved; the table shows round {}, the one whose \
             tidings ÷ tokio-tungstenite closed-loop throughput ratio is the median (every \
             round's ratios are below)",
            meta.rounds,
            r + 1
        );
    } else if meta.rounds > 1 {
        let _ = writeln!(
            md,
            "- every server ran {} times, interleaved; each column takes the closed-loop figures \
             (and memory, fan-out) of that server's run least disturbed by other processes in \
             its closed-loop window, and the paced figures of the run least disturbed in its \
             paced window",
            meta.rounds
        );
    }
    let disturbed: Vec<&str> = results
        .kinds
        .iter()
        .filter(|(_, v)| num(v, "other_cpu_share").unwrap_or(0.0) > 0.25)
        .map(|(k, _)| k.as_str())
        .collect();
    if !disturbed.is_empty() {
        let _ = writeln!(
            md,
            "- ⚠ other processes used more than a quarter of a core during the closed-loop \
             window of: {}. Throughput and latency ratios are then unreliable; CPU seconds per \
             million messages are not affected (they count the server's own CPU time).",
            disturbed.join(", ")
        );
    }
    let kinds: Vec<&(String, Value)> = results.kinds.iter().collect();
    let find = |k: &str| kinds.iter().find(|(n, _)| n == k).map(|(_, v)| v);
    let tidings = find("tidings");
    // (subject, baseline) pairs with a ratio column.
    let ratios: Vec<(&str, &str)> = [
        ("tidings", "tokio-tungstenite"),
        ("tidings", "fastwebsockets"),
        ("tidings-ws-raw", "tokio-tungstenite"),
    ]
    .into_iter()
    .filter(|(s, b)| find(s).is_some() && find(b).is_some())
    .collect();
    let paced_rate = kinds
        .iter()
        .find_map(|(_, v)| num(v, "paced_rate"))
        .unwrap_or(0.0);
    let paced = format!("paced, {} msg/s", int(paced_rate));
    let row = |label: &str, key: &'static str, better: Better, format: fn(f64) -> String| Row {
        label: label.to_owned(),
        key,
        better,
        format,
    };

    let rows = [
        row("connections held (of N)", "held", More, int),
        row("connect all, s", "connect_secs", Less, two),
        row("echo msg/s (closed loop)", "echo_msg_s", More, int),
        row("round trip p50 (closed loop)", "echo_p50_us", Less, us),
        row("round trip p99 (closed loop)", "echo_p99_us", Less, us),
        row("round trip p99.9 (closed loop)", "echo_p999_us", Less, us),
        row(
            &format!("round trip p50 ({paced})"),
            "paced_p50_us",
            Less,
            us,
        ),
        row(
            &format!("round trip p99 ({paced})"),
            "paced_p99_us",
            Less,
            us,
        ),
        row(
            &format!("round trip p99.9 ({paced})"),
            "paced_p999_us",
            Less,
            us,
        ),
        row(
            "round trips per connection in the window, 1st percentile",
            "echo_conn_p1",
            More,
            int,
        ),
        row(
            "round trips per connection in the window, median",
            "echo_conn_p50",
            More,
            int,
        ),
        row("server CPU s per 1M msgs", "server_cpu_s_per_m", Less, two),
        row("server CPU, cores busy", "server_cpu_share", Less, two),
        row("generator CPU s per 1M msgs", "gen_cpu_s_per_m", Less, two),
        row(
            "other processes' CPU, cores (closed loop)",
            "other_cpu_share",
            Less,
            two,
        ),
        row(
            &format!("other processes' CPU, cores ({paced})"),
            "paced_other_cpu_share",
            Less,
            two,
        ),
        row(
            "server KiB per idle connection",
            "idle_kib_per_conn",
            Less,
            one,
        ),
        row(
            "server KiB per busy connection",
            "busy_kib_per_conn",
            Less,
            one,
        ),
        row(
            "fan-out 1 → N, last receipt (median)",
            "fanout_median_ms",
            Less,
            ms,
        ),
        row(
            "fan-out 1 → N, last receipt (max)",
            "fanout_max_ms",
            Less,
            ms,
        ),
    ];
    let n = tidings
        .or_else(|| kinds.first().map(|(_, v)| v))
        .and_then(|v| num(v, "conns"))
        .unwrap_or(0.0);
    let _ = writeln!(md, "\n### Echo and fan-out, N = {} connections\n", int(n));
    let mut header = vec!["metric".to_owned()];
    header.extend(kinds.iter().map(|(k, _)| k.clone()));
    header.extend(ratios.iter().map(|(s, b)| format!("{s} ÷ {b}")));
    let mut table: Vec<Vec<String>> = Vec::new();
    for row in &rows {
        if kinds.iter().all(|(_, v)| num(v, row.key).is_none()) {
            continue;
        }
        let mut cells = vec![row.label.clone()];
        for (_, v) in &kinds {
            cells.push(num(v, row.key).map_or("–".to_owned(), row.format));
        }
        for (s, b) in &ratios {
            {
                let subject = find(s).and_then(|v| num(v, row.key));
                let ratio = match (subject, find(b).and_then(|v| num(v, row.key))) {
                    // The machine's other load is context, not a property of the server.
                    _ if row.key.contains("cpu_share") => "–".to_owned(),
                    (Some(t), Some(b)) if b > 0.0 => {
                        let mark = match row.better {
                            Better::More if t / b >= 0.9 => "",
                            Better::Less if t / b <= 1.1 => "",
                            _ => " ⚠",
                        };
                        format!("{:.2}x{mark}", t / b)
                    }
                    _ => "–".to_owned(),
                };
                cells.push(ratio);
            }
        }
        table.push(cells);
    }
    md_table(&mut md, &header, &table);
    let _ = writeln!(
        md,
        "\n⚠ = more than 10% worse than the baseline. Higher is better for msg/s and connections held, lower for everything else."
    );

    if let Some(t) = tidings.filter(|t| num(t, "metrics_tidings_messages_received_total").is_some())
    {
        scraped_section(&mut md, t);
    }

    let real: Vec<(&str, &Value)> = [
        ("tidings + Client (WebSocket)", results.client.as_ref()),
        (
            "tidings + Client (WebTransport)",
            results.webtransport.as_ref(),
        ),
    ]
    .into_iter()
    .filter_map(|(label, v)| v.map(|v| (label, v)))
    .collect();
    if let Some((_, first)) = real.first() {
        let _ = writeln!(
            md,
            "\n### tidings with the real clients, N = {} connections\n\n\
             The real `tidings_ws::Client` over WebSocket and `tidings_webtransport::Client` \
             over WebTransport (HTTP/3 on QUIC, loopback UDP, channel streams) against the \
             same hub, same run; fan-out: one real client publishes to all N.\n",
            int(num(first, "conns").unwrap_or(0.0))
        );
        let raw_gen = tidings.and_then(|t| num(t, "gen_cpu_s_per_m"));
        let cell =
            |v: &Value, key: &str, f: fn(f64) -> String| num(v, key).map_or("-".to_owned(), f);
        let mut rows = Vec::new();
        type Format = fn(f64) -> String;
        let specs: [(&str, &str, Format); 10] = [
            ("connections held", "held", int),
            ("echo msg/s (closed loop)", "echo_msg_s", int),
            ("round trip p50", "echo_p50_us", us),
            ("round trip p99", "echo_p99_us", us),
            ("round trip p99.9", "echo_p999_us", us),
            ("server CPU s per 1M msgs", "server_cpu_s_per_m", two),
            ("client-side CPU s per 1M msgs", "gen_cpu_s_per_m", two),
            ("server KiB per idle connection", "idle_kib_per_conn", one),
            (
                "fan-out to N: last receipt (median)",
                "fanout_median_ms",
                ms,
            ),
            ("fan-out: fewest delivered", "fanout_delivered_min", int),
        ];
        for (label, key, f) in specs {
            let mut row = vec![label.to_owned()];
            row.extend(real.iter().map(|(_, v)| cell(v, key, f)));
            rows.push(row);
        }
        let mut header = vec!["metric".to_owned()];
        header.extend(real.iter().map(|(label, _)| (*label).to_owned()));
        md_table(&mut md, &header, &rows);
        if let Some(g) = raw_gen {
            let _ = writeln!(
                md,
                "\nThe hand-written JSON generator at N = {} used {} client-side CPU s per 1M msgs.",
                int(n),
                two(g)
            );
        }
    }

    if let Some(l) = &results.leak {
        let g = |k: &str| num(l, k).unwrap_or(0.0);
        let ratio = g("rss_ratio");
        let verdict = if ratio <= 1.1 && g("sessions_after") == 0.0 {
            "ok"
        } else {
            "CHECK"
        };
        let _ = writeln!(
            md,
            "\n### Leak check: connect/disconnect cycles against tidings\n\n\
             Cycles end in turn with an orderly tidings close, a TCP reset after a full \
             session, or a FIN before `hello`; {} workers in parallel, resume window {} ms. \
             Baseline = RSS after the first round once its sessions expired.\n",
            int(g("parallel")),
            int(g("resume_ms"))
        );
        let rows = vec![
            vec![
                "cycles done / failed".to_owned(),
                format!("{} / {}", int(g("cycles_done")), int(g("cycles_failed"))),
            ],
            vec![
                "cycles per second".to_owned(),
                int(g("cycles_done") / g("cycles_secs").max(1e-9)),
            ],
            vec![
                "server RSS, empty".to_owned(),
                format!("{} KiB", int(g("rss_start_kib"))),
            ],
            vec![
                "server RSS after each round".to_owned(),
                format!(
                    "{} KiB",
                    l.get("rss_rounds_kib")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                ),
            ],
            vec![
                "server RSS peak".to_owned(),
                format!("{} KiB", int(g("rss_peak_kib"))),
            ],
            vec![
                "last round ÷ first round".to_owned(),
                format!("{:.1}% ({verdict}: no growth beyond +10%)", ratio * 100.0),
            ],
            vec![
                "hub sessions / connections after the resume window".to_owned(),
                format!(
                    "{} / {} (after {:.1} s)",
                    int(g("sessions_after")),
                    int(g("connections_after")),
                    g("wait_secs")
                ),
            ],
        ];
        md_table(&mut md, &["metric".to_owned(), "tidings".to_owned()], &rows);
    }

    // The performance targets (ROADMAP.md, docs/architecture.md).
    let mut targets = Vec::new();
    let pairs = same_round_ratios(results);
    if !pairs.is_empty() {
        let _ = writeln!(
            md,
            "\n### Same-round ratios, tidings ÷ tokio-tungstenite\n\nThe runs of one round are \
             a minute or two apart; different rounds can be far apart while the machine drifts \
             (±20 % between runs on this VM), so the targets are judged on these pairs' medians.\n"
        );
        let mut rows: Vec<Vec<String>> = pairs
            .iter()
            .map(|(round, r)| {
                let mut row = vec![format!("round {}", round + 1)];
                row.extend(r.iter().map(|x| format!("{x:.2}x")));
                row
            })
            .collect();
        let medians: Vec<f64> = (0..3)
            .map(|i| median(pairs.iter().map(|(_, r)| r[i]).collect()))
            .collect();
        let mut row = vec!["median".to_owned()];
        row.extend(medians.iter().map(|x| format!("{x:.2}x")));
        rows.push(row);
        md_table(
            &mut md,
            &[
                "round".to_owned(),
                "echo msg/s (closed loop)".to_owned(),
                "server CPU per message".to_owned(),
                "round trip p50 (paced)".to_owned(),
            ],
            &rows,
        );
        let (tput, cpu, p50) = (medians[0], medians[1], medians[2]);
        targets.push(format!(
            "overhead vs tokio-tungstenite ≤ 10% (medians of {} same-round pairs): closed-loop \
             throughput {tput:.2}x, paced p50 {p50:.2}x, server CPU per message {cpu:.2}x → {}",
            pairs.len(),
            pass(tput >= 0.9 && p50 <= 1.1 && cpu <= 1.1)
        ));
    } else if let (Some(t), Some(b)) = (tidings, find("tokio-tungstenite")) {
        let ratio = |k: &str| num(t, k).unwrap_or(0.0) / num(b, k).unwrap_or(1.0).max(1e-9);
        let (tput, p50, cpu) = (
            ratio("echo_msg_s"),
            ratio("paced_p50_us"),
            ratio("server_cpu_s_per_m"),
        );
        targets.push(format!(
            "overhead vs tokio-tungstenite ≤ 10%: closed-loop throughput {tput:.2}x, paced p50 \
             {p50:.2}x, server CPU per message {cpu:.2}x → {}",
            pass(tput >= 0.9 && p50 <= 1.1 && cpu <= 1.1)
        ));
    }
    if let Some(t) = tidings {
        let idle = num(t, "idle_kib_per_conn").unwrap_or(f64::MAX);
        targets.push(format!(
            "≤ 16 KiB per idle connection: {idle:.2} KiB → {}",
            pass(idle <= 16.0)
        ));
        let held = num(t, "held").unwrap_or(0.0);
        targets.push(format!(
            "{} connections held: {} → {}",
            int(n),
            int(held),
            pass(held >= n)
        ));
    }
    if let Some(l) = &results.leak {
        let ratio = num(l, "rss_ratio").unwrap_or(0.0);
        let sessions = num(l, "sessions_after").unwrap_or(1.0);
        let verdict = if meta.quick {
            "smoke test only: too few cycles for the allocator to settle, judge the full run"
        } else {
            pass(ratio <= 1.1 && sessions == 0.0)
        };
        targets.push(format!(
            "no leak: RSS last/first round {:.1}%, {} sessions left → {verdict}",
            ratio * 100.0,
            int(sessions),
        ));
    }
    if !targets.is_empty() {
        let _ = writeln!(md, "\n### Targets\n");
        for t in &targets {
            let _ = writeln!(md, "- {t}");
        }
    }
    let text = md
        .lines()
        .filter(|l| *l != MARKER)
        .map(|l| format!("{l}\n"))
        .collect();
    (text, md)
}

/// The tidings server's `/metrics`, scraped after the run, beside the generator's counts.
fn scraped_section(md: &mut String, t: &Value) {
    let _ = writeln!(
        md,
        "\n### `/metrics` of the tidings server, scraped after the run (the round shown)\n\n\
         The generator counts what it sent and received over the whole run (warm-up, closed \
         loop, paced, fan-out); the server's Prometheus counters must show the same.\n"
    );
    let m = |name: &str| num(t, &format!("metrics_{name}"));
    let mut rows = Vec::new();
    let mut compare = |label: &str, own: Option<f64>, name: &str| {
        let scraped = m(name);
        let verdict = match (own, scraped) {
            (Some(a), Some(b)) if a == b => "✓ equal".to_owned(),
            (Some(a), Some(b)) => format!("✗ differs by {}", int((a - b).abs())),
            _ => "–".to_owned(),
        };
        rows.push(vec![
            label.to_owned(),
            own.map_or("–".to_owned(), int),
            format!("`{name}` {}", scraped.map_or("–".to_owned(), int)),
            verdict,
        ]);
    };
    compare(
        "publishes sent",
        num(t, "gen_published"),
        "tidings_messages_received_total",
    );
    compare(
        "messages received",
        num(t, "gen_received"),
        "tidings_messages_sent_total",
    );
    compare(
        "connections set up",
        num(t, "gen_opened"),
        "tidings_sessions_total",
    );
    for name in [
        "tidings_publishes_refused_total",
        "tidings_messages_dropped_total",
        "tidings_gaps_total",
        "tidings_slow_consumer_disconnects_total",
    ] {
        compare("(none expected)", Some(0.0), name);
    }
    for name in [
        "tidings_connections_total",
        "tidings_received_bytes_total",
        "tidings_sent_bytes_total",
    ] {
        compare("", None, name);
    }
    md_table(
        md,
        &[
            "generator's count".to_owned(),
            "value".to_owned(),
            "scraped".to_owned(),
            "match".to_owned(),
        ],
        &rows,
    );
}

/// Per round: tidings ÷ tokio-tungstenite for closed-loop msg/s, server CPU per
/// message and paced p50 (rounds where both ran).
fn same_round_ratios(results: &Results) -> Vec<(usize, [f64; 3])> {
    let runs = |k: &str| {
        results
            .rounds
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_slice())
            .unwrap_or_default()
    };
    runs("tidings")
        .iter()
        .zip(runs("tokio-tungstenite"))
        .enumerate()
        .filter_map(|(round, (t, b))| {
            let r = |k: &str| Some(num(t, k)? / num(b, k).filter(|x| *x > 0.0)?);
            let ratios = [
                r("echo_msg_s")?,
                r("server_cpu_s_per_m")?,
                r("paced_p50_us")?,
            ];
            Some((round, ratios))
        })
        .collect()
}

/// The round with the median closed-loop throughput ratio (the lower middle one
/// for an even count).
fn median_round(results: &Results) -> Option<usize> {
    let mut pairs = same_round_ratios(results);
    pairs.sort_by(|a, b| a.1[0].total_cmp(&b.1[0]));
    pairs.get(pairs.len().checked_sub(1)? / 2).map(|(r, _)| *r)
}

/// The median (mean of the middle two for an even count).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn pass(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

fn md_table(md: &mut String, header: &[String], rows: &[Vec<String>]) {
    let _ = writeln!(md, "| {} |", header.join(" | "));
    let rule: Vec<&str> = header
        .iter()
        .enumerate()
        .map(|(i, _)| if i == 0 { "---" } else { "---:" })
        .collect();
    let _ = writeln!(md, "|{}|", rule.join("|"));
    for row in rows {
        let _ = writeln!(md, "| {} |", row.join(" | "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str) -> Value {
        json::parse(text).expect("json")
    }

    #[test]
    fn plan_defaults_and_flags() {
        let plan = Plan::parse(&[]).expect("plan");
        assert_eq!((plan.conns, plan.leak_cycles), (10_000, 100_000));
        let args: Vec<String> = ["--quick", "--conns", "800", "--only", "tidings,leak"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let plan = Plan::parse(&args).expect("plan");
        assert!(plan.quick && plan.runs("leak") && !plan.runs("fastwebsockets"));
        assert_eq!(plan.conns, 800);
        assert!(Plan::parse(&["--only".to_owned(), "nginx".to_owned()]).is_err());
    }

    #[test]
    fn report_has_ratios_and_targets() {
        let results = Results {
            kinds: vec![
                (
                    "tidings".to_owned(),
                    value(
                        r#"{"conns":100,"held":100,"echo_msg_s":90,"paced_p50_us":50,"idle_kib_per_conn":12}"#,
                    ),
                ),
                (
                    "tokio-tungstenite".to_owned(),
                    value(
                        r#"{"conns":100,"held":100,"echo_msg_s":100,"paced_p50_us":40,"idle_kib_per_conn":8}"#,
                    ),
                ),
            ],
            rounds: Vec::new(),
            client: Some(value(
                r#"{"conns":10,"held":10,"echo_msg_s":50,"fanout_median_ms":1.5}"#,
            )),
            webtransport: Some(value(r#"{"conns":10,"held":10,"echo_msg_s":40}"#)),
            leak: Some(value(
                r#"{"rss_ratio":1.02,"sessions_after":0,"cycles_done":10,"cycles_secs":1,"rss_rounds_kib":"1 2"}"#,
            )),
        };
        let meta = Meta {
            rounds: 1,
            ..Meta::default()
        };
        let (_, md) = render(&meta, &results);
        assert!(md.starts_with(MARKER), "{md}");
        assert!(
            md.contains("| echo msg/s (closed loop) | 50 | 40 |"),
            "real clients side by side: {md}"
        );
        assert!(
            md.contains("| echo msg/s (closed loop) | 90 | 100 | 0.90x |"),
            "{md}"
        );
        assert!(
            md.contains("| server KiB per idle connection | 12.0 | 8.0 | 1.50x ⚠ |"),
            "{md}"
        );
        assert!(md.contains("paced p50 1.25x"), "{md}");
        assert!(
            md.contains("≤ 16 KiB per idle connection: 12.00 KiB → met"),
            "{md}"
        );
        assert!(
            md.contains("no leak: RSS last/first round 102.0%, 0 sessions left → met"),
            "{md}"
        );
        assert_eq!(int(1_234_567.0), "1,234,567");
    }

    #[test]
    fn results_file_keeps_the_least_disturbed_round() {
        let text = "# quick=1 rounds=2 took=12.5\n# machine cores 2\n\
                    tidings round=1 {\"echo_msg_s\":1,\"other_cpu_share\":0.9,\
                    \"paced_p50_us\":10,\"paced_other_cpu_share\":0}\n\
                    tidings round=2 {\"echo_msg_s\":2,\"other_cpu_share\":0.1,\
                    \"paced_p50_us\":20,\"paced_other_cpu_share\":0.5}\n\
                    tidings+Client {\"conns\":5}\nleak {\"rss_ratio\":1}\n";
        let (meta, results) = parse_results(text).expect("parse");
        assert!(meta.quick && meta.rounds == 2 && meta.took_secs == 12.5);
        assert_eq!(meta.machine, ["cores 2"]);
        assert_eq!(results.kinds.len(), 1);
        assert_eq!(num(&results.kinds[0].1, "echo_msg_s"), Some(2.0));
        assert_eq!(num(&results.kinds[0].1, "paced_p50_us"), Some(10.0));
        assert!(results.client.is_some() && results.leak.is_some());
    }

    #[test]
    fn targets_are_judged_on_same_round_pairs() {
        let line = |kind: &str, round: u32, msgs: u32, cpu: u32, p50: u32| {
            format!(
                "{kind} round={round} {{\"echo_msg_s\":{msgs},\"server_cpu_s_per_m\":{cpu},\
                 \"paced_p50_us\":{p50},\"other_cpu_share\":0,\"paced_other_cpu_share\":0}}\n"
            )
        };
        // Round 2 ran on a faster machine for both: its pair still compares fairly.
        let text = [
            line("tidings", 1, 80, 12, 110),
            line("tokio-tungstenite", 1, 100, 10, 100),
            line("tidings", 2, 190, 6, 50),
            line("tokio-tungstenite", 2, 200, 5, 50),
            line("tidings", 3, 90, 11, 100),
            line("tokio-tungstenite", 3, 100, 10, 100),
        ]
        .concat();
        let (meta, results) = parse_results(&text).expect("parse");
        let pairs = same_round_ratios(&results);
        assert_eq!(pairs.len(), 3);
        assert_eq!(median(pairs.iter().map(|(_, r)| r[0]).collect()), 0.9);
        // The table shows the median round (3) for every server.
        assert_eq!(meta.shown_round, Some(2));
        assert_eq!(num(&results.kinds[0].1, "echo_msg_s"), Some(90.0));
        assert_eq!(median(vec![1.0, 3.0, 2.0, 10.0]), 2.5);
        let (_, md) = render(&meta, &results);
        assert!(md.contains("| median | 0.90x | 1.20x | 1.00x |"), "{md}");
        assert!(
            md.contains("(medians of 3 same-round pairs): closed-loop throughput 0.90x, paced p50 1.00x, server CPU per message 1.20x → NOT met"),
            "{md}"
        );
    }
}
