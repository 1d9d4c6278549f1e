//! The persisted OTA record and its byte format.
//!
//! Layout (little-endian): `"SBOT"`, format version 1, then
//! * job: 0 | 1, phase (0 downloading, 1 verifying, 2 rebooting), offset
//!   u32, size u32, sha256 (32), version (u16 length + UTF-8), url (same);
//! * outcome: state index u8, reason: 0 | 1 + string;
//! * refused: 0 | 1 + sha256 (32);
//! * CRC-32 (IEEE) of everything before it.
//!
//! A torn or foreign record fails to decode; the caller then starts from
//! scratch, which is safe (see the module above).

use alloc::string::String;
use alloc::vec::Vec;

use super::{FirmwareTarget, OtaState};
use crate::keystore::crc32;

const MAGIC: &[u8; 4] = b"SBOT";
const VERSION: u8 = 1;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// `offset` bytes are in the secondary slot.
    Downloading {
        /// Bytes of the image already written (and the resume point).
        offset: u32,
    },
    /// All bytes are in; verification was requested.
    Verifying,
    /// Verified and marked for a test boot; the next boot should run it.
    Rebooting,
}

/// An update in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The image being installed, as desired.
    pub target: FirmwareTarget,
    /// How far the installation got.
    pub phase: Phase,
}

/// What the device persists about updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtaRecord {
    /// The update in progress, if any.
    pub job: Option<Job>,
    /// The outcome of the last finished update (reported until the next one).
    pub outcome: OtaState,
    /// Why that update was rejected or reverted; `None` otherwise.
    pub reason: Option<String>,
    /// SHA-256 of the last image that was rejected or reverted: it is not
    /// downloaded again (no update loop on a bad image).
    pub refused: Option<[u8; 32]>,
}

impl Default for OtaRecord {
    fn default() -> Self {
        OtaRecord {
            job: None,
            outcome: OtaState::Idle,
            reason: None,
            refused: None,
        }
    }
}

const STATES: [OtaState; 9] = [
    OtaState::Idle,
    OtaState::Downloading,
    OtaState::Verifying,
    OtaState::Rebooting,
    OtaState::Testing,
    OtaState::Confirmed,
    OtaState::Reverted,
    OtaState::Rejected,
    OtaState::Cancelled,
];

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Strings longer than 64 KiB are cut; versions and URLs never are.
    let bytes = &s.as_bytes()[..s.len().min(usize::from(u16::MAX))];
    out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
    out.extend_from_slice(bytes);
}

impl OtaRecord {
    /// The bytes to store.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        match &self.job {
            None => out.push(0),
            Some(job) => {
                out.push(1);
                let (phase, offset) = match job.phase {
                    Phase::Downloading { offset } => (0, offset),
                    Phase::Verifying => (1, 0),
                    Phase::Rebooting => (2, 0),
                };
                out.push(phase);
                out.extend_from_slice(&offset.to_le_bytes());
                out.extend_from_slice(&job.target.size.to_le_bytes());
                out.extend_from_slice(&job.target.sha256);
                put_str(&mut out, &job.target.version);
                put_str(&mut out, &job.target.url);
            }
        }
        out.push(STATES.iter().position(|s| *s == self.outcome).unwrap_or(0) as u8);
        match &self.reason {
            None => out.push(0),
            Some(r) => {
                out.push(1);
                put_str(&mut out, r);
            }
        }
        match &self.refused {
            None => out.push(0),
            Some(sha) => {
                out.push(1);
                out.extend_from_slice(sha);
            }
        }
        let crc = crc32(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// The record in `bytes`; `None` if torn, foreign or erased. Trailing
    /// bytes after the record (e.g. the rest of an erased sector) are allowed.
    pub fn decode(bytes: &[u8]) -> Option<OtaRecord> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(4)? != MAGIC || r.u8()? != VERSION {
            return None;
        }
        let job = match r.u8()? {
            0 => None,
            1 => {
                let phase = r.u8()?;
                let offset = r.u32()?;
                let size = r.u32()?;
                let sha256 = r.sha()?;
                let version = r.string()?;
                let url = r.string()?;
                let phase = match phase {
                    0 if offset <= size => Phase::Downloading { offset },
                    1 => Phase::Verifying,
                    2 => Phase::Rebooting,
                    _ => return None,
                };
                Some(Job {
                    target: FirmwareTarget {
                        version,
                        url,
                        sha256,
                        size,
                    },
                    phase,
                })
            }
            _ => return None,
        };
        let outcome = *STATES.get(usize::from(r.u8()?))?;
        let reason = match r.u8()? {
            0 => None,
            1 => Some(r.string()?),
            _ => return None,
        };
        let refused = match r.u8()? {
            0 => None,
            1 => Some(r.sha()?),
            _ => return None,
        };
        let end = r.at;
        if r.u32()? != crc32(&bytes[..end]) {
            return None;
        }
        Some(OtaRecord {
            job,
            outcome,
            reason,
            refused,
        })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u32(&mut self) -> Option<u32> {
        let mut a = [0; 4];
        a.copy_from_slice(self.take(4)?);
        Some(u32::from_le_bytes(a))
    }

    fn sha(&mut self) -> Option<[u8; 32]> {
        let mut a = [0; 32];
        a.copy_from_slice(self.take(32)?);
        Some(a)
    }

    fn string(&mut self) -> Option<String> {
        let mut a = [0; 2];
        a.copy_from_slice(self.take(2)?);
        let s = self.take(usize::from(u16::from_le_bytes(a)))?;
        String::from_utf8(s.to_vec()).ok()
    }
}
