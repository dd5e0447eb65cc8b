//! The browser server's TLS listener: a self-signed ECDSA P-256 certificate kept in `--tls-dir` (made on first start, reused after a restart, so the key Chromium pins stays the same), and the base64 SHA-256 of its SubjectPublicKeyInfo for `--ignore-certificate-errors-spki-list`.

use std::path::Path;

use base64::Engine as _;
use rcgen::PublicKeyData as _;
use tidings::axum::TlsConfig;

/// A TLS configuration with a fresh self-signed certificate that nobody pins.
pub(crate) fn fresh() -> Result<TlsConfig, String> {
    let key_pair = rcgen::KeyPair::generate().map_err(|e| format!("key: {e}"))?;
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".into()])
        .map_err(|e| format!("certificate parameters: {e}"))?;
    let certificate = params
        .self_signed(&key_pair)
        .map_err(|e| format!("self-signing: {e}"))?;
    TlsConfig::from_pem(
        certificate.pem().as_bytes(),
        key_pair.serialize_pem().as_bytes(),
    )
    .map_err(|e| e.to_string())
}

/// The TLS configuration from `dir` (made there first if missing) and the
/// base64 SHA-256 of the certificate's public key (SubjectPublicKeyInfo).
pub(crate) fn load_or_make(dir: &Path) -> Result<(TlsConfig, String), String> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if !cert.exists() || !key.exists() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let key_pair = rcgen::KeyPair::generate().map_err(|e| format!("key: {e}"))?;
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .map_err(|e| format!("certificate parameters: {e}"))?;
        let certificate = params
            .self_signed(&key_pair)
            .map_err(|e| format!("self-signing: {e}"))?;
        std::fs::write(&cert, certificate.pem())
            .map_err(|e| format!("writing {}: {e}", cert.display()))?;
        std::fs::write(&key, key_pair.serialize_pem())
            .map_err(|e| format!("writing {}: {e}", key.display()))?;
    }
    let key_pem =
        std::fs::read_to_string(&key).map_err(|e| format!("reading {}: {e}", key.display()))?;
    let key_pair = rcgen::KeyPair::from_pem(&key_pem).map_err(|e| format!("key PEM: {e}"))?;
    let spki = key_pair.subject_public_key_info();
    let digest = ring::digest::digest(&ring::digest::SHA256, &spki);
    let pin = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
    let config = TlsConfig::from_pem_files(&cert, &key).map_err(|e| e.to_string())?;
    Ok((config, pin))
}
