//! `DevCertificate`: the one self-signed development certificate of tidings — ECDSA P-256, valid 13 days from now — that both TLS servers take: wss:// and https:// (`tidings_axum::TlsConfig::self_signed`) and WebTransport, whose browsers pin it by hash (`tidings_webtransport::Certificate::self_signed`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest validity Chromium accepts for a certificate pinned by hash
/// (`serverCertificateHashes`: 14 days), less a day of margin.
pub const DEV_VALIDITY_DAYS: u32 = 13;

/// A development certificate could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevCertError {
    /// A subject name is not a valid DNS name or IP address, or signing failed.
    #[error("making a development certificate for {names:?}: {reason}")]
    Generate {
        /// The names asked for.
        names: Vec<String>,
        /// What rcgen said.
        reason: String,
    },
}

/// A fresh self-signed ECDSA P-256 certificate and its private key, for
/// development only: clients must trust it (a PEM root, or its SHA-256 pin
/// for WebTransport in a browser).
///
/// ```
/// let dev = tidings_runtime::dev_cert::DevCertificate::generate(["localhost", "127.0.0.1"]).unwrap();
/// assert!(dev.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
/// assert!(dev.key_pem().contains("PRIVATE KEY"));
/// ```
pub struct DevCertificate {
    cert_der: Vec<u8>,
    cert_pem: String,
    key_der: Vec<u8>,
    key_pem: String,
}

impl std::fmt::Debug for DevCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCertificate").finish_non_exhaustive()
    }
}

impl DevCertificate {
    /// A certificate for `names` (DNS names or IP addresses), valid from now
    /// for [`DEV_VALIDITY_DAYS`] days.
    ///
    /// # Errors
    /// [`DevCertError::Generate`] for a name that is neither a DNS name nor
    /// an IP address, or when signing fails.
    pub fn generate<I, S>(names: I) -> Result<Self, DevCertError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let names: Vec<String> = names.into_iter().map(|s| s.as_ref().to_owned()).collect();
        let failed = |e: rcgen::Error| DevCertError::Generate {
            names: names.clone(),
            reason: e.to_string(),
        };
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(failed)?;
        let mut params = rcgen::CertificateParams::new(names.clone()).map_err(failed)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "tidings development certificate");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        params.not_before = epoch + now;
        params.not_after =
            epoch + now + Duration::from_secs(u64::from(DEV_VALIDITY_DAYS) * 24 * 3600);
        let cert = params.self_signed(&key).map_err(failed)?;
        Ok(Self {
            cert_der: cert.der().to_vec(),
            cert_pem: cert.pem(),
            key_der: key.serialize_der(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The certificate (DER).
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The certificate (PEM): what clients trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key (PKCS#8 DER). A secret.
    pub fn key_der(&self) -> &[u8] {
        &self.key_der
    }

    /// The private key (PKCS#8 PEM). A secret.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }
}
