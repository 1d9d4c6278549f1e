//! Host tests of the boot stage's sans-IO part (`boot/src/slots.rs`,
//! compiled from its source with the flash map): device-core's boot logic
//! over the flash as a byte slice — the code the board runs over its mapped
//! flash — and the power-on counter. No QEMU: `cargo test --test boot_slots`.
#![allow(clippy::unwrap_used)]

extern crate alloc;

#[path = "../../boot/src/flashmap.rs"]
#[allow(dead_code)]
mod flashmap;
#[path = "../../boot/src/slots.rs"]
mod slots;

use device_core::boot::{power_on, BootConfig, BootError};
use device_core::image::trailer::BootAction;
use device_core::image::TrustedKey;
use device_mcu_rig::image::{factory_flash, signing_key};
use flashmap::{BOOT_DATA, HEADER_SIZE, SECONDARY, SLOT_SIZE};
use mcuboot_image::sign::{sign, PadTrailer, SignOptions};
use mcuboot_image::ImageVersion;
use slots::SliceFlash;

fn keys() -> Vec<TrustedKey> {
    vec![signing_key().unwrap().trusted_key()]
}

fn image(version: ImageVersion, pad: Option<PadTrailer>) -> Vec<u8> {
    // A vector table's first words (SP, reset vector), then code bytes.
    let mut payload = Vec::new();
    payload.extend_from_slice(&0x2040_0000u32.to_le_bytes());
    payload.extend_from_slice(&(flashmap::APP_ADDR + 0x401).to_le_bytes());
    payload.resize(20_000, 0x5a);
    let opts = SignOptions {
        version,
        header_size: HEADER_SIZE as u16,
        slot_size: Some(SLOT_SIZE),
        pad,
        ..SignOptions::default()
    };
    sign(&payload, &signing_key().unwrap(), &opts).unwrap()
}

#[test]
fn the_primary_image_is_checked_and_its_vectors_read() {
    let mut mem = factory_flash(&image(ImageVersion::new(1, 0, 0, 0), None)).unwrap();
    let mut flash = SliceFlash::new(&mut mem).unwrap();
    let r = power_on(&mut flash, &keys(), BootConfig::default()).unwrap();
    assert_eq!(r.action, BootAction::RunPrimary);
    assert_eq!(r.version, ImageVersion::new(1, 0, 0, 0));
    assert_eq!(r.payload_offset, HEADER_SIZE);
    assert_eq!(r.payload_len, 20_000);
    assert_eq!(
        flash.primary_words(r.payload_offset),
        (0x2040_0000, flashmap::APP_ADDR + 0x401)
    );
    // Past the slot: erased words, never another area's bytes.
    assert_eq!(flash.primary_words(SLOT_SIZE - 4), (u32::MAX, u32::MAX));
}

#[test]
fn a_flipped_payload_bit_or_another_key_is_no_bootable_image() {
    let good = image(ImageVersion::new(1, 0, 0, 0), None);
    let mut mem = factory_flash(&good).unwrap();
    mem[HEADER_SIZE as usize + 100] ^= 0x10;
    let mut flash = SliceFlash::new(&mut mem).unwrap();
    let e = power_on(&mut flash, &keys(), BootConfig::default()).unwrap_err();
    assert!(matches!(e, BootError::NoBootableImage(_)), "{e:?}");

    let mut mem = factory_flash(&good).unwrap();
    let mut flash = SliceFlash::new(&mut mem).unwrap();
    let stranger = mcuboot_image::sign::SigningKey::generate(mcuboot_image::KeyType::Ed25519);
    let e = power_on(&mut flash, &[stranger.trusted_key()], BootConfig::default()).unwrap_err();
    assert!(matches!(e, BootError::NoBootableImage(_)), "{e:?}");

    // Erased flash: nothing to boot.
    let mut mem = vec![0xff; flashmap::FLASH_SIZE as usize];
    let mut flash = SliceFlash::new(&mut mem).unwrap();
    let e = power_on(&mut flash, &keys(), BootConfig::default()).unwrap_err();
    assert!(matches!(e, BootError::NoBootableImage(_)), "{e:?}");
}

#[test]
fn a_test_swap_over_the_slice_runs_then_reverts() {
    let mut mem = factory_flash(&image(ImageVersion::new(1, 0, 0, 0), None)).unwrap();
    let update = image(ImageVersion::new(1, 1, 0, 0), Some(PadTrailer::Test));
    mem[SECONDARY as usize..(SECONDARY + SLOT_SIZE) as usize].copy_from_slice(&update);
    let mut flash = SliceFlash::new(&mut mem).unwrap();
    let r = power_on(&mut flash, &keys(), BootConfig::default()).unwrap();
    assert_eq!((r.action, r.test_boot), (BootAction::SwapTest, true));
    assert_eq!(r.version, ImageVersion::new(1, 1, 0, 0));
    let r = power_on(&mut flash, &keys(), BootConfig::default()).unwrap();
    assert_eq!(r.action, BootAction::Revert);
    assert_eq!(r.version, ImageVersion::new(1, 0, 0, 0));
}

#[test]
fn the_power_on_counter_counts_from_erased_and_restarts_when_torn() {
    let mut mem = vec![0xff; flashmap::FLASH_SIZE as usize];
    let mut flash = SliceFlash::new(&mut mem).unwrap();
    assert_eq!(flash.count_power_on(), 1);
    assert_eq!(flash.count_power_on(), 2);
    let at = BOOT_DATA as usize;
    assert_eq!(&mem[at..at + 8], &[2, 0, 0, 0, 0xfd, 0xff, 0xff, 0xff]);
    // A count without its complement (a torn write) counts as none.
    mem[at] = 9;
    let mut flash = SliceFlash::new(&mut mem).unwrap();
    assert_eq!(flash.count_power_on(), 1);
    // Too small a slice for the map: refused.
    let mut small = vec![0xff; 4096];
    assert!(SliceFlash::new(&mut small).is_none());
}
