//! Shared test helpers: an axum server with the SSE route, a raw event stream reader on reqwest, event waiting.
#![allow(dead_code, clippy::unwrap_used, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use serde_json::Value;
use tidings_axum::{SseRoute, SseRouterExt};
use tidings_channels::{Hub, HubConfig, MemoryBroker};
use tidings_protocol::{ClientEvent, Message};
use tidings_sse::Client;
use tidings_sse::parser::{EventParser, SseEvent};

pub const STEP: Duration = Duration::from_secs(20);

/// A hub on a memory broker, with `config`.
pub fn hub_with(config: HubConfig) -> (Hub, Arc<MemoryBroker>) {
    let broker = Arc::new(MemoryBroker::default());
    (Hub::with_config(broker.clone(), config), broker)
}

/// Serves `app` on 127.0.0.1:0.
pub async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Serves `route` at `/sse`; returns the stream URL.
pub async fn serve_route(route: SseRoute) -> (SocketAddr, String) {
    let addr = serve(Router::new().tidings_sse_route("/sse", route)).await;
    (addr, format!("http://{addr}/sse"))
}

/// A raw event stream: one GET, read and parsed by hand.
pub struct RawStream {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    response: reqwest::Response,
    pub parser: EventParser,
    /// Every chunk read, concatenated (for checks of the raw bytes).
    pub raw: Vec<u8>,
}

impl RawStream {
    /// GET `url` with `headers`.
    pub async fn open(url: &str, headers: &[(&str, &str)]) -> RawStream {
        let http = {
            tidings_runtime::install_tls_provider();
            reqwest::Client::new()
        };
        let mut req = http.get(url).header("accept", "text/event-stream");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let response = tokio::time::timeout(STEP, req.send())
            .await
            .unwrap()
            .unwrap();
        RawStream {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            response,
            parser: EventParser::new(),
            raw: Vec::new(),
        }
    }

    /// The next event (panics after [`STEP`] or at the end of the stream).
    pub async fn next_event(&mut self) -> SseEvent {
        self.try_next_event(STEP).await.expect("an event in time")
    }

    /// The next event within `wait`, `None` on timeout or end of stream.
    pub async fn try_next_event(&mut self, wait: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(e) = self.parser.next_event() {
                return Some(e);
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?
                .ok()??;
            self.raw.extend_from_slice(&chunk);
            self.parser.feed(&chunk).unwrap();
        }
    }

    /// The next event's data as a JSON frame.
    pub async fn next_frame(&mut self) -> (Value, String) {
        let e = self.next_event().await;
        (serde_json::from_str(&e.data).unwrap(), e.last_event_id)
    }

    /// Frames until one of type `ty` (returned with its id); the others are collected in `skipped`.
    pub async fn frame_of(&mut self, ty: &str, skipped: &mut Vec<Value>) -> (Value, String) {
        loop {
            let (f, id) = self.next_frame().await;
            if f["type"] == ty {
                return (f, id);
            }
            skipped.push(f);
        }
    }

    /// Reads until the server ends the stream (`true`), or `wait` passes (`false`).
    pub async fn ends_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Err(_) => return false,
                Ok(Ok(Some(chunk))) => {
                    self.raw.extend_from_slice(&chunk);
                    let _ = self.parser.feed(&chunk);
                }
                Ok(_) => return true,
            }
        }
    }
}

/// POSTs `body` to `url` with the token header; returns status and body text.
pub async fn post(
    url: &str,
    token: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (u16, String, reqwest::header::HeaderMap) {
    let http = {
        tidings_runtime::install_tls_provider();
        reqwest::Client::new()
    };
    let mut req = http.post(url).body(body);
    if let Some(t) = token {
        req = req.header("x-tidings-token", t);
    }
    let resp = tokio::time::timeout(STEP, req.send())
        .await
        .unwrap()
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, resp.text().await.unwrap_or_default(), headers)
}

/// The next event of a Rust client (panics after [`STEP`]).
pub async fn next(c: &Client) -> ClientEvent {
    tokio::time::timeout(STEP, c.next_event())
        .await
        .expect("event in time")
        .expect("client open")
}

pub async fn wait_subscribed(c: &Client) {
    loop {
        match next(c).await {
            ClientEvent::Subscribed { .. } => return,
            ClientEvent::Error { code, message } => panic!("error {code}: {message}"),
            _ => {}
        }
    }
}

pub async fn next_message(c: &Client) -> Message {
    loop {
        match next(c).await {
            ClientEvent::Message(m) => return m,
            ClientEvent::Gap(g) => panic!("unexpected gap {g:?}"),
            _ => {}
        }
    }
}

/// Polls `cond` every 10 ms until it holds, at most [`STEP`].
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + STEP;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
