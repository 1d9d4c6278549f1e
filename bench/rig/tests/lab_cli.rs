//! `sacbench-rig flash`: a bad rig file or a missing image gets one error
//! naming what is wrong, and a non-zero exit.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

use std::process::Command;

fn flash(rig: &std::path::Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sacbench-rig"))
        .arg("flash")
        .arg("--rig")
        .arg(rig)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_rig_files_and_missing_images_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("rig.toml");
    std::fs::write(&bad, "name = \"r\"\n[power]\ntcp = \"127.0.0.1:502\"\nunit = 1\n\n[dut]\nipv4 = \"192.0.2.20\"\n").unwrap();
    let (code, err) = flash(&bad);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("rig.toml") && err.contains("power.coil"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one error: {err}");

    let no_image = dir.path().join("console-only.toml");
    std::fs::write(&no_image, "name = \"r\"\n[dut]\nipv4 = \"192.0.2.20\"\n").unwrap();
    let (code, err) = flash(&no_image);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("console-only.toml") && (err.contains("image") || err.contains("flash")),
        "{err}"
    );
}
