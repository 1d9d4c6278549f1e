//! The provisioning the bench writes for a device (the language-neutral
//! directory of `sacbench_provisioning`: `device.json`, `device.pem`,
//! `device.key`, `hub-ca.pem`), checked for what the reference firmware
//! needs. It is read once at the factory step (first power-on with an empty
//! keystore); after that the keystore in flash is the device's truth, as on a
//! real board. The hub is dialled by name (`hub_host`, resolved through the
//! system resolver at every connection), as device SDKs do.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use device_core::faults::FaultSet;

/// A read, checked provisioning directory.
#[derive(Debug, Clone)]
pub struct Provisioning {
    /// The device id: MQTT client id and certificate CN; checked to be 1–128
    /// characters of `[A-Za-z0-9-.:_]`.
    pub device_id: String,
    /// The hub's DNS name (or IPv4 address): dialled, sent as SNI and
    /// checked against the hub's certificate.
    pub hub_host: String,
    /// The hub's MQTT over TLS port.
    pub mqtt_port: u16,
    /// The hub's HTTPS port (EST re-enrolment, firmware downloads).
    pub https_port: u16,
    /// The trust anchor for the hub's server certificate, PEM.
    pub trust_anchor_pem: String,
    /// The factory certificate, PEM (leaf first if a chain); stored in the
    /// keystore at the factory step.
    pub certificate_pem: String,
    /// The factory certificate's private key, PKCS#8 PEM; stored in the
    /// keystore at the factory step.
    pub private_key_pem: String,
    /// The fault switches to turn on (none for a correct device).
    pub faults: FaultSet,
    /// Telemetry period, seconds (≥ 1; default 30) until the twin's desired
    /// `telemetryIntervalSeconds` says otherwise.
    pub telemetry_interval_seconds: u64,
    /// Where the `extra-destination` fault connects; unused otherwise.
    pub extra_destination: Option<SocketAddr>,
    /// The reconnect backoff's base delay (the first ceiling), ms.
    pub reconnect_base_ms: u64,
    /// The bench's time scale for the board's clock (see `crate::clock`).
    pub clock: Option<sacbench_provisioning::ClockScale>,
}

/// The policy's base: delays 0.5–1 s, 1–2 s, 2–4 s, … (see `device_core::backoff`).
const DEFAULT_RECONNECT_BASE_MS: u64 = 1000;
const TELEMETRY_INTERVAL_SECONDS: u64 = 30;

/// One clear error naming the file, the field and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum ProvisioningError {
    /// The directory could not be read (a file missing or malformed).
    #[error(transparent)]
    Read(#[from] sacbench_provisioning::ProvisioningError),
    /// A `device.json` field the reference firmware cannot use.
    #[error("{path}: field `{field}`: {message}")]
    Field {
        /// The `device.json` file.
        path: PathBuf,
        /// The field's name.
        field: &'static str,
        /// What was expected.
        message: String,
    },
}

impl Provisioning {
    /// Reads the provisioning directory `dir`.
    pub fn load(dir: &Path) -> Result<Self, ProvisioningError> {
        let p = sacbench_provisioning::read(dir)?;
        Self::check(&dir.join(sacbench_provisioning::DEVICE_JSON), p)
    }

    /// `path` (device.json) is only used in error messages.
    pub fn check(
        path: &Path,
        p: sacbench_provisioning::Provisioning,
    ) -> Result<Self, ProvisioningError> {
        let field = |field: &'static str, message: String| ProvisioningError::Field {
            path: path.to_owned(),
            field,
            message,
        };
        let d = p.device;
        let id_ok = !d.device_id.is_empty()
            && d.device_id.len() <= 128
            && d.device_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.:_".contains(c));
        if !id_ok {
            return Err(field(
                "device_id",
                format!(
                    "{:?}: expected 1–128 characters of [A-Za-z0-9-.:_]",
                    d.device_id
                ),
            ));
        }
        if d.hub_host.is_empty() || d.hub_host.contains(['/', ' ', ':']) {
            return Err(field(
                "hub_host",
                format!("{:?}: expected a DNS name or IPv4 address", d.hub_host),
            ));
        }
        let faults = FaultSet::from_names(d.faults.iter().map(String::as_str)).map_err(|bad| {
            field(
                "faults",
                format!("unknown fault {bad:?} (`device-native --list-faults` lists them)"),
            )
        })?;
        let reconnect_base_ms = d.reconnect_base_ms.unwrap_or(DEFAULT_RECONNECT_BASE_MS);
        if !(10..=60_000).contains(&reconnect_base_ms) {
            return Err(field(
                "reconnect_base_ms",
                "expected a whole number of milliseconds, 10..=60000".into(),
            ));
        }
        let telemetry_interval_seconds = d
            .telemetry_interval_seconds
            .unwrap_or(TELEMETRY_INTERVAL_SECONDS);
        if telemetry_interval_seconds == 0 {
            return Err(field(
                "telemetry_interval_seconds",
                "expected a whole number ≥ 1".into(),
            ));
        }
        if d.clock.is_some_and(|c| c.scale == 0) {
            return Err(field("clock", "expected `scale` ≥ 1".into()));
        }
        Ok(Provisioning {
            clock: d.clock,
            reconnect_base_ms,
            device_id: d.device_id,
            hub_host: d.hub_host,
            mqtt_port: d.mqtt_port,
            https_port: d.https_port,
            trust_anchor_pem: p.hub_ca_pem,
            certificate_pem: p.certificate_pem,
            private_key_pem: p.private_key_pem,
            faults,
            telemetry_interval_seconds,
            extra_destination: d.extra_destination,
        })
    }

    /// The hub's MQTT address: `hub_host` resolved now (the system resolver:
    /// hosts file, DNS), as a device dials its hub at every connection.
    pub fn hub_mqtt(&self) -> std::io::Result<SocketAddr> {
        resolve(&self.hub_host, self.mqtt_port)
    }

    /// The hub's HTTPS address (EST, firmware), resolved now.
    pub fn hub_https(&self) -> std::io::Result<SocketAddr> {
        resolve(&self.hub_host, self.https_port)
    }
}

fn resolve(host: &str, port: u16) -> std::io::Result<SocketAddr> {
    (host, port)
        .to_socket_addrs()
        .map_err(|e| std::io::Error::new(e.kind(), format!("resolving {host}: {e}")))?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{host} has no IPv4 address"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use device_core::faults::Fault;
    use sacbench_provisioning::DeviceJson;

    fn good() -> sacbench_provisioning::Provisioning {
        let mut device = DeviceJson::new("dev-1", "localhost", 8883, 8443);
        device.faults = vec!["no-dedupe".into(), "no-sni".into()];
        sacbench_provisioning::Provisioning {
            device,
            certificate_pem: "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"
                .into(),
            private_key_pem: "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n"
                .into(),
            hub_ca_pem: "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n".into(),
            image_signing_key_pem: None,
        }
    }

    fn check(p: sacbench_provisioning::Provisioning) -> Result<Provisioning, String> {
        Provisioning::check(Path::new("prov/device.json"), p).map_err(|e| e.to_string())
    }

    #[test]
    fn a_good_directory_checks_with_defaults_and_resolves_its_host() {
        let p = check(good()).unwrap();
        assert_eq!(p.device_id, "dev-1");
        assert!(p.faults.has(Fault::NoDedupe) && p.faults.has(Fault::NoSni));
        assert_eq!(p.telemetry_interval_seconds, 30);
        assert_eq!(p.reconnect_base_ms, 1000);
        assert_eq!(p.extra_destination, None);
        // The host goes through the system resolver (hosts file here).
        let a = p.hub_https().unwrap();
        assert!(a.ip().is_loopback() && a.port() == 8443, "{a}");
    }

    #[test]
    fn each_bad_field_is_named_with_the_file() {
        let mut bad_fault = good();
        bad_fault.device.faults.push("no-such-fault".into());
        let mut bad_id = good();
        bad_id.device.device_id = "dev 1".into();
        let mut bad_host = good();
        bad_host.device.hub_host = "hub:8883".into();
        let mut bad_base = good();
        bad_base.device.reconnect_base_ms = Some(0);
        for (p, field, mention) in [
            (bad_fault, "faults", "no-such-fault"),
            (bad_id, "device_id", "dev 1"),
            (bad_host, "hub_host", "hub:8883"),
            (bad_base, "reconnect_base_ms", "10..=60000"),
        ] {
            let err = check(p).unwrap_err();
            assert!(err.starts_with("prov/device.json"), "{err}");
            assert!(
                err.contains(field) && err.contains(mention),
                "{field}: {err}"
            );
        }
    }
}
