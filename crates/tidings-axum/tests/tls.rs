//! TLS end to end on a real `Server` with a test CA: the Rust WebSocket client over wss://, the Rust SSE client over https://, the Python `websockets` peer over wss://, and a client that does not trust the CA is refused.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tidings_axum::{RouterExt, Server, SseRouterExt, TlsConfig};
use tidings_channels::{Hub, MemoryBroker};
use tidings_protocol::ClientEvent;
use tidings_test::peers;
use tidings_test::require_peer;
use tidings_test::tls::TestCa;

const STEP: Duration = Duration::from_secs(10);

async fn tls_server(ca: &TestCa) -> (std::net::SocketAddr, Hub) {
    let hub = Hub::new(Arc::new(MemoryBroker::default()));
    let app = Router::new()
        .tidings("/ws", hub.clone())
        .tidings_sse("/sse", hub.clone());
    let tls = TlsConfig::from_pem(ca.cert_pem().as_bytes(), ca.key_pem().as_bytes()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        Server::new()
            .tls(tls)
            .serve(listener, app, std::future::pending())
            .await
            .unwrap()
    });
    (addr, hub)
}

/// Subscribes, publishes and reads the message back.
async fn round_trip<T: tidings_runtime::ClientTransport>(c: &tidings_runtime::Client<T>) {
    c.subscribe("room:tls").unwrap();
    loop {
        match tokio::time::timeout(STEP, c.next_event()).await.unwrap() {
            Some(ClientEvent::Subscribed { .. }) => break,
            Some(ClientEvent::Disconnected { reason, .. }) => panic!("disconnected: {reason}"),
            Some(_) => {}
            None => panic!("client closed"),
        }
    }
    c.publish("room:tls", r#"{"text":"over TLS"}"#).unwrap();
    loop {
        match tokio::time::timeout(STEP, c.next_event()).await.unwrap() {
            Some(ClientEvent::Message(m)) => {
                assert_eq!(&m.payload[..], br#"{"text":"over TLS"}"#);
                return;
            }
            Some(_) => {}
            None => panic!("client closed"),
        }
    }
}

#[tokio::test]
async fn rust_ws_client_connects_over_wss_with_the_test_ca() {
    let ca = TestCa::new().unwrap();
    let (addr, _hub) = tls_server(&ca).await;
    let url = format!("wss://localhost:{}/ws", addr.port());
    let client = tidings_ws::Client::builder(&url)
        .root_certificate_pem(ca.ca_pem())
        .connect()
        .unwrap();
    round_trip(&client).await;
}

#[tokio::test]
async fn rust_sse_client_connects_over_https_with_the_test_ca() {
    let ca = TestCa::new().unwrap();
    let (addr, _hub) = tls_server(&ca).await;
    // By IP address this time: the certificate names 127.0.0.1 too.
    let url = format!("https://127.0.0.1:{}/sse", addr.port());
    let client = tidings_sse::Client::builder(&url)
        .root_certificate_pem(ca.ca_pem())
        .connect()
        .unwrap();
    round_trip(&client).await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_ca_is_refused_and_plain_http_gets_nothing() {
    let ca = TestCa::new().unwrap();
    let (addr, hub) = tls_server(&ca).await;
    // Another CA: the TLS handshake fails, no session is ever served.
    let other = TestCa::new().unwrap();
    let client = tidings_ws::Client::builder(format!("wss://localhost:{}/ws", addr.port()))
        .root_certificate_pem(other.ca_pem())
        .connect()
        .unwrap();
    let ev = tokio::time::timeout(STEP, async {
        loop {
            match client.next_event().await {
                Some(ClientEvent::Disconnected { reason, .. }) => return reason,
                Some(_) => {}
                None => return "closed".to_string(),
            }
        }
    })
    .await
    .unwrap();
    assert!(ev.contains("TLS handshake"), "{ev}");
    // Plain HTTP to the TLS port: no HTTP response.
    let plain = {
        tidings_runtime::install_tls_provider();
        reqwest::Client::new()
    }
    .get(format!("http://127.0.0.1:{}/sse", addr.port()))
    .send()
    .await;
    assert!(plain.is_err(), "{plain:?}");
    assert_eq!(hub.stats().connections, 0);
}

#[tokio::test]
async fn python_websockets_connects_over_wss_with_the_test_ca() {
    let python = require_peer!(peers::python());
    let ca = TestCa::new().unwrap();
    let dir = std::env::temp_dir().join(format!("tidings-tls-{}", std::process::id()));
    let ca_file = ca.write_to(&dir).unwrap();
    let (addr, _hub) = tls_server(&ca).await;
    let script = peers::workspace_root().join("tests/peers/python/wss_client.py");
    let out = peers::run_script(
        &python,
        &script,
        [
            format!("wss://localhost:{}/ws", addr.port()),
            ca_file.display().to_string(),
            "room:py".to_string(),
        ],
        peers::NO_ENV,
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let open = &lines[0];
    assert_eq!(open["event"], "open");
    assert_eq!(open["subprotocol"], "tidings.v1.json");
    assert!(open["tls"].as_str().unwrap().starts_with("TLS"), "{open}");
    let message = lines.iter().find(|l| l["event"] == "message").unwrap();
    assert_eq!(message["frame"]["data"]["text"], "hello over wss");
    println!("python websockets over wss: {}", open["tls"]);
}

#[tokio::test]
async fn the_self_signed_dev_certificate_serves_clients_that_trust_it() {
    let (tls, cert_pem) = TlsConfig::self_signed(&["localhost", "127.0.0.1"]).unwrap();
    let hub = Hub::new(Arc::new(MemoryBroker::default()));
    let app = Router::new().tidings("/ws", hub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        Server::new()
            .tls(tls)
            .serve(listener, app, std::future::pending()),
    );
    let client = tidings_ws::Client::builder(format!("wss://localhost:{}/ws", addr.port()))
        .root_certificate_pem(&cert_pem)
        .connect()
        .unwrap();
    round_trip(&client).await;
}

#[test]
fn bad_pem_is_a_typed_error() {
    let ca = TestCa::new().unwrap();
    let err = TlsConfig::from_pem(b"not pem", ca.key_pem().as_bytes()).unwrap_err();
    assert!(
        matches!(err, tidings_axum::TlsError::Certificate(_)),
        "{err}"
    );
    let err = TlsConfig::from_pem(ca.cert_pem().as_bytes(), b"not pem").unwrap_err();
    assert!(matches!(err, tidings_axum::TlsError::Key(_)), "{err}");
    // A key that is not the certificate's.
    let other = TestCa::new().unwrap();
    let err =
        TlsConfig::from_pem(ca.cert_pem().as_bytes(), other.key_pem().as_bytes()).unwrap_err();
    assert!(matches!(err, tidings_axum::TlsError::Rustls(_)), "{err}");
    let err =
        TlsConfig::from_pem_files("/nonexistent/cert.pem", "/nonexistent/key.pem").unwrap_err();
    assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
}

#[tokio::test]
async fn one_pem_pair_serves_wss_and_webtransport_on_one_hub() {
    use tidings_runtime::ClientTransport as _;
    use tidings_webtransport::{
        Accepted, Certificate, ServerConfig as WtServerConfig, WebTransport, WtServer,
    };
    // A development certificate (ECDSA P-256, 13 days: what browsers pin for
    // WebTransport), written out as the PEM pair a deployment would have.
    let dev = Certificate::self_signed(["localhost", "127.0.0.1"]).unwrap();
    let dir = std::env::temp_dir().join(format!(
        "tidings-shared-cert-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, dev.to_pem()).unwrap();
    std::fs::write(&key, dev.private_key_pem()).unwrap();

    // Both servers load the same two files.
    let tls = TlsConfig::from_pem_files(&cert, &key).unwrap();
    let wt_cert = Certificate::from_pem_files(&cert, &key).await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(wt_cert.hash(), dev.hash(), "the same certificate");

    let hub = Hub::new(Arc::new(MemoryBroker::default()));
    let app = Router::new().tidings("/ws", hub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let wss_addr = listener.local_addr().unwrap();
    tokio::spawn(
        Server::new()
            .tls(tls)
            .serve(listener, app, std::future::pending()),
    );
    let wt = WtServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        WtServerConfig::default(),
        wt_cert,
    )
    .unwrap();
    assert_eq!(wt.certificate_hash(), dev.hash());
    let wt_addr = wt.local_addr();
    let for_wt = hub.clone();
    let _wt = wt.serve(move |s: Accepted| {
        let hub = for_wt.clone();
        async move { hub.serve(s.transport, s.codec).await }
    });

    // A wss:// client trusts the PEM; a WebTransport client pins its hash.
    let ws = tidings_ws::Client::builder(format!("wss://localhost:{}/ws", wss_addr.port()))
        .root_certificate_pem(dev.to_pem())
        .connect()
        .unwrap();
    let wt_client = WebTransport::builder(format!("https://127.0.0.1:{}/", wt_addr.port()))
        .server_certificate_hash(dev.hash())
        .connect()
        .unwrap();
    for c in [&ws as &dyn Subscriber, &wt_client] {
        c.subscribe_and_wait("room:shared").await;
    }
    ws.publish("room:shared", r#"{"from":"wss"}"#).unwrap();
    wt_client
        .publish("room:shared", r#"{"from":"wt"}"#)
        .unwrap();
    for c in [&ws as &dyn Subscriber, &wt_client] {
        let mut got = c.messages(2).await;
        got.sort();
        assert_eq!(got, [r#"{"from":"wss"}"#, r#"{"from":"wt"}"#]);
    }
}

/// What the shared-certificate test does with a client of either transport.
trait Subscriber {
    fn subscribe_and_wait<'a>(
        &'a self,
        channel: &'a str,
    ) -> futures_util::future::BoxFuture<'a, ()>;
    fn messages(&self, n: usize) -> futures_util::future::BoxFuture<'_, Vec<String>>;
}

impl<T: tidings_runtime::ClientTransport> Subscriber for tidings_runtime::Client<T> {
    fn subscribe_and_wait<'a>(
        &'a self,
        channel: &'a str,
    ) -> futures_util::future::BoxFuture<'a, ()> {
        Box::pin(async move {
            self.subscribe(channel).unwrap();
            loop {
                match tokio::time::timeout(STEP, self.next_event()).await.unwrap() {
                    Some(ClientEvent::Subscribed { .. }) => return,
                    Some(ClientEvent::Disconnected { reason, .. }) => {
                        panic!("disconnected: {reason}")
                    }
                    Some(_) => {}
                    None => panic!("client closed"),
                }
            }
        })
    }

    fn messages(&self, n: usize) -> futures_util::future::BoxFuture<'_, Vec<String>> {
        Box::pin(async move {
            let mut got = Vec::new();
            while got.len() < n {
                match tokio::time::timeout(STEP, self.next_event()).await.unwrap() {
                    Some(ClientEvent::Message(m)) => {
                        got.push(String::from_utf8(m.payload.to_vec()).unwrap());
                    }
                    Some(_) => {}
                    None => panic!("client closed"),
                }
            }
            got
        })
    }
}
