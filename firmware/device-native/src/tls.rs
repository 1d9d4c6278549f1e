//! The device's TLS client: rustls (ring provider, the workspace's one
//! provider), TLS 1.2 and 1.3, the hub's chain checked against the
//! provisioned trust anchor and its name against the provisioned host name,
//! SNI sent, the device certificate presented.
//!
//! The fault switches that weaken this are here and nowhere else, each doing
//! its one wrong thing, so that MT-04…MT-09, MT-14 and MT-15…26 are proven
//! able to fail (the chain verifiers of MT-15…26 in `tls_faults.rs`).

use std::sync::Arc;

use device_core::faults::{Fault, FaultSet};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

#[path = "tls_faults.rs"]
mod faulty;

/// Why the TLS client configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The provisioned trust anchor is not a usable root certificate.
    #[error("trust anchor: {0}")]
    TrustAnchor(String),
    /// rustls refused the device's certificate chain or private key.
    #[error("device credential: {0}")]
    Credential(String),
    /// rustls refused the configuration (e.g. protocol versions).
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The crypto provider when `weak-ciphers` is off: ring's default suites
/// (AEAD only), the workspace's one provider.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The device's credential as TLS needs it.
pub struct ClientCredential {
    /// The certificate chain to present, leaf first (the device's active
    /// certificate).
    pub chain: Vec<CertificateDer<'static>>,
    /// The certificate's private key.
    pub key: PrivateKeyDer<'static>,
}

/// Builds the client configuration for the hub (MQTT on 8883 and HTTPS on 443).
pub fn client_config(
    trust_anchor: &CertificateDer<'static>,
    credential: Option<ClientCredential>,
    faults: FaultSet,
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let provider = if faults.has(Fault::WeakCiphers) {
        weak_provider()
    } else {
        provider()
    };
    let mut roots = RootCertStore::empty();
    roots
        .add(trust_anchor.clone())
        .map_err(|e| TlsSetupError::TrustAnchor(e.to_string()))?;
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsSetupError::TrustAnchor(e.to_string()))?;
    let verifier: Arc<dyn ServerCertVerifier> = if faults.has(Fault::NoServerVerify) {
        Arc::new(faulty::AcceptAnyChain {
            provider: provider.clone(),
        })
    } else if faults.has(Fault::NoHostnameCheck) {
        Arc::new(faulty::IgnoreHostName { inner: webpki })
    } else if faults.has(Fault::ChainSignaturesOnly) {
        Arc::new(faulty::SignaturesOnly {
            anchor: trust_anchor.clone(),
            provider: provider.clone(),
        })
    } else if faults.has(Fault::LooseWildcard) {
        Arc::new(faulty::LooseWildcard {
            inner: webpki,
            provider: provider.clone(),
        })
    } else if faults.has(Fault::TrustPresentedCa) {
        Arc::new(faulty::TrustPresentedCa {
            anchor: trust_anchor.clone(),
            provider: provider.clone(),
        })
    } else if faults.has(Fault::LeafDatesOnly) {
        Arc::new(faulty::LeafDatesOnly {
            inner: webpki,
            provider: provider.clone(),
        })
    } else {
        webpki
    };
    let verifier: Arc<dyn ServerCertVerifier> = if faults.has(Fault::SmallTlsBuffer) {
        Arc::new(faulty::SmallTlsBuffer { inner: verifier })
    } else {
        verifier
    };
    let verifier: Arc<dyn ServerCertVerifier> = if faults.has(Fault::StrictChainOrder) {
        Arc::new(faulty::StrictChainOrder {
            inner: verifier,
            provider: provider.clone(),
        })
    } else {
        verifier
    };
    // The board's clock, time-scaled or not: the hub's certificate is
    // checked against the time the device lives in.
    let builder = ClientConfig::builder_with_details(provider, crate::clock::time_provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match credential {
        Some(c) if !faults.has(Fault::NoClientCert) => builder
            .with_client_auth_cert(c.chain, c.key)
            .map_err(|e| TlsSetupError::Credential(e.to_string()))?,
        _ => builder.with_no_client_auth(),
    };
    config.enable_sni = !faults.has(Fault::NoSni);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Suite ids the `weak-ciphers` fault offers besides the AEAD ones.
pub const WEAK_SUITES: [rustls::CipherSuite; 3] = [
    rustls::CipherSuite::TLS_RSA_WITH_3DES_EDE_CBC_SHA,
    rustls::CipherSuite::TLS_RSA_WITH_RC4_128_SHA,
    rustls::CipherSuite::TLS_RSA_WITH_NULL_SHA,
];

/// Fault `weak-ciphers`: the ring provider, with NULL, RC4 and 3DES suite
/// ids appended to the offer. They are listed last and no honest server
/// picks them, so the handshake still negotiates an AEAD suite; what is
/// wrong — and what MT-03 must see — is that the ClientHello offers them.
/// (rustls implements no such suite; the entries reuse an AES-GCM suite's
/// machinery under the weak ids, which only matters if a server chose one.)
fn weak_provider() -> Arc<CryptoProvider> {
    let mut p = rustls::crypto::ring::default_provider();
    let base = match rustls::crypto::ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 {
        rustls::SupportedCipherSuite::Tls12(s) => s,
        rustls::SupportedCipherSuite::Tls13(_) => unreachable!("a TLS 1.2 suite"),
    };
    for suite in WEAK_SUITES {
        let weak: &'static rustls::Tls12CipherSuite =
            Box::leak(Box::new(rustls::Tls12CipherSuite {
                common: rustls::crypto::CipherSuiteCommon {
                    suite,
                    ..base.common
                },
                ..*base
            }));
        p.cipher_suites
            .push(rustls::SupportedCipherSuite::Tls12(weak));
    }
    Arc::new(p)
}
