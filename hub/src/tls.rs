//! The embedded broker's TLS certificate: made once (self-signed, rcgen) when `mqtt.tls_listen`
//! is set, kept beside the hub's state, and pinned by each terminal through the SHA-256
//! fingerprint that `hearth-hub pair` writes into its config. No certificate authority is
//! involved: the pin is the trust.

use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};

use crate::broker::MqttConfig;

/// Why the certificate cannot be made or read.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("TLS certificate {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file holds no certificate, or a damaged one.
    #[error("TLS certificate {path} holds no PEM certificate: {reason}; remove it (and its key) to make a new one, then pair the terminals again")]
    Bad {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// rcgen could not make one.
    #[error("cannot make a TLS certificate: {0}")]
    Generate(String),
}

/// The fingerprint terminals pin: `sha256:` and the hex of the certificate's DER.
pub fn fingerprint(der: &[u8]) -> String {
    let hash = Sha256::digest(der);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Makes the certificate and key at `mqtt.tls_cert` and `mqtt.tls_key` if either is missing
/// (key mode 0600, folders 0700), and returns the certificate's fingerprint.
pub fn ensure_cert(mqtt: &MqttConfig) -> Result<String, TlsError> {
    let (cert, key) = (&mqtt.tls_cert, &mqtt.tls_key);
    if !cert.exists() || !key.exists() {
        let made = rcgen::generate_simple_self_signed(vec![
            "hearth-hub".to_string(),
            "localhost".to_string(),
        ])
        .map_err(|e| TlsError::Generate(e.to_string()))?;
        write(key, made.key_pair.serialize_pem().as_bytes())?;
        write(cert, made.cert.pem().as_bytes())?;
        tracing::info!(cert = %cert.display(), "made a TLS certificate for the broker; pair the terminals (again) so that they pin it");
    }
    read_fingerprint(cert)
}

/// The fingerprint of the first certificate in the PEM file at `path`.
pub fn read_fingerprint(path: &Path) -> Result<String, TlsError> {
    let der = CertificateDer::from_pem_file(path).map_err(|e| TlsError::Bad {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(fingerprint(&der))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    crate::files::replace(path, bytes).map_err(|source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_is_made_once_and_its_fingerprint_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let mqtt = MqttConfig {
            tls_cert: dir.path().join("tls/cert.pem"),
            tls_key: dir.path().join("tls/key.pem"),
            ..MqttConfig::default()
        };
        let first = ensure_cert(&mqtt).unwrap();
        assert!(
            first.starts_with("sha256:") && first.len() == 7 + 64,
            "{first}"
        );
        assert_eq!(ensure_cert(&mqtt).unwrap(), first, "not made again");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&mqtt.tls_key)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&mqtt.tls_cert, "not a certificate").unwrap();
        assert!(matches!(ensure_cert(&mqtt), Err(TlsError::Bad { .. })));
    }
}
