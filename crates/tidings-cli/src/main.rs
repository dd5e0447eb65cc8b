//! `tidings`: the command line of the tidings framework — debug a live endpoint (connect, listen, send), measure it (bench), diagnose it (doctor) and scaffold an app (new).
//!
//! Exit codes: 0 success, 2 bad arguments or URL, 3 server unreachable or no session within
//! the timeout, 4 refused by the server (auth, a refused publish, an error frame), 5 timed out
//! waiting after the session opened, 6 local I/O (stdin/stdout, files), 7 doctor found no
//! working transport.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use tidings_cli::client::ConnectOpts;
use tidings_cli::error::{self, CliError};
use tidings_cli::out::Out;
use tidings_cli::{bench, connect, doctor, listen, new, send};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  2  bad arguments or URL
  3  server unreachable, or no session within --timeout
  4  refused by the server (HTTP 401/403, a refused publish, an error frame)
  5  timed out waiting after the session opened (an acknowledgement, a message)
  6  local I/O error (stdin/stdout, files of `new`)
  7  doctor: no transport opened a session";

/// The tidings command line.
#[derive(Debug, Parser)]
#[command(name = "tidings", version, about, after_help = EXIT_CODES)]
struct Cli {
    /// No notes on stderr (results and warnings still print).
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Interactive session: commands on stdin (sub, unsub, pub, state, quit), events on stdout.
    #[command(after_help = connect::HELP)]
    Connect {
        /// Endpoint URL (ws://host:port/ws, http://host:port/sse, ...).
        url: String,
        /// Channels to subscribe to at once.
        #[arg(long = "sub", value_name = "CHANNEL")]
        subscribe: Vec<String>,
        #[command(flatten)]
        opts: ConnectOpts,
    },
    /// Subscribes and prints every message as `CHANNEL #SEQ PAYLOAD` (gaps as `gap ...`).
    Listen {
        /// Endpoint URL.
        url: String,
        /// Channels to listen to.
        #[arg(required = true)]
        channels: Vec<String>,
        /// Stop after this many messages.
        #[arg(long, short = 'n')]
        count: Option<u64>,
        #[command(flatten)]
        opts: ConnectOpts,
    },
    /// Publishes one message and waits for the server's acknowledgement.
    Send {
        /// Endpoint URL.
        url: String,
        /// Channel.
        channel: String,
        /// Payload (JSON text travels as JSON, anything else as bytes).
        message: String,
        #[command(flatten)]
        opts: ConnectOpts,
    },
    /// Echo round trips and fan-out through the server: progress bar, then a p50/p99 table.
    Bench {
        /// Endpoint URL.
        url: String,
        /// Echo round trips (0: skip).
        #[arg(long, default_value_t = 1000)]
        messages: u64,
        /// Fan-out subscribers.
        #[arg(long, default_value_t = 50)]
        subscribers: usize,
        /// Fan-out messages, each delivered to every subscriber (0: skip).
        #[arg(long, default_value_t = 100)]
        fanout_messages: u64,
        /// Payload bytes.
        #[arg(long, default_value_t = 32)]
        size: usize,
        #[command(flatten)]
        opts: ConnectOpts,
    },
    /// What a server offers: discovery document, health, WebSocket codecs, SSE, WebTransport,
    /// TLS, auth, round-trip latency.
    Doctor {
        /// The server (http://host:port) or its WebSocket endpoint (ws://host:port/ws).
        url: String,
        /// WebSocket path when the URL has none.
        #[arg(long, default_value = "/ws")]
        ws_path: String,
        /// SSE path.
        #[arg(long, default_value = "/sse")]
        sse_path: String,
        /// WebTransport URL (default: from the discovery document, else https://HOST:PORT/wt).
        #[arg(long, value_name = "URL")]
        webtransport: Option<String>,
        /// Echo round trips for the latency line.
        #[arg(long, default_value_t = 10)]
        pings: u32,
        #[command(flatten)]
        opts: ConnectOpts,
    },
    /// Scaffolds an axum + Leptos app with a tidings hub (`cargo run` serves it).
    New {
        /// Package name (and directory, unless --dir).
        name: String,
        /// Directory to create (default ./NAME); must not exist.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Depend on a local tidings checkout (its root or crates/tidings) instead of the
        /// published crate; its Cargo.lock is copied so versions match.
        #[arg(long, value_name = "PATH")]
        tidings_path: Option<PathBuf>,
    },
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let mut out = Out::new(cli.quiet);
    match cli.command {
        Command::Connect {
            url,
            subscribe,
            opts,
        } => connect::run(&url, &subscribe, &opts, &mut out).await,
        Command::Listen {
            url,
            channels,
            count,
            opts,
        } => listen::run(&url, &channels, count, &opts, &mut out).await,
        Command::Send {
            url,
            channel,
            message,
            opts,
        } => send::run(&url, &channel, &message, &opts, &mut out).await,
        Command::Bench {
            url,
            messages,
            subscribers,
            fanout_messages,
            size,
            opts,
        } => {
            let b = bench::BenchOpts {
                messages,
                subscribers,
                fanout_messages,
                size,
            };
            bench::run(&url, &b, &opts, &mut out).await
        }
        Command::Doctor {
            url,
            ws_path,
            sse_path,
            webtransport,
            pings,
            opts,
        } => {
            let d = doctor::DoctorOpts {
                ws_path,
                sse_path,
                webtransport,
                pings,
            };
            doctor::run(&url, &d, &opts, &mut out).await
        }
        Command::New {
            name,
            dir,
            tidings_path,
        } => new::run(&name, dir.as_deref(), tidings_path.as_deref(), &mut out),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tidings: error: could not start the runtime: {e}");
            return ExitCode::from(error::exit::IO);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::from(error::exit::OK),
        Err(e) => {
            eprintln!("tidings: error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
