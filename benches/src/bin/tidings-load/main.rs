//! `tidings-load`: the load harness behind `cargo xtask load` — a server under test and a load generator, run as separate processes on loopback.
//!
//! ```text
//! tidings-load server --kind tidings|tidings-wt|tidings-ws-raw|tidings-pump|tokio-tungstenite|fastwebsockets
//!                     [--resume-ms MS]
//!                     [--history-len N]
//! tidings-load gen    --kind K --addr HOST:PORT --server-pid PID --control HOST:PORT
//!                     [--conns N] [--secs S] [--warmup-secs S] [--paced-secs S] [--rate MSG/S]
//!                     [--fanout-rounds R] [--real-client] [--cert-hash HEX]
//! tidings-load leak   --addr HOST:PORT --server-pid PID --control HOST:PORT
//!                     [--cycles N] [--parallel P] [--resume-ms MS] [--limit-secs S]
//! ```
//!
//! The protocol client (hand-written frames, connection set-up, round-trip statistics) is
//! the `tidings-loadgen` crate; this binary holds the servers under test, the phases of a
//! run, the leak check and the probes of the server process.
//!
//! The server prints `LISTEN ws=<addr> control=<addr> pid=<pid>` (the WebTransport kind
//! adds `hash=<sha-256 of its certificate>`, which the generator takes as `--cert-hash`;
//! its `ws=` address is UDP) and serves until its
//! standard input closes. The control address answers `stats` with one JSON line (hub
//! sessions and connections). The generator and the leak checker read the server's RSS and
//! CPU time from `/proc/<pid>`, print progress on stderr and one `RESULT {json}` line on
//! stdout, which `cargo xtask load` turns into the "Load" section of
//! `target/bench-report.md`.
//!
//! Both processes raise `RLIMIT_NOFILE` themselves (10,000 connections need 10,000+
//! descriptors on each side). The kernel's ephemeral port range
//! (`/proc/sys/net/ipv4/ip_local_port_range`, 32768–60999 by default: ~28k ports) bounds
//! the connections one generator can open to one server address; `tcp_tw_reuse = 2` (the
//! default) lets loopback connections reuse ports in TIME_WAIT, which the leak check's
//! 100,000 cycles rely on.

mod generator;
mod leak;
mod pump_echo;
mod server;
mod stats;
mod sys;

use std::collections::HashMap;
use std::process::ExitCode;
use std::str::FromStr;

/// `--key value` arguments (and bare `--flag`s, stored as "true").
pub(crate) struct Args {
    values: HashMap<String, String>,
}

impl Args {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut values = HashMap::new();
        let mut i = 0;
        while i < args.len() {
            let Some(key) = args[i].strip_prefix("--") else {
                return Err(format!("unexpected argument `{}`", args[i]));
            };
            match args.get(i + 1).filter(|v| !v.starts_with("--")) {
                Some(value) => {
                    values.insert(key.to_owned(), value.clone());
                    i += 2;
                }
                None => {
                    values.insert(key.to_owned(), "true".to_owned());
                    i += 1;
                }
            }
        }
        Ok(Self { values })
    }

    /// A required value.
    pub(crate) fn req<T: FromStr>(&self, key: &str) -> Result<T, String> {
        let raw = self
            .values
            .get(key)
            .ok_or_else(|| format!("missing --{key}"))?;
        raw.parse()
            .map_err(|_| format!("bad value for --{key}: `{raw}`"))
    }

    /// An optional value with a default.
    pub(crate) fn get<T: FromStr>(&self, key: &str, default: T) -> Result<T, String> {
        if self.values.contains_key(key) {
            self.req(key)
        } else {
            Ok(default)
        }
    }

    /// A bare flag.
    pub(crate) fn flag(&self, key: &str) -> bool {
        self.values.get(key).is_some_and(|v| v == "true")
    }
}

/// The runtime of every process of the harness: two workers, one per core (the server
/// under test and the generator share the machine's two cores).
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = argv.split_first() else {
        eprintln!("usage: tidings-load server|gen|leak [--key value ...] (see the crate docs)");
        return ExitCode::from(2);
    };
    let result = Args::parse(rest).and_then(|args| match command.as_str() {
        "server" => server::run(&args),
        "gen" => generator::run(&args),
        "leak" => leak::run(&args),
        other => Err(format!("unknown command `{other}`")),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tidings-load {command}: error: {e}");
            ExitCode::FAILURE
        }
    }
}
