//! The fault verifiers of `tls_faults.rs` against small rcgen chains: each
//! accepts what its defect lets through and still refuses the rest.

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::*;

const HOST: &str = "hub.sacbench.test";

fn provider() -> Arc<CryptoProvider> {
    crate::tls::provider()
}

fn params(cn: &str, is_ca: IsCa, days_ago: u64, days: u64) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = is_ca;
    if matches!(p.is_ca, IsCa::Ca(_)) {
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    }
    let now = SystemTime::now();
    p.not_before = (now - Duration::from_secs(days_ago * 86_400 + 3600)).into();
    p.not_after = (now + Duration::from_secs(days * 86_400)).into();
    p
}

fn ca_params(cn: &str) -> CertificateParams {
    params(cn, IsCa::Ca(BasicConstraints::Unconstrained), 0, 30)
}

/// A self-signed root.
fn new_root(cn: &str) -> (Issuer<'static, KeyPair>, CertificateDer<'static>) {
    let key = KeyPair::generate().unwrap();
    let p = ca_params(cn);
    let der = p.self_signed(&key).unwrap().der().clone();
    (Issuer::new(p, key), der)
}

/// A certificate with `p` signed by `by`, and its issuer.
fn issue(
    p: CertificateParams,
    by: &Issuer<'_, KeyPair>,
) -> (Issuer<'static, KeyPair>, CertificateDer<'static>) {
    let key = KeyPair::generate().unwrap();
    let der = p.signed_by(&key, by).unwrap().der().clone();
    (Issuer::new(p, key), der)
}

fn server_params(names: &[&str]) -> CertificateParams {
    let mut p = params(names[0], IsCa::NoCa, 0, 30);
    p.subject_alt_names =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap()
            .subject_alt_names;
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p
}

fn host() -> ServerName<'static> {
    ServerName::try_from(HOST).unwrap()
}

fn verify(
    v: &dyn ServerCertVerifier,
    leaf: &CertificateDer<'_>,
    chain: &[CertificateDer<'static>],
) -> Result<ServerCertVerified, rustls::Error> {
    v.verify_server_cert(leaf, chain, &host(), &[], UnixTime::now())
}

fn webpki(anchor: &CertificateDer<'static>) -> Arc<WebPkiServerVerifier> {
    let mut roots = RootCertStore::empty();
    roots.add(anchor.clone()).unwrap();
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .unwrap()
}

fn signatures_only(anchor: &CertificateDer<'static>) -> SignaturesOnly {
    SignaturesOnly {
        anchor: anchor.clone(),
        provider: provider(),
    }
}

#[test]
fn signatures_only_accepts_a_good_chain_and_a_non_ca_intermediate() {
    let (root, anchor) = new_root("root");
    let (ca, ca_der) = issue(ca_params("intermediate"), &root);
    let (_, leaf) = issue(server_params(&[HOST]), &ca);
    let v = signatures_only(&anchor);
    assert!(verify(&v, &leaf, std::slice::from_ref(&ca_der)).is_ok());
    // The one thing it does not look at: the intermediate's CA bit.
    let (not_ca, not_ca_der) = issue(params("intermediate", IsCa::ExplicitNoCa, 0, 30), &root);
    let (_, leaf) = issue(server_params(&[HOST]), &not_ca);
    assert!(verify(&*webpki(&anchor), &leaf, std::slice::from_ref(&not_ca_der)).is_err());
    assert!(verify(&v, &leaf, &[not_ca_der]).is_ok());
}

#[test]
fn signatures_only_still_refuses_foreign_expired_and_misnamed_chains() {
    let (root, anchor) = new_root("root");
    let v = signatures_only(&anchor);
    // A leaf of another CA named like the anchor.
    let (other, _) = new_root("root");
    let (_, leaf) = issue(server_params(&[HOST]), &other);
    assert_eq!(
        verify(&v, &leaf, &[]).unwrap_err(),
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
    );
    // An intermediate named like the anchor, signed by another root.
    let (attacker, attacker_der) = new_root("attacker");
    let (twin, twin_der) = issue(ca_params("root"), &attacker);
    let (_, leaf) = issue(server_params(&[HOST]), &twin);
    assert_eq!(
        verify(&v, &leaf, &[twin_der, attacker_der]).unwrap_err(),
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
    );
    // Expired.
    let mut old = server_params(&[HOST]);
    old.not_after = (SystemTime::now() - Duration::from_secs(86_400)).into();
    let (_, leaf) = issue(old, &root);
    assert_eq!(
        verify(&v, &leaf, &[]).unwrap_err(),
        rustls::Error::InvalidCertificate(CertificateError::Expired)
    );
    // Another host name.
    let (_, leaf) = issue(server_params(&["wrong-host.sacbench.test"]), &root);
    assert!(matches!(
        verify(&v, &leaf, &[]).unwrap_err(),
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
        )
    ));
}

#[test]
fn loose_wildcards_span_labels_and_partial_labels() {
    assert!(loose_wildcard_match("*.test", HOST));
    assert!(loose_wildcard_match("h*.sacbench.test", HOST));
    assert!(loose_wildcard_match("*.SACBENCH.test", HOST));
    assert!(loose_wildcard_match(HOST, HOST));
    assert!(!loose_wildcard_match("*.other.test", HOST));
    assert!(!loose_wildcard_match("wrong-host.sacbench.test", HOST));
}

#[test]
fn loose_wildcard_accepts_a_multi_label_wildcard_that_webpki_refuses() {
    let (root, anchor) = new_root("root");
    let (_, leaf) = issue(server_params(&["*.test"]), &root);
    assert!(verify(&*webpki(&anchor), &leaf, &[]).is_err());
    let v = LooseWildcard {
        inner: webpki(&anchor),
        provider: provider(),
    };
    assert!(verify(&v, &leaf, &[]).is_ok());
    // Not a wrong name without a wildcard, nor an untrusted chain.
    let (_, leaf) = issue(server_params(&["wrong-host.sacbench.test"]), &root);
    assert!(verify(&v, &leaf, &[]).is_err());
    let (other, _) = new_root("other");
    let (_, leaf) = issue(server_params(&["*.test"]), &other);
    assert!(verify(&v, &leaf, &[]).is_err());
}

#[test]
fn trust_presented_ca_trusts_a_presented_ca_and_nothing_else() {
    let (_, anchor) = new_root("root");
    let (attacker, attacker_der) = new_root("attacker");
    let (twin, twin_der) = issue(ca_params("root"), &attacker);
    let (_, leaf) = issue(server_params(&[HOST]), &twin);
    let chain = [twin_der, attacker_der];
    assert!(verify(&*webpki(&anchor), &leaf, &chain).is_err());
    let v = TrustPresentedCa {
        anchor: anchor.clone(),
        provider: provider(),
    };
    assert!(verify(&v, &leaf, &chain).is_ok());
    // A leaf of an unpresented CA, and a presented non-CA, stay refused.
    let (_, leaf) = issue(server_params(&[HOST]), &attacker);
    assert!(verify(&v, &leaf, &[]).is_err());
    let (not_ca, not_ca_der) = issue(params("not a ca", IsCa::ExplicitNoCa, 0, 30), &attacker);
    let (_, leaf) = issue(server_params(&[HOST]), &not_ca);
    assert!(verify(&v, &leaf, &[not_ca_der]).is_err());
}

#[test]
fn small_tls_buffer_refuses_a_certificate_message_over_4_kb() {
    let (root, anchor) = new_root("root");
    let (_, small) = issue(server_params(&[HOST]), &root);
    let names: Vec<String> = (0..200)
        .map(|i| format!("tenant-{i:04}.{HOST}"))
        .chain([HOST.to_string()])
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (_, big) = issue(server_params(&names), &root);
    assert!(certificate_message_len(&[&small]) < SMALL_INPUT_BUFFER);
    assert!(certificate_message_len(&[&big]) > SMALL_INPUT_BUFFER);
    let v = SmallTlsBuffer {
        inner: webpki(&anchor),
    };
    assert!(verify(&v, &small, &[]).is_ok());
    assert!(verify(&*webpki(&anchor), &big, &[]).is_ok());
    assert!(matches!(
        verify(&v, &big, &[]).unwrap_err(),
        rustls::Error::General(m) if m.contains("4096-byte")
    ));
}

#[test]
fn signatures_only_accepts_an_intermediate_with_an_unknown_critical_extension() {
    let (root, anchor) = new_root("root");
    let mut p = ca_params("intermediate");
    let mut ext =
        rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 55738, 666, 1], vec![5, 0]);
    ext.set_criticality(true);
    p.custom_extensions.push(ext);
    let (ca, ca_der) = issue(p, &root);
    let (_, leaf) = issue(server_params(&[HOST]), &ca);
    let chain = std::slice::from_ref(&ca_der);
    let refused = verify(&*webpki(&anchor), &leaf, chain).unwrap_err();
    assert!(
        format!("{refused:?}").contains("UnsupportedCriticalExtension"),
        "{refused:?}"
    );
    assert!(verify(&signatures_only(&anchor), &leaf, chain).is_ok());
}

fn expired_intermediate_chain() -> (
    CertificateDer<'static>,
    CertificateDer<'static>,
    CertificateDer<'static>,
) {
    let (root, anchor) = new_root("root");
    // Valid from 60 days ago to a day ago.
    let mut p = params(
        "intermediate",
        IsCa::Ca(BasicConstraints::Unconstrained),
        60,
        0,
    );
    p.not_after = (SystemTime::now() - Duration::from_secs(86_400)).into();
    let (ca, ca_der) = issue(p, &root);
    let mut leaf = server_params(&[HOST]);
    leaf.not_before = (SystemTime::now() - Duration::from_secs(30 * 86_400)).into();
    let (_, leaf) = issue(leaf, &ca);
    (anchor, ca_der, leaf)
}

#[test]
fn leaf_dates_only_accepts_an_expired_intermediate_and_not_an_expired_leaf() {
    let (anchor, ca_der, leaf) = expired_intermediate_chain();
    let chain = std::slice::from_ref(&ca_der);
    assert!(verify(&*webpki(&anchor), &leaf, chain).is_err());
    let v = LeafDatesOnly {
        inner: webpki(&anchor),
        provider: provider(),
    };
    assert!(verify(&v, &leaf, chain).is_ok());
    // The hub's own certificate's dates still count.
    let (root, anchor) = new_root("root");
    let (ca, ca_der) = issue(ca_params("intermediate"), &root);
    let mut old = server_params(&[HOST]);
    old.not_after = (SystemTime::now() - Duration::from_secs(86_400)).into();
    let (_, leaf) = issue(old, &ca);
    let v = LeafDatesOnly {
        inner: webpki(&anchor),
        provider: provider(),
    };
    assert_eq!(
        verify(&v, &leaf, &[ca_der]).unwrap_err(),
        rustls::Error::InvalidCertificate(CertificateError::Expired)
    );
}

#[test]
fn strict_chain_order_refuses_what_webpki_reorders() {
    let (root, anchor) = new_root("root");
    let (upper, upper_der) = issue(ca_params("upper"), &root);
    let (lower, lower_der) = issue(ca_params("lower"), &upper);
    let (_, leaf) = issue(server_params(&[HOST]), &lower);
    let (_, unrelated) = new_root("unrelated");
    let v = StrictChainOrder {
        inner: webpki(&anchor),
        provider: provider(),
    };
    let ordered = [lower_der.clone(), upper_der.clone()];
    assert!(verify(&v, &leaf, &ordered).is_ok());
    let shuffled = [unrelated, upper_der, lower_der];
    assert!(verify(&*webpki(&anchor), &leaf, &shuffled).is_ok());
    assert!(matches!(
        verify(&v, &leaf, &shuffled).unwrap_err(),
        rustls::Error::General(m) if m.contains("out of order")
    ));
}
