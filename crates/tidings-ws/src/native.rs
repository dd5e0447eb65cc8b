//! Native platform of the client driver: tokio timers and tokio-tungstenite connections.

use std::time::Duration;

use tidings_codec::{SUBPROTOCOL_BIN, SUBPROTOCOL_JSON, codec_for};
use tidings_protocol::CodecKind;
use tidings_runtime::{BoxFuture, Connected, Connector, TokioTimer, TransportError};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};

use crate::client::ClientBuilder;
use crate::config::WsConfig;
use crate::transport::{WsTransport, map_ws_error};

struct Native {
    url: String,
    ws: WsConfig,
    subprotocols: String,
    connect_timeout: Duration,
    #[cfg(feature = "rustls")]
    tls: std::sync::Arc<rustls::ClientConfig>,
}

impl Connector for Native {
    type Timer = TokioTimer;

    fn timer(&self) -> TokioTimer {
        TokioTimer::default()
    }

    fn connect(&self) -> BoxFuture<'static, Result<Connected, TransportError>> {
        let (url, ws, protocols, timeout) = (
            self.url.clone(),
            self.ws.clone(),
            self.subprotocols.clone(),
            self.connect_timeout,
        );
        #[cfg(feature = "rustls")]
        let tls = Some(self.tls.clone());
        #[cfg(not(feature = "rustls"))]
        let tls = None;
        Box::pin(async move {
            let fut = connect(&url, &ws, &protocols, tls);
            tokio::time::timeout(timeout, fut)
                .await
                .map_err(|_| TransportError::Timeout("connect"))?
        })
    }
}

#[cfg(feature = "rustls")]
type Tls = std::sync::Arc<rustls::ClientConfig>;
#[cfg(not(feature = "rustls"))]
type Tls = std::convert::Infallible;

/// Opens one WebSocket connection offering `protocols` (comma-separated);
/// `wss://` needs `tls`.
pub(crate) async fn connect(
    url: &str,
    ws: &WsConfig,
    protocols: &str,
    tls: Option<Tls>,
) -> Result<Connected, TransportError> {
    let mut request = url
        .into_client_request()
        .map_err(|e| TransportError::Handshake {
            status: None,
            reason: format!("bad URL {url}: {e}"),
        })?;
    if !protocols.is_empty() {
        let value = HeaderValue::from_str(protocols).map_err(|e| TransportError::Handshake {
            status: None,
            reason: format!("bad subprotocol list: {e}"),
        })?;
        request
            .headers_mut()
            .insert(header::SEC_WEBSOCKET_PROTOCOL, value);
    }
    if request.uri().scheme_str() == Some("wss") {
        return match tls {
            #[cfg(feature = "rustls")]
            Some(tls) => {
                let stream = tls_stream(&request, tls).await?;
                let (stream, response) = tokio_tungstenite::client_async_with_config(
                    request,
                    stream,
                    Some(ws.tungstenite()),
                )
                .await
                .map_err(|e| map_ws_error(e, ws.max_message_bytes))?;
                finish(stream, &response, ws)
            }
            _ => Err(TransportError::Handshake {
                status: None,
                reason: "wss:// needs the `rustls` feature of tidings-ws".into(),
            }),
        };
    }
    let (stream, response) =
        tokio_tungstenite::connect_async_with_config(request, Some(ws.tungstenite()), true)
            .await
            .map_err(|e| map_ws_error(e, ws.max_message_bytes))?;
    finish(stream, &response, ws)
}

/// TCP, then the TLS handshake with the host of `request` as the server name.
#[cfg(feature = "rustls")]
async fn tls_stream(
    request: &tokio_tungstenite::tungstenite::handshake::client::Request,
    tls: Tls,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, TransportError> {
    let uri = request.uri();
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(443);
    let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| {
        TransportError::Handshake {
            status: None,
            reason: format!("bad TLS server name {host}: {e}"),
        }
    })?;
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(TransportError::Io)?;
    let _ = tcp.set_nodelay(true);
    tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| TransportError::Handshake {
            status: None,
            reason: format!("TLS handshake with {host}:{port} failed: {e}"),
        })
}

/// The negotiated codec and the transport of an opened WebSocket.
fn finish<S>(
    stream: tokio_tungstenite::WebSocketStream<S>,
    response: &tokio_tungstenite::tungstenite::handshake::client::Response,
    ws: &WsConfig,
) -> Result<Connected, TransportError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let chosen = response
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(SUBPROTOCOL_JSON);
    let kind = if chosen.eq_ignore_ascii_case(SUBPROTOCOL_BIN) {
        CodecKind::Binary
    } else {
        CodecKind::Json
    };
    let codec = codec_for(kind).ok_or_else(|| TransportError::Handshake {
        status: None,
        reason: format!("server chose subprotocol {chosen}, which this build cannot decode"),
    })?;
    let transport = WsTransport::new(stream, codec.is_text(), ws.idle_timeout);
    Ok((Box::new(transport), codec))
}

/// The connector of a [`crate::Client`] built by `builder`.
pub(crate) fn connector(builder: ClientBuilder) -> Result<impl Connector + Send, crate::Error> {
    Ok(Native {
        #[cfg(feature = "rustls")]
        tls: tidings_runtime::tls::client_config(&builder.root_certificates)?,
        url: builder.url,
        ws: builder.ws,
        subprotocols: builder.subprotocols.join(", "),
        connect_timeout: builder.connect_timeout,
    })
}
