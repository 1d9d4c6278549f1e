//! Host tests of the firmware's sans-IO parts, compiled from its sources:
//! the SNTP answer checks (src/sntp.rs) and the server verifier
//! (src/verify.rs) — in particular that a verifier without time refuses a
//! certificate it would otherwise accept.
#![allow(clippy::unwrap_used)]

extern crate alloc;

#[path = "../../src/sntp.rs"]
#[allow(dead_code)]
mod sntp;
#[path = "../../src/verify.rs"]
#[allow(dead_code)]
mod verify;

use core::time::Duration;
use embedded_tls::{Aes128GcmSha256, CertificateEntryRef, CertificateRef, TlsVerifier};
use rcgen::{
    CertificateParams, CertifiedIssuer, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use rustls_pki_types::UnixTime;
use sha2::Digest;
use verify::{Refusal, WebPkiVerifier};

const NONCE: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];
const FLOOR: u64 = 1_790_000_000;

/// A valid answer to a request made with NONCE, at Unix time `unix`.
fn answer(unix: u64) -> [u8; 48] {
    let mut a = [0u8; 48];
    a[0] = (4 << 3) | 4;
    a[1] = 2;
    a[24..32].copy_from_slice(&NONCE);
    a[40..44].copy_from_slice(&((unix + 2_208_988_800) as u32).to_be_bytes());
    a
}

#[test]
fn sntp_takes_an_answer_to_its_request_and_nothing_else() {
    let req = sntp::request(NONCE);
    assert_eq!(req[0], 0x23);
    assert_eq!(&req[40..48], &NONCE);
    assert_eq!(
        sntp::parse(&answer(1_796_000_000), NONCE, FLOOR),
        Ok(1_796_000_000)
    );
    assert_eq!(
        sntp::parse(&answer(1_796_000_000), [9; 8], FLOOR),
        Err(sntp::Rejected::NotOurs)
    );
    assert_eq!(
        sntp::parse(&answer(1_796_000_000)[..47], NONCE, FLOOR),
        Err(sntp::Rejected::Short)
    );
    let mut client_mode = answer(1_796_000_000);
    client_mode[0] = (4 << 3) | 3;
    assert_eq!(
        sntp::parse(&client_mode, NONCE, FLOOR),
        Err(sntp::Rejected::NotServer)
    );
    let mut kiss = answer(1_796_000_000);
    kiss[1] = 0;
    assert_eq!(
        sntp::parse(&kiss, NONCE, FLOOR),
        Err(sntp::Rejected::Unsynchronised)
    );
    let mut alarm = answer(1_796_000_000);
    alarm[0] |= 3 << 6;
    assert_eq!(
        sntp::parse(&alarm, NONCE, FLOOR),
        Err(sntp::Rejected::Unsynchronised)
    );
    assert_eq!(
        sntp::parse(&answer(FLOOR - 1), NONCE, FLOOR),
        Err(sntp::Rejected::BeforeFloor)
    );
    assert_eq!(sntp::parse(&answer(FLOOR), NONCE, FLOOR), Ok(FLOOR));
    let mut zero = answer(0);
    zero[40..48].fill(0);
    assert_eq!(
        sntp::parse(&zero, NONCE, FLOOR),
        Err(sntp::Rejected::BadTime)
    );
}

struct Pki {
    ca: &'static [u8],
    server: Vec<u8>,
}

fn pki() -> Pki {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "units CA");
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let mut params = CertificateParams::new(vec!["hub.sacbench.test".to_owned()]).unwrap();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    let server = params.signed_by(&key, &ca).unwrap();
    Pki {
        ca: Vec::leak(ca.der().to_vec()),
        server: server.der().to_vec(),
    }
}

fn check(pki: &Pki, now: Option<UnixTime>) -> (bool, Option<Refusal>) {
    let mut v = WebPkiVerifier::<Aes128GcmSha256>::new(pki.ca, now);
    TlsVerifier::<Aes128GcmSha256>::set_hostname_verification(&mut v, "hub.sacbench.test").unwrap();
    let mut cert = CertificateRef::with_context(&[]);
    cert.add(CertificateEntryRef::X509(&pki.server)).unwrap();
    let ok = v
        .verify_certificate(&sha2::Sha256::new(), &None, cert)
        .is_ok();
    (ok, v.refusal)
}

#[test]
fn the_verifier_accepts_the_chain_with_time_and_refuses_it_without() {
    let pki = pki();
    let now = UnixTime::now();
    let (ok, refusal) = check(&pki, Some(now));
    assert!(ok, "{refusal:?}");
    let (ok, refusal) = check(&pki, None);
    assert!(!ok);
    assert!(matches!(refusal, Some(Refusal::NoTime)), "{refusal:?}");
    // rcgen's default validity ends in 4096: far in the future it expired.
    let later = UnixTime::since_unix_epoch(Duration::from_secs(420_000_000_000));
    let (ok, refusal) = check(&pki, Some(later));
    assert!(!ok);
    assert!(
        matches!(
            refusal,
            Some(Refusal::Chain(webpki::Error::CertExpired { .. }))
        ),
        "{refusal:?}"
    );
}

#[test]
fn the_verifier_refuses_a_signature_before_a_verified_certificate() {
    let pki = pki();
    let mut v = WebPkiVerifier::<Aes128GcmSha256>::new(pki.ca, Some(UnixTime::now()));
    let verify = embedded_tls::CertificateVerifyRef {
        signature_scheme: embedded_tls::SignatureScheme::EcdsaSecp256r1Sha256,
        signature: &[0x30, 0x00],
    };
    assert!(v.verify_signature(verify).is_err());
    assert!(matches!(v.refusal, Some(Refusal::OutOfOrder)));
    assert!(!v.authenticated());
}

#[test]
fn with_fault_no_server_verify_any_chain_passes_but_the_handshake_signature_is_still_checked() {
    let ours = pki();
    // Another CA (same name, another key), the same hub name.
    let theirs = pki();
    let other_ca = |accept_any: bool| {
        let mut v = WebPkiVerifier::<Aes128GcmSha256>::new(ours.ca, Some(UnixTime::now()));
        if accept_any {
            v.accept_any_chain();
        }
        TlsVerifier::<Aes128GcmSha256>::set_hostname_verification(&mut v, "hub.sacbench.test")
            .unwrap();
        let mut cert = CertificateRef::with_context(&[]);
        cert.add(CertificateEntryRef::X509(&theirs.server)).unwrap();
        let ok = v
            .verify_certificate(&sha2::Sha256::new(), &None, cert)
            .is_ok();
        (ok, v)
    };
    let (ok, v) = other_ca(false);
    assert!(!ok);
    assert!(
        matches!(v.refusal, Some(Refusal::Chain(_))),
        "{:?}",
        v.refusal
    );
    let (ok, mut v) = other_ca(true);
    assert!(ok, "{:?}", v.refusal);
    // The server must still prove it holds the presented certificate's key.
    let verify = embedded_tls::CertificateVerifyRef {
        signature_scheme: embedded_tls::SignatureScheme::EcdsaSecp256r1Sha256,
        signature: &[0x30, 0x00],
    };
    assert!(v.verify_signature(verify).is_err());
    assert!(
        matches!(v.refusal, Some(Refusal::Signature(_))),
        "{:?}",
        v.refusal
    );
    assert!(!v.authenticated());
    // And an empty Certificate message is no certificate at all.
    let mut v = WebPkiVerifier::<Aes128GcmSha256>::new(ours.ca, Some(UnixTime::now()));
    v.accept_any_chain();
    let cert = CertificateRef::with_context(&[]);
    assert!(v
        .verify_certificate(&sha2::Sha256::new(), &None, cert)
        .is_err());
    assert!(matches!(v.refusal, Some(Refusal::NoCertificate)));
}
