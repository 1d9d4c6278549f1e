//! The pure part of EST (Enrollment over Secure Transport, RFC 7030) as the
//! fixture hub serves it: no sockets, no HTTP. The HTTPS layer calls these
//! functions with the request body and the DER of the TLS client certificate
//! that authenticated the connection, and answers with the returned body and
//! content type.
//!
//! * `/cacerts` (RFC 7030 §4.1): [`cacerts_body`], a certs-only CMS
//!   SignedData (§4.1.3) holding the CA certificate.
//! * `/simplereenroll` (§4.2.2): [`simple_reenroll`]. The body is a PKCS#10
//!   CSR (RFC 2986), base64 of its DER (§4.2.1; RFC 8951 drops
//!   Content-Transfer-Encoding, bodies are always base64). Its self-signature
//!   is the proof of possession of the new key. The reply (§4.2.3) is a
//!   certs-only SignedData holding just the new certificate.
//!
//! Why the subject must match: §4.2.2 says the Subject field of a re-enrolment
//! request MUST be identical to the current certificate's. The caller proved
//! who it is with its current certificate in the TLS handshake; letting it
//! choose another subject would let any enrolled device obtain a certificate
//! naming another device. The new certificate is issued for CN = the device id
//! only; requested extensions and attributes in the CSR are ignored (the CA
//! decides them). Authenticating the client certificate (chain, revocation) is
//! the TLS layer's job; here it is only parsed for its subject.
//!
//! Decisions:
//! * Leniency: besides base64 DER (whitespace and line breaks anywhere), a
//!   PEM block labelled `CERTIFICATE REQUEST` or `NEW CERTIFICATE REQUEST` is
//!   accepted as a CSR body (`PKCS7`/`CMS` for [`parse_certs_only`]). Binary
//!   DER is refused with a message saying so.
//! * Subjects are compared as DER, or else as RFC 4514 text, so a
//!   PrintableString and a UTF8String with the same characters match; the
//!   comparison is case-sensitive (device ids are).
//! * Response bodies are base64 wrapped at 76 characters, each line ending
//!   in CRLF (MIME, RFC 2045 §6.8), including the last one.
//! * Keys the CA certifies: EC P-256 and P-384, Ed25519, RSA ≥ 2048 bits.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use cms::cert::x509::name::Name;
use cms::cert::x509::Certificate;
use cms::cert::CertificateChoices;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{CertificateSet, EncapsulatedContentInfo, SignedData, SignerInfos};
use der::asn1::{ObjectIdentifier, SetOfVec};
use der::{Any, Decode, Encode};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::error::X509Error;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;
use x509_parser::x509::{SubjectPublicKeyInfo, X509Name};

use crate::pki::{CertificateAuthority, IssuedCert, PkiError, Validity};

/// Content type of EST certificate responses.
pub const PKCS7_CERTS_ONLY: &str = "application/pkcs7-mime; smime-type=certs-only";
/// Content type of EST certificate requests.
pub const PKCS10: &str = "application/pkcs10";

const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const CSR_PEM_LABELS: &[&str] = &["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"];
const LINE: usize = 76;

/// Why an EST request could not be served. Every message names what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum EstError {
    /// The body is empty, binary DER, a PEM block with the wrong label, or
    /// not base64 (RFC 8951 bodies are base64 text).
    #[error("body is not base64 DER: {0}")]
    Base64(String),
    /// The DER is not one PKCS#10 CertificationRequest, its signature cannot
    /// be checked, or its subject's common name is not one text string.
    #[error("not a valid PKCS#10 certification request: {0}")]
    CsrParse(String),
    /// The CSR's self-signature is wrong: the requester did not prove it holds the key.
    #[error(
        "CSR signature does not verify with the CSR's own public key (no proof of possession)"
    )]
    CsrSignature,
    /// The TLS client certificate (the one being renewed) is not one DER X.509 certificate.
    #[error("the TLS client certificate cannot be parsed: {0}")]
    ClientCert(String),
    /// The CSR asks for another subject than the current certificate's;
    /// re-enrolment must keep it (RFC 7030 §4.2.2).
    #[error("CSR subject {requested:?} differs from the current certificate's subject {current:?} (RFC 7030 §4.2.2: re-enrolment keeps the subject)")]
    SubjectMismatch {
        /// The TLS client certificate's subject, RFC 4514 text.
        current: String,
        /// The CSR's subject, RFC 4514 text.
        requested: String,
    },
    /// The CSR subject has no common name, or an empty one: there is no device id to certify.
    #[error("CSR subject has no common name (the device id)")]
    NoCommonName,
    /// The CSR's key type or signature algorithm is not one the CA certifies.
    #[error("the CA cannot certify this key: {0}")]
    UnsupportedKey(String),
    /// Issuing the certificate failed in the CA for another reason.
    #[error("the CA failed to issue the certificate: {0}")]
    Issue(String),
    /// Also used by [`parse_certs_only`] for a body that is not certs-only PKCS#7.
    #[error("PKCS#7 certs-only: {0}")]
    Encode(String),
}

/// A parsed, signature-checked re-enrolment request.
#[derive(Debug, Clone)]
pub struct ReenrollRequest {
    /// The CSR subject as RFC 4514 text, e.g. `CN=dev-1`.
    pub subject: String,
    /// The subject's single, non-empty common name: the device id the new
    /// certificate is issued for.
    pub common_name: String,
    /// DER SubjectPublicKeyInfo of the key to certify.
    pub spki_der: Vec<u8>,
}

/// Decode an EST body (base64 of DER PKCS#10, or a PEM CSR), parse it, check
/// the key is one the CA certifies, and verify its self-signature.
pub fn parse_csr(body: &[u8]) -> Result<ReenrollRequest, EstError> {
    let der = decode_body(body, CSR_PEM_LABELS)?;
    let (rest, csr) = X509CertificationRequest::from_der(&der)
        .map_err(|e| EstError::CsrParse(format!("not DER PKCS#10: {e}")))?;
    if !rest.is_empty() {
        return Err(EstError::CsrParse(format!(
            "{} bytes after the CertificationRequest",
            rest.len()
        )));
    }
    let info = &csr.certification_request_info;
    check_key(&info.subject_pki)?;
    csr.verify_signature().map_err(|e| match e {
        X509Error::SignatureUnsupportedAlgorithm => EstError::UnsupportedKey(format!(
            "signature algorithm {} is not supported for this key",
            csr.signature_algorithm.algorithm.to_id_string()
        )),
        X509Error::SignatureVerificationError => EstError::CsrSignature,
        other => EstError::CsrParse(format!("checking the signature: {other}")),
    })?;
    let cns: Vec<_> = info.subject.iter_common_name().collect();
    let common_name = match cns.as_slice() {
        [] => return Err(EstError::NoCommonName),
        [cn] => cn
            .as_str()
            .map_err(|_| EstError::CsrParse("the common name is not a text string".into()))?
            .to_owned(),
        _ => {
            return Err(EstError::CsrParse(format!(
                "the subject has {} common names, not one",
                cns.len()
            )))
        }
    };
    if common_name.is_empty() {
        return Err(EstError::NoCommonName);
    }
    Ok(ReenrollRequest {
        subject: rfc4514(&info.subject),
        common_name,
        spki_der: info.subject_pki.raw.to_vec(),
    })
}

/// The whole simplereenroll (RFC 7030 §4.2.2): parse and verify the CSR,
/// require its subject to equal the subject of `current_cert_der` (the TLS
/// client certificate), and issue a certificate for the CSR's key with
/// CN = that device id. Returns the issued certificate and the response body:
/// base64 of a certs-only SignedData holding just the new certificate, wrapped
/// at 76 characters with CRLF line ends.
pub fn simple_reenroll(
    ca: &CertificateAuthority,
    current_cert_der: &[u8],
    body: &[u8],
    validity: Validity,
) -> Result<(IssuedCert, String), EstError> {
    let (rest, current) = X509Certificate::from_der(current_cert_der)
        .map_err(|e| EstError::ClientCert(e.to_string()))?;
    if !rest.is_empty() {
        return Err(EstError::ClientCert(format!(
            "{} bytes after the certificate",
            rest.len()
        )));
    }
    let request = parse_csr(body)?;
    let current_subject = current.subject();
    let csr_der = decode_body(body, CSR_PEM_LABELS)?;
    let same_der = X509CertificationRequest::from_der(&csr_der)
        .map(|(_, csr)| csr.certification_request_info.subject.as_raw() == current_subject.as_raw())
        .unwrap_or(false);
    let current_text = rfc4514(current_subject);
    if !same_der && current_text != request.subject {
        return Err(EstError::SubjectMismatch {
            current: current_text,
            requested: request.subject,
        });
    }
    let issued = ca
        .issue_for_public_key(&request.common_name, &request.spki_der, validity)
        .map_err(|e| match e {
            PkiError::Generate(rcgen::Error::UnsupportedSignatureAlgorithm) => {
                EstError::UnsupportedKey("rcgen does not know the key's algorithm".into())
            }
            other => EstError::Issue(other.to_string()),
        })?;
    let body = base64_wrapped(&certs_only_der(&[issued.cert_der.as_ref()])?);
    Ok((issued, body))
}

/// The cacerts response body (RFC 7030 §4.1.3): base64 of a certs-only
/// SignedData holding `ca_cert_der`, wrapped like [`simple_reenroll`]'s.
pub fn cacerts_body(ca_cert_der: &[u8]) -> Result<String, EstError> {
    Ok(base64_wrapped(&certs_only_der(&[ca_cert_der])?))
}

/// DER of a degenerate ("certs-only") CMS SignedData ContentInfo (RFC 5652
/// §5, RFC 5272 §4.1): version 1, no digest algorithms, encapContentInfo =
/// id-data without content, the given certificates (a DER SET OF: sorted,
/// duplicates dropped), no CRLs, no signerInfos.
pub fn certs_only_der(certs: &[&[u8]]) -> Result<Vec<u8>, EstError> {
    let encode = |what: &str, e: der::Error| EstError::Encode(format!("encoding {what}: {e}"));
    if certs.is_empty() {
        return Err(EstError::Encode("no certificates to encode".into()));
    }
    let mut set = SetOfVec::new();
    for (i, der) in certs.iter().enumerate() {
        let cert = Certificate::from_der(der)
            .map_err(|e| EstError::Encode(format!("certificate #{i} is not DER X.509: {e}")))?;
        // The client must get the exact bytes the CA signed (thumbprints).
        if cert.to_der().map_err(|e| encode("a certificate", e))? != *der {
            return Err(EstError::Encode(format!(
                "certificate #{i} does not re-encode identically"
            )));
        }
        let choice = CertificateChoices::Certificate(cert);
        if !set.iter().any(|c| *c == choice) {
            set.insert(choice)
                .map_err(|e| encode("the certificate set", e))?;
        }
    }
    let signed_data = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::new(),
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: None,
        },
        certificates: Some(CertificateSet(set)),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::new()),
    };
    let content_info = ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(&signed_data).map_err(|e| encode("the SignedData", e))?,
    };
    content_info
        .to_der()
        .map_err(|e| encode("the ContentInfo", e))
}

/// For clients: decode a certs-only body (base64 with any whitespace, or a
/// PEM `PKCS7`/`CMS` block) to the DER certificates inside, in the SET's
/// (DER-sorted) order. Signer infos, if any, are ignored.
pub fn parse_certs_only(body: &[u8]) -> Result<Vec<Vec<u8>>, EstError> {
    let der = decode_body(body, &["PKCS7", "CMS"])?;
    let bad = |what: &str, e: der::Error| {
        EstError::Encode(format!("not a certs-only SignedData: {what}: {e}"))
    };
    let content_info = ContentInfo::from_der(&der).map_err(|e| bad("ContentInfo", e))?;
    if content_info.content_type != ID_SIGNED_DATA {
        return Err(EstError::Encode(format!(
            "content type is {}, not signedData",
            content_info.content_type
        )));
    }
    let signed_data: SignedData = content_info
        .content
        .decode_as()
        .map_err(|e| bad("SignedData", e))?;
    let mut out = Vec::new();
    for choice in signed_data
        .certificates
        .map(|s| s.0.into_vec())
        .unwrap_or_default()
    {
        if let CertificateChoices::Certificate(cert) = choice {
            out.push(
                cert.to_der()
                    .map_err(|e| bad("re-encoding a certificate", e))?,
            );
        }
    }
    Ok(out)
}

/// The body's DER: base64 (whitespace ignored, padding optional) or a PEM
/// block with one of `labels`.
fn decode_body(body: &[u8], labels: &[&str]) -> Result<Vec<u8>, EstError> {
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return Err(EstError::Base64("the body is empty".into()));
    }
    if trimmed[0] == 0x30 {
        return Err(EstError::Base64(
            "the body looks like binary DER; RFC 7030 (RFC 8951) bodies are base64".into(),
        ));
    }
    let payload = if let Some(pem) = trimmed.strip_prefix(b"-----BEGIN ") {
        let text = std::str::from_utf8(pem)
            .map_err(|_| EstError::Base64("PEM text is not UTF-8".into()))?;
        let (label, rest) = text
            .split_once("-----")
            .ok_or_else(|| EstError::Base64("malformed PEM BEGIN line".into()))?;
        if !labels.contains(&label) {
            return Err(EstError::Base64(format!(
                "PEM block is labelled {label:?}, expected one of {labels:?}"
            )));
        }
        let end = format!("-----END {label}-----");
        let (inner, _) = rest
            .split_once(end.as_str())
            .ok_or_else(|| EstError::Base64(format!("PEM block has no {end:?} line")))?;
        inner.as_bytes()
    } else {
        trimmed
    };
    let compact: Vec<u8> = payload
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    LENIENT
        .decode(&compact)
        .map_err(|e| EstError::Base64(e.to_string()))
}

/// Base64 of `der`, 76-character lines, each ending in CRLF.
fn base64_wrapped(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + 2 * (b64.len() / LINE + 1));
    for chunk in b64.as_bytes().chunks(LINE) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push_str("\r\n");
    }
    out
}

/// RFC 4514 text of a name (x509-parser's Display is not RFC 4514).
fn rfc4514(name: &X509Name<'_>) -> String {
    match Name::from_der(name.as_raw()) {
        Ok(n) => n.to_string(),
        Err(_) => name.to_string(),
    }
}

/// Refuses keys the CA (rcgen) or the hub's TLS stack (ring) cannot handle.
fn check_key(spki: &SubjectPublicKeyInfo<'_>) -> Result<(), EstError> {
    const EC: &str = "1.2.840.10045.2.1";
    const P256: &str = "1.2.840.10045.3.1.7";
    const P384: &str = "1.3.132.0.34";
    const ED25519: &str = "1.3.101.112";
    const RSA: &str = "1.2.840.113549.1.1.1";
    let alg = spki.algorithm.algorithm.to_id_string();
    match alg.as_str() {
        EC => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok());
            match curve.map(|c| c.to_id_string()).as_deref() {
                Some(P256 | P384) => Ok(()),
                Some(other) => Err(EstError::UnsupportedKey(format!(
                    "EC key on curve {other}; only P-256 and P-384 are certified"
                ))),
                None => Err(EstError::UnsupportedKey(
                    "EC key without a named curve".into(),
                )),
            }
        }
        ED25519 => Ok(()),
        RSA => match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => {
                let modulus: &[u8] = rsa.modulus;
                let start = modulus
                    .iter()
                    .position(|b| *b != 0)
                    .unwrap_or(modulus.len());
                let bits = modulus[start..].first().map_or(0, |b| {
                    (modulus.len() - start) * 8 - b.leading_zeros() as usize
                });
                if bits < 2048 {
                    Err(EstError::UnsupportedKey(format!(
                        "RSA key of {bits} bits; at least 2048 needed"
                    )))
                } else {
                    Ok(())
                }
            }
            _ => Err(EstError::CsrParse("malformed RSA public key".into())),
        },
        other => Err(EstError::UnsupportedKey(format!(
            "key algorithm {other}; the CA certifies EC P-256/P-384, Ed25519 and RSA keys"
        ))),
    }
}

#[cfg(test)]
#[path = "est_tests.rs"]
mod tests;
