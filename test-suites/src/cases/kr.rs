//! KR — key rotation (EST re-enrolment), and the helpers the KR and OTA
//! cases share: readiness, reported-property waits, console counting, the
//! precise power switch, the capture decrypted with the run's key log.

use hub_fixture::hub::DeviceCredentials;
use hub_fixture::journal::{Event, HandshakeFailure, JournalEntry, Listener, RefuseReason};
use hub_fixture::store::NewMessage;
use sacbench_rig::dut::{ContractPart, EventName};
use sacbench_rig::{in_netns, Capability, Node};
use serde_json::json;

use super::board::{arm_cut, flash_primary, switched_firmware};
use super::support::{decrypted_flows, fail, http_messages, mqtt_payloads, ready, wait_reported};
use super::{case_def, Def};
use crate::case::{Case, CaseDef, DutNeeds, Fail, DEVICE_ID, GUARD};
use crate::events;
use crate::model::Evidence;

#[path = "kr_renewal.rs"]
mod renewal;
/// KR-07 and KR-08 (renewal on the device's clock, subject kept): after KR-06.
pub use renewal::CASES as RENEWAL_CASES;

const NEEDS: &[Capability] = &[Capability::Power, Capability::Capture];
/// KR-04 cuts power at the N-th flash write of the reference firmware.
const NEEDS_BOARD: &[Capability] = &[
    Capability::Power,
    Capability::Capture,
    Capability::BoardProcess,
];

/// Rotation on `credentials/rotate`, the new thumbprint reported.
const ROTATION: DutNeeds = DutNeeds {
    implements: &[
        ContractPart::EstRotation,
        ContractPart::Methods,
        ContractPart::Twin,
    ],
    events: &[],
    native_board: false,
};
/// KR-04 cuts power at each flash write of the rotation: on sacbench's
/// native board, with the device's word on when it crashed or rotated.
const ROTATION_NATIVE: DutNeeds = DutNeeds {
    events: &[EventName::Crashed, EventName::CredentialsRotated],
    native_board: true,
    ..ROTATION
};
/// KR-05: rotation requested through the twin.
const TWIN_ROTATION: DutNeeds = DutNeeds {
    implements: &[ContractPart::EstRotation, ContractPart::Twin],
    ..ROTATION
};

/// The KR (key rotation) cases, in catalogue order.
pub const CASES: &[Def] = &[
    CaseDef { ..case_def!("KR-01", "rotate_new_key", "Rotation re-enrols a new key", "credentials/rotate → EST re-enrolment with a new public key, reconnect with the new certificate, new thumbprint reported", NEEDS, ROTATION, kr01) },
    case_def!("KR-02", "old_cert_revoked", "Old certificate revoked, device keeps working", "after the rotation the old certificate is revoked and refused by the hub, and the device keeps working on the new one", NEEDS, ROTATION, kr02),
    CaseDef { ..case_def!("KR-03", "no_key_in_capture", "No private key material on the wire", "the decrypted capture of the rotation holds no private key material: the CSR carries only the public key", NEEDS, ROTATION, kr03) },
    CaseDef { long: true, ..case_def!("KR-04", "power_loss_in_rotation", "Power loss at each step of the rotation", "a power loss at each step of the rotation (after the method, after the enrolment, at every flash write) leaves the device booting with a working credential", NEEDS_BOARD, ROTATION_NATIVE, kr04) },
    case_def!("KR-05", "twin_rotate_offline", "Twin-requested rotation while offline", "credentials.rotateAfter set in the twin while the device is off is honoured after it reconnects", NEEDS, TWIN_ROTATION, kr05),
    case_def!("KR-06", "refused_reenroll", "Refused re-enrolment keeps the old credential", "when the hub refuses the re-enrolment the device keeps its old credential (connects with it after a power cycle) and reports state failed with a reason", NEEDS, ROTATION, kr06),
];

/// The EST exchanges in the decrypted capture: (frame, body) of each
/// simplereenroll request and response.
struct Est {
    requests: Vec<(u64, Vec<u8>)>,
    responses: Vec<(u64, Vec<u8>)>,
}

fn est_exchanges(case: &mut Case) -> Result<Est, Fail> {
    case.analysis()?;
    let https = case.hub.https_addr().port();
    let flows = decrypted_flows(case, |_, server| server.port() == https)?;
    let mut est = Est {
        requests: Vec::new(),
        responses: Vec::new(),
    };
    for f in &flows {
        // HTTP/1.1 without pipelining: the n-th response answers the n-th request.
        let requests = http_messages(f, true);
        let responses = http_messages(f, false);
        for (i, req) in requests.iter().enumerate() {
            if !(req.start_line.starts_with("POST ") && req.start_line.contains("simplereenroll")) {
                continue;
            }
            est.requests.push((req.frame, req.body.clone()));
            if let Some(resp) = responses.get(i) {
                est.responses.push((resp.frame, resp.body.clone()));
            }
        }
    }
    Ok(est)
}

/// Standard base64, whitespace ignored.
fn base64(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for &c in text {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b' ' | b'\r' | b'\n' | b'\t' => continue,
            _ => return None,
        };
        acc = acc << 6 | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// Offsets of private key structures in DER: SEC1 ECPrivateKey (INTEGER 1,
/// OCTET STRING of a P-256/384/521 scalar — also inside every PKCS#8 EC key)
/// and PKCS#8 PrivateKeyInfo (INTEGER 0, AlgorithmIdentifier, OCTET STRING).
fn private_key_structures(der: &[u8]) -> Vec<usize> {
    (0..der.len())
        .filter(|&i| {
            let w = &der[i..];
            let sec1 =
                w.len() > 5 && w[..4] == [0x02, 0x01, 0x01, 0x04] && [32, 48, 66].contains(&w[4]);
            let pkcs8 = w.len() > 6
                && w[..4] == [0x02, 0x01, 0x00, 0x30]
                && w[4] < 0x80
                && w[5] == 0x06
                && w.get(5 + usize::from(w[4])) == Some(&0x04);
            sec1 || pkcs8
        })
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

fn cert_der(pem: &str) -> Result<Vec<u8>, Fail> {
    Ok(hub_fixture::pki::pem_to_der(pem)
        .ok_or("the provisioned certificate is not PEM")?
        .to_vec())
}

/// `credentials/rotate` on a ready device; returns the mark before the call.
async fn rotate(case: &mut Case) -> Result<u64, Fail> {
    let mark = case.hub.journal().len();
    let r = case
        .hub
        .invoke_method(DEVICE_ID, "credentials/rotate", &json!({}), GUARD)
        .await?;
    if r.status != 202 {
        return Err(fail(
            "credentials/rotate answered 202",
            format!("status {} {}", r.status, r.payload),
            "journal.jsonl (MethodResult) and device.log",
        ));
    }
    Ok(mark)
}

/// The Enrolled entry after `mark`: (entry, old serial, new serial, thumbprint).
async fn enrolled(case: &Case, mark: u64) -> Result<(JournalEntry, String, String, String), Fail> {
    let e = case
        .journal(
            mark,
            "an EST re-enrolment (Enrolled) after credentials/rotate",
            |e| matches!(e.event, Event::Enrolled { .. }),
        )
        .await?;
    let Event::Enrolled {
        old_serial,
        new_serial,
        thumbprint,
    } = e.event.clone()
    else {
        unreachable!("matched above")
    };
    Ok((e, old_serial, new_serial, thumbprint))
}

fn connected_serial(e: &JournalEntry) -> String {
    match &e.event {
        Event::Connected { serial, .. } => serial.clone(),
        _ => String::new(),
    }
}

async fn next_connect(case: &Case, after: u64, what: &str) -> Result<JournalEntry, Fail> {
    case.journal(after, what, |e| matches!(e.event, Event::Connected { .. }))
        .await
}

/// A full rotation on a ready device: Enrolled, a session with the new
/// certificate, the new thumbprint reported as rotated.
struct Rotated {
    mark: u64,
    enrolled: JournalEntry,
    new_serial: String,
    thumbprint: String,
    reconnect: JournalEntry,
}

async fn full_rotation(case: &mut Case, old: &DeviceCredentials) -> Result<Rotated, Fail> {
    let mark = rotate(case).await?;
    let (enrolled, old_serial, new_serial, thumbprint) = enrolled(case, mark).await?;
    if old_serial != old.serial {
        return Err(fail(
            "the re-enrolment authenticated with the provisioned certificate",
            format!("it used serial {old_serial}, provisioned {}", old.serial),
            format!("journal.jsonl entry {}", enrolled.seq),
        ));
    }
    let reconnect = next_connect(
        case,
        enrolled.seq,
        "the device to reconnect after the enrolment",
    )
    .await?;
    Ok(Rotated {
        mark,
        enrolled,
        new_serial,
        thumbprint,
        reconnect,
    })
}

// ---- cases ----

async fn kr01(case: &mut Case) -> Result<String, Fail> {
    let first = case.boot().await?;
    ready(case, first.seq).await?;
    let old = case.credentials().clone();
    let r = full_rotation(case, &old).await?;
    let serial = connected_serial(&r.reconnect);
    case.note(Evidence::journal(
        format!(
            "Enrolled {} → {}; next session with serial {serial}",
            old.serial, r.new_serial
        ),
        [r.enrolled.seq, r.reconnect.seq],
    ));
    if serial != r.new_serial {
        return Err(fail(
            "the device reconnects with the new certificate",
            format!(
                "it reconnected with serial {serial}, the new one is {}",
                r.new_serial
            ),
            format!(
                "journal.jsonl entries {} and {}",
                r.enrolled.seq, r.reconnect.seq
            ),
        ));
    }
    let tp = r.thumbprint.clone();
    let (rep, seq) = wait_reported(
        case,
        r.mark,
        "the new thumbprint reported with state rotated",
        |v| v["credentials"]["thumbprint"] == json!(tp) && v["credentials"]["state"] == "rotated",
    )
    .await?;
    case.note(Evidence::journal(
        format!("reported credentials {}", rep["credentials"]),
        [seq],
    ));

    // What crossed the wire: the CSR's key must differ from the old certificate's.
    let est = est_exchanges(case)?;
    let Some((frame, body)) = est.requests.last().cloned() else {
        return Err(fail(
            "the EST simplereenroll request in the decrypted capture",
            "no decrypted POST /.well-known/est/simplereenroll",
            "capture.pcapng (decrypted with its key log)",
        ));
    };
    let csr = hub_fixture::est::parse_csr(&body).map_err(|e| {
        fail(
            "a PKCS#10 CSR in the EST request",
            e.to_string(),
            format!("capture.pcapng frame {frame}"),
        )
    })?;
    let old_der = cert_der(&old.cert_pem)?;
    let new_cert = est
        .responses
        .iter()
        .filter_map(|(f, b)| Some((*f, hub_fixture::est::parse_certs_only(b).ok()?)))
        .find_map(|(f, certs)| {
            certs
                .into_iter()
                .find(|c| hub_fixture::pki::thumbprint(c) == r.thumbprint)
                .map(|c| (f, c))
        });
    let mut frames = vec![frame];
    frames.extend(new_cert.as_ref().map(|(f, _)| *f));
    case.note(Evidence::frames(
        format!(
            "EST request (CSR for {}) and the issued certificate",
            csr.subject
        ),
        frames.clone(),
    ));
    if contains(&old_der, &csr.spki_der) {
        return Err(fail(
            "the CSR carries a new public key",
            "the CSR's public key is the provisioned certificate's (same key re-certified)",
            format!("capture.pcapng frame {frame} (the CSR) vs the provisioned certificate"),
        ));
    }
    match &new_cert {
        Some((_, der)) if contains(der, &csr.spki_der) => {}
        _ => {
            return Err(fail(
                "the issued certificate (thumbprint as journalled) certifies the CSR's key",
                format!("no such certificate among the EST responses (frames {frames:?})"),
                "capture.pcapng, the EST response",
            ))
        }
    }
    Ok(format!(
        "re-enrolled with a new key (serial {} → {}), reconnected with it, thumbprint {} reported",
        old.serial, r.new_serial, r.thumbprint
    ))
}

/// A client presenting `creds` from the gateway's side; `Ok(true)` when the
/// hub accepted it (CONNACK success).
async fn old_cert_accepted(case: &Case, creds: DeviceCredentials) -> Result<bool, Fail> {
    let addr = case.hub.mqtt_addr();
    let handle = tokio::runtime::Handle::current();
    let netns = case.rig.netns(Node::Gw);
    // The socket is made on a thread inside the gateway's namespace.
    let result = tokio::task::spawn_blocking(move || {
        in_netns(netns, move || {
            handle.block_on(hub_fixture::client::DeviceClient::connect(
                addr,
                &creds,
                Default::default(),
            ))
        })
    })
    .await
    .map_err(|e| e.to_string())??;
    // The CONNACK code's type is the hub's MQTT library's; its name is enough.
    Ok(matches!(result, Ok((_, ack)) if format!("{:?}", ack.code) == "Success"))
}

async fn kr02(case: &mut Case) -> Result<String, Fail> {
    let first = case.boot().await?;
    ready(case, first.seq).await?;
    let old = case.credentials().clone();
    let r = full_rotation(case, &old).await?;
    let serial = connected_serial(&r.reconnect);
    case.note(Evidence::journal(
        format!("after the enrolment the device connected with serial {serial}"),
        [r.enrolled.seq, r.reconnect.seq],
    ));
    if serial != r.new_serial {
        return Err(fail(
            "after the rotation the device uses the new certificate (the old one is then revoked)",
            format!(
                "it reconnected with serial {serial} (old {}, new {})",
                old.serial, r.new_serial
            ),
            format!("journal.jsonl entry {}", r.reconnect.seq),
        ));
    }
    let old_serial = old.serial.clone();
    let revoked = case
        .journal(
            r.mark,
            "the old certificate revoked once the new one was seen",
            |e| matches!(&e.event, Event::Revoked { serial } if *serial == old_serial),
        )
        .await?;
    // The old certificate presented by someone else is refused.
    let mark = case.hub.journal().len();
    let accepted = old_cert_accepted(case, old.clone()).await?;
    let old_serial = old.serial.clone();
    let refusal = case
        .journal(
            mark,
            "the hub to refuse the old certificate (handshake or CONNECT refused as revoked)",
            |e| {
                matches!(
                    &e.event,
                    Event::HandshakeFailed {
                        reason: HandshakeFailure::CertificateRevoked,
                        ..
                    } | Event::ConnectRefused {
                        reason: RefuseReason::CertificateRevoked,
                        ..
                    }
                )
            },
        )
        .await;
    let old_sessions: Vec<u64> = case
        .hub
        .journal()
        .since(mark)
        .iter()
        .filter(|e| matches!(&e.event, Event::Connected { serial, .. } if *serial == old_serial))
        .map(|e| e.seq)
        .collect();
    if accepted || !old_sessions.is_empty() || refusal.is_err() {
        return Err(fail(
            "a client presenting the old certificate is refused as revoked",
            format!(
                "accepted: {accepted}, sessions with it: {old_sessions:?}, refusal journalled: {}",
                refusal.is_ok()
            ),
            format!("journal.jsonl after entry {mark}"),
        ));
    }
    let refusal = refusal?;
    case.note(Evidence::journal(
        format!(
            "old serial {} revoked; a client presenting it refused ({})",
            old.serial,
            refusal.event.kind()
        ),
        [revoked.seq, refusal.seq],
    ));
    // The device keeps working: a command is applied on the new credential.
    let mark = case.hub.journal().len();
    let m = case.hub.send_c2d(
        DEVICE_ID,
        NewMessage {
            message_id: None,
            payload: b"kr02-after-rotation".to_vec(),
            properties: vec![],
            ttl_ms: None,
        },
    )?;
    let mid = m.message_id.clone();
    let applied = case
        .journal(mark, "the device to apply a command after the rotation (telemetry kind=command-applied)", |e| {
            matches!(&e.event, Event::Telemetry { payload, properties, .. }
                if properties.iter().any(|(k, v)| k == "kind" && v == "command-applied") && payload.contains(&mid))
        })
        .await?;
    case.note(Evidence::journal(
        "command applied after the rotation",
        [applied.seq],
    ));
    Ok(format!(
        "old certificate {} revoked and refused; the device applied a command on {}",
        old.serial, r.new_serial
    ))
}

async fn kr03(case: &mut Case) -> Result<String, Fail> {
    let first = case.boot().await?;
    ready(case, first.seq).await?;
    let old = case.credentials().clone();
    let r = full_rotation(case, &old).await?;
    ready(case, r.reconnect.seq).await?;
    let est = est_exchanges(case)?;
    if est.requests.is_empty() {
        return Err(fail(
            "the EST request decrypted from the capture, to inspect it",
            "no decrypted POST /.well-known/est/simplereenroll",
            "capture.pcapng (decrypted with its key log)",
        ));
    }
    let mut leaks = Vec::new();
    for (frame, body) in &est.requests {
        let text = String::from_utf8_lossy(body);
        let der = base64(body).unwrap_or_default();
        let csr_ok = hub_fixture::est::parse_csr(body).is_ok();
        let found = private_key_structures(&der);
        if !csr_ok || !found.is_empty() || text.contains("PRIVATE KEY") {
            leaks.push(format!(
                "frame {frame}: CSR parses: {csr_ok}, private key structures at DER offsets {found:?}"
            ));
        }
    }
    // Every other decrypted HTTP body and MQTT payload too.
    let mut other = Vec::new();
    let mut payloads = Vec::new();
    for f in decrypted_flows(case, |_, _| true)? {
        for to_server in [true, false] {
            payloads.extend(
                http_messages(&f, to_server)
                    .into_iter()
                    .map(|m| (m.frame, m.body)),
            );
            payloads.extend(mqtt_payloads(&f, to_server));
        }
    }
    for (frame, bytes) in payloads {
        let der = base64(&bytes).unwrap_or_default();
        if contains(&bytes, b"PRIVATE KEY")
            || !private_key_structures(&bytes).is_empty()
            || !private_key_structures(&der).is_empty()
        {
            other.push(frame);
        }
    }
    let frames: Vec<u64> = est.requests.iter().map(|(f, _)| *f).collect();
    case.note(Evidence::frames(
        format!(
            "{} EST request(s) inspected (CSR DER searched for SEC1/PKCS#8 private keys)",
            frames.len()
        ),
        frames.clone(),
    ));
    if !leaks.is_empty() || !other.is_empty() {
        case.note(Evidence::frames(
            format!("private key material: {leaks:?}"),
            other.iter().copied().chain(frames),
        ));
        return Err(fail(
            "no private key material in the decrypted capture; the CSR carries only the public key",
            format!("{leaks:?}; other frames with key material: {other:?}"),
            "capture.pcapng, the EST request body (base64 DER CSR)",
        ));
    }
    Ok(format!(
        "{} CSR(s) hold only the public key; no private key structure in any decrypted HTTP body or MQTT payload",
        est.requests.len()
    ))
}

/// After a power loss: the device boots and the hub accepts its credential.
/// A refused handshake or CONNECT fails at once, and so does the device
/// finding no usable credential of its own (it then never tries the hub).
async fn comes_back(case: &Case, after: u64, step: &str) -> Result<JournalEntry, Fail> {
    let expected = "the device boots with a working credential (the old or the new one)";
    // Never seen in a passing run, so any such event since the case began
    // counts; a DUT that declares no such event is judged by the hub alone.
    let declared = case.dut.event(EventName::CredentialUnusable).is_some();
    let unusable = async {
        if declared {
            case.event_after(EventName::CredentialUnusable, 0, GUARD, events::any)
                .await
        } else {
            std::future::pending().await
        }
    };
    let what = format!("the device to connect again after a power loss {step}");
    let e = tokio::select! {
        e = case.journal(after, &what, |e| {
            // A connection cut by the power loss itself (reset, timeout) is no refusal.
            matches!(e.event, Event::Connected { .. } | Event::ConnectRefused { .. })
                || matches!(&e.event, Event::HandshakeFailed { listener: Listener::Mqtt, reason, .. }
                    if !matches!(reason, HandshakeFailure::ConnectionClosed | HandshakeFailure::Timeout))
        }) => e?,
        Ok(Some(line)) = unusable => {
            return Err(fail(expected, format!("after the power loss {step}: {line}"), "device.log"));
        }
    };
    if !matches!(e.event, Event::Connected { .. }) {
        return Err(fail(
            expected,
            format!(
                "after the power loss {step} the hub refused it: {}",
                serde_json::to_string(&e.event).unwrap_or_default()
            ),
            format!("journal.jsonl entry {}", e.seq),
        ));
    }
    Ok(e)
}

async fn kr04(case: &mut Case) -> Result<String, Fail> {
    // The running firmware behind the precise power switch (inactive unless armed).
    let image = switched_firmware(case, 1, 0, 1)?;
    flash_primary(case, "v1-switched.img", &image).await?;
    let first = case.boot().await?;
    ready(case, first.seq).await?;
    let mut seen = Vec::new();

    // Coarse cuts with the rig's power switch: right after the method call,
    // and right after the hub issued the new certificate.
    for after_enrolment in [false, true] {
        let mark = rotate(case).await?;
        let step = if after_enrolment {
            let (enr, _, _, _) = enrolled(case, mark).await?;
            format!("right after Enrolled (entry {})", enr.seq)
        } else {
            format!("right after credentials/rotate (entry {})", mark + 1)
        };
        case.rig.power(false).await?;
        let at = case.hub.journal().len();
        case.rig.power(true).await?;
        let e = comes_back(case, at, &step).await?;
        let serial = connected_serial(&e);
        case.note(Evidence::journal(
            format!("power off {step}; back with serial {serial}"),
            [e.seq],
        ));
        seen.push(format!("{step}: serial {serial}"));
        ready(case, e.seq).await?;
    }

    // Precise cuts: at the 1st, 2nd, … flash write after power-on (the
    // rotation's are the first ones, nothing else writes before it), until a
    // rotation completes before the cut.
    for n in 1..=24u64 {
        case.rig.power(false).await?;
        arm_cut(case, "cut-app", n)?;
        let at = case.hub.journal().len();
        case.rig.power(true).await?;
        let e = comes_back(case, at, &format!("(cut armed at write {n})")).await?;
        ready(case, e.seq).await?;
        let crashes = case.count_events(EventName::Crashed, events::any).await?;
        let rotations = case
            .count_events(EventName::CredentialsRotated, events::any)
            .await?;
        let mark = case.hub.journal().len();
        // The cut may strike before the device answers the method (it
        // answers after handling it), so the answer is not awaited first.
        let hub = case.hub.clone();
        let call = tokio::spawn(async move {
            hub.invoke_method(DEVICE_ID, "credentials/rotate", &json!({}), GUARD)
                .await
        });
        let (crashed, line) = tokio::select! {
            l = case.event_after(EventName::Crashed, crashes, GUARD, events::any) => (true, l?),
            l = case.event_after(EventName::CredentialsRotated, rotations, GUARD, events::any) => (false, l?),
        };
        let Some(line) = line else {
            call.abort();
            return Err(fail(
                "the rotation to end (rotated) or the power cut to strike",
                "neither within the guard",
                "device.log",
            ));
        };
        if !crashed {
            let status = call.await.map_err(|e| e.to_string())??.status;
            if status != 202 {
                return Err(fail(
                    "credentials/rotate answered 202",
                    format!("status {status}"),
                    "journal.jsonl (MethodResult)",
                ));
            }
            seen.push(format!("cut at write {n}: after the rotation"));
            case.note(Evidence::log(format!("cut armed at write {n} never struck during the rotation: every write of it was covered")));
            return Ok(format!("{}; precise cuts at writes 1..{} of the rotation: the device always came back with a working credential", seen.join("; "), n - 1));
        }
        call.abort();
        let e = comes_back(case, mark, &format!("at flash write {n} of the rotation")).await?;
        seen.push(format!("write {n}: serial {}", connected_serial(&e)));
        case.note(Evidence::journal(
            format!(
                "power cut at flash write {n} ({line}); back with serial {}",
                connected_serial(&e)
            ),
            [e.seq],
        ));
        ready(case, e.seq).await?;
    }
    Err(fail(
        "a rotation completes within 24 flash writes",
        format!("it did not: {seen:?}"),
        "device.log",
    ))
}

async fn kr05(case: &mut Case) -> Result<String, Fail> {
    let first = case.boot().await?;
    ready(case, first.seq).await?;
    let old = case.credentials().clone();
    case.rig.power(false).await?;
    // Due now: later than the credential's storage at the first boot.
    let at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| e.to_string())?;
    case.hub
        .patch_desired(DEVICE_ID, &json!({ "credentials": { "rotateAfter": at } }))?;
    let mark = case.hub.journal().len();
    case.note(Evidence::note(format!(
        "desired credentials.rotateAfter = {at} patched while the device was off"
    )));
    case.rig.power(true).await?;
    let back = next_connect(case, mark, "the device to reconnect after power-on").await?;
    let (enr, _, new_serial, thumbprint) = enrolled(case, mark).await.map_err(|_| {
        fail(
            "the device re-enrols after reconnecting (desired rotateAfter is past)",
            "no Enrolled entry after the reconnect",
            format!("journal.jsonl after entry {}", back.seq),
        )
    })?;
    let again = next_connect(
        case,
        enr.seq,
        "the device to reconnect with the new certificate",
    )
    .await?;
    let (rep, seq) = wait_reported(
        case,
        mark,
        "the new thumbprint reported with state rotated",
        |v| {
            v["credentials"]["thumbprint"] == json!(thumbprint)
                && v["credentials"]["state"] == "rotated"
        },
    )
    .await?;
    case.note(Evidence::journal(
        format!(
            "back with {}, Enrolled {new_serial}, reconnected with {}, reported {}",
            connected_serial(&back),
            connected_serial(&again),
            rep["credentials"]
        ),
        [back.seq, enr.seq, again.seq, seq],
    ));
    if connected_serial(&again) != new_serial {
        return Err(fail(
            "reconnect with the new certificate",
            connected_serial(&again),
            format!("journal.jsonl entry {}", again.seq),
        ));
    }
    Ok(format!(
        "rotateAfter set offline was honoured after reconnect: {} → {new_serial}",
        old.serial
    ))
}

async fn kr06(case: &mut Case) -> Result<String, Fail> {
    let first = case.boot().await?;
    ready(case, first.seq).await?;
    let old = case.credentials().clone();
    case.hub.set_refuse_enrollment(DEVICE_ID, true);
    let mark = rotate(case).await?;
    let refused = case
        .journal(
            mark,
            "the hub to refuse the re-enrolment (EnrollRefused)",
            |e| matches!(e.event, Event::EnrollRefused { .. }),
        )
        .await?;
    let (rep, seq) = wait_reported(
        case,
        refused.seq,
        "credentials state failed reported",
        |v| v["credentials"]["state"] == "failed",
    )
    .await?;
    let c = &rep["credentials"];
    case.note(Evidence::journal(
        format!("EnrollRefused, then reported credentials {c}"),
        [refused.seq, seq],
    ));
    let reason = c["reason"].as_str().unwrap_or("");
    if c["thumbprint"] != json!(old.thumbprint) || reason.is_empty() {
        return Err(fail(
            "state failed with a reason, the old credential's thumbprint still reported",
            format!(
                "reported credentials {c} (old thumbprint {})",
                old.thumbprint
            ),
            format!("journal.jsonl entry {seq}"),
        ));
    }
    // Still its old credential after a power cycle.
    let at = case.hub.journal().len();
    case.rig.power_cycle().await?;
    let e = comes_back(case, at, "after the refused re-enrolment").await?;
    let serial = connected_serial(&e);
    case.note(Evidence::journal(
        format!("after a power cycle: connected with serial {serial}"),
        [e.seq],
    ));
    if serial != old.serial {
        return Err(fail(
            "the device connects with its old certificate",
            format!("serial {serial}, old {}", old.serial),
            format!("journal.jsonl entry {}", e.seq),
        ));
    }
    Ok(format!(
        "refused re-enrolment reported as failed ({reason}); old certificate {} kept and used",
        old.serial
    ))
}
