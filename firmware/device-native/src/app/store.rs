//! The firmware's persistent state in flash: the keystore region (layout and
//! atomicity are `device_core::keystore`'s) and small records in the app data
//! region, each written atomically as one of two copies with a sequence
//! number and CRC (`device_core::store`: the newer valid copy wins, so a torn
//! write leaves the previous record).

use device_core::device::CommandLog;
use device_core::keystore::{self, Keystore};
use device_core::store;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::flash::{FlashError, FlashFile, Region};

/// The persisted command state: device-core's [`CommandLog`], as JSON
/// (`device_core::store::encode_commands`) in the [`COMMANDS`] cell.
pub type CommandsRecord = CommandLog;

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

impl RecordCell {
    fn copies(&self, flash: &FlashFile) -> Result<[Vec<u8>; 2], FlashError> {
        let at = |i: u64| self.offset + i * self.capacity as u64;
        Ok([
            flash.read(Region::AppData, at(0), self.capacity)?,
            flash.read(Region::AppData, at(1), self.capacity)?,
        ])
    }

    /// The newest valid record, if any.
    pub fn load<T: DeserializeOwned>(&self, flash: &FlashFile) -> Result<Option<T>, FlashError> {
        let copies = self.copies(flash)?;
        Ok(store::newest([&copies[0], &copies[1]])
            .and_then(|(_, _, body)| serde_json::from_slice(body).ok()))
    }

    /// Writes `value` over the older copy; the old record stays valid until
    /// the new one is complete.
    pub fn store<T: Serialize>(&self, flash: &FlashFile, value: &T) -> anyhow::Result<()> {
        let body = serde_json::to_vec(value)?;
        let copies = self.copies(flash)?;
        let (target, raw) = store::plan_write([&copies[0], &copies[1]], self.capacity, &body)
            .ok_or_else(|| anyhow::anyhow!("record of {} bytes exceeds its cell", body.len()))?;
        // Body first, header last would be safer on real NOR; here one pwrite is one write.
        flash.write(
            Region::AppData,
            self.offset + target as u64 * self.capacity as u64,
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
        let at = COMMANDS.capacity as u64 + store::RECORD_HEAD as u64;
        let byte = flash.read(Region::AppData, at, 1).unwrap()[0];
        flash.write(Region::AppData, at, &[byte ^ 0x40]).unwrap();
        assert_eq!(COMMANDS.load::<u32>(&flash).unwrap(), Some(5));
        assert!(
            OTA.load::<u32>(&flash).unwrap().is_none(),
            "cells are separate"
        );
    }
}
