//! The gateway's identity store: one identity per leaf in the keystore
//! directory (`<leaf id>.cert.pem`, `<leaf id>.key.pem`), and the TLS client
//! configuration each leaf's session uses — the leaf's certificate as the
//! client certificate, the hub's CA as the only trust anchor.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A leaf's identity at the hub, as the keystore holds it.
#[derive(Debug, Clone)]
pub struct LeafIdentity {
    /// The leaf's device id: MQTT client id and the certificate's CN.
    pub device_id: String,
    /// Its certificate chain (PEM, leaf first).
    pub cert_pem: String,
    /// Its private key (PEM: PKCS#8, SEC1 or PKCS#1).
    pub key_pem: String,
}

impl LeafIdentity {
    /// The file holding `leaf`'s certificate in `keystore`.
    pub fn cert_path(keystore: &Path, leaf: &str) -> std::path::PathBuf {
        keystore.join(format!("{leaf}.cert.pem"))
    }

    /// The file holding `leaf`'s private key in `keystore`.
    pub fn key_path(keystore: &Path, leaf: &str) -> std::path::PathBuf {
        keystore.join(format!("{leaf}.key.pem"))
    }

    /// Reads `leaf`'s identity from `keystore`; the error names the file.
    pub fn load(keystore: &Path, leaf: &str) -> Result<LeafIdentity, String> {
        Ok(LeafIdentity {
            device_id: leaf.to_owned(),
            cert_pem: read(&Self::cert_path(keystore, leaf))?,
            key_pem: read(&Self::key_path(keystore, leaf))?,
        })
    }

    /// The TLS client configuration of this leaf's session: TLS 1.2/1.3 on
    /// the workspace's one provider (ring), `trust_anchor_pem` as the only
    /// roots (no system store: only the hub's CA may vouch for the hub), this
    /// identity as the client certificate. The hub's name is checked by
    /// rustls against the name the session dials.
    pub fn tls_config(&self, trust_anchor_pem: &str) -> Result<Arc<rustls::ClientConfig>, String> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(trust_anchor_pem.as_bytes()) {
            let cert = cert.map_err(|e| format!("trust anchor: {e}"))?;
            roots.add(cert).map_err(|e| format!("trust anchor: {e}"))?;
        }
        if roots.is_empty() {
            return Err("trust anchor: no certificate in it".into());
        }
        let what = |e: &dyn std::fmt::Display| format!("identity of {}: {e}", self.device_id);
        let chain = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| what(&e))?;
        if chain.is_empty() {
            return Err(what(&"no certificate in it"));
        }
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|e| what(&e))?;
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| what(&e))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| what(&e))?;
        Ok(Arc::new(config))
    }
}

/// A file's text; the error names the file.
pub(crate) fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_identity_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = LeafIdentity::load(dir.path(), "meter-a").unwrap_err();
        assert!(e.contains("meter-a.cert.pem"), "{e}");
    }

    #[test]
    fn garbage_is_refused_before_any_connection() {
        let id = LeafIdentity {
            device_id: "meter-a".into(),
            cert_pem: "not a certificate".into(),
            key_pem: "not a key".into(),
        };
        let e = id.tls_config("no CA here").unwrap_err();
        assert!(e.contains("trust anchor"), "{e}");
    }
}
