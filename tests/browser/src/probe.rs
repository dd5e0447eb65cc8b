//! `Probe`: one Rust tidings client (WebSocket, SSE or WebTransport) in the page, with a record of its events.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use js_sys::Array;
use tidings::core::{ClientConfig, ClientEvent, ClientState};
use tidings::rpc::client::RpcClient;
use wasm_bindgen::prelude::*;

use crate::record;

/// The chat's RPC methods as a browser client sees them (the server's trait lives in the chat
/// example, `tidings_examples::Chat`): with only the `rpc-client` feature, `#[tidings::rpc]`
/// generates the typed `ChatClient` and no server side.
#[tidings::rpc(namespace = "chat")]
trait Chat {
    /// The rooms the chat offers.
    async fn rooms(&self) -> Vec<String>;
}

/// The client's reconnect backoff: short, so a scenario waits on the reconnect itself rather
/// than on the default 30 s ceiling. Still exponential with jitter, as in production.
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(1);

/// Any client of the facade; all have the same API.
enum AnyClient {
    Ws(tidings::ws::Client),
    Sse(tidings::sse::Client),
    Wt(tidings::webtransport::Client),
}

/// `$body` on the client, whichever transport it runs on.
macro_rules! each {
    ($self:expr, $c:ident => $body:expr) => {
        match $self {
            AnyClient::Ws($c) => $body,
            AnyClient::Sse($c) => $body,
            AnyClient::Wt($c) => $body,
        }
    };
}

impl AnyClient {
    fn subscribe(&self, channel: &str) -> Result<(), tidings::core::ClientError> {
        each!(self, c => c.subscribe(channel))
    }

    fn publish(&self, channel: &str, payload: String) -> Result<u64, tidings::core::ClientError> {
        each!(self, c => c.publish(channel, payload))
    }

    async fn next_event(&self) -> Option<ClientEvent> {
        each!(self, c => c.next_event().await)
    }

    fn state(&self) -> ClientState {
        each!(self, c => c.state())
    }

    fn unacked(&self) -> usize {
        each!(self, c => c.unacked())
    }

    fn close(&self) {
        each!(self, c => c.close())
    }
}

struct Shared {
    client: AnyClient,
    rpc: RpcClient,
    events: RefCell<Vec<JsValue>>,
}

/// A tidings client running in the page; every event it yields is recorded in order.
#[wasm_bindgen]
pub struct Probe {
    shared: Rc<Shared>,
}

fn session_config() -> ClientConfig {
    ClientConfig::default().with_backoff(BACKOFF_BASE, BACKOFF_CAP)
}

fn js_error(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

#[wasm_bindgen]
impl Probe {
    /// A WebSocket client of `url` (`ws://...`) offering `subprotocols` in that order.
    #[wasm_bindgen(js_name = webSocket)]
    pub fn web_socket(url: String, subprotocols: Vec<String>) -> Result<Probe, JsError> {
        let client = tidings::ws::Client::builder(url)
            .subprotocols(subprotocols)
            .session_config(session_config())
            .connect()
            .map_err(js_error)?;
        let rpc = RpcClient::new(&client);
        Ok(Self::start(AnyClient::Ws(client), rpc))
    }

    /// An SSE client of `url` (`http://.../sse`).
    pub fn sse(url: String) -> Result<Probe, JsError> {
        let client = tidings::sse::Client::builder(url)
            .session_config(session_config())
            .connect()
            .map_err(js_error)?;
        let rpc = RpcClient::new(&client);
        Ok(Self::start(AnyClient::Sse(client), rpc))
    }

    /// A WebTransport client of `url` (`https://...`) speaking `protocol` (`tidings.v1.json`
    /// or `tidings.v1.bin`), pinning the certificate hashes it fetches from `hashes_url` before
    /// each connect (the server's self-signed certificate).
    #[wasm_bindgen(js_name = webTransport)]
    pub fn web_transport(
        url: String,
        hashes_url: String,
        protocol: String,
    ) -> Result<Probe, JsError> {
        let mut builder = tidings::webtransport::Client::builder(url)
            .server_certificate_hashes_url(hashes_url)
            .session_config(session_config());
        match protocol.as_str() {
            "tidings.v1.json" => {}
            "tidings.v1.bin" => builder = builder.binary(),
            other => return Err(JsError::new(&format!("unknown protocol {other}"))),
        }
        let client = builder.connect().map_err(js_error)?;
        let rpc = RpcClient::new(&client);
        Ok(Self::start(AnyClient::Wt(client), rpc))
    }

    fn start(client: AnyClient, rpc: RpcClient) -> Probe {
        let shared = Rc::new(Shared {
            client,
            rpc,
            events: RefCell::new(Vec::new()),
        });
        let reader = shared.clone();
        // Ends when the client is closed and its last event was read.
        wasm_bindgen_futures::spawn_local(async move {
            while let Some(e) = reader.client.next_event().await {
                reader.events.borrow_mut().push(record::event(&e));
            }
        });
        Probe { shared }
    }

    /// Subscribes to `channel` (kept across reconnects).
    pub fn subscribe(&self, channel: &str) -> Result<(), JsError> {
        self.shared.client.subscribe(channel).map_err(js_error)
    }

    /// Publishes `payload` on `channel`; returns the client's publish sequence number.
    pub fn publish(&self, channel: &str, payload: String) -> Result<f64, JsError> {
        let seq = self
            .shared
            .client
            .publish(channel, payload)
            .map_err(js_error)?;
        Ok(seq as f64)
    }

    /// Every event so far, oldest first (a copy).
    pub fn events(&self) -> Array {
        self.shared.events.borrow().iter().collect()
    }

    /// The session's state: `disconnected`, `connecting`, `handshaking`, `open` or `closed`.
    pub fn state(&self) -> String {
        format!("{:?}", self.shared.client.state()).to_lowercase()
    }

    /// Publishes not yet acknowledged by the server.
    pub fn unacked(&self) -> usize {
        self.shared.client.unacked()
    }

    /// Calls `chat.rooms` through the generated `ChatClient`: a promise of the room names.
    pub fn rooms(&self) -> js_sys::Promise {
        let chat = ChatClient::new(&self.shared.rpc);
        wasm_bindgen_futures::future_to_promise(async move {
            let rooms = chat.rooms().await.map_err(|e| JsValue::from(js_error(e)))?;
            Ok(rooms
                .into_iter()
                .map(JsValue::from)
                .collect::<Array>()
                .into())
        })
    }

    /// Ends the session.
    pub fn close(&self) {
        self.shared.client.close();
    }
}

/// Panics reach the console as errors (the driver counts those), with their message.
#[wasm_bindgen(start)]
fn start() {
    std::panic::set_hook(Box::new(|info| {
        web_sys::console::error_1(&format!("wasm panic: {info}").into());
    }));
}
