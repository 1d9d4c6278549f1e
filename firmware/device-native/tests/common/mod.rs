//! Shared test support for the device's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use sacbench_provisioning::{DeviceJson, Provisioning};

/// Writes a provisioning directory `dir` for `device_id` at `hub_host`
/// (which must resolve: `localhost` in these tests) and returns its path.
#[allow(clippy::too_many_arguments)]
pub fn provisioning_dir(
    dir: &Path,
    device_id: &str,
    hub_host: &str,
    mqtt_port: u16,
    https_port: u16,
    pems: (&str, &str, &str),
    faults: &[&str],
) -> PathBuf {
    let mut device = DeviceJson::new(device_id, hub_host, mqtt_port, https_port);
    device.faults = faults.iter().map(|f| f.to_string()).collect();
    let (ca, cert, key) = pems;
    sacbench_provisioning::write(
        dir,
        &Provisioning {
            device,
            certificate_pem: cert.into(),
            private_key_pem: key.into(),
            hub_ca_pem: ca.into(),
            image_signing_key_pem: None,
        },
    )
    .expect("provisioning directory");
    dir.to_path_buf()
}

/// A provisioning directory whose credentials are placeholders (valid PEM
/// shape, no key inside): for tests where the device never completes a
/// handshake — its hub port refuses, or the test is about the bootloader or
/// logs.
pub fn placeholder_provisioning(
    dir: &Path,
    device_id: &str,
    port: u16,
    faults: &[&str],
) -> PathBuf {
    let pem = |label: &str| format!("-----BEGIN {label}-----\nAA==\n-----END {label}-----\n");
    provisioning_dir(
        dir,
        device_id,
        "localhost",
        port,
        port,
        (
            &pem("CERTIFICATE"),
            &pem("CERTIFICATE"),
            &pem("PRIVATE KEY"),
        ),
        faults,
    )
}
