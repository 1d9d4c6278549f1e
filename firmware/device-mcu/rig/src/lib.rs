//! Host side of the device-mcu bring-up: builds the image, makes a network
//! namespace with a TAP device, boots the image under `qemu-system-arm -M
//! mps2-an385` with its LAN9118 on that TAP, and exposes the console as a
//! stream of lines to wait on; packs the device's provisioning record
//! (`prov`), which QEMU lays into the board's provisioning region at
//! power-on. Everything it creates it removes on drop.

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

/// Builds the image and returns the ELF's path: the debug profile, or the
/// release one when `DEVICE_MCU_PROFILE=release` is set for the test run.
/// `ip_cidr` and `peer` configure only the bring-up diagnostic (an image
/// booted without a provisioning record); a provisioned device takes its
/// addresses from its record.
pub fn build_image(ip_cidr: &str, peer: &str) -> Result<PathBuf, Error> {
    build_image_with_faults(ip_cidr, peer, &[])
}

/// As `build_image`, for an image built with the fault switches `faults`
/// (device-core catalogue names, `DEVICE_MCU_FAULTS`; none for the correct
/// device). Each fault set gets its own copy of the ELF
/// (`device-mcu.faults-<names>` or `device-mcu.faults-none`), made under
/// an exclusive lock on the target folder, so test binaries running at the
/// same time with other fault sets never boot each other's image.
pub fn build_image_with_faults(
    ip_cidr: &str,
    peer: &str,
    faults: &[&str],
) -> Result<PathBuf, Error> {
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
    let release = match std::env::var("DEVICE_MCU_PROFILE").as_deref() {
        Err(_) | Ok("debug") => false,
        Ok("release") => true,
        Ok(other) => return Err(format!("DEVICE_MCU_PROFILE={other}: debug or release")),
    };
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .current_dir(&dir)
        .args(["build", "--target", "thumbv7m-none-eabi"])
        .env("DEVICE_MCU_IP", ip_cidr)
        .env("DEVICE_MCU_PEER", peer)
        .env("DEVICE_MCU_BACKOFF_BASE_MS", BACKOFF_BASE_MS.to_string())
        .env(
            "DEVICE_MCU_BACKOFF_STABLE_MS",
            BACKOFF_STABLE_MS.to_string(),
        )
        .env("DEVICE_MCU_FAULTS", faults.join(","))
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR");
    if release {
        cargo.arg("--release");
    }
    run(&mut cargo)?;
    let profile = if release { "release" } else { "debug" };
    let built = target.join("thumbv7m-none-eabi").join(profile);
    let set = if faults.is_empty() {
        "none".to_owned()
    } else {
        faults.join("+")
    };
    let copy = built.join(format!("device-mcu.faults-{set}"));
    std::fs::copy(built.join("device-mcu"), &copy)
        .map_err(|e| format!("copy the image to {}: {e}", copy.display()))?;
    drop(lock);
    Ok(copy)
}

/// A network namespace holding one TAP device with an address; deleted on drop.
pub struct NetNs {
    name: String,
    tap: String,
}

impl NetNs {
    /// Creates namespace `name` with TAP `tap` at `host_cidr`, up.
    pub fn create(name: &str, tap: &str, host_cidr: &str) -> Result<Self, Error> {
        run(Command::new("ip").args(["netns", "add", name]))?;
        let ns = NetNs {
            name: name.to_owned(),
            tap: tap.to_owned(),
        };
        run(Command::new("ip").args(["-n", name, "link", "set", "lo", "up"]))?;
        run(Command::new("ip").args(["-n", name, "tuntap", "add", "dev", tap, "mode", "tap"]))?;
        run(Command::new("ip").args(["-n", name, "addr", "add", host_cidr, "dev", tap]))?;
        run(Command::new("ip").args(["-n", name, "link", "set", tap, "up"]))?;
        Ok(ns)
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
        let _ = run(Command::new("ip").args(["-n", &self.name, "link", "del", &self.tap]));
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
}

impl Qemu {
    /// Boots `elf` on mps2-an385 in `ns` with its NIC on the namespace's TAP
    /// and an empty provisioning region.
    pub fn boot(ns: &NetNs, elf: &Path, mac: &str) -> Result<Self, Error> {
        Self::boot_provisioned(ns, elf, mac, None)
    }

    /// As `boot`, with the file `provision` (a record from `prov::pack`, or
    /// any bytes) laid into the provisioning region at power-on.
    pub fn boot_provisioned(
        ns: &NetNs,
        elf: &Path,
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
        let nic = format!(
            "tap,ifname={},script=no,downscript=no,model=lan9118,mac={mac}",
            ns.tap
        );
        let mut child = ns
            .command("qemu-system-arm")
            .args([
                "-M",
                "mps2-an385",
                "-display",
                "none",
                "-monitor",
                "none",
                "-serial",
                "stdio",
            ])
            .args(loader.iter().flat_map(|l| ["-device", l.as_str()]))
            .args(["-nic", &nic, "-kernel"])
            .arg(elf)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("qemu-system-arm: {e}"))?;
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
        })
    }

    /// Waits for a console line containing `needle`; returns it. Fails on a
    /// panic line, on QEMU's exit, or when `within` has passed.
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
                    if line.contains("device-mcu: panic") || line.contains("device-mcu: halted") {
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
    }
}
