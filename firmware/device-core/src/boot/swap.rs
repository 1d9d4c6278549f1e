//! The slot swap of the bootloader, resumable after a power loss at any
//! write: MCUboot's swap-scratch scheme, simplified.
//!
//! Sector `i` of the two slots is exchanged in three idempotent steps, each
//! followed by a status record:
//!
//! 1. primary\[i\] → scratch
//! 2. secondary\[i\] → primary\[i\]
//! 3. scratch → secondary\[i\]
//!
//! A step is redone after a power cut only if its status record is missing,
//! and its source is still intact then (the step that would overwrite it has
//! not started: it comes after the record). Status records are appended to a
//! log in the boot status area, each with a CRC so a torn record is ignored
//! (and its step redone). The log starts with a header record naming how
//! many sectors the swap covers, so resuming never depends on the (half
//! swapped) image headers.
//!
//! The unsafe variant exists only for the `unsafe-swap` fault: it copies the
//! secondary over the primary in place, with no scratch and no status.

use alloc::vec;

/// The flash areas the bootloader touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// The primary slot: the image that runs.
    Primary,
    /// The secondary slot: a new image to swap in, or the old one after a
    /// swap (kept for a revert).
    Secondary,
    /// One sector: the copy of the primary sector in flight.
    Scratch,
    /// The swap status log.
    Status,
}

/// What the bootloader needs of the flash. A power cut may interrupt any call
/// (a write may be torn: a prefix written).
pub trait BootFlash {
    /// The driver's error; the bootloader passes it on as
    /// [`BootError::Flash`](super::BootError::Flash).
    type Error;
    /// Fills `buf` from `offset` (bytes from the start of `area`).
    fn read(&mut self, area: Area, offset: u32, buf: &mut [u8]) -> Result<(), Self::Error>;
    /// Writes `data` at `offset` of `area`; a power cut may leave only a
    /// prefix written.
    fn write(&mut self, area: Area, offset: u32, data: &[u8]) -> Result<(), Self::Error>;
    /// Sets the range to 0xff.
    fn erase(&mut self, area: Area, offset: u32, len: u32) -> Result<(), Self::Error>;
    /// Erase unit of the slots, bytes: the swap moves one sector per step
    /// and the scratch area holds exactly one.
    fn sector_size(&self) -> u32;
    /// Size of each image slot, bytes (a multiple of the sector size); its
    /// last sector holds the trailer.
    fn slot_size(&self) -> u32;
    /// Size of the status log area, bytes: room for
    /// [`records_needed`]`(sectors)` 16-byte records.
    fn status_size(&self) -> u32;
}

const RECORD: usize = 16;
const MAGIC: u32 = 0x5357_4150; // "SWAP"
const KIND_START: u8 = 1;
const KIND_STEP: u8 = 2;

/// Where an interrupted swap stands, read from the status log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwapProgress {
    /// Sectors the swap covers.
    pub sectors: u32,
    /// What the swap is for (the caller's code, e.g. test / permanent / revert).
    pub tag: u8,
    /// Steps completed: sector * 3 + step (0-based count of finished steps).
    pub done: u32,
    /// Records in the log (where the next one goes).
    records: u32,
}

fn crc32(bytes: &[u8]) -> u32 {
    // CRC-32 (IEEE), bitwise: a few hundred records per swap, speed is moot.
    let mut crc = !0u32;
    for b in bytes {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn record(kind: u8, tag: u8, value: u32) -> [u8; RECORD] {
    let mut r = [0u8; RECORD];
    r[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    r[4] = kind;
    r[5] = tag;
    r[8..12].copy_from_slice(&value.to_le_bytes());
    let crc = crc32(&r[..12]);
    r[12..16].copy_from_slice(&crc.to_le_bytes());
    r
}

fn parse(r: &[u8]) -> Option<(u8, u8, u32)> {
    let word = |i: usize| u32::from_le_bytes([r[i], r[i + 1], r[i + 2], r[i + 3]]);
    (word(0) == MAGIC && word(12) == crc32(&r[..12])).then(|| (r[4], r[5], word(8)))
}

/// Reads the status log: `None` when no swap is in progress.
pub fn progress<F: BootFlash>(flash: &mut F) -> Result<Option<SwapProgress>, F::Error> {
    let capacity = flash.status_size() as usize / RECORD;
    let mut buf = [0u8; RECORD];
    flash.read(Area::Status, 0, &mut buf)?;
    let Some((KIND_START, tag, sectors)) = parse(&buf) else {
        return Ok(None);
    };
    let mut done = 0;
    let mut records = 1;
    while (records as usize) < capacity {
        flash.read(Area::Status, records * RECORD as u32, &mut buf)?;
        match parse(&buf) {
            Some((KIND_STEP, _, n)) if n == done + 1 => {
                done = n;
                records += 1;
            }
            // Erased, torn or stale: the log ends here.
            _ => break,
        }
    }
    Ok(Some(SwapProgress {
        sectors,
        tag,
        done,
        records,
    }))
}

/// Log records a swap of `sectors` sectors needs (header + 3 per sector).
pub fn records_needed(sectors: u32) -> u32 {
    1 + 3 * sectors
}

/// Starts a swap of the first `sectors` sectors of both slots. The caller
/// checks `records_needed(sectors) * 16 <= status_size`.
pub fn start<F: BootFlash>(flash: &mut F, sectors: u32, tag: u8) -> Result<SwapProgress, F::Error> {
    let size = flash.status_size();
    flash.erase(Area::Status, 0, size)?;
    flash.write(Area::Status, 0, &record(KIND_START, tag, sectors))?;
    Ok(SwapProgress {
        sectors,
        tag,
        done: 0,
        records: 1,
    })
}

/// Runs (or resumes) the swap to its last sector step. The log stays: the
/// caller next writes the trailers that record the swap's outcome, then
/// calls [`finish`], so a cut in between resumes here (finding no step left)
/// instead of swapping back.
pub fn run<F: BootFlash>(flash: &mut F, mut p: SwapProgress) -> Result<(), F::Error> {
    let sector = flash.sector_size();
    let mut buf = vec![0u8; sector as usize];
    while p.done < 3 * p.sectors {
        let i = p.done / 3;
        let at = i * sector;
        match p.done % 3 {
            0 => {
                flash.read(Area::Primary, at, &mut buf)?;
                flash.erase(Area::Scratch, 0, sector)?;
                flash.write(Area::Scratch, 0, &buf)?;
            }
            1 => {
                flash.read(Area::Secondary, at, &mut buf)?;
                flash.erase(Area::Primary, at, sector)?;
                flash.write(Area::Primary, at, &buf)?;
            }
            _ => {
                flash.read(Area::Scratch, 0, &mut buf)?;
                flash.erase(Area::Secondary, at, sector)?;
                flash.write(Area::Secondary, at, &buf)?;
            }
        }
        p.done += 1;
        flash.write(
            Area::Status,
            p.records * RECORD as u32,
            &record(KIND_STEP, 0, p.done),
        )?;
        p.records += 1;
    }
    Ok(())
}

/// Clears the log once the trailers record the swap.
pub fn finish<F: BootFlash>(flash: &mut F) -> Result<(), F::Error> {
    let size = flash.status_size();
    flash.erase(Area::Status, 0, size)
}

/// Fault `unsafe-swap` only: overwrites the primary with the secondary in
/// place. A power cut leaves a half-written primary and nothing to resume.
pub fn copy_in_place_unsafe<F: BootFlash>(flash: &mut F, sectors: u32) -> Result<(), F::Error> {
    let sector = flash.sector_size();
    let mut buf = vec![0u8; sector as usize];
    for i in 0..sectors {
        flash.read(Area::Secondary, i * sector, &mut buf)?;
        flash.erase(Area::Primary, i * sector, sector)?;
        flash.write(Area::Primary, i * sector, &buf)?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "swap_tests.rs"]
mod tests;
