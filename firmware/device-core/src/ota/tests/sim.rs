//! The emulated board, shell and hub the OTA tests drive the machine with:
//! MCUboot swap-with-revert, the slots, the OTA record and a chunked
//! download that honours `Range`.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use sha2::{Digest, Sha256};

use super::super::*;

pub(super) const CHUNK: usize = 1_000;

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Image {
    pub(super) version: String,
    pub(super) counter: u32,
    pub(super) signed: bool,
    pub(super) bytes: Vec<u8>,
}

pub(super) fn image(version: &str, counter: u32, len: usize) -> Image {
    let bytes = (0..len).map(|i| (i * 7 + counter as usize) as u8).collect();
    Image {
        version: version.into(),
        counter,
        signed: true,
        bytes,
    }
}

/// What survives a power cut: the two slots as the bootloader sees them,
/// MCUboot's flags and the OTA record.
pub(super) struct Board {
    pub(super) primary: Image,
    /// Raw bytes of the secondary slot.
    pub(super) secondary: Vec<u8>,
    /// The image the secondary held before a swap (to revert to).
    pub(super) previous: Option<Image>,
    pub(super) pending_test: bool,
    pub(super) primary_ok: bool,
    pub(super) record: Option<Vec<u8>>,
}

/// The emulated board + shell + hub around the machine.
pub(super) struct Sim {
    pub(super) board: Board,
    pub(super) ota: Option<Ota>,
    pub(super) faults: FaultSet,
    pub(super) now: u64,
    pub(super) served: Image,
    pub(super) link_up: bool,
    pub(super) transfer: Option<u32>,
    pub(super) events: VecDeque<OtaEvent>,
    pub(super) requests: Vec<u32>,
    pub(super) reports: Vec<FirmwareReport>,
    pub(super) verifies: Vec<OtaAction>,
    pub(super) confirms_before_session: usize,
    pub(super) sessions_this_boot: usize,
    pub(super) boots: Vec<BootInfo>,
    /// Power dies at this action number; a `PersistRecord` there lands torn.
    pub(super) cut_at: Option<usize>,
    /// After the device's own reset the image reaches the hub.
    pub(super) hub_after_reset: bool,
    pub(super) actions_done: usize,
}

pub(super) fn target_of(img: &Image) -> FirmwareTarget {
    FirmwareTarget {
        version: img.version.clone(),
        url: alloc::format!("https://hub/firmware/{}.img", img.version),
        sha256: Sha256::digest(&img.bytes).into(),
        size: img.bytes.len() as u32,
    }
}

impl Sim {
    pub(super) fn new(faults: FaultSet, served: Image) -> Sim {
        let board = Board {
            primary: image("1.0.0", 1, 3_000),
            secondary: Vec::new(),
            previous: None,
            pending_test: false,
            primary_ok: true,
            record: None,
        };
        let mut sim = Sim {
            board,
            ota: None,
            faults,
            now: 1_000,
            served,
            link_up: true,
            transfer: None,
            events: VecDeque::new(),
            requests: Vec::new(),
            reports: Vec::new(),
            verifies: Vec::new(),
            confirms_before_session: 0,
            sessions_this_boot: 0,
            boots: Vec::new(),
            cut_at: None,
            actions_done: 0,
            hub_after_reset: true,
        };
        sim.power_on();
        sim
    }

    /// The bootloader (MCUboot swap with revert), then the image's power-on.
    pub(super) fn power_on(&mut self) {
        let b = &mut self.board;
        let mut reverted = false;
        if b.pending_test {
            let new = Image {
                bytes: b.secondary.clone(),
                ..self.served.clone()
            };
            let old = core::mem::replace(&mut b.primary, new);
            b.secondary = old.bytes.clone();
            b.previous = Some(old);
            b.pending_test = false;
            b.primary_ok = false;
        } else if !b.primary_ok {
            let old = b
                .previous
                .take()
                .expect("an unconfirmed image always has one to revert to");
            b.secondary = core::mem::replace(&mut b.primary, old).bytes;
            b.primary_ok = true;
            reverted = true;
        }
        let boot = BootInfo {
            version: b.primary.version.clone(),
            slot: 0,
            security_counter: b.primary.counter,
            test_boot: !b.primary_ok,
            reverted,
        };
        self.boots.push(boot.clone());
        let record = b.record.as_deref().and_then(OtaRecord::decode);
        let (ota, actions) =
            Ota::power_on(boot, record, OtaConfig::default(), self.faults, self.now);
        self.ota = Some(ota);
        self.sessions_this_boot = 0;
        self.execute(actions);
    }

    pub(super) fn power_cut(&mut self) {
        self.ota = None;
        self.transfer = None;
        self.events.clear();
    }

    pub(super) fn send(&mut self, event: OtaEvent) {
        self.events.push_back(event);
        self.settle();
    }

    /// Runs events and the download until nothing moves.
    pub(super) fn settle(&mut self) {
        for _ in 0..100_000 {
            if self.ota.is_none() {
                return;
            }
            if let Some(e) = self.events.pop_front() {
                if e == OtaEvent::SessionEstablished {
                    self.sessions_this_boot += 1;
                }
                let actions = self.ota.as_mut().unwrap().handle(e, self.now);
                self.execute(actions);
            } else if let (Some(at), true) = (self.transfer, self.link_up) {
                let bytes = &self.served.bytes;
                if at as usize >= bytes.len() {
                    self.transfer = None;
                    self.events.push_back(OtaEvent::DownloadFailed {
                        reason: "416 range not satisfiable".into(),
                    });
                    continue;
                }
                let end = (at as usize + CHUNK).min(bytes.len());
                self.transfer = Some(end as u32);
                self.events.push_back(OtaEvent::Chunk {
                    offset: at,
                    data: bytes[at as usize..end].to_vec(),
                });
            } else {
                return;
            }
        }
        panic!("the simulation does not settle");
    }

    pub(super) fn execute(&mut self, actions: Vec<OtaAction>) {
        for action in actions {
            if self.ota.is_none() {
                return;
            }
            if self.cut_at == Some(self.actions_done) {
                if let OtaAction::PersistRecord(r) = &action {
                    let bytes = r.encode();
                    self.board.record = Some(bytes[..bytes.len() / 2].to_vec());
                }
                self.cut_at = None;
                self.power_cut();
                return;
            }
            self.actions_done += 1;
            match action {
                OtaAction::PersistRecord(r) => self.board.record = Some(r.encode()),
                OtaAction::EraseSecondary => self.board.secondary.clear(),
                OtaAction::StartDownload { offset, .. } => {
                    self.requests.push(offset);
                    self.transfer = Some(offset);
                }
                OtaAction::AbortDownload => self.transfer = None,
                OtaAction::WriteChunk { offset, data } => {
                    let end = offset as usize + data.len();
                    if self.board.secondary.len() < end {
                        self.board.secondary.resize(end, 0xff);
                    }
                    self.board.secondary[offset as usize..end].copy_from_slice(&data);
                }
                OtaAction::Verify {
                    expected_sha256,
                    expected_size,
                    check_hash,
                    check_signature,
                    min_security_counter,
                    ..
                } => {
                    self.verifies.push(action.clone());
                    let slot = &self.board.secondary;
                    let result = if slot.len() != expected_size as usize {
                        OtaEvent::VerifyFailed(VerifyFailure::Size {
                            expected: expected_size,
                            actual: slot.len() as u32,
                        })
                    } else if check_hash && Sha256::digest(slot).as_slice() != expected_sha256 {
                        OtaEvent::VerifyFailed(VerifyFailure::Hash)
                    } else if check_signature && !self.served.signed {
                        OtaEvent::VerifyFailed(VerifyFailure::Signature)
                    } else if let Some(min) =
                        min_security_counter.filter(|m| self.served.counter < *m)
                    {
                        OtaEvent::VerifyFailed(VerifyFailure::SecurityCounter {
                            image: self.served.counter,
                            minimum: min,
                        })
                    } else {
                        OtaEvent::Verified
                    };
                    self.events.push_back(result);
                }
                OtaAction::MarkTestBoot => self.board.pending_test = true,
                OtaAction::Reset => {
                    self.power_cut();
                    self.power_on();
                    if self.hub_after_reset && self.ota.is_some() {
                        self.events.push_back(OtaEvent::SessionEstablished);
                    }
                    return;
                }
                OtaAction::Confirm => {
                    if self.sessions_this_boot == 0 {
                        self.confirms_before_session += 1;
                    }
                    self.board.primary_ok = true;
                }
                OtaAction::Report(r) => self.reports.push(r),
            }
        }
    }

    /// A session comes up and the twin GET delivers the desired firmware.
    pub(super) fn session_with_desired(&mut self) {
        self.send(OtaEvent::SessionEstablished);
        let t = target_of(&self.served);
        self.send(OtaEvent::Desired(Some(t)));
    }

    pub(super) fn state(&self) -> OtaState {
        self.ota.as_ref().unwrap().state()
    }

    pub(super) fn running(&self) -> &str {
        &self.board.primary.version
    }

    pub(super) fn states_reported(&self) -> Vec<OtaState> {
        let mut s: Vec<_> = self.reports.iter().map(|r| r.state).collect();
        s.dedup();
        s
    }
}
