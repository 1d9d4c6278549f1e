//! KR-07 and KR-08: renewal before expiry on the device's own (time-scaled)
//! clock, and a rotation that keeps the certificate's subject and SAN.
//!
//! KR-07 runs the device's clock and the case hub's in step, 60× fast
//! ([`crate::case::TIME_SCALE`]), the hub re-enrolling device certificates
//! valid for four device-minutes: both sides judge validity by the same
//! time, so the hub journal's virtual time (`at_ms`) is the device's time.

use std::time::Duration;

use hub_fixture::clock::Clock;
use hub_fixture::journal::{Event, JournalEntry, Listener};
use sacbench_rig::dut::ContractPart;
use sacbench_rig::Capability;

use super::{
    case_def, cert_der, connected_serial, contains, enrolled, est_exchanges, fail, next_connect,
    ready, rotate, Def,
};
use crate::case::{Case, CaseDef, ClockNeed, DutNeeds, Fail, DEVICE_ID};
use crate::model::Evidence;

const NEEDS: &[Capability] = &[Capability::Power, Capability::Capture];
/// Validity of the certificates the hub re-enrols in KR-07, device seconds:
/// 80 % is reached 3.2 real seconds after issue at 60×; the 70–90 % window
/// is then ±400 ms of real time around it, for a key generation and a TLS
/// handshake on a loaded machine (at 120 s a parallel run already took 5 %).
const KR07_CERT_LIFETIME_S: u64 = 240;
/// KR-07's window for the start of the renewal, % of the validity.
const KR07_WINDOW: (f64, f64) = (70.0, 90.0);

/// KR-07: the device renews by itself; a rotation on request first gives it
/// a short-lived certificate.
const RENEWAL: DutNeeds = DutNeeds {
    implements: &[ContractPart::EstRotation, ContractPart::Methods],
    events: &[],
    native_board: false,
};
/// KR-08: rotation on `credentials/rotate`.
const ROTATION: DutNeeds = DutNeeds {
    implements: &[ContractPart::EstRotation, ContractPart::Methods],
    events: &[],
    native_board: false,
};

/// The KR renewal cases, in catalogue order (after KR-01…06).
pub const CASES: &[Def] = &[
    CaseDef {
        clock: ClockNeed::Scaled {
            cert_lifetime_s: KR07_CERT_LIFETIME_S,
        },
        ..case_def!("KR-07", "renewal_before_expiry", "Renewal before expiry, on the device's clock", "the device re-enrols (EST, new key) by itself at about 80 % of its certificate's validity (a short-lived one a rotation on request gave it; the renewal starts between 70 % and 90 %, on the time-scaled clock) and keeps its session working with the renewed certificate", NEEDS, RENEWAL, kr07)
    },
    case_def!("KR-08", "rotation_keeps_subject", "Rotation keeps subject and SAN", "a rotation's CSR and the certificate issued for it carry the subject and subjectAltName of the certificate being renewed (RFC 7030 §4.2.2)", NEEDS, ROTATION, kr08),
];

/// Where `at_ms` falls in `[from, to]`, in %.
fn percent(at_ms: i64, from: i64, to: i64) -> f64 {
    (at_ms - from) as f64 * 100.0 / (to - from).max(1) as f64
}

/// The re-enrolment's start: the last TLS session on the hub's HTTPS
/// listener before `enrolled` (the EST request rides on it).
fn est_session(case: &Case, mark: u64, enrolled: &JournalEntry) -> Option<JournalEntry> {
    case.hub
        .journal()
        .since(mark)
        .into_iter()
        .rev()
        .filter(|e| e.seq < enrolled.seq)
        .find(|e| {
            matches!(
                e.event,
                Event::TlsAccepted {
                    listener: Listener::Https,
                    ..
                }
            )
        })
}

/// The hub's record of certificate `serial`: (notBefore, notAfter) as the
/// certificate encodes them (whole seconds), Unix ms.
fn validity_of(case: &Case, serial: &str) -> Result<(i64, i64), Fail> {
    let r = case
        .hub
        .certificates(DEVICE_ID)?
        .into_iter()
        .find(|c| c.serial == *serial)
        .ok_or_else(|| Fail::bench(format!("the hub has no record of serial {serial}")))?;
    let floor = |ms: i64| ms - ms.rem_euclid(1000);
    Ok((floor(r.not_before_ms), floor(r.not_after_ms)))
}

async fn kr07(case: &mut Case) -> Result<String, Fail> {
    let scale = case
        .time_scale
        .ok_or_else(|| Fail::bench("KR-07 runs only on a time-scaled clock"))?;
    let first = case.boot().await?;
    case.session_active(first.seq).await?;
    // A rotation on request gives the device a short-lived certificate (the
    // case's hub re-enrols for KR07_CERT_LIFETIME_S device seconds), issued
    // while it runs: how long the board took to boot does not eat into it.
    let provisioned = case.credentials().clone();
    let mark = rotate(case).await?;
    let (asked, _, short, _) = enrolled(case, mark).await?;
    let (from, to) = validity_of(case, &short)?;
    let with_short = next_connect(
        case,
        asked.seq,
        "the device to reconnect with its short-lived certificate",
    )
    .await?;
    case.note(Evidence::journal(
        format!(
            "on request: re-enrolled {} → {short}, valid {} s of device time (clock {}× fast); reconnected with serial {}",
            provisioned.serial,
            (to - from) / 1000,
            scale.rate,
            connected_serial(&with_short)
        ),
        [asked.seq, with_short.seq],
    ));
    // Wait for the renewal, but no longer than until the certificate has
    // expired on the (scaled) clock and a tenth of its life more: past
    // that, no renewal came before expiry.
    let give_up = to + (to - from) / 10;
    let left_ms = (give_up - case.hub.clock().now_ms()).max(0) as u64;
    let deadline = scale.real(Duration::from_millis(left_ms));
    let wait = case.journal(
        with_short.seq,
        "an EST re-enrolment (Enrolled) before the certificate expires",
        |e| matches!(e.event, Event::Enrolled { .. }),
    );
    let renewed = tokio::select! {
        e = wait => e?,
        () = tokio::time::sleep(deadline) => {
            let refusals: Vec<u64> = case.hub.journal().since(with_short.seq).iter()
                .filter(|e| matches!(e.event, Event::EnrollRefused { .. } | Event::HandshakeFailed { .. }))
                .map(|e| e.seq).collect();
            return Err(fail(
                format!("the device re-enrols by itself at about 80 % of its certificate's validity (between {} % and {} %)", KR07_WINDOW.0, KR07_WINDOW.1),
                format!("no re-enrolment by {:.0} % of the validity of {short} (it expired on the device's clock without renewal); refused handshakes or enrolments since: {refusals:?}", percent(give_up, from, to)),
                format!("journal.jsonl after entry {}", with_short.seq),
            ));
        }
    };
    let (e, old_serial, new_serial, _) = enrolled(case, renewed.seq - 1).await?;
    let start = est_session(case, with_short.seq, &e).unwrap_or_else(|| e.clone());
    let at = percent(start.at_ms, from, to);
    case.note(Evidence::journal(
        format!(
            "renewal began at {at:.1} % of the validity (EST session {} ms of device time after notBefore), Enrolled {old_serial} → {new_serial}",
            start.at_ms - from
        ),
        [start.seq, e.seq],
    ));
    if old_serial != short || !(KR07_WINDOW.0..=KR07_WINDOW.1).contains(&at) {
        return Err(fail(
            format!(
                "the renewal, authenticated with the certificate being renewed ({short}), starts between {} % and {} % of its validity",
                KR07_WINDOW.0, KR07_WINDOW.1
            ),
            format!("it started at {at:.1} % with serial {old_serial}"),
            format!("journal.jsonl entries {} and {}", start.seq, e.seq),
        ));
    }
    let again = next_connect(
        case,
        e.seq,
        "the device to reconnect with the renewed certificate",
    )
    .await?;
    let serial = connected_serial(&again);
    let working = case.session_active(again.seq).await?;
    let (_, new_to) = validity_of(case, &new_serial)?;
    case.note(Evidence::journal(
        format!(
            "reconnected with serial {serial}; session working ({})",
            working.event.kind()
        ),
        [again.seq, working.seq],
    ));
    if serial != new_serial || new_to <= to {
        return Err(fail(
            "the device keeps its session working with the renewed certificate (valid past the old one)",
            format!("it reconnected with serial {serial}, the renewed one is {new_serial}"),
            format!("journal.jsonl entries {} and {}", e.seq, again.seq),
        ));
    }
    // A renewal is a new key: its CSR's key is neither the provisioned
    // certificate's nor the short-lived one's (the first CSR's).
    let old_der = cert_der(&provisioned.cert_pem)?;
    let est = est_exchanges(case)?;
    let csrs: Vec<(u64, hub_fixture::est::ReenrollRequest)> = est
        .requests
        .iter()
        .filter_map(|(f, b)| Some((*f, hub_fixture::est::parse_csr(b).ok()?)))
        .collect();
    let frames: Vec<u64> = csrs.iter().map(|(f, _)| *f).collect();
    let renewal_key_reused = match csrs.as_slice() {
        [(_, first), (_, renewal), ..] => {
            renewal.spki_der == first.spki_der || contains(&old_der, &renewal.spki_der)
        }
        _ => true,
    };
    case.note(Evidence::frames(
        format!(
            "{} CSR(s): the rotation on request, then the renewal",
            csrs.len()
        ),
        frames.clone(),
    ));
    if renewal_key_reused {
        return Err(fail(
            "the renewal's CSR (decrypted from the capture) carries a new public key",
            format!(
                "CSRs at frames {frames:?}: the renewal's key is an earlier one, or it is missing"
            ),
            "capture.pcapng (decrypted with its key log)",
        ));
    }
    Ok(format!(
        "renewed by itself with a new key at {at:.1} % of a {} s validity on its {}× clock ({short} → {new_serial}) and kept working on the renewed certificate",
        (to - from) / 1000,
        scale.rate,
    ))
}

/// Subject (RFC 4514) and subjectAltName entries of a certificate.
fn cert_names(der: &[u8]) -> Result<(String, Vec<String>), String> {
    let (_, c) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let san = c
        .subject_alternative_name()
        .map_err(|e| e.to_string())?
        .map(|s| {
            s.value
                .general_names
                .iter()
                .map(|g| g.to_string())
                .collect()
        })
        .unwrap_or_default();
    Ok((c.subject().to_string(), san))
}

/// Subject (RFC 4514) and subjectAltName entries a CSR asks for.
fn csr_names(body: &[u8]) -> Result<(String, Vec<String>), String> {
    let der = super::base64(body).ok_or("the EST body is not base64")?;
    use x509_parser::prelude::FromDer;
    let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
        .map_err(|e| e.to_string())?;
    let mut san = Vec::new();
    for ext in csr.requested_extensions().into_iter().flatten() {
        if let x509_parser::extensions::ParsedExtension::SubjectAlternativeName(s) = ext {
            san.extend(s.general_names.iter().map(|g| g.to_string()));
        }
    }
    Ok((csr.certification_request_info.subject.to_string(), san))
}

async fn kr08(case: &mut Case) -> Result<String, Fail> {
    let first = case.boot().await?;
    ready(case, first.seq).await?;
    let old = case.credentials().clone();
    let old_der = cert_der(&old.cert_pem)?;
    let (subject, san) = cert_names(&old_der).map_err(Fail::bench)?;
    let mark = rotate(case).await?;
    let outcome = case
        .journal(
            mark,
            "the re-enrolment to be issued (Enrolled) or refused (EnrollRefused)",
            |e| {
                matches!(
                    e.event,
                    Event::Enrolled { .. } | Event::EnrollRefused { .. }
                )
            },
        )
        .await?;
    if matches!(outcome.event, Event::Enrolled { .. }) {
        // The EST response is on the wire once the device uses it.
        next_connect(
            case,
            outcome.seq,
            "the device to reconnect after the enrolment",
        )
        .await?;
    }
    // What the device asked for, from the decrypted capture.
    let est = est_exchanges(case)?;
    let mut asked = Vec::new();
    for (frame, body) in &est.requests {
        let (s, a) = csr_names(body).map_err(|e| {
            fail(
                "a PKCS#10 CSR in the EST request",
                e,
                format!("capture.pcapng frame {frame}"),
            )
        })?;
        asked.push((*frame, s, a));
    }
    let frames: Vec<u64> = asked.iter().map(|(f, _, _)| *f).collect();
    case.note(Evidence::frames(
        format!(
            "certificate being renewed: subject {subject}, SAN {san:?}; CSR(s): {:?}",
            asked
                .iter()
                .map(|(_, s, a)| format!("subject {s}, SAN {a:?}"))
                .collect::<Vec<_>>()
        ),
        frames.clone(),
    ));
    let changed: Vec<String> = asked
        .iter()
        .filter(|(_, s, a)| *s != subject || *a != san)
        .map(|(f, s, a)| format!("frame {f}: subject {s}, SAN {a:?}"))
        .collect();
    if let Event::EnrollRefused { reason } = &outcome.event {
        case.note(Evidence::journal(
            format!("the hub refused the re-enrolment: {reason}"),
            [outcome.seq],
        ));
        return Err(fail(
            format!("the rotation keeps the subject ({subject}) and SAN ({san:?})"),
            format!("the rotation failed: the hub refused the CSR ({reason}); CSRs with another name: {changed:?}"),
            format!("journal.jsonl entry {}, capture.pcapng frames {frames:?}", outcome.seq),
        ));
    }
    if asked.is_empty() {
        return Err(fail(
            "the EST request decrypted from the capture, to read its CSR",
            "no decrypted POST /.well-known/est/simplereenroll",
            "capture.pcapng (decrypted with its key log)",
        ));
    }
    let Event::Enrolled {
        thumbprint,
        new_serial,
        ..
    } = &outcome.event
    else {
        unreachable!("matched above")
    };
    let issued = est
        .responses
        .iter()
        .filter_map(|(f, b)| Some((*f, hub_fixture::est::parse_certs_only(b).ok()?)))
        .find_map(|(f, certs)| {
            certs
                .into_iter()
                .find(|c| hub_fixture::pki::thumbprint(c) == *thumbprint)
                .map(|c| (f, c))
        });
    let Some((frame, der)) = issued else {
        return Err(fail(
            "the issued certificate (thumbprint as journalled) in the EST response",
            format!("none among {} response(s)", est.responses.len()),
            "capture.pcapng, the EST response",
        ));
    };
    let (new_subject, new_san) = cert_names(&der).map_err(|e| {
        fail(
            "an X.509 certificate in the EST response",
            e,
            format!("capture.pcapng frame {frame}"),
        )
    })?;
    case.note(Evidence::frames(
        format!("issued {new_serial}: subject {new_subject}, SAN {new_san:?}"),
        [frame],
    ));
    if !changed.is_empty() || new_subject != subject || new_san != san {
        return Err(fail(
            format!("the rotation keeps the subject ({subject}) and SAN ({san:?})"),
            format!("CSRs with another name: {changed:?}; issued: subject {new_subject}, SAN {new_san:?}"),
            format!("capture.pcapng frames {frames:?} and {frame}"),
        ));
    }
    Ok(format!(
        "the CSR and the issued certificate {new_serial} keep subject {subject} and SAN {san:?}"
    ))
}
