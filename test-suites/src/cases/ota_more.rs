//! OTA-11…18: the FreeRTOS OTA end-to-end situations that apply to a
//! twin-driven update — the running version offered again, back-to-back
//! updates, a truncated and a one-byte image, an image for another board,
//! an image signed by a key the device knows for TLS, an update cancelled
//! mid-download, and a reverted image offered again.
//!
//! Where the right answer is "nothing happens", the contract's answer to a
//! target the device will not install (a report whose reason begins `not
//! installed:`) is the point from which the bench knows the device has
//! decided; a wrong device shows itself by downloading or rebooting first.

use hub_fixture::journal::Event;
use mcuboot_image::{tlv::TLV_BOARD, SignOptions, SigningKey};
use sacbench_rig::dut::EventName::{OtaReceiving, OtaResetting};
use serde_json::Value;

use super::super::support::{fail, firmware, wait_reported};
use super::super::{case_def, Def};
use super::{
    boot_of, boot_ready, downloads, firmware_image, offer, ota, outcome, refused,
    slow_download_under_way, test_boot_without_hub, Boot, ConnectionFailed, OtaVerified,
    SlowDownload, NEEDS, NEEDS_LINK, REFUSAL,
};
use crate::case::{Case, Fail};
use crate::events;
use crate::model::Evidence;

/// OTA-11…18, in catalogue order (after [`super::CASES`]).
pub const CASES: &[Def] = &[
    case_def!("OTA-11", "same_version", "The running version offered again is not installed", "the running version offered again is not downloaded or installed and causes no reboot; the device answers that it is already running and keeps reporting it", NEEDS, REFUSAL, ota11),
    case_def!("OTA-12", "back_to_back", "Back-to-back updates", "1.1.0 and, right after it is confirmed, 1.2.0 are both downloaded, test-booted, confirmed and reported, in that order", NEEDS, ota(&[Boot], false), ota12),
    case_def!("OTA-13", "truncated_image", "Truncated image is refused", "a signed image cut short, announced as served (its SHA-256 and size), is refused on its own structure before any reboot; the old version keeps running", NEEDS, REFUSAL, ota13),
    case_def!("OTA-14", "single_byte_image", "Single-byte image is refused", "a one-byte image is refused (rejected) without a crash or reboot, and the device keeps its hub session", NEEDS, REFUSAL, ota14),
    case_def!("OTA-15", "other_board", "Image for another board is refused", "a validly signed newer image whose board identity (protected TLV 0xa0) names another board is refused before any reboot", NEEDS, REFUSAL, ota15),
    case_def!("OTA-16", "tls_key_signer", "Image signed by the TLS trust anchor's key is refused", "an image signed by the key of the device's TLS trust anchor — a key it knows, but not as a firmware signer — is refused before any reboot", NEEDS, REFUSAL, ota16),
    case_def!("OTA-17", "cancel_download", "Update cancelled mid-download", "desired firmware set back to the running version during the download stops the download; nothing is installed, no reboot, `cancelled` reported", NEEDS, ota(&[Boot, OtaReceiving, OtaResetting], false), ota17),
    case_def!("OTA-18", "reverted_not_retried", "Reverted image is not installed again", "after a rollback (OTA-05: the new image never reached the hub) the device reports reverted, naming the failed version, and does not install that image again", NEEDS_LINK, ota(&[Boot, OtaVerified, ConnectionFailed], false), ota18),
];

/// States of an update under way or installed: a device in one of them
/// after a target it should not install has started installing it.
const INSTALLING: &[&str] = &[
    "downloading",
    "verifying",
    "rebooting",
    "testing",
    "confirmed",
];

/// Waits (after `mark`) for the device's answer to a target it must not
/// install: its `not installed` report — or, from a device that goes
/// ahead, a state of an installation.
/// Until `fresh` holds of a report, the twin may still show an earlier
/// boot's state, which is no answer.
async fn answered(
    case: &Case,
    mark: u64,
    what: &str,
    fresh: impl Fn(&str, &str) -> bool,
) -> Result<(Value, u64), Fail> {
    let seen = std::cell::Cell::new(false);
    wait_reported(case, mark, what, |r| {
        let (version, state, reason) = firmware(r);
        seen.set(seen.get() || fresh(&version, &state));
        reason.starts_with("not installed") || (seen.get() && INSTALLING.contains(&state.as_str()))
    })
    .await
}

/// Journal entries since `after` showing a reset or a new session (the
/// device did not keep its session), and the device's boots and OTA resets.
async fn disturbance(case: &Case, after: u64) -> Result<(Vec<u64>, usize, usize), Fail> {
    let sessions = case
        .hub
        .journal()
        .since(after)
        .iter()
        .filter(|e| matches!(e.event, Event::Connected { .. }))
        .map(|e| e.seq)
        .collect();
    let boots = case.count_events(Boot, events::any).await?;
    let resets = case.count_events(OtaResetting, events::any).await?;
    Ok((sessions, boots, resets))
}

async fn ota11(case: &mut Case) -> Result<String, Fail> {
    boot_ready(case).await?;
    // The running 1.0.0 itself (as flashed: counter 1), announced again.
    let image = firmware_image(case, 0, 1)?;
    let mark = offer(case, "1.0.0", &image)?;
    let (r, seq) = answered(
        case,
        mark,
        "the device to answer the offer of 1.0.0",
        |_, _| true,
    )
    .await?;
    let (version, state, reason) = firmware(&r);
    let dl = downloads(case, mark);
    let (sessions, boots, resets) = disturbance(case, mark).await?;
    case.note(Evidence::journal(
        format!(
            "reported {version} {state} ({reason}); {} download(s) since the offer",
            dl.len()
        ),
        [seq].into_iter().chain(dl.iter().map(|d| d.0)),
    ));
    if version != "1.0.0"
        || !reason.starts_with("not installed")
        || !dl.is_empty()
        || boots != 1
        || resets != 0
        || !sessions.is_empty()
    {
        return Err(fail(
            "1.0.0 not downloaded or installed again, no reboot; answered `not installed` and still reported running",
            format!(
                "reported {version} {state} ({reason}); downloads {}; bootloader boots {boots}, OTA resets {resets}, new sessions {sessions:?}",
                dl.len()
            ),
            format!("journal.jsonl entry {seq} and the Download entries; device.log"),
        ));
    }
    Ok(format!(
        "the offer of the running 1.0.0 answered \"{reason}\"; nothing downloaded, no reboot"
    ))
}

/// The firmware paths downloaded since `after`, in order, with their seqs.
fn download_paths(case: &Case, after: u64) -> Vec<(u64, String)> {
    case.hub
        .journal()
        .since(after)
        .into_iter()
        .filter_map(|e| match e.event {
            Event::Download { path, .. } => Some((e.seq, path)),
            _ => None,
        })
        .collect()
}

async fn ota12(case: &mut Case) -> Result<String, Fail> {
    boot_ready(case).await?;
    let start = case.hub.journal().len();
    let first = firmware_image(case, 1, 2)?;
    let mark = offer(case, "1.1.0", &first)?;
    let (r, seq1) = outcome(case, mark).await?;
    let (version, state, reason) = firmware(&r);
    if (version.as_str(), state.as_str()) != ("1.1.0", "confirmed") {
        return Err(fail(
            "the first update (1.1.0) confirmed",
            format!("reported {version} {state} ({reason})"),
            format!("journal.jsonl entry {seq1}; device.log"),
        ));
    }
    // Right after the confirmation: the next update.
    let second = firmware_image(case, 2, 3)?;
    let mark = offer(case, "1.2.0", &second)?;
    let (r, seq2) = wait_reported(case, mark, "the second update (1.2.0) to end", |r| {
        let (v, s, _) = firmware(r);
        (v == "1.2.0" && s == "confirmed")
            || ["rejected", "reverted", "cancelled"].contains(&s.as_str())
    })
    .await?;
    let (version, state, reason) = firmware(&r);
    let paths = download_paths(case, start);
    let tests_11 = case.count_events(Boot, boot_of("1.1.0", true)).await?;
    let tests_12 = case.count_events(Boot, boot_of("1.2.0", true)).await?;
    case.note(Evidence::journal(
        format!(
            "1.1.0 confirmed (entry {seq1}), then 1.2.0 {state} (entry {seq2}); downloads in order: {:?}",
            paths.iter().map(|p| p.1.as_str()).collect::<Vec<_>>()
        ),
        [seq1, seq2].into_iter().chain(paths.iter().map(|p| p.0)),
    ));
    case.note(Evidence::log(format!(
        "test boots by the bootloader: 1.1.0 {tests_11}, 1.2.0 {tests_12}"
    )));
    let last_11 = paths
        .iter()
        .filter(|p| p.1.ends_with("/1.1.0.img"))
        .map(|p| p.0)
        .max();
    let first_12 = paths
        .iter()
        .filter(|p| p.1.ends_with("/1.2.0.img"))
        .map(|p| p.0)
        .min();
    let in_order = matches!((last_11, first_12), (Some(a), Some(b)) if a < b && b > seq1);
    if (version.as_str(), state.as_str()) != ("1.2.0", "confirmed")
        || !in_order
        || tests_11 == 0
        || tests_12 == 0
    {
        return Err(fail(
            "1.1.0 then 1.2.0 downloaded, test-booted and confirmed, in that order",
            format!(
                "second update: reported {version} {state} ({reason}); downloads {:?}; test boots 1.1.0 {tests_11}, 1.2.0 {tests_12}",
                paths.iter().map(|p| p.1.as_str()).collect::<Vec<_>>()
            ),
            format!("journal.jsonl entries {seq1} and {seq2}; device.log"),
        ));
    }
    Ok("1.1.0 confirmed, then 1.2.0 downloaded, test-booted and confirmed".into())
}

async fn ota13(case: &mut Case) -> Result<String, Fail> {
    boot_ready(case).await?;
    let full = firmware_image(case, 1, 2)?;
    // Cut in the middle of the payload: no TLVs, so no signature. The twin
    // announces what is served, so its SHA-256 and size match: only the
    // image's own structure (and signature) can catch it.
    let cut = full[..full.len() / 2].to_vec();
    let mark = offer(case, "1.1.0", &cut)?;
    let verdict = refused(case, mark, &["malformed", "truncated", "size", "structure"]).await?;
    Ok(format!(
        "{} of {} bytes served and announced; {verdict}",
        cut.len(),
        full.len()
    ))
}

async fn ota14(case: &mut Case) -> Result<String, Fail> {
    boot_ready(case).await?;
    let full = firmware_image(case, 1, 2)?;
    let byte = full[..1].to_vec();
    let mark = offer(case, "1.1.0", &byte)?;
    // `refused` also holds that the session was kept and nothing rebooted.
    refused(case, mark, &["malformed", "truncated", "size", "structure"]).await
}

async fn ota15(case: &mut Case) -> Result<String, Fail> {
    boot_ready(case).await?;
    let opts = SignOptions {
        custom_tlvs: vec![(TLV_BOARD, b"sacbench-other-board".to_vec())],
        ..SignOptions::versioned(1, 1, 2)
    };
    let image = mcuboot_image::sign(&case.firmware_payload()?, &case.signing_key()?, &opts)
        .map_err(|e| Fail::bench(format!("signing the image for another board: {e}")))?;
    let mark = offer(case, "1.1.0", &image)?;
    let verdict = refused(case, mark, &["board"]).await?;
    Ok(format!(
        "signed for board \"sacbench-other-board\"; {verdict}"
    ))
}

async fn ota16(case: &mut Case) -> Result<String, Fail> {
    boot_ready(case).await?;
    // The hub's CA: the device's TLS trust anchor (`ca.key` of the hub's
    // data directory).
    let path = case.hub.data_dir().join("ca.key");
    let pem = std::fs::read_to_string(&path)
        .map_err(|e| Fail::bench(format!("{}: {e}", path.display())))?;
    let anchor = SigningKey::from_pkcs8_pem(&pem)
        .map_err(|e| Fail::bench(format!("{}: {e:?}", path.display())))?;
    let image = crate::case::sign(&case.firmware_payload()?, 1, 1, 2, &anchor);
    let mark = offer(case, "1.1.0", &image)?;
    let verdict = refused(case, mark, &["signature", "signer"]).await?;
    Ok(format!(
        "signed with the TLS trust anchor's {:?} key; {verdict}",
        anchor.key_type()
    ))
}

async fn ota17(case: &mut Case) -> Result<String, Fail> {
    // A slow link (as in OTA-09): the cancel surely lands in the download.
    let SlowDownload { image, mark, first } = slow_download_under_way(case).await?;
    // Back to the running version: the update is called off.
    let running = firmware_image(case, 0, 1)?;
    let cancel = offer(case, "1.0.0", &running)?;
    let (r, seq) = wait_reported(
        case,
        cancel,
        "the update to be cancelled (or to go on)",
        |r| {
            let s = firmware(r).1;
            s != "downloading" && s != "idle"
        },
    )
    .await?;
    let (version, state, reason) = firmware(&r);
    if (version.as_str(), state.as_str()) != ("1.0.0", "cancelled") {
        return Err(fail(
            "the download stopped and `cancelled` reported, 1.0.0 running",
            format!("reported {version} {state} ({reason})"),
            format!("journal.jsonl entry {seq}; device.log"),
        ));
    }
    // The hub's side: the answer ended short (the device went away).
    let ended = case
        .journal(first.seq, "the hub to see the download end", |e| {
            matches!(e.event, Event::DownloadEnded { .. })
        })
        .await?;
    let Event::DownloadEnded { sent, complete, .. } = ended.event else {
        unreachable!("matched above")
    };
    let dl = downloads(case, mark);
    let (sessions, boots, resets) = disturbance(case, mark).await?;
    case.note(Evidence::journal(
        format!(
            "cancelled at entry {seq}; the hub handed over {sent} of {} bytes (entry {}); {} download request(s)",
            image.len(),
            ended.seq,
            dl.len()
        ),
        [first.seq, seq, ended.seq],
    ));
    if complete || dl.len() != 1 || boots != 1 || resets != 0 || !sessions.is_empty() {
        return Err(fail(
            "the download stopped short, not requested again; no reboot, same session",
            format!(
                "download complete: {complete} ({sent} bytes); requests {}; bootloader boots {boots}, OTA resets {resets}, new sessions {sessions:?}",
                dl.len()
            ),
            format!("journal.jsonl entries {} and {}; device.log", first.seq, ended.seq),
        ));
    }
    Ok(format!(
        "cancelled after {sent} of {} bytes: {reason}",
        image.len()
    ))
}

async fn ota18(case: &mut Case) -> Result<String, Fail> {
    let mark = test_boot_without_hub(case).await?;
    // The device is powering on again; the twin still desires 1.1.0 and
    // shows the old image's last report before the reset (`verifying` or
    // `rebooting`: whichever got out before the link went) until the
    // reverted image reports — or another version runs.
    let (r, seq) = answered(
        case,
        mark,
        "the reverted device to answer the desired 1.1.0",
        |version, state| state == "reverted" || version != "1.0.0",
    )
    .await?;
    let (version, state, reason) = firmware(&r);
    let reverts = case
        .count_events(Boot, events::group_is("action", "revert"))
        .await?;
    // The one download of the offer, nothing after it.
    let dl = downloads(case, mark);
    let again = &dl[dl.len().min(1)..];
    case.note(Evidence::journal(
        format!(
            "after the revert: reported {version} {state} ({reason}); downloads of the image since the offer {}",
            dl.len()
        ),
        [seq].into_iter().chain(dl.iter().map(|d| d.0)),
    ));
    case.note(Evidence::log(format!("bootloader reverts: {reverts}")));
    if (version.as_str(), state.as_str()) != ("1.0.0", "reverted")
        || !reason.contains("1.1.0")
        || !again.is_empty()
        || reverts == 0
    {
        return Err(fail(
            "1.0.0 reports reverted naming 1.1.0 and does not download or install 1.1.0 again",
            format!(
                "reported {version} {state} ({reason}); downloads after the first {}; bootloader reverts {reverts}",
                again.len()
            ),
            format!("journal.jsonl entry {seq} (offer at {mark}); device.log"),
        ));
    }
    Ok(format!("1.1.0 reverted and not installed again: {reason}"))
}
