//! Interop with independent peers: Python `websockets` and Node `ws` clients speak `tidings.v1.json` by hand against the real server.
//!
//! Each test starts a [`WsServer`] serving a [`Hub`] on `127.0.0.1:0`, runs a
//! peer script (under `tests/peers/`) as a child process with a hard timeout,
//! drives the Rust side (publishing from a Rust [`Client`]) while the script
//! runs, then parses the script's stdout (one JSON object per line) and
//! asserts on what the peer saw. A missing peer skips the test loudly
//! (`TIDINGS_REQUIRE_PEERS=1` turns that into a failure); `cargo xtask setup`
//! installs the peers.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tidings_channels::{Hub, MemoryBroker};
use tidings_protocol::{ChannelName, ClientEvent, Message};
use tidings_test::peers::{self, PeerError};
use tidings_test::require_peer;
use tidings_ws::{Accepted, Client, ServerConfig, ServerHandle, WsConfig, WsServer};
use tokio::task::JoinHandle;

/// Hard limit for one peer script (it is killed after that).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);
/// Limit for one step the Rust side waits for.
const STEP: Duration = Duration::from_secs(20);
const SUBPROTOCOL: &str = "tidings.v1.json";

/// A server with a hub on an in-memory broker.
struct Fixture {
    hub: Hub,
    broker: Arc<MemoryBroker>,
    server: ServerHandle,
    url: String,
}

impl Fixture {
    async fn start(config: ServerConfig) -> Self {
        let broker = Arc::new(MemoryBroker::default());
        let hub = Hub::new(broker.clone());
        let served = hub.clone();
        let server = WsServer::bind("127.0.0.1:0".parse().unwrap(), config)
            .await
            .unwrap()
            .serve(move |conn: Accepted| {
                let hub = served.clone();
                async move {
                    let (t, codec, _shutdown) = conn.into_transport();
                    hub.serve(t, codec).await
                }
            });
        let url = format!("ws://{}/", server.local_addr());
        Self {
            hub,
            broker,
            server,
            url,
        }
    }

    fn subscribers(&self, channel: &str) -> usize {
        self.broker
            .subscriber_count(&ChannelName::new(channel).unwrap())
    }

    async fn stop(self) {
        self.hub.shutdown("test over");
        self.server.shutdown().await;
    }
}

/// A peer script running on its own task, so the test can drive the Rust side meanwhile.
struct Script {
    task: Option<JoinHandle<Result<Output, PeerError>>>,
    /// How it ended, once it did: its output, or the whole failure report.
    done: Option<Result<Output, String>>,
}

impl Script {
    /// Runs `interpreter script args...`, killed after [`SCRIPT_TIMEOUT`].
    fn spawn(
        interpreter: &Path,
        script: PathBuf,
        args: Vec<String>,
        env: Vec<(String, String)>,
    ) -> Self {
        let interpreter = interpreter.to_path_buf();
        let task = tokio::spawn(async move {
            peers::run_script(&interpreter, &script, args, env, SCRIPT_TIMEOUT).await
        });
        Self {
            task: Some(task),
            done: None,
        }
    }

    /// No script (for steps that wait on Rust clients only).
    fn none() -> Self {
        Self {
            task: None,
            done: None,
        }
    }

    async fn collect(&mut self) {
        if let Some(task) = self.task.take() {
            self.done = Some(match task.await {
                Ok(Ok(out)) => Ok(out),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(format!("script task failed: {e}")),
            });
        }
    }

    /// How the script ended, if it has.
    async fn ended(&mut self) -> Option<&Result<Output, String>> {
        if self.task.as_ref().is_some_and(JoinHandle::is_finished) {
            self.collect().await;
        }
        self.done.as_ref()
    }

    /// Panics with the script's report if it has failed.
    async fn check(&mut self, what: &str) {
        if let Some(Err(report)) = self.ended().await {
            panic!("peer script failed while {what}: {report}");
        }
    }

    /// Waits for the script and returns its stdout as JSON lines; panics with
    /// its whole output if it failed or timed out.
    async fn finish(mut self) -> Vec<Value> {
        self.collect().await;
        let out = match self.done {
            Some(Ok(out)) => out,
            Some(Err(report)) => panic!("peer script failed: {report}"),
            None => panic!("no peer script"),
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !stderr.trim().is_empty() {
            eprintln!("--- peer stderr ---\n{stderr}");
        }
        stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("peer printed a non-JSON line {l:?}: {e}\n{stdout}"))
            })
            .collect()
    }
}

fn peer_script(dir: &str, name: &str) -> PathBuf {
    peers::workspace_root()
        .join("tests")
        .join("peers")
        .join(dir)
        .join(name)
}

/// Output of a script that ended, for failure messages.
fn describe(ended: Option<&Result<Output, String>>) -> String {
    match ended {
        Some(Ok(out)) => format!(
            "exited successfully\n--- stdout ---\n{}\n--- stderr ---\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Some(Err(report)) => report.clone(),
        None => "still running".into(),
    }
}

/// Polls `cond` until it holds; fails early (with the script's output) if the
/// script ends first, or after [`STEP`].
async fn wait_until(what: &str, script: &mut Script, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        if cond() {
            return;
        }
        if let Some(ended) = script.ended().await {
            panic!("peer script ended before {what}: {}", describe(Some(ended)));
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The next `Message` event of a Rust client (other events are skipped,
/// gaps and errors fail the test); fails early if the script fails.
async fn next_message(client: &Client, script: &mut Script) -> Message {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let event =
            match tokio::time::timeout(Duration::from_millis(100), client.next_event()).await {
                Ok(event) => event,
                Err(_) => {
                    script.check("the Rust client waited for a message").await;
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "Rust client: no message in time"
                    );
                    continue;
                }
            };
        match event.expect("Rust client closed") {
            ClientEvent::Message(m) => return m,
            ClientEvent::Gap(g) => panic!("Rust client saw a gap: {g:?}"),
            ClientEvent::Error { code, message } => {
                panic!("Rust client got error {code}: {message}")
            }
            _ => {}
        }
    }
}

async fn wait_subscribed(client: &Client) {
    loop {
        let ev = tokio::time::timeout(STEP, client.next_event())
            .await
            .expect("subscribed in time");
        match ev.expect("client open") {
            ClientEvent::Subscribed { .. } => return,
            ClientEvent::Error { code, message } => panic!("error {code}: {message}"),
            _ => {}
        }
    }
}

fn with_event<'a>(lines: &'a [Value], event: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["event"] == event).collect()
}

fn one<'a>(lines: &'a [Value], event: &str) -> &'a Value {
    let found = with_event(lines, event);
    assert_eq!(
        found.len(),
        1,
        "expected exactly one `{event}` line, got {found:?}\nall: {lines:#?}"
    );
    found[0]
}

fn rust_payload(n: u64) -> Value {
    json!({"from": "rust", "n": n, "text": format!("message {n} from the Rust client")})
}

/// Everything test 1 (Python) and test 3 (Node) check about a room client:
/// handshake, N messages in order with ids, acks, own publish acknowledged,
/// ping/pong (`ping_nonce`) and a clean close. `rust_seen` are the messages the Rust client
/// received (1..=N its own, N+1 the peer's).
fn check_room_client(
    lines: &[Value],
    n: u64,
    peer_payload: &Value,
    ping_nonce: u64,
    rust_seen: &[Message],
) {
    assert!(
        with_event(lines, "other").is_empty(),
        "unexpected frames: {:#?}",
        with_event(lines, "other")
    );
    assert_eq!(
        one(lines, "open")["subprotocol"],
        SUBPROTOCOL,
        "server must select the offered subprotocol"
    );

    let welcome = &one(lines, "welcome")["frame"];
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["version"], 1);
    assert_eq!(welcome["resumed"], false);
    assert_eq!(welcome["publish_acked"], 0);
    assert!(
        welcome["session"].as_str().is_some_and(|s| !s.is_empty()),
        "{welcome}"
    );
    assert!(
        welcome["resume_token"]
            .as_str()
            .is_some_and(|s| s.len() >= 16),
        "{welcome}"
    );
    assert!(
        welcome["heartbeat_ms"].as_u64().is_some_and(|h| h > 0),
        "{welcome}"
    );
    assert!(
        welcome["max_frame"].as_u64().is_some_and(|m| m > 0),
        "{welcome}"
    );

    let subscribed = &one(lines, "subscribed")["frame"];
    assert_eq!(
        subscribed,
        &json!({"type": "subscribed", "channel": "room", "seq": 0})
    );

    let messages = with_event(lines, "message");
    assert_eq!(messages.len() as u64, n, "{messages:#?}");
    let mut ids = std::collections::HashSet::new();
    for (i, line) in messages.iter().enumerate() {
        let m = &line["frame"];
        let seq = i as u64 + 1;
        assert_eq!(m["type"], "message");
        assert_eq!(m["channel"], "room");
        assert_eq!(m["seq"], seq, "messages out of order: {messages:#?}");
        assert_eq!(m["data"], rust_payload(seq));
        let id: u64 = m["id"]
            .as_str()
            .expect("id is a string")
            .parse()
            .expect("id is a decimal u64");
        assert!(ids.insert(id), "duplicate id {id}");
        assert_eq!(
            id, rust_seen[i].id.0,
            "peer and Rust client disagree on the id of message {seq}"
        );
    }

    let acks: Vec<u64> = with_event(lines, "ack_sent")
        .iter()
        .map(|l| l["seq"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (1..=n).filter(|s| s % 10 == 0 || *s == n).collect();
    assert_eq!(acks, expected);

    assert_eq!(
        one(lines, "publish_ack")["frame"],
        json!({"type": "publish_ack", "seq": 1})
    );
    let own = &one(lines, "own_message")["frame"];
    assert_eq!(own["seq"], n + 1);
    assert_eq!(&own["data"], peer_payload);
    assert_eq!(
        one(lines, "pong")["frame"],
        json!({"type": "pong", "nonce": ping_nonce})
    );

    let reply = &one(lines, "close_reply")["frame"];
    assert_eq!(reply["type"], "close");
    assert_eq!(reply["code"], 1000);

    // The Rust client got its own messages back, then the peer's publish.
    assert_eq!(rust_seen.len() as u64, n + 1);
    for (i, m) in rust_seen.iter().enumerate() {
        assert_eq!(m.seq, i as u64 + 1);
        assert_eq!(m.channel.as_str(), "room");
    }
    let last: Value = serde_json::from_slice(&rust_seen[n as usize].payload).unwrap();
    assert_eq!(
        &last, peer_payload,
        "the Rust client must receive the peer's publish"
    );
    assert_eq!(
        own["id"].as_str().unwrap(),
        rust_seen[n as usize].id.0.to_string()
    );
}

/// The common shape of tests 1 and 3: the peer joins "room", the Rust client
/// publishes `n` messages, the peer publishes one; returns the peer's lines
/// and what the Rust client received.
async fn room_exchange(fx: &Fixture, mut script: Script, n: u64) -> (Vec<Value>, Vec<Message>) {
    let rust = Client::builder(&fx.url).connect().unwrap();
    rust.subscribe("room").unwrap();
    wait_subscribed(&rust).await;
    wait_until("the peer subscribed to room", &mut script, || {
        fx.subscribers("room") == 2
    })
    .await;
    for i in 1..=n {
        rust.publish("room", serde_json::to_vec(&rust_payload(i)).unwrap())
            .unwrap();
    }
    let mut seen = Vec::new();
    for _ in 0..=n {
        seen.push(next_message(&rust, &mut script).await);
    }
    let lines = script.finish().await;
    // The peer ended its session with `close`: the hub forgets it (only the
    // Rust client's session is left).
    let deadline = tokio::time::Instant::now() + STEP;
    while fx.hub.stats().sessions != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "peer session not removed: {:?}",
            fx.hub.stats()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    rust.close();
    (lines, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn python_websockets_client_joins_room_and_acks() {
    let python = require_peer!(peers::python());
    let fx = Fixture::start(ServerConfig::default()).await;
    const N: u64 = 50;
    let script = Script::spawn(
        &python,
        peer_script("python", "room_client.py"),
        vec![fx.url.clone(), "room".into(), N.to_string()],
        vec![],
    );
    let (lines, seen) = room_exchange(&fx, script, N).await;
    let payload = json!({"from": "python", "lib": "websockets", "text": "hello from python"});
    check_room_client(&lines, N, &payload, 4242, &seen);
    // The WebSocket closing handshake completed with 1000 both ways.
    let closed = one(&lines, "closed");
    assert_eq!(closed["rcvd"]["code"], 1000, "{closed}");
    assert_eq!(closed["sent"]["code"], 1000, "{closed}");
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn node_ws_client_pubsub() {
    let node = require_peer!(peers::node());
    let modules = require_peer!(peers::node_modules());
    let fx = Fixture::start(ServerConfig::default()).await;
    const N: u64 = 50;
    let script = Script::spawn(
        &node,
        peer_script("node", "room_client.mjs"),
        vec![fx.url.clone(), "room".into(), N.to_string()],
        vec![("TIDINGS_NODE_MODULES".into(), modules.display().to_string())],
    );
    let (lines, seen) = room_exchange(&fx, script, N).await;
    let payload = json!({"from": "node", "lib": "ws", "text": "hello from node"});
    check_room_client(&lines, N, &payload, 2424, &seen);
    let closed = one(&lines, "closed");
    assert_eq!(closed["code"], 1000, "{closed}");
    fx.stop().await;
}

/// One bad-input case reported by `bad_inputs.py`.
fn case<'a>(lines: &'a [Value], name: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["event"] == "case" && l["name"] == name)
        .unwrap_or_else(|| panic!("no case {name} in {lines:#?}"))
}

/// Asserts that a case ended with an `error` frame of `code`, then a `close`
/// frame and a WebSocket close, both with `close_code` and a reason.
fn assert_typed_refusal(c: &Value, code: &str, close_code: u64) {
    assert_eq!(
        c["timed_out"], false,
        "server neither answered nor closed: {c:#}"
    );
    let frames = c["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 2, "expected error + close frames: {c:#}");
    assert_eq!(frames[0]["type"], "error", "{c:#}");
    assert_eq!(frames[0]["code"], code, "{c:#}");
    assert!(
        frames[0]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{c:#}"
    );
    assert_eq!(frames[1]["type"], "close", "{c:#}");
    assert_eq!(frames[1]["code"], close_code, "{c:#}");
    assert_ws_close(c, close_code);
}

/// Asserts the WebSocket close frame the server sent: `code` and a reason.
fn assert_ws_close(c: &Value, code: u64) {
    let rcvd = &c["close"]["rcvd"];
    assert_eq!(rcvd["code"], code, "WebSocket close code: {c:#}");
    assert!(
        rcvd["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "close reason must say why: {c:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn python_bad_inputs_get_typed_errors() {
    let python = require_peer!(peers::python());
    const MAX_MESSAGE: usize = 64 * 1024;
    let config =
        ServerConfig::default().with_ws(WsConfig::default().with_max_message_bytes(MAX_MESSAGE));
    let fx = Fixture::start(config).await;
    let script = Script::spawn(
        &python,
        peer_script("python", "bad_inputs.py"),
        vec![fx.url.clone(), MAX_MESSAGE.to_string()],
        vec![],
    );
    let lines = script.finish().await;
    for l in &lines {
        eprintln!("{l}");
    }

    let c = case(&lines, "malformed_json_first_frame");
    assert_eq!(c["subprotocol"], SUBPROTOCOL);
    assert_typed_refusal(c, "malformed_frame", 1002);

    let c = case(&lines, "malformed_json_in_session");
    assert_eq!(c["welcome"], true);
    assert_typed_refusal(c, "malformed_frame", 1002);

    let c = case(&lines, "unknown_frame_type");
    assert_typed_refusal(c, "unknown_frame_type", 1002);
    assert!(
        c["frames"][0]["message"]
            .as_str()
            .unwrap()
            .contains("teleport"),
        "{c:#}"
    );

    // A binary message on the JSON subprotocol is not a JSON frame.
    let c = case(&lines, "binary_garbage");
    assert_typed_refusal(c, "malformed_frame", 1002);

    // Invalid UTF-8 in a text message fails the WebSocket itself (RFC 6455 §8.1).
    let c = case(&lines, "invalid_utf8_text");
    assert_eq!(c["timed_out"], false, "{c:#}");
    assert_ws_close(c, 1007);

    // Larger than the WebSocket message limit: 1009.
    let c = case(&lines, "too_large");
    assert_eq!(c["timed_out"], false, "{c:#}");
    assert_ws_close(c, 1009);

    let c = case(&lines, "hello_version_99");
    assert_typed_refusal(c, "unsupported_version", 4005);
    assert!(
        c["frames"][0]["message"].as_str().unwrap().contains("99"),
        "{c:#}"
    );

    for (name, offered) in [
        ("subprotocol_v9_bin", "tidings.v9.bin"),
        ("subprotocol_foo", "foo"),
    ] {
        let c = case(&lines, name);
        assert_eq!(c["accepted"], false, "{c:#}");
        assert_eq!(c["http_status"], 400, "{c:#}");
        assert!(
            c["http_body"].as_str().unwrap().contains(offered),
            "body must name {offered}: {c:#}"
        );
        assert!(
            c["http_headers"]["x-tidings-error"]
                .as_str()
                .is_some_and(|h| h.contains(offered)),
            "x-tidings-error must name {offered}: {c:#}"
        );
    }
    one(&lines, "done");

    // The server keeps serving well-behaved clients.
    let alice = Client::builder(&fx.url).connect().unwrap();
    let bob = Client::builder(&fx.url).connect().unwrap();
    alice.subscribe("after").unwrap();
    wait_subscribed(&alice).await;
    bob.publish("after", r#"{"still":"serving"}"#).unwrap();
    let m = next_message(&alice, &mut Script::none()).await;
    assert_eq!(m.seq, 1);
    assert_eq!(&m.payload[..], br#"{"still":"serving"}"#);
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn python_client_resumes_after_drop() {
    let python = require_peer!(peers::python());
    let fx = Fixture::start(ServerConfig::default()).await;
    const FIRST: u64 = 10;
    const SECOND: u64 = 10;
    const ACK_UPTO: u64 = 5;
    let mut script = Script::spawn(
        &python,
        peer_script("python", "resume_client.py"),
        vec![
            fx.url.clone(),
            "room".into(),
            FIRST.to_string(),
            SECOND.to_string(),
            ACK_UPTO.to_string(),
        ],
        vec![],
    );
    let rust = Client::builder(&fx.url).connect().unwrap();
    rust.subscribe("room").unwrap();
    wait_subscribed(&rust).await;
    // Rust client + the peer's observer and main sessions.
    wait_until("both peer sessions subscribed", &mut script, || {
        fx.subscribers("room") == 3
    })
    .await;
    for i in 1..=FIRST {
        rust.publish("room", serde_json::to_vec(&rust_payload(i)).unwrap())
            .unwrap();
    }
    for i in 1..=FIRST {
        assert_eq!(next_message(&rust, &mut script).await.seq, i);
    }
    // The main session's connection drops; the server notices (3 -> 2 connections)
    // and keeps the session detached, buffering for resume.
    wait_until("the server saw the drop", &mut script, || {
        fx.hub.stats().connections == 2
    })
    .await;
    assert_eq!(
        fx.hub.stats().sessions,
        3,
        "the dropped session must stay resumable"
    );
    for i in FIRST + 1..=FIRST + SECOND {
        rust.publish("room", serde_json::to_vec(&rust_payload(i)).unwrap())
            .unwrap();
    }
    for i in FIRST + 1..=FIRST + SECOND {
        assert_eq!(next_message(&rust, &mut script).await.seq, i);
    }
    let lines = script.finish().await;
    rust.close();

    assert!(
        with_event(&lines, "other").is_empty(),
        "unexpected frames: {:#?}",
        with_event(&lines, "other")
    );
    let welcome = &one(&lines, "welcome")["frame"];
    let resumed = &one(&lines, "resumed_welcome")["frame"];
    assert_eq!(resumed["resumed"], true, "{resumed}");
    assert_eq!(resumed["session"], welcome["session"]);
    assert_eq!(resumed["resume_token"], welcome["resume_token"]);

    let seqs = |phase: &str| -> Vec<u64> {
        with_event(&lines, "message")
            .iter()
            .filter(|l| l["phase"] == phase)
            .map(|l| {
                let seq = l["frame"]["seq"].as_u64().unwrap();
                assert_eq!(l["frame"]["data"], rust_payload(seq));
                seq
            })
            .collect()
    };
    assert_eq!(seqs("before_drop"), (1..=FIRST).collect::<Vec<_>>());
    assert_eq!(
        seqs("after_resume"),
        (FIRST + 1..=FIRST + SECOND).collect::<Vec<_>>(),
        "resume must re-send exactly the messages after the position, in order"
    );
    assert_eq!(one(&lines, "observer_saw")["seq"], FIRST + SECOND);
    let closed = one(&lines, "closed");
    assert_eq!(closed["rcvd"]["code"], 1000, "{closed}");
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn python_websocket_close_gets_a_close_reply() {
    let python = require_peer!(peers::python());
    let fx = Fixture::start(ServerConfig::default()).await;
    let script = Script::spawn(
        &python,
        peer_script("python", "ws_close.py"),
        vec![fx.url.clone(), "room".into()],
        vec![],
    );
    let lines = script.finish().await;
    for name in ["in_session", "before_hello"] {
        let c = case(&lines, name);
        // RFC 6455 §5.5.1: the server answers a Close frame with a Close frame
        // (echoing the code) instead of just dropping the TCP connection.
        assert_eq!(c["close"]["sent"]["code"], 1000, "{c:#}");
        assert_eq!(
            c["close"]["rcvd"]["code"], 1000,
            "no close reply from the server: {c:#}"
        );
    }
    fx.stop().await;
}
