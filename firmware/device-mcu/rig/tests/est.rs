//! Host tests of the image's EST re-enrolment without IO (src/est.rs and
//! the hand-walked DER of src/der_lite.rs, compiled from the firmware's
//! sources), checked against `x509-cert` and `cms` themselves: the CSR it
//! sends is a PKCS#10 as RFC 2986 and the hub read it (subject CN, the
//! key's public half, a signature that verifies), the request carries it
//! base64, a certificate's validity is what `x509-cert` reads, and the
//! hub's answer — a certs-only PKCS#7, a refusal, or bytes that are neither
//! — is read as what it is. The exchange with the real hub is the bench's
//! KR cases on this image (test-suites/tests/mcu_qemu.rs).
#![allow(clippy::unwrap_used)]

extern crate alloc;

#[path = "../../src/der_lite.rs"]
mod der_lite;
#[path = "../../src/est.rs"]
#[allow(dead_code)] // HTTPS_PORT: the image's shell uses it
mod est;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cms::cert::CertificateChoices;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{CertificateSet, EncapsulatedContentInfo, SignedData, SignerInfos};
use const_oid::db::rfc5911::{ID_DATA, ID_SIGNED_DATA};
use est::Answer;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{DerSignature, VerifyingKey};
use p256::pkcs8::EncodePrivateKey;
use x509_cert::der::asn1::SetOfVec;
use x509_cert::der::{Any, Decode, Encode};
use x509_cert::request::CertReq;

fn key() -> (p256::SecretKey, Vec<u8>) {
    let key = p256::SecretKey::from_slice(&[7; 32]).unwrap();
    let der = key.to_pkcs8_der().unwrap().as_bytes().to_vec();
    (key, der)
}

#[test]
fn the_csr_names_the_device_carries_its_key_and_is_signed_with_it() {
    let (key, der) = key();
    let csr = est::build_csr("dut-7", &der).unwrap();
    let req = CertReq::from_der(&csr).unwrap();
    assert_eq!(req.info.subject.to_string(), "CN=dut-7");
    assert_eq!(
        req.info.public_key.subject_public_key.raw_bytes(),
        key.public_key().to_sec1_bytes().as_ref()
    );
    assert_eq!(req.algorithm.oid.to_string(), "1.2.840.10045.4.3.2");
    let signature = DerSignature::from_bytes(req.signature.raw_bytes()).unwrap();
    let signed = req.info.to_der().unwrap();
    VerifyingKey::from(key.public_key())
        .verify(&signed, &signature)
        .unwrap();
    // Another key's signature would not verify: the check above can fail.
    let other = p256::SecretKey::from_slice(&[9; 32]).unwrap();
    assert!(VerifyingKey::from(other.public_key())
        .verify(&signed, &signature)
        .is_err());
    assert!(est::build_csr("dut-7", b"not a key").is_err());
}

#[test]
fn the_request_posts_the_csr_base64() {
    let req = est::request("hub3.sacbench.test", &[0x30, 0x03, 1, 2, 3]);
    let text = String::from_utf8(req).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("POST /.well-known/est/simplereenroll HTTP/1.1\r\n"));
    assert!(head.contains("\r\nHost: hub3.sacbench.test\r\n"));
    assert!(head.contains("\r\nContent-Type: application/pkcs10\r\n"));
    assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())));
    assert_eq!(STANDARD.decode(body).unwrap(), [0x30, 0x03, 1, 2, 3]);
}

/// A certificate for the answer, and its validity (Unix ms).
fn issued() -> (Vec<u8>, u64, u64) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.not_before = time::OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap();
    params.not_after = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.der().to_vec(), 1_790_000_000_000, 1_800_000_000_000)
}

/// A certs-only PKCS#7 (RFC 7030 §4.2.3) of `cert`, base64 with line breaks.
fn pkcs7(cert: &[u8]) -> String {
    let cert = x509_cert::Certificate::from_der(cert).unwrap();
    let signed = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::new(),
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: None,
        },
        certificates: Some(CertificateSet(
            SetOfVec::try_from(vec![CertificateChoices::Certificate(cert)]).unwrap(),
        )),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::new()),
    };
    let info = ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(&signed).unwrap(),
    };
    let b64 = STANDARD.encode(info.to_der().unwrap());
    b64.as_bytes()
        .chunks(64)
        .map(|c| format!("{}\r\n", std::str::from_utf8(c).unwrap()))
        .collect()
}

fn response(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/pkcs7-mime; smime-type=certs-only\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[test]
fn a_certs_only_answer_gives_the_certificate_and_its_validity() {
    let (cert, not_before_ms, not_after_ms) = issued();
    let whole = response("200 OK", &pkcs7(&cert));
    // Every prefix is incomplete, not wrong.
    for cut in [0, 10, 40, whole.len() - 1] {
        assert_eq!(est::parse_answer(&whole[..cut]), Ok(None), "cut at {cut}");
    }
    assert_eq!(
        est::parse_answer(&whole),
        Ok(Some(Answer::Issued {
            cert_der: cert,
            not_before_ms,
            not_after_ms
        }))
    );
}

#[test]
fn a_refusal_is_the_status_and_the_body() {
    let answer = response("503 Service Unavailable", "enrolment is refused");
    assert_eq!(
        est::parse_answer(&answer),
        Ok(Some(Answer::Refused {
            status: 503,
            reason: "enrolment is refused".into()
        }))
    );
    let bare = response("400 Bad Request", "");
    assert_eq!(
        est::parse_answer(&bare),
        Ok(Some(Answer::Refused {
            status: 400,
            reason: "Bad Request".into()
        }))
    );
}

#[test]
fn what_is_not_an_answer_is_an_error() {
    for (bytes, says) in [
        (b"SSH-2.0-OpenSSH\r\n\r\n".to_vec(), "not an HTTP response"),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec(),
            "chunked",
        ),
        (
            b"HTTP/1.1 200 OK\r\n\r\n".to_vec(),
            "without Content-Length",
        ),
        (response("200 OK", "not base64!"), "not base64"),
        (response("200 OK", &STANDARD.encode(b"0\x03abc")), "PKCS#7"),
    ] {
        let err = est::parse_answer(&bytes).unwrap_err();
        assert!(err.contains(says), "{err:?} should say {says:?}");
    }
}

#[test]
fn the_validity_walk_reads_what_x509_cert_reads() {
    let (cert, not_before_ms, not_after_ms) = issued();
    assert_eq!(der_lite::validity(&cert), Ok((not_before_ms, not_after_ms)));
    let parsed = x509_cert::Certificate::from_der(&cert).unwrap();
    let v = parsed.tbs_certificate.validity;
    assert_eq!(
        v.not_after.to_unix_duration().as_millis(),
        u128::from(not_after_ms)
    );
    // A GeneralizedTime (after 2049) as well as a UTCTime.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.not_after = time::OffsetDateTime::from_unix_timestamp(2_600_000_000).unwrap();
    let far = params.self_signed(&key).unwrap().der().to_vec();
    assert_eq!(der_lite::validity(&far).unwrap().1, 2_600_000_000_000);
    // Truncations and other structures are refused, never a panic.
    for cut in [0, 1, 4, cert.len() / 2, cert.len() - 1] {
        assert!(der_lite::validity(&cert[..cut]).is_err(), "cut at {cut}");
    }
    assert!(der_lite::validity(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
}

#[test]
fn the_pkcs7_walk_finds_the_certificate_cms_holds() {
    let (cert, _, _) = issued();
    let b64: String = pkcs7(&cert).split_whitespace().collect();
    let der = STANDARD.decode(b64).unwrap();
    assert_eq!(der_lite::first_certificate(&der), Ok(&cert[..]));
    let info = ContentInfo::from_der(&der).unwrap();
    assert_eq!(info.content_type, ID_SIGNED_DATA);
    for cut in [0, 5, der.len() / 2, der.len() - 1] {
        assert!(
            der_lite::first_certificate(&der[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    // A ContentInfo of another type is not taken.
    let mut other = der.clone();
    let at = other
        .windows(3)
        .position(|w| w == [0x01, 0x07, 0x02])
        .unwrap();
    other[at + 2] = 0x01; // id-data
    assert_eq!(
        der_lite::first_certificate(&other),
        Err("a ContentInfo that is not SignedData")
    );
}

#[test]
fn a_long_common_name_gets_long_form_lengths() {
    let (_, der) = key();
    let name = "d".repeat(300);
    let csr = est::build_csr(&name, &der).unwrap();
    let req = CertReq::from_der(&csr).unwrap();
    assert_eq!(req.info.subject.to_string(), format!("CN={name}"));
}
