//! Emulated flash: one file holding the partition table, the two image slots,
//! the swap scratch area, the keystore and the application data region.
//!
//! A power loss is the device process being killed: every write goes straight
//! to the file with `pwrite` (the kernel keeps it even if the process dies
//! mid-run), so what was written before the kill is what the next power-on
//! reads — exactly the model of NOR flash the state machines are tested
//! against.
//!
//! Erased flash reads as 0xff. The file stores every byte inverted so a new
//! sparse file (all zeros, no disk used) is fully erased without writing
//! hundreds of megabytes of 0xff.
//!
//! Layout (offsets in bytes):
//!
//! | region    | offset                         | size            |
//! |-----------|--------------------------------|-----------------|
//! | table     | 0                              | 4096            |
//! | primary   | 4096                           | slot_size       |
//! | secondary | 4096 + slot_size               | slot_size       |
//! | scratch   | 4096 + 2·slot_size             | sector_size     |
//! | status    | scratch + sector_size          | 65536           |
//! | keystore  | status + 65536                 | keystore_size   |
//! | appdata   | keystore + keystore_size       | appdata_size    |
//!
//! The table (stored like all data, inverted): `SACFLASH`, version u32 LE,
//! then sector_size, slot_size, keystore_size, appdata_size as u32 LE.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const MAGIC: &[u8; 8] = b"SACFLASH";
const VERSION: u32 = 1;
const TABLE_SIZE: u64 = 4096;
/// Holds the swap log of a full slot of the smallest sectors allowed.
const STATUS_SIZE: u64 = 65536;

/// Sizes of the regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Erase unit of the slots, bytes: a power of two ≥ 4096; also the size
    /// of the scratch area.
    pub sector_size: u32,
    /// Size of each image slot, bytes: a non-zero multiple of the sector
    /// size, with at most 1365 sectors (what the swap status log holds).
    pub slot_size: u32,
    /// Size of the keystore region, bytes (≥ 4096).
    pub keystore_size: u32,
    /// Size of the application data region, bytes (≥ 4096).
    pub appdata_size: u32,
}

impl Default for Layout {
    /// 128 KiB sectors, 64 MiB slots (a debug build of the device is tens of MB).
    fn default() -> Self {
        Layout {
            sector_size: 128 * 1024,
            slot_size: 64 * 1024 * 1024,
            keystore_size: 64 * 1024,
            appdata_size: 64 * 1024,
        }
    }
}

/// The regions of the flash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    /// Image slot 0: the image that runs.
    Primary,
    /// Image slot 1: where updates are downloaded to, and the old image is
    /// kept after a swap.
    Secondary,
    /// One sector: the bootloader's copy of the primary sector being swapped.
    Scratch,
    /// The bootloader's swap status log.
    BootStatus,
    /// The credential store (`device_core::keystore`'s record format).
    Keystore,
    /// The application's records (applied command ids, the OTA record).
    AppData,
}

impl Region {
    /// Human-readable name, for error messages and logs.
    pub fn name(self) -> &'static str {
        match self {
            Region::Primary => "primary slot",
            Region::Secondary => "secondary slot",
            Region::Scratch => "scratch",
            Region::BootStatus => "boot status",
            Region::Keystore => "keystore",
            Region::AppData => "app data",
        }
    }
}

impl Layout {
    fn span(&self, region: Region) -> (u64, u64) {
        let slot = u64::from(self.slot_size);
        let sector = u64::from(self.sector_size);
        let keystore = u64::from(self.keystore_size);
        match region {
            Region::Primary => (TABLE_SIZE, slot),
            Region::Secondary => (TABLE_SIZE + slot, slot),
            Region::Scratch => (TABLE_SIZE + 2 * slot, sector),
            Region::BootStatus => (TABLE_SIZE + 2 * slot + sector, STATUS_SIZE),
            Region::Keystore => (TABLE_SIZE + 2 * slot + sector + STATUS_SIZE, keystore),
            Region::AppData => (
                TABLE_SIZE + 2 * slot + sector + STATUS_SIZE + keystore,
                u64::from(self.appdata_size),
            ),
        }
    }

    fn total(&self) -> u64 {
        let (off, len) = self.span(Region::AppData);
        off + len
    }

    fn validate(&self) -> Result<(), String> {
        let s = self.sector_size;
        if s < 4096 || !s.is_power_of_two() {
            return Err(format!("sector size {s}: expected a power of two ≥ 4096"));
        }
        if self.slot_size == 0 || self.slot_size % s != 0 {
            return Err(format!(
                "slot size {}: expected a non-zero multiple of the sector size {s}",
                self.slot_size
            ));
        }
        if self.keystore_size < 4096 || self.appdata_size < 4096 {
            return Err("keystore and app data regions must be ≥ 4096 bytes".into());
        }
        // 16-byte records: a header and three per sector.
        if (1 + 3 * u64::from(self.slot_size / s)) * 16 > STATUS_SIZE {
            return Err(format!(
                "{} sectors per slot: the swap status log holds at most 1365",
                self.slot_size / s
            ));
        }
        Ok(())
    }
}

/// Why a flash file operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FlashError {
    /// The file system refused a read, write or other file operation.
    #[error("flash file {path}: {what}: {source}")]
    Io {
        /// The flash file.
        path: PathBuf,
        /// The operation that failed (e.g. `write keystore`).
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Not a usable flash file: missing or bad partition table, unsupported
    /// version, invalid layout, or too short for its table.
    #[error("flash file {path}: {0}", .message)]
    Format {
        /// The flash file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// An access past the end of its region (a caller bug, never clipped).
    #[error("flash {region}: {len} bytes at offset {offset} run past its end ({size} bytes)")]
    OutOfRange {
        /// The region's [`Region::name`].
        region: &'static str,
        /// Offset of the access in the region, bytes.
        offset: u64,
        /// Length of the access, bytes.
        len: u64,
        /// Size of the region, bytes.
        size: u64,
    },
}

/// A flash file opened for reading and writing.
#[derive(Debug)]
pub struct FlashFile {
    file: File,
    path: PathBuf,
    layout: Layout,
}

/// The emulated rig's precise power switch: with
/// `SACBENCH_POWER_CUT_AFTER_WRITES=N` in its environment, this process loses
/// power during its N-th flash write or erase — half of it lands (a torn
/// write), then the process dies at once (SIGABRT, no cleanup), exactly as a
/// board losing power mid-write. The rig uses it to cut power inside a
/// chosen phase (e.g. the bootloader's swap) deterministically.
pub const POWER_CUT_ENV: &str = "SACBENCH_POWER_CUT_AFTER_WRITES";

/// The same switch armed once: with `SACBENCH_POWER_CUT_FROM_FILE=PATH`,
/// the limit is read from PATH, which is then removed (the next start of the
/// payload runs without a cut). Lets a signed payload script arm the switch
/// with shell builtins alone.
pub const POWER_CUT_FROM_FILE_ENV: &str = "SACBENCH_POWER_CUT_FROM_FILE";

fn power_cut_limit() -> Option<u64> {
    if let Some(n) = std::env::var(POWER_CUT_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return Some(n);
    }
    let file = std::env::var_os(POWER_CUT_FROM_FILE_ENV)?;
    let text = std::fs::read_to_string(&file).ok()?;
    let _ = std::fs::remove_file(&file);
    text.trim().parse().ok()
}

fn power_cut_due() -> bool {
    static LIMIT: OnceLock<Option<u64>> = OnceLock::new();
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let Some(limit) = *LIMIT.get_or_init(power_cut_limit) else {
        return false;
    };
    WRITES.fetch_add(1, Ordering::SeqCst) + 1 >= limit
}

// The emulated rig's flash hold, of the same family: with
// `SACBENCH_BOARD_CONTROL=DIR` in its environment (the rig sets it for the
/// native board), each flash write or erase first reads `DIR/flash-hold-ms`;
/// while that file holds a number N (and the write is in its scope, see
/// `board_control::HoldScope`), the write waits — until the bench
/// removes the file or N ms have passed, whichever comes first — before it
/// lands: a slow flash chip, on the bench's command. The wait is the fault
/// the bench injects (as `strace -e inject=pwrite64:delay_enter` did), not a
/// synchronisation: the bench writes the file to hold and removes it to end
/// the hold, so a case that needs the write held only until it has cut the
/// link does not wait out N.
use sacbench_provisioning::board_control::{
    parse_hold, HoldScope, ENV as BOARD_CONTROL_ENV, FLASH_HOLD_FILE,
};

fn hold_if_asked(region: Region) {
    static FILE: OnceLock<Option<PathBuf>> = OnceLock::new();
    let Some(file) = FILE.get_or_init(|| {
        std::env::var_os(BOARD_CONTROL_ENV).map(|d| PathBuf::from(d).join(FLASH_HOLD_FILE))
    }) else {
        return;
    };
    let Some((ms, scope)) = std::fs::read_to_string(file)
        .ok()
        .and_then(|t| parse_hold(&t))
    else {
        return;
    };
    if scope == HoldScope::PrimarySlot && region != Region::Primary {
        return;
    }
    let until = Instant::now() + Duration::from_millis(ms);
    // Polled: the file is the bench's only signal to the board (it may be
    // another process's namespace), and 2 ms is far inside the spread of a
    // real flash write.
    while file.exists() {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(Duration::from_millis(2)));
    }
}

fn invert(bytes: &mut [u8]) {
    bytes.iter_mut().for_each(|b| *b = !*b);
}

impl FlashFile {
    /// Makes a new, fully erased flash file; refuses to overwrite one.
    pub fn create(path: &Path, layout: Layout) -> Result<Self, FlashError> {
        layout.validate().map_err(|message| FlashError::Format {
            path: path.to_owned(),
            message,
        })?;
        let io = |what: &str, source| FlashError::Io {
            path: path.to_owned(),
            what: what.into(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| io("create", e))?;
        file.set_len(layout.total()).map_err(|e| io("size", e))?;
        let mut table = Vec::with_capacity(32);
        table.extend_from_slice(MAGIC);
        for v in [
            VERSION,
            layout.sector_size,
            layout.slot_size,
            layout.keystore_size,
            layout.appdata_size,
        ] {
            table.extend_from_slice(&v.to_le_bytes());
        }
        invert(&mut table);
        file.write_all_at(&table, 0)
            .map_err(|e| io("write table", e))?;
        Ok(FlashFile {
            file,
            path: path.to_owned(),
            layout,
        })
    }

    /// Opens an existing flash file and checks its table.
    pub fn open(path: &Path) -> Result<Self, FlashError> {
        let io = |what: &str, source| FlashError::Io {
            path: path.to_owned(),
            what: what.into(),
            source,
        };
        let format = |message: String| FlashError::Format {
            path: path.to_owned(),
            message,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| io("open", e))?;
        let mut table = [0u8; 28];
        file.read_exact_at(&mut table, 0)
            .map_err(|_| format("too short for a partition table".into()))?;
        invert(&mut table);
        if &table[..8] != MAGIC {
            return Err(format(
                "no partition table (magic SACFLASH missing): not a flash file".into(),
            ));
        }
        let word = |i: usize| {
            u32::from_le_bytes(table[8 + 4 * i..12 + 4 * i].try_into().expect("4 bytes"))
        };
        if word(0) != VERSION {
            return Err(format(format!(
                "table version {} (this build reads {VERSION})",
                word(0)
            )));
        }
        let layout = Layout {
            sector_size: word(1),
            slot_size: word(2),
            keystore_size: word(3),
            appdata_size: word(4),
        };
        layout.validate().map_err(format)?;
        let len = file.metadata().map_err(|e| io("stat", e))?.len();
        if len < layout.total() {
            return Err(format(format!(
                "{len} bytes, the table needs {}",
                layout.total()
            )));
        }
        Ok(FlashFile {
            file,
            path: path.to_owned(),
            layout,
        })
    }

    /// The region sizes from the file's partition table.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Where the flash file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size of `region`, bytes.
    pub fn size(&self, region: Region) -> u64 {
        self.layout.span(region).1
    }

    fn at(&self, region: Region, offset: u64, len: u64) -> Result<u64, FlashError> {
        let (start, size) = self.layout.span(region);
        match offset.checked_add(len) {
            Some(end) if end <= size => Ok(start + offset),
            _ => Err(FlashError::OutOfRange {
                region: region.name(),
                offset,
                len,
                size,
            }),
        }
    }

    /// Reads `len` bytes at `offset` of `region` (erased bytes read 0xff).
    pub fn read(&self, region: Region, offset: u64, len: usize) -> Result<Vec<u8>, FlashError> {
        let at = self.at(region, offset, len as u64)?;
        let mut buf = vec![0u8; len];
        self.file
            .read_exact_at(&mut buf, at)
            .map_err(|source| FlashError::Io {
                path: self.path.clone(),
                what: format!("read {}", region.name()),
                source,
            })?;
        invert(&mut buf);
        Ok(buf)
    }

    /// Writes `bytes` at `offset` of `region`, straight to the file (one
    /// `pwrite`, which survives the process being killed). With the power
    /// cut switch armed ([`POWER_CUT_ENV`]) the due write lands half and
    /// the process aborts; with a flash hold set it waits first.
    pub fn write(&self, region: Region, offset: u64, bytes: &[u8]) -> Result<(), FlashError> {
        let at = self.at(region, offset, bytes.len() as u64)?;
        let mut buf = bytes.to_vec();
        invert(&mut buf);
        hold_if_asked(region);
        if power_cut_due() {
            let _ = self.file.write_all_at(&buf[..buf.len() / 2], at);
            eprintln!("flash: power cut during a write to the {}", region.name());
            std::process::abort();
        }
        self.file
            .write_all_at(&buf, at)
            .map_err(|source| FlashError::Io {
                path: self.path.clone(),
                what: format!("write {}", region.name()),
                source,
            })
    }

    /// Sets `len` bytes to the erased value 0xff, a MiB at a time (each
    /// MiB counts as one write for the hold and the power-cut switch).
    pub fn erase(&self, region: Region, offset: u64, len: u64) -> Result<(), FlashError> {
        let at = self.at(region, offset, len)?;
        const CHUNK: u64 = 1 << 20;
        let mut done = 0;
        while done < len {
            let n = CHUNK.min(len - done);
            self.erase_at(region, at + done, n)?;
            done += n;
        }
        Ok(())
    }

    /// Erased bytes are stored as 0x00, so an erase punches a hole in the
    /// file (no bytes written: erasing a 32 MiB slot cost a boot tens of MB
    /// of copying); where the file system cannot, it writes the zeros.
    fn erase_at(&self, region: Region, at: u64, len: u64) -> Result<(), FlashError> {
        use rustix::fs::{fallocate, FallocateFlags};
        hold_if_asked(region);
        let punch = |len: u64| {
            fallocate(
                &self.file,
                FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
                at,
                len,
            )
        };
        if power_cut_due() {
            let _ = punch(len / 2);
            eprintln!("flash: power cut during an erase of the {}", region.name());
            std::process::abort();
        }
        let io = |source: std::io::Error| FlashError::Io {
            path: self.path.clone(),
            what: format!("erase {}", region.name()),
            source,
        };
        match punch(len) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::OPNOTSUPP) => self
                .file
                .write_all_at(&vec![0u8; len as usize], at)
                .map_err(io),
            Err(e) => Err(io(e.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Layout {
        Layout {
            sector_size: 4096,
            slot_size: 4 * 4096,
            keystore_size: 4096,
            appdata_size: 4096,
        }
    }

    #[test]
    fn new_flash_is_erased_and_writes_persist_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flash.bin");
        let f = FlashFile::create(&path, small()).unwrap();
        assert!(f
            .read(Region::Secondary, 0, 4096)
            .unwrap()
            .iter()
            .all(|b| *b == 0xff));
        f.write(Region::Keystore, 10, b"key").unwrap();
        f.write(Region::Primary, 0, b"img").unwrap();
        drop(f);
        let f = FlashFile::open(&path).unwrap();
        assert_eq!(f.layout(), small());
        assert_eq!(f.read(Region::Keystore, 10, 3).unwrap(), b"key");
        assert_eq!(f.read(Region::Primary, 0, 3).unwrap(), b"img");
        // Regions do not overlap.
        assert!(f
            .read(Region::Secondary, 0, 3)
            .unwrap()
            .iter()
            .all(|b| *b == 0xff));
        f.erase(Region::Primary, 0, 4096).unwrap();
        assert_eq!(f.read(Region::Primary, 0, 3).unwrap(), [0xff; 3]);
    }

    #[test]
    fn bad_files_and_ranges_get_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flash.bin");
        let f = FlashFile::create(&path, small()).unwrap();
        let err = f.read(Region::AppData, 4000, 200).unwrap_err().to_string();
        assert!(err.contains("app data") && err.contains("4000"), "{err}");
        assert!(
            FlashFile::create(&path, small()).is_err(),
            "never overwrites a flash file"
        );

        let junk = dir.path().join("junk.bin");
        std::fs::write(&junk, vec![0u8; 100]).unwrap();
        let err = FlashFile::open(&junk).unwrap_err().to_string();
        assert!(
            err.contains("junk.bin") && err.contains("SACFLASH"),
            "{err}"
        );
        let bad = Layout {
            slot_size: 5000,
            ..small()
        };
        let err = FlashFile::create(&dir.path().join("b.bin"), bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("slot size 5000"), "{err}");
    }
}
