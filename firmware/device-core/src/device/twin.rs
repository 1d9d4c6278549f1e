//! The desired properties the device acts on, parsed from the twin (a GET's
//! `desired` section or a desired patch). Pure: JSON in, typed values out;
//! what to do with them is the machines'.
//!
//! * `telemetryIntervalSeconds`: a positive integer, the heartbeat period.
//! * `credentials.rotateAfter`: RFC 3339; present-but-null (or a
//!   `credentials` without it) clears a pending one.
//! * `firmware {version, url, sha256 (64 hex), size}`: the image to
//!   install; `null` clears it, anything incomplete is malformed.

use alloc::string::{String, ToString};

use serde_json::Value;

use crate::ota::{parse_sha256_hex, FirmwareTarget};

/// What a desired document says; `None` fields are absent from it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Desired {
    /// The heartbeat period, ms (only a positive whole number of seconds).
    pub telemetry_interval_ms: Option<u64>,
    /// `credentials` was present: its `rotateAfter` string, if any.
    pub rotate_after: Option<Option<String>>,
    /// `firmware` was present.
    pub firmware: Option<DesiredFirmware>,
}

/// Desired `firmware`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DesiredFirmware {
    /// A complete target.
    Target(FirmwareTarget),
    /// `null`: nothing to install.
    Cleared,
    /// Present but unusable (the JSON as received, for the log).
    Malformed(String),
}

/// Parses the properties the device acts on; the rest is ignored.
pub fn parse_desired(desired: &Value) -> Desired {
    let telemetry_interval_ms = desired
        .get("telemetryIntervalSeconds")
        .and_then(Value::as_u64)
        .filter(|s| *s > 0)
        .map(|s| s.saturating_mul(1000));
    let rotate_after = desired.get("credentials").map(|c| {
        c.get("rotateAfter")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    let firmware = desired.get("firmware").map(|fw| {
        if fw.is_null() {
            return DesiredFirmware::Cleared;
        }
        match firmware_target(fw) {
            Some(t) => DesiredFirmware::Target(t),
            None => DesiredFirmware::Malformed(fw.to_string()),
        }
    });
    Desired {
        telemetry_interval_ms,
        rotate_after,
        firmware,
    }
}

fn firmware_target(fw: &Value) -> Option<FirmwareTarget> {
    Some(FirmwareTarget {
        version: fw.get("version")?.as_str()?.to_string(),
        url: fw.get("url")?.as_str()?.to_string(),
        sha256: parse_sha256_hex(fw.get("sha256")?.as_str()?)?,
        size: u32::try_from(fw.get("size")?.as_u64()?).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SHA: &str = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";

    #[test]
    fn a_complete_document_is_parsed() {
        let d = parse_desired(&json!({
            "$version": 4,
            "telemetryIntervalSeconds": 30,
            "credentials": { "rotateAfter": "2026-11-25T12:00:00Z" },
            "firmware": { "version": "1.1.0", "url": "https://hub/firmware/a", "sha256": SHA, "size": 1234 },
        }));
        assert_eq!(d.telemetry_interval_ms, Some(30_000));
        assert_eq!(d.rotate_after, Some(Some("2026-11-25T12:00:00Z".into())));
        let Some(DesiredFirmware::Target(t)) = d.firmware else {
            panic!("{:?}", d.firmware)
        };
        assert_eq!((t.version.as_str(), t.size), ("1.1.0", 1234));
        assert_eq!(t.sha256[0], 0x00);
        assert_eq!(t.sha256[31], 0xff);
    }

    #[test]
    fn absent_null_and_malformed_are_told_apart() {
        assert_eq!(parse_desired(&json!({"$version": 1})), Desired::default());
        let d = parse_desired(&json!({ "credentials": null, "firmware": null }));
        assert_eq!(d.rotate_after, Some(None));
        assert_eq!(d.firmware, Some(DesiredFirmware::Cleared));
        for bad in [
            json!({ "version": "1.1.0" }),
            json!({ "version": "1.1.0", "url": "u", "sha256": "abc", "size": 1 }),
            json!({ "version": "1.1.0", "url": "u", "sha256": SHA, "size": -1 }),
            json!({ "version": "1.1.0", "url": "u", "sha256": SHA, "size": 5_000_000_000u64 }),
            json!("1.1.0"),
        ] {
            assert!(
                matches!(
                    parse_desired(&json!({ "firmware": bad })).firmware,
                    Some(DesiredFirmware::Malformed(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn only_a_positive_interval_counts() {
        for v in [json!(0), json!(-5), json!("30"), json!(1.5)] {
            assert_eq!(
                parse_desired(&json!({ "telemetryIntervalSeconds": v })).telemetry_interval_ms,
                None,
                "{v}"
            );
        }
    }
}
