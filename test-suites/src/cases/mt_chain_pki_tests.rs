//! Each flawed chain is refused by webpki (rustls' verifier, the reference
//! device's) for its one flaw, and the control chain is accepted: so the
//! flaw is the only thing wrong.

use std::sync::Arc;

use hub_fixture::pki::CertificateAuthority;
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{ServerName, UnixTime};
use rustls::RootCertStore;

use super::*;

const HOST: &str = "hub.sacbench.test";
const CA_CN: &str = "sacbench test CA";

/// What webpki says about `flaw`'s chain: `Ok(())`, or its error (Debug).
fn verdict(flaw: Flaw) -> (Chain, Result<(), String>) {
    let now = SystemTime::now();
    let ca = CertificateAuthority::generate(CA_CN, now).unwrap();
    let c = chain(ca.issuer(), CA_CN, HOST, flaw, now).unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert_der().clone()).unwrap();
    let v =
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), hub_fixture::tls::provider())
            .build()
            .unwrap();
    let r = v
        .verify_server_cert(
            &c.ders[0],
            &c.ders[1..],
            &ServerName::try_from(HOST).unwrap(),
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
        .map_err(|e| format!("{e:?}"));
    (c, r)
}

fn refused_for(flaw: Flaw, why: &str) {
    let (_, r) = verdict(flaw);
    let e = r.expect_err("a flawed chain must be refused");
    assert!(e.contains(why), "{flaw:?}: {e}");
}

#[test]
fn the_control_chain_is_accepted() {
    let (c, r) = verdict(Flaw::None);
    assert_eq!(r, Ok(()));
    assert_eq!(c.ders.len(), 2);
    assert_eq!(c.cert_pem.matches("BEGIN CERTIFICATE").count(), 2);
}

#[test]
fn each_flaw_is_refused_for_itself() {
    refused_for(Flaw::IntermediateNotCa, "EndEntityUsedAsCa");
    refused_for(Flaw::IntermediateNoBasicConstraints, "EndEntityUsedAsCa");
    refused_for(Flaw::PathLenExceeded, "PathLenConstraintViolated");
    refused_for(Flaw::LeafAsIssuer, "EndEntityUsedAsCa");
    refused_for(Flaw::ClientAuthOnly, "InvalidPurpose");
    refused_for(Flaw::NameConstraintsExclude, "NameConstraintViolation");
    refused_for(Flaw::WildcardTooBroad, "NotValidForName");
    refused_for(Flaw::ForeignRootTwin, "BadSignature");
    refused_for(
        Flaw::UnknownCriticalExtension,
        "UnsupportedCriticalExtension",
    );
    refused_for(Flaw::ExpiredIntermediate, "Expired");
}

#[test]
fn the_expired_intermediate_is_the_only_cert_out_of_date() {
    let (c, _) = verdict(Flaw::ExpiredIntermediate);
    let now = SystemTime::now();
    let dates = |d: &[u8]| {
        let (_, x) = x509_parser::parse_x509_certificate(d).unwrap();
        let v = x.validity();
        (v.not_before.timestamp(), v.not_after.timestamp())
    };
    let now = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let (leaf, inter) = (dates(&c.ders[0]), dates(&c.ders[1]));
    assert!(
        leaf.0 < now && now < leaf.1,
        "the hub's certificate is valid"
    );
    assert!(inter.1 < now, "the intermediate expired");
    assert!(leaf.0 < inter.1, "their dates overlap");
}

#[test]
fn the_out_of_order_chain_is_good_and_out_of_order() {
    let (c, r) = verdict(Flaw::OutOfOrder);
    assert_eq!(r, Ok(()));
    let cn = |n: &x509_parser::x509::X509Name<'_>| {
        n.iter_common_name()
            .next()
            .and_then(|a| a.as_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let names = |d: &[u8]| {
        let (_, x) = x509_parser::parse_x509_certificate(d).unwrap();
        (cn(x.subject()), cn(x.issuer()))
    };
    let got: Vec<(String, String)> = c.ders.iter().map(|d| names(d)).collect();
    assert_eq!(got.len(), 4);
    assert_eq!(got[0].1, "sacbench hub issuing CA");
    assert_eq!(got[1].0, "sacbench unrelated root");
    assert_eq!(got[2], ("sacbench hub intermediate".into(), CA_CN.into()));
    assert_eq!(got[3].0, "sacbench hub issuing CA");
}

#[test]
fn the_large_chain_is_good_and_over_16_kib() {
    let (c, r) = verdict(Flaw::Large);
    assert_eq!(r, Ok(()));
    assert_eq!(c.ders.len(), 3);
    assert!(c.der_len() > 16 * 1024, "{} bytes", c.der_len());
}

#[test]
fn the_foreign_twin_is_named_like_the_run_ca() {
    let now = SystemTime::now();
    let ca = CertificateAuthority::generate(CA_CN, now).unwrap();
    let c = chain(ca.issuer(), CA_CN, HOST, Flaw::ForeignRootTwin, now).unwrap();
    let cn = |d: &[u8]| crate::cases::mt::certs::cert_facts(d).unwrap().cn;
    assert_eq!(cn(&c.ders[1]), cn(ca.cert_der()));
    assert_eq!(cn(&c.ders[2]).as_deref(), Some("sacbench attacker root"));
    assert_eq!(c.ders.len(), 3, "hub, twin, attacker root");
}

#[test]
fn a_host_of_two_labels_has_no_chain() {
    let now = SystemTime::now();
    let ca = CertificateAuthority::generate(CA_CN, now).unwrap();
    assert!(chain(ca.issuer(), CA_CN, "sacbench.test", Flaw::None, now).is_err());
}
