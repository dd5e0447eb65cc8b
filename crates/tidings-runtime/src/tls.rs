//! TLS for native clients: one rustls configuration (ring provider) trusting the webpki roots and any extra CA certificates, shared by the WebSocket and SSE connectors.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::ClientError;

/// A rustls client configuration that trusts the Mozilla roots shipped by
/// `webpki-roots` plus every certificate in `extra_roots_pem` (each a PEM
/// text holding one or more `CERTIFICATE` blocks: a private CA, a test CA).
/// ALPN offers `http/1.1` (WebSocket and SSE both run on HTTP/1.1).
///
/// The crypto provider is ring, named explicitly, so no process-wide default
/// provider has to be installed.
///
/// # Errors
/// [`ClientError::Tls`] when a PEM text holds no certificate or one rustls
/// rejects.
pub fn client_config(
    extra_roots_pem: &[Vec<u8>],
) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for pem in extra_roots_pem {
        let mut found = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| ClientError::Tls {
                reason: format!("root certificate is not valid PEM: {e}"),
            })?;
            roots.add(cert).map_err(|e| ClientError::Tls {
                reason: format!("root certificate refused: {e}"),
            })?;
            found += 1;
        }
        if found == 0 {
            return Err(ClientError::Tls {
                reason: "root certificate PEM holds no CERTIFICATE block".into(),
            });
        }
    }
    let provider = Arc::new(ring_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls {
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// rustls' ring provider. rustls 0.23.48 deprecates it in favour of
/// aws-lc-rs (no post-quantum key exchange in ring); tidings stays on ring
/// because aws-lc-rs needs cmake and a C toolchain to build and doubles the
/// build time on small machines. Post-quantum key exchange: not offered.
#[allow(deprecated)]
pub(crate) fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pem_without_certificates_is_refused() {
        let err = client_config(&[b"not a certificate".to_vec()]).err();
        assert!(matches!(err, Some(ClientError::Tls { .. })), "{err:?}");
    }

    #[test]
    fn no_extra_roots_is_fine() {
        assert!(client_config(&[]).is_ok());
    }
}
