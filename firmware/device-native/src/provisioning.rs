//! The provisioning file the bench writes for an emulated device: identity,
//! credential, where the hub is, the trust anchor, and the fault switches.
//! It is read once at the factory step (first power-on with an empty
//! keystore); after that the keystore in flash is the device's truth, as on a
//! real board.
//!
//! Format (TOML):
//!
//! ```toml
//! device_id = "dev-1"
//! hub_host = "hub.sacbench.test"      # SNI and the name checked in the hub's cert
//! hub_mqtt = "10.77.0.1:8883"
//! hub_https = "10.77.0.1:443"
//! trust_anchor = "-----BEGIN CERTIFICATE-----\n..."
//! certificate = "-----BEGIN CERTIFICATE-----\n..."
//! private_key = "-----BEGIN PRIVATE KEY-----\n..."
//! faults = ["no-dedupe"]              # optional, catalogue names
//! telemetry_interval_seconds = 30     # optional
//! extra_destination = "10.77.9.9:443" # optional, used only by the extra-destination fault
//! reconnect_base_ms = 1000             # optional: the reconnect backoff's base (a bench's time scale)
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use device_core::faults::FaultSet;
use serde::Deserialize;

/// A parsed, checked provisioning file.
#[derive(Debug, Clone)]
pub struct Provisioning {
    pub device_id: String,
    pub hub_host: String,
    pub hub_mqtt: SocketAddr,
    pub hub_https: SocketAddr,
    pub trust_anchor_pem: String,
    pub certificate_pem: String,
    pub private_key_pem: String,
    pub faults: FaultSet,
    pub telemetry_interval_seconds: u64,
    pub extra_destination: Option<SocketAddr>,
    /// The reconnect backoff's base delay (the first ceiling), ms.
    pub reconnect_base_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    device_id: String,
    hub_host: String,
    hub_mqtt: SocketAddr,
    hub_https: SocketAddr,
    trust_anchor: String,
    certificate: String,
    private_key: String,
    #[serde(default)]
    faults: Vec<String>,
    #[serde(default = "default_interval")]
    telemetry_interval_seconds: u64,
    #[serde(default)]
    extra_destination: Option<SocketAddr>,
    #[serde(default = "default_reconnect_base")]
    reconnect_base_ms: u64,
}

fn default_interval() -> u64 {
    30
}

/// The policy's base: delays 0.5–1 s, 1–2 s, 2–4 s, … (see `device_core::backoff`).
fn default_reconnect_base() -> u64 {
    1000
}

/// One clear error naming the file, the field and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum ProvisioningError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: field `{field}`: {message}")]
    Field {
        path: PathBuf,
        field: &'static str,
        message: String,
    },
}

impl Provisioning {
    pub fn load(path: &Path) -> Result<Self, ProvisioningError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProvisioningError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// `path` is only used in error messages.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ProvisioningError> {
        // toml's message already names the key and shows the line and column.
        let raw: Raw = toml::from_str(text).map_err(|e| ProvisioningError::Syntax {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let field = |field: &'static str, message: String| ProvisioningError::Field {
            path: path.to_owned(),
            field,
            message,
        };
        let id_ok = !raw.device_id.is_empty()
            && raw.device_id.len() <= 128
            && raw
                .device_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.:_".contains(c));
        if !id_ok {
            return Err(field(
                "device_id",
                format!(
                    "{:?}: expected 1–128 characters of [A-Za-z0-9-.:_]",
                    raw.device_id
                ),
            ));
        }
        if raw.hub_host.is_empty() || raw.hub_host.contains(['/', ' ']) {
            return Err(field(
                "hub_host",
                format!("{:?}: expected a DNS name or IP address", raw.hub_host),
            ));
        }
        for (name, pem, label) in [
            ("trust_anchor", &raw.trust_anchor, "CERTIFICATE"),
            ("certificate", &raw.certificate, "CERTIFICATE"),
            ("private_key", &raw.private_key, "PRIVATE KEY"),
        ] {
            if !pem.contains(&format!("-----BEGIN {label}-----")) {
                return Err(field(
                    name,
                    format!("expected a PEM block `-----BEGIN {label}-----`"),
                ));
            }
        }
        let faults =
            FaultSet::from_names(raw.faults.iter().map(String::as_str)).map_err(|bad| {
                field(
                    "faults",
                    format!("unknown fault {bad:?} (`device-native --list-faults` lists them)"),
                )
            })?;
        if raw.telemetry_interval_seconds == 0 {
            return Err(field(
                "telemetry_interval_seconds",
                "expected a whole number ≥ 1".into(),
            ));
        }
        if !(10..=60_000).contains(&raw.reconnect_base_ms) {
            return Err(field(
                "reconnect_base_ms",
                "expected a whole number of milliseconds, 10..=60000".into(),
            ));
        }
        Ok(Provisioning {
            reconnect_base_ms: raw.reconnect_base_ms,
            device_id: raw.device_id,
            hub_host: raw.hub_host,
            hub_mqtt: raw.hub_mqtt,
            hub_https: raw.hub_https,
            trust_anchor_pem: raw.trust_anchor,
            certificate_pem: raw.certificate,
            private_key_pem: raw.private_key,
            faults,
            telemetry_interval_seconds: raw.telemetry_interval_seconds,
            extra_destination: raw.extra_destination,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use device_core::faults::Fault;

    const GOOD: &str = r#"
device_id = "dev-1"
hub_host = "hub.sacbench.test"
hub_mqtt = "127.0.0.1:8883"
hub_https = "127.0.0.1:8443"
trust_anchor = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"
certificate = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"
private_key = "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n"
faults = ["no-dedupe", "no-sni"]
"#;

    fn parse(text: &str) -> Result<Provisioning, String> {
        Provisioning::parse(Path::new("prov.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_good_file_parses_with_defaults() {
        let p = parse(GOOD).unwrap();
        assert_eq!(p.device_id, "dev-1");
        assert_eq!(p.hub_https.port(), 8443);
        assert!(p.faults.has(Fault::NoDedupe) && p.faults.has(Fault::NoSni));
        assert_eq!(p.telemetry_interval_seconds, 30);
        assert_eq!(p.extra_destination, None);
    }

    #[test]
    fn each_bad_field_is_named_with_the_file() {
        let cases = [
            (
                GOOD.replace("\"no-sni\"", "\"no-such-fault\""),
                "faults",
                "no-such-fault",
            ),
            (
                GOOD.replace("127.0.0.1:8883", "hub:8883"),
                "hub_mqtt",
                "hub_mqtt",
            ),
            (GOOD.replace("dev-1", "dev 1"), "device_id", "dev 1"),
            (
                GOOD.replace("BEGIN PRIVATE KEY", "BEGIN KEY"),
                "private_key",
                "PRIVATE KEY",
            ),
            (GOOD.replace("device_id", "device"), "device", "device"),
            (
                format!("{GOOD}\ntelemetry_interval_seconds = 0\n"),
                "telemetry_interval_seconds",
                "≥ 1",
            ),
        ];
        for (text, field, mention) in cases {
            let err = parse(&text).unwrap_err();
            assert!(err.starts_with("prov.toml"), "{err}");
            assert!(
                err.contains(field) && err.contains(mention),
                "{field}: {err}"
            );
        }
    }
}
