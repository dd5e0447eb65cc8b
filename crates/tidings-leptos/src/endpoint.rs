//! Which server and transport a connection uses (`Endpoint`), and the browser client of either transport behind one API.

/// The server a [`crate::use_connection_to`] connection talks to, and over what.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Endpoint {
    /// A tidings WebSocket endpoint (`ws://` or `wss://`).
    WebSocket {
        /// The endpoint's URL.
        url: String,
    },
    /// A tidings WebTransport (HTTP/3) server (`https://`), feature `webtransport`.
    WebTransport {
        /// The session URL.
        url: String,
        /// Where the server serves the SHA-256 hashes of its (self-signed, development)
        /// certificate, fetched before each connect and pinned with `serverCertificateHashes`;
        /// `None`: the browser's roots verify the certificate.
        certificate_hashes_url: Option<String>,
    },
}

impl Endpoint {
    /// A WebSocket endpoint.
    pub fn web_socket(url: impl Into<String>) -> Self {
        Self::WebSocket { url: url.into() }
    }

    /// A WebTransport server whose certificate the browser's roots verify.
    pub fn web_transport(url: impl Into<String>) -> Self {
        Self::WebTransport {
            url: url.into(),
            certificate_hashes_url: None,
        }
    }

    /// Pins the certificate by the hashes served at `url` (a WebTransport endpoint; no effect
    /// on a WebSocket one).
    pub fn certificate_hashes_from(mut self, from: impl Into<String>) -> Self {
        if let Self::WebTransport {
            certificate_hashes_url,
            ..
        } = &mut self
        {
            *certificate_hashes_url = Some(from.into());
        }
        self
    }
}

#[cfg(target_arch = "wasm32")]
pub(crate) use browser::AnyClient;

#[cfg(target_arch = "wasm32")]
mod browser {
    //! The client of either transport, started from an [`Endpoint`].

    use bytes::Bytes;
    use tidings_protocol::ClientEvent;
    use tidings_runtime::ClientError;

    use super::Endpoint;

    /// A browser client over WebSocket or WebTransport (the API is the same).
    pub(crate) enum AnyClient {
        Ws(tidings_ws::Client),
        #[cfg(feature = "webtransport")]
        Wt(tidings_webtransport::Client),
    }

    macro_rules! each {
        ($self:expr, $c:ident => $body:expr) => {
            match $self {
                AnyClient::Ws($c) => $body,
                #[cfg(feature = "webtransport")]
                AnyClient::Wt($c) => $body,
            }
        };
    }

    impl AnyClient {
        /// Starts a client of `endpoint`.
        pub(crate) fn connect(endpoint: &Endpoint) -> Result<Self, ClientError> {
            match endpoint {
                Endpoint::WebSocket { url } => tidings_ws::Client::builder(url.as_str())
                    .connect()
                    .map(Self::Ws),
                #[cfg(feature = "webtransport")]
                Endpoint::WebTransport {
                    url,
                    certificate_hashes_url,
                } => {
                    let mut builder = tidings_webtransport::Client::builder(url.as_str());
                    if let Some(from) = certificate_hashes_url {
                        builder = builder.server_certificate_hashes_url(from.as_str());
                    }
                    builder.connect().map(Self::Wt)
                }
                #[cfg(not(feature = "webtransport"))]
                Endpoint::WebTransport { url, .. } => Err(ClientError::InvalidUrl {
                    url: url.clone(),
                    reason: "WebTransport needs the `webtransport` feature of tidings-leptos"
                        .into(),
                }),
            }
        }

        pub(crate) fn subscribe(&self, channel: &str) -> Result<(), ClientError> {
            each!(self, c => c.subscribe(channel))
        }

        pub(crate) fn unsubscribe(&self, channel: &str) -> Result<(), ClientError> {
            each!(self, c => c.unsubscribe(channel))
        }

        pub(crate) fn publish(&self, channel: &str, payload: Bytes) -> Result<u64, ClientError> {
            each!(self, c => c.publish(channel, payload))
        }

        pub(crate) async fn next_event(&self) -> Option<ClientEvent> {
            each!(self, c => c.next_event().await)
        }

        pub(crate) fn close(&self) {
            each!(self, c => c.close())
        }
    }
}
