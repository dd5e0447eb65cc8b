//! Certificates: a self-signed ECDSA P-256 development certificate valid 13 days (browsers pin it by SHA-256 via `serverCertificateHashes`), or a user-supplied chain and key for production.

use std::path::Path;

use tidings_runtime::dev_cert::DevCertificate;
use wtransport::Identity;
use wtransport::tls::{Certificate as WtCertificate, CertificateChain, PrivateKey};

use crate::error::WtError;

pub use tidings_runtime::dev_cert::DEV_VALIDITY_DAYS;

/// The TLS identity a [`crate::WtServer`] presents.
#[derive(Debug)]
pub struct Certificate {
    identity: Identity,
}

impl Certificate {
    /// A fresh self-signed ECDSA P-256 certificate for `names` (host names or
    /// IP addresses), valid from now for [`DEV_VALIDITY_DAYS`] days: what
    /// browsers accept through `serverCertificateHashes` (see [`Certificate::hash`]).
    ///
    /// ```
    /// let cert = tidings_webtransport::Certificate::self_signed(["localhost", "127.0.0.1"]).unwrap();
    /// assert_eq!(cert.hash_hex().len(), 64);
    /// ```
    pub fn self_signed<I, S>(names: I) -> Result<Self, WtError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let dev =
            DevCertificate::generate(names).map_err(|e| WtError::Certificate(e.to_string()))?;
        Self::from_dev(&dev)
    }

    /// A [`DevCertificate`] (e.g. the one a wss:// server in the same
    /// process also presents, through its PEM).
    pub fn from_dev(dev: &DevCertificate) -> Result<Self, WtError> {
        let cert = WtCertificate::from_der(dev.cert_der().to_vec())
            .map_err(|e| WtError::Certificate(format!("development certificate: {e}")))?;
        let key = PrivateKey::from_der_pkcs8(dev.key_der().to_vec());
        Ok(Self {
            identity: Identity::new(CertificateChain::single(cert), key),
        })
    }

    /// A production certificate: a PEM chain (leaf first) and its PEM private key.
    pub async fn from_pem_files(
        chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, WtError> {
        let (chain, key) = (chain.as_ref(), key.as_ref());
        let identity = Identity::load_pemfiles(chain, key).await.map_err(|e| {
            WtError::Certificate(format!(
                "cannot load {} and {}: {e}",
                chain.display(),
                key.display()
            ))
        })?;
        Ok(Self { identity })
    }

    /// SHA-256 of the leaf certificate (DER), the value of
    /// `serverCertificateHashes[].value` in a browser.
    pub fn hash(&self) -> [u8; 32] {
        self.identity
            .certificate_chain()
            .as_slice()
            .first()
            .map(|c| *c.hash().as_ref())
            .unwrap_or_default()
    }

    /// [`Certificate::hash`] in lowercase hex.
    pub fn hash_hex(&self) -> String {
        self.hash().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The `serverCertificateHashes` option as JSON, for a page to pass to
    /// `new WebTransport(url, { serverCertificateHashes: [{ algorithm, value: new Uint8Array(value) }] })`:
    /// `[{"algorithm":"sha-256","value":[…32 bytes…]}]`.
    pub fn hashes_json(&self) -> String {
        let bytes: Vec<String> = self.hash().iter().map(u8::to_string).collect();
        format!(
            r#"[{{"algorithm":"sha-256","value":[{}]}}]"#,
            bytes.join(",")
        )
    }

    /// The leaf certificate in PEM.
    pub fn to_pem(&self) -> String {
        self.identity
            .certificate_chain()
            .as_slice()
            .first()
            .map(|c| c.to_pem())
            .unwrap_or_default()
    }

    /// The private key in PEM (PKCS#8). With [`Certificate::to_pem`], what
    /// a TLS server for wss:// and https:// loads to present the same
    /// certificate as the WebTransport server (e.g. `tidings_axum::TlsConfig::from_pem`).
    /// A secret: write it only where the server's key belongs.
    pub fn private_key_pem(&self) -> String {
        self.identity.private_key().to_secret_pem()
    }

    pub(crate) fn identity(&self) -> Identity {
        self.identity.clone_identity()
    }
}

/// Serves [`Certificate::hashes_json`] over plain HTTP on `listener` (any
/// `GET`, with `Access-Control-Allow-Origin: *`) until the task is dropped,
/// so a development page can fetch the hash before it connects. Web servers
/// with a router (axum) serve the same JSON from a route instead.
pub async fn serve_certificate_hashes(listener: tokio::net::TcpListener, json: String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            continue;
        };
        let body = json.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            // One request per connection; whatever it asks for, the answer is the hash.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), socket.read(&mut buf))
                .await;
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\naccess-control-allow-origin: *\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        });
    }
}
