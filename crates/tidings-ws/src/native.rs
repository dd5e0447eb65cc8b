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
        Box::pin(async move {
            let fut = connect(&url, &ws, &protocols);
            tokio::time::timeout(timeout, fut)
                .await
                .map_err(|_| TransportError::Timeout("connect"))?
        })
    }
}

/// Opens one WebSocket connection offering `protocols` (comma-separated).
pub(crate) async fn connect(
    url: &str,
    ws: &WsConfig,
    protocols: &str,
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
    let (stream, response) =
        tokio_tungstenite::connect_async_with_config(request, Some(ws.tungstenite()), true)
            .await
            .map_err(|e| map_ws_error(e, ws.max_message_bytes))?;
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
pub(crate) fn connector(builder: ClientBuilder) -> impl Connector + Send {
    Native {
        url: builder.url,
        ws: builder.ws,
        subprotocols: builder.subprotocols.join(", "),
        connect_timeout: builder.connect_timeout,
    }
}
