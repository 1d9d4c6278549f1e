//! Server authentication for the TLS client: an embedded-tls `TlsVerifier`
//! built on rustls-webpki (the path validation the hub's rustls uses), with
//! ECDSA P-256 from the `p256` crate as webpki's signature algorithm.
//!
//! What it checks, and refuses on: the chain from the server's end-entity
//! certificate (plus any intermediates it sent) to the provisioned CA, each
//! certificate's validity period against the wall-clock time the device
//! holds (no time → refusal, never a skipped check), the serverAuth EKU
//! (when the certificate has an EKU extension, as webpki does for rustls), the
//! subjectAltName against the hub's host name, and the server's
//! CertificateVerify signature over the handshake transcript with the
//! end-entity key. The reason of a refusal is kept for the console.

use alloc::vec::Vec;
use core::fmt;
use embedded_tls::{
    Certificate, CertificateEntryRef, CertificateRef, CertificateVerifyRef, SignatureScheme,
    TlsCipherSuite, TlsError, TlsVerifier,
};
use p256::ecdsa::signature::Verifier;
use rustls_pki_types::{
    alg_id, AlgorithmIdentifier, CertificateDer, InvalidSignature, ServerName,
    SignatureVerificationAlgorithm, TrustAnchor, UnixTime,
};
use sha2::Digest;

/// ECDSA over P-256 with SHA-256, for webpki (which brings no crypto of its
/// own without ring or aws-lc-rs).
#[derive(Debug)]
pub struct EcdsaP256Sha256;

impl SignatureVerificationAlgorithm for EcdsaP256Sha256 {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        let key =
            p256::ecdsa::VerifyingKey::from_sec1_bytes(public_key).map_err(|_| InvalidSignature)?;
        let signature =
            p256::ecdsa::DerSignature::from_bytes(signature).map_err(|_| InvalidSignature)?;
        key.verify(message, &signature)
            .map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_P256
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_SHA256
    }
}

/// The algorithms certificates and CertificateVerify may use: the
/// project's identities are P-256 / SHA-256.
static ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] = &[&EcdsaP256Sha256];

/// Why the verifier refused the server (shown on the console).
#[derive(Debug)]
pub enum Refusal {
    /// The device has no wall-clock time: validity cannot be checked.
    NoTime,
    /// The provisioned CA certificate does not parse as a trust anchor.
    BadTrustAnchor(webpki::Error),
    /// The server sent no X.509 end-entity certificate.
    NoCertificate,
    /// Path validation failed: unknown issuer, expired, not yet valid, …
    Chain(webpki::Error),
    /// The certificate is not valid for the hub's host name.
    Name(webpki::Error),
    /// The host name to check is not a DNS name.
    BadHostName,
    /// CertificateVerify used a scheme other than ecdsa_secp256r1_sha256.
    Scheme(SignatureScheme),
    /// CertificateVerify does not verify with the end-entity key.
    Signature(webpki::Error),
    /// CertificateVerify came before a verified certificate.
    OutOfOrder,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NoTime => write!(f, "no time: validity cannot be checked"),
            Refusal::BadTrustAnchor(e) => write!(f, "provisioned CA unusable: {e:?}"),
            Refusal::NoCertificate => write!(f, "no server certificate"),
            Refusal::Chain(e @ webpki::Error::UnknownIssuer) => {
                write!(f, "not issued by the provisioned CA: {e:?}")
            }
            Refusal::Chain(e @ webpki::Error::CertExpired { .. }) => {
                write!(f, "expired: {e:?}")
            }
            Refusal::Chain(e @ webpki::Error::CertNotValidYet { .. }) => {
                write!(f, "not yet valid: {e:?}")
            }
            Refusal::Chain(e) => write!(f, "chain invalid: {e:?}"),
            Refusal::Name(e) => write!(f, "not valid for the hub's name: {e:?}"),
            Refusal::BadHostName => write!(f, "the hub's name is not a DNS name"),
            Refusal::Scheme(s) => write!(f, "CertificateVerify scheme {s:?} not accepted"),
            Refusal::Signature(e) => write!(f, "CertificateVerify signature invalid: {e:?}"),
            Refusal::OutOfOrder => write!(f, "CertificateVerify before a verified certificate"),
        }
    }
}

/// Verifies the hub's certificate and handshake signature (see the module).
pub struct WebPkiVerifier<CipherSuite: TlsCipherSuite> {
    ca: CertificateDer<'static>,
    host: Option<heapless::String<253>>,
    now: Option<UnixTime>,
    /// The verified end entity's DER and the transcript up to its message.
    verified: Option<(Vec<u8>, CipherSuite::Hash)>,
    /// Set once CertificateVerify has verified: the server is authenticated.
    authenticated: bool,
    /// Fault `no-server-verify`: the chain is taken unchecked.
    accept_any_chain: bool,
    /// Why the last refusal happened.
    pub refusal: Option<Refusal>,
}

impl<CipherSuite: TlsCipherSuite> WebPkiVerifier<CipherSuite> {
    /// A verifier trusting `ca` (DER), checking validity at `now` (`None`:
    /// the device has no time, and every certificate is refused).
    pub fn new(ca: &'static [u8], now: Option<UnixTime>) -> Self {
        WebPkiVerifier {
            ca: CertificateDer::from(ca),
            host: None,
            now,
            verified: None,
            authenticated: false,
            accept_any_chain: false,
            refusal: None,
        }
    }

    /// True once the server's certificate and CertificateVerify have both
    /// verified in this handshake.
    pub fn authenticated(&self) -> bool {
        self.authenticated
    }

    /// Fault `no-server-verify` only: the hub's chain is not checked at
    /// all (any issuer, any dates, any name); the server must still sign
    /// the handshake with the key of the certificate it presents.
    pub fn accept_any_chain(&mut self) {
        self.accept_any_chain = true;
    }

    fn refuse(&mut self, why: Refusal) -> TlsError {
        self.refusal = Some(why);
        TlsError::InvalidCertificate
    }

    fn check_certificate(&self, cert: &CertificateRef<'_>) -> Result<Vec<u8>, Refusal> {
        let now = self.now.ok_or(Refusal::NoTime)?;
        let anchor: TrustAnchor<'_> =
            webpki::anchor_from_trusted_cert(&self.ca).map_err(Refusal::BadTrustAnchor)?;
        let mut entries = cert.entries().iter();
        let end_entity = match entries.next() {
            Some(CertificateEntryRef::X509(der)) => CertificateDer::from(*der),
            _ => return Err(Refusal::NoCertificate),
        };
        let intermediates: Vec<CertificateDer<'_>> = entries
            .filter_map(|e| match e {
                CertificateEntryRef::X509(der) => Some(CertificateDer::from(*der)),
                CertificateEntryRef::RawPublicKey(_) => None,
            })
            .collect();
        let ee = webpki::EndEntityCert::try_from(&end_entity).map_err(Refusal::Chain)?;
        ee.verify_for_usage(
            ALGORITHMS,
            &[anchor],
            &intermediates,
            now,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .map_err(Refusal::Chain)?;
        let host = self.host.as_deref().ok_or(Refusal::BadHostName)?;
        let name = ServerName::try_from(host).map_err(|_| Refusal::BadHostName)?;
        if !matches!(name, ServerName::DnsName(_)) {
            return Err(Refusal::BadHostName);
        }
        ee.verify_is_valid_for_subject_name(&name)
            .map_err(Refusal::Name)?;
        Ok(end_entity.as_ref().to_vec())
    }

    fn check_signature(&mut self, verify: &CertificateVerifyRef<'_>) -> Result<(), Refusal> {
        let (der, transcript) = self.verified.take().ok_or(Refusal::OutOfOrder)?;
        if verify.signature_scheme != SignatureScheme::EcdsaSecp256r1Sha256 {
            return Err(Refusal::Scheme(verify.signature_scheme));
        }
        // RFC 8446 §4.4.3: 64 spaces, the context string, 0, the transcript hash.
        let mut message = Vec::with_capacity(64 + 34 + 64);
        message.extend_from_slice(&[0x20; 64]);
        message.extend_from_slice(b"TLS 1.3, server CertificateVerify\x00");
        message.extend_from_slice(&transcript.finalize());
        let der = CertificateDer::from(der.as_slice());
        let ee = webpki::EndEntityCert::try_from(&der).map_err(Refusal::Signature)?;
        ee.verify_signature(&EcdsaP256Sha256, &message, verify.signature)
            .map_err(Refusal::Signature)
    }
}

/// The end-entity certificate as presented, unchecked (fault `no-server-verify`).
fn end_entity_der(cert: &CertificateRef<'_>) -> Result<Vec<u8>, Refusal> {
    match cert.entries().first() {
        Some(CertificateEntryRef::X509(der)) => Ok(der.to_vec()),
        _ => Err(Refusal::NoCertificate),
    }
}

impl<CipherSuite: TlsCipherSuite> TlsVerifier<CipherSuite> for WebPkiVerifier<CipherSuite> {
    fn set_hostname_verification(&mut self, hostname: &str) -> Result<(), TlsError> {
        let host = heapless::String::try_from(hostname).map_err(|_| {
            self.refusal = Some(Refusal::BadHostName);
            TlsError::InsufficientSpace
        })?;
        self.host = Some(host);
        Ok(())
    }

    fn verify_certificate(
        &mut self,
        transcript: &CipherSuite::Hash,
        _ca: &Option<Certificate>,
        cert: CertificateRef,
    ) -> Result<(), TlsError> {
        self.authenticated = false;
        self.verified = None;
        let checked = if self.accept_any_chain {
            end_entity_der(&cert)
        } else {
            self.check_certificate(&cert)
        };
        match checked {
            Ok(der) => {
                self.verified = Some((der, transcript.clone()));
                Ok(())
            }
            Err(why) => Err(self.refuse(why)),
        }
    }

    fn verify_signature(&mut self, verify: CertificateVerifyRef) -> Result<(), TlsError> {
        match self.check_signature(&verify) {
            Ok(()) => {
                self.authenticated = true;
                Ok(())
            }
            Err(why) => {
                self.refusal = Some(why);
                Err(TlsError::InvalidSignature)
            }
        }
    }
}
