//! TLS for both hub listeners: rustls, TLS 1.2 and 1.3 only, client
//! certificate required and verified against the run's CA, plus revocation.
//!
//! Revocation is a set of serials checked after webpki's chain check, so a
//! revoked certificate fails the handshake the moment it is revoked (no CRL
//! to re-publish). Certificate validity is judged on the hub's virtual clock
//! (it is rustls's time provider), like every other expiry in the hub.

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error as TlsError, KeyLog,
    RootCertStore, ServerConfig, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::clock::VirtualClock;
use crate::journal::HandshakeFailure;
use crate::pki::IssuedCert;
use crate::serial::Serial;

#[path = "tls_hello.rs"]
mod hello;
pub use hello::{
    hello_versions, offered_versions, version_name, HelloVersions, OfferedVersions,
    PROTOCOL_VERSION_ALERT,
};

/// The ring provider: the one crypto provider of the workspace.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Serials whose certificates are revoked (canonical: one spelling, one entry).
#[derive(Debug, Default)]
pub struct RevokedSerials(RwLock<HashSet<Serial>>);

impl RevokedSerials {
    /// Marks `serial` revoked; revoking twice is harmless.
    pub fn insert(&self, serial: &Serial) {
        self.0
            .write()
            .expect("revocation lock")
            .insert(serial.clone());
    }
    /// Whether `serial` is revoked.
    pub fn contains(&self, serial: &Serial) -> bool {
        self.0.read().expect("revocation lock").contains(serial)
    }
}

/// Subject CN and serial of a DER certificate.
pub fn cert_identity(der: &[u8]) -> Option<(String, Serial)> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_owned();
    Some((cn, Serial::from_octets(cert.raw_serial()).ok()?))
}

/// webpki's client verifier followed by the revocation check.
#[derive(Debug)]
struct RevocationCheckingVerifier {
    webpki: Arc<dyn ClientCertVerifier>,
    revoked: Arc<RevokedSerials>,
}

impl ClientCertVerifier for RevocationCheckingVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, TlsError> {
        let verified = self
            .webpki
            .verify_client_cert(end_entity, intermediates, now)?;
        let (_, serial) = cert_identity(end_entity)
            .ok_or(TlsError::InvalidCertificate(CertificateError::BadEncoding))?;
        if self.revoked.contains(&serial) {
            return Err(TlsError::InvalidCertificate(CertificateError::Revoked));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Builds the server configuration shared by the MQTT and HTTPS listeners.
pub fn server_config(
    ca_cert: &CertificateDer<'static>,
    server: &IssuedCert,
    revoked: Arc<RevokedSerials>,
    clock: Arc<VirtualClock>,
    key_log: Option<Arc<dyn KeyLog>>,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, TlsError> {
    use rustls_pki_types::pem::PemObject;
    let provider = provider();
    let mut roots = RootCertStore::empty();
    roots.add(ca_cert.clone())?;
    let webpki = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsError::General(format!("client verifier: {e}")))?;
    let verifier = Arc::new(RevocationCheckingVerifier { webpki, revoked });
    let key_pem = server
        .key_pem
        .as_deref()
        .ok_or_else(|| TlsError::General("server certificate has no key".into()))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| TlsError::General(format!("server key: {e}")))?;
    let mut config = ServerConfig::builder_with_details(provider, clock)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![server.cert_der.clone(), ca_cert.clone()], key)?;
    if let Some(kl) = key_log {
        config.key_log = kl;
    }
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Maps a failed handshake to the journal's reason and a detail line.
pub fn classify_handshake_error(err: &std::io::Error) -> (HandshakeFailure, String) {
    use rustls::PeerIncompatible as PI;
    let detail = err.to_string();
    let Some(tls) = err.get_ref().and_then(|e| e.downcast_ref::<TlsError>()) else {
        let reason = match err.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe => HandshakeFailure::ConnectionClosed,
            std::io::ErrorKind::TimedOut => HandshakeFailure::Timeout,
            _ => HandshakeFailure::Other,
        };
        return (reason, detail);
    };
    let reason = match tls {
        TlsError::NoCertificatesPresented => HandshakeFailure::NoClientCertificate,
        TlsError::InvalidCertificate(ce) => match ce {
            CertificateError::UnknownIssuer => HandshakeFailure::UnknownIssuer,
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                HandshakeFailure::CertificateExpired
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                HandshakeFailure::CertificateNotYetValid
            }
            CertificateError::Revoked => HandshakeFailure::CertificateRevoked,
            CertificateError::BadSignature => HandshakeFailure::BadSignature,
            _ => HandshakeFailure::BadCertificate,
        },
        TlsError::PeerIncompatible(pi) => match pi {
            PI::NoCipherSuitesInCommon => HandshakeFailure::NoCommonCipherSuite,
            PI::Tls12NotOffered
            | PI::Tls12NotOfferedOrEnabled
            | PI::SupportedVersionsExtensionRequired
            // Only a TLS 1.0/1.1 ClientHello lacks signature_algorithms
            // (mandatory in 1.2 and 1.3): the version is what is wrong.
            | PI::SignatureAlgorithmsExtensionRequired => HandshakeFailure::ProtocolVersion,
            _ => HandshakeFailure::Other,
        },
        TlsError::InvalidMessage(_) | TlsError::InappropriateMessage { .. } => {
            HandshakeFailure::NotTls
        }
        TlsError::AlertReceived(_) => HandshakeFailure::PeerAlert,
        _ => HandshakeFailure::Other,
    };
    (reason, detail)
}

/// Writes TLS secrets in the NSS key log format, one line per secret, flushed
/// at once so a capture can be decrypted even if the hub is killed.
#[derive(Debug)]
pub struct KeyLogWriter {
    file: Mutex<File>,
}

impl KeyLogWriter {
    /// Opens `path` for appending (created if missing; earlier lines are kept).
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self {
            file: Mutex::new(file),
        })
    }
}

impl KeyLog for KeyLogWriter {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        let line = format!(
            "{label} {} {}\n",
            hex::encode(client_random),
            hex::encode(secret)
        );
        let mut f = self.file.lock().expect("key log lock");
        if let Err(e) = f.write_all(line.as_bytes()).and_then(|_| f.flush()) {
            tracing::warn!("key log write failed: {e}");
        }
    }

    fn will_log(&self, _label: &str) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_log_lines_are_nss_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.log");
        let kl = KeyLogWriter::create(&path).unwrap();
        kl.log("CLIENT_RANDOM", &[0xab; 32], &[0x01; 48]);
        let text = std::fs::read_to_string(&path).unwrap();
        let parts: Vec<&str> = text.trim().split(' ').collect();
        assert_eq!(parts[0], "CLIENT_RANDOM");
        assert_eq!(parts[1].len(), 64);
        assert_eq!(parts[2].len(), 96);
    }

    #[test]
    fn handshake_errors_are_classified() {
        let io = |e: TlsError| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        assert_eq!(
            classify_handshake_error(&io(TlsError::NoCertificatesPresented)).0,
            HandshakeFailure::NoClientCertificate
        );
        assert_eq!(
            classify_handshake_error(&io(TlsError::InvalidCertificate(
                CertificateError::UnknownIssuer
            )))
            .0,
            HandshakeFailure::UnknownIssuer
        );
        assert_eq!(
            classify_handshake_error(&io(TlsError::InvalidCertificate(CertificateError::Revoked)))
                .0,
            HandshakeFailure::CertificateRevoked
        );
        assert_eq!(
            classify_handshake_error(&std::io::Error::from(std::io::ErrorKind::UnexpectedEof)).0,
            HandshakeFailure::ConnectionClosed
        );
    }
}
