//! `devmcu-board run --gdb PATH`: QEMU's gdbstub on a Unix socket, through
//! which the bench reads the image's RTT (the DUT file's `[emulated] rtt`).
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use device_mcu_rig::board::RunArgs;
use device_mcu_rig::gdb::qemu_gdb_args;

fn argv(extra: &[&str]) -> Vec<String> {
    [
        "--provisioning",
        "p",
        "--state",
        "s",
        "--images",
        "i",
        "--ip",
        "10.200.7.2/30",
        "--gateway",
        "10.200.7.1",
        "--sntp",
        "10.200.7.1:123",
        "--dns",
        "10.200.7.1",
        "--bridge",
        "br0",
    ]
    .iter()
    .chain(extra)
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn gdb_is_optional_and_taken_once() {
    assert_eq!(RunArgs::parse(argv(&[])).unwrap().gdb, None);
    let a = RunArgs::parse(argv(&["--gdb", "s/gdb.sock"])).unwrap();
    assert_eq!(a.gdb, Some(PathBuf::from("s/gdb.sock")));
    let e = RunArgs::parse(argv(&["--gdb", "a", "--gdb", "b"])).unwrap_err();
    assert!(e.contains("--gdb given twice"), "{e}");
}

#[test]
fn qemu_gets_a_gdbstub_on_the_socket_without_waiting_for_it() {
    let want: Vec<OsString> = [
        "-chardev",
        "socket,id=gdb0,path=/run/case/state/gdb.sock,server=on,wait=off",
        "-gdb",
        "chardev:gdb0",
    ]
    .map(OsString::from)
    .to_vec();
    assert_eq!(
        qemu_gdb_args(Path::new("/run/case/state/gdb.sock")).unwrap(),
        want
    );
}

#[test]
fn a_path_no_socket_can_have_is_refused_naming_it() {
    let long = format!("/{}/gdb.sock", "d".repeat(100));
    let e = qemu_gdb_args(Path::new(&long)).unwrap_err();
    assert!(
        e.starts_with("--gdb /ddd") && e.contains("longer than a Unix socket path"),
        "{e}"
    );
    let e = qemu_gdb_args(Path::new("/a,b/gdb.sock")).unwrap_err();
    assert!(e.contains("','"), "{e}");
}
