//! `cargo xtask` usage errors: exit 2 and one message naming what was wrong,
//! before anything is built.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

use std::process::Command;

fn xtask(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("xtask runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bench_without_a_readable_rig_file_is_a_usage_error() {
    let (code, err) = xtask(&["bench", "--rig", "/nonexistent/rig.toml"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--rig /nonexistent/rig.toml: cannot read"),
        "{err}"
    );
    let (code, err) = xtask(&["bench"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--rig"), "{err}");
}

#[test]
fn emulated_refuses_a_non_empty_out_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
    let (code, err) = xtask(&["emulated", "--out", dir.path().to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("keep.txt")).unwrap(),
        "mine",
        "nothing lost"
    );
}

#[test]
fn a_missing_dut_file_is_a_usage_error_before_anything_runs() {
    let (code, err) = xtask(&["emulated", "--dut", "/nonexistent/dut.toml"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--dut /nonexistent/dut.toml: no such file"),
        "{err}"
    );
}
