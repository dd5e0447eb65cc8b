//! A throw-away certificate authority for TLS tests: a CA and a server certificate for `localhost` and `127.0.0.1`, as PEM, made at run time with rcgen.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// Why a test CA could not be made or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestCaError {
    /// rcgen refused the parameters or could not sign.
    #[error("generating the test certificates: {0}")]
    Generate(#[from] rcgen::Error),
    /// Writing a PEM file failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A test CA (ECDSA P-256) and one server certificate it signed, valid for
/// `localhost` and `127.0.0.1`.
///
/// ```
/// let ca = tidings_test::tls::TestCa::new().unwrap();
/// assert!(ca.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
/// assert!(ca.key_pem().contains("PRIVATE KEY"));
/// ```
#[derive(Debug, Clone)]
pub struct TestCa {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

impl TestCa {
    /// Makes a new CA and server certificate.
    ///
    /// # Errors
    /// [`TestCaError::Generate`] when rcgen fails.
    pub fn new() -> Result<Self, TestCaError> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "tidings test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])?;
        params
            .distinguished_name
            .push(DnType::CommonName, "tidings test server");
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        Ok(Self {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The CA certificate (PEM): what clients trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The server certificate (PEM), signed by the CA.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The server's private key (PKCS#8 PEM).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Writes `ca.pem`, `cert.pem` and `key.pem` into `dir` (created if
    /// needed) and returns the CA file's path, for peers that read files.
    ///
    /// # Errors
    /// [`TestCaError::Write`] naming the file that could not be written.
    pub fn write_to(&self, dir: &Path) -> Result<PathBuf, TestCaError> {
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::create_dir_all(dir)
                .and_then(|()| std::fs::write(&path, text))
                .map_err(|source| TestCaError::Write {
                    path: path.clone(),
                    source,
                })?;
            Ok::<_, TestCaError>(path)
        };
        write("cert.pem", &self.cert_pem)?;
        write("key.pem", &self.key_pem)?;
        write("ca.pem", &self.ca_pem)
    }
}
