//! Documents on the tidings session against a real server: two Rust `SyncedClient`s converge, a client whose link is cut (resumed, and not resumed: a new session that syncs again) converges, a Node `yjs` peer on the y-websocket route and a Rust client on the session edit one document and converge, and bad input is refused by name with the document intact.
#![allow(clippy::unwrap_used)]
#![cfg(feature = "client")]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use serde_json::Value;
use tidings_axum::{
    AuthError, DocsExtension, RouterExt, TidingsRoute, UpgradeRequest, YjsRoute, YjsRouterExt,
};
use tidings_channels::{ChannelGrants, Hub, HubConfig, Identity, MemoryBroker};
use tidings_protocol::ErrorCode;
use tidings_sync::yrs::sync::{Message, SyncMessage};
use tidings_sync::yrs::updates::encoder::Encode;
use tidings_sync::yrs::{Doc, GetString, ReadTxn, Text, Transact};
use tidings_sync::{DocConfig, DocError, Docs, DocsConfig, SyncedClient};
use tidings_test::peers;
use tidings_test::proxy::FaultProxy;
use tidings_test::require_peer;
use tidings_ws::WebSocket;

const EDITS: usize = 60;
const WAIT: Duration = Duration::from_secs(60);

type Synced = Arc<SyncedClient<WebSocket>>;

/// `?user=reader` may read documents only.
async fn who(request: UpgradeRequest) -> Result<Identity, AuthError> {
    let query = request.uri.query().unwrap_or_default();
    let user = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("user="))
        .unwrap_or("anon");
    let grants = if user == "reader" {
        ChannelGrants::none().subscribe("doc:*")
    } else {
        ChannelGrants::all()
    };
    Ok(Identity::new(user).with_grants(grants))
}

/// A hub serving `docs` on the session (`/ws`) and on y-websocket (`/yjs/NAME`).
async fn server(docs: Docs, config: HubConfig) -> std::net::SocketAddr {
    let hub = Hub::with_config(Arc::new(MemoryBroker::default()), config);
    DocsExtension::attach(&hub, docs.clone());
    let app = Router::new()
        .tidings_route("/ws", TidingsRoute::new(hub).auth(who))
        .tidings_yjs("/yjs", YjsRoute::new(docs));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

fn synced(addr: std::net::SocketAddr, user: &str, doc: &str) -> Synced {
    let client = tidings_ws::Client::builder(format!("ws://{addr}/ws?user={user}"))
        .connect()
        .unwrap();
    let s = Arc::new(SyncedClient::start(client, &format!("doc:{doc}")).unwrap());
    let run = s.clone();
    tokio::spawn(async move { run.run().await });
    s
}

fn text_of(doc: &Doc) -> String {
    doc.get_or_insert_text("t").get_string(&doc.transact())
}

fn markers(text: &str) -> usize {
    text.matches('[').count()
}

fn on_server(docs: &Docs, name: &str) -> String {
    docs.with_doc(name, |d| text_of(d.doc()))
        .unwrap_or_default()
}

/// Inserts marker `[name:i]` at a position spread over the text.
fn insert(s: &Synced, name: &str, i: usize) {
    s.edit(|doc| {
        let t = doc.get_or_insert_text("t");
        let mut txn = doc.transact_mut();
        let len = t.len(&txn);
        let pos = (i * 7919) as u32 % (len + 1);
        t.insert(&mut txn, pos, &format!("[{name}:{i}]"));
    })
    .unwrap();
}

/// Waits (polling, with a deadline) until `done` holds.
async fn until(what: &str, done: impl Fn() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

/// Every client and the server hold the same text with `expect` markers.
async fn converged(docs: &Docs, name: &str, clients: &[&Synced], expect: usize) -> String {
    until("convergence", || {
        let server = on_server(docs, name);
        markers(&server) == expect && clients.iter().all(|c| c.read(text_of) == server)
    })
    .await;
    for c in clients {
        assert!(c.take_errors().is_empty(), "no sync errors");
    }
    on_server(docs, name)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_rust_clients_on_the_session_converge_with_the_server() {
    let docs = Docs::new(DocsConfig::default());
    let addr = server(docs.clone(), HubConfig::default()).await;
    let (a, b) = (synced(addr, "ann", "d"), synced(addr, "bob", "d"));
    until("both synced", || a.is_synced() && b.is_synced()).await;
    for i in 0..EDITS {
        insert(&a, "ann", i);
        insert(&b, "bob", i);
        tokio::task::yield_now().await;
    }
    let text = converged(&docs, "d", &[&a, &b], 2 * EDITS).await;
    // A late joiner gets the whole document on the session.
    let c = synced(addr, "cy", "d");
    until("the late joiner", || c.read(text_of) == text).await;
}

/// `resumed`: the cut connection resumes its session (nothing to resync);
/// otherwise the resume window is zero, the client gets a new session,
/// subscribes again and syncs both ways.
async fn a_cut_link_still_converges(resumed: bool) {
    let docs = Docs::new(DocsConfig::default());
    let mut config = HubConfig::default();
    if !resumed {
        config.session = config.session.with_resume_window(Duration::ZERO);
    }
    let addr = server(docs.clone(), config).await;
    let proxy = FaultProxy::start(addr).await.unwrap();
    let a = synced(addr, "ann", "d");
    let b = synced(proxy.addr(), "bob", "d");
    until("both synced", || a.is_synced() && b.is_synced()).await;
    for i in 0..EDITS {
        insert(&a, "ann", i);
        insert(&b, "bob", i);
        if i == EDITS / 3 || i == 2 * EDITS / 3 {
            // The link drops mid-stream; both go on editing.
            proxy.cut_all();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    converged(&docs, "d", &[&a, &b], 2 * EDITS).await;
    assert!(proxy.stats().cuts >= 2, "the link was cut");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_whose_link_is_cut_twice_converges_after_resuming() {
    a_cut_link_still_converges(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_whose_session_is_lost_syncs_again_and_converges() {
    a_cut_link_still_converges(false).await;
}

fn script(name: &str) -> PathBuf {
    peers::workspace_root().join("tests/peers/node").join(name)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_yjs_peer_on_y_websocket_and_a_rust_client_on_the_session_converge() {
    let node = require_peer!(peers::node());
    let modules = require_peer!(peers::node_modules());
    let docs = Docs::new(DocsConfig::default());
    let addr = server(docs.clone(), HubConfig::default()).await;
    let expect = 2 * EDITS;
    let env = vec![(
        "TIDINGS_NODE_MODULES".to_owned(),
        modules.display().to_string(),
    )];
    let peer = tokio::spawn(async move {
        peers::run_script(
            &node,
            &script("yjs_client.mjs"),
            [
                format!("ws://{addr}/yjs/shared"),
                "node".to_owned(),
                EDITS.to_string(),
                expect.to_string(),
            ],
            env,
            WAIT,
        )
        .await
    });
    let rust = synced(addr, "ann", "shared");
    for i in 0..EDITS {
        insert(&rust, "rust", i);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let text = converged(&docs, "shared", &[&rust], expect).await;
    let out = peer
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("node peer failed: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last: Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .find(|v: &Value| v["event"] == "final")
        .unwrap_or_else(|| panic!("no final line in {stdout}"));
    assert_eq!(
        last["text"].as_str().unwrap(),
        text,
        "the Node peer ends with the server's text"
    );
    assert_eq!(markers(&text), expect);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_on_the_session_is_refused_by_name_and_the_document_stays() {
    let mut config = DocsConfig::default();
    config.doc = {
        let mut d = DocConfig::default();
        d.max_doc_bytes = 4096;
        d
    };
    config.awareness_per_sec = 5;
    let docs = Docs::new(config);
    let mut hub = HubConfig::default();
    hub.session.ack_after_store = true;
    let addr = server(docs.clone(), hub).await;
    let good = synced(addr, "ann", "d");
    until("synced", || good.is_synced()).await;
    good.edit(|doc| {
        let t = doc.get_or_insert_text("t");
        t.insert(&mut doc.transact_mut(), 0, "kept");
    })
    .unwrap();
    until("the server has it", || on_server(&docs, "d") == "kept").await;

    let big = {
        let d = Doc::new();
        d.get_or_insert_text("t")
            .insert(&mut d.transact_mut(), 0, &"x".repeat(10_000));
        d.transact().encode_state_as_update_v1(&Default::default())
    };
    let reader_edit = {
        let d = Doc::new();
        d.get_or_insert_text("t")
            .insert(&mut d.transact_mut(), 0, "reader");
        d.transact().encode_state_as_update_v1(&Default::default())
    };
    let cases: Vec<(&str, &str, Vec<Vec<u8>>, ErrorCode)> = vec![
        (
            "garbage",
            "eve",
            vec![vec![0u8, 2, 9, 1, 2]],
            ErrorCode::MalformedFrame,
        ),
        (
            "truncated",
            "eve",
            vec![vec![0u8, 0, 200]],
            ErrorCode::MalformedFrame,
        ),
        (
            "oversized document",
            "eve",
            vec![Message::Sync(SyncMessage::Update(big)).encode_v1()],
            ErrorCode::FrameTooLarge,
        ),
        (
            "awareness flood",
            "eve",
            (0..50).map(|_| vec![1u8, 1, 0]).collect(),
            ErrorCode::RateLimited,
        ),
        (
            "a reader's update",
            "reader",
            vec![Message::Sync(SyncMessage::Update(reader_edit)).encode_v1()],
            ErrorCode::Forbidden,
        ),
    ];
    for (name, user, payloads, code) in cases {
        let bad = synced(addr, user, "d");
        until("synced", || bad.is_synced()).await;
        for p in payloads {
            bad.client().publish("doc:d", p).unwrap();
        }
        until(name, || {
            bad.take_errors().iter().any(|e| {
                matches!(e, DocError::Refused { code: c, message, .. } if *c == code && !message.is_empty())
            })
        })
        .await;
        // The refused session lives on: it still syncs.
        assert_eq!(
            bad.read(text_of),
            "kept",
            "{name}: the session still has the document"
        );
        bad.close();
    }
    assert_eq!(on_server(&docs, "d"), "kept", "the document is intact");
    // The good client is still served.
    good.edit(|doc| {
        let t = doc.get_or_insert_text("t");
        let mut txn = doc.transact_mut();
        let len = t.len(&txn);
        t.insert(&mut txn, len, "!");
    })
    .unwrap();
    until("the good client's edit", || {
        on_server(&docs, "d") == "kept!"
    })
    .await;
}
