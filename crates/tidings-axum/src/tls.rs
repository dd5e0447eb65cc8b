//! `TlsConfig`: the server certificate for [`crate::Server`] (rustls on ring), from PEM text, PEM files, the `TIDINGS_TLS_CERT` / `TIDINGS_TLS_KEY` environment variables, or a self-signed development certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// The environment variable naming the certificate chain PEM file.
pub const TLS_CERT_ENV: &str = "TIDINGS_TLS_CERT";
/// The environment variable naming the private key PEM file.
pub const TLS_KEY_ENV: &str = "TIDINGS_TLS_KEY";

/// Why a TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The certificate PEM holds no usable certificate.
    #[error("no certificate in the PEM: {0}")]
    Certificate(String),
    /// The key PEM holds no usable private key (PKCS#8, PKCS#1 or SEC1).
    #[error("no private key in the PEM: {0}")]
    Key(String),
    /// rustls refused the pair (e.g. the key does not match the certificate).
    #[error("rustls refused the certificate and key: {0}")]
    Rustls(#[from] rustls::Error),
    /// Only one of `TIDINGS_TLS_CERT` and `TIDINGS_TLS_KEY` is set.
    #[error("set both TIDINGS_TLS_CERT and TIDINGS_TLS_KEY (PEM file paths), or neither")]
    HalfConfigured,
    /// A self-signed certificate could not be generated.
    #[cfg(feature = "tls-self-signed")]
    #[error("generating a self-signed certificate: {0}")]
    SelfSigned(#[from] tidings_runtime::dev_cert::DevCertError),
}

/// A server certificate and key, ready for [`crate::Server::tls`]. Serves
/// HTTP/1.1 only (ALPN `http/1.1`), which is what WebSocket and SSE use.
///
/// ```no_run
/// # fn demo() -> Result<(), tidings_axum::TlsError> {
/// let tls = tidings_axum::TlsConfig::from_pem_files("cert.pem", "key.pem")?;
/// let server = tidings_axum::Server::new().tls(tls);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig").finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// From a certificate chain PEM (leaf first) and its private key PEM.
    ///
    /// # Errors
    /// [`TlsError::Certificate`], [`TlsError::Key`] or [`TlsError::Rustls`].
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Certificate(e.to_string()))?;
        if chain.is_empty() {
            return Err(TlsError::Certificate("no CERTIFICATE block".into()));
        }
        let key =
            PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Key(e.to_string()))?;
        let provider = Arc::new(ring_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self::from_rustls(Arc::new(config)))
    }

    /// From two PEM files.
    ///
    /// # Errors
    /// [`TlsError::Read`] naming the file, or those of [`Self::from_pem`].
    pub fn from_pem_files(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<Self, TlsError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| TlsError::Read {
                path: p.to_path_buf(),
                source,
            })
        };
        Self::from_pem(&read(cert.as_ref())?, &read(key.as_ref())?)
    }

    /// From the files named by `TIDINGS_TLS_CERT` and `TIDINGS_TLS_KEY`;
    /// `Ok(None)` when neither is set.
    ///
    /// # Errors
    /// [`TlsError::HalfConfigured`] when only one is set, or those of
    /// [`Self::from_pem_files`].
    pub fn from_env() -> Result<Option<Self>, TlsError> {
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        match (var(TLS_CERT_ENV), var(TLS_KEY_ENV)) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => Self::from_pem_files(cert, key).map(Some),
            _ => Err(TlsError::HalfConfigured),
        }
    }

    /// A self-signed ECDSA P-256 certificate for `names` (DNS names or IP
    /// addresses), valid 13 days from now, for development only: clients
    /// must trust the returned certificate PEM (browsers will warn). It is
    /// `tidings_runtime::dev_cert::DevCertificate`, which a WebTransport
    /// server takes too (`tidings_webtransport::Certificate::from_dev`): to
    /// serve both with one certificate, make it once and give it to both
    /// ([`Self::from_pem`] here). Feature `tls-self-signed`.
    ///
    /// # Errors
    /// [`TlsError::SelfSigned`] for a name that is neither a DNS name nor an
    /// IP address.
    #[cfg(feature = "tls-self-signed")]
    pub fn self_signed(names: &[&str]) -> Result<(Self, String), TlsError> {
        let dev = tidings_runtime::dev_cert::DevCertificate::generate(names)?;
        Ok((
            Self::from_pem(dev.cert_pem().as_bytes(), dev.key_pem().as_bytes())?,
            dev.cert_pem().to_owned(),
        ))
    }

    /// From a rustls configuration of your own (client auth, other ALPN, a
    /// certificate resolver for hot reload).
    pub fn from_rustls(config: Arc<rustls::ServerConfig>) -> Self {
        Self {
            acceptor: TlsAcceptor::from(config),
        }
    }

    pub(crate) fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }
}

/// rustls' ring provider; 0.23.48 deprecates it in favour of aws-lc-rs,
/// which needs cmake and a C toolchain to build: tidings stays on ring and
/// offers no post-quantum key exchange (documented limit).
#[allow(deprecated)]
fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}
