//! MT-15…26: what a device must refuse in the hub's certificate chain, and
//! the large chain it must accept — after x509-limbo's path-validation
//! cases and AWS Device Advisor's TLS group.
//!
//! Each case's bad hub (as MT-05…09's: TLS 1.3 and 1.2, in the hub namespace on the
//! hub's MQTT port) presents a chain from `mt_chain_pki.rs` with exactly one
//! thing wrong: the right host name, valid dates, and the run's CA at the
//! top unless the top is the flaw. The refusals are judged as MT-05…09's
//! (no application data to the bad hub, `connection_failed` reported);
//! MT-23's and MT-26's acceptance by the bad hub receiving the device's
//! MQTT CONNECT.

use std::time::SystemTime;

use super::certs::{against_bad_hub, cert_facts, hub_ca, refuses_bad_cert, BadHub, BadTls};
use super::{BAD_HUB_DUT, MOVED_HUB_PORT, NEEDS};
use crate::case::{Case, CaseDef, Fail};
use crate::cases::{case_def, Def};
use crate::model::Evidence;

#[path = "mt_chain_pki.rs"]
mod pki;

use pki::{Chain, Flaw};

/// MT-23's chain must exceed this (bytes of certificates): more than one
/// maximum-size TLS record.
const LARGE_CHAIN: usize = 16 * 1024;

/// The hub-chain cases, in catalogue order (after MT-14).
pub const CASES: &[Def] = &[
    bad_hub!("MT-15", "intermediate_not_ca", "Hub chain: intermediate with CA:FALSE", "the DUT aborts with a hub whose chain's intermediate has basicConstraints CA:FALSE, and sends it no application data", mt15),
    bad_hub!("MT-16", "intermediate_without_basic_constraints", "Hub chain: intermediate without basicConstraints", "the DUT aborts with a hub whose chain's intermediate has no basicConstraints extension", mt16),
    bad_hub!("MT-17", "path_length_exceeded", "Hub chain beyond a pathLenConstraint", "the DUT aborts with a hub whose chain has a second intermediate under one with pathLenConstraint 0", mt17),
    bad_hub!("MT-18", "leaf_as_issuer", "Hub cert issued by an end-entity cert", "the DUT aborts with a hub whose certificate was issued by another server's end-entity certificate (from the trusted CA)", mt18),
    bad_hub!("MT-19", "no_server_auth_eku", "Hub cert without serverAuth EKU", "the DUT aborts with a hub whose certificate's extended key usage is clientAuth only", mt19),
    bad_hub!("MT-20", "name_constraints", "Hub chain violating name constraints", "the DUT aborts with a hub whose intermediate's name constraints permit only a sibling subtree (`devices.sacbench.test` for `hub.sacbench.test`)", mt20),
    bad_hub!("MT-21", "wildcard_too_broad", "Hub cert wildcard spanning labels", "the DUT aborts with a hub whose certificate names only a wildcard two labels up (`*.test` for `hub.sacbench.test`)", mt21),
    bad_hub!("MT-22", "look_alike_ca", "Hub chain to an untrusted root via a look-alike CA", "the DUT aborts with a hub whose intermediate bears the trusted CA's name but was signed by an untrusted root", mt22),
    bad_hub!("MT-23", "large_chain", "Large hub chain accepted", "the DUT completes the handshake with a hub presenting a valid chain over 16 KiB (split over maximum-size records) and sends its MQTT CONNECT", mt23),
    bad_hub!("MT-24", "unknown_critical_extension", "Hub chain: unknown critical extension", "the DUT aborts with a hub whose chain's intermediate carries an extension it cannot know, marked critical (RFC 5280 §4.2)", mt24),
    bad_hub!("MT-25", "expired_intermediate", "Hub chain: expired intermediate", "the DUT aborts with a hub whose chain's intermediate expired (the hub's certificate and the root within their dates)", mt25),
    bad_hub!("MT-26", "chain_out_of_order", "Hub chain out of order accepted", "the DUT completes the handshake with a hub presenting a valid chain out of order with an unrelated certificate among it (RFC 8446 §4.4.2) and sends its MQTT CONNECT", mt26),
];

/// The chain with `flaw` for the run's hub name under the run's CA.
fn chain(case: &Case, flaw: Flaw) -> Result<Chain, Fail> {
    let ca = hub_ca(case)?;
    let root_cn = cert_facts(ca.cert_der())
        .and_then(|f| f.cn)
        .ok_or_else(|| Fail::bench("the run's CA certificate has no subject CN"))?;
    pki::chain(
        ca.issuer(),
        &root_cn,
        &case.net.hub_host,
        flaw,
        SystemTime::now(),
    )
    .map_err(Fail::bench)
}

async fn refuses(case: &mut Case, flaw: Flaw, what: &str) -> Result<String, Fail> {
    let c = chain(case, flaw)?;
    refuses_bad_cert(case, &c.cert_pem, &c.key_pem, what).await
}

async fn mt15(case: &mut Case) -> Result<String, Fail> {
    refuses(
        case,
        Flaw::IntermediateNotCa,
        "issued by an intermediate with CA:FALSE",
    )
    .await
}

async fn mt16(case: &mut Case) -> Result<String, Fail> {
    refuses(
        case,
        Flaw::IntermediateNoBasicConstraints,
        "issued by an intermediate without basicConstraints",
    )
    .await
}

async fn mt17(case: &mut Case) -> Result<String, Fail> {
    refuses(
        case,
        Flaw::PathLenExceeded,
        "two intermediates under a pathLenConstraint of 0",
    )
    .await
}

async fn mt18(case: &mut Case) -> Result<String, Fail> {
    refuses(
        case,
        Flaw::LeafAsIssuer,
        "issued by an end-entity certificate",
    )
    .await
}

async fn mt19(case: &mut Case) -> Result<String, Fail> {
    refuses(
        case,
        Flaw::ClientAuthOnly,
        "for clientAuth only (no serverAuth)",
    )
    .await
}

async fn mt20(case: &mut Case) -> Result<String, Fail> {
    refuses(
        case,
        Flaw::NameConstraintsExclude,
        "outside its intermediate's name constraints",
    )
    .await
}

async fn mt21(case: &mut Case) -> Result<String, Fail> {
    refuses(
        case,
        Flaw::WildcardTooBroad,
        "for a wildcard two labels above the hub's name",
    )
    .await
}

async fn mt22(case: &mut Case) -> Result<String, Fail> {
    refuses(
        case,
        Flaw::ForeignRootTwin,
        "from an untrusted root through an intermediate named like the trusted CA",
    )
    .await
}

async fn mt24(case: &mut Case) -> Result<String, Fail> {
    refuses(
        case,
        Flaw::UnknownCriticalExtension,
        "through an intermediate with an unknown critical extension",
    )
    .await
}

async fn mt25(case: &mut Case) -> Result<String, Fail> {
    refuses(
        case,
        Flaw::ExpiredIntermediate,
        "through an intermediate that expired a day ago",
    )
    .await
}

async fn mt26(case: &mut Case) -> Result<String, Fail> {
    let c = chain(case, Flaw::OutOfOrder)?;
    case.note(Evidence::note(format!(
        "the bad hub presents {} certificates: its own, an unrelated self-signed one, the intermediate the run's CA signed, then the one that issued its own",
        c.ders.len()
    )));
    accepts(case, &c, "a valid chain out of order").await
}

/// The positive cases' verdict: the bad hub presenting `c` gets the
/// device's MQTT CONNECT.
async fn accepts(case: &mut Case, c: &Chain, what: &str) -> Result<String, Fail> {
    let tls = BadTls::Tls13And12 {
        cert_pem: &c.cert_pem,
        key_pem: &c.key_pem,
    };
    let hub = BadHub::start(case, tls).await?;
    match against_bad_hub(case, &hub).await? {
        None => Ok(format!(
            "completed the handshake over {what} and sent its MQTT CONNECT"
        )),
        Some(refusal) => Err(Fail::new(
            format!("the device to accept {what} and send its MQTT CONNECT"),
            format!("it gave up: {refusal}"),
            "device.log; capture.pcapng (the bad hub's certificate flight)",
        )),
    }
}

async fn mt23(case: &mut Case) -> Result<String, Fail> {
    let c = chain(case, Flaw::Large)?;
    let size = c.der_len();
    if size <= LARGE_CHAIN {
        return Err(Fail::bench(format!(
            "the large chain has {size} bytes, not over {LARGE_CHAIN}"
        )));
    }
    case.note(Evidence::note(format!(
        "the bad hub presents {} certificates, {size} bytes of DER",
        c.ders.len()
    )));
    accepts(case, &c, &format!("a valid {size}-byte chain")).await
}
