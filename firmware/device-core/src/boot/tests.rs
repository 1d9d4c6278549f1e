//! The bootloader over a RAM flash: test swap, confirm, revert, refusing a
//! bad secondary, and power cuts at every flash operation of a swap.

extern crate std;

use alloc::vec;
use alloc::vec::Vec;

use mcuboot_image::{sign, KeyType, SignOptions, SigningKey};

use super::*;

const SECTOR: u32 = 1024;
const SLOT: u32 = 16 * SECTOR;

#[derive(Debug, Clone, Copy, PartialEq)]
struct PowerCut;

#[derive(Clone)]
struct MemFlash {
    primary: Vec<u8>,
    secondary: Vec<u8>,
    scratch: Vec<u8>,
    status: Vec<u8>,
    ops: u32,
    cut_at: Option<u32>,
    /// Bytes read, per area (primary, secondary, scratch, status).
    read: [usize; 4],
}

impl MemFlash {
    fn new() -> Self {
        MemFlash {
            primary: vec![0xff; SLOT as usize],
            secondary: vec![0xff; SLOT as usize],
            scratch: vec![0xff; SECTOR as usize],
            status: vec![0xff; 4096],
            ops: 0,
            cut_at: None,
            read: [0; 4],
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
    fn cut(&self) -> bool {
        matches!(self.cut_at, Some(n) if self.ops >= n)
    }
    fn mutate(&mut self, area: Area, offset: u32, data: &[u8]) -> Result<(), PowerCut> {
        if self.cut() {
            return Err(PowerCut);
        }
        self.ops += 1;
        let torn = self.cut();
        let n = if torn { data.len() / 2 } else { data.len() };
        let o = offset as usize;
        self.area(area)[o..o + n].copy_from_slice(&data[..n]);
        if torn {
            Err(PowerCut)
        } else {
            Ok(())
        }
    }
}

impl BootFlash for MemFlash {
    type Error = PowerCut;
    fn read(&mut self, area: Area, offset: u32, buf: &mut [u8]) -> Result<(), PowerCut> {
        if self.cut() {
            return Err(PowerCut);
        }
        let o = offset as usize;
        buf.copy_from_slice(&self.area(area)[o..o + buf.len()]);
        self.read[area as usize] += buf.len();
        Ok(())
    }
    fn write(&mut self, area: Area, offset: u32, data: &[u8]) -> Result<(), PowerCut> {
        self.mutate(area, offset, data)
    }
    fn erase(&mut self, area: Area, offset: u32, len: u32) -> Result<(), PowerCut> {
        self.mutate(area, offset, &vec![0xff; len as usize])
    }
    fn sector_size(&self) -> u32 {
        SECTOR
    }
    fn slot_size(&self) -> u32 {
        SLOT
    }
    fn status_size(&self) -> u32 {
        4096
    }
}

fn image(key: &SigningKey, major: u8, len: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(major + 1))
        .collect();
    let opts = SignOptions {
        version: ImageVersion {
            major,
            minor: 0,
            revision: 0,
            build_num: 0,
        },
        security_counter: Some(u32::from(major)),
        header_size: 0x200,
        ..SignOptions::default()
    };
    sign(&payload, key, &opts).unwrap()
}

struct Setup {
    flash: MemFlash,
    keys: Vec<TrustedKey>,
}

/// v1 flashed in the primary slot; v2 (larger) written to the secondary and requested for a test.
fn setup() -> Setup {
    let key = SigningKey::generate(KeyType::Ed25519);
    let mut flash = MemFlash::new();
    let v1 = image(&key, 1, 5000);
    flash.primary[..v1.len()].copy_from_slice(&v1);
    let v2 = image(&key, 2, 9000);
    flash.secondary[..v2.len()].copy_from_slice(&v2);
    request_test(&mut flash).unwrap();
    Setup {
        keys: vec![key.trusted_key()],
        flash,
    }
}

fn major(r: &BootReport) -> u8 {
    r.version.major
}

#[test]
fn test_boot_then_revert_without_confirmation() {
    let Setup {
        mut flash, keys, ..
    } = setup();
    let r = power_on(&mut flash, &keys, BootConfig::default()).unwrap();
    assert_eq!(
        (r.action, major(&r), r.test_boot),
        (BootAction::SwapTest, 2, true)
    );
    let payload = &flash.primary[r.payload_offset as usize..][..r.payload_len as usize];
    assert_eq!(payload.len(), 9000);
    // Not confirmed: the next power-on reverts.
    let r = power_on(&mut flash, &keys, BootConfig::default()).unwrap();
    assert_eq!(
        (r.action, major(&r), r.test_boot),
        (BootAction::Revert, 1, false)
    );
    let r = power_on(&mut flash, &keys, BootConfig::default()).unwrap();
    assert_eq!((r.action, major(&r)), (BootAction::RunPrimary, 1));
}

#[test]
fn a_confirmed_test_image_stays() {
    let Setup {
        mut flash, keys, ..
    } = setup();
    power_on(&mut flash, &keys, BootConfig::default()).unwrap();
    confirm(&mut flash).unwrap();
    for _ in 0..2 {
        let r = power_on(&mut flash, &keys, BootConfig::default()).unwrap();
        assert_eq!(
            (r.action, major(&r), r.test_boot),
            (BootAction::RunPrimary, 2, false)
        );
    }
}

#[test]
fn a_boot_reads_the_images_not_the_slots() {
    let Setup {
        mut flash, keys, ..
    } = setup();
    // The swap: both images and their trailers, nowhere near two slots.
    power_on(&mut flash, &keys, BootConfig::default()).unwrap();
    confirm(&mut flash).unwrap();
    let trailers = 2 * TRAILER_SIZE;
    // A plain boot: the primary image (v2, 9000 bytes + header + TLVs) and
    // the trailers; the secondary's image is not read without a request.
    flash.read = [0; 4];
    let r = power_on(&mut flash, &keys, BootConfig::default()).unwrap();
    assert_eq!(r.action, BootAction::RunPrimary);
    let primary_len = flash.read[Area::Primary as usize];
    assert!(
        primary_len < 9000 + 0x200 + 512 + trailers,
        "primary read {primary_len} bytes"
    );
    assert!(primary_len >= 9000, "primary read {primary_len} bytes");
    assert!(
        flash.read[Area::Secondary as usize] <= TRAILER_SIZE,
        "secondary read {} bytes",
        flash.read[Area::Secondary as usize]
    );
}

#[test]
fn a_secondary_signed_by_an_unknown_key_is_discarded() {
    let Setup {
        mut flash, keys, ..
    } = setup();
    let stranger = SigningKey::generate(KeyType::EcdsaP256);
    let bad = image(&stranger, 3, 3000);
    flash.secondary[..bad.len()].copy_from_slice(&bad);
    let r = power_on(&mut flash, &keys, BootConfig::default()).unwrap();
    assert_eq!((r.action, major(&r)), (BootAction::DiscardSecondary, 1));
    let r = power_on(&mut flash, &keys, BootConfig::default()).unwrap();
    assert_eq!(r.action, BootAction::RunPrimary, "the request is gone");
}

#[test]
fn a_corrupt_primary_is_not_booted() {
    let Setup {
        mut flash, keys, ..
    } = setup();
    flash.secondary.fill(0xff);
    flash.primary[0x300] ^= 1;
    match power_on(&mut flash, &keys, BootConfig::default()) {
        Err(BootError::NoBootableImage(why)) => assert!(why.contains("primary"), "{why}"),
        other => panic!("{other:?}"),
    }
}

/// Power cut at every flash operation of `power_on`, then a clean power-on:
/// always a valid image, and the swap's outcome is the uninterrupted one.
fn cut_everywhere(
    config: BootConfig,
    before: impl Fn(&mut MemFlash, &[TrustedKey]),
) -> Vec<Option<u8>> {
    let Setup { flash, keys, .. } = setup();
    let mut base = flash.clone();
    before(&mut base, &keys);
    let mut reference = base.clone();
    power_on(&mut reference, &keys, config).unwrap();
    let total = reference.ops - base.ops;
    let mut outcomes = Vec::new();
    for cut in 1..=total {
        let mut f = base.clone();
        f.cut_at = Some(base.ops + cut);
        assert!(
            power_on(&mut f, &keys, config).is_err(),
            "cut {cut} interrupts"
        );
        f.cut_at = None;
        outcomes.push(power_on(&mut f, &keys, config).ok().map(|r| major(&r)));
    }
    outcomes
}

#[test]
fn a_power_cut_anywhere_in_a_test_swap_still_boots_the_new_image() {
    let outcomes = cut_everywhere(BootConfig::default(), |_, _| {});
    assert!(outcomes.len() > 20);
    assert!(
        outcomes.iter().all(Option::is_some),
        "always bootable: {outcomes:?}"
    );
    // Until the trailers are written the swap resumes to the new image. A cut
    // in the final clearing of the log comes after the test boot was set up:
    // it counts as a failed test boot and reverts, as on MCUboot.
    let (body, tail) = outcomes.split_at(outcomes.len() - 1);
    assert!(body.iter().all(|o| *o == Some(2)), "{outcomes:?}");
    assert!(matches!(tail, [Some(1 | 2)]));
}

#[test]
fn a_power_cut_anywhere_in_a_revert_still_boots_the_old_image() {
    let outcomes = cut_everywhere(BootConfig::default(), |f, keys| {
        power_on(f, keys, BootConfig::default()).unwrap();
    });
    assert!(outcomes.iter().all(|o| *o == Some(1)), "{outcomes:?}");
}

#[test]
fn the_unsafe_swap_fault_bricks_the_board_on_some_cut() {
    let outcomes = cut_everywhere(BootConfig { unsafe_swap: true }, |_, _| {});
    assert!(
        outcomes.contains(&None),
        "some cut must leave nothing bootable: {outcomes:?}"
    );
    let Setup { mut flash, keys } = setup();
    let r = power_on(&mut flash, &keys, BootConfig { unsafe_swap: true }).unwrap();
    assert_eq!(major(&r), 2);
    let r = power_on(&mut flash, &keys, BootConfig { unsafe_swap: true }).unwrap();
    assert_ne!(
        major(&r),
        1,
        "nothing to revert to: the old image was overwritten"
    );
}
