//! The device-mcu image as a sacbench emulated board (the DUT file
//! `firmware/device-mcu/dut.toml` runs it; logic in `device_mcu_rig::board`):
//!
//! ```text
//! devmcu-board run --provisioning DIR --state DIR --images DIR --ip CIDR \
//!   --gateway IP --sntp HOST:PORT --dns IP --bridge NAME [--mac MAC] [--fault NAME]...
//! devmcu-board build [--profile release|debug]
//! ```
//!
//! `run` writes `{state}/provisioning.bin` and `{state}/qemu-ifup` (and, at
//! a unit's first power-on, `{state}/seed` and `{state}/time-floor`), then
//! becomes `qemu-system-arm` (exec), so powering the board off is killing
//! QEMU. `build` builds the correct image and one per fault switch into
//! `firmware/device-mcu/target/board/`, with a copy of this launcher.
//! A bad argument or input: one line on stderr naming it, exit 2.

use device_mcu_rig::board::{self, RunArgs};
use device_mcu_rig::Profile;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};
use std::time::{SystemTime, UNIX_EPOCH};

const USAGE: &str =
    "usage: devmcu-board run --provisioning DIR --state DIR --images DIR --ip CIDR \
--gateway IP --sntp HOST:PORT --dns IP --bridge NAME [--mac MAC] [--fault NAME]... | \
devmcu-board build [--profile release|debug]";

/// Exit status for bad arguments or input.
const BAD_INPUT: u8 = 2;

fn run(args: Vec<String>) -> Result<std::convert::Infallible, (u8, String)> {
    let bad = |e: String| (BAD_INPUT, e);
    let args = RunArgs::parse(args).map_err(bad)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| bad(format!("the host clock: {e}")))?
        .as_secs();
    let boot = board::prepare(&args, now).map_err(bad)?;
    eprintln!("{}", boot.summary);
    let e = Command::new("qemu-system-arm").args(&boot.qemu_args).exec();
    Err((BAD_INPUT, format!("qemu-system-arm: {e}")))
}

fn build(args: Vec<String>) -> Result<(), (u8, String)> {
    let profile = match args.as_slice() {
        [] => Profile::Release,
        [flag, name] if flag == "--profile" => {
            Profile::parse(name).map_err(|e| (BAD_INPUT, format!("--profile {e}")))?
        }
        _ => return Err((BAD_INPUT, format!("build: {args:?}; {USAGE}"))),
    };
    let images = board::build_images(profile).map_err(|e| (1, e))?;
    let shown = |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
    for image in images {
        println!("{}", shown(&image).display());
    }
    // The launcher itself next to the images, at a path that does not
    // depend on the host's target triple (the DUT file runs this copy).
    let launcher = board::board_dir().join("devmcu-board");
    let me = std::env::current_exe().map_err(|e| (1, format!("this executable: {e}")))?;
    if me != launcher {
        let part = launcher.with_extension("part");
        std::fs::copy(&me, &part)
            .and_then(|_| std::fs::rename(&part, &launcher))
            .map_err(|e| (1, format!("{}: {e}", launcher.display())))?;
    }
    println!("{}", shown(&launcher).display());
    println!(
        "{} images ({}): the DUT file firmware/device-mcu/dut.toml boots them",
        1 + board::FAULTS.len(),
        profile.dir_name()
    );
    Ok(())
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let outcome = match args.next().as_deref() {
        Some("run") => run(args.collect()).map(|never| match never {}),
        Some("build") => build(args.collect()),
        _ => Err((BAD_INPUT, USAGE.to_owned())),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, e)) => {
            eprintln!("devmcu-board: {e}");
            ExitCode::from(code)
        }
    }
}
