//! The real probe: probe-rs over USB (feature `probe-rs`).
//!
//! The session is opened lazily and dropped on any failure or power cut, so a
//! DUT that lost power or a probe that was re-plugged is picked up again on the
//! next call instead of wedging the rig.

use std::path::Path;
use std::time::{Duration, Instant};

use probe_rs::flashing::{self, BinLoader, BinOptions, ElfLoader, ElfOptions};
use probe_rs::probe::list::Lister;
use probe_rs::probe::DebugProbeSelector;
use probe_rs::rtt::{self, Rtt};
use probe_rs::{Permissions, Session};

use super::config::{ProbeConfig, WireProtocol};
use super::probe::{ImageKind, Probe, RttData};
use crate::RigError;

/// After a failed attach, wait this long before trying again, so an unplugged
/// probe is not re-enumerated on every RTT poll.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// A debug probe driven by probe-rs.
pub struct ProbeRsProbe {
    config: ProbeConfig,
    slot_address: Option<u64>,
    session: Option<Session>,
    rtt: Option<Rtt>,
    powered: bool,
    last_failure: Option<Instant>,
}

impl std::fmt::Debug for ProbeRsProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeRsProbe")
            .field("selector", &self.config.selector.to_string())
            .field("chip", &self.config.chip)
            .field("attached", &self.session.is_some())
            .finish()
    }
}

fn device(what: &str, e: impl std::fmt::Display) -> RigError {
    RigError::Device(format!("probe: {what}: {e}"))
}

impl ProbeRsProbe {
    /// Nothing is opened yet: the first flash, reset or RTT read attaches.
    /// `slot_address` is where MCUboot-signed images are written.
    pub fn new(config: ProbeConfig, slot_address: Option<u64>) -> ProbeRsProbe {
        ProbeRsProbe {
            config,
            slot_address,
            session: None,
            rtt: None,
            // Unknown until the rig switches power; assume the board is powered.
            powered: true,
            last_failure: None,
        }
    }

    fn selector(&self) -> DebugProbeSelector {
        DebugProbeSelector {
            vendor_id: self.config.selector.vendor_id,
            product_id: self.config.selector.product_id,
            interface: None,
            serial_number: self.config.selector.serial.clone(),
        }
    }

    fn attach(&mut self) -> Result<&mut Session, RigError> {
        if self.session.is_none() {
            let mut probe = Lister::new()
                .open(self.selector())
                .map_err(|e| device(&format!("open {}", self.config.selector), e))?;
            if let Some(protocol) = self.config.protocol {
                probe
                    .select_protocol(match protocol {
                        WireProtocol::Swd => probe_rs::probe::WireProtocol::Swd,
                        WireProtocol::Jtag => probe_rs::probe::WireProtocol::Jtag,
                    })
                    .map_err(|e| device("select protocol", e))?;
            }
            if let Some(khz) = self.config.speed_khz {
                probe
                    .set_speed(khz.get())
                    .map_err(|e| device("set speed", e))?;
            }
            let session = probe
                .attach(self.config.chip.as_str(), Permissions::default())
                .map_err(|e| device(&format!("attach to {}", self.config.chip), e))?;
            self.session = Some(session);
        }
        Ok(self.session.as_mut().expect("attached above"))
    }

    /// Forget the session (and RTT with it) after a failure, so the next call starts clean.
    fn forget<T>(&mut self, r: Result<T, RigError>) -> Result<T, RigError> {
        if r.is_err() {
            self.rtt = None;
            self.session = None;
            self.last_failure = Some(Instant::now());
        }
        r
    }

    fn try_flash(&mut self, image: &Path) -> Result<(), RigError> {
        let kind = ImageKind::of_file(image)?;
        let slot = self.slot_address;
        let session = self.attach()?;
        let shown = image.display();
        match kind {
            ImageKind::Elf => {
                flashing::download_file(session, image, ElfLoader(ElfOptions::default()))
            }
            ImageKind::Mcuboot => {
                let Some(base) = slot else {
                    return Err(RigError::Setup(format!(
                        "{shown} is an MCUboot-signed image: set image.slot_address in the rig file"
                    )));
                };
                let options = BinOptions {
                    base_address: Some(base),
                    skip: 0,
                };
                flashing::download_file(session, image, BinLoader(options))
            }
        }
        .map_err(|e| device(&format!("flash {shown}"), e))
    }

    fn try_reset(&mut self) -> Result<(), RigError> {
        let session = self.attach()?;
        session
            .core(0)
            .and_then(|mut core| core.reset())
            .map_err(|e| device("reset", e))
    }

    fn try_read_rtt(&mut self) -> Result<Vec<RttData>, RigError> {
        self.attach()?;
        // Split borrows: the core borrows the session while RTT state is updated.
        let (Some(session), rtt) = (self.session.as_mut(), &mut self.rtt) else {
            unreachable!("attach() left a session");
        };
        let mut core = session.core(0).map_err(|e| device("core 0", e))?;
        if rtt.is_none() {
            match Rtt::attach(&mut core) {
                Ok(found) => *rtt = Some(found),
                // The firmware has not set up its control block yet (booting): not an error.
                Err(rtt::Error::ControlBlockNotFound) => return Ok(Vec::new()),
                Err(e) => return Err(device("attach RTT", e)),
            }
        }
        let rtt = rtt.as_mut().expect("attached above");
        let mut out = Vec::new();
        let mut buf = vec![0u8; 4096];
        for channel in rtt.up_channels() {
            let n = channel
                .read(&mut core, &mut buf)
                .map_err(|e| device("read RTT", e))?;
            if n > 0 {
                out.push(RttData {
                    channel: channel.number(),
                    name: channel.name().unwrap_or_default().to_owned(),
                    bytes: buf[..n].to_vec(),
                });
            }
        }
        Ok(out)
    }
}

impl Probe for ProbeRsProbe {
    fn flash(&mut self, image: &Path) -> Result<(), RigError> {
        // A new image means a new control block; RTT re-attaches after the reset.
        self.rtt = None;
        let r = self.try_flash(image);
        self.forget(r)
    }

    fn reset(&mut self) -> Result<(), RigError> {
        self.rtt = None;
        let r = self.try_reset();
        self.forget(r)
    }

    fn read_rtt(&mut self) -> Result<Vec<RttData>, RigError> {
        // Unpowered, or recently failed: do not touch USB on every poll.
        let backing_off = self.last_failure.is_some_and(|t| t.elapsed() < RETRY_AFTER);
        if !self.powered || (self.session.is_none() && backing_off) {
            return Ok(Vec::new());
        }
        let r = self.try_read_rtt();
        self.forget(r)
    }

    fn power_changed(&mut self, on: bool) {
        self.powered = on;
        self.rtt = None;
        if !on {
            // The debug port of an unpowered chip is gone; a new session attaches after power-on.
            self.session = None;
        }
    }
}
