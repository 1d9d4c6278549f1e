//! EST re-enrolment (RFC 7030 `simplereenroll`) without IO: the PKCS#10 CSR
//! the machine asks for (`der_lite.rs`'s structure, signed with `p256`), the
//! HTTP request that carries it, and the reading of the hub's answer —
//! status, `Content-Length` body (`httparse`), a base64 certs-only PKCS#7
//! whose first certificate is the new one, with its validity. The TLS
//! connection that carries them is `transport.rs`'s.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use p256::ecdsa::{DerSignature, SigningKey};
use p256::pkcs8::{DecodePrivateKey, EncodePublicKey};

use crate::der_lite;

/// The EST path the hub serves re-enrolment on.
pub const PATH: &str = "/.well-known/est/simplereenroll";

/// A PKCS#10 request for `CN=common_name` with the P-256 key `pkcs8_der`,
/// signed with it.
pub fn build_csr(common_name: &str, pkcs8_der: &[u8]) -> Result<Vec<u8>, String> {
    let key = SigningKey::from_pkcs8_der(pkcs8_der).map_err(|e| format!("the key: {e}"))?;
    let spki = p256::PublicKey::from(key.verifying_key())
        .to_public_key_der()
        .map_err(|e| format!("the public key: {e}"))?;
    let info = der_lite::request_info(common_name, spki.as_bytes());
    let signature: DerSignature = p256::ecdsa::signature::Signer::sign(&key, &info);
    Ok(der_lite::request(&info, signature.as_bytes()))
}

/// The whole HTTP/1.1 request: the CSR base64 (RFC 8951), one request per
/// connection.
pub fn request(host: &str, csr_der: &[u8]) -> Vec<u8> {
    let body = STANDARD.encode(csr_der);
    let mut out = format!(
        "POST {PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/pkcs10\r\n\
         Content-Transfer-Encoding: base64\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// What the hub answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// 200 with a certificate: its DER and validity (Unix ms).
    Issued {
        /// The new certificate.
        cert_der: Vec<u8>,
        /// Its notBefore.
        not_before_ms: u64,
        /// Its notAfter.
        not_after_ms: u64,
    },
    /// An HTTP error status and the body's text.
    Refused {
        /// The status.
        status: u16,
        /// The body (or the reason phrase when there is none).
        reason: String,
    },
}

/// Reads the answer from the bytes received so far: `Ok(None)` while it is
/// incomplete, `Err` when it cannot be one.
pub fn parse_answer(bytes: &[u8]) -> Result<Option<Answer>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 24];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("not an HTTP response: {e}")),
    };
    let status = response.code.unwrap_or(0);
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    if header("transfer-encoding").is_some() {
        return Err("a chunked answer (the hub sends a Content-Length)".into());
    }
    let length = header("content-length")
        .and_then(|v| core::str::from_utf8(v).ok()?.trim().parse::<usize>().ok())
        .ok_or("an answer without Content-Length")?;
    let Some(body) = bytes.get(head..head + length) else {
        return Ok(None);
    };
    if status != 200 {
        let text = String::from_utf8_lossy(body);
        let reason = if text.trim().is_empty() {
            response.reason.unwrap_or("").to_string()
        } else {
            text.trim().to_string()
        };
        return Ok(Some(Answer::Refused { status, reason }));
    }
    let cert_der = first_certificate(body)?;
    let (not_before_ms, not_after_ms) =
        der_lite::validity(&cert_der).map_err(|e| format!("the certificate: {e}"))?;
    Ok(Some(Answer::Issued {
        not_before_ms,
        not_after_ms,
        cert_der,
    }))
}

/// The first certificate of a base64 certs-only PKCS#7 (RFC 7030 §4.2.3).
fn first_certificate(body: &[u8]) -> Result<Vec<u8>, String> {
    let compact: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let der = STANDARD
        .decode(compact)
        .map_err(|e| format!("the PKCS#7 is not base64: {e}"))?;
    der_lite::first_certificate(&der)
        .map(<[u8]>::to_vec)
        .map_err(|e| format!("the PKCS#7: {e}"))
}
