//! The real third-party peers the tests talk to, in one list (`.ci/run`
//! has none of its own): what is missing is installed when xtask runs as
//! root on Debian, and otherwise named in the one command to run.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::{on_path, Failure};

/// Programs the tests use as real peers, and the Debian package of each.
pub(crate) const PEERS: &[(&str, &str)] = &[
    ("mosquitto_pub", "mosquitto-clients"),
    ("mosquitto_sub", "mosquitto-clients"),
    ("openssl", "openssl"),
    ("curl", "curl"),
    ("update-ca-certificates", "ca-certificates"),
    ("tshark", "tshark"),
    ("ip", "iproute2"),
    ("nmap", "nmap"),
    ("socat", "socat"),
    ("mbpoll", "mbpoll"),
    ("setpriv", "util-linux"),
    ("chromium", "chromium"),
    ("jq", "jq"),
    ("dnsmasq", "dnsmasq-base"),
    ("chronyd", "chrony"),
    ("snmpd", "snmpd"),
    // labgrid's exporter serves a serial port over RFC 2217 with ser2net (labgrid_farm).
    ("ser2net", "ser2net"),
    // The reference device's Cortex-M3 image runs on QEMU's mps2-an385 (mcu_qemu).
    ("qemu-system-arm", "qemu-system-arm"),
];

/// Rust targets the tests build for (rustup): the MCU image (mcu_qemu).
const RUST_TARGETS: &[&str] = &["thumbv7m-none-eabi"];

/// Python tools the tests use (program, PyPI requirement).
const PY_PEERS: &[(&str, &str)] = &[
    ("imgtool", "imgtool"),
    // The lab farm test's coordinator and exporter (and labgrid-client).
    ("labgrid-coordinator", "labgrid==26.0.1"),
];

/// Python modules the tests import (module, PyPI requirement): paho-mqtt for
/// the insecure example device and the persistent-session peer.
const PY_MODULES: &[(&str, &str)] = &[("paho.mqtt.client", "paho-mqtt==2.2.0")];

/// The Azure IoT device SDK example, installed from its lock file.
const NODE_EXAMPLE: &str = "examples/azure-node-device";

#[derive(Debug, Default, PartialEq)]
struct Missing {
    apt: Vec<&'static str>,
    pip: Vec<&'static str>,
    npm: bool,
    targets: Vec<&'static str>,
}

impl Missing {
    fn is_empty(&self) -> bool {
        self.apt.is_empty() && self.pip.is_empty() && !self.npm && self.targets.is_empty()
    }

    /// The one command line that installs all of it.
    fn command(&self) -> String {
        let mut how = Vec::new();
        if !self.apt.is_empty() {
            how.push(format!(
                "apt-get update && apt-get install -y {}",
                self.apt.join(" ")
            ));
        }
        if !self.pip.is_empty() {
            how.push(format!("python3 -m pip install {}", self.pip.join(" ")));
        }
        if self.npm {
            how.push(format!("npm ci --prefix {NODE_EXAMPLE}"));
        }
        if !self.targets.is_empty() {
            how.push(format!("rustup target add {}", self.targets.join(" ")));
        }
        how.join(" && ")
    }
}

fn python_has(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn missing(root: &Path) -> Missing {
    let mut apt: Vec<&str> = PEERS
        .iter()
        .filter(|(p, _)| !on_path(p))
        .map(|(_, pkg)| *pkg)
        .collect();
    apt.dedup();
    let mut pip: Vec<&str> = PY_PEERS
        .iter()
        .filter(|(p, _)| !on_path(p))
        .map(|(_, pkg)| *pkg)
        .collect();
    pip.extend(
        PY_MODULES
            .iter()
            .filter(|(m, _)| !python_has(m))
            .map(|(_, pkg)| *pkg),
    );
    let npm = !root
        .join(NODE_EXAMPLE)
        .join("node_modules/azure-iot-device")
        .is_dir();
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let targets = RUST_TARGETS
        .iter()
        .filter(|t| !installed.lines().any(|l| l.trim() == **t))
        .copied()
        .collect();
    Missing {
        apt,
        pip,
        npm,
        targets,
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1)) // effective uid
            == Some("0")
    })
}

fn run(what: &str, cmd: &mut Command) -> Result<(), Failure> {
    eprintln!("xtask: {what}");
    let status = cmd
        .status()
        .map_err(|e| Failure::Setup(format!("{what}: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(Failure::Setup(format!("{what} failed ({status})")))
    }
}

fn install(root: &Path, m: &Missing) -> Result<(), Failure> {
    if !m.apt.is_empty() {
        run(
            "apt-get update",
            Command::new("apt-get").args(["update", "-qq"]),
        )?;
        // tshark's installer would ask whether non-root users may capture.
        let mut preseed = Command::new("debconf-set-selections")
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|e| Failure::Setup(format!("debconf-set-selections: {e}")))?;
        if let Some(mut stdin) = preseed.stdin.take() {
            use std::io::Write;
            let _ = stdin
                .write_all(b"wireshark-common wireshark-common/install-setuid boolean false\n");
        }
        let _ = preseed.wait();
        run(
            &format!("apt-get install {}", m.apt.join(" ")),
            Command::new("apt-get")
                .args(["install", "-y", "-qq", "--no-install-recommends"])
                .args(&m.apt)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
    }
    if !m.pip.is_empty() {
        run(
            &format!("pip install {}", m.pip.join(" ")),
            Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .args(&m.pip),
        )?;
        // A pyenv Python puts new programs on PATH only through its shims.
        if on_path("pyenv") {
            let _ = Command::new("pyenv").arg("rehash").status();
        }
    }
    if !m.targets.is_empty() {
        run(
            &format!("rustup target add {}", m.targets.join(" ")),
            Command::new("rustup")
                .args(["target", "add"])
                .args(&m.targets),
        )?;
    }
    if m.npm {
        run(
            &format!("npm ci in {NODE_EXAMPLE}"),
            Command::new("npm")
                .args(["ci", "--silent", "--no-audit", "--no-fund", "--prefix"])
                .arg(root.join(NODE_EXAMPLE)),
        )?;
    }
    Ok(())
}

/// Every peer is there afterwards, or one error with the command to run.
pub(crate) fn ensure(root: &Path) -> Result<(), Failure> {
    let m = missing(root);
    if m.is_empty() {
        return Ok(());
    }
    let debian = Path::new("/etc/debian_version").exists() && on_path("apt-get");
    if !(is_root() && debian) {
        return Err(Failure::Setup(format!(
            "the tests use real third-party peers that are not installed; run: {}",
            m.command()
        )));
    }
    install(root, &m)?;
    let left = missing(root);
    if left.is_empty() {
        Ok(())
    } else {
        Err(Failure::Setup(format!(
            "installing the test peers left some missing; run: {}",
            left.command()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_one_command_names_every_missing_peer() {
        let m = Missing {
            apt: vec!["tshark", "jq"],
            pip: vec!["imgtool"],
            npm: true,
            targets: vec!["thumbv7m-none-eabi"],
        };
        assert_eq!(
            m.command(),
            "apt-get update && apt-get install -y tshark jq && python3 -m pip install imgtool \
             && npm ci --prefix examples/azure-node-device && rustup target add thumbv7m-none-eabi"
        );
        assert!(Missing::default().is_empty());
        assert_eq!(
            Missing {
                pip: vec!["paho-mqtt==2.2.0"],
                ..Missing::default()
            }
            .command(),
            "python3 -m pip install paho-mqtt==2.2.0"
        );
    }
}
