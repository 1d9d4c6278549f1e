//! The board's flash map (issue 17 §1): QEMU mps2-an385's 16 MiB PSRAM at
//! 0x2100_0000, backed by the file `{state}/flash.bin` (`-object
//! memory-backend-file,…,share=on -machine memory-backend=…`), so what the
//! boot stage or the app writes there persists across power cycles.
//!
//! ```text
//! offset       address                 size     area
//! 0x000000     0x2100_0000             1 MiB    primary slot (MCUboot image: header 0x400, app, TLVs; trailer in its last sector)
//! 0x100000     0x2110_0000             1 MiB    secondary slot (an update, or the previous image after a swap)
//! 0x200000     0x2120_0000             4 KiB    scratch (one sector: the swap's copy in flight)
//! 0x201000     0x2120_1000             16 KiB   swap status log
//! 0x205000     0x2120_5000             4 KiB    boot stage data (its power-on counter)
//! 0x206000     0x2120_6000             …        unused (erased)
//! 0xff0000     0x21ff_0000             64 KiB   storage: the device's durable state (the app's, not the boot stage's)
//! ```
//!
//! Shared, as source, by the boot stage (thumbv7m) and the rig (host), so
//! the launcher writes images where the boot stage looks for them. The
//! app's link address (`../memory.x`: `FLASH` at `PRIMARY_ADDR +
//! HEADER_SIZE`) must agree with `PRIMARY` and `HEADER_SIZE`; the rig
//! checks that every image it signs starts there.

/// Where the flash is mapped (the machine's "system RAM", PSRAM).
pub const FLASH_BASE: u32 = 0x2100_0000;
/// Its size: all of the PSRAM (QEMU requires exactly 16 MiB).
pub const FLASH_SIZE: u32 = 16 * 1024 * 1024;
/// The erase unit of the slots (one swap step moves one sector).
pub const SECTOR_SIZE: u32 = 4096;
/// Each image slot; its last sector holds the MCUboot trailer.
pub const SLOT_SIZE: u32 = 1024 * 1024;
/// The primary slot's offset: the image that runs.
pub const PRIMARY: u32 = 0;
/// The secondary slot's offset.
pub const SECONDARY: u32 = PRIMARY + SLOT_SIZE;
/// The scratch sector's offset.
pub const SCRATCH: u32 = SECONDARY + SLOT_SIZE;
/// The swap status log's offset.
pub const STATUS: u32 = SCRATCH + SECTOR_SIZE;
/// The status log's size: room for a swap of a whole slot, (1 + 3 × 256)
/// records of 16 bytes = 12 304 bytes.
pub const STATUS_SIZE: u32 = 4 * SECTOR_SIZE;
/// The boot stage's own sector (its power-on counter).
pub const BOOT_DATA: u32 = STATUS + STATUS_SIZE;
/// Its size.
pub const BOOT_DATA_SIZE: u32 = SECTOR_SIZE;
/// The storage partition's offset: the device's durable state, kept by the
/// app (the boot stage never touches it).
pub const STORAGE: u32 = FLASH_SIZE - STORAGE_SIZE;
/// Its size.
pub const STORAGE_SIZE: u32 = 64 * 1024;
/// The MCUboot header the images carry (imgtool `--header-size 0x400`):
/// the app's vector table follows it, and a Cortex-M3 vector table of 256
/// entries must be 1 KiB aligned.
pub const HEADER_SIZE: u32 = 0x400;
/// The primary slot's address.
pub const PRIMARY_ADDR: u32 = FLASH_BASE + PRIMARY;
/// Where the app is linked: its vector table, after the header.
pub const APP_ADDR: u32 = PRIMARY_ADDR + HEADER_SIZE;

// The map's invariants, checked when either side compiles.
const _: () = {
    assert!(SLOT_SIZE % SECTOR_SIZE == 0);
    assert!((1 + 3 * (SLOT_SIZE / SECTOR_SIZE)) * 16 <= STATUS_SIZE);
    assert!(BOOT_DATA + BOOT_DATA_SIZE <= STORAGE);
    assert!(STORAGE == 0x00ff_0000);
    assert!(APP_ADDR % 1024 == 0);
};
