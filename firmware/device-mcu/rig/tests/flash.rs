//! The board's flash and its boot stage under QEMU (issue 17 §1): the flash
//! file persists across power cycles (the boot stage's power-on counter,
//! and a test swap that a later power-on reverts), a corrupt image is not
//! started (`no bootable image`, no frame on the wire), and the signed
//! images `build` makes are MCUboot's format by imgtool's own check. Needs
//! root, `qemu-system-arm`, `imgtool` (PyPI) and the thumbv7m target.
#![allow(clippy::unwrap_used)]

use device_mcu_rig::flashmap::{BOOT_DATA, FLASH_SIZE, HEADER_SIZE, SECONDARY, SLOT_SIZE};
use device_mcu_rig::image::{self, sign_app_as, signing_key, BOOT_STAGE, IMAGE_VERSION};
use device_mcu_rig::{build_image, NetNs, Qemu};
use mcuboot_image::sign::PadTrailer;
use mcuboot_image::ImageVersion;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const MAC: &str = "52:54:00:17:00:02";
const BOOT_WITHIN: Duration = Duration::from_secs(60);

/// A folder of one test's, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("devmcu-flash-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

/// A new unit: the boot stage, its flash file with the debug image
/// (bring-up diagnostic: no record is laid) in the primary slot, that
/// image's ELF, and the folder holding the flash (removed on drop).
struct Unit {
    boot: PathBuf,
    flash: PathBuf,
    elf: PathBuf,
    _dir: Scratch,
}

fn unit(name: &str) -> Unit {
    let elf = build_image("10.0.17.2/24", "10.0.17.1:7700").unwrap();
    let dir = scratch(name);
    let flash = dir.0.join("flash.bin");
    assert!(image::flash_once(&flash, &image::sign_app_file(&elf).unwrap()).unwrap());
    Unit {
        boot: elf.with_file_name(BOOT_STAGE),
        flash,
        elf,
        _dir: dir,
    }
}

fn ns(tag: &str) -> NetNs {
    NetNs::create(
        &format!("devmcu-{tag}-{}", std::process::id()),
        "tap0",
        "10.0.17.1/24",
    )
    .unwrap()
}

fn power_on(ns: &NetNs, boot: &Path, flash: &Path) -> Qemu {
    Qemu::boot_flash(ns, boot, flash, MAC, None).unwrap()
}

/// The boot stage's power-on counter as the flash file holds it.
fn counter(flash: &Path) -> (u32, u32) {
    let f = std::fs::read(flash).unwrap();
    assert_eq!(f.len(), FLASH_SIZE as usize);
    let at = BOOT_DATA as usize;
    let word = |i: usize| u32::from_le_bytes(f[i..i + 4].try_into().unwrap());
    (word(at), word(at + 4))
}

#[test]
fn the_flash_file_persists_across_power_cycles() {
    let u = unit("persist");
    let (boot, flash) = (&u.boot, &u.flash);
    let ns = ns("persist");
    for n in 1..=2u32 {
        let mut qemu = power_on(&ns, boot, flash);
        let line = qemu.wait_line("boot: #", BOOT_WITHIN).unwrap();
        assert_eq!(
            line,
            format!("boot: #{n} action=none version=1.0.0 test_boot=false resumed_swap=false")
        );
        qemu.wait_line("boot: starting the image at 0x21000400", BOOT_WITHIN)
            .unwrap();
        qemu.wait_line("device-mcu: boot", BOOT_WITHIN).unwrap();
        // Power off: QEMU killed; what the board wrote is in the file.
        drop(qemu);
        assert_eq!(counter(flash), (n, !n));
    }
}

#[test]
fn a_test_swap_runs_the_update_once_and_the_next_power_on_reverts_it() {
    let u = unit("swap");
    let (boot, flash, elf) = (&u.boot, &u.flash, &u.elf);
    // An update (1.1.0) written to the secondary slot, asking for a test
    // swap, as an OTA client would leave it.
    let update = sign_app_as(
        &std::fs::read(elf).unwrap(),
        &signing_key().unwrap(),
        ImageVersion::new(1, 1, 0, 0),
        Some(PadTrailer::Test),
    )
    .unwrap();
    assert_eq!(update.len(), SLOT_SIZE as usize);
    let mut f = std::fs::read(flash).unwrap();
    f[SECONDARY as usize..(SECONDARY + SLOT_SIZE) as usize].copy_from_slice(&update);
    std::fs::write(flash, &f).unwrap();

    let ns = ns("swap");
    let mut qemu = power_on(&ns, boot, flash);
    let line = qemu.wait_line("boot: #", BOOT_WITHIN).unwrap();
    assert_eq!(
        line,
        "boot: #1 action=test version=1.1.0 test_boot=true resumed_swap=false"
    );
    qemu.wait_line("device-mcu: boot", BOOT_WITHIN).unwrap();
    drop(qemu);
    // The image does not confirm itself (this app has no OTA yet): the
    // next power-on swaps the old one back — from the trailers the first
    // run left in the file.
    let mut qemu = power_on(&ns, boot, flash);
    let line = qemu.wait_line("boot: #", BOOT_WITHIN).unwrap();
    let v = IMAGE_VERSION;
    assert_eq!(
        line,
        format!(
            "boot: #2 action=revert version={}.{}.{} test_boot=false resumed_swap=false",
            v.major, v.minor, v.revision
        )
    );
    qemu.wait_line("device-mcu: boot", BOOT_WITHIN).unwrap();
}

/// Frames the board sent: the TAP's receive count on the host side.
fn frames_from_board(ns: &NetNs) -> u64 {
    let out = ns
        .command("ip")
        .args(["-s", "-j", "link", "show", "dev", "tap0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0]["stats64"]["rx"]["packets"].as_u64().unwrap()
}

#[test]
fn a_corrupt_image_is_not_started() {
    let u = unit("corrupt");
    // One bit of the payload flipped: the hash no longer matches.
    let mut f = std::fs::read(&u.flash).unwrap();
    f[HEADER_SIZE as usize + 0x100] ^= 0x01;
    std::fs::write(&u.flash, &f).unwrap();
    let ns = ns("corrupt");
    let before = frames_from_board(&ns);
    let mut qemu = power_on(&ns, &u.boot, &u.flash);
    let line = qemu
        .wait_line("boot: no bootable image", BOOT_WITHIN)
        .unwrap();
    assert!(
        line.contains("primary slot") && line.ends_with("; halting"),
        "{line}"
    );
    // The boot stage halts after that line; power off, then look: no line
    // of the app and no frame from the board, ever.
    drop(qemu);
    let after = frames_from_board(&ns);
    assert_eq!(after, before, "the board sent frames");
    // The unit's flash is not "repaired" or erased by the refusal.
    assert_eq!(std::fs::read(&u.flash).unwrap()[..0x1000], f[..0x1000]);
}

#[test]
fn a_good_image_sends_frames_where_a_corrupt_one_sends_none() {
    // The control of `a_corrupt_image_is_not_started`: the counter it reads
    // does count the board's frames. The bring-up diagnostic dials a peer
    // nobody listens for: the host answers its SYN with a reset, and only
    // then (the socket closed) does it dial again — so a second dial line
    // means its ARP and SYN went out.
    let u = unit("control");
    let ns = ns("control");
    let before = frames_from_board(&ns);
    let mut qemu = power_on(&ns, &u.boot, &u.flash);
    qemu.wait_line("tcp: dialling", BOOT_WITHIN).unwrap();
    qemu.wait_line("tcp: dialling", BOOT_WITHIN).unwrap();
    drop(qemu);
    assert!(frames_from_board(&ns) > before);
}

#[test]
fn imgtool_accepts_the_images_build_makes() {
    let u = unit("imgtool");
    let signed = u.elf.with_file_name("device-mcu.faults-none.signed.bin");
    let key = device_mcu_rig::firmware_dir().join("../keys/dev-image-signing-ed25519.pem");
    let out = Command::new("imgtool")
        .arg("verify")
        .arg("-k")
        .arg(&key)
        .arg(&signed)
        .output()
        .expect("imgtool (PyPI) on PATH");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "imgtool verify {}: {text}",
        signed.display()
    );
    assert!(text.contains("Image was correctly validated"), "{text}");
    // And refuses it with one byte changed (the check is real).
    let mut bytes = std::fs::read(&signed).unwrap();
    bytes[HEADER_SIZE as usize + 0x100] ^= 0x01;
    let bad_dir = scratch("imgtool-bad");
    let bad = bad_dir.0.join("bad.bin");
    std::fs::write(&bad, &bytes).unwrap();
    let out = Command::new("imgtool")
        .arg("verify")
        .arg("-k")
        .arg(&key)
        .arg(&bad)
        .output()
        .unwrap();
    assert!(
        !out.status.success()
            || !String::from_utf8_lossy(&out.stdout).contains("correctly validated")
    );
}
