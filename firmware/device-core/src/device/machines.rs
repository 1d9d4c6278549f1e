//! The rotation and OTA machines' actions, carried into the device's own
//! actions, and the answers the shell gives fed back to them. The machines
//! decide; here their requests become IO requests, and requests the device
//! can answer itself (the verification of an image, the shared key of the
//! `shared-identity` fault) are answered on the spot.

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use rand_core::Rng;

use super::ota_verify::{verify_image, VerifyRequest};
use super::route::baked_key;
use super::{Action, Device, Event};
use crate::faults::Fault;
use crate::ota::{OtaAction, OtaEvent};
use crate::rotation::{RotationAction, RotationEvent};

impl<R: Rng> Device<R> {
    /// Answers to actions (everything but the transport events).
    pub(super) fn answer(&mut self, event: Event<'_>, now_ms: u64) {
        let rotation_event = match event {
            Event::KeyGenerated(key) => {
                if let Some(slot) = self.generating_for.take() {
                    self.log(format!("rotation: new key pair generated for slot {slot}"));
                }
                RotationEvent::KeyGenerated(key)
            }
            Event::KeyGenerationFailed { reason } => {
                self.generating_for = None;
                RotationEvent::Failed {
                    reason: format!("generating a key: {reason}"),
                }
            }
            Event::CsrBuilt(Ok(der)) => RotationEvent::CsrBuilt(der),
            Event::CsrBuilt(Err(e)) => RotationEvent::Failed {
                reason: format!("building the CSR: {e}"),
            },
            Event::Enrolled {
                cert_der,
                not_after_ms,
                not_before_ms,
            } => RotationEvent::Enrolled {
                cert_der,
                not_after_ms,
                not_before_ms,
            },
            Event::EnrollRefused { status, reason } => {
                RotationEvent::EnrollRefused { status, reason }
            }
            Event::EnrollFailed { reason } => RotationEvent::Failed { reason },
            other => return self.answer_ota(other, now_ms),
        };
        let a = self.rotation.handle(rotation_event, now_ms);
        self.rotation_actions(a, now_ms);
    }

    fn answer_ota(&mut self, event: Event<'_>, now_ms: u64) {
        let ota_event = match event {
            Event::DownloadChunk { offset, data } => {
                if core::mem::take(&mut self.awaiting_first_chunk) {
                    // Once per (re)start: the bench knows bytes are arriving.
                    self.log(format!("OTA: receiving from byte {offset}"));
                }
                // An offset past 4 GiB cannot be in a slot: a gap the machine refuses.
                let offset = u32::try_from(offset).unwrap_or(u32::MAX);
                OtaEvent::Chunk {
                    offset,
                    data: data.to_vec(),
                }
            }
            Event::DownloadEnded(Err(reason)) => OtaEvent::DownloadInterrupted {
                reason: String::from(reason),
            },
            Event::SecondaryRead(bytes) => {
                let Some(req) = self.verify.take() else {
                    return;
                };
                // Fault any-known-signer: every key it knows signs firmware;
                // fault any-board: the image's board is not looked at.
                let mut keys = self.config.image_keys.clone();
                if self.config.faults.has(Fault::AnyKnownSigner) {
                    keys.extend(self.config.other_keys.iter().cloned());
                }
                let board = (!self.config.faults.has(Fault::AnyBoard))
                    .then_some(self.config.board.as_str());
                let result = verify_image(bytes, &req, &keys, board);
                self.log(format!("OTA verification: {result:?}"));
                match result {
                    Ok(()) => OtaEvent::Verified,
                    Err(f) => OtaEvent::VerifyFailed(f),
                }
            }
            _ => return,
        };
        let a = self.ota.handle(ota_event, now_ms);
        self.ota_actions(a);
    }

    /// Timers of the rotation and OTA machines.
    pub(super) fn tick(&mut self, now_ms: u64) {
        if self.rotation.next_deadline().is_some_and(|d| d <= now_ms) {
            let a = self.rotation.handle(RotationEvent::Tick, now_ms);
            self.rotation_actions(a, now_ms);
        }
        if self.ota.next_deadline().is_some_and(|d| d <= now_ms) {
            let a = self.ota.handle(OtaEvent::Tick, now_ms);
            self.ota_actions(a);
        }
    }

    pub(super) fn rotation_actions(&mut self, actions: Vec<RotationAction>, now_ms: u64) {
        let mut queue = VecDeque::from(actions);
        while let Some(action) = queue.pop_front() {
            match action {
                RotationAction::Persist(writes) => {
                    self.out.push_back(Action::PersistKeystore(writes))
                }
                RotationAction::GenerateKey { slot } => {
                    if let Some(key) = baked_key(self.config.faults) {
                        // The fault: not a new key, the one baked into every device.
                        self.log(format!("rotation: new key pair generated for slot {slot}"));
                        queue.extend(
                            self.rotation
                                .handle(RotationEvent::KeyGenerated(key), now_ms),
                        );
                    } else {
                        self.generating_for = Some(slot);
                        self.out.push_back(Action::GenerateKey { slot });
                    }
                }
                RotationAction::BuildCsr {
                    slot,
                    include_private_key,
                } => {
                    let ks = self.rotation.keystore();
                    let key = match ks.pending() {
                        Some(p) if p.slot == slot => Some(p.key.clone()),
                        _ => ks.active().map(|c| c.key.clone()),
                    };
                    // Fault `rotate-new-subject`: a generated name, not the
                    // subject of the certificate being renewed.
                    let common_name = if self.config.faults.has(Fault::RotateNewSubject) {
                        format!("{}-{:08x}", self.config.device_id, self.rng.next_u32())
                    } else {
                        self.config.device_id.clone()
                    };
                    match key {
                        Some(key) => self.out.push_back(Action::BuildCsr {
                            key,
                            common_name,
                            include_private_key,
                        }),
                        None => queue.extend(self.rotation.handle(
                            RotationEvent::Failed {
                                reason: "building the CSR: no key for it".into(),
                            },
                            now_ms,
                        )),
                    }
                }
                RotationAction::PostSimpleReenroll { csr_der } => {
                    self.log("rotation: POST simplereenroll".into());
                    self.out.push_back(Action::PostSimpleReenroll { csr_der });
                }
                RotationAction::Reconnect { slot } => {
                    self.log(format!(
                        "rotation: reconnecting with the credential in slot {slot}"
                    ));
                    self.reconnect_now = true;
                }
                RotationAction::Report(r) => self.report_state("credentials", r.to_json()),
            }
        }
    }

    pub(super) fn ota_actions(&mut self, actions: Vec<OtaAction>) {
        for action in actions {
            if let Some(req) = VerifyRequest::from_action(&action) {
                // Answered by Event::SecondaryRead: the device verifies what
                // is in flash, not what it thinks it wrote.
                self.verify = Some(req);
                self.out.push_back(Action::ReadSecondary {
                    len: req.expected_size,
                });
                continue;
            }
            match action {
                OtaAction::PersistRecord(record) => {
                    self.out.push_back(Action::PersistOta(record.encode()))
                }
                OtaAction::EraseSecondary => self.out.push_back(Action::EraseSecondary),
                OtaAction::StartDownload { url, offset } => {
                    let path = url_path(&url);
                    self.log(format!("OTA: downloading {path} from byte {offset}"));
                    self.awaiting_first_chunk = true;
                    self.out.push_back(Action::StartDownload {
                        path,
                        offset: u64::from(offset),
                        cleartext: self.config.faults.has(Fault::OtaOverHttp),
                    });
                }
                OtaAction::AbortDownload => self.out.push_back(Action::AbortDownload),
                OtaAction::WriteChunk { offset, data } => {
                    self.out.push_back(Action::WriteSecondary { offset, data })
                }
                OtaAction::MarkTestBoot => self.out.push_back(Action::MarkTestBoot),
                OtaAction::Reset => {
                    self.log("OTA: resetting into the new image".into());
                    self.exit = true;
                }
                OtaAction::Confirm => {
                    self.out.push_back(Action::ConfirmImage);
                    self.log("OTA: image confirmed".into());
                }
                OtaAction::Report(r) => self.report_state("firmware", r.to_json()),
                OtaAction::Verify { .. } => {}
            }
        }
    }
}

/// The path of `https://{hub-host}/firmware/NAME`: the device fetches from
/// its provisioned hub only, whatever host the URL names.
pub(super) fn url_path(url: &str) -> String {
    let rest = url.find("://").map_or(url, |i| &url[i + 3..]);
    String::from(rest.find('/').map_or("/", |i| &rest[i..]))
}
