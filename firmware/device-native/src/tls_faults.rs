//! The reference device's hub-certificate fault verifiers (the negative
//! controls of MT-05…09 and MT-15…26): each is a real [`ServerCertVerifier`]
//! doing its one wrong thing, the way the embedded TLS stacks it imitates
//! do it, and everything else right.
//!
//! - `chain-signatures-only` ([`SignaturesOnly`]): walks the chain from the
//!   hub's certificate to the trust anchor by issuer name and signature and
//!   checks every certificate's dates; no basicConstraints, pathLen, key
//!   usage, extended key usage or name constraints, and an intermediate's
//!   critical extensions go unread (the hub's own certificate is still
//!   parsed by webpki for the name check). The host name is still
//!   checked (webpki's matcher).
//! - `loose-wildcard` ([`LooseWildcard`]): webpki's whole verification,
//!   but a name mismatch is forgiven when a DNS name of the certificate
//!   matches as a glob whose `*` spans labels and partial labels.
//! - `trust-presented-ca` ([`TrustPresentedCa`]): every CA certificate the
//!   server presents joins the trust anchors for that handshake (the
//!   partial-chain misuse).
//! - `small-tls-buffer` ([`SmallTlsBuffer`]): a server Certificate message
//!   larger than a 4 KB input buffer is refused, as an mbedTLS build with
//!   `MBEDTLS_SSL_IN_CONTENT_LEN` 4096 refuses it.
//! - `leaf-dates-only` ([`LeafDatesOnly`]): webpki's whole verification,
//!   but the validity dates are checked on the hub's own certificate only,
//!   not on the intermediates above it.
//! - `no-server-verify` ([`AcceptAnyChain`]): any chain at all;
//!   `no-hostname-check` ([`IgnoreHostName`]): webpki's, a name mismatch forgiven.
//! - `strict-chain-order` ([`StrictChainOrder`]): a Certificate message
//!   whose certificates are not each certified by the next (issuer name
//!   and signature) is refused before anything else is checked, as
//!   TLS 1.2-era embedded stacks walk the chain in the order sent.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use x509_parser::asn1_rs::ToDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use x509_parser::x509::AlgorithmIdentifier;

/// The handshake signature checks every verifier here shares: the
/// provider's algorithms, as webpki's verifier does it.
macro_rules! handshake_signatures_by_provider {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
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
            rustls::crypto::verify_tls13_signature(
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
    };
}

/// The handshake signature checks of a verifier that wraps another
/// (`self.inner`) and adds one chain check before it: the inner one's.
macro_rules! handshake_signatures_by_inner {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.inner.supported_verify_schemes()
        }
    };
}

/// Fault `no-server-verify`: any chain is accepted (the handshake signature
/// is still checked, so the TLS session itself works).
#[derive(Debug)]
pub(super) struct AcceptAnyChain {
    pub(super) provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyChain {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    handshake_signatures_by_provider!();
}

/// Fault `no-hostname-check`: the chain is verified, a name mismatch ignored.
#[derive(Debug)]
pub(super) struct IgnoreHostName {
    pub(super) inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for IgnoreHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    handshake_signatures_by_inner!();
}

fn bad_encoding() -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::BadEncoding)
}

fn parse<'a>(der: &'a [u8]) -> Result<X509Certificate<'a>, rustls::Error> {
    X509Certificate::from_der(der)
        .map(|(_, c)| c)
        .map_err(|_| bad_encoding())
}

/// An AlgorithmIdentifier's DER contents (OID and parameters, without the
/// SEQUENCE header): how rustls' verification algorithms name themselves.
fn alg_id_contents(a: &AlgorithmIdentifier<'_>) -> Option<Vec<u8>> {
    let mut out = a.algorithm.to_der_vec().ok()?;
    if let Some(p) = &a.parameters {
        out.extend(p.to_der_vec().ok()?);
    }
    Some(out)
}

/// Whether `issuer`'s key made `child`'s signature, with the provider's
/// algorithm for the pair (signature algorithm, issuer key algorithm).
fn signed_by(
    child: &X509Certificate<'_>,
    issuer: &X509Certificate<'_>,
    provider: &CryptoProvider,
) -> bool {
    let (Some(sig_alg), Some(key_alg)) = (
        alg_id_contents(&child.signature_algorithm),
        alg_id_contents(&issuer.public_key().algorithm),
    ) else {
        return false;
    };
    provider
        .signature_verification_algorithms
        .all
        .iter()
        .filter(|a| {
            a.signature_alg_id().as_ref() == sig_alg && a.public_key_alg_id().as_ref() == key_alg
        })
        .any(|a| {
            a.verify_signature(
                &issuer.public_key().subject_public_key.data,
                child.tbs_certificate.as_ref(),
                &child.signature_value.data,
            )
            .is_ok()
        })
}

fn check_dates(c: &X509Certificate<'_>, now: UnixTime) -> Result<(), rustls::Error> {
    let now = i64::try_from(now.as_secs()).map_err(|_| bad_encoding())?;
    let v = c.validity();
    if now < v.not_before.timestamp() {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidYet,
        ));
    }
    if now > v.not_after.timestamp() {
        return Err(rustls::Error::InvalidCertificate(CertificateError::Expired));
    }
    Ok(())
}

/// The longest issuer walk [`signatures_only_chain`] tries: more
/// certificates than any server presents.
const MAX_CHAIN: usize = 10;

/// Fault `chain-signatures-only`'s chain check: from `end_entity`, follow
/// issuer names through `presented` certificates (each link's signature
/// verified) until the trust anchor signed one; every certificate on the way
/// must be within its dates. Nothing else of X.509 is looked at.
pub(super) fn signatures_only_chain(
    anchor: &[u8],
    end_entity: &[u8],
    presented: &[&[u8]],
    now: UnixTime,
    provider: &CryptoProvider,
) -> Result<(), rustls::Error> {
    let anchor = parse(anchor)?;
    let presented: Vec<X509Certificate<'_>> = presented
        .iter()
        .map(|d| parse(d))
        .collect::<Result<_, _>>()?;
    let mut current = parse(end_entity)?;
    for _ in 0..MAX_CHAIN {
        check_dates(&current, now)?;
        if current.issuer() == anchor.subject() && signed_by(&current, &anchor, provider) {
            return Ok(());
        }
        match presented
            .iter()
            .find(|c| c.subject() == current.issuer() && signed_by(&current, c, provider))
        {
            Some(next) => current = next.clone(),
            None => break,
        }
    }
    Err(rustls::Error::InvalidCertificate(
        CertificateError::UnknownIssuer,
    ))
}

/// Fault `chain-signatures-only` (see the module).
#[derive(Debug)]
pub(super) struct SignaturesOnly {
    pub(super) anchor: CertificateDer<'static>,
    pub(super) provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for SignaturesOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented: Vec<&[u8]> = intermediates.iter().map(|c| c.as_ref()).collect();
        signatures_only_chain(&self.anchor, end_entity, &presented, now, &self.provider)?;
        rustls::client::verify_server_name(&ParsedCertificate::try_from(end_entity)?, server_name)?;
        Ok(ServerCertVerified::assertion())
    }

    handshake_signatures_by_provider!();
}

/// Fault `loose-wildcard`'s matcher: `pattern`'s first `*` stands for any
/// run of characters, dots included (so `*.test` matches
/// `hub.sacbench.test` and `h*.sacbench.test` matches `hub.sacbench.test`);
/// ASCII case ignored. A pattern without `*` must equal the host.
pub(super) fn loose_wildcard_match(pattern: &str, host: &str) -> bool {
    let (p, h) = (pattern.to_ascii_lowercase(), host.to_ascii_lowercase());
    match p.split_once('*') {
        None => p == h,
        Some((prefix, suffix)) => {
            h.len() >= prefix.len() + suffix.len() && h.starts_with(prefix) && h.ends_with(suffix)
        }
    }
}

/// The DNS names of a certificate's subjectAltName.
fn dns_names(cert: &[u8]) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok(c) = parse(cert) else {
        return Vec::new();
    };
    let Ok(Some(san)) = c.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_string()),
            _ => None,
        })
        .collect()
}

/// Fault `loose-wildcard` (see the module).
#[derive(Debug)]
pub(super) struct LooseWildcard {
    pub(super) inner: Arc<WebPkiServerVerifier>,
    pub(super) provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for LooseWildcard {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the name only after the chain: a name error means
        // the chain is good.
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(
                e @ rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                ),
            ) => {
                let ServerName::DnsName(host) = server_name else {
                    return Err(e);
                };
                if dns_names(end_entity)
                    .iter()
                    .any(|p| loose_wildcard_match(p, host.as_ref()))
                {
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(e)
                }
            }
            other => other,
        }
    }

    handshake_signatures_by_provider!();
}

/// Whether a certificate says it is a CA (basicConstraints cA TRUE).
fn is_ca(cert: &[u8]) -> bool {
    parse(cert)
        .ok()
        .and_then(|c| c.basic_constraints().ok().flatten().map(|b| b.value.ca))
        .unwrap_or(false)
}

/// Fault `trust-presented-ca` (see the module).
#[derive(Debug)]
pub(super) struct TrustPresentedCa {
    pub(super) anchor: CertificateDer<'static>,
    pub(super) provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for TrustPresentedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut roots = RootCertStore::empty();
        roots.add(self.anchor.clone())?;
        for c in intermediates.iter().filter(|c| is_ca(c)) {
            // A presented CA that is no usable anchor is simply not one.
            let _ = roots.add(c.clone().into_owned());
        }
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    handshake_signatures_by_provider!();
}

/// The input buffer of fault `small-tls-buffer`, bytes.
pub(super) const SMALL_INPUT_BUFFER: usize = 4096;

/// The size of the TLS 1.2 Certificate handshake message carrying these
/// certificates: header (4), list length (3), each certificate's length (3)
/// and DER.
pub(super) fn certificate_message_len(certs: &[&[u8]]) -> usize {
    4 + 3 + certs.iter().map(|c| 3 + c.len()).sum::<usize>()
}

/// Fault `small-tls-buffer` (see the module): a Certificate message larger
/// than [`SMALL_INPUT_BUFFER`] is refused before anything else is checked;
/// a smaller one goes to the device's verifier.
#[derive(Debug)]
pub(super) struct SmallTlsBuffer {
    pub(super) inner: Arc<dyn ServerCertVerifier>,
}

impl ServerCertVerifier for SmallTlsBuffer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let certs: Vec<&[u8]> = std::iter::once(end_entity.as_ref())
            .chain(intermediates.iter().map(|c| c.as_ref()))
            .collect();
        let len = certificate_message_len(&certs);
        if len > SMALL_INPUT_BUFFER {
            return Err(rustls::Error::General(format!(
                "the hub's certificate message ({len} bytes) exceeds the {SMALL_INPUT_BUFFER}-byte TLS input buffer"
            )));
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    handshake_signatures_by_inner!();
}

/// The time [`LeafDatesOnly`] verifies the chain at: `now`, moved into the
/// span where every presented intermediate is within its dates (the latest
/// notBefore to the earliest notAfter), if there is such a span and `now`
/// is outside it.
pub(super) fn intermediates_time(
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
) -> Result<UnixTime, rustls::Error> {
    let mut span: Option<(i64, i64)> = None;
    for c in intermediates {
        let v = parse(c)?.validity().clone();
        let (nb, na) = (v.not_before.timestamp(), v.not_after.timestamp());
        span = Some(match span {
            None => (nb, na),
            Some((lo, hi)) => (lo.max(nb), hi.min(na)),
        });
    }
    let t = i64::try_from(now.as_secs()).map_err(|_| bad_encoding())?;
    Ok(match span {
        Some((lo, hi)) if lo <= hi && (t < lo || t > hi) => {
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                u64::try_from(t.clamp(lo, hi)).map_err(|_| bad_encoding())?,
            ))
        }
        _ => now,
    })
}

/// Fault `leaf-dates-only` (see the module). A hand-written verifier with
/// this defect compares the clock with the hub's certificate's dates and
/// never with the intermediates'; webpki cannot be told to skip some
/// certificates' dates, so this one gets the same effect honestly: the hub
/// certificate's dates are checked at the real time, and webpki verifies
/// the whole chain (signatures, constraints, name, and dates) at a time
/// when the presented intermediates are all valid
/// ([`intermediates_time`]). Where no such time exists, or the hub's
/// certificate was not valid then too, the chain is still refused: the
/// fault lets through no more than the defect does.
#[derive(Debug)]
pub(super) struct LeafDatesOnly {
    pub(super) inner: Arc<WebPkiServerVerifier>,
    pub(super) provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for LeafDatesOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        check_dates(&parse(end_entity)?, now)?;
        let at = intermediates_time(intermediates, now)?;
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, at)
    }

    handshake_signatures_by_provider!();
}

/// Fault `strict-chain-order`'s check: every certificate of the message,
/// the hub's first, is certified by the one after it (its issuer is the
/// next one's subject and the next one's key made its signature); the
/// last one is left to the verifier. Returns the position of the first
/// certificate that is not.
pub(super) fn out_of_order_at(
    certs: &[&[u8]],
    provider: &CryptoProvider,
) -> Result<Option<usize>, rustls::Error> {
    let parsed: Vec<X509Certificate<'_>> =
        certs.iter().map(|d| parse(d)).collect::<Result<_, _>>()?;
    Ok(parsed
        .windows(2)
        .position(|w| !(w[0].issuer() == w[1].subject() && signed_by(&w[0], &w[1], provider))))
}

/// Fault `strict-chain-order` (see the module): an out-of-order Certificate
/// message is refused; an ordered one goes to the device's verifier.
#[derive(Debug)]
pub(super) struct StrictChainOrder {
    pub(super) inner: Arc<dyn ServerCertVerifier>,
    pub(super) provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for StrictChainOrder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let certs: Vec<&[u8]> = std::iter::once(end_entity.as_ref())
            .chain(intermediates.iter().map(|c| c.as_ref()))
            .collect();
        if let Some(i) = out_of_order_at(&certs, &self.provider)? {
            return Err(rustls::Error::General(format!(
                "the hub's certificate {i} (0 = its own) is not certified by certificate {}: the chain is out of order",
                i + 1
            )));
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    handshake_signatures_by_inner!();
}

#[cfg(test)]
#[path = "tls_faults_tests.rs"]
mod tests;
