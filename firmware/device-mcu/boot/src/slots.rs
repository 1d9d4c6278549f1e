//! device-core's `BootFlash` over the flash as one byte slice (on the board
//! the memory-mapped PSRAM, `flashmap`; in the rig's tests a `Vec`), and
//! the boot stage's power-on counter. Sans-IO: no addresses, no volatile
//! access, so the host tests run the very code the board runs.

use device_core::boot::{Area, BootFlash};

use crate::flashmap::{
    BOOT_DATA, PRIMARY, SCRATCH, SECONDARY, SECTOR_SIZE, SLOT_SIZE, STATUS, STATUS_SIZE,
};

/// An access outside its area (a bug of the caller, never of the image).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfArea {
    /// The area.
    pub area: Area,
    /// The offset asked.
    pub offset: u32,
    /// The length asked.
    pub len: usize,
}

/// The flash as a slice of the whole map (`flashmap::FLASH_SIZE` bytes).
pub struct SliceFlash<'a> {
    mem: &'a mut [u8],
}

impl<'a> SliceFlash<'a> {
    /// The flash over `mem`, which starts at the map's offset 0 and covers
    /// at least the boot stage's data sector.
    pub fn new(mem: &'a mut [u8]) -> Option<Self> {
        (mem.len() >= (BOOT_DATA + SECTOR_SIZE) as usize).then_some(SliceFlash { mem })
    }

    fn range(
        &self,
        area: Area,
        offset: u32,
        len: usize,
    ) -> Result<core::ops::Range<usize>, OutOfArea> {
        let (start, size) = match area {
            Area::Primary => (PRIMARY, SLOT_SIZE),
            Area::Secondary => (SECONDARY, SLOT_SIZE),
            Area::Scratch => (SCRATCH, SECTOR_SIZE),
            Area::Status => (STATUS, STATUS_SIZE),
        };
        let bad = OutOfArea { area, offset, len };
        let end = (offset as usize).checked_add(len).ok_or(bad)?;
        if end > size as usize {
            return Err(bad);
        }
        Ok(start as usize + offset as usize..start as usize + end)
    }

    /// The boot stage's power-on counter: read, counted up, written back;
    /// returns the new count (1 on a unit's first power-on). Kept as the
    /// count and its complement (8 bytes at the start of the boot data
    /// sector): anything else — erased flash, a torn write — counts as 0.
    pub fn count_power_on(&mut self) -> u32 {
        let at = BOOT_DATA as usize;
        let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let (count, check) = (word(&self.mem[at..]), word(&self.mem[at + 4..]));
        let count = if count == !check { count } else { 0 };
        let next = count.wrapping_add(1).max(1);
        self.mem[at..at + 4].copy_from_slice(&next.to_le_bytes());
        self.mem[at + 4..at + 8].copy_from_slice(&(!next).to_le_bytes());
        next
    }
}

impl BootFlash for SliceFlash<'_> {
    type Error = OutOfArea;

    fn read(&mut self, area: Area, offset: u32, buf: &mut [u8]) -> Result<(), OutOfArea> {
        let r = self.range(area, offset, buf.len())?;
        buf.copy_from_slice(&self.mem[r]);
        Ok(())
    }

    fn write(&mut self, area: Area, offset: u32, data: &[u8]) -> Result<(), OutOfArea> {
        let r = self.range(area, offset, data.len())?;
        self.mem[r].copy_from_slice(data);
        Ok(())
    }

    fn erase(&mut self, area: Area, offset: u32, len: u32) -> Result<(), OutOfArea> {
        let r = self.range(area, offset, len as usize)?;
        self.mem[r].fill(0xff);
        Ok(())
    }

    fn sector_size(&self) -> u32 {
        SECTOR_SIZE
    }

    fn slot_size(&self) -> u32 {
        SLOT_SIZE
    }

    fn status_size(&self) -> u32 {
        STATUS_SIZE
    }
}

impl SliceFlash<'_> {
    /// The first two words at `offset` of the primary slot (an image's
    /// vector table: initial SP, reset vector); erased words past the slot.
    pub fn primary_words(&self, offset: u32) -> (u32, u32) {
        let word = |at: u32| {
            let at = (PRIMARY + at) as usize;
            match self.mem.get(at..at + 4) {
                Some(b) if at + 4 <= (PRIMARY + SLOT_SIZE) as usize => {
                    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
                }
                _ => u32::MAX,
            }
        };
        (word(offset), word(offset + 4))
    }
}
