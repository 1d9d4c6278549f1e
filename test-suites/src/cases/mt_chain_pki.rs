//! The hub certificate chains of MT-15…26: a good chain (the run's CA →
//! an intermediate → the hub's certificate) with exactly one thing wrong,
//! after x509-limbo's path-validation cases and AWS Device Advisor's TLS
//! group. Pure: rcgen, no I/O.

use std::time::{Duration, SystemTime};

use hub_fixture::pki::Validity;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints,
};
use rustls_pki_types::CertificateDer;

/// What is wrong with a chain (one thing each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flaw {
    /// Nothing: the control chain, which every verifier accepts (the
    /// tests' proof that each flaw is the only thing wrong).
    #[cfg_attr(not(test), allow(dead_code))]
    None,
    /// MT-15: the intermediate's basicConstraints say CA:FALSE (its key
    /// usage still allows certificate signing).
    IntermediateNotCa,
    /// MT-16: the intermediate has no basicConstraints extension (its key
    /// usage still allows certificate signing, which some verifiers take
    /// as a legacy CA mark for the trust anchor; OpenSSL 3 and webpki do
    /// not for an intermediate).
    IntermediateNoBasicConstraints,
    /// MT-17: the intermediate has pathLenConstraint 0, yet issues a second
    /// intermediate, which issues the hub's certificate.
    PathLenExceeded,
    /// MT-18: the hub's certificate is issued by an end-entity server
    /// certificate the run's CA issued for another name (no
    /// basicConstraints, digitalSignature only, serverAuth).
    LeafAsIssuer,
    /// MT-19: the hub's certificate has extendedKeyUsage clientAuth only.
    ClientAuthOnly,
    /// MT-20: the intermediate's name constraints permit only
    /// `devices.<parent domain>`, which the hub's name is not in.
    NameConstraintsExclude,
    /// MT-21: the hub's certificate names only `*.<grandparent domain>`
    /// (`*.test` for `hub.sacbench.test`): a wildcard stands for one label.
    WildcardTooBroad,
    /// MT-22: the intermediate has the run CA's subject, but an attacker's
    /// root (presented too) signed it.
    ForeignRootTwin,
    /// MT-23 (not a flaw): the hub's certificate carries [`LARGE_SANS`]
    /// names under the hub's, so the chain exceeds 16 KiB.
    Large,
    /// MT-24: the intermediate carries an extension of an OID nobody
    /// knows ([`UNKNOWN_EXTENSION_OID`]), marked critical.
    UnknownCriticalExtension,
    /// MT-25: the intermediate expired a day ago (valid from 60 days ago);
    /// the hub's certificate (valid from 30 days ago) and the root are
    /// within their dates.
    ExpiredIntermediate,
    /// MT-26 (not a flaw): a valid chain of two intermediates presented out
    /// of order, with an unrelated self-signed certificate among them: the
    /// hub's certificate, the unrelated one, the intermediate the root
    /// signed, then the one that issued the hub's certificate.
    OutOfOrder,
}

/// The OID of [`Flaw::UnknownCriticalExtension`]'s extension: under
/// x509-limbo's private arc, assigned to nothing any verifier knows.
pub(super) const UNKNOWN_EXTENSION_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 55738, 666, 1];

/// How many extra names the hub's certificate of [`Flaw::Large`] carries.
pub(super) const LARGE_SANS: usize = 560;

/// A chain a bad hub presents.
pub(super) struct Chain {
    /// The chain, PEM, the hub's certificate first.
    pub cert_pem: String,
    /// The hub certificate's key, PKCS#8 PEM.
    pub key_pem: String,
    /// The chain, DER, the hub's certificate first.
    pub ders: Vec<CertificateDer<'static>>,
}

impl Chain {
    /// Bytes of DER certificates in the chain.
    pub(super) fn der_len(&self) -> usize {
        self.ders.iter().map(|d| d.len()).sum()
    }
}

fn dn(cn: &str) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::CommonName, cn);
    d
}

fn dated(mut p: CertificateParams, now: SystemTime) -> CertificateParams {
    let v = Validity::days_from(now, 30);
    p.not_before = v.not_before.into();
    p.not_after = v.not_after.into();
    p
}

fn ca(cn: &str, constraints: BasicConstraints, now: SystemTime) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(cn);
    p.is_ca = IsCa::Ca(constraints);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    dated(p, now)
}

fn server(names: Vec<String>, now: SystemTime) -> Result<CertificateParams, rcgen::Error> {
    let mut p = CertificateParams::new(names.clone())?;
    p.distinguished_name = dn(names.first().map(String::as_str).unwrap_or("hub"));
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    Ok(dated(p, now))
}

fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86_400)
}

/// Signs `params` for a new key with `by`: the certificate, and an issuer
/// of it (whether or not it should be one).
fn issue(
    params: CertificateParams,
    by: &Issuer<'_, KeyPair>,
) -> Result<(Certificate, Issuer<'static, KeyPair>), rcgen::Error> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = params.signed_by(&key, by)?;
    Ok((cert, Issuer::new(params, key)))
}

/// `host` without its first label (`sacbench.test` for `hub.sacbench.test`).
fn parent(host: &str) -> Option<&str> {
    host.split_once('.').map(|(_, p)| p)
}

/// The chain for `host` (a DNS name of three labels or more) under `root`
/// (the run's CA, whose subject is CN=`root_cn`, as the fixture's CA names
/// itself) with `flaw`; every certificate valid around `now`.
pub(super) fn chain(
    root: &Issuer<'_, KeyPair>,
    root_cn: &str,
    host: &str,
    flaw: Flaw,
    now: SystemTime,
) -> Result<Chain, String> {
    let domain = parent(host)
        .filter(|d| parent(d).is_some())
        .ok_or_else(|| format!("the hub's name {host} has fewer than three labels"))?;
    build(root, root_cn, host, domain, flaw, now)
        .map_err(|e| format!("building the chain for {flaw:?}: {e}"))
}

fn build(
    root: &Issuer<'_, KeyPair>,
    root_cn: &str,
    host: &str,
    domain: &str,
    flaw: Flaw,
    now: SystemTime,
) -> Result<Chain, rcgen::Error> {
    let mut intermediate = ca(
        "sacbench hub intermediate",
        BasicConstraints::Unconstrained,
        now,
    );
    let mut names = vec![host.to_string()];
    let mut leaf_eku = ExtendedKeyUsagePurpose::ServerAuth;
    // The certificates above the intermediate a server presents, top last.
    let mut above: Vec<Certificate> = Vec::new();
    let mut signer: Option<Issuer<'static, KeyPair>> = None;
    match flaw {
        Flaw::None => {}
        Flaw::IntermediateNotCa => intermediate.is_ca = IsCa::ExplicitNoCa,
        Flaw::IntermediateNoBasicConstraints => intermediate.is_ca = IsCa::NoCa,
        Flaw::PathLenExceeded => intermediate.is_ca = IsCa::Ca(BasicConstraints::Constrained(0)),
        Flaw::LeafAsIssuer => {
            intermediate = server(vec![format!("portal.{domain}")], now)?;
        }
        Flaw::ClientAuthOnly => leaf_eku = ExtendedKeyUsagePurpose::ClientAuth,
        Flaw::NameConstraintsExclude => {
            let permitted = format!("devices.{domain}");
            intermediate.name_constraints = Some(NameConstraints {
                permitted_subtrees: vec![GeneralSubtree::DnsName(permitted)],
                excluded_subtrees: Vec::new(),
            });
        }
        Flaw::WildcardTooBroad => {
            names = vec![format!("*.{}", parent(domain).unwrap_or(domain))];
        }
        Flaw::ForeignRootTwin => {
            intermediate.distinguished_name = dn(root_cn);
            let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
            let attacker = ca(
                "sacbench attacker root",
                BasicConstraints::Unconstrained,
                now,
            );
            above.push(attacker.self_signed(&key)?);
            signer = Some(Issuer::new(attacker, key));
        }
        Flaw::Large => names.extend((0..LARGE_SANS).map(|i| format!("tenant-{i:04}.{host}"))),
        Flaw::UnknownCriticalExtension => {
            // Its value: an ASN.1 NULL.
            let mut ext =
                CustomExtension::from_oid_content(UNKNOWN_EXTENSION_OID, vec![0x05, 0x00]);
            ext.set_criticality(true);
            intermediate.custom_extensions.push(ext);
        }
        Flaw::ExpiredIntermediate => {
            intermediate.not_before = (now - days(60)).into();
            intermediate.not_after = (now - days(1)).into();
        }
        Flaw::OutOfOrder => {}
    }
    let top = signer.as_ref().unwrap_or(root);
    let (first, mut inter) = issue(intermediate, top)?;
    let mut presented = vec![first];
    if matches!(flaw, Flaw::PathLenExceeded | Flaw::Large | Flaw::OutOfOrder) {
        // A second intermediate under the first (which allows none under it
        // for PathLenExceeded).
        let second;
        (second, inter) = issue(
            ca(
                "sacbench hub issuing CA",
                BasicConstraints::Unconstrained,
                now,
            ),
            &inter,
        )?;
        presented.insert(0, second);
    }
    if flaw == Flaw::OutOfOrder {
        // The root-side intermediate after the issuing one's place, an
        // unrelated certificate first.
        presented.reverse();
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let unrelated = ca(
            "sacbench unrelated root",
            BasicConstraints::Unconstrained,
            now,
        );
        presented.insert(0, unrelated.self_signed(&key)?);
    }
    let mut leaf = server(names, now)?;
    leaf.extended_key_usages = vec![leaf_eku];
    if flaw == Flaw::ExpiredIntermediate {
        leaf.not_before = (now - days(30)).into();
    }
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let certs: Vec<Certificate> = std::iter::once(leaf.signed_by(&key, &inter)?)
        .chain(presented)
        .chain(above)
        .collect();
    let ders = certs.iter().map(|c| c.der().clone()).collect();
    let cert_pem = certs.iter().map(Certificate::pem).collect();
    Ok(Chain {
        cert_pem,
        key_pem: key.serialize_pem(),
        ders,
    })
}

#[cfg(test)]
#[path = "mt_chain_pki_tests.rs"]
mod tests;
