//! The servers under test: tidings (hub + memory broker behind `WsServer`), `tidings-wt` (the same hub behind `WtServer`, WebTransport), tidings' `WsServer` in `raw_echo` mode (its tungstenite stream, no transport, pump or hub), `tidings-pump` (server, transport and pump, no hub), and the two baseline echo servers — raw tokio-tungstenite and fastwebsockets.
//!
//! All of them run on the same two-worker runtime, set `TCP_NODELAY`, and tidings and
//! tokio-tungstenite use the same WebSocket buffers (4 KiB read, 16 KiB write:
//! [`tidings_benches::READ_BUFFER_BYTES`], [`tidings_benches::WRITE_BUFFER_BYTES`]).
//! fastwebsockets has no buffer setting (its read buffer starts at 8 KiB and it writes each
//! frame straight to the socket); only its message limit is aligned (1 MiB).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fastwebsockets::{FragmentCollector, OpCode, WebSocketError};
use futures_util::{SinkExt, StreamExt};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tidings_axum::{Metrics, MetricsRouterExt};
use tidings_benches::{MAX_MESSAGE_BYTES, tidings_ws_config, tungstenite_config};
use tidings_channels::{Hub, HubConfig, MemoryBroker};
use tidings_ws::{Accepted, ServerConfig, WsServer};
use tokio::net::{TcpListener, TcpStream};

use crate::Args;
use crate::sys;

/// What the control port answers to `stats`.
type StatsFn = Arc<dyn Fn() -> String + Send + Sync>;

/// `tidings-load server --kind K [--resume-ms MS] [--history-len N]`: `--history-len`
/// sets the memory broker's history per channel (an experiment knob: 0 turns history off).
pub(crate) fn run(args: &Args) -> Result<(), String> {
    let kind: String = args.req("kind")?;
    let resume = Duration::from_millis(args.get("resume-ms", 60_000u64)?);
    let history_len: usize = args.get(
        "history-len",
        tidings_channels::MemoryBrokerConfig::default().history_len,
    )?;
    let nofile = sys::raise_nofile(65_536)?;
    let rt = crate::runtime();
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    // The tidings server also serves `GET /metrics` (Prometheus) on a port of its own.
    let mut metrics_addr: Option<SocketAddr> = None;
    // The WebTransport kind pins a development certificate: its hash goes on the LISTEN line.
    let mut cert_hash = None;
    let (addr, stats): (SocketAddr, StatsFn) = rt.block_on(async {
        match kind.as_str() {
            "tidings-wt" => {
                let config = HubConfig::default()
                    .with_session(tidings_protocol::ServerConfig::default().with_resume_window(resume));
                let hub = Hub::with_config(Arc::new(MemoryBroker::default()), config);
                let cert = tidings_webtransport::Certificate::self_signed(["localhost", "127.0.0.1"])
                    .map_err(|e| format!("certificate: {e}"))?;
                let server = tidings_webtransport::WtServer::bind(
                    loopback,
                    tidings_webtransport::ServerConfig::default(),
                    cert,
                )
                .map_err(|e| format!("bind: {e}"))?;
                cert_hash = Some(server.certificate_hash_hex());
                let for_conns = hub.clone();
                let handle = server.serve(move |s: tidings_webtransport::Accepted| {
                    let hub = for_conns.clone();
                    async move { hub.serve(s.transport, s.codec).await }
                });
                let addr = handle.local_addr();
                let stats: StatsFn = Arc::new(move || {
                    let s = hub.stats();
                    format!(
                        r#"{{"sessions":{},"connections":{},"ws_connections":{}}}"#,
                        s.sessions,
                        s.connections,
                        handle.sessions()
                    )
                });
                Ok((addr, stats))
            }
            "tidings" => {
                let mut config = HubConfig::default()
                    .with_session(tidings_protocol::ServerConfig::default().with_resume_window(resume));
                // Expire detached sessions promptly when the window is short (leak check).
                config.reap_interval = config
                    .reap_interval
                    .min(resume / 2)
                    .max(Duration::from_millis(50));
                let mut broker = tidings_channels::MemoryBrokerConfig::default();
                broker.history_len = history_len;
                let hub = Hub::with_config(Arc::new(MemoryBroker::new(broker)), config);
                let server_config = ServerConfig::default().with_ws(tidings_ws_config());
                let server = WsServer::bind(loopback, server_config)
                    .await
                    .map_err(|e| format!("bind: {e}"))?;
                let for_conns = hub.clone();
                let handle = server.serve(move |conn: Accepted| {
                    let hub = for_conns.clone();
                    async move {
                        let (transport, codec, _shutdown) = conn.into_transport();
                        hub.serve(transport, codec).await;
                    }
                });
                let addr = handle.local_addr();
                // Counters only: the publish latency histogram stays off, so the
                // run measures the same message path as before.
                let metrics = Metrics::counters_only(hub.clone());
                let app = axum::Router::new().tidings_metrics(metrics);
                let listener = TcpListener::bind(loopback)
                    .await
                    .map_err(|e| format!("bind metrics: {e}"))?;
                metrics_addr = Some(listener.local_addr().map_err(|e| e.to_string())?);
                tokio::spawn(async move { axum::serve(listener, app).await });
                let stats: StatsFn = Arc::new(move || {
                    let s = hub.stats();
                    format!(
                        r#"{{"sessions":{},"connections":{},"ws_connections":{}}}"#,
                        s.sessions,
                        s.connections,
                        handle.connections()
                    )
                });
                Ok((addr, stats))
            }
            "tidings-ws-raw" => {
                // tidings' WebSocket server and transport without the hub: `raw_echo`.
                let server_config = ServerConfig::default().with_ws(tidings_ws_config());
                let server = WsServer::bind(loopback, server_config)
                    .await
                    .map_err(|e| format!("bind: {e}"))?;
                let handle = server.serve(tidings_ws::raw_echo);
                let addr = handle.local_addr();
                let stats: StatsFn = Arc::new(move || {
                    let n = handle.connections();
                    format!(r#"{{"sessions":0,"connections":{n},"ws_connections":{n}}}"#)
                });
                Ok((addr, stats))
            }
            "tidings-pump" => {
                // tidings' server, transport and pump, echoing: the tidings kind without the hub.
                let server_config = ServerConfig::default().with_ws(tidings_ws_config());
                let server = WsServer::bind(loopback, server_config)
                    .await
                    .map_err(|e| format!("bind: {e}"))?;
                let handle = server.serve(crate::pump_echo::serve);
                let addr = handle.local_addr();
                let stats: StatsFn = Arc::new(move || {
                    let n = handle.connections();
                    format!(r#"{{"sessions":0,"connections":{n},"ws_connections":{n}}}"#)
                });
                Ok((addr, stats))
            }
            "tokio-tungstenite" => {
                let listener = TcpListener::bind(loopback)
                    .await
                    .map_err(|e| format!("bind: {e}"))?;
                let addr = listener.local_addr().map_err(|e| e.to_string())?;
                let active = Arc::new(AtomicUsize::new(0));
                tokio::spawn(tungstenite_accept(listener, active.clone()));
                Ok((addr, count_stats(active)))
            }
            "fastwebsockets" => {
                let listener = TcpListener::bind(loopback)
                    .await
                    .map_err(|e| format!("bind: {e}"))?;
                let addr = listener.local_addr().map_err(|e| e.to_string())?;
                let active = Arc::new(AtomicUsize::new(0));
                tokio::spawn(fastwebsockets_accept(listener, active.clone()));
                Ok((addr, count_stats(active)))
            }
            other => Err(format!(
                "unknown --kind `{other}` (tidings, tidings-wt, tidings-ws-raw, tidings-pump, tokio-tungstenite, fastwebsockets)"
            )),
        }
    })?;
    let control = control_server(stats)?;
    let metrics = metrics_addr
        .map(|a| format!(" metrics={a}"))
        .unwrap_or_default();
    let hash = cert_hash.map(|h| format!(" hash={h}")).unwrap_or_default();
    println!(
        "LISTEN ws={addr} control={control}{metrics} pid={} nofile={nofile}{hash}",
        std::process::id()
    );
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    // Serve until the parent closes our standard input.
    let mut sink = String::new();
    let stdin = std::io::stdin();
    while stdin.read_line(&mut sink).is_ok_and(|n| n > 0) {
        sink.clear();
    }
    // Exit without tearing down 10,000 connection tasks one by one.
    std::process::exit(0);
}

fn count_stats(active: Arc<AtomicUsize>) -> StatsFn {
    Arc::new(move || {
        let n = active.load(Ordering::Relaxed);
        format!(r#"{{"sessions":0,"connections":{n},"ws_connections":{n}}}"#)
    })
}

/// A line protocol on a second loopback port: `stats` → one JSON line.
fn control_server(stats: StatsFn) -> Result<SocketAddr, String> {
    let listener = StdListener::bind(("127.0.0.1", 0)).map_err(|e| format!("bind control: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let stats = stats.clone();
            std::thread::spawn(move || {
                let Ok(mut out) = stream.try_clone() else {
                    return;
                };
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { return };
                    let answer = match line.trim() {
                        "stats" => stats(),
                        other => format!(r#"{{"error":"unknown command {other:?}"}}"#),
                    };
                    if writeln!(out, "{answer}").is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(addr)
}

async fn tungstenite_accept(listener: TcpListener, active: Arc<AtomicUsize>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors and the like: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let active = active.clone();
        tokio::spawn(async move {
            let config = Some(tungstenite_config());
            let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, config).await
            else {
                return;
            };
            active.fetch_add(1, Ordering::Relaxed);
            // The same loop as `tidings_benches::raw_server(RawMode::Echo)`.
            while let Some(Ok(m)) = ws.next().await {
                if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
                    break;
                }
            }
            active.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

async fn fastwebsockets_accept(listener: TcpListener, active: Arc<AtomicUsize>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let active = active.clone();
        tokio::spawn(fastwebsockets_conn(stream, active));
    }
}

/// One HTTP/1 connection: hyper answers the upgrade, the WebSocket runs on its own task
/// (fastwebsockets' `echo_server` example, minus `unconstrained`).
async fn fastwebsockets_conn(stream: TcpStream, active: Arc<AtomicUsize>) {
    let service = service_fn(move |mut req: Request<Incoming>| {
        let active = active.clone();
        async move {
            let (response, upgrade) = fastwebsockets::upgrade::upgrade(&mut req)?;
            tokio::spawn(async move {
                let Ok(mut ws) = upgrade.await else { return };
                ws.set_max_message_size(MAX_MESSAGE_BYTES);
                active.fetch_add(1, Ordering::Relaxed);
                let _ = fastwebsockets_echo(FragmentCollector::new(ws)).await;
                active.fetch_sub(1, Ordering::Relaxed);
            });
            Ok::<Response<Empty<Bytes>>, WebSocketError>(response)
        }
    });
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
}

async fn fastwebsockets_echo(
    mut ws: FragmentCollector<TokioIo<hyper::upgrade::Upgraded>>,
) -> Result<(), WebSocketError> {
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
}
