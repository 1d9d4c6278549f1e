//! EST request bodies (`hub_fixture::est`): the CSR of a re-enrolment, and
//! the certs-only PKCS#7 a client reads back.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hub_fixture::est::{parse_certs_only, parse_csr};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

/// Base64 wrapped at `width` characters with `eol` line ends.
fn wrapped(der: &[u8], width: usize, eol: &str) -> Vec<u8> {
    let b64 = STANDARD.encode(der);
    let mut out = Vec::with_capacity(b64.len() + b64.len() / width * eol.len() + eol.len());
    for line in b64.as_bytes().chunks(width) {
        out.extend_from_slice(line);
        out.extend_from_slice(eol.as_bytes());
    }
    out
}

/// The body an EST client would send for the DER `der`, in one of the forms
/// the hub accepts (or, for mode 0, the input itself as the body).
pub(crate) fn body(mode: u8, der: &[u8], pem_label: &str) -> Vec<u8> {
    match mode % 4 {
        0 => der.to_vec(),
        1 => STANDARD.encode(der).into_bytes(),
        2 => {
            let mut pem = format!("-----BEGIN {pem_label}-----\n").into_bytes();
            pem.extend(wrapped(der, 64, "\n"));
            pem.extend_from_slice(format!("-----END {pem_label}-----\n").as_bytes());
            pem
        }
        _ => wrapped(der, 76, "\r\n"),
    }
}

/// EST CSR parsing (`hub_fixture::est::parse_csr`: body decoding, PKCS#10,
/// the key check, the proof-of-possession signature, the common name), and
/// the certs-only reader (`parse_certs_only`) on the same bytes.
///
/// Input: byte 0 = the body's form (0: the rest is the body as is; 1:
/// base64 of the rest; 2: a PEM block of it; 3: MIME-wrapped base64 with
/// CRLF), the rest = the DER (or body). The DER is what the fuzzer mutates,
/// so it reaches the ASN.1 and signature code rather than the base64
/// decoder.
///
/// Asserts: no panic; an accepted CSR has a non-empty common name, a
/// subject naming it, and a SubjectPublicKeyInfo that parses as DER with
/// nothing after it; every error has a message.
pub fn est_csr(data: &[u8]) {
    let (&mode, der) = data.split_first().unwrap_or((&0, &[]));
    match parse_csr(&body(mode, der, "CERTIFICATE REQUEST")) {
        Ok(request) => {
            assert!(!request.common_name.is_empty());
            assert!(
                request.subject.contains("CN="),
                "subject {:?} without its CN",
                request.subject
            );
            let (rest, _) = SubjectPublicKeyInfo::from_der(&request.spki_der)
                .expect("the accepted key's SPKI parses");
            assert!(rest.is_empty(), "bytes after the accepted key's SPKI");
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    match parse_certs_only(&body(mode, der, "PKCS7")) {
        Ok(certs) => {
            for cert in certs {
                assert!(!cert.is_empty());
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}
