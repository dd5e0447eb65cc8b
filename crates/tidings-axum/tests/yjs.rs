//! The y-websocket route against a real server: documents by path, read/write by the identity's grants on `doc:NAME`, a reader's update refused with 1008, a forbidden document and a foreign Origin refused before the upgrade.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use axum::Router;
use futures_util::{SinkExt, StreamExt};
use tidings_axum::{
    AuthError, ChannelGrants, Identity, Origins, UpgradeRequest, YjsRoute, YjsRouterExt,
};
use tidings_sync::yrs::sync::{Message, SyncMessage};
use tidings_sync::yrs::updates::encoder::Encode;
use tidings_sync::yrs::{Doc, GetString, ReadTxn, Text, Transact};
use tidings_sync::{Docs, DocsConfig};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// `?user=NAME`; `rita` reads every document, `wes` also writes, nobody
/// touches `doc:secret` but `wes`.
async fn who(request: UpgradeRequest) -> Result<Identity, AuthError> {
    let query = request.uri.query().unwrap_or_default();
    let user = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("user="))
        .ok_or_else(|| AuthError::Unauthorized("no user".into()))?;
    let grants = match user {
        "rita" => ChannelGrants::none().subscribe("doc:notes"),
        "wes" => ChannelGrants::all(),
        _ => ChannelGrants::none(),
    };
    Ok(Identity::new(user).with_grants(grants))
}

async fn server(docs: Docs) -> std::net::SocketAddr {
    let route = YjsRoute::new(docs)
        .auth(who)
        .origins(Origins::only(["http://app.example"]));
    let app = Router::new().tidings_yjs("/yjs", route);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(addr: std::net::SocketAddr, path: &str, origin: &str) -> Result<Ws, u16> {
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    req.headers_mut().insert("origin", origin.parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

fn update(text: &str) -> WsMessage {
    let d = Doc::new();
    d.get_or_insert_text("t")
        .insert(&mut d.transact_mut(), 0, text);
    let u = d.transact().encode_state_as_update_v1(&Default::default());
    WsMessage::binary(Message::Sync(SyncMessage::Update(u)).encode_v1())
}

async fn close_code(ws: &mut Ws) -> Option<u16> {
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(frame) = ws.next().await {
            if let Ok(WsMessage::Close(c)) = frame {
                return c.map(|c| u16::from(c.code));
            }
        }
        None
    })
    .await
    .unwrap()
}

fn text_of(docs: &Docs, name: &str) -> String {
    docs.with_doc(name, |d| {
        d.doc()
            .get_or_insert_text("t")
            .get_string(&d.doc().transact())
    })
    .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn writers_write_readers_read_and_strangers_are_refused() {
    let docs = Docs::new(DocsConfig::default());
    let addr = server(docs.clone()).await;
    let ok = "http://app.example";

    let mut wes = open(addr, "/yjs/notes?user=wes", ok).await.unwrap();
    wes.send(update("from wes")).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        while text_of(&docs, "notes") != "from wes" {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();

    // Rita reads: her sync step 1 is answered with the text.
    let mut rita = open(addr, "/yjs/notes?user=rita", ok).await.unwrap();
    let sv = Doc::new().transact().state_vector();
    rita.send(WsMessage::binary(
        Message::Sync(SyncMessage::SyncStep1(sv)).encode_v1(),
    ))
    .await
    .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        use tidings_sync::yrs::updates::decoder::Decode;
        while let Some(Ok(frame)) = rita.next().await {
            if let WsMessage::Binary(d) = frame
                && let Ok(Message::Sync(SyncMessage::SyncStep2(u))) = Message::decode_v1(&d)
            {
                let doc = Doc::new();
                doc.transact_mut()
                    .apply_update(tidings_sync::yrs::Update::decode_v1(&u).unwrap())
                    .unwrap();
                return doc.get_or_insert_text("t").get_string(&doc.transact());
            }
        }
        String::new()
    })
    .await
    .unwrap();
    assert_eq!(got, "from wes");
    // ...and may not write.
    rita.send(update("from rita")).await.unwrap();
    assert_eq!(close_code(&mut rita).await, Some(1008));
    assert_eq!(
        text_of(&docs, "notes"),
        "from wes",
        "the reader's update was not applied"
    );

    assert_eq!(
        open(addr, "/yjs/secret?user=rita", ok).await.err(),
        Some(403)
    );
    assert_eq!(open(addr, "/yjs/notes?user=eve", ok).await.err(), Some(403));
    assert_eq!(open(addr, "/yjs/notes", ok).await.err(), Some(401));
    assert_eq!(
        open(addr, "/yjs/notes?user=wes", "http://evil.example")
            .await
            .err(),
        Some(403)
    );
    // The writer is still served.
    wes.send(update("!")).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        while !text_of(&docs, "notes").contains('!') {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
}
