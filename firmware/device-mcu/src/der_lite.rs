//! The few DER structures the image reads and writes itself: a
//! certificate's validity, the first certificate of a certs-only PKCS#7,
//! and a PKCS#10 request. Why by hand: decoding them through `x509-cert`
//! and `cms` cost ~180 KB of flash (their generic decoders, monomorphised
//! per type) on an image measured against a 512 KB part; these walks are a
//! few hundred bytes. Times are decoded by the `der` crate. The host tests
//! (rig/tests/est.rs) check every function here against `x509-cert` and
//! `cms` themselves.

use alloc::vec::Vec;
use core::time::Duration;

use der::asn1::{GeneralizedTime, UtcTime};
use der::Decode;

/// Why a structure was not what it should be.
pub type Malformed = &'static str;

/// One element of a DER input.
struct Element<'a> {
    tag: u8,
    contents: &'a [u8],
    whole: &'a [u8],
    rest: &'a [u8],
}

/// The element at the start of `input`: its tag, its contents, the whole
/// element, what follows it. Definite lengths only (DER), of at most 4
/// length bytes.
fn element(input: &[u8]) -> Result<Element<'_>, Malformed> {
    let (&tag, rest) = input.split_first().ok_or("truncated")?;
    let (&first, rest) = rest.split_first().ok_or("truncated")?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err("a length that is not DER");
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err("truncated");
    }
    let whole = input.len() - rest.len() + len;
    Ok(Element {
        tag,
        contents: &rest[..len],
        whole: &input[..whole],
        rest: &rest[len..],
    })
}

/// The contents of the element at the start of `input`, which must carry
/// `tag`, and what follows it.
fn expect(input: &[u8], tag: u8, what: Malformed) -> Result<(&[u8], &[u8]), Malformed> {
    let e = element(input)?;
    if e.tag == tag {
        Ok((e.contents, e.rest))
    } else {
        Err(what)
    }
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const CONTEXT_0: u8 = 0xa0;

/// A certificate's validity: (notBefore, notAfter) in Unix ms.
pub fn validity(cert_der: &[u8]) -> Result<(u64, u64), Malformed> {
    let (cert, _) = expect(cert_der, SEQUENCE, "a certificate is a SEQUENCE")?;
    let (tbs, _) = expect(cert, SEQUENCE, "a TBSCertificate is a SEQUENCE")?;
    let mut rest = tbs;
    if rest.first() == Some(&CONTEXT_0) {
        rest = element(rest)?.rest; // version
    }
    rest = element(rest)?.rest; // serialNumber
    rest = element(rest)?.rest; // signature
    rest = element(rest)?.rest; // issuer
    let (validity, _) = expect(rest, SEQUENCE, "validity is a SEQUENCE")?;
    let not_before = element(validity)?;
    let not_after = element(not_before.rest)?;
    Ok((time_ms(not_before.whole)?, time_ms(not_after.whole)?))
}

fn time_ms(tlv: &[u8]) -> Result<u64, Malformed> {
    let since_epoch: Duration = match tlv.first() {
        Some(0x17) => UtcTime::from_der(tlv)
            .map_err(|_| "a bad UTCTime")?
            .to_unix_duration(),
        Some(0x18) => GeneralizedTime::from_der(tlv)
            .map_err(|_| "a bad GeneralizedTime")?
            .to_unix_duration(),
        _ => return Err("a time that is neither UTCTime nor GeneralizedTime"),
    };
    u64::try_from(since_epoch.as_millis()).map_err(|_| "a time out of range")
}

/// id-signedData, 1.2.840.113549.1.7.2, as an encoded OBJECT IDENTIFIER.
const SIGNED_DATA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02,
];

/// The first certificate (its whole DER) of a certs-only PKCS#7
/// (RFC 7030 §4.2.3: ContentInfo → SignedData → certificates).
pub fn first_certificate(pkcs7: &[u8]) -> Result<&[u8], Malformed> {
    let (info, _) = expect(pkcs7, SEQUENCE, "a ContentInfo is a SEQUENCE")?;
    let Element {
        whole: oid, rest, ..
    } = element(info)?;
    if oid != SIGNED_DATA {
        return Err("a ContentInfo that is not SignedData");
    }
    let (explicit, _) = expect(rest, CONTEXT_0, "SignedData is [0] EXPLICIT")?;
    let (signed, _) = expect(explicit, SEQUENCE, "SignedData is a SEQUENCE")?;
    let rest = element(signed)?.rest; // version
    let (_, rest) = expect(rest, SET, "digestAlgorithms is a SET")?;
    let (_, rest) = expect(rest, SEQUENCE, "encapContentInfo is a SEQUENCE")?;
    let (certs, _) = expect(rest, CONTEXT_0, "a PKCS#7 without certificates")?;
    let mut rest = certs;
    while !rest.is_empty() {
        let e = element(rest)?;
        if e.tag == SEQUENCE {
            return Ok(e.whole);
        }
        rest = e.rest; // another CertificateChoices (attribute or other)
    }
    Err("no X.509 certificate in the PKCS#7")
}

/// `tag` ‖ DER length ‖ `contents`.
fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let len = contents.len();
    let mut out = Vec::with_capacity(len + 6);
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u32).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (4 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(contents);
    out
}

/// id-at-commonName, 2.5.4.3.
const COMMON_NAME: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x03];
/// ecdsa-with-SHA256, 1.2.840.10045.4.3.2 (RFC 5758 §3.2).
const ECDSA_WITH_SHA256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];

/// A PKCS#10 CertificationRequestInfo (RFC 2986 §4.1): version 0, subject
/// `CN=common_name` (UTF8String), the SubjectPublicKeyInfo as given, no
/// attributes.
pub fn request_info(common_name: &str, spki_der: &[u8]) -> Vec<u8> {
    let atv = [COMMON_NAME, &tlv(0x0c, common_name.as_bytes())].concat();
    let name = tlv(SEQUENCE, &tlv(SET, &tlv(SEQUENCE, &atv)));
    let body = [&[0x02, 0x01, 0x00][..], &name, spki_der, &[CONTEXT_0, 0x00]].concat();
    tlv(SEQUENCE, &body)
}

/// The CertificationRequest: `info` signed (ecdsa-with-SHA256, the
/// signature's DER in the BIT STRING).
pub fn request(info: &[u8], signature_der: &[u8]) -> Vec<u8> {
    let algorithm = tlv(SEQUENCE, ECDSA_WITH_SHA256);
    let bits = tlv(0x03, &[&[0u8][..], signature_der].concat());
    tlv(SEQUENCE, &[info, &algorithm, &bits].concat())
}
