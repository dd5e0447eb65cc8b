//! Shared helpers of the CLI tests: a real tidings server (WebSocket, SSE, an authenticated route, WebTransport on the same port number) on its own runtime, and the built `tidings` binary run as a child process with its output read line by line.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use axum::routing::get;
use tidings::axum::{AuthError, RouterExt, TidingsRoute, UpgradeRequest};
use tidings::channels::{ChannelGrants, Hub, Identity, MemoryBroker};
use tidings::sse::SseRouterExt;
use tidings::webtransport::{Accepted, Certificate, ServerConfig, WtServer};

/// How long any wait of a test may take before it fails (a guard against hangs, not a
/// performance assertion).
pub(crate) const WAIT: Duration = Duration::from_secs(60);

/// `?token=ok` may subscribe anywhere and publish on `public:*` only; no token: 401.
async fn token_auth(request: UpgradeRequest) -> Result<Identity, AuthError> {
    let query = request.uri.query().unwrap_or_default();
    if query.split('&').any(|kv| kv == "token=ok") {
        Ok(Identity::new("tester")
            .with_grants(ChannelGrants::none().subscribe("*").publish("public:*")))
    } else {
        Err(AuthError::Unauthorized("no ?token=".into()))
    }
}

/// A tidings server on loopback, run by a runtime of its own.
pub(crate) struct Server {
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) hub: Hub,
    pub(crate) addr: SocketAddr,
    /// SHA-256 of the WebTransport server's self-signed certificate, as hex.
    pub(crate) cert_hash: String,
    /// Kept alive for the server's life.
    _wt: Option<tidings::webtransport::ServerHandle>,
}

impl Server {
    /// Starts the server; `discovery` is served at `/.well-known/tidings` when given
    /// (`{addr}` in it is replaced by the server's address).
    pub(crate) fn start(discovery: Option<&str>) -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let hub = Hub::new(Arc::new(MemoryBroker::default()));
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let mut app = axum::Router::new()
            .tidings("/ws", hub.clone())
            .tidings_sse("/sse", hub.clone())
            .tidings_route("/private", TidingsRoute::new(hub.clone()).auth(token_auth))
            .route("/healthz", get(|| async { "ok" }));
        if let Some(doc) = discovery {
            let doc = doc.replace("{addr}", &addr.to_string());
            app = app.route(
                "/.well-known/tidings",
                get(move || {
                    let doc = doc.clone();
                    async move { ([("content-type", "application/json")], doc) }
                }),
            );
        }
        rt.spawn(async move { axum::serve(listener, app).await });
        let cert = Certificate::self_signed(["localhost", "127.0.0.1"]).unwrap();
        let cert_hash = cert.hash_hex();
        let wt = {
            let _g = rt.enter();
            WtServer::bind(addr, ServerConfig::default(), cert)
                .ok()
                .map(|server| {
                    let hub = hub.clone();
                    server.serve(move |s: Accepted| {
                        let hub = hub.clone();
                        async move { hub.serve(s.transport, s.codec).await }
                    })
                })
        };
        assert!(
            wt.is_some(),
            "UDP port {} (the TCP port's number) was taken: WebTransport could not bind",
            addr.port()
        );
        Server {
            rt,
            hub,
            addr,
            cert_hash,
            _wt: wt,
        }
    }

    pub(crate) fn ws(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    pub(crate) fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Publishes from the server side.
    pub(crate) fn publish(&self, channel: &str, payload: &str) {
        self.rt
            .block_on(self.hub.publish(channel, payload.to_owned()))
            .unwrap();
    }
}

/// The same endpoints over TLS (`https://`, `wss://`) with a self-signed certificate for
/// 127.0.0.1, served by `tidings::axum::Server`; the certificate's PEM is written to `ca` so
/// the CLI can trust it with `--ca`.
pub(crate) fn start_tls(server: &Server, ca: &std::path::Path) -> SocketAddr {
    let (tls, pem) = tidings::axum::TlsConfig::self_signed(&["127.0.0.1", "localhost"]).unwrap();
    std::fs::write(ca, pem).unwrap();
    let listener = server
        .rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .tidings("/ws", server.hub.clone())
        .tidings_sse("/sse", server.hub.clone())
        .route("/healthz", get(|| async { "ok" }));
    server.rt.spawn(async move {
        tidings::axum::Server::new()
            .tls(tls)
            .serve(listener, app, std::future::pending())
            .await
    });
    addr
}

/// One line of the child's output.
#[derive(Debug)]
pub(crate) enum Line {
    Out(String),
    Err(String),
}

/// The `tidings` binary running as a child.
pub(crate) struct Cli {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Line>,
    /// Every line read so far (for failure messages).
    pub(crate) seen: Vec<String>,
}

pub(crate) fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tidings"))
}

impl Cli {
    /// Starts `tidings ARGS...` with piped stdin, stdout and stderr.
    pub(crate) fn spawn(args: &[&str]) -> Cli {
        let mut child = bin()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the tidings binary starts");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let out = tx.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = out.send(Line::Out(l));
            }
        });
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(Line::Err(l));
            }
        });
        let stdin = child.stdin.take();
        Cli {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    /// Writes one line to the child's stdin.
    pub(crate) fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Closes stdin (the end of input).
    pub(crate) fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for a stdout line (`stdout`) or a stderr line satisfying `pred`.
    pub(crate) fn expect(&mut self, stdout: bool, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(Line::Out(l)) => {
                    self.seen.push(format!("out: {l}"));
                    if stdout && pred(&l) {
                        return l;
                    }
                }
                Ok(Line::Err(l)) => {
                    self.seen.push(format!("err: {l}"));
                    if !stdout && pred(&l) {
                        return l;
                    }
                }
                Err(_) => panic!(
                    "no such line within {WAIT:?}; seen:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits for a stdout line containing `text`.
    pub(crate) fn expect_out(&mut self, text: &str) -> String {
        self.expect(true, |l| l.contains(text))
    }

    /// Waits for a stderr line containing `text`.
    pub(crate) fn expect_err(&mut self, text: &str) -> String {
        self.expect(false, |l| l.contains(text))
    }

    /// Waits for the process to end; its status and the rest of its output.
    pub(crate) fn wait(mut self) -> (ExitStatus, Vec<String>) {
        self.stdin = None;
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "tidings did not exit within {WAIT:?}; seen:\n{}",
                    self.seen.join("\n")
                );
            }
            // Drain output meanwhile so the child never blocks on a full pipe.
            while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(50)) {
                self.seen.push(match l {
                    Line::Out(l) => format!("out: {l}"),
                    Line::Err(l) => format!("err: {l}"),
                });
            }
        };
        // The reader threads end at EOF: collect what is left.
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(match l {
                Line::Out(l) => format!("out: {l}"),
                Line::Err(l) => format!("err: {l}"),
            });
        }
        (status, self.seen)
    }
}

/// Runs `tidings ARGS...` to the end with no input: exit status, stdout, stderr.
pub(crate) fn run(args: &[&str]) -> (ExitStatus, String, String) {
    let out = bin()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the tidings binary starts");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
