//! Interop with independent SSE clients: Node `eventsource` (v4) and Python `httpx-sse` read a session from the tidings server and resume it with `Last-Event-ID`.
//!
//! Each test serves the SSE route on `127.0.0.1:0`, runs a peer script (under
//! `tests/peers/`) as a child process with a hard timeout, drives the Rust side
//! while it runs (publishing, cutting links) and asserts on the script's JSON
//! lines. A missing peer skips loudly (`TIDINGS_REQUIRE_PEERS=1` makes it a
//! failure); `cargo xtask setup` installs the peers.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use tidings_axum::SseRoute;
use tidings_channels::HubConfig;
use tidings_protocol::{ChannelName, ClientEvent};
use tidings_sse::{Client, EventId, SseConfig};
use tidings_test::peers;
use tidings_test::proxy::FaultProxy;
use tidings_test::require_peer;

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);
const FIRST: u64 = 20;
const SECOND: u64 = 30;

fn peer_script(dir: &str, name: &str) -> PathBuf {
    peers::workspace_root()
        .join("tests")
        .join("peers")
        .join(dir)
        .join(name)
}

/// Runs a script on its own task.
fn spawn_script(
    interpreter: PathBuf,
    script: PathBuf,
    args: Vec<String>,
) -> tokio::task::JoinHandle<Result<std::process::Output, peers::PeerError>> {
    tokio::spawn(async move {
        peers::run_script(&interpreter, &script, args, peers::NO_ENV, SCRIPT_TIMEOUT).await
    })
}

fn lines(out: &std::process::Output) -> Vec<Value> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.trim().is_empty() {
        eprintln!("--- peer stderr ---\n{stderr}");
    }
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("non-JSON line {l:?}: {e}\n{stdout}"))
        })
        .collect()
}

fn with_event<'a>(lines: &'a [Value], event: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["event"] == event).collect()
}

/// The Rust side: a watcher of the `ctl` channel where the peer reports progress.
async fn next_ctl(
    ctl: &Client,
    task: &tokio::task::JoinHandle<Result<std::process::Output, peers::PeerError>>,
) -> Value {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        if task.is_finished() {
            panic!("the peer script ended before reporting progress");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no progress report from the peer"
        );
        if let Ok(Some(ClientEvent::Message(m))) =
            tokio::time::timeout(Duration::from_millis(100), ctl.next_event()).await
        {
            return serde_json::from_slice(&m.payload).unwrap();
        }
    }
}

fn payload(n: u64) -> String {
    json!({"n": n, "text": format!("message {n}\nwith a line break")}).to_string()
}

/// The messages a peer reported, in order, checked: 1..=total exactly once,
/// payloads intact, ids `<token>.<frame>` with growing frame numbers.
fn check_messages(lines: &[Value], id_field: &str, token: &str) {
    let messages = with_event(lines, "message");
    let seqs: Vec<u64> = messages
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (1..=FIRST + SECOND).collect::<Vec<_>>(),
        "every message once, in order"
    );
    let mut last_frame = 0;
    for m in &messages {
        let n = m["seq"].as_u64().unwrap();
        assert_eq!(
            m["data"],
            serde_json::from_str::<Value>(&payload(n)).unwrap()
        );
        let id = EventId::parse(m[id_field].as_str().unwrap()).unwrap();
        assert_eq!(id.token().0, token);
        assert!(id.frame() > last_frame, "event ids grow: {m}");
        last_frame = id.frame();
    }
}

fn check_welcomes(lines: &[Value]) -> String {
    let welcomes = with_event(lines, "welcome");
    assert_eq!(welcomes.len(), 2, "one welcome per stream: {welcomes:#?}");
    let (a, b) = (&welcomes[0]["frame"], &welcomes[1]["frame"]);
    assert_eq!(a["resumed"], false);
    assert_eq!(
        b["resumed"], true,
        "the second stream resumed the session: {b}"
    );
    assert_eq!(a["session"], b["session"]);
    assert_eq!(a["resume_token"], b["resume_token"]);
    a["resume_token"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn node_eventsource_resumes_through_a_cut_link() {
    let node = require_peer!(peers::node());
    let modules = require_peer!(peers::node_modules());
    // The script imports `eventsource` by name: run a copy next to a link to the installed packages.
    let dir = std::env::temp_dir().join(format!("tidings-sse-node-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("node_modules");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&modules, &link).unwrap();
    let script = dir.join("sse_client.mjs");
    std::fs::copy(peer_script("node", "sse_client.mjs"), &script).unwrap();

    let (hub, broker) = hub_with(HubConfig::default());
    let retry = Duration::from_millis(300);
    let route = SseRoute::new(hub.clone()).config(SseConfig::default().with_retry(retry));
    let (addr, direct) = serve_route(route).await;
    let proxy = FaultProxy::start(addr).await.unwrap();
    let url = format!("http://{}/sse", proxy.addr());
    let ctl = Client::builder(&direct).connect().unwrap();
    ctl.subscribe("ctl").unwrap();
    wait_subscribed(&ctl).await;

    let task = spawn_script(
        node,
        script,
        vec![url, "room".into(), FIRST.to_string(), SECOND.to_string()],
    );
    let room = ChannelName::new("room").unwrap();
    wait_until("the node peer subscribed", || {
        broker.subscriber_count(&room) == 1
    })
    .await;
    for n in 1..=FIRST {
        hub.publish("room", payload(n)).await.unwrap();
    }
    assert_eq!(next_ctl(&ctl, &task).await, json!({"got": FIRST}));
    // Cut every link (the event stream included): the library reconnects by itself.
    proxy.cut_all();
    for n in FIRST + 1..=FIRST + SECOND {
        hub.publish("room", payload(n)).await.unwrap();
    }
    assert_eq!(next_ctl(&ctl, &task).await, json!({"got": FIRST + SECOND}));
    let out = task
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("node peer failed: {e}"));
    let lines = lines(&out);
    for l in &lines {
        eprintln!("{l}");
    }
    let token = check_welcomes(&lines);
    check_messages(&lines, "lastEventId", &token);
    assert!(
        with_event(&lines, "other").is_empty(),
        "unexpected frames: {lines:#?}"
    );
    // A `close` on the stream can only be the server's reply to the peer's own.
    for c in with_event(&lines, "closed") {
        assert_eq!(c["frame"]["code"], 1000, "{c}");
    }
    // The library saw the cut, waited at least the server's `retry:`, and reopened.
    assert!(
        !with_event(&lines, "error").is_empty(),
        "the cut was noticed"
    );
    let reopened = with_event(&lines, "open");
    assert_eq!(reopened.len(), 2, "{reopened:?}");
    let waited = reopened[1]["sinceError"].as_u64().unwrap();
    assert!(
        waited + 20 >= retry.as_millis() as u64,
        "reconnected {waited} ms after the error, retry is {retry:?}"
    );
    assert_eq!(with_event(&lines, "done").len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn python_httpx_sse_resumes_with_last_event_id() {
    let python = require_peer!(peers::python());
    let (hub, broker) = hub_with(HubConfig::default());
    let (_, url) = serve_route(SseRoute::new(hub.clone())).await;
    let ctl = Client::builder(&url).connect().unwrap();
    ctl.subscribe("ctl").unwrap();
    wait_subscribed(&ctl).await;

    let task = spawn_script(
        python,
        peer_script("python", "sse_client.py"),
        vec![
            url.clone(),
            "room".into(),
            FIRST.to_string(),
            SECOND.to_string(),
        ],
    );
    let room = ChannelName::new("room").unwrap();
    wait_until("the python peer subscribed", || {
        broker.subscriber_count(&room) == 1
    })
    .await;
    for n in 1..=FIRST {
        hub.publish("room", payload(n)).await.unwrap();
    }
    // The peer read FIRST, then left; what follows it must get on its resume.
    assert_eq!(next_ctl(&ctl, &task).await, json!({"got": FIRST}));
    for n in FIRST + 1..=FIRST + SECOND {
        hub.publish("room", payload(n)).await.unwrap();
    }
    let out = task
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("python peer failed: {e}"));
    let lines = lines(&out);
    for l in &lines {
        eprintln!("{l}");
    }
    let token = check_welcomes(&lines);
    check_messages(&lines, "id", &token);
    assert!(
        with_event(&lines, "other").is_empty(),
        "unexpected frames: {lines:#?}"
    );
    let opens = with_event(&lines, "open");
    assert!(
        opens
            .iter()
            .all(|o| o["status"] == 200 && o["content_type"] == "text/event-stream")
    );
    assert_eq!(
        with_event(&lines, "retry")[0]["ms"],
        1000,
        "the server's retry hint"
    );
    // The resume started right after the last id the peer had.
    let left = with_event(&lines, "left")[0]["last_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(EventId::parse(&left).unwrap().token().0, token);
    assert_eq!(with_event(&lines, "done").len(), 1);
    // Its `close` ended the session for good.
    wait_until("the peer's session is gone", || hub.stats().sessions == 1).await;
}
