//! MT-13's evidence: the client certificates each board presented on the
//! wire, the wait for a re-enrolment to settle, and the two-board form.
//!
//! The single-board form compares the DUT's keys with the firmware-baked
//! key the bench knows (the reference firmware's published one) and with a
//! key the hub issued to another device. The two-board form catches a key
//! baked into a firmware the bench knows nothing of: on a rig with a
//! second board ([`Capability::SecondBoard`](sacbench_rig::Capability)),
//! that board is provisioned as another device (`dut-2`, its own
//! certificate and key) and booted; no key it presents may be one the first
//! board presented — two units of one product sharing key material.

use std::net::IpAddr;
use std::path::Path;

use hub_fixture::hub::DeviceCredentials;
use hub_fixture::journal::Event;
use sacbench_capture::decrypt::decrypt_capture;
use sacbench_rig::dut::ContractPart;

use super::certs::cert_facts;
use crate::case::{Case, Fail, GUARD};
use crate::case_board::CAPTURE_B;
use crate::model::Evidence;

/// A client certificate on the wire: the frame its Certificate message
/// ended in, and its DER.
pub(super) type WireCert = (u64, Vec<u8>);

/// Leaf certificates presented by clients at `ip` in `capture` (TLS 1.3
/// client Certificate messages decrypted with the case's key log; TLS 1.2
/// shows them in cleartext).
pub(super) fn client_certs_in(
    case: &Case,
    capture: &Path,
    ip: IpAddr,
) -> Result<Vec<WireCert>, Fail> {
    let key_log = std::fs::read_to_string(case.rig_dir().join("tls-keys.log")).unwrap_or_default();
    let flows = decrypt_capture(capture, &key_log, |client, _| client.ip() == ip)
        .map_err(|e| Fail::bench(format!("decrypting {}: {e}", capture.display())))?;
    let mut leaves = Vec::new();
    for f in &flows {
        if let (Some(0x0304), Some(why)) = (f.version, &f.undecrypted) {
            return Err(Fail::bench(format!(
                "the TLS 1.3 flow {} → {} cannot be decrypted: {why}",
                f.client, f.server
            )));
        }
        for (frame, kind, body) in f.handshake_messages(true) {
            if kind != 11 {
                continue;
            }
            // TLS 1.3 puts a request context before the list (RFC 8446 §4.4.2).
            let at = if f.version == Some(0x0304) {
                1 + usize::from(*body.first().unwrap_or(&0))
            } else {
                0
            };
            let u24 = |i: usize| -> Option<usize> {
                let b = body.get(i..i + 3)?;
                Some((usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]))
            };
            let leaf = u24(at + 3).and_then(|len| body.get(at + 6..at + 6 + len));
            if let Some(leaf) = leaf {
                leaves.push((frame, leaf.to_vec()));
            }
        }
    }
    Ok(leaves)
}

/// Waits until `device_id`'s session is up and any re-enrolment it began
/// at session start (the `shared-identity` fault does) is over: its
/// subscription after `after`, then — for a device with methods and EST —
/// a `diag/state` answer (once a method is answered, a report made before
/// it has arrived) and its reported `credentials.state` no longer
/// `rotating`.
pub(super) async fn key_settled(case: &Case, device_id: &str, after: u64) -> Result<(), Fail> {
    case.journal(after, &format!("{device_id} to subscribe"), |e| {
        matches!(e.event, Event::Subscribed { .. }) && e.device_id.as_deref() == Some(device_id)
    })
    .await?;
    if case.dut.implements(ContractPart::Methods) && case.dut.implements(ContractPart::EstRotation)
    {
        let _ = case
            .hub
            .invoke_method(device_id, "diag/state", &serde_json::json!({}), GUARD)
            .await?;
    }
    let state = |case: &Case| {
        case.hub.twin(device_id).ok().and_then(|t| {
            t.reported["credentials"]["state"]
                .as_str()
                .map(str::to_owned)
        })
    };
    if state(case).as_deref() == Some("rotating") {
        case.journal(0, &format!("{device_id}'s re-enrolment to finish"), |_| {
            state(case).as_deref() != Some("rotating")
        })
        .await?;
    }
    Ok(())
}

/// The public key bits of each certificate (those that parse).
fn key_bits(certs: &[WireCert]) -> Vec<(u64, Vec<u8>)> {
    certs
        .iter()
        .filter_map(|(frame, der)| cert_facts(der).map(|f| (*frame, f.key_bits)))
        .collect()
}

/// Pairs of frames (first board's, second board's) whose certificates
/// carry the same public key.
pub(super) fn shared_between(a: &[(u64, Vec<u8>)], b: &[(u64, Vec<u8>)]) -> Vec<(u64, u64)> {
    b.iter()
        .filter_map(|(fb, kb)| a.iter().find(|(_, ka)| ka == kb).map(|(fa, _)| (*fa, *fb)))
        .collect()
}

/// MT-13's two-board form: a second board provisioned as `other` boots;
/// none of its keys may be one the first board presented (`a_certs`) or
/// `shared`. What it saw, for the verdict.
pub(super) async fn two_boards(
    case: &mut Case,
    other: &DeviceCredentials,
    a_certs: &[WireCert],
    shared: &[u8],
) -> Result<String, Fail> {
    let record = case.record_for(other)?;
    let ip = IpAddr::V4(case.add_second_board(&record).await?);
    let mark = case.hub.journal().len();
    case.second_board()?.power(true).await?;
    let id = other.device_id.as_str();
    case.journal(
        mark,
        &format!("the second board, provisioned as {id}, to connect"),
        |e| matches!(e.event, Event::Connected { .. }) && e.device_id.as_deref() == Some(id),
    )
    .await?;
    key_settled(case, id, mark).await?;
    let capture = case.second_capture()?;
    let b_certs = client_certs_in(case, &capture, ip)?;
    if b_certs.is_empty() {
        return Err(Fail::new(
            format!("the second board's ({id}) client certificates in its decrypted capture"),
            "none found",
            format!("{CAPTURE_B} (tshark with the embedded key log)"),
        ));
    }
    let (a_keys, b_keys) = (key_bits(a_certs), key_bits(&b_certs));
    let common = shared_between(&a_keys, &b_keys);
    let baked: Vec<u64> = b_keys
        .iter()
        .filter(|(_, k)| k == shared)
        .map(|(f, _)| *f)
        .collect();
    let shown: Vec<(u64, String)> = b_keys
        .iter()
        .map(|(f, k)| (*f, hex::encode(&k[..k.len().min(12)])))
        .collect();
    case.note(Evidence::note(format!(
        "second board ({ip}), provisioned as {id}: client certificates in {CAPTURE_B} (frame, key prefix): {shown:?}"
    )));
    let mut found = Vec::new();
    if !common.is_empty() {
        found.push(format!(
            "the same key presented by both (capture.pcapng frame, {CAPTURE_B} frame): {common:?}"
        ));
    }
    if !baked.is_empty() {
        found.push(format!(
            "the firmware-baked shared key presented by the second board ({CAPTURE_B} frames): {baked:?}"
        ));
    }
    if !found.is_empty() {
        return Err(Fail::new(
            format!("two boards provisioned as different devices (the DUT's and {id}) to present different keys"),
            found.join("; "),
            format!("capture.pcapng and {CAPTURE_B}"),
        ));
    }
    Ok(format!(
        "the second board, provisioned as {id}, presented {} certificates, none with a key of the first board's",
        b_certs.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::shared_between;

    #[test]
    fn a_key_both_boards_present_is_found() {
        let a = vec![(3, vec![1, 2, 3]), (40, vec![9, 9])];
        let own = vec![(5, vec![7, 7, 7])];
        assert!(shared_between(&a, &own).is_empty());
        // A key baked into the firmware: the second unit presents the first's.
        let baked = vec![(5, vec![7, 7, 7]), (31, vec![9, 9])];
        assert_eq!(shared_between(&a, &baked), [(40, 31)]);
        assert!(shared_between(&[], &baked).is_empty());
    }
}
