//! Host side of the device-mcu bring-up: builds the image, makes a network
//! namespace with a TAP device, boots the image under `qemu-system-arm -M
//! mps2-an385` with its LAN9118 on that TAP, and exposes the console as a
//! stream of lines to wait on; packs the device's provisioning record
//! (`prov`), which QEMU lays into the board's provisioning region at
//! power-on. Everything it creates it removes on drop. `board` is the
//! launcher that runs the image as a sacbench DUT (`devmcu-board`,
//! `../dut.toml`).

pub mod board;
pub mod dns;
#[path = "../../boot/src/flashmap.rs"]
pub mod flashmap;
pub mod gdb;
pub mod image;
pub mod prov;
pub mod sntp;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// A failure of the rig itself (not of the firmware), with what was tried.
pub type Error = String;

fn run(cmd: &mut Command) -> Result<(), Error> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The firmware folder (the parent of this crate).
pub fn firmware_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The reconnect backoff's base in the images the rig builds (the
/// firmware's default is device-core's 1000 ms): small, so that the growing
/// delays of a broker outage take seconds in a test.
pub const BACKOFF_BASE_MS: u64 = 100;

/// How long a session must stay up to reset the backoff, in the rig's
/// images (the firmware's default is device-core's 60 s): shorter than the
/// device's first ping (10 s), so a test sees a reset after a PINGRESP.
pub const BACKOFF_STABLE_MS: u64 = 5_000;

/// The cargo profile an image is built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// `cargo build` (opt-level "s", no LTO): what the rig tests boot.
    Debug,
    /// `cargo build --release` (LTO): the image to ship or to run as a DUT.
    Release,
}

impl Profile {
    /// `debug` or `release`.
    pub fn parse(name: &str) -> Result<Self, Error> {
        match name {
            "debug" => Ok(Profile::Debug),
            "release" => Ok(Profile::Release),
            other => Err(format!("profile {other:?}: debug or release")),
        }
    }

    /// The rig tests' profile: `DEVICE_MCU_PROFILE` (`debug`, the default,
    /// or `release`).
    pub fn from_env() -> Result<Self, Error> {
        match std::env::var("DEVICE_MCU_PROFILE") {
            Err(_) => Ok(Profile::Debug),
            Ok(name) => Self::parse(&name).map_err(|e| format!("DEVICE_MCU_PROFILE: {e}")),
        }
    }

    /// The profile's folder under the target triple's.
    pub fn dir_name(self) -> &'static str {
        match self {
            Profile::Debug => "debug",
            Profile::Release => "release",
        }
    }
}

/// The name of a fault set in an image's file name: the faults sorted and
/// joined with `+`, or `none` (so the order they were asked in never
/// matters: `device-mcu.faults-<set>`).
pub fn fault_set_name(faults: &[&str]) -> String {
    let mut sorted: Vec<&str> = faults.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.is_empty() {
        "none".to_owned()
    } else {
        sorted.join("+")
    }
}

/// What one image build asks for.
#[derive(Debug, Clone)]
pub struct ImageBuild<'a> {
    /// Debug or release.
    pub profile: Profile,
    /// Fault switches (device-core catalogue names); none for the correct device.
    pub faults: &'a [&'a str],
    /// The bring-up diagnostic's own address (an image booted without a
    /// record only); a provisioned device takes its addresses from its record.
    pub diag_ip: &'a str,
    /// The bring-up diagnostic's TCP peer.
    pub diag_peer: &'a str,
    /// The reconnect backoff's base and stable-session time in ms, or
    /// `None` for the firmware's own defaults (device-core's).
    pub backoff_ms: Option<(u64, u64)>,
    /// Where the copy `device-mcu.faults-<set>` goes: `None` for the
    /// profile's build folder (`target/thumbv7m-none-eabi/<profile>`).
    pub out_dir: Option<&'a Path>,
}

/// Builds the image and returns the ELF's path: the debug profile, or the
/// release one when `DEVICE_MCU_PROFILE=release` is set for the test run.
/// `ip_cidr` and `peer` configure only the bring-up diagnostic (an image
/// booted without a provisioning record); a provisioned device takes its
/// addresses from its record.
pub fn build_image(ip_cidr: &str, peer: &str) -> Result<PathBuf, Error> {
    build_image_with_faults(ip_cidr, peer, &[])
}

/// As `build_image`, for an image built with the fault switches `faults`
/// (device-core catalogue names, the image's cargo features; none for the correct
/// device), with the rig's backoff timings (`BACKOFF_BASE_MS`,
/// `BACKOFF_STABLE_MS`). Each fault set gets its own copy of the ELF
/// (`device-mcu.faults-<names>` or `device-mcu.faults-none`,
/// `fault_set_name`), made under an exclusive lock on the target folder,
/// so test binaries running at the same time with other fault sets never
/// boot each other's image.
pub fn build_image_with_faults(
    ip_cidr: &str,
    peer: &str,
    faults: &[&str],
) -> Result<PathBuf, Error> {
    build(&ImageBuild {
        profile: Profile::from_env()?,
        faults,
        diag_ip: ip_cidr,
        diag_peer: peer,
        backoff_ms: Some((BACKOFF_BASE_MS, BACKOFF_STABLE_MS)),
        out_dir: None,
    })
}

/// Builds the image `b` asks for (`cargo build` of the firmware folder,
/// under an exclusive lock on its target folder) and copies the ELF to
/// `device-mcu.faults-<set>` in `b.out_dir`; returns the copy's path.
pub fn build(b: &ImageBuild<'_>) -> Result<PathBuf, Error> {
    let dir = firmware_dir();
    let target = dir.join("target");
    std::fs::create_dir_all(&target).map_err(|e| format!("{}: {e}", target.display()))?;
    let lock_path = target.join("rig-build.lock");
    let lock = File::create(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
    // SAFETY: flock on an open fd we own; released when `lock` is dropped.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(format!(
            "flock {}: {}",
            lock_path.display(),
            std::io::Error::last_os_error()
        ));
    }
    let mut faults: Vec<&str> = b.faults.to_vec();
    faults.sort_unstable();
    faults.dedup();
    let mut cargo = firmware_cargo(&dir, b.profile);
    cargo
        .env("DEVICE_MCU_IP", b.diag_ip)
        .env("DEVICE_MCU_PEER", b.diag_peer)
        .env_remove("DEVICE_MCU_FAULTS");
    match b.backoff_ms {
        Some((base, stable)) => cargo
            .env("DEVICE_MCU_BACKOFF_BASE_MS", base.to_string())
            .env("DEVICE_MCU_BACKOFF_STABLE_MS", stable.to_string()),
        None => cargo
            .env_remove("DEVICE_MCU_BACKOFF_BASE_MS")
            .env_remove("DEVICE_MCU_BACKOFF_STABLE_MS"),
    };
    // One feature per fault: cargo keeps each set's artifacts apart.
    if !faults.is_empty() {
        cargo.args(["--features", &faults.join(",")]);
    }
    run(&mut cargo)?;
    let built = target.join("thumbv7m-none-eabi").join(b.profile.dir_name());
    let out_dir = b.out_dir.map_or_else(|| built.clone(), Path::to_path_buf);
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let copy = out_dir.join(format!("device-mcu.faults-{}", fault_set_name(&faults)));
    // Copied then renamed: a QEMU booting the previous copy never reads a
    // half-written file.
    let part = out_dir.join(format!(".{}.part", std::process::id()));
    std::fs::copy(built.join("device-mcu"), &part)
        .and_then(|_| std::fs::rename(&part, &copy))
        .map_err(|e| format!("copy the image to {}: {e}", copy.display()))?;
    // The image as the board's flash holds it, signed (`image`), beside it.
    let signed = image::sign_app_file(&copy)?;
    let signed_path = out_dir.join(format!(
        "device-mcu.faults-{}.signed.bin",
        fault_set_name(&faults)
    ));
    std::fs::write(&part, &signed)
        .and_then(|_| std::fs::rename(&part, &signed_path))
        .map_err(|e| format!("write {}: {e}", signed_path.display()))?;
    // The boot stage (no features: the faults are the app's), beside them.
    // Its own workspace (boot/), with its own target folder.
    let boot_dir = dir.join("boot");
    run(&mut firmware_cargo(&boot_dir, b.profile))?;
    let boot_built = boot_dir
        .join("target/thumbv7m-none-eabi")
        .join(b.profile.dir_name())
        .join(image::BOOT_STAGE);
    {
        let boot = out_dir.join(image::BOOT_STAGE);
        std::fs::copy(&boot_built, &part)
            .and_then(|_| std::fs::rename(&part, &boot))
            .map_err(|e| format!("copy the boot stage to {}: {e}", boot.display()))?;
    }
    drop(lock);
    Ok(copy)
}

/// Copies the image `built` (what `build` returned) to `to`, and the boot
/// stage beside it to beside `to` (`Qemu::boot_provisioned` boots the one
/// beside the image): a test's own copy, which later builds do not replace.
pub fn copy_image(built: &Path, to: &Path) -> Result<(), Error> {
    for (from, into) in [
        (built.to_path_buf(), to.to_path_buf()),
        (
            built.with_file_name(image::BOOT_STAGE),
            to.with_file_name(image::BOOT_STAGE),
        ),
    ] {
        std::fs::copy(&from, &into)
            .map_err(|e| format!("copy {} to {}: {e}", from.display(), into.display()))?;
    }
    Ok(())
}

/// `cargo build` of the firmware folder for the thumb target in `profile`,
/// clean of what a calling cargo set.
fn firmware_cargo(dir: &Path, profile: Profile) -> Command {
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .current_dir(dir)
        .args(["build", "--target", "thumbv7m-none-eabi"])
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        // A build started from another cargo (a test, xtask's linted CI
        // build) must not inherit its wrappers or flags: RUSTFLAGS would
        // replace this folder's `-Tlink.x`, clippy-driver would lint the
        // vendored crate.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER");
    if profile == Profile::Release {
        cargo.arg("--release");
    }
    cargo
}

/// QEMU's machine and console for the image: mps2-an385, no display or
/// monitor, UART0 on stdio (the console lines the rig reads).
pub const QEMU_MACHINE: [&str; 8] = [
    "-M",
    "mps2-an385",
    "-display",
    "none",
    "-monitor",
    "none",
    "-serial",
    "stdio",
];

/// A network namespace, holding one TAP device with an address (`create`)
/// or nothing but its loopback (`bare`); deleted on drop.
pub struct NetNs {
    name: String,
    tap: Option<String>,
}

impl NetNs {
    /// Creates namespace `name` with TAP `tap` at `host_cidr`, up.
    pub fn create(name: &str, tap: &str, host_cidr: &str) -> Result<Self, Error> {
        run(Command::new("ip").args(["netns", "add", name]))?;
        let ns = NetNs {
            name: name.to_owned(),
            tap: Some(tap.to_owned()),
        };
        run(Command::new("ip").args(["-n", name, "link", "set", "lo", "up"]))?;
        run(Command::new("ip").args(["-n", name, "tuntap", "add", "dev", tap, "mode", "tap"]))?;
        run(Command::new("ip").args(["-n", name, "addr", "add", host_cidr, "dev", tap]))?;
        run(Command::new("ip").args(["-n", name, "link", "set", tap, "up"]))?;
        Ok(ns)
    }

    /// Creates namespace `name` with only its loopback, up; the caller
    /// adds links (`ip -n <name> …`).
    pub fn bare(name: &str) -> Result<Self, Error> {
        run(Command::new("ip").args(["netns", "add", name]))?;
        let ns = NetNs {
            name: name.to_owned(),
            tap: None,
        };
        run(Command::new("ip").args(["-n", name, "link", "set", "lo", "up"]))?;
        Ok(ns)
    }

    /// Runs `ip -n <namespace> <args>`.
    pub fn ip(&self, args: &[&str]) -> Result<(), Error> {
        run(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Runs `f` on a new thread that has entered the namespace (sockets it
    /// opens live there); the rest of the process stays where it was.
    pub fn spawn_inside<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<thread::JoinHandle<Result<T, Error>>, Error> {
        let path = format!("/run/netns/{}", self.name);
        let file = File::open(&path).map_err(|e| format!("{path}: {e}"))?;
        Ok(thread::spawn(move || {
            // SAFETY: setns on an open namespace fd only changes this
            // thread's network namespace; `file` outlives the call.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                return Err(format!("setns {path}: {}", std::io::Error::last_os_error()));
            }
            Ok(f())
        }))
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if let Some(tap) = &self.tap {
            let _ = run(Command::new("ip").args(["-n", &self.name, "link", "del", tap]));
        }
        let _ = run(Command::new("ip").args(["netns", "del", &self.name]));
    }
}

/// QEMU running the image; its UART0 console arrives as lines. Killed on drop.
pub struct Qemu {
    child: Child,
    /// Each console line with the moment the rig read it.
    lines: Receiver<(Instant, String)>,
    /// Every console line seen so far (for failure messages).
    pub seen: Vec<String>,
    /// A folder of this rig's own (the flash file of `boot_provisioned`),
    /// removed on drop.
    scratch: Option<PathBuf>,
}

impl Qemu {
    /// Boots `elf` on mps2-an385 in `ns` with its NIC on the namespace's TAP
    /// and an empty provisioning region.
    pub fn boot(ns: &NetNs, elf: &Path, mac: &str) -> Result<Self, Error> {
        Self::boot_provisioned(ns, elf, mac, None)
    }

    /// As `boot`, with the file `provision` (a record from `prov::pack`, or
    /// any bytes) laid into the provisioning region at power-on. The board
    /// boots as the bench's does: `elf` signed (`image::sign_app`) in the
    /// primary slot of a new flash file of its own (removed on drop), and
    /// the boot stage beside `elf` (`image::BOOT_STAGE`, which `build` puts
    /// there) loaded as the board's ROM.
    pub fn boot_provisioned(
        ns: &NetNs,
        elf: &Path,
        mac: &str,
        provision: Option<&Path>,
    ) -> Result<Self, Error> {
        static UNITS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let unit = UNITS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let scratch =
            std::env::temp_dir().join(format!("device-mcu-rig-{}-{unit}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
        let flash = scratch.join("flash.bin");
        let booted = image::sign_app_file(elf)
            .and_then(|signed| image::flash_once(&flash, &signed))
            .and_then(|_| {
                let boot_stage = elf.with_file_name(image::BOOT_STAGE);
                if !boot_stage.is_file() {
                    return Err(format!(
                        "no boot stage {} beside the image (`build` puts it there; \
                         `copy_image` copies it with an image)",
                        boot_stage.display()
                    ));
                }
                Self::boot_flash(ns, &boot_stage, &flash, mac, provision)
            });
        match booted {
            Ok(mut qemu) => {
                qemu.scratch = Some(scratch);
                Ok(qemu)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&scratch);
                Err(e)
            }
        }
    }

    /// Boots the board with the boot stage `boot_stage` as its ROM and the
    /// file `flash` (`image::flash_once`) as its flash, in `ns` with its NIC
    /// on the namespace's TAP, `provision` laid into the provisioning region.
    pub fn boot_flash(
        ns: &NetNs,
        boot_stage: &Path,
        flash: &Path,
        mac: &str,
        provision: Option<&Path>,
    ) -> Result<Self, Error> {
        let loader = provision.map(|file| {
            format!(
                "loader,file={},addr={:#x}",
                file.display(),
                prov::PROVISION_ADDR
            )
        });
        let tap = ns
            .tap
            .as_deref()
            .ok_or("a namespace without a TAP device")?;
        let nic = format!("tap,ifname={tap},script=no,downscript=no,model=lan9118,mac={mac}");
        let mut cmd = ns.command("qemu-system-arm");
        cmd.args(QEMU_MACHINE)
            .args(image::flash_args(flash))
            .args(loader.iter().flat_map(|l| ["-device", l.as_str()]))
            .args(["-nic", &nic, "-kernel"])
            .arg(boot_stage);
        Self::spawn(cmd)
    }

    /// Starts `cmd` — QEMU, or a program that becomes QEMU (`exec`s it, as
    /// `devmcu-board run` does) — with its stdout as the console and its
    /// stderr passed through.
    pub fn spawn(mut cmd: Command) -> Result<Self, Error> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("{cmd:?}: {e}"))?;
        let stdout = child.stdout.take().ok_or("qemu stdout")?;
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let line = line.trim_end_matches('\r').to_owned();
                eprintln!("[device-mcu] {line}");
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Ok(Qemu {
            child,
            lines,
            seen: Vec::new(),
            scratch: None,
        })
    }

    /// The process's id (QEMU's, once a launcher has `exec`ed it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a console line containing `needle`; returns it. Fails on a
    /// panic or halt line (the app's or the boot stage's), on QEMU's exit,
    /// or when `within` has passed.
    pub fn wait_line(&mut self, needle: &str, within: Duration) -> Result<String, Error> {
        self.wait_line_at(needle, within).map(|(line, _)| line)
    }

    /// As `wait_line`, with the moment the rig read the line from QEMU's
    /// console (for measuring intervals between the device's actions).
    pub fn wait_line_at(
        &mut self,
        needle: &str,
        within: Duration,
    ) -> Result<(String, Instant), Error> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, line)) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return Ok((line, at));
                    }
                    let stopped = [
                        "device-mcu: panic",
                        "device-mcu: halted",
                        "boot: panic",
                        "boot: halted",
                        "boot: no bootable image",
                    ];
                    if stopped.iter().any(|s| line.contains(s)) {
                        return Err(format!("firmware stopped: {line}"));
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "no console line with {needle:?} within {within:?}; saw {:?}",
                        self.seen
                    ))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "QEMU exited before {needle:?}; saw {:?}",
                        self.seen
                    ))
                }
            }
        }
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        // Our own child (`ip netns exec` execs QEMU, so this pid is QEMU's).
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.scratch {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
