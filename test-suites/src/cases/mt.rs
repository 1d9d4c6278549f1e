//! MT — mutual TLS, per-device identity.
//!
//! Capture facts come from `Case::analysis` (frame numbers as tshark numbers
//! them); hub facts from the journal. MT-02 and MT-05…09 point the device at
//! a deliberately bad hub (`openssl s_server`, in the hub namespace, on
//! [`BAD_HUB_PORT`]); the servers of MT-05…09 speak TLS 1.2 only, so that the
//! device's refusal is a readable alert and any application data it sent
//! is visible as an application_data record (in TLS 1.3 the client's
//! Finished is one too).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use hub_fixture::client::{self, DeviceClient};
use hub_fixture::hub::DeviceCredentials;
use hub_fixture::journal::{Event, HandshakeFailure, JournalEntry, RefuseReason};
use hub_fixture::pki::{CertificateAuthority, KeyAlgorithm, Validity};
use sacbench_capture::analysis::cipher_suite_name;
use sacbench_capture::{Analysis, TcpFlow};
use sacbench_rig::dut::EventName;
use sacbench_rig::{Capability, Node};

#[path = "mt_boards.rs"]
mod boards;
#[path = "mt_certs.rs"]
mod certs;
#[path = "mt_revocation.rs"]
mod revocation;

use super::cd::selftest::{connect, connect_dut, connect_packet, in_ns, publish_packet};
use super::{case_def, self_test, Def};
use crate::case::{Case, CaseDef, ClockNeed, DutNeeds, Fail, DEVICE_ID};
use crate::model::Evidence;
use certs::{cert_facts, der, mt02, mt05, mt06, mt07, mt08, mt09, spki_facts, DAY};
use revocation::mt12;

const NEEDS: &[Capability] = &[Capability::Power, Capability::Capture, Capability::Console];
/// Where the bad hubs listen: the hub's MQTT port, where the device dials.
const BAD_HUB_PORT: u16 = 8883;
/// Where the fixture hub's MQTT listener moves meanwhile.
const MOVED_HUB_PORT: u16 = 8884;
/// The bad-hub cases wait for the device to give up.
const BAD_HUB_DUT: DutNeeds = DutNeeds {
    events: &[EventName::ConnectionFailed],
    ..DutNeeds::NONE
};
/// Revocation must end the live session within this (the catalogue names a
/// bound without a number; a fixture hub on a veth does it in milliseconds).
const REVOKE_BOUND: Duration = Duration::from_secs(2);
/// MT-12's clock: 20× (three device-minutes in nine real seconds), not the
/// usual 60×. Its criterion, ≤ 6 attempts per device-minute, is 6 per real
/// second at 60×: a reconnect storm whose every attempt costs a loaded
/// machine ~60 ms of handshake could not reach that many and passed. At
/// 20× the limit is 2 per real second; a storm still makes ten or more.
const MT12_TIME_SCALE: u32 = 20;

macro_rules! bad_hub {
    ($id:literal, $slug:literal, $title:literal, $expected:literal, $f:ident) => {
        CaseDef {
            hub_mqtt_port: Some(MOVED_HUB_PORT),
            ..case_def!($id, $slug, $title, $expected, NEEDS, BAD_HUB_DUT, $f)
        }
    };
}

#[path = "mt_chain.rs"]
mod chain;
/// MT-15…26, the hub's certificate chain (`mt_chain.rs`), after [`CASES`].
pub use chain::CASES as CHAIN_CASES;

/// The MT (mutual TLS, per-device identity) cases, in catalogue order.
pub const CASES: &[Def] = &[
    case_def!("MT-01", "tls_throughout", "TLS from the first byte", "every DUT flow carries TLS from its first payload byte; no cleartext application data", NEEDS, mt01),
    bad_hub!("MT-02", "tls_version", "TLS ≥ 1.2, TLS 1.0 hub refused", "the DUT offers only TLS ≥ 1.2 and sends no application data to a hub that offers only TLS 1.0", mt02),
    case_def!("MT-03", "aead_only", "Only AEAD cipher suites offered", "the DUT's ClientHello offers only AEAD suites, no NULL/EXPORT/RC4/3DES/CBC", NEEDS, mt03),
    case_def!("MT-04", "client_certificate", "Own client certificate", "the DUT presents its registered certificate; CN = device id; key ≥ P-256 or RSA-2048", NEEDS, mt04),
    bad_hub!("MT-05", "untrusted_ca", "Hub cert from an untrusted CA", "the DUT aborts the handshake with a hub whose certificate is from an untrusted CA and sends no application data", mt05),
    bad_hub!("MT-06", "wrong_host_name", "Hub cert for the wrong host name", "the DUT aborts with a hub whose certificate names another host", mt06),
    bad_hub!("MT-07", "expired_hub_cert", "Expired hub cert", "the DUT aborts with a hub whose certificate has expired", mt07),
    bad_hub!("MT-08", "not_yet_valid_hub_cert", "Hub cert not yet valid", "the DUT aborts with a hub whose certificate is not yet valid", mt08),
    bad_hub!("MT-09", "self_signed_hub_cert", "Self-signed hub cert", "the DUT aborts with a hub presenting a self-signed certificate", mt09),
    self_test!("MT-10", "hub_refuses_bad_clients", "Self-test: hub refuses bad client certs", "the hub refuses a client with no certificate, with a foreign-CA certificate and with an expired one, journalling why", mt10),
    self_test!("MT-11", "hub_enforces_identity", "Self-test: identity and topic ACL", "client id ≠ certificate CN is refused; subscribing or publishing another device's topics closes the session", mt11),
    CaseDef { long: true, clock: ClockNeed::ScaledIfOffered { rate: MT12_TIME_SCALE }, ..case_def!("MT-12", "revocation", "Revocation and backoff", "revoking the DUT's certificate closes its live session within 2 s; reconnects fail; the DUT backs off: ≤ 6 attempts per minute after the first minute (counted over device minutes 2–3 on its time-scaled clock; a DUT without one: its reconnect intervals grow)", NEEDS, mt12) },
    CaseDef { ..case_def!("MT-13", "unique_key_material", "No shared key material", "no key the DUT presents is the firmware-baked shared key or another device's key; on a rig with a second board, that board, provisioned as another device, presents no key the first presented", NEEDS, mt13) },
    case_def!("MT-14", "sni", "SNI = provisioned host name", "every ClientHello of the DUT carries SNI = the provisioned hub host name", NEEDS, mt14),
];

fn dut_ip(case: &Case) -> IpAddr {
    IpAddr::V4(case.net.dut_ipv4)
}

fn from_dut(e: &JournalEntry, dut: IpAddr) -> bool {
    e.peer
        .as_deref()
        .and_then(|p| p.parse::<SocketAddr>().ok())
        .is_some_and(|p| p.ip() == dut)
}

/// Powers on and waits for the device's first connection to reach a
/// verdict at the hub (a session, or a refused handshake / CONNECT), so a
/// faulty device fails with evidence instead of a boot timeout.
async fn first_outcome(case: &mut Case) -> Result<JournalEntry, Fail> {
    let dut = dut_ip(case);
    case.rig.power(true).await?;
    case.journal(
        0,
        "the device's first connection to reach a verdict at the hub",
        |e| match e.event {
            Event::Connected { .. } => true,
            Event::HandshakeFailed { .. } | Event::ConnectRefused { .. } => from_dut(e, dut),
            _ => false,
        },
    )
    .await
}

/// Flows the DUT opened (to whoever).
fn dut_flows(a: &Analysis, dut: IpAddr) -> Vec<&TcpFlow> {
    a.tcp_flows
        .iter()
        .filter(|f| f.client.ip() == dut)
        .collect()
}

async fn mt01(case: &mut Case) -> Result<String, Fail> {
    let first = first_outcome(case).await?;
    if matches!(first.event, Event::Connected { .. }) {
        // Application data both ways: the session's first work.
        case.session_active(first.seq).await?;
    }
    let dut = dut_ip(case);
    let a = case.analysis()?.clone();
    let flows: Vec<&TcpFlow> = dut_flows(&a, dut)
        .into_iter()
        .filter(|f| f.to_server.first_payload.is_some())
        .collect();
    case.note(Evidence::frames(
        format!("first payload of {} DUT flows", flows.len()),
        flows
            .iter()
            .filter_map(|f| f.to_server.first_payload.map(|p| p.number)),
    ));
    if flows.is_empty() {
        return Err(Fail::new(
            "DUT flows with payload",
            "none captured",
            "capture.pcapng",
        ));
    }
    let bad: Vec<(String, u64)> = flows
        .iter()
        .filter(|f| !f.tls_throughout())
        .map(|f| {
            let d = [&f.to_server, &f.to_client];
            let frame = d
                .iter()
                .find_map(|d| {
                    d.tls
                        .not_tls
                        .map(|n| n.frame)
                        .or(d.tls.cleartext_application_data)
                        .or(d.gap)
                })
                .or(f.to_server.first_payload)
                .map_or(0, |r| r.number);
            (format!("{} → {}", f.client, f.server), frame)
        })
        .collect();
    if !bad.is_empty() {
        let shown = bad
            .iter()
            .map(|(flow, frame)| format!("{flow} (cleartext in frame {frame})"))
            .collect::<Vec<_>>()
            .join("; ");
        case.note(Evidence::frames(
            format!("not TLS throughout: {shown}"),
            bad.iter().map(|b| b.1),
        ));
        return Err(Fail::new(
            "every DUT flow TLS from its first payload byte",
            format!("{} flows not TLS throughout: {shown}", bad.len()),
            format!(
                "capture.pcapng frames {:?}",
                bad.iter().map(|b| b.1).collect::<Vec<_>>()
            ),
        ));
    }
    Ok(format!(
        "{} DUT flows, all TLS from the first byte",
        flows.len()
    ))
}

async fn mt03(case: &mut Case) -> Result<String, Fail> {
    first_outcome(case).await?;
    let dut = dut_ip(case);
    let a = case.analysis()?.clone();
    let mut weak = Vec::new();
    let mut frames = Vec::new();
    for f in dut_flows(&a, dut) {
        for ch in &f.tls.client_hellos {
            frames.push(ch.frames.last.number);
            for s in ch.non_aead_suites() {
                weak.push((
                    ch.frames.last.number,
                    cipher_suite_name(s).unwrap_or("unknown").to_string(),
                ));
            }
        }
    }
    let shown = {
        // One entry per suite, with the frames that offered it.
        let mut by_suite: Vec<(String, Vec<u64>)> = Vec::new();
        for (frame, suite) in &weak {
            match by_suite.iter_mut().find(|(s, _)| s == suite) {
                Some((_, fs)) => fs.push(*frame),
                None => by_suite.push((suite.clone(), vec![*frame])),
            }
        }
        by_suite
            .iter()
            .map(|(s, fs)| {
                let fs: Vec<String> = fs.iter().map(u64::to_string).collect();
                format!("{s} (frame {})", fs.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    case.note(Evidence::frames(
        format!(
            "ClientHellos; non-AEAD suites offered: {}",
            if shown.is_empty() { "none" } else { &shown }
        ),
        frames.clone(),
    ));
    if frames.is_empty() {
        return Err(Fail::new(
            "ClientHellos of the DUT",
            "none captured",
            "capture.pcapng",
        ));
    }
    if !weak.is_empty() {
        return Err(Fail::new(
            "only AEAD suites in every ClientHello",
            format!("non-AEAD suites offered: {shown}"),
            format!("capture.pcapng frames {frames:?}"),
        ));
    }
    Ok(format!("{} ClientHellos, AEAD suites only", frames.len()))
}

async fn mt04(case: &mut Case) -> Result<String, Fail> {
    let first = first_outcome(case).await?;
    let dut = dut_ip(case);
    let creds = case.credentials().clone();
    let accepted = case
        .hub
        .journal()
        .entries()
        .into_iter()
        .find(|e| matches!(e.event, Event::TlsAccepted { .. }) && from_dut(e, dut));
    let Some(Event::TlsAccepted { serial, .. }) = accepted.as_ref().map(|e| &e.event) else {
        case.note(Evidence::journal(
            format!("first verdict: {}", crate::case::event_text(&first.event)),
            [first.seq],
        ));
        return Err(Fail::new(
            "the hub to accept the DUT's client certificate",
            crate::case::event_text(&first.event),
            format!("journal.jsonl seq {}", first.seq),
        ));
    };
    let seq = accepted.as_ref().map_or(0, |e| e.seq);
    let der = hub_fixture::pki::pem_to_der(&creds.cert_pem)
        .ok_or("the registered certificate is not PEM")?;
    let facts = cert_facts(&der).ok_or("the registered certificate does not parse")?;
    case.note(Evidence::journal(
        format!(
            "TLS accepted with serial {serial} (registered {}); CN {:?}; key {}",
            creds.serial, facts.cn, facts.key
        ),
        [seq],
    ));
    if *serial != creds.serial || facts.cn.as_deref() != Some(DEVICE_ID) || !facts.strong {
        return Err(Fail::new(
            "the DUT's own registered certificate, CN = device id, key ≥ P-256 / RSA-2048",
            format!(
                "serial {serial} (registered {}), CN {:?}, key {}",
                creds.serial, facts.cn, facts.key
            ),
            format!("journal.jsonl seq {seq}"),
        ));
    }
    Ok(format!(
        "presented its registered certificate (CN {DEVICE_ID}, {})",
        facts.key
    ))
}

/// Waits for the hub's verdict on the attempt that started at `mark`.
async fn verdict(case: &Case, mark: u64) -> Result<JournalEntry, Fail> {
    case.journal(mark, "the hub's verdict on the client", |e| {
        matches!(
            e.event,
            Event::HandshakeFailed { .. } | Event::ConnectRefused { .. } | Event::Connected { .. }
        )
    })
    .await
}

async fn mt10(case: &mut Case) -> Result<String, Fail> {
    let hub = case.hub.clone();
    let addr = hub.mqtt_addr();
    let good = case.credentials().clone();
    // Positive control: the fixture accepts a well-formed client.
    connect_dut(case).await?;
    let now = SystemTime::now();
    let foreign = CertificateAuthority::generate("foreign CA", now)?.issue_device(
        DEVICE_ID,
        KeyAlgorithm::EcdsaP256,
        Validity::days_from(now, 30),
    )?;
    let foreign = DeviceCredentials {
        cert_pem: foreign.cert_pem,
        key_pem: foreign.key_pem.unwrap_or_default(),
        ..good.clone()
    };
    let expired = hub.issue_certificate(
        DEVICE_ID,
        KeyAlgorithm::EcdsaP256,
        Validity {
            not_before: now - 30 * DAY,
            not_after: now - DAY,
        },
    )?;
    let mut seen = Vec::new();
    let mut refs = Vec::new();
    let (ca, host) = (good.ca_pem.clone(), good.hub_host.clone());
    let mark = hub.journal().len();
    // No certificate: TLS without client auth, then a CONNECT.
    let no_cert = in_ns(case, Node::Dut, async move {
        let cfg = client::tls_config(&ca, None).map_err(|e| e.to_string())?;
        let s = client::connect_tls(addr, &host, cfg)
            .await
            .map_err(|e| e.to_string())?;
        let mut c = DeviceClient::over(s);
        let user = format!("{host}/{DEVICE_ID}/?api-version={}", client::API_VERSION);
        let _ = c.send_raw(&connect_packet(DEVICE_ID, &user)).await;
        Ok::<_, String>(format!(
            "{:?}",
            c.recv(Duration::from_secs(10)).await.ok().flatten()
        ))
    })
    .await?;
    let v = verdict(case, mark).await?;
    refs.push(v.seq);
    let ok = matches!(
        v.event,
        Event::HandshakeFailed {
            reason: HandshakeFailure::NoClientCertificate,
            ..
        }
    );
    seen.push(format!(
        "no certificate: {:?} (client saw {no_cert:?})",
        v.event
    ));
    for (what, creds, want) in [
        ("foreign CA", foreign, HandshakeFailure::UnknownIssuer),
        ("expired", expired, HandshakeFailure::CertificateExpired),
    ] {
        let mark = hub.journal().len();
        let r = connect(case, addr, &creds, None).await?;
        let v = verdict(case, mark).await?;
        refs.push(v.seq);
        let refused = r.as_ref().map_or(true, |s| !s.accepted());
        let right = matches!(&v.event, Event::HandshakeFailed { reason, .. } if *reason == want);
        seen.push(format!("{what}: {}", crate::case::event_text(&v.event)));
        if !(refused && right) {
            case.note(Evidence::journal(seen.join("; "), refs.clone()));
            return Err(Fail::new(
                format!("a {what} client certificate refused in the handshake ({want:?})"),
                crate::case::event_text(&v.event),
                format!("journal.jsonl seq {}", v.seq),
            ));
        }
    }
    case.note(Evidence::journal(seen.join("; "), refs.clone()));
    if !ok {
        return Err(Fail::new(
            "a client without a certificate refused (no_client_certificate)",
            seen[0].clone(),
            format!("journal.jsonl seq {}", refs[0]),
        ));
    }
    Ok("no cert, foreign-CA cert and expired cert all refused in the handshake, with the reason journalled".into())
}

async fn mt11(case: &mut Case) -> Result<String, Fail> {
    let hub = case.hub.clone();
    let addr = hub.mqtt_addr();
    let good = case.credentials().clone();
    hub.register_device("dut-2")?;
    let mut refs = Vec::new();
    let mut seen = Vec::new();
    let mark = hub.journal().len();
    let r = connect(case, addr, &good, Some("dut-2".into())).await?;
    let v = verdict(case, mark).await?;
    refs.push(v.seq);
    seen.push(format!(
        "client id dut-2 with CN {DEVICE_ID}: {:?}",
        v.event
    ));
    let refused = r.as_ref().map_or(true, |s| !s.accepted());
    if !refused
        || !matches!(
            &v.event,
            Event::ConnectRefused {
                reason: RefuseReason::ClientIdMismatch,
                ..
            }
        )
    {
        case.note(Evidence::journal(seen.join("; "), refs));
        return Err(Fail::new(
            "client id ≠ CN refused (client_id_mismatch)",
            seen.join("; "),
            format!("journal.jsonl seq {}", v.seq),
        ));
    }
    let other = "devices/dut-2/messages/devicebound/#";
    let other_pub = "devices/dut-2/messages/events/";
    for what in ["subscribe", "publish"] {
        let mark = hub.journal().len();
        let mut s = connect_dut(case).await?;
        if what == "subscribe" {
            let _ = s.client.subscribe(&[other]).await;
        } else {
            let _ = s.client.send_raw(&publish_packet(other_pub, b"{}")).await;
        }
        let closed = s.client.closed_by_hub(Duration::from_secs(10)).await;
        let acl = case
            .journal(mark, &format!("an ACL violation for the {what}"), |e| {
                matches!(e.event, Event::AclViolation { .. })
            })
            .await?;
        let end = case
            .journal(acl.seq, "the session to be closed", |e| {
                matches!(e.event, Event::SessionClosed { .. })
            })
            .await?;
        refs.extend([acl.seq, end.seq]);
        seen.push(format!(
            "{what} on another device's topic: {:?}, closed={closed}",
            end.event
        ));
        if !closed {
            case.note(Evidence::journal(seen.join("; "), refs));
            return Err(Fail::new(
                format!("a {what} on another device's topic closes the session"),
                "the session stayed open",
                "journal.jsonl",
            ));
        }
    }
    case.note(Evidence::journal(seen.join("; "), refs));
    Ok("client id mismatch refused; foreign subscribe and publish closed the session".into())
}

/// Public key bits of the firmware-baked shared key.
fn shared_key_bits() -> Result<Vec<u8>, Fail> {
    let pem = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../firmware/keys/shared-identity-p256.pem");
    let text = std::fs::read_to_string(&pem)?;
    let key = rcgen::KeyPair::from_pem(&text).map_err(|e| format!("{}: {e}", pem.display()))?;
    let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
    let body = der(&spki)
        .map(|d| d.1)
        .ok_or("the shared key has no SPKI")?;
    Ok(spki_facts(body).ok_or("the shared key does not parse")?.0)
}

async fn mt13(case: &mut Case) -> Result<String, Fail> {
    let c = case.boot().await?;
    boards::key_settled(case, DEVICE_ID, c.seq).await?;
    let dut = dut_ip(case);
    let other = case.hub.register_device("dut-2")?;
    let other_bits =
        cert_facts(&hub_fixture::pki::pem_to_der(&other.cert_pem).ok_or("dut-2 cert")?)
            .ok_or("dut-2 cert")?
            .key_bits;
    let shared = shared_key_bits()?;
    case.analysis()?;
    let capture = case.dir.join("capture.pcapng");
    let certs = boards::client_certs_in(case, &capture, dut)?;
    let mut seen = Vec::new();
    let mut bad = Vec::new();
    for (frame, der) in &certs {
        let f = cert_facts(der).ok_or("a client certificate on the wire does not parse")?;
        seen.push((
            *frame,
            f.cn.clone().unwrap_or_default(),
            hex::encode(&f.key_bits[..f.key_bits.len().min(12)]),
        ));
        if f.key_bits == shared || f.key_bits == other_bits {
            bad.push((
                *frame,
                if f.key_bits == shared {
                    "the firmware-baked shared key"
                } else {
                    "dut-2's key"
                },
            ));
        }
    }
    case.note(Evidence::frames(
        format!("client certificates on the wire (frame, CN, key prefix): {seen:?}"),
        certs.iter().map(|c| c.0),
    ));
    if certs.is_empty() {
        return Err(Fail::new(
            "the DUT's client certificates in the decrypted capture",
            "none found",
            "capture.pcapng (tshark with the embedded key log)",
        ));
    }
    if !bad.is_empty() {
        return Err(Fail::new(
            "no key of the DUT shared with another device",
            format!("shared key material presented (frame, whose): {bad:?}"),
            format!(
                "capture.pcapng frames {:?}",
                bad.iter().map(|b| b.0).collect::<Vec<_>>()
            ),
        ));
    }
    let one = format!(
        "{} client certificates, none with the shared key or another device's key",
        certs.len()
    );
    // The two-board form, where the rig has a second board (the single
    // board's evidence stands alone elsewhere, and says so).
    if !case.rig.capabilities().has(Capability::SecondBoard) {
        case.note(Evidence::note(
            "the rig has no second board: the two-board form (a second unit provisioned as another device presents other keys) not run",
        ));
        return Ok(format!("{one}; no second board on this rig"));
    }
    let two = boards::two_boards(case, &other, &certs, &shared).await?;
    Ok(format!("{one}; {two}"))
}

async fn mt14(case: &mut Case) -> Result<String, Fail> {
    first_outcome(case).await?;
    let dut = dut_ip(case);
    let a = case.analysis()?.clone();
    let hellos: Vec<(u64, Option<String>)> = dut_flows(&a, dut)
        .iter()
        .flat_map(|f| {
            f.tls
                .client_hellos
                .iter()
                .map(|c| (c.frames.last.number, c.sni.clone()))
        })
        .collect();
    case.note(Evidence::frames(
        format!(
            "ClientHello SNI: {}",
            hellos
                .iter()
                .map(|(f, sni)| format!("frame {f}: {}", sni.as_deref().unwrap_or("none")))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        hellos.iter().map(|h| h.0),
    ));
    let host = case.net.hub_host.clone();
    let wrong: Vec<&(u64, Option<String>)> = hellos
        .iter()
        .filter(|h| h.1.as_deref() != Some(host.as_str()))
        .collect();
    if hellos.is_empty() || !wrong.is_empty() {
        return Err(Fail::new(
            format!("SNI {host} in every ClientHello"),
            format!(
                "{} ClientHellos, wrong or missing SNI: {}",
                hellos.len(),
                wrong
                    .iter()
                    .map(|(f, sni)| match sni {
                        Some(s) => format!("frame {f}: SNI {s}"),
                        None => format!("frame {f}: no SNI"),
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            "capture.pcapng",
        ));
    }
    Ok(format!("{} ClientHellos, SNI {host}", hellos.len()))
}
