//! `Client`: the application's handle on a session that a driver task runs over a transport's `Connector`, reconnecting and resuming by itself.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;
use tidings_protocol::{ClientConfig, ClientEvent, ClientState};

use crate::driver::{Connector, SharedClient};
use crate::error::ClientError;
use crate::transport::MaybeSend;

/// A transport a [`Client`] can be built for: names the builder that
/// `Client::<T>::builder(url)` returns. Each transport crate implements it
/// on a marker type and exports `type Client = tidings_runtime::Client<Marker>`.
pub trait ClientTransport: Sized + 'static {
    /// The transport's client builder (URL checks, transport settings, `connect`).
    type Builder;
    /// A builder for a client of `url`.
    fn builder(url: String) -> Self::Builder;
    /// Starts a client of `url` with session `config` and the transport's
    /// default settings: what code generic over transports calls.
    fn connect(url: String, config: ClientConfig) -> Result<Client<Self>, ClientError>;
}

/// A tidings client: subscribe, publish, read events. The session survives
/// dropped connections: the driver reconnects with backoff and resumes it,
/// publishes are delivered exactly once while it resumes, messages arrive in
/// order and never twice, and what cannot be recovered is a `Gap` event.
///
/// `T` is the transport (`tidings_ws::Client` is `Client<tidings_ws::WebSocket>`,
/// `tidings_sse::Client` is `Client<tidings_sse::EventStream>`); the API is
/// the same on every transport, natively and in the browser.
pub struct Client<T> {
    shared: Arc<SharedClient>,
    _transport: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Client<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl<T: ClientTransport> Client<T> {
    /// A builder for a client of `url` (the transport's URL scheme).
    pub fn builder(url: impl Into<String>) -> T::Builder {
        T::builder(url.into())
    }
}

impl<T> Client<T> {
    /// Starts a session with `config` and a driver task on `connector`: it
    /// connects at once, and reconnects with backoff whenever the connection
    /// drops. Natively the task runs on the current tokio runtime (feature
    /// `tokio`; [`ClientError::NoRuntime`] outside one); in the browser on
    /// the page's event loop (feature `wasm`).
    pub fn start<C: Connector + MaybeSend>(
        config: ClientConfig,
        connector: C,
    ) -> Result<Self, ClientError> {
        Self::start_shared(Arc::new(SharedClient::with_config(config)), connector)
    }

    /// [`Client::start`] on a session made beforehand (so that the connector
    /// may read it: `tidings-adaptive` builds the `Hello` an SSE stream
    /// carries from it).
    pub fn start_shared<C: Connector + MaybeSend>(
        shared: Arc<SharedClient>,
        connector: C,
    ) -> Result<Self, ClientError> {
        crate::spawn::spawn_driver(shared.clone(), connector)?;
        Ok(Self {
            shared,
            _transport: PhantomData,
        })
    }

    /// Subscribes to `channel`; kept across reconnects.
    pub fn subscribe(&self, channel: &str) -> Result<(), ClientError> {
        Ok(self.shared.subscribe(channel)?)
    }

    /// Leaves `channel`.
    pub fn unsubscribe(&self, channel: &str) -> Result<(), ClientError> {
        Ok(self.shared.unsubscribe(channel)?)
    }

    /// Publishes `payload` on `channel`. Delivered exactly once while the
    /// session resumes; queued while disconnected. Fails fast with
    /// [`ClientError::is_queue_full`] when too much is unacknowledged.
    pub fn publish(&self, channel: &str, payload: impl Into<Bytes>) -> Result<u64, ClientError> {
        Ok(self.shared.publish(channel, payload.into())?)
    }

    /// The next event; `None` once the client is closed and every event was read.
    pub async fn next_event(&self) -> Option<ClientEvent> {
        self.shared.next_event().await
    }

    /// The shared session, for layers built on it (the RPC client of
    /// `tidings-rpc` sends and receives its frames through it).
    pub fn shared(&self) -> &Arc<SharedClient> {
        &self.shared
    }

    /// The session's state.
    pub fn state(&self) -> ClientState {
        self.shared.state()
    }

    /// Publishes not yet acknowledged by the server.
    pub fn unacked(&self) -> usize {
        self.shared.unacked()
    }

    /// Ends the session (sends `Close` when connected). Idempotent.
    pub fn close(&self) {
        self.shared.close();
    }
}

impl<T> Drop for Client<T> {
    fn drop(&mut self) {
        self.close();
    }
}
