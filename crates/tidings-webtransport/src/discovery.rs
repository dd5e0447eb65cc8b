//! The WebTransport entry of the discovery document (`/.well-known/tidings`): this server's UDP port and certificate hash.

use tidings_protocol::DiscoveredTransport;

use crate::server::ServerHandle;

impl ServerHandle {
    /// This server's entry in the discovery document: kind `webtransport`,
    /// `path` on the document's host at this server's port, and the
    /// certificate's SHA-256 to pin (browsers' `serverCertificateHashes`;
    /// harmless for a CA-signed certificate).
    pub fn discovered(&self, path: &str) -> DiscoveredTransport {
        DiscoveredTransport::new("webtransport", path)
            .with_port(self.local_addr().port())
            .with_cert_hash(
                self.certificate_hash()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>(),
            )
    }
}
