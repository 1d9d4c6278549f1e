//! The provisioning directory: what the bench hands a device under test for
//! one case, in a form any firmware stack can read (JSON and PEM files).
//!
//! ```text
//! {provisioning}/device.json   DeviceJson (below)
//! {provisioning}/device.pem    the device's certificate chain, leaf first
//! {provisioning}/device.key    its private key, PKCS#8 PEM, mode 0600
//! {provisioning}/hub-ca.pem    the trust anchor for the hub's server certificate
//! {provisioning}/image-signing.pub.pem   (only when the DUT file names an
//!                              image-signing key) the key OTA images are signed with
//! ```
//!
//! The bench writes it with [`write`]; the reference firmware reads it with
//! [`read`]. The format is documented for device makers in `docs/DUT.md`.
#![forbid(unsafe_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File names inside the directory. This one holds the [`DeviceJson`]
/// record.
pub const DEVICE_JSON: &str = "device.json";
/// The device's certificate chain, PEM, leaf first.
pub const DEVICE_CERT: &str = "device.pem";
/// The device's private key, PKCS#8 PEM; written with mode 0600.
pub const DEVICE_KEY: &str = "device.key";
/// The trust anchor for the hub's server certificate, PEM.
pub const HUB_CA: &str = "hub-ca.pem";
/// The public key OTA images are signed with, PEM; present only when the DUT
/// file names an image-signing key.
pub const IMAGE_SIGNING_KEY: &str = "image-signing.pub.pem";

/// The IoT Hub API version the device should put in its MQTT user name.
pub const API_VERSION: &str = "2021-04-12";

/// `device.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceJson {
    /// The device id: MQTT client id, certificate CN.
    pub device_id: String,
    /// The hub's DNS name: dial it (it resolves through the normal resolver),
    /// send it as SNI and check the hub's certificate against it.
    pub hub_host: String,
    /// MQTT over TLS (Azure IoT Hub: 8883).
    pub mqtt_port: u16,
    /// HTTPS: EST and firmware downloads (443).
    pub https_port: u16,
    /// `api-version` for the MQTT user name `{hub_host}/{device_id}/?api-version=…`.
    pub api_version: String,
    /// EST (RFC 7030) base: `…/simplereenroll`, `…/cacerts`.
    pub est_url: String,
    /// Firmware images are fetched below this URL (the twin's `firmware.url`
    /// gives the full one).
    pub firmware_url: String,
    /// Fault switches to turn on (a DUT file's `faults`); empty for a correct run.
    #[serde(default)]
    pub faults: Vec<String>,
    /// The reconnect backoff's base delay, when a bench runs the device at
    /// another time scale (devices may ignore it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect_base_ms: Option<u64>,
    /// Telemetry period, seconds (devices may ignore it; the twin's desired
    /// `telemetryIntervalSeconds` overrides it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry_interval_seconds: Option<u64>,
    /// An address nothing legitimate talks to; only a fault uses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_destination: Option<SocketAddr>,
    /// The bench runs the device's clock fast (only for a device whose DUT
    /// file declares `clock_scale = true`; others never get it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<ClockScale>,
}

/// `device.json`'s `clock`: the device's clock — its wall clock (certificate
/// validity, renewal, `rotateAfter`) and its timers (backoff, keep-alive,
/// heartbeat) alike — reads `origin_ms + (real − origin_ms) × scale`, the
/// hub's clock the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockScale {
    /// How many times as fast as real time the clock runs (≥ 1).
    pub scale: u32,
    /// Unix ms at which the scaled clock equals real time.
    pub origin_ms: u64,
}

impl DeviceJson {
    /// The record for `device_id` at `hub_host` with the standard URLs.
    pub fn new(device_id: &str, hub_host: &str, mqtt_port: u16, https_port: u16) -> DeviceJson {
        let base = if https_port == 443 {
            format!("https://{hub_host}")
        } else {
            format!("https://{hub_host}:{https_port}")
        };
        DeviceJson {
            device_id: device_id.into(),
            hub_host: hub_host.into(),
            mqtt_port,
            https_port,
            api_version: API_VERSION.into(),
            est_url: format!("{base}/.well-known/est"),
            firmware_url: format!("{base}/firmware/"),
            faults: Vec::new(),
            reconnect_base_ms: None,
            telemetry_interval_seconds: None,
            extra_destination: None,
            clock: None,
        }
    }
}

/// A whole provisioning directory's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioning {
    /// `device.json`: identity, hub endpoints and switches.
    pub device: DeviceJson,
    /// `device.pem`: the device's certificate chain, leaf first.
    pub certificate_pem: String,
    /// `device.key`: the certificate's private key, PKCS#8 PEM.
    pub private_key_pem: String,
    /// `hub-ca.pem`: the trust anchor for the hub's server certificate.
    pub hub_ca_pem: String,
    /// The public key OTA images are signed with, if the bench knows it.
    pub image_signing_key_pem: Option<String>,
}

/// What went wrong, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum ProvisioningError {
    /// A file or the directory could not be read, created or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file's contents are wrong: `device.json` that does not parse, or a
    /// PEM file without the expected block.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ProvisioningError + '_ {
    move |source| ProvisioningError::Io {
        path: path.to_owned(),
        source,
    }
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), ProvisioningError> {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

/// Writes `p` into `dir` (created if missing); the key file is 0600.
pub fn write(dir: &Path, p: &Provisioning) -> Result<(), ProvisioningError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let json = serde_json::to_vec_pretty(&p.device).map_err(|e| ProvisioningError::Format {
        path: dir.join(DEVICE_JSON),
        message: e.to_string(),
    })?;
    write_file(&dir.join(DEVICE_JSON), &json, 0o644)?;
    write_file(&dir.join(DEVICE_CERT), p.certificate_pem.as_bytes(), 0o644)?;
    write_file(&dir.join(DEVICE_KEY), p.private_key_pem.as_bytes(), 0o600)?;
    write_file(&dir.join(HUB_CA), p.hub_ca_pem.as_bytes(), 0o644)?;
    let signing = dir.join(IMAGE_SIGNING_KEY);
    match &p.image_signing_key_pem {
        Some(pem) => write_file(&signing, pem.as_bytes(), 0o644)?,
        None => {
            let _ = std::fs::remove_file(&signing);
        }
    }
    Ok(())
}

fn read_pem(dir: &Path, name: &str, label: &str) -> Result<String, ProvisioningError> {
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    if !text.contains(&format!("-----BEGIN {label}-----")) {
        return Err(ProvisioningError::Format {
            path,
            message: format!("expected a PEM block `-----BEGIN {label}-----`"),
        });
    }
    Ok(text)
}

/// Reads a provisioning directory.
pub fn read(dir: &Path) -> Result<Provisioning, ProvisioningError> {
    let path = dir.join(DEVICE_JSON);
    let text = std::fs::read(&path).map_err(io(&path))?;
    let device: DeviceJson =
        serde_json::from_slice(&text).map_err(|e| ProvisioningError::Format {
            path: path.clone(),
            message: e.to_string(),
        })?;
    let signing = dir.join(IMAGE_SIGNING_KEY);
    Ok(Provisioning {
        device,
        certificate_pem: read_pem(dir, DEVICE_CERT, "CERTIFICATE")?,
        private_key_pem: read_pem(dir, DEVICE_KEY, "PRIVATE KEY")?,
        hub_ca_pem: read_pem(dir, HUB_CA, "CERTIFICATE")?,
        image_signing_key_pem: match signing.exists() {
            true => Some(read_pem(dir, IMAGE_SIGNING_KEY, "PUBLIC KEY")?),
            false => None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn sample() -> Provisioning {
        let mut device = DeviceJson::new("dut-1", "hub3.sacbench.test", 8883, 443);
        device.faults = vec!["no-sni".into()];
        device.reconnect_base_ms = Some(250);
        Provisioning {
            device,
            certificate_pem: "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"
                .into(),
            private_key_pem: "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n"
                .into(),
            hub_ca_pem: "-----BEGIN CERTIFICATE-----\nAQ==\n-----END CERTIFICATE-----\n".into(),
            image_signing_key_pem: None,
        }
    }

    #[test]
    fn written_then_read_is_the_same_and_the_key_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = sample();
        write(dir.path(), &p).unwrap();
        assert_eq!(read(dir.path()).unwrap(), p);
        let mode = std::fs::metadata(dir.path().join(DEVICE_KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // Language-neutral: plain JSON with the documented keys.
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(DEVICE_JSON)).unwrap()).unwrap();
        assert_eq!(v["hub_host"], "hub3.sacbench.test");
        assert_eq!(v["mqtt_port"], 8883);
        assert_eq!(v["est_url"], "https://hub3.sacbench.test/.well-known/est");
        assert_eq!(v["api_version"], API_VERSION);
    }

    #[test]
    fn names_that_need_escaping_survive() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = sample();
        p.device.device_id = "dev\"1\\x".into();
        write(dir.path(), &p).unwrap();
        assert_eq!(read(dir.path()).unwrap().device.device_id, "dev\"1\\x");
    }

    #[test]
    fn a_bad_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &sample()).unwrap();
        std::fs::write(dir.path().join(DEVICE_KEY), "not a key").unwrap();
        let e = read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("device.key") && e.contains("PRIVATE KEY"), "{e}");
        std::fs::remove_file(dir.path().join(DEVICE_JSON)).unwrap();
        let e = read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("device.json"), "{e}");
    }
}

/// The native emulated board's control switches, set by the rig and read by
/// the reference firmware's board layer (the names live here, once, for both).
pub mod board_control {
    /// The environment variable naming the board's control directory.
    pub const ENV: &str = "SACBENCH_BOARD_CONTROL";
    /// In that directory: while this file exists, holding `N` or
    /// `N primary` ([`hold_text`]), every flash write (or only those to the
    /// primary image slot) waits before it lands — until the file is
    /// removed, at most N ms: a slow flash chip, on the bench's command.
    pub const FLASH_HOLD_FILE: &str = "flash-hold-ms";

    /// Which flash writes a hold holds.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum HoldScope {
        /// Every write and erase.
        Every,
        /// Only writes and erases of the primary image slot: what a
        /// bootloader's swap does, and nothing the running firmware does.
        PrimarySlot,
    }

    /// The text of [`FLASH_HOLD_FILE`] for a hold of at most `ms` per write.
    pub fn hold_text(ms: u64, scope: HoldScope) -> String {
        match scope {
            HoldScope::Every => ms.to_string(),
            HoldScope::PrimarySlot => format!("{ms} primary"),
        }
    }

    /// Reads [`hold_text`] back; `None` for anything else.
    pub fn parse_hold(text: &str) -> Option<(u64, HoldScope)> {
        let mut words = text.split_whitespace();
        let ms = words.next()?.parse().ok()?;
        let scope = match words.next() {
            None => HoldScope::Every,
            Some("primary") => HoldScope::PrimarySlot,
            Some(_) => return None,
        };
        words.next().is_none().then_some((ms, scope))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn hold_text_reads_back() {
            for scope in [HoldScope::Every, HoldScope::PrimarySlot] {
                assert_eq!(parse_hold(&hold_text(2000, scope)), Some((2000, scope)));
            }
            assert_eq!(parse_hold("2000\n"), Some((2000, HoldScope::Every)));
            for bad in ["", "x", "10 secondary", "10 primary x"] {
                assert_eq!(parse_hold(bad), None, "{bad:?}");
            }
        }
    }
}
