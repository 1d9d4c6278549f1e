//! OTA — firmware update and recovery. The new image is the DUT's own
//! firmware payload (its DUT file's `image.payload`), signed as 1.1.0 with
//! security counter 2, unless a case needs another. What only the device
//! can tell (its bootloader's boots, a verification) comes from the events
//! its DUT file declares.

use std::net::IpAddr;
use std::time::Duration;

use hub_fixture::journal::{Event, JournalEntry};
use mcuboot_image::{KeyType, SigningKey};
use regex::Captures;
use sacbench_rig::dut::{ContractPart, EventName};
use sacbench_rig::{in_netns, Capability, HoldScope, Node};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::board::{arm_cut, flash_primary, switched_firmware};
use super::support::{fail, firmware, ready, wait_reported};
use super::{case_def, Def};
use crate::case::{sign, Case, CaseDef, DutNeeds, Fail, DEVICE_ID, GUARD};
use crate::events::{self, group_is};
use crate::model::Evidence;
use crash::{crash_test_image, crashing_image};

const NEEDS: &[Capability] = &[Capability::Power, Capability::Capture, Capability::Images];
const NEEDS_FLASH: &[Capability] = &[
    Capability::Power,
    Capability::Capture,
    Capability::Images,
    Capability::Flash,
];
const NEEDS_LINK: &[Capability] = &[
    Capability::Power,
    Capability::Link,
    Capability::Capture,
    Capability::Images,
];
/// The device's own sockets (`ss -K`), or firmware variants on sacbench's
/// native board (a crashing image, the precise power switch).
const NEEDS_BOARD: &[Capability] = &[
    Capability::Power,
    Capability::Capture,
    Capability::Images,
    Capability::Flash,
    Capability::BoardProcess,
];
const NEEDS_LINK_BOARD: &[Capability] = &[
    Capability::Power,
    Capability::Link,
    Capability::Capture,
    Capability::Images,
    Capability::BoardProcess,
];

const OTA: &[ContractPart] = &[ContractPart::Ota, ContractPart::Twin];
const fn ota(events: &'static [EventName], native_board: bool) -> DutNeeds {
    DutNeeds {
        implements: OTA,
        events,
        native_board,
    }
}
use EventName::{
    Boot, ConnectionFailed, Crashed, NoBootableImage, OtaReceiving, OtaResetting, OtaVerification,
    OtaVerified, SwapResumed,
};
const REFUSAL: DutNeeds = ota(&[Boot, OtaResetting], false);

/// The OTA (firmware update and recovery) cases, in catalogue order.
pub const CASES: &[Def] = &[
    case_def!("OTA-01", "signed_update", "Signed newer image is installed", "a signed newer image is downloaded, verified, test-booted, confirmed and reported (1.1.0 confirmed)", NEEDS, ota(&[Boot], false), ota01),
    case_def!("OTA-02", "unknown_key", "Image signed by an unknown key is refused", "an image signed by an unknown key is refused before any reboot (rejected) and the old version keeps running", NEEDS, REFUSAL, ota02),
    case_def!("OTA-03", "corrupted_payload", "Corrupted image is refused", "an image whose payload was altered after signing is refused on its hash before any reboot", NEEDS, REFUSAL, ota03),
    case_def!("OTA-04", "crash_reverts", "Crashing image is reverted", "a new image that crashes at boot is reverted by the bootloader; the old version reconnects and reports reverted", NEEDS_BOARD, ota(&[Boot, Crashed, ConnectionFailed], true), ota04),
    case_def!("OTA-05", "no_hub_reverts", "Image without a hub session is reverted", "a new image that boots but cannot reach the hub is not confirmed and is reverted at the next reset", NEEDS_LINK, ota(&[Boot, OtaVerified, ConnectionFailed], false), ota05),
    case_def!("OTA-06", "downgrade_refused", "Lower security counter is refused", "a validly signed image with a lower security counter than the running one is refused", NEEDS_FLASH, REFUSAL, ota06),
    case_def!("OTA-07", "power_loss_download", "Power loss during download", "after a power loss during the download the device boots, resumes the download (Range) and completes the update", NEEDS_BOARD, ota(&[Crashed, OtaVerification, NoBootableImage], true), ota07),
    case_def!("OTA-08", "power_loss_swap", "Power loss during the slot swap", "after a power loss in the bootloader's slot swap the device boots a valid image and reconnects", NEEDS_BOARD, ota(&[OtaResetting, Crashed, NoBootableImage, SwapResumed], true), ota08),
    CaseDef { long: true, ..case_def!("OTA-09", "link_loss_download", "Link loss during download", "after a link loss during the download the device resumes it (Range) once reconnected and completes the update", NEEDS_LINK_BOARD, ota(&[OtaReceiving, ConnectionFailed, OtaVerification], false), ota09) },
    case_def!("OTA-10", "image_over_mtls", "Image fetched over mTLS only", "the image is fetched over TLS to the hub's port 443 (mutual TLS); no cleartext flow, nothing to port 80", NEEDS, ota(&[], false), ota10),
];

/// The reference firmware signed as `1.minor.0` with `counter`.
fn firmware_image(case: &Case, minor: u8, counter: u32) -> Result<Vec<u8>, Fail> {
    Ok(sign(
        &case.firmware_payload()?,
        1,
        minor,
        counter,
        &case.signing_key()?,
    ))
}

/// Publishes `image` at the hub and sets desired `firmware` to it; returns
/// the journal mark from before the desired patch.
fn offer(case: &Case, version: &str, image: &[u8]) -> Result<u64, Fail> {
    let name = format!("{version}.img");
    case.hub.put_firmware(&name, image)?;
    let mark = case.hub.journal().len();
    case.hub.patch_desired(
        DEVICE_ID,
        &json!({ "firmware": {
            "version": version,
            "url": format!("https://{}/firmware/{name}", case.hub.host_name()),
            "sha256": hex::encode(Sha256::digest(image)),
            "size": image.len(),
        } }),
    )?;
    Ok(mark)
}

/// Boots the device and waits until its session is ready.
async fn boot_ready(case: &mut Case) -> Result<(), Fail> {
    let first = case.boot().await?;
    ready(case, first.seq).await?;
    Ok(())
}

/// Waits until the update ends: confirmed, reverted or rejected.
async fn outcome(case: &mut Case, mark: u64) -> Result<(Value, u64), Fail> {
    let (r, seq) = wait_reported(
        case,
        mark,
        "the update to end (confirmed, reverted or rejected)",
        |r| ["confirmed", "reverted", "rejected"].contains(&firmware(r).1.as_str()),
    )
    .await?;
    let (v, s, why) = firmware(&r);
    case.note(Evidence::journal(
        format!("reported firmware {v} {s} ({why})"),
        [seq],
    ));
    Ok((r, seq))
}

/// The firmware Download entries after `after`: (seq, Range header).
fn downloads(case: &Case, after: u64) -> Vec<(u64, Option<String>)> {
    case.hub
        .journal()
        .since(after)
        .into_iter()
        .filter_map(|e| match e.event {
            Event::Download { range, .. } => Some((e.seq, range)),
            _ => None,
        })
        .collect()
}

/// The start byte of a `bytes=N-` Range.
fn range_start(range: &Option<String>) -> Option<u64> {
    range
        .as_deref()?
        .strip_prefix("bytes=")?
        .split('-')
        .next()?
        .parse()
        .ok()
}

/// Waits (at most `guard`) for the bootloader to test-boot `version`.
async fn test_booted(case: &Case, version: &'static str, guard: Duration) -> Result<(), Fail> {
    case.event_after(Boot, 0, guard, boot_of(version, true))
        .await?
        .ok_or_else(|| {
            fail(
                format!("the bootloader to test-boot {version}"),
                format!("no boot event for a test boot of {version}"),
                "device.log",
            )
        })?;
    Ok(())
}

/// A boot of `version` by the bootloader; a test boot if `test`.
fn boot_of(version: &'static str, test: bool) -> impl Fn(&Captures<'_>) -> bool {
    move |c| {
        c.name("version").map(|m| m.as_str()) == Some(version)
            && (c.name("action").map(|m| m.as_str()) == Some("test")) == test
    }
}

/// Refused before any reboot: reported `rejected` with a reason naming
/// `why`, the old version still running in the same session, no reset.
async fn refused(case: &mut Case, mark: u64, why: &[&str]) -> Result<String, Fail> {
    let (r, seq) = outcome(case, mark).await?;
    let (version, state, reason) = firmware(&r);
    let boots = case.count_events(Boot, events::any).await?;
    let resets = case.count_events(OtaResetting, events::any).await?;
    let session = !case
        .hub
        .journal()
        .since(mark)
        .iter()
        .any(|e| matches!(e.event, Event::Connected { .. }));
    case.note(Evidence::log(format!(
        "bootloader boots since power-on: {boots}; OTA resets: {resets}"
    )));
    let named = why.iter().any(|w| reason.to_lowercase().contains(w));
    if state != "rejected" || !named || version != "1.0.0" || boots != 1 || resets != 0 || !session
    {
        return Err(fail(
            format!("the image refused before any reboot (rejected: {}), 1.0.0 still running", why.join("/")),
            format!(
                "reported {version} {state} ({reason}); bootloader boots {boots}, OTA resets {resets}, same session: {session}"
            ),
            format!("journal.jsonl entry {seq}; device.log (the boot and ota_resetting events)"),
        ));
    }
    Ok(format!(
        "refused before reboot: {reason}; 1.0.0 kept running"
    ))
}

async fn ota01(case: &mut Case) -> Result<String, Fail> {
    boot_ready(case).await?;
    let image = firmware_image(case, 1, 2)?;
    let mark = offer(case, "1.1.0", &image)?;
    let (r, seq) = outcome(case, mark).await?;
    let (version, state, reason) = firmware(&r);
    let dl = downloads(case, mark);
    let test_boot = case.count_events(Boot, boot_of("1.1.0", true)).await?;
    case.note(Evidence::journal(
        format!("{} Download(s) of 1.1.0.img", dl.len()),
        dl.iter().map(|d| d.0),
    ));
    case.note(Evidence::log(format!(
        "test boots of 1.1.0 by the bootloader: {test_boot}"
    )));
    if (version.as_str(), state.as_str()) != ("1.1.0", "confirmed")
        || dl.is_empty()
        || test_boot == 0
    {
        return Err(fail(
            "1.1.0 downloaded, test-booted and reported confirmed",
            format!(
                "reported {version} {state} ({reason}); downloads {}; test boots {test_boot}",
                dl.len()
            ),
            format!("journal.jsonl entry {seq}; device.log"),
        ));
    }
    Ok(format!(
        "1.1.0 ({} bytes) downloaded in {} request(s), test-booted, confirmed",
        image.len(),
        dl.len()
    ))
}

async fn ota02(case: &mut Case) -> Result<String, Fail> {
    boot_ready(case).await?;
    let stranger = SigningKey::generate(KeyType::Ed25519);
    let image = sign(&case.firmware_payload()?, 1, 1, 2, &stranger);
    let mark = offer(case, "1.1.0", &image)?;
    refused(case, mark, &["signature"]).await
}

async fn ota03(case: &mut Case) -> Result<String, Fail> {
    boot_ready(case).await?;
    let mut image = firmware_image(case, 1, 2)?;
    // One payload byte (after the 0x200 header), after signing; the twin
    // announces the corrupted file's SHA-256, so only the image's own hash
    // (and a signature over the real payload) can catch it.
    image[0x200 + 4096] ^= 0x01;
    let mark = offer(case, "1.1.0", &image)?;
    refused(case, mark, &["sha256", "hash"]).await
}

/// Waits for the update outcome, failing at once on an occurrence of
/// `fatal` (beyond those already seen).
async fn outcome_unless(
    case: &mut Case,
    mark: u64,
    fatal: (EventName, fn(&Captures<'_>) -> bool),
    why: &str,
) -> Result<(Value, u64), Fail> {
    let skip = case.count_events(fatal.0, fatal.1).await?;
    let watch = {
        let c: &Case = case;
        c.event_after(fatal.0, skip, 3 * GUARD, fatal.1)
    };
    let line = tokio::select! {
        r = wait_reported(case, mark, "the update to end (confirmed, reverted or rejected)", |r| {
            ["confirmed", "reverted", "rejected"].contains(&firmware(r).1.as_str())
        }) => { let (r, seq) = r?; return Ok((r, seq)); }
        l = watch => l?,
    };
    let line = line.unwrap_or_default();
    case.note(Evidence::log(format!("{} event: {line}", fatal.0)));
    Err(fail(
        why,
        format!("{} event: {line}", fatal.0),
        "device.log",
    ))
}

async fn ota04(case: &mut Case) -> Result<String, Fail> {
    boot_ready(case).await?;
    let (image, crash_dir) = crashing_image(case)?;
    let mark = offer(case, "1.1.0", &image)?;
    let crashed_at = crash_test_image(case, &crash_dir).await?;
    case.note(Evidence::log(format!(
        "the bench aborted 1.1.0's payload (SIGABRT) at its first failed connection: {crashed_at}"
    )));
    fn kept(c: &Captures<'_>) -> bool {
        // The crashing image booted again as if it were good.
        boot_of("1.1.0", false)(c)
    }
    let (r, seq) = outcome_unless(
        case,
        mark,
        (Boot, kept),
        "the bootloader reverts the crashing image (not booted as a good one)",
    )
    .await?;
    let (version, state, reason) = firmware(&r);
    let crashes = case.count_events(Crashed, events::any).await?;
    let reverts = case
        .count_events(Boot, group_is("action", "revert"))
        .await?;
    case.note(Evidence::log(format!(
        "crashes of the new image: {crashes}; bootloader reverts: {reverts}"
    )));
    let back = case
        .hub
        .journal()
        .since(mark)
        .iter()
        .filter(|e| matches!(e.event, Event::Connected { .. }))
        .count();
    if (version.as_str(), state.as_str()) != ("1.0.0", "reverted")
        || crashes == 0
        || reverts == 0
        || back == 0
    {
        return Err(fail(
            "the crash reverted by the bootloader; 1.0.0 reconnects and reports reverted",
            format!("reported {version} {state} ({reason}); crashes {crashes}, reverts {reverts}, sessions since {back}"),
            format!("journal.jsonl entry {seq}; device.log (the boot events)"),
        ));
    }
    Ok(format!(
        "crashing 1.1.0 reverted by the bootloader; 1.0.0 reconnected and reported: {reason}"
    ))
}

async fn ota05(case: &mut Case) -> Result<String, Fail> {
    let mark = test_boot_without_hub(case).await?;
    let (r, seq) = outcome(case, mark).await?;
    let (version, state, reason) = firmware(&r);
    if (version.as_str(), state.as_str()) != ("1.0.0", "reverted") {
        return Err(fail(
            "1.1.0 never confirmed without a hub session: reverted, 1.0.0 reports reverted",
            format!("reported {version} {state} ({reason})"),
            format!("journal.jsonl entry {seq}; device.log"),
        ));
    }
    Ok(format!(
        "1.1.0 without a hub session was not confirmed and was reverted: {reason}"
    ))
}

/// OTA-05's situation: 1.1.0 offered, the link cut once the old image has
/// verified it, so the test boot never reaches the hub; then a power cycle
/// with the link back. Returns the journal mark from before the offer.
async fn test_boot_without_hub(case: &mut Case) -> Result<u64, Fail> {
    boot_ready(case).await?;
    let image = firmware_image(case, 1, 2)?;
    // The swap into the primary slot is held until the link is down, so the
    // new image cannot reach the hub before the cut however fast the board
    // reboots (sacbench's native board: its swap took long enough once, and
    // no longer did — a race the bench lost). Another board's swap takes
    // seconds; should the cut still come late there, the case says it is
    // the bench's error below.
    let swap_held = case
        .rig
        .hold_flash_writes(Duration::from_secs(30), HoldScope::PrimarySlot)
        .ok();
    let skip = case.count_events(OtaVerified, events::any).await?;
    let mark = offer(case, "1.1.0", &image)?;
    // Once the old image has verified the new one it needs no network: the
    // link goes down before the reset, so the new image never gets a session.
    case.event_after(OtaVerified, skip, 3 * GUARD, events::any)
        .await?
        .ok_or_else(|| {
            fail(
                "the old image to verify 1.1.0",
                "no ota_verified event",
                "device.log",
            )
        })?;
    case.rig.link(false).await?;
    drop(swap_held);
    let cut = case.hub.journal().len();
    let skip_failed = case.count_events(ConnectionFailed, events::any).await?;
    test_booted(case, "1.1.0", GUARD).await?;
    let line = case
        .event_after(ConnectionFailed, skip_failed, GUARD, events::any)
        .await?;
    let sessions: Vec<u64> = case
        .hub
        .journal()
        .since(mark)
        .iter()
        .filter(|e| matches!(e.event, Event::Connected { .. }))
        .map(|e| e.seq)
        .collect();
    if !sessions.is_empty() {
        // The situation the case needs was not made: the bench's error.
        return Err(Fail::bench(format!(
            "the link went down too late: sessions after the offer {sessions:?} (journal mark {cut}); the new image must not reach the hub"
        )));
    }
    let line = line.ok_or_else(|| {
        fail(
            "the new image to try the hub and fail",
            "no failed connection of 1.1.0",
            "device.log",
        )
    })?;
    case.note(Evidence::log(format!(
        "1.1.0 on test boot without the hub: {line}"
    )));
    // Reset while it has no session; the bootloader reverts an unconfirmed image.
    case.rig.power(false).await?;
    case.rig.link(true).await?;
    case.rig.power(true).await?;
    Ok(mark)
}

async fn ota06(case: &mut Case) -> Result<String, Fail> {
    // The running 1.0.0 carries security counter 5.
    let running = firmware_image(case, 0, 5)?;
    flash_primary(case, "v1-counter5.img", &running).await?;
    boot_ready(case).await?;
    let image = firmware_image(case, 1, 2)?;
    let mark = offer(case, "1.1.0", &image)?;
    refused(case, mark, &["security counter"]).await
}

/// After the cut: the resumed request must start where the first one left
/// off (Range bytes=N-, 0 < N < size), and the update must complete.
async fn resumed_and_confirmed(
    case: &mut Case,
    mark: u64,
    size: usize,
    after_cut: u64,
) -> Result<String, Fail> {
    let first = case
        .journal(
            after_cut,
            "the download to be requested again after the interruption",
            |e| matches!(e.event, Event::Download { .. }),
        )
        .await?;
    let Event::Download { range, .. } = &first.event else {
        unreachable!("matched above")
    };
    let start = range_start(range);
    case.note(Evidence::journal(
        format!(
            "download after the interruption: Range {}",
            range.as_deref().unwrap_or("none (the whole image again)")
        ),
        [first.seq],
    ));
    if !start.is_some_and(|s| s > 0 && s < size as u64) {
        return Err(fail(
            "the download resumed from where it stopped (Range: bytes=N-, N > 0)",
            format!(
                "the next request had Range {} (image {size} bytes)",
                range.as_deref().unwrap_or("none")
            ),
            format!("journal.jsonl entry {}", first.seq),
        ));
    }
    let (r, seq) = outcome(case, mark).await?;
    let (version, state, reason) = firmware(&r);
    if (version.as_str(), state.as_str()) != ("1.1.0", "confirmed") {
        return Err(fail(
            "the resumed update confirmed (1.1.0)",
            format!("reported {version} {state} ({reason})"),
            format!("journal.jsonl entry {seq}"),
        ));
    }
    Ok(format!(
        "resumed at byte {} of {size}, 1.1.0 confirmed",
        start.unwrap_or(0)
    ))
}

async fn ota07(case: &mut Case) -> Result<String, Fail> {
    let running = switched_firmware(case, 1, 0, 1)?;
    flash_primary(case, "v1-switched.img", &running).await?;
    boot_ready(case).await?;
    // Power-on with the precise cut armed: nothing writes flash before the
    // update, so write 40 is some 20 chunks into the download.
    case.rig.power(false).await?;
    arm_cut(case, "cut-app", 40)?;
    let at = case.hub.journal().len();
    case.rig.power(true).await?;
    ready(case, at).await?;
    let crashes = case.count_events(Crashed, events::any).await?;
    let image = firmware_image(case, 1, 2)?;
    let mark = offer(case, "1.1.0", &image)?;
    let line = case
        .event_after(Crashed, crashes, GUARD, events::any)
        .await?
        .ok_or_else(|| {
            fail(
                "the power cut to strike during the download",
                "it did not",
                "device.log",
            )
        })?;
    let after_cut = case.hub.journal().len();
    let dl = downloads(case, mark);
    let verifying = case.count_events(OtaVerification, events::any).await?;
    case.note(Evidence::log(format!(
        "power cut at the firmware's flash write 40: {line}"
    )));
    if dl.is_empty() || verifying > 0 {
        return Err(fail(
            "the cut to strike during the download (bench setup)",
            format!(
                "downloads before it {}, verifications {verifying}",
                dl.len()
            ),
            "device.log",
        ));
    }
    let bricked = case.count_events(NoBootableImage, events::any).await?;
    if bricked > 0 {
        return Err(fail(
            "never bricked",
            "the device reported a no_bootable_image event",
            "device.log",
        ));
    }
    resumed_and_confirmed(case, mark, image.len(), after_cut).await
}

async fn ota08(case: &mut Case) -> Result<String, Fail> {
    let running = switched_firmware(case, 1, 0, 1)?;
    flash_primary(case, "v1-switched.img", &running).await?;
    boot_ready(case).await?;
    // Power-on through a bootloader that loses power at its 30th flash
    // write: its first pass writes nothing, so the cut lands early in the
    // swap into 1.1.0 (which takes hundreds of writes).
    case.rig.power(false).await?;
    arm_cut(case, "cut-boot", 30)?;
    let at = case.hub.journal().len();
    case.rig.power(true).await?;
    ready(case, at).await?;
    let crashes = case.count_events(Crashed, events::any).await?;
    let skip_resets = case.count_events(OtaResetting, events::any).await?;
    let image = firmware_image(case, 1, 2)?;
    let mark = offer(case, "1.1.0", &image)?;
    case.event_after(OtaResetting, skip_resets, 3 * GUARD, events::any)
        .await?
        .ok_or_else(|| {
            fail(
                "the device to reset into 1.1.0",
                "no ota_resetting event",
                "device.log",
            )
        })?;
    let line = case
        .event_after(Crashed, crashes, GUARD, events::any)
        .await?
        .ok_or_else(|| {
            fail(
                "the power cut to strike in the swap",
                "it did not",
                "device.log",
            )
        })?;
    case.note(Evidence::log(format!(
        "power cut in the bootloader: {line}"
    )));
    let (r, seq) = outcome_unless(
        case,
        mark,
        (NoBootableImage, events::any),
        "the device boots a valid image after the power loss in the swap",
    )
    .await?;
    let (version, state, reason) = firmware(&r);
    let resumed = case.count_events(SwapResumed, events::any).await?;
    case.note(Evidence::log(format!(
        "boots that resumed the swap: {resumed}"
    )));
    let ok = matches!(
        (version.as_str(), state.as_str()),
        ("1.1.0", "confirmed") | ("1.0.0", "reverted")
    );
    if !ok {
        return Err(fail(
            "a valid image boots and reconnects (1.1.0 confirmed or 1.0.0 reverted)",
            format!("reported {version} {state} ({reason})"),
            format!("journal.jsonl entry {seq}; device.log"),
        ));
    }
    Ok(format!("power lost in the swap; the device booted {version} ({state}), swap resumed {resumed} time(s)"))
}

/// What [`slow_download_under_way`] started: the image offered, the offer's
/// journal mark, the download's first journal entry.
pub(super) struct SlowDownload {
    pub(super) image: Vec<u8>,
    pub(super) mark: u64,
    pub(super) first: JournalEntry,
}

/// Boots, slows the hub's firmware downloads to 80 Mbit/s (the hub's
/// slow-link switch, the same for any device: a download then lasts
/// seconds, not a fraction of one, so what a case does next surely lands
/// in it), offers 1.1.0 and waits until its bytes are arriving, not just
/// requested — however loaded the machine is (OTA-09, OTA-17).
pub(super) async fn slow_download_under_way(case: &mut Case) -> Result<SlowDownload, Fail> {
    boot_ready(case).await?;
    case.hub.set_firmware_rate(Some(10_000_000));
    let image = firmware_image(case, 1, 2)?;
    let mark = offer(case, "1.1.0", &image)?;
    let first = case
        .journal(mark, "the download to start", |e| {
            matches!(e.event, Event::Download { .. })
        })
        .await?;
    case.wait_event(OtaReceiving, GUARD, events::any)
        .await?
        .ok_or_else(|| {
            fail(
                "the image's first bytes to arrive",
                "no ota_receiving event",
                "device.log",
            )
        })?;
    Ok(SlowDownload { image, mark, first })
}

async fn ota09(case: &mut Case) -> Result<String, Fail> {
    // Bytes arriving: the cut below then leaves something to resume from.
    let SlowDownload { image, mark, first } = slow_download_under_way(case).await?;
    // The link goes; with it the device's connections (as after an outage
    // long enough for them to die; a bare TCP stall would just continue).
    let skip = case.count_events(ConnectionFailed, events::any).await?;
    case.rig.link(false).await?;
    case.rig.kill_established_tcp(Node::Dut, None)?;
    let after_cut = case.hub.journal().len();
    case.event_after(ConnectionFailed, skip, GUARD, events::any)
        .await?
        .ok_or_else(|| {
            fail(
                "the device to notice the link loss",
                "no connection_failed event",
                "device.log",
            )
        })?;
    let verifying = case.count_events(OtaVerification, events::any).await?;
    case.note(Evidence::journal(
        format!("link down during the download (verifications before: {verifying})"),
        [first.seq],
    ));
    if verifying > 0 {
        return Err(fail(
            "the link loss to strike during the download (bench setup)",
            "the download had completed",
            "device.log",
        ));
    }
    case.rig.link(true).await?;
    resumed_and_confirmed(case, mark, image.len(), after_cut).await
}

/// A listener on the hub's port 80, in its namespace: the hub serves no
/// cleartext, so any connection here is a device trying it.
fn http_sensor(case: &Case) -> Result<tokio::net::TcpListener, Fail> {
    let addr = (case.net.hub_ipv4, 80);
    let std = in_netns(case.rig.netns(Node::Hub), move || {
        std::net::TcpListener::bind(addr)
    })??;
    std.set_nonblocking(true)?;
    Ok(tokio::net::TcpListener::from_std(std)?)
}

async fn ota10(case: &mut Case) -> Result<String, Fail> {
    boot_ready(case).await?;
    let sensor = http_sensor(case)?;
    let image = firmware_image(case, 1, 2)?;
    let mark = offer(case, "1.1.0", &image)?;
    let done = tokio::select! {
        r = outcome(case, mark) => Some(r?),
        a = sensor.accept() => {
            let mut req = vec![0u8; 512];
            let n = match a { Ok((mut s, _)) => s.read(&mut req).await.unwrap_or(0), Err(_) => 0 };
            let line = String::from_utf8_lossy(&req[..n]).lines().next().unwrap_or("").to_string();
            case.note(Evidence::note(format!("cleartext request to the hub's port 80: {line:?}")));
            None
        }
    };
    let a = case.analysis()?.clone();
    let (dut, hub) = (IpAddr::V4(case.net.dut_ipv4), IpAddr::V4(case.net.hub_ipv4));
    let flows: Vec<_> = a.flows_between(dut, hub).collect();
    let port80: Vec<u64> = flows
        .iter()
        .filter(|f| f.server.port() == 80)
        .map(|f| f.first_frame.number)
        .collect();
    // The flows that carried the image: to the hub's 443, at least a chunk of it.
    let carriers: Vec<_> = flows
        .iter()
        .filter(|f| f.server.port() == 443 && f.to_client.payload_bytes > 64 * 1024)
        .collect();
    let carried: u64 = carriers.iter().map(|f| f.to_client.payload_bytes).sum();
    let clear: Vec<u64> = carriers
        .iter()
        .filter(|f| !f.tls_throughout())
        .map(|f| f.first_frame.number)
        .collect();
    case.note(Evidence::frames(
        format!("{} flow(s) to the hub's 443 carried {carried} bytes to the device; flows to port 80: {}", carriers.len(), port80.len()),
        carriers.iter().map(|f| f.first_frame.number).chain(port80.iter().copied()),
    ));
    if !port80.is_empty() || done.is_none() {
        return Err(fail(
            "the image fetched over TLS on port 443 only, nothing to port 80",
            format!("flows to the hub's port 80 starting at frames {port80:?}"),
            "capture.pcapng (tcp.port == 80)",
        ));
    }
    let (r, seq) = done.expect("checked");
    let (version, state, reason) = firmware(&r);
    if (version.as_str(), state.as_str()) != ("1.1.0", "confirmed")
        || carried < image.len() as u64
        || !clear.is_empty()
    {
        return Err(fail(
            "1.1.0 confirmed, its bytes carried in TLS-only flows to port 443",
            format!("reported {version} {state} ({reason}); {carried} bytes over 443 for a {}-byte image; flows not TLS throughout at frames {clear:?}", image.len()),
            format!("capture.pcapng; journal.jsonl entry {seq}"),
        ));
    }
    Ok(format!("{} bytes carried in {} TLS flow(s) to the hub's 443; nothing in cleartext, nothing to port 80", carried, carriers.len()))
}

#[path = "ota_crash.rs"]
mod crash;
/// OTA-11…18, in their own file.
#[path = "ota_more.rs"]
pub mod more;
