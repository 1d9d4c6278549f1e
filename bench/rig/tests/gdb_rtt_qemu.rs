//! The bench's RTT reader on the real thing: firmware/device-mcu's image
//! (release, no faults: the signed MCUboot image in the primary slot of a
//! fresh flash file, started by its boot stage, as a unit is) booted under
//! `qemu-system-arm` (mps2-an385, no NIC backend, no provisioning: its
//! bring-up diagnostic) with its gdbstub on a Unix socket, read through
//! [`GdbRtt`] by the same poller the rigs use, until the image's first
//! console line arrives over RTT channel 0 "Terminal" — waited on as an
//! event (a channel), within a bound. It also measures how long each poll
//! halts the VM (printed; README figures).
//!
//! Builds the images first, as the DUT file's `[emulated] build` does
//! (`devmcu-board build`: nothing to do when they are fresh). Needs the
//! thumbv7m-none-eabi target and `qemu-system-arm`; no root.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sacbench_rig::rtt::gdb::{GdbRtt, Ram};
use sacbench_rig::rtt::poll::RttPoller;
use sacbench_rig::{LogLine, LogSource};

fn firmware() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../firmware/device-mcu")
}

enum Event {
    Line(LogLine),
    Polled(Duration),
    Failed(String),
}

struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_boot_line_arrives_over_rtt_through_the_gdbstub() {
    let dir = firmware();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo)
        .args([
            "run",
            "--quiet",
            "--release",
            "--bin",
            "devmcu-board",
            "--",
            "build",
        ])
        .current_dir(dir.join("rig"))
        // The root's target dir, flags and lint wrapper are not the firmware's.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTC_WRAPPER")
        .status()
        .unwrap();
    assert!(
        built.success(),
        "building firmware/device-mcu's images failed"
    );
    let board = dir.join("target/board");

    // A unit fresh from the factory: its 16 MiB flash erased, the signed
    // image in the primary slot (offset 0); QEMU's PSRAM is that file.
    let scratch = tempfile::tempdir().unwrap();
    let image = std::fs::read(board.join("device-mcu.faults-none.signed.bin")).unwrap();
    let mut flash = vec![0xffu8; 16 * 1024 * 1024];
    flash[..image.len()].copy_from_slice(&image);
    let flash_path = scratch.path().join("flash.bin");
    std::fs::write(&flash_path, &flash).unwrap();
    let sock = scratch.path().join("gdb.sock");
    let qemu = Qemu(
        Command::new("qemu-system-arm")
            .args(["-M", "mps2-an385", "-display", "none", "-monitor", "none"])
            .args(["-serial", "null", "-nic", "none"])
            .arg("-object")
            .arg(format!(
                "memory-backend-file,id=flash,size=16777216,mem-path={},share=on",
                flash_path.display()
            ))
            .args(["-machine", "memory-backend=flash"])
            .arg("-chardev")
            .arg(format!(
                "socket,id=gdb0,path={},server=on,wait=off",
                sock.display()
            ))
            .args(["-gdb", "chardev:gdb0", "-kernel"])
            .arg(board.join("device-mcu-boot"))
            .stdin(Stdio::null())
            .spawn()
            .expect("qemu-system-arm"),
    );

    let (tx, events) = mpsc::channel::<Event>();
    let mut rtt = GdbRtt::new(
        sock,
        // As firmware/device-mcu/dut.toml's `rtt` says.
        Ram {
            start: 0x2000_0000,
            size: 0x2_0000,
        },
    );
    let poller = RttPoller::start(Duration::from_millis(100), move |assembler| {
        let t = Instant::now();
        let got = assembler.read(|| rtt.read_rtt());
        let _ = tx.send(Event::Polled(t.elapsed()));
        match got {
            Ok(lines) => lines
                .into_iter()
                .for_each(|l| drop(tx.send(Event::Line(l)))),
            Err(e) => drop(tx.send(Event::Failed(e.to_string()))),
        }
    })
    .unwrap();
    // The first lines: "device-mcu: boot …" first of all, then more of the
    // bring-up; and enough polls of a running board to measure the halts.
    // Polls arrive every 100 ms whether or not lines do: the wait is bounded
    // as a whole, not per event.
    let (mut got, mut halts) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < 3 || halts.len() < 30 {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no 3 RTT lines within 60 s of polling; so far {got:?}"
        );
        match events.recv_timeout(left) {
            Ok(Event::Line(l)) => got.push(l),
            Ok(Event::Polled(d)) => halts.push(d),
            Ok(Event::Failed(e)) => panic!("reading RTT through the gdbstub: {e}"),
            Err(e) => panic!("{e}: RTT lines so far: {got:?}"),
        }
    }
    drop(poller);
    drop(qemu);
    assert_eq!(
        got[0].source,
        LogSource::Rtt {
            channel: 0,
            name: "Terminal".into()
        }
    );
    assert_eq!(got[0].text, "device-mcu: boot (mps2-an385, cortex-m3)");
    assert!(got[1].text.starts_with("device-mcu: faults=[]"), "{got:?}");
    assert!(got.iter().all(|l| !l.text.ends_with('\r')), "{got:?}");
    // Polls of the running board, once attached: what each costs it.
    let attached = halts
        .iter()
        .position(|d| *d > Duration::from_micros(500))
        .unwrap_or(0);
    let running = &halts[attached + 1..];
    let n = running.len() as u32;
    println!(
        "attaching (connect, scan 128 KB): {:?}; then {n} polls halting the VM {:?} on average, {:?} at most (every 100 ms)",
        halts[attached],
        running.iter().sum::<Duration>() / n.max(1),
        running.iter().max().copied().unwrap_or_default()
    );
}
