//! The debug probe: flashing, reset and RTT, behind a small trait so the lab
//! rig is tested with a fake that replays a recorded RTT buffer.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::logs::LogSink;
use crate::rtt::poll::{RttPoller, RTT_POLL};
use crate::RigError;

/// Bytes read from one RTT up-channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RttData {
    /// The up-channel's number in the target's RTT control block.
    pub channel: usize,
    /// The channel's name in the target's control block ("" when it has none).
    pub name: String,
    /// The bytes read from the channel this time (consumed from the
    /// target's ring buffer; possibly part of a line).
    pub bytes: Vec<u8>,
}

/// A debug probe attached to the DUT. Calls block (USB traffic); the rig
/// makes them on blocking threads.
pub trait Probe: Send {
    /// Write `image` (see [`ImageKind`]) to the target's flash; the core is halted meanwhile.
    fn flash(&mut self, image: &Path) -> Result<(), RigError>;
    /// Reset the core and let it run.
    fn reset(&mut self) -> Result<(), RigError>;
    /// What the RTT up-channels hold now, without waiting for more. Empty while
    /// the target has no RTT control block yet (still booting, unpowered).
    fn read_rtt(&mut self) -> Result<Vec<RttData>, RigError>;
    /// DUT power was switched. A debug connection does not survive a power cut,
    /// and the firmware sets up a new RTT control block when it boots.
    fn power_changed(&mut self, on: bool);
}

/// What an image file is, from its first bytes (not its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// An ELF file: it says where each segment goes.
    Elf,
    /// An MCUboot image (header magic 0x96f3b83d): written as-is at the boot slot address.
    Mcuboot,
}

/// MCUboot's `IMAGE_MAGIC`, little-endian at offset 0 of a signed image.
const MCUBOOT_MAGIC: u32 = 0x96f3_b83d;

impl ImageKind {
    /// Recognise an image by its magic bytes.
    pub fn detect(bytes: &[u8]) -> Option<ImageKind> {
        if bytes.starts_with(b"\x7fELF") {
            Some(ImageKind::Elf)
        } else if bytes.len() >= 4
            && u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) == MCUBOOT_MAGIC
        {
            Some(ImageKind::Mcuboot)
        } else {
            None
        }
    }

    /// Read the start of `path` and recognise it; the error names the file.
    pub fn of_file(path: &Path) -> Result<ImageKind, RigError> {
        use std::io::Read;
        let mut head = [0u8; 4];
        let io = |e| RigError::Io {
            what: format!("image {}", path.display()),
            source: e,
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        let n = file.read(&mut head).map_err(io)?;
        Self::detect(&head[..n]).ok_or_else(|| {
            RigError::Setup(format!(
                "image {}: neither an ELF file nor an MCUboot-signed image (magic 0x96f3b83d)",
                path.display()
            ))
        })
    }
}

/// What a [`FakeProbe`] was asked to do, for tests to assert on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeProbeRecord {
    /// Each flashed image: its path, kind and contents.
    pub flashed: Vec<(PathBuf, ImageKind, Vec<u8>)>,
    /// How many times [`Probe::reset`] was called.
    pub resets: usize,
    /// Power changes seen, in order.
    pub power: Vec<bool>,
}

#[derive(Debug)]
struct FakeState {
    record: FakeProbeRecord,
    recording: Vec<RttData>,
    /// How far into each recorded channel the replay is.
    replayed: Vec<usize>,
    chunk: usize,
    /// The fake target runs (and writes RTT) only after a reset or power-on.
    running: bool,
}

/// A probe with no hardware: flashing checks and records the image, and a
/// running target "writes" a recorded RTT buffer, `chunk` bytes per channel
/// per read, the way a real target's output trickles in across polls.
#[derive(Debug, Clone)]
pub struct FakeProbe {
    state: Arc<Mutex<FakeState>>,
}

impl FakeProbe {
    /// Replay `recording` from the start after every reset or power-on.
    pub fn new(recording: Vec<RttData>, chunk: usize) -> FakeProbe {
        let replayed = vec![0; recording.len()];
        FakeProbe {
            state: Arc::new(Mutex::new(FakeState {
                record: FakeProbeRecord::default(),
                recording,
                replayed,
                chunk: chunk.max(1),
                running: false,
            })),
        }
    }

    /// What the probe has been asked to do so far (clones share it).
    pub fn record(&self) -> FakeProbeRecord {
        self.lock().record.clone()
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl FakeState {
    fn boot(&mut self) {
        self.running = true;
        self.replayed.iter_mut().for_each(|r| *r = 0);
    }
}

impl Probe for FakeProbe {
    fn flash(&mut self, image: &Path) -> Result<(), RigError> {
        let kind = ImageKind::of_file(image)?;
        let bytes = std::fs::read(image).map_err(|e| RigError::Io {
            what: format!("image {}", image.display()),
            source: e,
        })?;
        let mut s = self.lock();
        // A real download halts the core; the old image stops printing.
        s.running = false;
        s.record.flashed.push((image.to_owned(), kind, bytes));
        Ok(())
    }

    fn reset(&mut self) -> Result<(), RigError> {
        let mut s = self.lock();
        s.record.resets += 1;
        s.boot();
        Ok(())
    }

    fn read_rtt(&mut self) -> Result<Vec<RttData>, RigError> {
        let mut s = self.lock();
        if !s.running {
            return Ok(Vec::new());
        }
        let chunk = s.chunk;
        let FakeState {
            recording,
            replayed,
            ..
        } = &mut *s;
        Ok(recording
            .iter()
            .zip(replayed.iter_mut())
            .filter(|(rec, at)| **at < rec.bytes.len())
            .map(|(rec, at)| {
                let end = (*at + chunk).min(rec.bytes.len());
                let bytes = rec.bytes[*at..end].to_vec();
                *at = end;
                RttData {
                    channel: rec.channel,
                    name: rec.name.clone(),
                    bytes,
                }
            })
            .collect())
    }

    fn power_changed(&mut self, on: bool) {
        let mut s = self.lock();
        s.record.power.push(on);
        if on {
            s.boot();
        } else {
            s.running = false;
        }
    }
}

/// The probe, shared between the rig (flash, reset) and the RTT poller.
pub type SharedProbe = Arc<Mutex<Box<dyn Probe>>>;

/// Lock a shared probe; a poller that panicked mid-read leaves it usable.
pub fn lock_probe(probe: &SharedProbe) -> MutexGuard<'_, Box<dyn Probe>> {
    probe.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reads RTT through the probe on its own thread into a [`LogSink`] until
/// dropped (the one RTT-to-log path: [`crate::rtt::poll`]).
pub fn start_rtt_poller(probe: SharedProbe, sink: LogSink) -> Result<RttPoller, RigError> {
    RttPoller::start(RTT_POLL, move |lines| {
        // The lock is held for one read (flash/reset wait at most one poll) and
        // until its lines are queued: once a power change has taken the lock,
        // everything the target printed before it is in the sink.
        let mut guard = lock_probe(&probe);
        match lines.read(|| guard.read_rtt()) {
            Ok(l) => sink.push(l),
            Err(e) => sink.fail(format!("RTT: {e}")),
        }
        drop(guard);
    })
}
