//! Firmware update (the contract's "Firmware update" section) as a sans-IO
//! state machine over MCUboot swap-with-revert semantics.
//!
//! # Flow
//! 1. Desired `firmware {version, url, sha256, size}` (twin GET at session
//!    start or a desired patch) → [`OtaAction::PersistRecord`] (the target,
//!    offset 0), [`OtaAction::EraseSecondary`], [`OtaAction::StartDownload`].
//! 2. Every [`OtaEvent::Chunk`] → [`OtaAction::WriteChunk`] into the
//!    secondary slot, then the new offset is persisted — in that order, so
//!    the record never claims bytes that are not in flash. After a link loss
//!    ([`OtaEvent::DownloadInterrupted`]) or a power loss the download
//!    resumes at the persisted offset (HTTP `Range`), when a hub session is
//!    up again or [`OtaConfig::retry_ms`] later.
//! 3. All `size` bytes in → [`OtaAction::Verify`] (size, SHA-256, MCUboot
//!    signature, security counter ≥ the running one; the shell runs the
//!    checks). A failure → `rejected` with the reason; the old image keeps
//!    running and the same image (by SHA-256) is not tried again.
//! 4. Verified → [`OtaAction::MarkTestBoot`], record "rebooting",
//!    [`OtaAction::Reset`].
//! 5. The new image boots as a test ([`BootInfo::test_boot`]). Only once it
//!    has a hub session does it [`OtaAction::Confirm`] and report
//!    `confirmed`. Without a session within [`OtaConfig::test_timeout_ms`] it
//!    resets unconfirmed, the bootloader reverts, and the old image — seeing
//!    the bootloader's revert flag or its own version where the record
//!    expected the new one — reports `reverted`.
//!
//! The persisted [`OtaRecord`] is small and CRC-protected; a torn record
//! decodes as `None`, which at worst restarts a download from byte 0 — never
//! a brick, since the running image is only replaced by the bootloader's
//! swap after verification.
//!
//! Targets arriving while verifying, rebooting or testing are ignored; the
//! twin GET at the next session start brings them again.
//!
//! A target the device will not install is answered with a report (state
//! unchanged, reason `not installed: …`): its version is the running one,
//! or its image (by SHA-256) was rejected or reverted before. A target
//! naming the running version while a download is under way cancels it:
//! `cancelled`, nothing installed.
//!
//! # Faults
//! `skip-signature` / `skip-hash`: `Verify { check_signature / check_hash:
//! false }`. `allow-downgrade`: `min_security_counter: None`.
//! `confirm-at-boot`: a test image confirms at power-on, before any hub
//! session. `no-resume`: every (re)start is from byte 0 and progress is
//! never persisted. `reinstall-same-version`, `one-update-per-boot`,
//! `trust-announced-hash` (`Verify { check_image: false }`), `ignore-cancel`,
//! `retry-reverted-image`: see [`Fault`].

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::faults::{Fault, FaultSet};
use crate::rotation::{json_opt, json_string};

mod record;

pub use record::{Job, OtaRecord, Phase};

/// The reported `firmware.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtaState {
    /// No update on record (a new device, or the record was unreadable).
    Idle,
    /// Fetching the image into the secondary slot (also while waiting to
    /// resume an interrupted download).
    Downloading,
    /// All bytes are in; the shell checks size, hash, signature and security
    /// counter.
    Verifying,
    /// Verified and marked for a test boot; the device is about to reset.
    Rebooting,
    /// The new image runs on a test boot; it confirms itself once it has a
    /// hub session.
    Testing,
    /// The new image reached the hub and confirmed itself: the update is done.
    Confirmed,
    /// The new image was not confirmed and the bootloader went back to the
    /// old one.
    Reverted,
    /// The update was refused (download failed, or a check failed); the old
    /// image keeps running. `reason` says why.
    Rejected,
    /// The desired firmware went back to the running version while the
    /// image was downloading: the download stopped, nothing was installed.
    Cancelled,
}

impl OtaState {
    /// The reported string.
    pub fn as_str(self) -> &'static str {
        match self {
            OtaState::Idle => "idle",
            OtaState::Downloading => "downloading",
            OtaState::Verifying => "verifying",
            OtaState::Rebooting => "rebooting",
            OtaState::Testing => "testing",
            OtaState::Confirmed => "confirmed",
            OtaState::Reverted => "reverted",
            OtaState::Rejected => "rejected",
            OtaState::Cancelled => "cancelled",
        }
    }
}

/// Desired `firmware`: what to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareTarget {
    /// Version of the image; a target naming the running version installs
    /// nothing (and cancels a download under way).
    pub version: String,
    /// Where to download the image (HTTPS with the device credential;
    /// resumed with `Range`).
    pub url: String,
    /// SHA-256 of the whole image file; also how a refused image is
    /// recognised and not tried again.
    pub sha256: [u8; 32],
    /// Size of the whole image file, bytes: the download must end exactly
    /// there (0 is rejected).
    pub size: u32,
}

/// Parses 64 hex digits (either case) into a SHA-256 digest.
pub fn parse_sha256_hex(hex: &str) -> Option<[u8; 32]> {
    let b = hex.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = nibble(b[2 * i])? << 4 | nibble(b[2 * i + 1])?;
    }
    Some(out)
}

/// What the bootloader and the running image tell the device at power-on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootInfo {
    /// Version of the running image.
    pub version: String,
    /// Slot the running image executes from (reported as `firmware.slot`).
    pub slot: u8,
    /// Security counter of the running image.
    pub security_counter: u32,
    /// The running image is on a test boot (not yet confirmed).
    pub test_boot: bool,
    /// The bootloader reverted an unconfirmed test image at this reset.
    pub reverted: bool,
}

/// Why the shell's verification refused the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyFailure {
    /// The image in the slot is not the announced size.
    Size {
        /// The announced size, bytes.
        expected: u32,
        /// The size found: bytes received, or the length the image itself
        /// declares.
        actual: u32,
    },
    /// The SHA-256 is not the announced one (or not the one in the TLVs).
    Hash,
    /// The MCUboot signature does not verify with the built-in key.
    Signature,
    /// The image's security counter is lower than the running image's.
    SecurityCounter {
        /// The new image's security counter.
        image: u32,
        /// The running image's security counter, the lowest accepted.
        minimum: u32,
    },
    /// Not an MCUboot image (header or TLVs malformed).
    Malformed(String),
    /// The image's board identity TLV names another board.
    Board {
        /// The board the image names.
        image: String,
        /// This device's board.
        device: String,
    },
}

impl fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyFailure::Size { expected, actual } => {
                write!(f, "size mismatch: {actual} bytes, expected {expected}")
            }
            VerifyFailure::Hash => f.write_str("sha256 mismatch"),
            VerifyFailure::Signature => {
                f.write_str("bad signature: not signed by the built-in key")
            }
            VerifyFailure::SecurityCounter { image, minimum } => {
                write!(
                    f,
                    "security counter {image} is lower than the running image's {minimum}"
                )
            }
            VerifyFailure::Malformed(why) => write!(f, "malformed image: {why}"),
            VerifyFailure::Board { image, device } => {
                write!(
                    f,
                    "wrong board: the image is for {image:?}, this is {device:?}"
                )
            }
        }
    }
}

/// Events the shell (or the session) feeds in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtaEvent {
    /// A hub session is up.
    SessionEstablished,
    /// The hub session is gone.
    SessionLost,
    /// Desired `firmware` (twin GET or patch); `None` when absent.
    Desired(Option<FirmwareTarget>),
    /// Bytes of the image starting at `offset` (of the whole image).
    Chunk {
        /// Position of `data[0]` in the image, bytes.
        offset: u32,
        /// The bytes received.
        data: Vec<u8>,
    },
    /// The download stopped early (link loss, timeout, connection reset).
    DownloadInterrupted {
        /// What stopped it (informational: the download resumes either way).
        reason: String,
    },
    /// The download cannot succeed (e.g. HTTP 404): give this target up.
    DownloadFailed {
        /// Why it cannot succeed; reported as the rejection reason.
        reason: String,
    },
    /// Answer to [`OtaAction::Verify`]: all requested checks passed.
    Verified,
    /// Answer to [`OtaAction::Verify`]: a check failed.
    VerifyFailed(VerifyFailure),
    /// Time passed (see [`Ota::next_deadline`]).
    Tick,
}

/// What the shell must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtaAction {
    /// Store this record (replacing the previous one); read it back at
    /// power-on with [`OtaRecord::decode`].
    PersistRecord(OtaRecord),
    /// Erase the secondary slot (before a download from byte 0).
    EraseSecondary,
    /// GET `url` over HTTPS (mTLS), from byte `offset` (`Range: bytes=N-`
    /// when N > 0); feed [`OtaEvent::Chunk`]s.
    StartDownload {
        /// The image's URL, from the target.
        url: String,
        /// First byte wanted: the bytes already in the secondary slot.
        offset: u32,
    },
    /// Stop the download in progress, if any.
    AbortDownload,
    /// Write `data` at `offset` of the secondary slot.
    WriteChunk {
        /// Offset in the secondary slot (= in the image), bytes.
        offset: u32,
        /// The bytes to write; never overlaps bytes already written.
        data: Vec<u8>,
    },
    /// Run MCUboot's checks on the secondary slot; answer `Verified` or
    /// `VerifyFailed`. The size is always checked.
    Verify {
        /// The SHA-256 the target announced.
        expected_sha256: [u8; 32],
        /// The size the target announced, bytes.
        expected_size: u32,
        /// Check the image's SHA-256 (false only with the `skip-hash` fault).
        check_hash: bool,
        /// Check the MCUboot signature (false only with the `skip-signature`
        /// fault).
        check_signature: bool,
        /// Refuse an image whose security counter is below this.
        min_security_counter: Option<u32>,
        /// Check the image itself (MCUboot structure, own hash, signature,
        /// board, counter) beyond the announced SHA-256 and size (false only
        /// with the `trust-announced-hash` fault).
        check_image: bool,
    },
    /// Mark the secondary slot for a test boot at the next reset.
    MarkTestBoot,
    /// Reset the device.
    Reset,
    /// Confirm the running image (set `image_ok`).
    Confirm,
    /// Report `firmware` in the twin.
    Report(FirmwareReport),
}

/// The reported `firmware` property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareReport {
    /// The running version.
    pub version: String,
    /// Slot the running image executes from.
    pub slot: u8,
    /// Where the update stands, or how the last one ended.
    pub state: OtaState,
    /// Why the last update was rejected or reverted; `None` otherwise.
    pub reason: Option<String>,
}

impl FirmwareReport {
    /// `{"version":…,"slot":…,"state":…,"reason":…}`.
    pub fn to_json(&self) -> String {
        format!(
            r#"{{"version":{},"slot":{},"state":"{}","reason":{}}}"#,
            json_string(&self.version),
            self.slot,
            self.state.as_str(),
            json_opt(self.reason.as_deref())
        )
    }
}

/// Timing of the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtaConfig {
    /// Retry an interrupted download after this long if no new session
    /// comes first, ms (≥ 10 s keeps the HTTPS attempts within MT-12's rate).
    pub retry_ms: u64,
    /// A test image without a hub session for this long resets (and so is
    /// reverted), ms.
    pub test_timeout_ms: u64,
}

impl Default for OtaConfig {
    fn default() -> Self {
        OtaConfig {
            retry_ms: 30_000,
            test_timeout_ms: 300_000,
        }
    }
}

/// The OTA machine.
#[derive(Debug, Clone)]
pub struct Ota {
    boot: BootInfo,
    config: OtaConfig,
    faults: FaultSet,
    record: OtaRecord,
    state: OtaState,
    reason: Option<String>,
    connected: bool,
    /// A download is in flight.
    transferring: bool,
    retry_at: Option<u64>,
    test_deadline: Option<u64>,
    /// An update was confirmed since power-on.
    updated_this_boot: bool,
}

impl Ota {
    /// Recovers at power-on from the bootloader's report and the persisted
    /// record (`None`: none, or unreadable).
    pub fn power_on(
        boot: BootInfo,
        record: Option<OtaRecord>,
        config: OtaConfig,
        faults: FaultSet,
        now_ms: u64,
    ) -> (Ota, Vec<OtaAction>) {
        let record = record.unwrap_or_default();
        let mut ota = Ota {
            state: record.outcome,
            reason: record.reason.clone(),
            record,
            boot,
            config,
            faults,
            connected: false,
            transferring: false,
            retry_at: None,
            test_deadline: None,
            updated_this_boot: false,
        };
        let mut out = Vec::new();
        let job = ota.record.job.clone();
        let expected_new = job.as_ref().is_some_and(|j| j.phase == Phase::Rebooting);
        if ota.boot.test_boot {
            ota.state = OtaState::Testing;
            ota.reason = None;
            if faults.has(Fault::ConfirmAtBoot) {
                ota.confirm(&mut out);
            } else {
                ota.test_deadline = Some(now_ms + config.test_timeout_ms);
            }
        } else if let Some(job) = job {
            match job.phase {
                Phase::Rebooting
                    if job.target.version == ota.boot.version && !ota.boot.reverted =>
                {
                    // Confirmed, then cut before the record said so.
                    ota.finish(OtaState::Confirmed, None, None, &mut out);
                }
                Phase::Rebooting => {
                    let reason = format!(
                        "test boot of {} was not confirmed; reverted to {}",
                        job.target.version, ota.boot.version
                    );
                    // Fault retry-reverted-image: forgets the image it reverted.
                    let refuse =
                        (!faults.has(Fault::RetryRevertedImage)).then_some(job.target.sha256);
                    ota.finish(OtaState::Reverted, Some(reason), refuse, &mut out);
                }
                Phase::Verifying => {
                    ota.state = OtaState::Verifying;
                    out.push(ota.verify_action());
                }
                Phase::Downloading { .. } => {
                    ota.state = OtaState::Downloading;
                    if faults.has(Fault::NoResume) {
                        ota.set_offset(0);
                    }
                }
            }
        }
        if ota.boot.reverted && !expected_new && ota.state != OtaState::Reverted {
            // The bootloader reverted an image this record knows nothing of.
            let reason = format!(
                "the bootloader reverted an unconfirmed image; running {}",
                ota.boot.version
            );
            ota.finish(OtaState::Reverted, Some(reason), None, &mut out);
        }
        (ota, out)
    }

    /// The state as reported.
    pub fn state(&self) -> OtaState {
        self.state
    }

    /// The record as last persisted.
    pub fn record(&self) -> &OtaRecord {
        &self.record
    }

    /// When [`OtaEvent::Tick`] is next needed.
    pub fn next_deadline(&self) -> Option<u64> {
        match (self.retry_at, self.test_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The `firmware` report for the current state.
    pub fn report(&self) -> FirmwareReport {
        FirmwareReport {
            version: self.boot.version.clone(),
            slot: self.boot.slot,
            state: self.state,
            reason: self.reason.clone(),
        }
    }

    /// Feeds one event; returns the actions to perform, in order.
    pub fn handle(&mut self, event: OtaEvent, now_ms: u64) -> Vec<OtaAction> {
        let mut out = Vec::new();
        match event {
            OtaEvent::SessionEstablished => {
                self.connected = true;
                if self.state == OtaState::Testing {
                    // The new image reached the hub: that is the proof it works.
                    self.confirm(&mut out);
                } else {
                    out.push(OtaAction::Report(self.report()));
                    self.resume(&mut out);
                }
            }
            OtaEvent::SessionLost => self.connected = false,
            OtaEvent::Desired(Some(target)) => self.desired(target, &mut out),
            OtaEvent::Desired(None) => {}
            OtaEvent::Chunk { offset, data } => self.chunk(offset, data, &mut out),
            OtaEvent::DownloadInterrupted { .. } if self.transferring => {
                self.transferring = false;
                self.retry_at = Some(now_ms + self.config.retry_ms);
                if self.faults.has(Fault::NoResume) {
                    self.set_offset(0);
                }
            }
            OtaEvent::DownloadFailed { reason } if self.state == OtaState::Downloading => {
                self.transferring = false;
                self.finish(
                    OtaState::Rejected,
                    Some(format!("download failed: {reason}")),
                    None,
                    &mut out,
                );
            }
            OtaEvent::Verified if self.state == OtaState::Verifying => {
                if let Some(job) = &mut self.record.job {
                    job.phase = Phase::Rebooting;
                }
                self.state = OtaState::Rebooting;
                // Mark before recording "rebooting": a cut in between then
                // test-boots the image, which the new image recognises,
                // instead of the record claiming a test boot that never was.
                out.push(OtaAction::MarkTestBoot);
                out.push(OtaAction::PersistRecord(self.record.clone()));
                out.push(OtaAction::Report(self.report()));
                out.push(OtaAction::Reset);
            }
            OtaEvent::VerifyFailed(failure) if self.state == OtaState::Verifying => {
                let sha = self.record.job.as_ref().map(|j| j.target.sha256);
                self.finish(OtaState::Rejected, Some(failure.to_string()), sha, &mut out);
            }
            OtaEvent::Tick => {
                if self.test_deadline.is_some_and(|d| now_ms >= d) {
                    // No hub for too long: reset unconfirmed, the bootloader reverts.
                    self.test_deadline = None;
                    out.push(OtaAction::Reset);
                }
                if self.retry_at.is_some_and(|r| now_ms >= r) {
                    // Offline, this does nothing and the next session
                    // resumes; either way the deadline is spent (a past
                    // deadline would make the shell spin).
                    self.retry_at = None;
                    self.resume(&mut out);
                }
            }
            OtaEvent::DownloadInterrupted { .. }
            | OtaEvent::DownloadFailed { .. }
            | OtaEvent::Verified
            | OtaEvent::VerifyFailed(_) => {}
        }
        out
    }

    fn desired(&mut self, target: FirmwareTarget, out: &mut Vec<OtaAction>) {
        let busy = matches!(
            self.state,
            OtaState::Verifying | OtaState::Rebooting | OtaState::Testing
        );
        let same_job = self.record.job.as_ref().is_some_and(|j| j.target == target);
        if busy || same_job {
            return;
        }
        if target.version == self.boot.version && !self.faults.has(Fault::ReinstallSameVersion) {
            return self.running_version(target, out);
        }
        if self.record.refused == Some(target.sha256) {
            let why = format!(
                "not installed: the image of {} was rejected or reverted before",
                target.version
            );
            return self.decline(why, out);
        }
        if self.faults.has(Fault::OneUpdatePerBoot) && self.updated_this_boot {
            let reason = format!("{} refused: an update is in progress", target.version);
            return self.finish(OtaState::Rejected, Some(reason), None, out);
        }
        if self.transferring {
            out.push(OtaAction::AbortDownload);
            self.transferring = false;
        }
        if target.size == 0 {
            let reason = format!("firmware {} announces size 0", target.version);
            self.finish(OtaState::Rejected, Some(reason), Some(target.sha256), out);
            return;
        }
        self.record.job = Some(Job {
            target,
            phase: Phase::Downloading { offset: 0 },
        });
        self.state = OtaState::Downloading;
        self.reason = None;
        out.push(OtaAction::PersistRecord(self.record.clone()));
        out.push(OtaAction::Report(self.report()));
        self.resume(out);
    }

    /// A target naming the running version: cancels a download under way,
    /// else installs nothing and says so.
    fn running_version(&mut self, target: FirmwareTarget, out: &mut Vec<OtaAction>) {
        let downloading = match &self.record.job {
            Some(Job {
                target: t,
                phase: Phase::Downloading { .. },
            }) => Some(t.version.clone()),
            _ => None,
        };
        match downloading {
            // Fault ignore-cancel: the download carries on.
            Some(_) if self.faults.has(Fault::IgnoreCancel) => {}
            Some(from) => {
                if self.transferring {
                    out.push(OtaAction::AbortDownload);
                    self.transferring = false;
                }
                let reason = format!(
                    "cancelled: desired firmware is {}, the running version; {from} not installed",
                    target.version
                );
                self.finish(OtaState::Cancelled, Some(reason), None, out);
            }
            None => {
                let why = format!("not installed: {} is already running", target.version);
                self.decline(why, out);
            }
        }
    }

    /// Answers a target it will not install: the state as it is, `why` as
    /// the reason (not persisted: the record keeps the last outcome's).
    fn decline(&mut self, why: String, out: &mut Vec<OtaAction>) {
        out.push(OtaAction::Report(FirmwareReport {
            reason: Some(why),
            ..self.report()
        }));
    }

    /// (Re)starts the download at the recorded offset if one is due and the
    /// network is there.
    fn resume(&mut self, out: &mut Vec<OtaAction>) {
        let Some(Job {
            target,
            phase: Phase::Downloading { offset },
        }) = &self.record.job
        else {
            return;
        };
        if self.transferring || !self.connected {
            return;
        }
        let offset = if self.faults.has(Fault::NoResume) {
            0
        } else {
            *offset
        };
        if offset == 0 {
            out.push(OtaAction::EraseSecondary);
        }
        out.push(OtaAction::StartDownload {
            url: target.url.clone(),
            offset,
        });
        self.transferring = true;
        self.retry_at = None;
    }

    fn chunk(&mut self, at: u32, data: Vec<u8>, out: &mut Vec<OtaAction>) {
        let Some(Job {
            target,
            phase: Phase::Downloading { offset },
        }) = &self.record.job
        else {
            return;
        };
        if !self.transferring {
            return;
        }
        let (offset, size, sha) = (*offset, target.size, target.sha256);
        let end = u64::from(at) + data.len() as u64;
        if at > offset {
            // A gap: never write around a hole; ask again from where we are.
            out.push(OtaAction::AbortDownload);
            self.transferring = false;
            self.resume(out);
            return;
        }
        if end <= u64::from(offset) {
            return; // Bytes we already have (a server that ignored Range).
        }
        if end > u64::from(size) {
            out.push(OtaAction::AbortDownload);
            self.transferring = false;
            let reason = VerifyFailure::Size {
                expected: size,
                actual: end.min(u64::from(u32::MAX)) as u32,
            };
            self.finish(
                OtaState::Rejected,
                Some(format!("{reason} (download exceeds it)")),
                Some(sha),
                out,
            );
            return;
        }
        let fresh = data[(offset - at) as usize..].to_vec();
        let new_offset = end as u32;
        out.push(OtaAction::WriteChunk {
            offset,
            data: fresh,
        });
        self.set_offset(new_offset);
        if new_offset == size {
            self.transferring = false;
            if let Some(job) = &mut self.record.job {
                job.phase = Phase::Verifying;
            }
            self.state = OtaState::Verifying;
            out.push(OtaAction::PersistRecord(self.record.clone()));
            out.push(OtaAction::Report(self.report()));
            out.push(self.verify_action());
        } else if !self.faults.has(Fault::NoResume) {
            out.push(OtaAction::PersistRecord(self.record.clone()));
        }
    }

    fn set_offset(&mut self, new: u32) {
        if let Some(Job {
            phase: Phase::Downloading { offset },
            ..
        }) = &mut self.record.job
        {
            *offset = new;
        }
    }

    fn verify_action(&self) -> OtaAction {
        let (sha, size) = self
            .record
            .job
            .as_ref()
            .map_or(([0; 32], 0), |j| (j.target.sha256, j.target.size));
        OtaAction::Verify {
            expected_sha256: sha,
            expected_size: size,
            check_hash: !self.faults.has(Fault::SkipHash),
            check_signature: !self.faults.has(Fault::SkipSignature),
            min_security_counter: (!self.faults.has(Fault::AllowDowngrade))
                .then_some(self.boot.security_counter),
            check_image: !self.faults.has(Fault::TrustAnnouncedHash),
        }
    }

    fn confirm(&mut self, out: &mut Vec<OtaAction>) {
        self.test_deadline = None;
        self.updated_this_boot = true;
        // Confirm first: a cut before the record is updated is recognised at
        // the next power-on (running = target, not a test boot).
        out.push(OtaAction::Confirm);
        self.finish(OtaState::Confirmed, None, None, out);
    }

    /// Ends the job in `state`; `refuse` marks an image not to try again.
    fn finish(
        &mut self,
        state: OtaState,
        reason: Option<String>,
        refuse: Option<[u8; 32]>,
        out: &mut Vec<OtaAction>,
    ) {
        self.record.job = None;
        self.record.outcome = state;
        self.record.reason = reason.clone();
        if refuse.is_some() {
            self.record.refused = refuse;
        }
        self.state = state;
        self.reason = reason;
        self.retry_at = None;
        out.push(OtaAction::PersistRecord(self.record.clone()));
        out.push(OtaAction::Report(self.report()));
    }
}

#[cfg(test)]
mod tests;
