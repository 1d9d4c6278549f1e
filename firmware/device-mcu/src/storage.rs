//! The device's durable state: the storage partition of its flash map
//! (the last 64 KB of the board's flash at 0x21ff_0000 — on the emulated
//! board QEMU's PSRAM backed by a file the launcher keeps in `{state}`, so
//! it survives power cycles as flash does). What goes where, and how a
//! write survives a power cut, is device-core's: the keystore region
//! (`device_core::keystore`: its own two-generation layout), and the
//! command state and the OTA record each in a two-copy record cell
//! (`device_core::store`). This module only maps it and copies bytes.
//!
//! ```text
//! 0x21ff_0000  keystore region   keystore::REGION_SIZE (24 KB)
//! 0x21ff_6000  commands cell     2 × 16 KB
//! 0x21ff_e000  OTA record cell   2 × 4 KB
//! ```

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use device_core::device::CommandLog;
use device_core::keystore::{self, Keystore, KeystoreError, Write};
use device_core::store;

/// Where the storage partition starts.
pub const STORAGE_ADDR: usize = 0x21ff_0000;
/// How long it is.
pub const STORAGE_LEN: usize = 64 * 1024;

const KEYSTORE_AT: usize = 0;
const COMMANDS: Cell = Cell {
    at: 0x6000,
    capacity: 16 * 1024,
};
const OTA: Cell = Cell {
    at: 0xe000,
    capacity: 4 * 1024,
};

/// A two-copy record cell: copy 0 at `at`, copy 1 right after it.
#[derive(Clone, Copy)]
struct Cell {
    at: usize,
    capacity: usize,
}

/// Why a write did not happen.
pub enum StorageError {
    /// The record (this many bytes) is larger than its cell.
    TooLarge(usize),
    /// A keystore write outside the keystore region.
    OutOfRegion,
}

impl core::fmt::Display for StorageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StorageError::TooLarge(n) => write!(f, "a record of {n} B is larger than its cell"),
            StorageError::OutOfRegion => write!(f, "a write outside the keystore region"),
        }
    }
}

/// The mapped partition; one instance ([`Storage::take`]).
pub struct Storage {
    bytes: &'static mut [u8],
}

static TAKEN: AtomicBool = AtomicBool::new(false);

impl Storage {
    /// The partition, once; `None` on a second call.
    pub fn take() -> Option<Storage> {
        if TAKEN.swap(true, Ordering::AcqRel) {
            return None;
        }
        // SAFETY: 0x21ff_0000..0x2200_0000 is the last 64 KB of the
        // mps2-an385's 16 MB PSRAM (hw/arm/mps2.c maps it at 0x2100_0000,
        // always): memory.x links nothing there and nothing else in the
        // image touches it, and `TAKEN` makes this the only reference.
        let bytes =
            unsafe { core::slice::from_raw_parts_mut(STORAGE_ADDR as *mut u8, STORAGE_LEN) };
        Some(Storage { bytes })
    }

    fn copies(&self, cell: Cell) -> [&[u8]; 2] {
        let (a, b) = self.bytes[cell.at..cell.at + 2 * cell.capacity].split_at(cell.capacity);
        [a, b]
    }

    fn load(&self, cell: Cell) -> Option<&[u8]> {
        store::newest(self.copies(cell)).map(|(_, _, body)| body)
    }

    fn store(&mut self, cell: Cell, body: &[u8]) -> Result<(), StorageError> {
        let (i, raw) = store::plan_write(self.copies(cell), cell.capacity, body)
            .ok_or(StorageError::TooLarge(body.len()))?;
        let at = cell.at + i * cell.capacity;
        self.bytes[at..at + raw.len()].copy_from_slice(&raw);
        Ok(())
    }

    /// The keystore as stored (an erased region is an empty keystore).
    pub fn keystore(&self) -> Result<Keystore, KeystoreError> {
        Keystore::decode(&self.bytes[KEYSTORE_AT..KEYSTORE_AT + keystore::REGION_SIZE])
    }

    /// Carries out the keystore's planned writes, in order.
    pub fn apply_keystore(&mut self, writes: &[Write]) -> Result<(), StorageError> {
        let region = &mut self.bytes[KEYSTORE_AT..KEYSTORE_AT + keystore::REGION_SIZE];
        keystore::apply(region, writes).map_err(|_| StorageError::OutOfRegion)
    }

    /// The command state (the default when none was stored).
    pub fn commands(&self) -> CommandLog {
        self.load(COMMANDS)
            .and_then(store::decode_commands)
            .unwrap_or_default()
    }

    /// Stores the command state.
    pub fn store_commands(&mut self, log: &CommandLog) -> Result<(), StorageError> {
        self.store(COMMANDS, &store::encode_commands(log))
    }

    /// The OTA record's bytes, if one was stored.
    pub fn ota(&self) -> Option<Vec<u8>> {
        self.load(OTA).map(<[u8]>::to_vec)
    }

    /// Stores the OTA record's bytes.
    pub fn store_ota(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        self.store(OTA, bytes)
    }
}
