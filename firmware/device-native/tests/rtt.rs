//! The emulated device's logs are real RTT: the bench finds the SEGGER
//! control block in the running process and drains the up-channel, as a
//! probe reads target RAM.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

mod common;

use std::process::Stdio;
use std::time::Duration;

use device_native::flash::{FlashFile, Layout};
use sacbench_rig::rtt::RttReader;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[tokio::test]
async fn logs_are_read_from_the_rtt_control_block() {
    let dir = tempfile::tempdir().unwrap();
    // Credentials are never used: the hub address refuses connections.
    common::placeholder_provisioning(&dir.path().join("prov"), "rtt-dev", 1, &[]);
    FlashFile::create(
        &dir.path().join("flash.bin"),
        Layout {
            slot_size: 1024 * 1024,
            ..Layout::default()
        },
    )
    .unwrap();
    let mut device = Command::new(env!("CARGO_BIN_EXE_device-native"))
        .arg("app")
        .arg("--flash")
        .arg(dir.path().join("flash.bin"))
        .arg("--provisioning")
        .arg(dir.path().join("prov"))
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The console (stderr) tells when something has been logged.
    let mut console = BufReader::new(device.stderr.take().unwrap()).lines();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(20), console.next_line())
            .await
            .unwrap()
            .unwrap();
        if line.expect("device runs").contains("reconnecting") {
            break;
        }
    }
    let mut rtt = RttReader::attach(device.id().unwrap()).expect("control block found");
    assert_eq!(rtt.up[0].name, "Terminal");
    let text = String::from_utf8(rtt.read_up(0).unwrap()).unwrap();
    assert!(text.contains("app: rtt-dev version"), "{text}");
    assert!(text.contains("connection failed"), "{text}");
    // Drained: what was read is not read again.
    let again = String::from_utf8(rtt.read_up(0).unwrap()).unwrap();
    assert!(!again.contains("app: rtt-dev version"), "{again}");
}
