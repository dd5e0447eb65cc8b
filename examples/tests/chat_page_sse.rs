//! The chat page's own JavaScript client over Server-Sent Events (`?transport=sse`), run in Node with the `eventsource` package as its `EventSource`: it chats, and survives a cut link by the EventSource's reconnect with `Last-Event-ID`.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tidings::prelude::*;
use tidings_examples::{CHAT_HTML, chat_app};
use tidings_test::peers;
use tidings_test::proxy::FaultProxy;
use tidings_test::require_peer;

const STEP: Duration = Duration::from_secs(20);
const FIRST: u64 = 10;
const SECOND: u64 = 10;

/// A Node module holding the page's `TidingsClient` class (cut out of the page) and a driver:
/// join `room:lobby` over SSE, say "ready", then print every message as a JSON line until
/// `total` arrived.
fn script(total: u64) -> String {
    let start = CHAT_HTML
        .find("class TidingsClient")
        .expect("the page defines TidingsClient");
    let end = CHAT_HTML
        .find("// ---- the page ----")
        .expect("the page marks its own code");
    let class = &CHAT_HTML[start..end];
    format!(
        r#"import {{ EventSource }} from 'eventsource';
globalThis.EventSource = EventSource;
globalThis.addEventListener = () => {{}};
{class}
const emit = (event, fields) => process.stdout.write(JSON.stringify({{ event, ...fields }}) + "\n");
const base = process.argv[2];
let seen = 0;
let ready = false;
const client = new TidingsClient(base + "/sse", {{
  status(state, detail, c) {{ emit("status", {{ state, detail: detail || null, resumed: !!c.resumed }}); }},
  message(channel, seq, data) {{
    emit("message", {{ channel, seq, data }});
    if (++seen === {total}) {{ clearTimeout(watchdog); process.exit(0); }}
  }},
  subscribed(channel, seq) {{
    emit("subscribed", {{ channel, seq }});
    if (!ready) {{ ready = true; client.publish(channel, {{ text: "ready", from: "node" }}); }}
  }},
  reset(channel) {{ emit("reset", {{ channel }}); }},
  gap(channel, from, to) {{ emit("gap", {{ channel, from, to }}); }},
  error(text) {{ emit("error", {{ text }}); }},
}}, "sse");
client.subscribe("room:lobby");
const watchdog = setTimeout(() => {{ emit("timeout", {{ seen }}); process.exit(1); }}, 40000);
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chat_page_client_chats_over_sse_and_resumes() {
    let node = require_peer!(peers::node());
    let modules = require_peer!(peers::node_modules());
    assert!(CHAT_HTML.contains("new EventSource(url)"));
    assert!(CHAT_HTML.contains(r#"get("transport") === "sse""#));

    let hub = Hub::new(Arc::new(MemoryBroker::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(axum::serve(listener, chat_app(hub.clone())).into_future());
    let proxy = FaultProxy::start(addr).await.unwrap();

    let dir = std::env::temp_dir().join(format!("tidings-chat-page-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("node_modules");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&modules, &link).unwrap();
    let file = dir.join("chat_page.mjs");
    let total = 1 + FIRST + SECOND;
    std::fs::write(&file, script(total)).unwrap();

    // A Rust client in the same room, over WebSocket, sees the page's "ready".
    let rust = tidings::ws::Client::builder(format!("ws://{addr}/ws"))
        .connect()
        .unwrap();
    rust.subscribe("room:lobby").unwrap();
    let url = format!("http://{}", proxy.addr());
    let task = tokio::spawn(async move {
        peers::run_script(&node, &file, [url], peers::NO_ENV, Duration::from_secs(60)).await
    });
    loop {
        let ev = tokio::time::timeout(STEP, rust.next_event())
            .await
            .expect("the page said ready")
            .unwrap();
        if let ClientEvent::Message(m) = ev {
            let v: Value = serde_json::from_slice(&m.payload).unwrap();
            assert_eq!(v["text"], "ready");
            break;
        }
    }
    for i in 1..=FIRST {
        hub.publish(
            "room:lobby",
            format!(r#"{{"text":"m{i}","from":"server"}}"#),
        )
        .await
        .unwrap();
    }
    // Let the first part arrive, cut the page's links, publish the rest while it reconnects.
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.cut_all();
    for i in FIRST + 1..=FIRST + SECOND {
        hub.publish(
            "room:lobby",
            format!(r#"{{"text":"m{i}","from":"server"}}"#),
        )
        .await
        .unwrap();
    }
    let out = task
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("the page's client failed: {e}"));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for l in &lines {
        eprintln!("{l}");
    }
    let seqs: Vec<u64> = lines
        .iter()
        .filter(|l| l["event"] == "message")
        .map(|l| l["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (1..=total).collect::<Vec<_>>(),
        "every message once, in order"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l["event"] == "gap" || l["event"] == "error"),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["event"] == "status" && l["state"] == "open" && l["resumed"] == true),
        "the page resumed its session after the cut"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
