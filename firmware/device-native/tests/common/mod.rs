//! Shared test support for the device's integration tests.
#![allow(dead_code)]

/// A provisioning file whose credentials are placeholders (valid PEM shape,
/// no key inside): for tests where the device never completes a handshake —
/// its hub address refuses, or the test is about the bootloader or logs.
/// `faults` is the inside of the TOML array, e.g. `"\"unsafe-swap\""`.
pub fn placeholder_provisioning(
    device_id: &str,
    hub_host: &str,
    hub: &str,
    faults: &str,
) -> String {
    let pem = |label: &str| format!("-----BEGIN {label}-----\\nAA==\\n-----END {label}-----\\n");
    format!(
        "device_id = \"{device_id}\"\nhub_host = \"{hub_host}\"\nhub_mqtt = \"{hub}\"\nhub_https = \"{hub}\"\n\
         trust_anchor = \"{}\"\ncertificate = \"{}\"\nprivate_key = \"{}\"\nfaults = [{faults}]\n",
        pem("CERTIFICATE"),
        pem("CERTIFICATE"),
        pem("PRIVATE KEY")
    )
}
