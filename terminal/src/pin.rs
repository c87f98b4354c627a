//! TLS to the hub with its certificate pinned: the connection is accepted only if the hub's
//! certificate has the SHA-256 fingerprint that `hearth-hub pair` wrote into this terminal's
//! config. Names and certificate authorities play no part; a self-signed certificate is the
//! normal case.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

/// Reads `sha256:<64 hex digits>`.
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], String> {
    let hex = text
        .trim()
        .strip_prefix("sha256:")
        .ok_or("expected \"sha256:\" and 64 hex digits")?;
    if hex.len() != 64 {
        return Err("expected \"sha256:\" and 64 hex digits".into());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| format!("{:?} is not hex", &hex[2 * i..2 * i + 2]))?;
    }
    Ok(out)
}

/// Accepts exactly one certificate, by fingerprint; signatures are still checked with ring.
#[derive(Debug)]
struct Pinned {
    fingerprint: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if seen == self.fingerprint {
            return Ok(ServerCertVerified::assertion());
        }
        let hex: String = seen.iter().map(|b| format!("{b:02x}")).collect();
        tracing::error!(seen = %format!("sha256:{hex}"), "the hub's TLS certificate is not the pinned one: refusing to connect (pair the terminal again if the hub's certificate changed)");
        Err(rustls::Error::General(format!(
            "the hub's certificate sha256:{hex} is not the pinned one"
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A rustls client config (ring) that trusts only the certificate with `fingerprint`.
pub fn client_config(fingerprint: &str) -> Result<ClientConfig, String> {
    let fingerprint = parse_fingerprint(fingerprint)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned {
            fingerprint,
            provider,
        }))
        .with_no_client_auth();
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_strictly() {
        let good = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(parse_fingerprint(&good).unwrap(), [0xab; 32]);
        for bad in [
            "",
            "ab",
            "sha1:00",
            &format!("sha256:{}", "zz".repeat(32)),
            &format!("sha256:{}", "ab".repeat(31)),
        ] {
            assert!(parse_fingerprint(bad).is_err(), "{bad:?}");
        }
        assert!(client_config(&good).is_ok());
    }
}
