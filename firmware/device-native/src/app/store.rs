//! The firmware's persistent state in flash: the keystore region (layout and
//! atomicity are `device_core::keystore`'s) and small records in the app data
//! region, each written atomically as one of two copies with a sequence
//! number and CRC (the newer valid copy wins, so a torn write leaves the
//! previous record).

use device_core::device::CommandLog;
use device_core::keystore::{self, Keystore};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::flash::{FlashError, FlashFile, Region};

/// A command applied but whose report the hub has not acknowledged yet.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AppliedReport {
    /// Application number on this device.
    pub seq: u64,
    /// The command's `$.mid`.
    pub mid: String,
    /// The command's payload (lossy UTF-8).
    pub payload: String,
}

/// The persisted command state (the machine's [`CommandLog`] as JSON in
/// the [`COMMANDS`] cell): applied ids (as the session encodes them), the
/// application counter and the unreported applications.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CommandsRecord {
    /// Applied ids, as `AppliedIds::encode` writes them.
    pub applied: Vec<u8>,
    /// The next application's `seq`.
    pub next_seq: u64,
    /// Applications whose report the hub has not acknowledged.
    pub unreported: Vec<AppliedReport>,
    /// A session has subscribed to commands since provisioning (what the
    /// `no-resubscribe` fault wrongly relies on).
    #[serde(default)]
    pub subscribed_once: bool,
}

impl From<CommandsRecord> for CommandLog {
    fn from(r: CommandsRecord) -> CommandLog {
        CommandLog {
            applied: r.applied,
            next_seq: r.next_seq,
            unreported: r
                .unreported
                .into_iter()
                .map(|a| device_core::device::AppliedReport {
                    seq: a.seq,
                    mid: a.mid,
                    payload: a.payload,
                })
                .collect(),
            subscribed_once: r.subscribed_once,
        }
    }
}

impl From<CommandLog> for CommandsRecord {
    fn from(l: CommandLog) -> CommandsRecord {
        CommandsRecord {
            applied: l.applied,
            next_seq: l.next_seq,
            unreported: l
                .unreported
                .into_iter()
                .map(|a| AppliedReport {
                    seq: a.seq,
                    mid: a.mid,
                    payload: a.payload,
                })
                .collect(),
            subscribed_once: l.subscribed_once,
        }
    }
}

/// A record kept in two copies of `capacity` bytes at `offset` of app data.
#[derive(Debug, Clone, Copy)]
pub struct RecordCell {
    /// Where copy 0 starts in the app data region, bytes; copy 1 follows it.
    pub offset: u64,
    /// Size of each copy, bytes, its 16-byte header (seq, length, checksum)
    /// included.
    pub capacity: usize,
}

/// Applied command ids and the unreported applications.
pub const COMMANDS: RecordCell = RecordCell {
    offset: 0,
    capacity: 16 * 1024,
};
/// The OTA state machine's record (download progress, target, outcome).
pub const OTA: RecordCell = RecordCell {
    offset: 32 * 1024,
    capacity: 8 * 1024,
};

const HEAD: usize = 4 + 4 + 8; // seq, len, checksum (first 8 bytes of SHA-256)

fn checksum(seq: u32, body: &[u8]) -> [u8; 8] {
    let mut h = Sha256::new();
    h.update(seq.to_le_bytes());
    h.update(body);
    h.finalize()[..8].try_into().expect("8 bytes")
}

impl RecordCell {
    fn copy(&self, flash: &FlashFile, i: u64) -> Result<Option<(u32, Vec<u8>)>, FlashError> {
        let at = self.offset + i * self.capacity as u64;
        let raw = flash.read(Region::AppData, at, self.capacity)?;
        let seq = u32::from_le_bytes(raw[0..4].try_into().expect("4"));
        let len = u32::from_le_bytes(raw[4..8].try_into().expect("4")) as usize;
        if len > self.capacity - HEAD {
            return Ok(None);
        }
        let body = &raw[HEAD..HEAD + len];
        Ok((raw[8..16] == checksum(seq, body)).then(|| (seq, body.to_vec())))
    }

    fn newest(&self, flash: &FlashFile) -> Result<Option<(u64, u32, Vec<u8>)>, FlashError> {
        let a = self.copy(flash, 0)?.map(|(s, b)| (0, s, b));
        let b = self.copy(flash, 1)?.map(|(s, b)| (1, s, b));
        Ok(match (a, b) {
            (Some(a), Some(b)) => Some(if b.1.wrapping_sub(a.1) < u32::MAX / 2 {
                b
            } else {
                a
            }),
            (a, b) => a.or(b),
        })
    }

    /// The newest valid record, if any.
    pub fn load<T: DeserializeOwned>(&self, flash: &FlashFile) -> Result<Option<T>, FlashError> {
        Ok(self
            .newest(flash)?
            .and_then(|(_, _, body)| serde_json::from_slice(&body).ok()))
    }

    /// Writes `value` over the older copy; the old record stays valid until
    /// the new one is complete.
    pub fn store<T: Serialize>(&self, flash: &FlashFile, value: &T) -> anyhow::Result<()> {
        let body = serde_json::to_vec(value)?;
        anyhow::ensure!(
            body.len() <= self.capacity - HEAD,
            "record of {} bytes exceeds its cell",
            body.len()
        );
        let (target, seq) = match self.newest(flash)? {
            Some((i, seq, _)) => (1 - i, seq.wrapping_add(1)),
            None => (0, 1),
        };
        let mut raw = Vec::with_capacity(HEAD + body.len());
        raw.extend_from_slice(&seq.to_le_bytes());
        raw.extend_from_slice(&(body.len() as u32).to_le_bytes());
        raw.extend_from_slice(&checksum(seq, &body));
        raw.extend_from_slice(&body);
        // Body first, header last would be safer on real NOR; here one pwrite is one write.
        flash.write(
            Region::AppData,
            self.offset + target * self.capacity as u64,
            &raw,
        )?;
        Ok(())
    }
}

/// Reads and updates the keystore region.
pub struct KeystoreFlash<'a> {
    /// The flash file whose keystore region this reads and writes.
    pub flash: &'a FlashFile,
}

impl KeystoreFlash<'_> {
    fn region(&self) -> Result<Vec<u8>, FlashError> {
        self.flash.read(Region::Keystore, 0, keystore::REGION_SIZE)
    }

    /// Decodes the keystore region (an erased one is an empty keystore).
    pub fn load(&self) -> anyhow::Result<Keystore> {
        Keystore::decode(&self.region()?).map_err(|e| anyhow::anyhow!("keystore: {e:?}"))
    }

    /// Carries out the planned writes in order (each one a flash write).
    pub fn apply(&self, writes: &[keystore::Write]) -> anyhow::Result<()> {
        for w in writes {
            self.flash
                .write(Region::Keystore, u64::from(w.offset), &w.bytes)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flash::Layout;

    #[test]
    fn the_newer_copy_wins_and_a_torn_write_keeps_the_old_record() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout {
            sector_size: 4096,
            slot_size: 8192,
            keystore_size: 32768,
            appdata_size: 65536,
        };
        let flash = FlashFile::create(&dir.path().join("f"), layout).unwrap();
        assert_eq!(COMMANDS.load::<u32>(&flash).unwrap(), None);
        for v in 1..=5u32 {
            COMMANDS.store(&flash, &v).unwrap();
            assert_eq!(COMMANDS.load::<u32>(&flash).unwrap(), Some(v));
        }
        // Tear the next write (copy 0 holds 5, so copy 1 is written): flip a body byte.
        COMMANDS.store(&flash, &6u32).unwrap();
        let at = COMMANDS.capacity as u64 + HEAD as u64;
        let byte = flash.read(Region::AppData, at, 1).unwrap()[0];
        flash.write(Region::AppData, at, &[byte ^ 0x40]).unwrap();
        assert_eq!(COMMANDS.load::<u32>(&flash).unwrap(), Some(5));
        assert!(
            OTA.load::<u32>(&flash).unwrap().is_none(),
            "cells are separate"
        );
    }

    #[test]
    fn the_command_record_keeps_its_json_form_through_the_machine() {
        // As firmware before the Device machine wrote it (no subscribed_once yet).
        let old = r#"{"applied":[1,2,3],"next_seq":4,"unreported":[{"seq":3,"mid":"m-3","payload":"open"}]}"#;
        let record: CommandsRecord = serde_json::from_str(old).unwrap();
        let log = CommandLog::from(record);
        assert_eq!((log.next_seq, log.subscribed_once), (4, false));
        assert_eq!(log.unreported[0].mid, "m-3");
        let back = serde_json::to_string(&CommandsRecord::from(log)).unwrap();
        assert_eq!(
            back,
            r#"{"applied":[1,2,3],"next_seq":4,"unreported":[{"seq":3,"mid":"m-3","payload":"open"}],"subscribed_once":false}"#
        );
    }
}
