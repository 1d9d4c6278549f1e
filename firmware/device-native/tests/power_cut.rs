//! Power cuts inside the bootloader's swap, on the real flash file: cut at
//! every flash write of a test swap, power on again, and the board always
//! boots a valid image (the new one, after resuming the swap). With the
//! `unsafe-swap` fault some cut leaves it bricked.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

mod common;

use std::path::Path;
use std::process::Output;

use device_native::flash::{FlashFile, Layout, Region, POWER_CUT_ENV};

/// A payload that prints its name and exits (a "crash": the bootloader's
/// `--max-boots 1` then ends the run). Padded so the swap spans sectors.
fn image(name: &str, major: u8) -> Vec<u8> {
    let mut script = format!("#!/bin/sh\necho payload={name} >&2\nexit 1\n").into_bytes();
    script.push(b'#');
    script.resize(300 * 1024, b'x');
    script.push(b'\n');
    sacbench_test_support::sign_dev(&script, major, 0, u32::from(major))
}

fn board(dir: &Path, faults: &[&str]) {
    let layout = Layout {
        slot_size: 1024 * 1024,
        ..Layout::default()
    };
    let flash = FlashFile::create(&dir.join("flash.bin"), layout).unwrap();
    let (v1, v2) = (image("v1", 1), image("v2", 2));
    flash.write(Region::Primary, 0, &v1).unwrap();
    flash.write(Region::Secondary, 0, &v2).unwrap();
    let mut f = FlashFile::open(&dir.join("flash.bin")).unwrap();
    device_core::boot::request_test(&mut f).unwrap();
    common::placeholder_provisioning(&dir.join("prov"), "d", 1, faults);
}

fn power_on(dir: &Path, cut_after: Option<u64>) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_device-native"));
    cmd.arg("boot")
        .arg("--flash")
        .arg(dir.join("flash.bin"))
        .arg("--provisioning")
        .arg(dir.join("prov"))
        .arg("--run-dir")
        .arg(dir.join("run"))
        .args(["--max-boots", "1"]);
    match cut_after {
        Some(n) => cmd.env(POWER_CUT_ENV, n.to_string()),
        None => cmd.env_remove(POWER_CUT_ENV),
    };
    cmd.output().unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Returns, per cut point, what the next power-on ran ("v1", "v2" or "bricked").
fn cut_everywhere(faults: &[&str]) -> Vec<String> {
    let mut outcomes = Vec::new();
    for cut in 1.. {
        let dir = tempfile::tempdir().unwrap();
        board(dir.path(), faults);
        let first = power_on(dir.path(), Some(cut));
        if first.status.code().is_some() {
            // The swap needed fewer writes than `cut`: every point is covered.
            assert!(text(&first).contains("payload=v2"), "{}", text(&first));
            break;
        }
        let second = power_on(dir.path(), None);
        let t = text(&second);
        outcomes.push(if t.contains("payload=v2") {
            "v2".to_string()
        } else if t.contains("payload=v1") {
            "v1".to_string()
        } else {
            assert_eq!(second.status.code(), Some(3), "{t}");
            "bricked".to_string()
        });
        assert!(cut < 500, "the swap never finished");
    }
    outcomes
}

#[test]
fn a_power_cut_at_any_write_of_the_swap_still_boots_a_valid_image() {
    let outcomes = cut_everywhere(&[]);
    assert!(outcomes.len() > 10, "{outcomes:?}");
    // Cuts before the trailers are final resume into the test boot of v2; the
    // last one (clearing the log) counts as a failed test boot and reverts.
    let (body, last) = outcomes.split_at(outcomes.len() - 1);
    assert!(body.iter().all(|o| o == "v2"), "{outcomes:?}");
    assert!(last[0] == "v1" || last[0] == "v2", "{outcomes:?}");
}

#[test]
fn the_unsafe_swap_fault_can_brick_the_board() {
    let outcomes = cut_everywhere(&["unsafe-swap"]);
    assert!(outcomes.iter().any(|o| o == "bricked"), "{outcomes:?}");
}
