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
