//! The emulated board's bootloader and reset loop.
//!
//! At every power-on or reset it runs `device_core::boot::power_on` on the
//! flash file (finish an interrupted swap, swap for a test boot, revert an
//! unconfirmed one, verify the primary image), writes the primary slot's
//! payload — a real executable — to the run directory and runs it. When the
//! payload exits, that is a reset: exit code [`EXIT_REBOOT`] is an orderly
//! reboot, anything else (a crash, a signal) a watchdog reset. Either way the
//! loop powers on again, so an unconfirmed test image that crashes is
//! reverted at the next pass. Power loss is the bench killing this process's
//! group: the flash file keeps whatever was written.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use device_core::boot::{power_on, Area, BootConfig, BootError, BootFlash, BootReport};
use device_core::image::TrustedKey;
use serde::{Deserialize, Serialize};

use crate::device_log;
use crate::flash::{FlashError, FlashFile, Region};

/// Exit code of a payload asking for an orderly reboot.
pub const EXIT_REBOOT: i32 = 0;
/// Exit code of the bootloader when no image is bootable (a bricked board).
pub const EXIT_BRICKED: u8 = 3;
/// Environment variable carrying the boot report (JSON) to the payload.
pub const BOOT_REPORT_ENV: &str = "SACBENCH_BOOT_REPORT";

/// The board's identity: an OTA image whose board TLV names another board
/// is refused (docs/device-contract.md, "Firmware update").
pub const BOARD: &str = "sacbench-native";

/// The development image-signing key built into the bootloader.
pub const BUILT_IN_KEY_PEM: &str = include_str!("../../keys/dev-image-signing-ed25519.pub.pem");

/// The keys an image must be signed with to boot or be installed:
/// [`BUILT_IN_KEY_PEM`] alone.
pub fn built_in_keys() -> Vec<TrustedKey> {
    vec![TrustedKey::from_pem(BUILT_IN_KEY_PEM).expect("the built-in key is valid PEM")]
}

fn region(area: Area) -> Region {
    match area {
        Area::Primary => Region::Primary,
        Area::Secondary => Region::Secondary,
        Area::Scratch => Region::Scratch,
        Area::Status => Region::BootStatus,
    }
}

impl BootFlash for FlashFile {
    type Error = FlashError;

    fn read(&mut self, area: Area, offset: u32, buf: &mut [u8]) -> Result<(), FlashError> {
        let data = FlashFile::read(self, region(area), u64::from(offset), buf.len())?;
        buf.copy_from_slice(&data);
        Ok(())
    }

    fn write(&mut self, area: Area, offset: u32, data: &[u8]) -> Result<(), FlashError> {
        FlashFile::write(self, region(area), u64::from(offset), data)
    }

    fn erase(&mut self, area: Area, offset: u32, len: u32) -> Result<(), FlashError> {
        FlashFile::erase(self, region(area), u64::from(offset), u64::from(len))
    }

    fn sector_size(&self) -> u32 {
        self.layout().sector_size
    }

    fn slot_size(&self) -> u32 {
        self.layout().slot_size
    }

    fn status_size(&self) -> u32 {
        self.size(Region::BootStatus) as u32
    }
}

/// What the payload learns about its boot (serialised in [`BOOT_REPORT_ENV`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BootInfo {
    /// `none`, `test`, `permanent`, `revert` or `discard-secondary`.
    pub action: String,
    /// An interrupted swap (power lost mid-swap) was finished first.
    pub resumed_swap: bool,
    /// Version of the running image, `major.minor.revision`, with `+build`
    /// only when the build number is not 0.
    pub version: String,
    /// Security counter of the running image (0 if it carries none).
    pub security_counter: u32,
    /// The image runs on trial: unless it confirms itself, the next power-on
    /// reverts it.
    pub test_boot: bool,
    /// Power-ons since the bootloader process started (1 = cold boot).
    pub boot_count: u64,
}

impl BootInfo {
    fn new(r: &BootReport, boot_count: u64) -> Self {
        use device_core::image::trailer::BootAction as A;
        let action = match r.action {
            A::RunPrimary => "none",
            A::SwapTest => "test",
            A::SwapPermanent => "permanent",
            A::Revert => "revert",
            A::DiscardSecondary => "discard-secondary",
        };
        let v = r.version;
        BootInfo {
            action: action.into(),
            resumed_swap: r.resumed_swap,
            // The twin names versions "1.4.0"; a build number only when set.
            version: if v.build_num == 0 {
                format!("{}.{}.{}", v.major, v.minor, v.revision)
            } else {
                format!("{}.{}.{}+{}", v.major, v.minor, v.revision, v.build_num)
            },
            security_counter: r.security_counter,
            test_boot: r.test_boot,
            boot_count,
        }
    }

    /// The report the bootloader put in [`BOOT_REPORT_ENV`]; `None` when it
    /// is absent or unreadable (the payload was not started by the
    /// bootloader).
    pub fn from_env() -> Option<BootInfo> {
        serde_json::from_str(&std::env::var(BOOT_REPORT_ENV).ok()?).ok()
    }
}

/// The bootloader's settings.
pub struct Board {
    /// The flash file (made by `make-flash`), reopened at every power-on.
    pub flash: PathBuf,
    /// Where payloads are unpacked to run (the board's "RAM").
    pub run_dir: PathBuf,
    /// Arguments for the payload after the flash path.
    pub payload_args: Vec<String>,
    /// How the boot logic behaves (the `unsafe-swap` fault).
    pub config: BootConfig,
    /// Stop after this many power-ons (tests); `None`: run until killed.
    pub max_boots: Option<u64>,
}

/// Runs the board: power-on, run the payload, on its exit reset, forever
/// (or `max_boots` times). Returns the exit code for the bootloader process.
pub fn run(board: &Board) -> anyhow::Result<u8> {
    let keys = built_in_keys();
    let mut boots = 0u64;
    loop {
        if board.max_boots.is_some_and(|m| boots >= m) {
            return Ok(0);
        }
        boots += 1;
        let mut flash = FlashFile::open(&board.flash)?;
        let report = match power_on(&mut flash, &keys, board.config) {
            Ok(r) => r,
            Err(BootError::NoBootableImage(why)) => {
                device_log!("boot: no bootable image: {why}; halting");
                return Ok(EXIT_BRICKED);
            }
            Err(BootError::ImageTooLarge { slot, len, max }) => {
                device_log!(
                    "boot: image in the {slot} slot is {len} bytes, at most {max} fit; halting"
                );
                return Ok(EXIT_BRICKED);
            }
            Err(BootError::Flash(e)) => return Err(e.into()),
        };
        let info = BootInfo::new(&report, boots);
        device_log!(
            "boot: #{boots} action={} version={} test_boot={} resumed_swap={}",
            info.action,
            info.version,
            info.test_boot,
            info.resumed_swap
        );
        let exe = unpack_payload(&flash, &report, &board.run_dir)?;
        drop(flash);
        let status = Command::new(&exe)
            .arg("app")
            .arg("--flash")
            .arg(&board.flash)
            .args(&board.payload_args)
            .env(BOOT_REPORT_ENV, serde_json::to_string(&info)?)
            .status()
            .map_err(|e| anyhow::anyhow!("starting the payload {}: {e}", exe.display()))?;
        match status.code() {
            Some(EXIT_REBOOT) => device_log!("boot: payload requested a reboot"),
            _ => device_log!("boot: payload ended ({status}): watchdog reset"),
        }
    }
}

/// Writes the primary payload to `run_dir/payload-<version>` as an executable.
fn unpack_payload(
    flash: &FlashFile,
    report: &BootReport,
    run_dir: &Path,
) -> anyhow::Result<PathBuf> {
    let payload = flash.read(
        Region::Primary,
        u64::from(report.payload_offset),
        report.payload_len as usize,
    )?;
    std::fs::create_dir_all(run_dir)?;
    // A new name each time: the previous payload may still be mapped (ETXTBSY).
    let v = report.version;
    let tmp = run_dir.join(format!(".payload-{}", std::process::id()));
    std::fs::write(&tmp, &payload)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    let path = run_dir.join(format!(
        "payload-{}.{}.{}+{}",
        v.major, v.minor, v.revision, v.build_num
    ));
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}
