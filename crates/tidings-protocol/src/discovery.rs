//! The discovery document a server publishes at `/.well-known/tidings`: protocol version, transports (URLs, ports, WebTransport certificate hashes) and codecs.
//!
//! Small and stable (docs/protocol.md §"Discovery"): clients (`tidings-adaptive`,
//! `tidings doctor`) read it to know what to try. Unknown fields are ignored
//! on reading, so servers may add some; the ones here keep their meaning.

use serde::{Deserialize, Serialize};

use crate::PROTOCOL_VERSION;

/// The path of the discovery document, from the server's origin.
pub const DISCOVERY_PATH: &str = "/.well-known/tidings";

/// What a server offers: `{"tidings":1,"transports":[...],"codecs":[...]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Discovery {
    /// The protocol version (`PROTOCOL_VERSION`).
    pub tidings: u32,
    /// Transports in the server's order of preference.
    pub transports: Vec<DiscoveredTransport>,
    /// Codecs (subprotocol names) the server speaks, e.g. `tidings.v1.json`.
    pub codecs: Vec<String>,
}

/// One transport of a [`Discovery`] document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DiscoveredTransport {
    /// `websocket`, `sse` or `webtransport` (clients skip kinds they do not know).
    pub kind: String,
    /// Where: an absolute URL, or a path on the document's origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A port on the document's host (WebTransport listens on UDP beside the
    /// HTTP port): with `url` a path, the transport is at `scheme://host:port/path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// SHA-256 hashes (lowercase hex) of self-signed certificates to pin
    /// (WebTransport's `serverCertificateHashes`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cert_hashes: Vec<String>,
}

impl Discovery {
    /// An empty document of this protocol version.
    pub fn new() -> Self {
        Self {
            tidings: PROTOCOL_VERSION,
            transports: Vec::new(),
            codecs: Vec::new(),
        }
    }

    /// Adds a transport.
    pub fn with_transport(mut self, t: DiscoveredTransport) -> Self {
        self.transports.push(t);
        self
    }

    /// Adds a codec.
    pub fn with_codec(mut self, codec: impl Into<String>) -> Self {
        self.codecs.push(codec.into());
        self
    }

    /// The first transport of `kind`.
    pub fn transport(&self, kind: &str) -> Option<&DiscoveredTransport> {
        self.transports.iter().find(|t| t.kind == kind)
    }
}

impl Default for Discovery {
    fn default() -> Self {
        Self::new()
    }
}

impl DiscoveredTransport {
    /// A transport of `kind` at `url` (absolute, or a path on the document's origin).
    pub fn new(kind: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            url: Some(url.into()),
            port: None,
            cert_hashes: Vec::new(),
        }
    }

    /// On `port` of the document's host.
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Pins a certificate by its SHA-256 (lowercase hex).
    pub fn with_cert_hash(mut self, hex: impl Into<String>) -> Self {
        self.cert_hashes.push(hex.into());
        self
    }

    /// The absolute URL, resolved against `origin` (`http://host:port`) and
    /// using `scheme` for a path with a port of its own.
    ///
    /// ```
    /// use tidings_protocol::DiscoveredTransport;
    /// let wt = DiscoveredTransport::new("webtransport", "/wt").with_port(4433);
    /// assert_eq!(wt.resolve("http://127.0.0.1:3000", "https"), "https://127.0.0.1:4433/wt");
    /// let ws = DiscoveredTransport::new("websocket", "/ws");
    /// assert_eq!(ws.resolve("http://127.0.0.1:3000", "ws"), "ws://127.0.0.1:3000/ws");
    /// ```
    pub fn resolve(&self, origin: &str, scheme: &str) -> String {
        let path = self.url.as_deref().unwrap_or("/");
        if path.contains("://") {
            return path.to_string();
        }
        let authority = origin.split_once("://").map_or(origin, |(_, a)| a);
        let authority = authority.split('/').next().unwrap_or(authority);
        let authority = match self.port {
            Some(port) => {
                let host = match authority.rfind(':') {
                    Some(i) if !authority[i..].contains(']') => &authority[..i],
                    _ => authority,
                };
                format!("{host}:{port}")
            }
            None => authority.to_string(),
        };
        let sep = if path.starts_with('/') { "" } else { "/" };
        format!("{scheme}://{authority}{sep}{path}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_ignored_and_defaults_hold() {
        let d: Discovery = serde_json::from_str(
            r#"{"tidings":1,"transports":[{"kind":"sse","url":"/sse","extra":true}],"codecs":["tidings.v1.json"],"new":1}"#,
        )
        .unwrap();
        assert_eq!(d.transport("sse").unwrap().url.as_deref(), Some("/sse"));
        assert!(d.transport("sse").unwrap().cert_hashes.is_empty());
    }

    #[test]
    fn ipv6_hosts_keep_their_brackets() {
        let wt = DiscoveredTransport::new("webtransport", "/").with_port(9);
        assert_eq!(wt.resolve("http://[::1]:3000", "https"), "https://[::1]:9/");
        assert_eq!(wt.resolve("http://[::1]", "https"), "https://[::1]:9/");
    }
}
