//! EST unit tests. `openssl` (a real third-party EST client toolkit) makes
//! CSRs and checks our PKCS#7 output; `.ci/run` installs it.

use std::process::Command;
use std::time::SystemTime;

use rcgen::{CertificateParams, DnType, KeyPair};

use super::*;
use crate::pki::{CertificateAuthority, KeyAlgorithm, Validity};

fn ca() -> CertificateAuthority {
    CertificateAuthority::generate("test CA", SystemTime::now()).unwrap()
}

fn validity() -> Validity {
    Validity::days_from(SystemTime::now(), 30)
}

fn rcgen_csr_b64(cn: &str) -> (KeyPair, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    let csr = params.serialize_request(&key).unwrap();
    (key, STANDARD.encode(csr.der()))
}

fn openssl(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (is it installed? .ci/run installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn openssl_csr_round_trip_and_openssl_reads_the_reply() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca();
    let current = ca
        .issue_device("dev-7", KeyAlgorithm::EcdsaP256, validity())
        .unwrap();
    openssl(
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "new.key",
            "-subj",
            "/CN=dev-7",
            "-outform",
            "DER",
            "-out",
            "csr.der",
        ],
        dir.path(),
    );
    let csr = std::fs::read(dir.path().join("csr.der")).unwrap();
    let body = STANDARD.encode(&csr);
    let (issued, reply) =
        simple_reenroll(&ca, current.cert_der.as_ref(), body.as_bytes(), validity()).unwrap();
    assert_ne!(issued.serial, current.serial);
    assert!(reply.lines().all(|l| l.len() <= LINE) && reply.ends_with("\r\n"));

    // Our own decoder returns exactly the issued certificate.
    assert_eq!(
        parse_certs_only(reply.as_bytes()).unwrap(),
        vec![issued.cert_der.to_vec()]
    );
    // openssl accepts the certs-only PKCS#7 and finds the certificate for the new key.
    std::fs::write(
        dir.path().join("reply.p7.der"),
        STANDARD.decode(reply.replace("\r\n", "")).unwrap(),
    )
    .unwrap();
    let out = openssl(
        &[
            "pkcs7",
            "-inform",
            "DER",
            "-in",
            "reply.p7.der",
            "-print_certs",
        ],
        dir.path(),
    );
    std::fs::write(dir.path().join("new.pem"), &out.stdout).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("CN=dev-7") || text.contains("CN = dev-7"),
        "{text}"
    );
    let cert_pub = openssl(&["x509", "-in", "new.pem", "-noout", "-pubkey"], dir.path()).stdout;
    let key_pub = openssl(&["pkey", "-in", "new.key", "-pubout"], dir.path()).stdout;
    assert_eq!(
        cert_pub, key_pub,
        "the new certificate certifies the CSR's key"
    );
    // And it chains to the CA.
    std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).unwrap();
    openssl(&["verify", "-CAfile", "ca.pem", "new.pem"], dir.path());
}

#[test]
fn cacerts_is_readable_by_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca();
    let body = cacerts_body(ca.cert_der().as_ref()).unwrap();
    assert_eq!(
        parse_certs_only(body.as_bytes()).unwrap(),
        vec![ca.cert_der().to_vec()]
    );
    std::fs::write(dir.path().join("cacerts.b64"), &body).unwrap();
    openssl(
        &["base64", "-d", "-in", "cacerts.b64", "-out", "cacerts.der"],
        dir.path(),
    );
    let out = openssl(
        &[
            "pkcs7",
            "-inform",
            "DER",
            "-in",
            "cacerts.der",
            "-print_certs",
        ],
        dir.path(),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("test CA"));
}

#[test]
fn rcgen_csr_and_pem_bodies_are_accepted() {
    let ca = ca();
    let current = ca
        .issue_device("dev-8", KeyAlgorithm::EcdsaP256, validity())
        .unwrap();
    let (key, b64) = rcgen_csr_b64("dev-8");
    let (issued, _) =
        simple_reenroll(&ca, current.cert_der.as_ref(), b64.as_bytes(), validity()).unwrap();
    let (_, cert) = X509Certificate::from_der(issued.cert_der.as_ref()).unwrap();
    assert_eq!(
        cert.public_key().raw,
        rcgen::PublicKeyData::subject_public_key_info(&key).as_slice()
    );
    let pem =
        format!("-----BEGIN CERTIFICATE REQUEST-----\n{b64}\n-----END CERTIFICATE REQUEST-----\n");
    assert_eq!(parse_csr(pem.as_bytes()).unwrap().common_name, "dev-8");
}

#[test]
fn another_subject_is_refused() {
    let ca = ca();
    let current = ca
        .issue_device("dev-1", KeyAlgorithm::EcdsaP256, validity())
        .unwrap();
    let (_, b64) = rcgen_csr_b64("dev-2");
    let err =
        simple_reenroll(&ca, current.cert_der.as_ref(), b64.as_bytes(), validity()).unwrap_err();
    assert!(matches!(err, EstError::SubjectMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains("subject"), "{err}");
}

#[test]
fn a_tampered_csr_fails_proof_of_possession() {
    let (_, b64) = rcgen_csr_b64("dev-1");
    let mut der = STANDARD.decode(b64).unwrap();
    // Flip a bit inside the CN value ("dev-1" → "dev-0"): still parses, signature breaks.
    let at = der.windows(5).position(|w| w == b"dev-1").unwrap() + 4;
    der[at] ^= 0x01;
    let err = parse_csr(STANDARD.encode(der).as_bytes()).unwrap_err();
    assert!(matches!(err, EstError::CsrSignature), "{err:?}");
}

#[test]
fn garbage_bodies_get_named_errors() {
    assert!(matches!(parse_csr(b""), Err(EstError::Base64(_))));
    assert!(matches!(
        parse_csr(b"%%% not base64"),
        Err(EstError::Base64(_))
    ));
    assert!(
        matches!(parse_csr(&[0x30, 0x03, 0x02, 0x01, 0x00]), Err(EstError::Base64(m)) if m.contains("binary DER"))
    );
    assert!(matches!(
        parse_csr(STANDARD.encode(b"hello").as_bytes()),
        Err(EstError::CsrParse(_))
    ));
    let ca = ca();
    let (_, b64) = rcgen_csr_b64("d");
    assert!(matches!(
        simple_reenroll(&ca, b"not a cert", b64.as_bytes(), validity()),
        Err(EstError::ClientCert(_))
    ));
    assert!(matches!(
        parse_certs_only(STANDARD.encode(b"xyz").as_bytes()),
        Err(EstError::Encode(_))
    ));
}

#[test]
fn a_csr_without_common_name_is_refused() {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    // rcgen's default name has a CN; start from an empty one.
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "acme");
    let der = params.serialize_request(&key).unwrap().der().to_vec();
    assert!(matches!(
        parse_csr(STANDARD.encode(der).as_bytes()),
        Err(EstError::NoCommonName)
    ));
}
