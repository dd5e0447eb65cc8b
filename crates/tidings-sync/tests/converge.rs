//! Three independent Yjs implementations edit one document through the tidings server at once — a Rust `yrs` client, a Node `yjs` + `y-protocols` client and a Python `pycrdt` client — with one client's link cut (the tidings-test fault proxy) in the middle of its edits; all three and the server converge to the same text and map. A fixed case, then a property test of random concurrent edits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::server;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use proptest::prelude::*;
use serde_json::{Value, json};
use tidings_sync::yrs::sync::{Message, SyncMessage};
use tidings_sync::yrs::updates::decoder::Decode;
use tidings_sync::yrs::updates::encoder::Encode;
use tidings_sync::yrs::{
    Any, Doc, GetString, Map, MapRef, Out, ReadTxn, Text, TextRef, Transact, Update,
};
use tidings_sync::{Docs, DocsConfig};
use tidings_test::peers::{self, PeerMissing};
use tidings_test::proxy::{FaultProxy, ProxyHandle};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{oneshot, watch};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// The peers, in the order of [`Plan::ops`] and [`Plan::cut`].
const NAMES: [&str; 3] = ["rust", "node", "python"];
/// The whole case (three processes) must finish within this.
const CASE: Duration = Duration::from_secs(120);

/// One scripted edit, the same for every implementation (positions are
/// thousandths of the text's current length, so any state gives a valid edit).
#[derive(Clone, Debug)]
enum Op {
    /// Insert the string at `at / 1001 * (len + 1)`.
    Ins(u16, String),
    /// Delete up to `n` characters from `at / 1001 * len`.
    Del(u16, u32),
    /// Set a map key to a string.
    Set(String, String),
    /// Pause (milliseconds), so the peers' edits interleave.
    Wait(u64),
}

impl Op {
    fn to_json(&self) -> Value {
        match self {
            Op::Ins(at, s) => json!(["ins", at, s]),
            Op::Del(at, n) => json!(["del", at, n]),
            Op::Set(k, v) => json!(["set", k, v]),
            Op::Wait(ms) => json!(["wait", ms]),
        }
    }
}

/// Each peer's edits, and whose link the proxy cuts halfway through them.
#[derive(Clone, Debug)]
struct Plan {
    ops: [Vec<Op>; 3],
    cut: usize,
}

/// What a peer (or the server) ends with.
#[derive(Clone, Debug, PartialEq, Eq)]
struct State {
    text: String,
    map: BTreeMap<String, String>,
}

fn read_state(text: &TextRef, map: &MapRef, txn: &impl ReadTxn) -> State {
    let map = map
        .iter(txn)
        .map(|(k, v)| {
            let v = match v {
                Out::Any(Any::String(s)) => s.to_string(),
                other => format!("{other:?}"),
            };
            (k.to_owned(), v)
        })
        .collect();
    State {
        text: text.get_string(txn),
        map,
    }
}

/// Applies one edit to the Rust peer's document (its own transaction).
fn apply(doc: &Doc, text: &TextRef, map: &MapRef, op: &Op) {
    let mut txn = doc.transact_mut();
    let len = text.len(&txn);
    match op {
        Op::Ins(at, s) => {
            let pos = (u64::from(*at) * (u64::from(len) + 1) / 1001) as u32;
            text.insert(&mut txn, pos, s);
        }
        Op::Del(at, n) => {
            if len > 0 {
                let start = (u64::from(*at) * u64::from(len) / 1001) as u32;
                let count = (*n).min(len - start);
                if count > 0 {
                    text.remove_range(&mut txn, start, count);
                }
            }
        }
        Op::Set(k, v) => {
            map.insert(&mut txn, k.as_str(), v.as_str());
        }
        Op::Wait(_) => {}
    }
}

fn all_fences(map: &MapRef, txn: &impl ReadTxn) -> bool {
    NAMES
        .iter()
        .all(|n| map.get(txn, &format!("done:{n}")).is_some())
}

/// The Rust peer: the same script as the others, over a WebSocket it
/// re-opens whenever it drops (sync step 1 each time, both ways). Cuts its
/// own link halfway if `cut` is given. Sends its final state on `done`,
/// then stays connected until `stop` changes; returns how often it
/// reconnected.
async fn rust_peer(
    addr: SocketAddr,
    ops: Vec<Op>,
    cut: Option<ProxyHandle>,
    done: oneshot::Sender<State>,
    mut stop: watch::Receiver<bool>,
) -> u32 {
    let doc = Doc::new();
    let text = doc.get_or_insert_text("t");
    let map = doc.get_or_insert_map("m");
    let half = ops.len() / 2;
    let mut next = 0usize;
    let mut synced = false;
    let mut fenced = false;
    let mut done = Some(done);
    let mut reconnects = 0u32;
    let mut first = true;
    loop {
        if !first {
            reconnects += 1;
        }
        first = false;
        let Ok((ws, _)) = tokio_tungstenite::connect_async(format!("ws://{addr}/doc")).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (mut tx, mut rx) = ws.split();
        let sv = doc.transact().state_vector();
        let step1 = Message::Sync(SyncMessage::SyncStep1(sv)).encode_v1();
        if tx.send(WsMessage::binary(step1)).await.is_err() {
            continue;
        }
        let mut wake = Box::pin(tokio::time::sleep(Duration::from_millis(1)));
        loop {
            tokio::select! {
                frame = rx.next() => {
                    let Some(Ok(WsMessage::Binary(data))) = frame else { break };
                    let msg = Message::decode_v1(&data).expect("a y-protocols message from the server");
                    match msg {
                        Message::Sync(SyncMessage::SyncStep1(sv)) => {
                            let u = doc.transact().encode_state_as_update_v1(&sv);
                            let reply = Message::Sync(SyncMessage::SyncStep2(u)).encode_v1();
                            if tx.send(WsMessage::binary(reply)).await.is_err() { break }
                        }
                        Message::Sync(SyncMessage::SyncStep2(u) | SyncMessage::Update(u)) => {
                            synced = true;
                            doc.transact_mut().apply_update(Update::decode_v1(&u).unwrap()).unwrap();
                        }
                        _ => {}
                    }
                }
                _ = stop.changed() => {
                    let _ = tx.close().await;
                    return reconnects;
                }
                () = &mut wake => {
                    let mut pause = Duration::from_millis(1);
                    if !synced {
                        // Edits start once the server's state is in.
                    } else if next < ops.len() {
                        if next == half && let Some(proxy) = &cut {
                            // The link drops mid-stream; edits go on offline.
                            proxy.cut_all();
                        }
                        let op = &ops[next];
                        next += 1;
                        let before = doc.transact().state_vector();
                        apply(&doc, &text, &map, op);
                        if let Op::Wait(ms) = op {
                            pause = Duration::from_millis(*ms);
                        }
                        let u = doc.transact().encode_state_as_update_v1(&before);
                        let m = Message::Sync(SyncMessage::Update(u)).encode_v1();
                        if tx.send(WsMessage::binary(m)).await.is_err() { break }
                    } else if !fenced {
                        fenced = true;
                        let before = doc.transact().state_vector();
                        apply(&doc, &text, &map, &Op::Set("done:rust".into(), "1".into()));
                        let u = doc.transact().encode_state_as_update_v1(&before);
                        let m = Message::Sync(SyncMessage::Update(u)).encode_v1();
                        if tx.send(WsMessage::binary(m)).await.is_err() { break }
                    } else if done.is_some() && all_fences(&map, &doc.transact()) {
                        let state = read_state(&text, &map, &doc.transact());
                        if let Some(d) = done.take() {
                            let _ = d.send(state);
                        }
                    }
                    wake.as_mut().reset(tokio::time::Instant::now() + pause);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A peer script running as a child process, fed through stdin.
struct External {
    name: &'static str,
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl External {
    fn spawn(name: &'static str, program: &Path, script: PathBuf, args: Vec<String>) -> Self {
        let modules = peers::node_modules().map(|m| m.display().to_string());
        let mut cmd = Command::new(program);
        cmd.arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Ok(m) = modules {
            cmd.env("TIDINGS_NODE_MODULES", m);
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{name}: spawn: {e}"));
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Self {
            name,
            child,
            stdin,
            lines,
        }
    }

    /// Reads the script's JSON lines until `final`; cuts the proxy's links
    /// at `half` when `cut` is given, then lets the script go on.
    async fn run_to_final(&mut self, cut: Option<ProxyHandle>) -> State {
        loop {
            let line = self
                .lines
                .next_line()
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{}: exited before its final state", self.name));
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            match v["event"].as_str() {
                Some("half") => {
                    if let Some(proxy) = &cut {
                        assert!(proxy.cut_all() > 0, "{}: a live link to cut", self.name);
                    }
                    self.stdin.write_all(b"go\n").await.unwrap();
                }
                Some("final") => {
                    let map = v["map"]
                        .as_object()
                        .unwrap()
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                        .collect();
                    return State {
                        text: v["text"].as_str().unwrap().to_owned(),
                        map,
                    };
                }
                _ => {}
            }
        }
    }

    /// Tells the script to stop, waits for a clean exit, and returns how
    /// often it reconnected.
    async fn stop(mut self) -> u32 {
        self.stdin.write_all(b"stop\n").await.unwrap();
        let mut reconnects = None;
        while let Ok(Some(line)) = self.lines.next_line().await {
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["event"] == "stopped"
            {
                reconnects = v["reconnects"].as_u64().map(|n| n as u32);
            }
        }
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{}: did not exit", self.name))
            .unwrap();
        assert!(status.success(), "{}: {status}", self.name);
        reconnects.unwrap_or_else(|| panic!("{}: no stopped line", self.name))
    }
}

/// The Node and Python interpreters, or a loud skip.
struct Peers {
    node: PathBuf,
    python: PathBuf,
}

fn pycrdt(python: PathBuf) -> Result<PathBuf, PeerMissing> {
    let ok = std::process::Command::new(&python)
        .args(["-c", "import pycrdt, websockets"])
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(python)
    } else {
        Err(PeerMissing::NotInstalled {
            peer: "pycrdt in the python venv",
            path: python,
        })
    }
}

fn find_peers() -> Option<Peers> {
    let node = peers::require(peers::node())?;
    peers::require(peers::node_modules())?;
    let python = peers::require(peers::python().and_then(pycrdt))?;
    Some(Peers { node, python })
}

/// Runs one plan: a server, a proxy in front of it for the peer whose link
/// is cut, the three peers; returns once all converged (panics otherwise).
async fn converge(peers: &Peers, plan: Plan) {
    let docs = Docs::new(DocsConfig::default());
    let addr = server(docs.clone()).await;
    let proxy = FaultProxy::start(addr).await.unwrap();
    let target = |i: usize| if plan.cut == i { proxy.addr() } else { addr };
    let cut = |i: usize| (plan.cut == i).then(|| proxy.handle());
    let ops_json =
        |i: usize| Value::Array(plan.ops[i].iter().map(Op::to_json).collect()).to_string();
    let names = NAMES.join(",");
    let root = peers::workspace_root().join("tests/peers");

    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, done_rx) = oneshot::channel();
    let rust = tokio::spawn(rust_peer(
        target(0),
        plan.ops[0].clone(),
        cut(0),
        done_tx,
        stop_rx,
    ));
    let mut node = External::spawn(
        "node",
        &peers.node,
        root.join("node/yjs_ops_client.mjs"),
        vec![
            format!("ws://{}/doc", target(1)),
            "node".into(),
            names.clone(),
            ops_json(1),
        ],
    );
    let mut python = External::spawn(
        "python",
        &peers.python,
        root.join("python/pycrdt_client.py"),
        vec![
            format!("ws://{}/doc", target(2)),
            "python".into(),
            names,
            ops_json(2),
        ],
    );
    let (n_cut, p_cut) = (cut(1), cut(2));
    let (rust_final, node_final, python_final) = tokio::join!(
        async { done_rx.await.expect("the Rust peer's final state") },
        node.run_to_final(n_cut),
        python.run_to_final(p_cut),
    );
    let _ = stop_tx.send(true);
    let reconnects = [rust.await.unwrap(), node.stop().await, python.stop().await];
    let finals = [rust_final, node_final, python_final];
    let reconnects = reconnects[plan.cut];
    assert!(
        reconnects >= 1,
        "{} had its link cut and reconnected",
        NAMES[plan.cut]
    );
    let server = docs
        .with_doc("doc", |d| {
            let doc = d.doc();
            let (t, m) = (doc.get_or_insert_text("t"), doc.get_or_insert_map("m"));
            read_state(&t, &m, &doc.transact())
        })
        .unwrap();
    for name in NAMES {
        assert_eq!(
            server.map.get(&format!("done:{name}")).map(String::as_str),
            Some("1")
        );
    }
    eprintln!(
        "converged: {} ops, {} cut and reconnected {reconnects}x, text of {} chars, {} map keys",
        plan.ops.iter().map(Vec::len).sum::<usize>(),
        NAMES[plan.cut],
        server.text.len(),
        server.map.len()
    );
    for (i, state) in finals.iter().enumerate() {
        assert_eq!(state, &server, "{} ends with the server's state", NAMES[i]);
    }
}

fn fixed_plan() -> Plan {
    let script = |tag: &str| -> Vec<Op> {
        (0..30)
            .map(|i| match i % 6 {
                0 | 3 => Op::Ins((i * 137 % 1001) as u16, format!("{tag}{i}")),
                1 => Op::Wait(2),
                2 => Op::Set(format!("k{}", i % 4), format!("{tag}{i}")),
                4 => Op::Del((i * 331 % 1001) as u16, 2),
                _ => Op::Wait(1),
            })
            .collect()
    };
    Plan {
        ops: [script("r"), script("n"), script("p")],
        cut: 2,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pycrdt_node_yjs_and_rust_yrs_converge_through_the_server_with_the_python_link_cut() {
    let Some(peers) = find_peers() else { return };
    tokio::time::timeout(CASE, converge(&peers, fixed_plan()))
        .await
        .expect("converged in time");
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u16..=1000, "[a-z]{1,6}").prop_map(|(at, s)| Op::Ins(at, s)),
        2 => (0u16..=1000, 1u32..5).prop_map(|(at, n)| Op::Del(at, n)),
        2 => (0usize..4, "[a-z]{1,4}").prop_map(|(k, v)| Op::Set(format!("k{k}"), v)),
        3 => (0u64..4).prop_map(Op::Wait),
    ]
}

fn plan() -> impl Strategy<Value = Plan> {
    let ops = || proptest::collection::vec(op(), 4..40);
    (ops(), ops(), ops(), 0usize..3).prop_map(|(a, b, c, cut)| Plan {
        ops: [a, b, c],
        cut,
    })
}

proptest! {
    // Real processes per case: few cases, no shrinking marathon.
    #![proptest_config(ProptestConfig {
        cases: 4,
        max_shrink_iters: 8,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_concurrent_edits_of_three_implementations_with_a_cut_link_converge(plan in plan()) {
        let Some(peers) = find_peers() else { return Ok(()) };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(CASE, converge(&peers, plan))
                .await
                .expect("converged in time");
        });
    }
}
