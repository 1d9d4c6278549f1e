//! Flashing and RTT through the `Probe` trait, with the fake probe that replays
//! a recorded RTT buffer: what the target "prints" after the reset that
//! follows a flash comes out of `LabRig::logs()` as lines, per channel.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

use std::path::{Path, PathBuf};
use std::time::Duration;

use sacbench_rig::lab::{FakeProbe, ImageKind, LabRig, RigConfig, RttData};
use sacbench_rig::{Capability, LogLine, LogSource, Rig, RigError};

/// An RTT recording: a terminal channel and a second, named log channel.
fn recording() -> Vec<RttData> {
    vec![
        RttData {
            channel: 0,
            name: "Terminal".into(),
            bytes: b"boot: sacbench device v1.2.0\r\nboot: slot 0 verified\nota: confirmed\n"
                .to_vec(),
        },
        RttData {
            channel: 2,
            name: "Log".into(),
            bytes: b"tls: handshake ok\nmqtt: connected\n".to_vec(),
        },
    ]
}

fn probe_rig(dir: &Path, fake: &FakeProbe) -> LabRig {
    let text =
        "name = \"fake bench\"\n[probe]\nselector = \"1366:1015\"\nchip = \"nRF52840_xxAA\"\n\n\
                [dut]\nipv4 = \"192.0.2.20\"\n";
    let config = RigConfig::parse(text, &dir.join("rig.toml")).expect("valid");
    LabRig::new(config, Some(Box::new(fake.clone()))).expect("rig")
}

/// Wait (on the rig's arrival signal) until `n` lines are in.
async fn collect(rig: &mut LabRig, n: usize) -> Vec<LogLine> {
    let mut got = Vec::new();
    while got.len() < n {
        assert!(
            rig.wait_for_logs(Duration::from_secs(10)).await,
            "{} of {n} lines: {got:?}",
            got.len()
        );
        got.extend(rig.logs().await.expect("logs"));
    }
    got
}

fn elf(dir: &Path) -> PathBuf {
    let path = dir.join("device.elf");
    std::fs::write(&path, b"\x7fELF\x01\x01\x01\0 pretend segments").unwrap();
    path
}

fn rtt_texts(lines: &[LogLine], channel: usize) -> Vec<(String, String)> {
    lines
        .iter()
        .filter_map(|l| match &l.source {
            LogSource::Rtt { channel: c, name } if *c == channel => {
                Some((name.clone(), l.text.clone()))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn flash_then_reset_and_the_recorded_rtt_comes_out_as_lines() {
    let dir = tempfile::tempdir().unwrap();
    // 7-byte chunks: lines arrive split across many polls and must be reassembled.
    let fake = FakeProbe::new(recording(), 7);
    let mut rig = probe_rig(dir.path(), &fake);
    let caps = rig.capabilities();
    assert!(caps.has(Capability::Flash) && caps.has(Capability::Rtt));
    assert_eq!(rig.name(), "fake bench");

    let image = elf(dir.path());
    rig.flash(&image).await.expect("flash");
    let record = fake.record();
    assert_eq!(record.flashed.len(), 1);
    assert_eq!(
        (record.flashed[0].0.as_path(), record.flashed[0].1),
        (image.as_path(), ImageKind::Elf)
    );
    assert_eq!(
        record.flashed[0].2,
        std::fs::read(&image).unwrap(),
        "the image's bytes were written"
    );
    assert_eq!(
        record.resets, 1,
        "flash ends with a reset so the image boots"
    );

    let lines = collect(&mut rig, 5).await;
    let term = |t: &str| ("Terminal".to_owned(), t.to_owned());
    let log = |t: &str| ("Log".to_owned(), t.to_owned());
    assert_eq!(
        rtt_texts(&lines, 0),
        [
            term("boot: sacbench device v1.2.0"),
            term("boot: slot 0 verified"),
            term("ota: confirmed")
        ]
    );
    assert_eq!(
        rtt_texts(&lines, 2),
        [log("tls: handshake ok"), log("mqtt: connected")]
    );
    assert!(lines.iter().all(|l| l.at_ns > 0));
    let term_stamps: Vec<u64> = lines
        .iter()
        .filter(|l| matches!(l.source, LogSource::Rtt { channel: 0, .. }))
        .map(|l| l.at_ns)
        .collect();
    assert!(
        term_stamps.windows(2).all(|w| w[0] <= w[1]),
        "in order within a channel"
    );
}

#[tokio::test]
async fn a_second_flash_boots_again_and_replays_the_boot_log() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeProbe::new(recording(), 64);
    let mut rig = probe_rig(dir.path(), &fake);
    let image = elf(dir.path());
    rig.flash(&image).await.expect("first flash");
    collect(&mut rig, 5).await;

    // An MCUboot-signed image (magic 0x96f3b83d, little-endian) is recognised as such.
    let signed = dir.path().join("device.signed.bin");
    std::fs::write(&signed, [0x3d, 0xb8, 0xf3, 0x96, 0, 0, 0, 0]).unwrap();
    rig.flash(&signed).await.expect("second flash");
    let record = fake.record();
    assert_eq!(
        record.flashed.iter().map(|f| f.1).collect::<Vec<_>>(),
        [ImageKind::Elf, ImageKind::Mcuboot]
    );
    assert_eq!(record.resets, 2);
    let again = collect(&mut rig, 5).await;
    assert_eq!(
        rtt_texts(&again, 0)[0].1,
        "boot: sacbench device v1.2.0",
        "the new boot prints from the start"
    );
}

#[tokio::test]
async fn images_that_are_neither_elf_nor_mcuboot_are_refused_before_flashing() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeProbe::new(recording(), 64);
    let mut rig = probe_rig(dir.path(), &fake);

    let junk = dir.path().join("notes.txt");
    std::fs::write(&junk, b"hello").unwrap();
    let err = rig
        .flash(&junk)
        .await
        .expect_err("not an image")
        .to_string();
    assert!(
        err.contains("notes.txt") && err.contains("neither an ELF"),
        "{err}"
    );

    let missing = dir.path().join("missing.elf");
    let err = rig.flash(&missing).await.expect_err("no file");
    assert!(
        matches!(&err, RigError::Io { what, .. } if what.contains("missing.elf")),
        "{err}"
    );

    let record = fake.record();
    assert!(
        record.flashed.is_empty() && record.resets == 0,
        "nothing was written or reset: {record:?}"
    );
    assert!(
        rig.logs().await.unwrap().is_empty(),
        "a target never reset prints nothing"
    );
}

#[tokio::test]
async fn a_probe_must_match_the_rig_file() {
    let dir = tempfile::tempdir().unwrap();
    let with_probe = "[probe]\nselector = \"1366:1015\"\nchip = \"nRF52840_xxAA\"\n[dut]\nipv4 = \"192.0.2.20\"\n";
    let config = RigConfig::parse(with_probe, &dir.path().join("rig.toml")).unwrap();
    let err = LabRig::new(config, None)
        .expect_err("[probe] without a probe")
        .to_string();
    assert!(err.contains("[probe]"), "{err}");

    let without = "[dut]\nipv4 = \"192.0.2.20\"\n";
    let config = RigConfig::parse(without, &dir.path().join("rig.toml")).unwrap();
    let err = LabRig::new(config, Some(Box::new(FakeProbe::new(vec![], 1))))
        .expect_err("probe without [probe]");
    assert!(err.to_string().contains("no [probe]"), "{err}");
}

/// `LabRig::open` on a rig file with a `[probe]`, where no probe is plugged in.
fn open_probe_rig(dir: &Path) -> Result<LabRig, RigError> {
    let rig_file = dir.join("rig.toml");
    // A VID:PID no real probe has, so a probe on the machine cannot be picked up.
    let text = "[probe]\nselector = \"ffff:fffe:no-such-probe\"\nchip = \"nRF52840_xxAA\"\n\
                [dut]\nipv4 = \"192.0.2.20\"\n";
    std::fs::write(&rig_file, text).unwrap();
    LabRig::open(&rig_file)
}

#[cfg(not(feature = "probe-rs"))]
#[tokio::test]
async fn without_the_probe_rs_feature_a_probe_rig_says_how_to_build() {
    let dir = tempfile::tempdir().unwrap();
    let err = open_probe_rig(dir.path())
        .expect_err("no probe backend")
        .to_string();
    assert!(
        err.contains("rig.toml") && err.contains("feature `probe-rs`"),
        "{err}"
    );
}

#[cfg(feature = "probe-rs")]
#[tokio::test]
async fn with_probe_rs_a_missing_probe_is_reported_through_logs_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut rig = open_probe_rig(dir.path()).expect("opening attaches lazily");
    assert!(
        rig.wait_for_logs(Duration::from_secs(10)).await,
        "the RTT poller reports the failure"
    );
    let err = rig.logs().await.expect_err("no such probe").to_string();
    assert!(err.contains("ffff:fffe:no-such-probe"), "{err}");
    let err = rig
        .flash(&elf(dir.path()))
        .await
        .expect_err("cannot flash")
        .to_string();
    assert!(err.contains("ffff:fffe:no-such-probe"), "{err}");
}

#[test]
fn the_line_assembler_cuts_runaway_lines_and_keeps_partial_ones() {
    use sacbench_rig::lab::{LineAssembler, MAX_LINE};
    let mut a = LineAssembler::new(LogSource::Console);
    let mut bytes = vec![b'x'; MAX_LINE + 10];
    bytes.extend_from_slice(b"\r\ntail");
    let lines = a.push(&bytes, 42);
    assert_eq!(
        lines.len(),
        2,
        "a device that never ends a line cannot grow memory"
    );
    assert_eq!((lines[0].text.len(), lines[1].text.len()), (MAX_LINE, 10));
    assert!(lines
        .iter()
        .all(|l| l.at_ns == 42 && l.source == LogSource::Console));
    let rest = a.flush(43).expect("the unterminated tail");
    assert_eq!((rest.text.as_str(), rest.at_ns), ("tail", 43));
    assert!(a.flush(44).is_none());
    // Invalid UTF-8 is kept visible, not dropped.
    assert_eq!(a.push(b"\xffok\n", 1)[0].text, "\u{fffd}ok");
}
