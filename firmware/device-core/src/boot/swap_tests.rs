//! The swap under power cuts at every write and erase, including torn ones.

use alloc::vec;
use alloc::vec::Vec;

use super::*;

const SECTOR: u32 = 64;
const SECTORS: u32 = 4;

#[derive(Debug, PartialEq)]
struct PowerCut;

/// RAM flash; `cut_at = Some(n)`: the n-th mutating call is torn (half of it
/// happens) and fails, and so does everything after it.
struct MemFlash {
    primary: Vec<u8>,
    secondary: Vec<u8>,
    scratch: Vec<u8>,
    status: Vec<u8>,
    ops: u32,
    cut_at: Option<u32>,
    /// Stands for the trailers the caller writes after `run`.
    outcome_recorded: bool,
}

impl MemFlash {
    fn new() -> Self {
        let n = (SECTOR * (SECTORS + 1)) as usize;
        MemFlash {
            primary: (0..n).map(|i| (i % 251) as u8).collect(),
            secondary: (0..n).map(|i| (i % 241) as u8 ^ 0x5a).collect(),
            scratch: vec![0xff; SECTOR as usize],
            status: vec![0xff; 1024],
            ops: 0,
            cut_at: None,
            outcome_recorded: false,
        }
    }

    fn area(&mut self, a: Area) -> &mut Vec<u8> {
        match a {
            Area::Primary => &mut self.primary,
            Area::Secondary => &mut self.secondary,
            Area::Scratch => &mut self.scratch,
            Area::Status => &mut self.status,
        }
    }

    /// Counts a mutating op; `Some(len)` = torn after `len` bytes.
    fn tick(&mut self, len: usize) -> Option<usize> {
        self.ops += 1;
        match self.cut_at {
            Some(n) if self.ops >= n => Some(if self.ops == n { len / 2 } else { 0 }),
            _ => None,
        }
    }
}

impl BootFlash for MemFlash {
    type Error = PowerCut;
    fn read(&mut self, area: Area, offset: u32, buf: &mut [u8]) -> Result<(), PowerCut> {
        if matches!(self.cut_at, Some(n) if self.ops >= n) {
            return Err(PowerCut);
        }
        let o = offset as usize;
        buf.copy_from_slice(&self.area(area)[o..o + buf.len()]);
        Ok(())
    }
    fn write(&mut self, area: Area, offset: u32, data: &[u8]) -> Result<(), PowerCut> {
        let torn = self.tick(data.len());
        let n = torn.unwrap_or(data.len());
        let o = offset as usize;
        self.area(area)[o..o + n].copy_from_slice(&data[..n]);
        torn.map_or(Ok(()), |_| Err(PowerCut))
    }
    fn erase(&mut self, area: Area, offset: u32, len: u32) -> Result<(), PowerCut> {
        let torn = self.tick(len as usize);
        let n = torn.unwrap_or(len as usize);
        let o = offset as usize;
        self.area(area)[o..o + n].fill(0xff);
        torn.map_or(Ok(()), |_| Err(PowerCut))
    }
    fn sector_size(&self) -> u32 {
        SECTOR
    }
    fn slot_size(&self) -> u32 {
        SECTOR * (SECTORS + 1)
    }
    fn status_size(&self) -> u32 {
        1024
    }
}

/// The bootloader's use of the engine: resume a swap in progress, or start
/// one if the request (stood for by `!outcome_recorded`) is still pending.
fn boot(f: &mut MemFlash) -> Result<(), PowerCut> {
    let p = match progress(f)? {
        Some(p) => p,
        None if !f.outcome_recorded => start(f, SECTORS, 7)?,
        None => return Ok(()),
    };
    run(f, p)?;
    f.tick(0).map_or(Ok(()), |_| Err(PowerCut))?;
    f.outcome_recorded = true;
    finish(f)
}

#[test]
fn an_uninterrupted_swap_exchanges_the_slots_and_clears_the_log() {
    let mut f = MemFlash::new();
    let (a, b) = (f.primary.clone(), f.secondary.clone());
    boot(&mut f).unwrap();
    let span = (SECTOR * SECTORS) as usize;
    assert_eq!(f.primary[..span], b[..span]);
    assert_eq!(f.secondary[..span], a[..span]);
    // The sector past the swap (the trailer's) is untouched.
    assert_eq!(f.primary[span..], a[span..]);
    assert_eq!(progress(&mut f).unwrap(), None);
    assert!(records_needed(SECTORS) as usize * 16 <= 1024);
}

#[test]
fn a_power_cut_at_any_write_or_erase_resumes_to_the_same_result() {
    let mut reference = MemFlash::new();
    boot(&mut reference).unwrap();
    let total = reference.ops;
    assert!(total > 3 * SECTORS * 2);
    for cut in 1..=total {
        let mut f = MemFlash::new();
        f.cut_at = Some(cut);
        assert_eq!(boot(&mut f), Err(PowerCut), "cut {cut} must interrupt");
        f.cut_at = None;
        boot(&mut f).unwrap();
        assert_eq!(
            f.primary, reference.primary,
            "primary after a cut at op {cut}"
        );
        assert_eq!(
            f.secondary, reference.secondary,
            "secondary after a cut at op {cut}"
        );
        assert!(f.outcome_recorded);
    }
}

#[test]
fn cuts_during_the_resume_itself_also_resume() {
    let mut reference = MemFlash::new();
    boot(&mut reference).unwrap();
    for first in [3, 10, 17] {
        for second in 1..12 {
            let mut f = MemFlash::new();
            f.cut_at = Some(first);
            let _ = boot(&mut f);
            f.ops = 0;
            f.cut_at = Some(second);
            let _ = boot(&mut f);
            f.cut_at = None;
            boot(&mut f).unwrap();
            assert_eq!(
                (
                    f.primary == reference.primary,
                    f.secondary == reference.secondary
                ),
                (true, true)
            );
        }
    }
}

#[test]
fn the_unsafe_copy_loses_the_old_image_and_a_cut_leaves_a_mix() {
    let mut f = MemFlash::new();
    let (a, b) = (f.primary.clone(), f.secondary.clone());
    f.cut_at = Some(4);
    assert_eq!(copy_in_place_unsafe(&mut f, SECTORS), Err(PowerCut));
    let span = (SECTOR * SECTORS) as usize;
    assert_ne!(f.primary[..span], a[..span]);
    assert_ne!(f.primary[..span], b[..span]);
    let mut g = MemFlash::new();
    copy_in_place_unsafe(&mut g, SECTORS).unwrap();
    assert_eq!(g.primary[..span], b[..span]);
    assert_eq!(g.secondary[..span], b[..span], "nothing left to revert to");
}

#[test]
fn torn_or_foreign_status_records_are_ignored() {
    assert_eq!(parse(&record(KIND_STEP, 0, 7)), Some((KIND_STEP, 0, 7)));
    let mut r = record(KIND_STEP, 0, 7);
    r[9] ^= 1;
    assert_eq!(parse(&r), None);
    assert_eq!(parse(&[0xff; RECORD]), None);
}
